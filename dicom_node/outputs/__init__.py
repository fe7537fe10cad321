"""DICOM objects made from one processing record: TID 1500 SR, QSM map series, key images.

Each builder returns pydicom datasets and writes nothing; the emit step decides where they go.
Numbers come only from the record (`dicom_node.pipeline.ProcessingResult.to_record`), so every
destination reports the same values.
"""
