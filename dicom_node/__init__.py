"""DICOM adapter and service layer: listener, spool, assembly, jobs, sender, DICOM outputs.

It imports `monitor` types; `monitor` never imports `dicom_node`.
"""
