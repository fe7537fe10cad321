"""Key images (the segmentation overlay, the trend plot) as Secondary Capture in the source study.

A PNG is what we draw; a Secondary Capture image is what every PACS viewer shows next to the
patient's scans. Each kind gets its own series so a reader can find it by its description.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from highdicom import CoordinateSystemNames
from highdicom.sc import SCImage
from PIL import Image
from pydicom.dataset import Dataset

from dicom_node.outputs.common import (
    BODY_PART,
    check_sources,
    derived_uid,
    equipment,
    series_number,
)
from monitor.record import ProcessingRecord
from monitor.settings import Settings

KeyImageKind = Literal["key_image_segmentation", "trend_plot", "report_page"]
DESCRIPTIONS: dict[KeyImageKind, str] = {
    "key_image_segmentation": "QSM deep grey matter segmentation",
    "trend_plot": "QSM iron trend",
    "report_page": "QSM report page",
}
BURNED_IN_ANNOTATION: dict[KeyImageKind, str] = {
    "key_image_segmentation": "NO",  # fixed title, structure names and direction letters only
    "trend_plot": "NO",  # fixed title, structure names, ages (or years) and values only
    "report_page": "YES",  # the patient's ID, birth date and sex are in the pixels
}
"""Burned In Annotation (0028,0301) per kind: whether the pixels identify the patient."""


def build_key_image(
    record: ProcessingRecord,
    sources: Sequence[Dataset],
    png_path: Path | str,
    kind: KeyImageKind,
    *,
    settings: Settings,
) -> Dataset:
    """A Secondary Capture (RGB, 8 bit) of the PNG at `png_path`, in the study of `sources`."""
    check_sources(record, sources)
    if kind not in DESCRIPTIONS:
        raise ValueError(f"unknown key image kind {kind!r}")
    try:
        with Image.open(png_path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read key image {Path(png_path).name}: {error}") from error
    made = equipment(record, settings)
    sc = SCImage.from_ref_dataset(
        ref_dataset=sources[0],
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system=CoordinateSystemNames.PATIENT,
        patient_orientation=("L", "P"),
        series_instance_uid=derived_uid(record, kind, "series"),
        series_number=series_number(settings, kind),
        sop_instance_uid=derived_uid(record, kind, "instance"),
        instance_number=1,
        manufacturer=made["manufacturer"],
        manufacturer_model_name=made["manufacturer_model_name"],
        software_versions=made["software_versions"],
        device_serial_number=made["device_serial_number"],
        series_description=DESCRIPTIONS[kind],
    )
    # Several planes and plots share one picture: no single orientation applies, and an empty
    # Patient Orientation (type 2) says so; highdicom insists on a value, so it is cleared here.
    sc.PatientOrientation = None
    sc.BodyPartExamined = BODY_PART
    sc.BurnedInAnnotation = BURNED_IN_ANNOTATION[kind]
    return sc
