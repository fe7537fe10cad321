"""qsm-monitor domain package: reconstruction, measurement, tracking, norms, FHIR.

It knows nothing of DICOM networking; `dicom_node` adapts it to hospital systems.
"""

__version__ = "0.1.0"
