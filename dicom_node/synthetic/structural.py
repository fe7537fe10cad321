"""Single-echo series that share a study with the GRE: a 3-D T1 (MPRAGE) and a localiser.

Real MS protocols acquire both beside the QSM scan; assembly must use the T1 and must never
let either of them take the GRE's phase series. Written as a Siemens scanner does (separate
single-frame series, `ScanningSequence` GR\\IR with an inversion time for the MPRAGE).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import MRImageStorage, generate_uid

from dicom_node.geometry import geometry_from_affine
from dicom_node.sop_classes import new_dataset
from dicom_node.synthetic.modules import (
    PatientIdentity,
    VendorInfo,
    fill_patient_study,
    fill_series_equipment,
    fill_slice_geometry,
    magnitude_codes,
    write_dataset,
)

__all__ = ["write_single_echo_series"]

_SIEMENS = VendorInfo("SIEMENS", "Prisma", "*tfl3d1_16ns")


def write_single_echo_series(  # noqa: PLR0913 - the series' identity and contrast, spelled out
    volume: np.ndarray,
    affine_ras: np.ndarray,
    out_dir: Path,
    identity: PatientIdentity,
    *,
    series_number: int,
    description: str,
    inversion_time_ms: float | None = 900.0,
    echo_time_ms: float = 2.3,
    b0_tesla: float = 3.0,
) -> list[Path]:
    """Write a (x, y, z) magnitude volume as one single-echo series; an inversion time makes
    it an MPRAGE (`GR\\IR`), None a plain gradient echo such as a localiser."""
    geometry = geometry_from_affine(affine_ras)
    codes, slope = magnitude_codes(np.asarray(volume, dtype=float))
    series_uid = str(generate_uid())
    paths = []
    for z in range(volume.shape[2]):
        ds = new_dataset(MRImageStorage)
        fill_patient_study(ds, identity)
        fill_series_equipment(ds, identity, _SIEMENS, series_uid, series_number, description)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
        ds.ScanningSequence = ["GR", "IR"] if inversion_time_ms is not None else "GR"
        ds.SequenceVariant = ["SP", "MP"] if inversion_time_ms is not None else "SP"
        if inversion_time_ms is not None:
            ds.InversionTime = f"{inversion_time_ms:.6g}"
        ds.MRAcquisitionType = "3D"
        ds.SequenceName = _SIEMENS.sequence_name
        ds.EchoTime = f"{echo_time_ms:.6g}"
        ds.EchoNumbers = 1
        ds.RepetitionTime = "2300"
        ds.MagneticFieldStrength = f"{b0_tesla:.6g}"
        ds.ImagingFrequency = f"{b0_tesla * 42.577478518:.6f}"
        ds.InstanceNumber = z + 1
        fill_slice_geometry(ds, geometry, z)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = codes.shape[1], codes.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = "0", f"{slope:.10g}"
        ds.PixelData = np.ascontiguousarray(codes[:, :, z].T, dtype=np.uint16).tobytes()
        paths.append(write_dataset(ds, Path(out_dir) / f"s{series_number:03d}_i{z + 1:05d}.dcm"))
    return paths
