"""Write an `Acquisition` as realistic MR DICOM files, in the layout of a chosen vendor.

Used by tests (round trips through `dicom_node.assemble.study`) and by the demo, which needs a
longitudinal patient: pass the same `PatientIdentity` fields with a new study UID and date per
visit. Styles and the conventions they imitate (public attributes only, no private tags):

- ``siemens``: two series (magnitude, phase), ImageType ``ORIGINAL\\PRIMARY\\M\\ND`` and
  ``...\\P\\ND``; phase stored 0..4095 with RescaleSlope 2 / RescaleIntercept -4096 (-pi..pi).
- ``ge``: one series holding magnitude (ImageType value 3 ``MAGNITUDE``) and phase (``PHASE``)
  as signed milliradians without rescale. Real GE files mark the component in the private tag
  (0043,102F); we assume the public ImageType value instead (the reader accepts either).
- ``ge_real_imaginary``: one series of ``REAL`` and ``IMAGINARY`` images (signed, rescaled).
- ``philips``: one series, ImageType ``...\\M\\FFE`` and ``...\\P\\FFE``; phase codes rescaled to
  milliradians (``philips_phase_unit="mrad"``) or radians.
- ``enhanced``: one Enhanced MR Image Storage object (see `dicom_node.synthetic.enhanced`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, MRImageStorage, generate_uid

from dicom_node.assemble.vendor_phase import (
    SIEMENS_RESCALE_INTERCEPT,
    SIEMENS_RESCALE_SLOPE,
    full_circle_code,
    full_circle_rescale,
    siemens_stored_phase,
)
from dicom_node.geometry import SliceGeometry, geometry_from_affine
from dicom_node.sop_classes import new_dataset
from dicom_node.synthetic.enhanced import write_enhanced_series
from dicom_node.synthetic.modules import (
    PatientIdentity,
    VendorInfo,
    fill_gre_classic,
    fill_patient_study,
    fill_series_equipment,
    fill_slice_geometry,
    magnitude_codes,
    write_dataset,
)
from monitor.types import Acquisition

VendorStyle = Literal["siemens", "ge", "ge_real_imaginary", "philips", "enhanced"]
VENDOR_STYLES: tuple[VendorStyle, ...] = (
    "siemens",
    "ge",
    "ge_real_imaginary",
    "philips",
    "enhanced",
)

_VENDORS: dict[str, VendorInfo] = {
    "siemens": VendorInfo("SIEMENS", "Prisma", "*fl3d3"),
    "ge": VendorInfo("GE MEDICAL SYSTEMS", "SIGNA Premier", "efgre3d"),
    "philips": VendorInfo("Philips Medical Systems", "Ingenia", "T2*FFE"),
    "enhanced": VendorInfo("SIEMENS", "MAGNETOM Vida", "*fl3d3"),
}
_SERIES_DESCRIPTION = "gre_qsm_3d_multiecho"


@dataclass(frozen=True)
class _Component:
    """One image kind (magnitude, phase, real, imaginary) as stored codes plus its rescale."""

    image_type: list[str]
    codes: np.ndarray
    bits_stored: int
    signed: bool
    slope: float
    intercept: float


def write_acquisition_series(
    acq: Acquisition,
    out_dir: Path,
    style: VendorStyle = "siemens",
    identity: PatientIdentity | None = None,
    *,
    first_series_number: int = 10,
    philips_phase_unit: Literal["rad", "mrad"] = "mrad",
    transfer_syntax: UID | None = None,
) -> list[Path]:
    """Write `acq` under `out_dir` and return the file paths (one study, one or two series).

    `transfer_syntax` compresses every file (e.g. ``RLELossless``); None keeps Explicit VR
    Little Endian.
    """
    identity = identity or PatientIdentity()
    geometry = geometry_from_affine(acq.affine_ras)
    out_dir = Path(out_dir)
    if style == "enhanced":
        return write_enhanced_series(
            acq,
            out_dir,
            identity,
            _VENDORS["enhanced"],
            geometry,
            first_series_number,
            _SERIES_DESCRIPTION,
            transfer_syntax,
        )
    vendor = _VENDORS[style.split("_")[0]]
    paths: list[Path] = []
    for offset, components in enumerate(_series_plan(acq, style, philips_phase_unit)):
        series_number = first_series_number + offset
        series_uid = str(generate_uid())
        instance = 0
        for component in components:
            for echo in range(acq.n_echoes):
                for z in range(acq.shape[2]):
                    instance += 1
                    ds = _slice_dataset(acq, identity, vendor, geometry, component, echo, z)
                    fill_series_equipment(
                        ds, identity, vendor, series_uid, series_number, _SERIES_DESCRIPTION
                    )
                    ds.InstanceNumber = instance
                    if transfer_syntax is not None:
                        ds.compress(transfer_syntax)
                    name = f"s{series_number:03d}_i{instance:05d}.dcm"
                    paths.append(write_dataset(ds, out_dir / name))
    return paths


def _series_plan(
    acq: Acquisition, style: VendorStyle, philips_phase_unit: str
) -> list[list[_Component]]:
    """Components grouped by series, in the vendor's layout."""
    mag_codes, mag_slope = magnitude_codes(acq.magnitude)
    if style == "siemens":
        magnitude = _Component(
            ["ORIGINAL", "PRIMARY", "M", "ND"], mag_codes, 12, False, mag_slope, 0.0
        )
        phase = _Component(
            ["ORIGINAL", "PRIMARY", "P", "ND"],
            siemens_stored_phase(acq.phase_rad),
            12,
            False,
            SIEMENS_RESCALE_SLOPE,
            SIEMENS_RESCALE_INTERCEPT,
        )
        return [[magnitude], [phase]]
    if style == "ge":
        magnitude = _Component(
            ["ORIGINAL", "PRIMARY", "MAGNITUDE"], mag_codes, 12, False, mag_slope, 0.0
        )
        milliradians = np.round(np.angle(np.exp(1j * acq.phase_rad)) * 1000).astype(np.int16)
        phase = _Component(["ORIGINAL", "PRIMARY", "PHASE"], milliradians, 16, True, 1.0, 0.0)
        return [[magnitude, phase]]
    if style == "ge_real_imaginary":
        complex_data = acq.magnitude * np.exp(1j * acq.phase_rad)
        peak = float(np.max(np.abs(complex_data), initial=0.0)) or 1.0
        slope = peak / 32000.0
        real, imaginary = (
            _Component(
                ["ORIGINAL", "PRIMARY", kind],
                np.round(part / slope).astype(np.int16),
                16,
                True,
                slope,
                0.0,
            )
            for kind, part in (("REAL", complex_data.real), ("IMAGINARY", complex_data.imag))
        )
        return [[real, imaginary]]
    unit_scale = 1000.0 if philips_phase_unit == "mrad" else 1.0
    phase_slope, phase_intercept = full_circle_rescale(12, unit_scale)
    magnitude = _Component(
        ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"], mag_codes, 12, False, mag_slope, 0.0
    )
    phase = _Component(
        ["ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"],
        full_circle_code(acq.phase_rad, 12),
        12,
        False,
        phase_slope,
        phase_intercept,
    )
    return [[magnitude, phase]]


def _slice_dataset(
    acq: Acquisition,
    identity: PatientIdentity,
    vendor: VendorInfo,
    geometry: SliceGeometry,
    component: _Component,
    echo: int,
    z: int,
) -> Dataset:
    """One single-frame MR Image Storage instance: one slice of one echo of one component."""
    ds = new_dataset(MRImageStorage)
    fill_patient_study(ds, identity)
    ds.ImageType = component.image_type
    fill_gre_classic(ds, acq, vendor)
    ds.EchoTime = f"{acq.te_s[echo] * 1000.0:.6g}"
    ds.EchoNumbers = echo + 1
    fill_slice_geometry(ds, geometry, z)
    _fill_pixels(ds, component.codes[:, :, z, echo].T, component)
    return ds


def _fill_pixels(ds: Dataset, rows_by_columns: np.ndarray, component: _Component) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows_by_columns.shape
    ds.BitsAllocated = 16
    ds.BitsStored = component.bits_stored
    ds.HighBit = component.bits_stored - 1
    ds.PixelRepresentation = 1 if component.signed else 0
    ds.RescaleIntercept = f"{component.intercept:.10g}"
    ds.RescaleSlope = f"{component.slope:.10g}"
    dtype = np.int16 if component.signed else np.uint16
    ds.PixelData = np.ascontiguousarray(rows_by_columns, dtype=dtype).tobytes()
