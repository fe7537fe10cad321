"""Service: settings in, a running node out (`qsm-monitor serve`, `status`).

Wires the listener and intake (this process), N worker processes and one deliverer, and
writes the state file that `status` and container health checks read. Owns no tables.
"""

from dicom_node.service.serve import Service
from dicom_node.service.startup import startup_summary
from dicom_node.service.status import echo, remove_state, service_status, state_path, write_state

__all__ = [
    "Service",
    "echo",
    "remove_state",
    "service_status",
    "startup_summary",
    "state_path",
    "write_state",
]
