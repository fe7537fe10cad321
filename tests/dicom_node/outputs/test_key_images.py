"""Key images as Secondary Capture: valid for dciodvfy, pixels equal the PNG, in the study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from support.outputs_support import assembled_study, make_record, save, validator_errors

from dicom_node.assemble.study import AssembledAcquisition
from dicom_node.outputs.common import read_sources
from dicom_node.outputs.key_images import build_key_image
from monitor.record import ProcessingRecord
from monitor.segment.keyimage import write_key_image
from monitor.settings import Settings


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> AssembledAcquisition:
    return assembled_study(tmp_path_factory.mktemp("source"))


def test_segmentation_key_image_becomes_a_valid_secondary_capture(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    acq = study.acquisition
    labels = np.zeros(acq.shape, dtype=np.int16)
    labels[8:20, 6:14, 2:6] = 3
    png = write_key_image(
        tmp_path / "key.png",
        acq.magnitude[..., 0],
        acq.phase_rad[..., 0] / 100,
        labels,
        acq.voxel_mm,
    )
    sc = build_key_image(
        ProcessingRecord.from_json(make_record(study)),
        read_sources(study.reference_paths),
        png,
        "key_image_segmentation",
        settings=Settings(),
    )
    back = dcmread(save(sc, tmp_path / "key.dcm"))
    assert validator_errors(tmp_path / "key.dcm") == []
    with Image.open(png) as image:
        want = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(back.pixel_array, want)
    source = dcmread(study.reference_paths[0], stop_before_pixels=True)
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber"):
        assert back.get(keyword) == source.get(keyword), keyword
    assert back.SeriesInstanceUID not in study.series_uids
    assert back.SeriesNumber == Settings().outputs.series_number_base + 3
    assert back.BurnedInAnnotation == "NO"  # no name, ID or birth date is drawn


def test_trend_plot_with_transparency_keeps_its_colours(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    rgba = np.zeros((40, 60, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(60, dtype=np.uint8)[None, :] * 4
    rgba[..., 1] = np.arange(40, dtype=np.uint8)[:, None] * 6
    rgba[..., 3] = 255
    png = tmp_path / "trend.png"
    Image.fromarray(rgba, "RGBA").save(png)
    sc = build_key_image(
        ProcessingRecord.from_json(make_record(study)),
        read_sources(study.reference_paths),
        png,
        "trend_plot",
        settings=Settings(outputs={"series_number_base": 500}),
    )
    assert validator_errors(save(sc, tmp_path / "trend.dcm")) == []
    np.testing.assert_array_equal(sc.pixel_array, rgba[..., :3])
    assert sc.SeriesNumber == 504
    assert sc.SeriesDescription == "QSM iron trend"
    assert sc.BurnedInAnnotation == "NO"


def test_unreadable_png_is_one_plain_reason(study: AssembledAcquisition, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read key image broken.png"):
        build_key_image(
            ProcessingRecord.from_json(make_record(study)),
            read_sources(study.reference_paths),
            broken,
            "trend_plot",
            settings=Settings(),
        )
