"""Synthetic DICOM series from an `Acquisition`, in each vendor's layout (demo and tests).

Writes what scanners send (classic single-frame and Enhanced MR multi-frame, Siemens, GE,
Philips phase conventions) so the node is exercised on realistic input. Imported by the demo,
the tests and the benchmarks, never by a stage.
"""

from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import VENDOR_STYLES, write_acquisition_series

__all__ = ["VENDOR_STYLES", "PatientIdentity", "write_acquisition_series"]
