"""QSM map series: valid for dciodvfy, on the source grid, values round-trip by position."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from support.outputs_support import assembled_study, make_record, save, validator_errors, walk

from dicom_node.assemble.study import AssembledAcquisition
from dicom_node.outputs.common import read_sources
from dicom_node.outputs.qsm_map import (
    build_mr_derived_series,
    build_parametric_map,
    build_qsm_maps,
    rescale_slope_ppb,
)
from dicom_node.outputs.sr import build_measurement_report
from monitor.record import ProcessingRecord
from monitor.settings import Settings
from monitor.types import QSMResult


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> AssembledAcquisition:
    return assembled_study(tmp_path_factory.mktemp("source"))


def known_chi_ppm(study: AssembledAcquisition) -> np.ndarray:
    """Random, so any swapped, flipped or shifted axis changes the values read back."""
    return np.random.default_rng(5).normal(0.0, 0.08, study.acquisition.shape).astype(np.float32)


def source_slices(study: AssembledAcquisition) -> list[Dataset]:
    return [dcmread(p) for p in study.reference_paths]


def slice_index(position: list[float], sources: list[Dataset]) -> int:
    """Which source slice sits at `position`: how a viewer pairs overlays with images."""
    distances = [np.linalg.norm(np.subtract(position, s.ImagePositionPatient)) for s in sources]
    assert min(distances) < 1e-3, "frame is not at any source slice position"
    return int(np.argmin(distances))


def test_parametric_map_is_valid_and_round_trips_by_position(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    chi = known_chi_ppm(study)
    record = make_record(study)
    pm = build_parametric_map(
        ProcessingRecord.from_json(record),
        read_sources(study.reference_paths),
        chi,
        study.acquisition.affine_ras,
        settings=Settings(),
    )[0]
    path = save(pm, tmp_path / "pm.dcm")
    assert validator_errors(path) == []
    back, sources = dcmread(path), source_slices(study)
    assert back.StudyInstanceUID == sources[0].StudyInstanceUID
    assert back.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert back.SeriesInstanceUID not in study.series_uids
    shared = back.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(
        shared.PlaneOrientationSequence[0].ImageOrientationPatient,
        sources[0].ImageOrientationPatient,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        shared.PixelMeasuresSequence[0].PixelSpacing, sources[0].PixelSpacing, atol=1e-6
    )
    mapping = shared.RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "[ppb]"
    assert (float(mapping.RealWorldValueSlope), float(mapping.RealWorldValueIntercept)) == (1, 0)
    frames = back.pixel_array
    assert frames.shape == (chi.shape[2], chi.shape[1], chi.shape[0])
    seen = set()
    for frame, group in zip(frames, back.PerFrameFunctionalGroupsSequence, strict=True):
        z = slice_index(group.PlanePositionSequence[0].ImagePositionPatient, sources)
        seen.add(z)
        # Source pixel (row r, column c) is our voxel (x=c, y=r): the map must say the same.
        np.testing.assert_allclose(frame, chi[:, :, z].T * 1000.0, rtol=1e-6)
    assert seen == set(range(chi.shape[2]))


def test_mr_derived_series_is_valid_and_round_trips_by_position(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    chi = known_chi_ppm(study)
    series = build_mr_derived_series(
        ProcessingRecord.from_json(make_record(study)),
        read_sources(study.reference_paths),
        chi,
        study.acquisition.affine_ras,
        settings=Settings(),
    )
    sources = source_slices(study)
    assert len(series) == len(sources)
    assert len({ds.SeriesInstanceUID for ds in series}) == 1
    for number, ds in enumerate(series):
        path = save(ds, tmp_path / f"mr{number}.dcm")
        assert validator_errors(path) == []
        back = dcmread(path)
        z = slice_index(back.ImagePositionPatient, sources)
        source = sources[z]
        np.testing.assert_allclose(
            back.ImageOrientationPatient, source.ImageOrientationPatient, atol=1e-6
        )
        assert back.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        slope = float(back.RescaleSlope)
        ppb = back.pixel_array * slope + float(back.RescaleIntercept)
        np.testing.assert_allclose(ppb, chi[:, :, z].T * 1000.0, atol=slope / 2 + 1e-9)


def test_maps_from_enhanced_mr_sources_are_valid(tmp_path: Path) -> None:
    study = assembled_study(tmp_path / "source", "enhanced")
    assert len(study.reference_paths) == 1
    qsm = QSMResult(
        chi_ppm=known_chi_ppm(study),
        mask=np.ones(study.acquisition.shape, dtype=bool),
        local_field_ppm=np.zeros(study.acquisition.shape),
        total_field_ppm=np.zeros(study.acquisition.shape),
        affine_ras=study.acquisition.affine_ras,
        voxel_mm=study.acquisition.voxel_mm,
        reference="whole_brain",
    )
    maps = build_qsm_maps(
        ProcessingRecord.from_json(make_record(study)),
        read_sources(study.reference_paths),
        qsm,
        settings=Settings(),
    )
    assert set(maps) == {"qsm_parametric_map", "qsm_mr_series"}
    paths = [save(maps["qsm_parametric_map"][0], tmp_path / "pm.dcm")]
    paths.append(save(maps["qsm_mr_series"][0], tmp_path / "mr.dcm"))
    for path in paths:
        assert validator_errors(path) == [], path.name


def test_setting_selects_the_map_series(study: AssembledAcquisition) -> None:
    chi = known_chi_ppm(study)
    qsm = QSMResult(
        chi, chi > 0, chi, chi, study.acquisition.affine_ras, study.acquisition.voxel_mm, "csf"
    )
    settings = Settings(outputs={"qsm_maps": ["mr_derived"], "series_number_base": 700})
    maps = build_qsm_maps(
        ProcessingRecord.from_json(make_record(study)),
        read_sources(study.reference_paths),
        qsm,
        settings=settings,
    )
    assert list(maps) == ["qsm_mr_series"]
    assert {ds.SeriesNumber for ds in maps["qsm_mr_series"]} == {702}


def test_map_on_another_grid_is_refused(study: AssembledAcquisition) -> None:
    chi, record = known_chi_ppm(study), make_record(study)
    sources = read_sources(study.reference_paths)
    affine = study.acquisition.affine_ras
    with pytest.raises(ValueError, match="matrix"):
        build_parametric_map(
            ProcessingRecord.from_json(record),
            sources,
            chi.transpose(1, 0, 2),
            affine,
            settings=Settings(),
        )
    shifted = affine.copy()
    shifted[:3, 3] += 2.0
    with pytest.raises(ValueError, match="geometry"):
        build_mr_derived_series(
            ProcessingRecord.from_json(record), sources, chi, shifted, settings=Settings()
        )


@pytest.mark.parametrize(
    ("peak_ppb", "slope"), [(0.0, 1.0), (300.0, 0.01), (3276.0, 0.1), (5000.0, 1.0)]
)
def test_rescale_slope_is_the_smallest_power_of_ten_that_fits(
    peak_ppb: float, slope: float
) -> None:
    got = rescale_slope_ppb(np.array([-peak_ppb, peak_ppb / 2]))
    assert got == pytest.approx(slope)
    assert peak_ppb / got <= 32767


def test_sr_references_the_parametric_map(study: AssembledAcquisition, tmp_path: Path) -> None:
    record = make_record(study)
    sources = read_sources(study.reference_paths)
    pm = build_parametric_map(
        ProcessingRecord.from_json(record),
        sources,
        known_chi_ppm(study),
        study.acquisition.affine_ras,
        settings=Settings(),
    )
    sr = build_measurement_report(
        ProcessingRecord.from_json(record), sources, pm, settings=Settings()
    )
    assert validator_errors(save(sr, tmp_path / "sr.dcm")) == []
    images = [i for i in walk(sr.ContentSequence) if i.ValueType == "IMAGE"]
    assert images, "no measurement group references the map"
    assert {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in images} == {
        pm[0].SOPInstanceUID
    }
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert {s.SeriesInstanceUID for s in evidence} >= {pm[0].SeriesInstanceUID}
