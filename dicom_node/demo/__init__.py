"""`qsm-monitor demo`: the real node parts in one process, fed with synthetic patients.

Imported only by the command line (`dicom_node.cli`), never by a stage.
"""

from dicom_node.demo.scenario import DemoError, StageDisplay, print_outcome, run_demo

__all__ = ["DemoError", "StageDisplay", "print_outcome", "run_demo"]
