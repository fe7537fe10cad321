"""`qsm-monitor process` is truthful about what it was given and what came out (slow: small
reconstructions): labels whose structures are specks make segmentation QC withhold every
structure, and the command prints the reason and exits with its own code; labels in another
numbering are refused before any work, naming what was expected and found."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from support.delivery_helpers import LABEL_VALUES, small_study
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.synthetic.modules import PatientIdentity
from monitor.cli import INPUT_ERROR_EXIT_CODE, NOT_REPORTABLE_EXIT_CODE
from monitor.settings import SegmentationSettings

pytestmark = pytest.mark.slow

SETTINGS_LABELS = SegmentationSettings().external_labels


def _labels_like(labels: Path, out: Path, values: np.ndarray) -> Path:
    image = nib.load(labels)
    nib.save(nib.Nifti1Image(values.astype(np.int16), image.affine), out)
    return out


def _data_folder_config(tmp_path: Path) -> Path:
    """Settings with the data folder in `tmp_path` (so a test sees whether it was created)."""
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    return config


def _process(tmp_path: Path, folder: Path, segmentation: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[recon]\ntv_iterations = 5\n')
    return CliRunner().invoke(
        app, ["process", str(folder), "--config", str(config), "--segmentation", str(segmentation)]
    )


def test_process_exits_with_its_code_and_says_why_when_nothing_is_reportable(
    tmp_path: Path,
) -> None:
    """Every aseg label present but one voxel each: volume QC withholds every structure."""
    files, labels = small_study(tmp_path / "study", PatientIdentity(patient_id="EXIT-1"))
    shape = nib.load(labels).shape
    specks = np.zeros(shape, np.int16)
    for index, value in enumerate(sorted({v for vs in SETTINGS_LABELS.values() for v in vs})):
        specks[2 + index, 2, 2] = value
    tiny = _labels_like(labels, tmp_path / "specks.nii.gz", specks)

    result = _process(tmp_path, files[0].parent, tiny)

    assert result.exit_code == NOT_REPORTABLE_EXIT_CODE, result.output
    assert "NOT REPORTABLE: every structure withheld" in result.stdout
    assert "outputs:" in result.stdout


def test_labels_in_another_scheme_are_refused_before_any_work(tmp_path: Path) -> None:
    files, labels = small_study(tmp_path / "study", PatientIdentity(patient_id="EXIT-2"))
    other = np.zeros(nib.load(labels).shape, np.int16)
    other[10:20, 10:20, 10:20] = 1
    other[30:40, 10:20, 10:20] = 2
    wrong = _labels_like(labels, tmp_path / "other.nii.gz", other)

    result = _process(tmp_path, files[0].parent, wrong)

    assert result.exit_code == INPUT_ERROR_EXIT_CODE, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: other.nii.gz does not follow the expected label scheme")
    assert "thalamus_left (10)" in line and "values found: 0, 1, 2" in line
    assert not (tmp_path / "data" / "outputs").exists()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("fake.nii", b"not an image", "cannot read"),
        ("fake.nii.gz", b"not gzip either", "cannot read"),
        ("labels.dcm", bytes(range(256)) * 8, "is neither a label NIfTI"),
    ],
)
def test_an_unreadable_segmentation_is_refused_in_one_line_before_any_work(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    files, _ = small_study(tmp_path / "study", PatientIdentity(patient_id="EXIT-4"))
    bad = tmp_path / name
    bad.write_bytes(content)

    result = _process(tmp_path, files[0].parent, bad)

    assert result.exit_code == INPUT_ERROR_EXIT_CODE, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and expected in line and name in line
    assert not (tmp_path / "data" / "outputs").exists()


def test_a_missing_path_is_refused_without_creating_a_history(tmp_path: Path) -> None:
    config = _data_folder_config(tmp_path)
    for command in ("process", "backfill"):
        result = CliRunner().invoke(
            app, [command, str(tmp_path / "absent"), "--config", str(config)]
        )
        assert result.exit_code == INPUT_ERROR_EXIT_CODE, result.output
        assert result.output.strip() == f"error: not found: {tmp_path / 'absent'}"
    assert not (tmp_path / "data").exists()


def _study_config(tmp_path: Path) -> Path:
    """`small_study`'s own label numbers; volumes from 0.1 ml (its nuclei are small)."""
    labels = ", ".join(f"{name} = {values}" for name, values in LABEL_VALUES.items())
    ranges = ", ".join(
        f"{name} = [0.1, 100.0]" for name in ("thalamus", "caudate", "putamen", "globus_pallidus")
    )
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[recon]\ntv_iterations = 5\n'
        f"[segmentation]\nexternal_labels = {{ {labels} }}\nvolume_ranges_ml = {{ {ranges} }}\n"
    )
    return config


def test_a_reportable_visit_is_never_replaced_by_an_unreportable_one_without_force(
    tmp_path: Path,
) -> None:
    files, labels = small_study(tmp_path / "study", PatientIdentity(patient_id="EXIT-3"))
    specks = np.zeros(nib.load(labels).shape, np.int16)
    for index, (value,) in enumerate(LABEL_VALUES.values()):
        specks[2 + index, 2, 2] = value
    tiny = _labels_like(labels, tmp_path / "specks.nii.gz", specks)
    folder, config = str(files[0].parent), str(_study_config(tmp_path))

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, [*args, "--config", config])

    good = run("process", folder, "--segmentation", str(labels))
    refused = run("process", folder, "--segmentation", str(tiny))
    kept = run("patient", "EXIT-3", "--json")
    forced = run("process", folder, "--segmentation", str(tiny), "--force")
    replaced = run("patient", "EXIT-3", "--json")

    assert good.exit_code == 0, good.output
    assert refused.exit_code == 1, refused.output
    assert "already has reportable values" in refused.stdout and "--force" in refused.stdout
    (entry,) = json.loads(kept.stdout)["entries"]
    assert entry["qc_reason"] is None and entry["structures"]["thalamus"]["mean_ppb"] is not None
    assert forced.exit_code == NOT_REPORTABLE_EXIT_CODE, forced.output
    (entry,) = json.loads(replaced.stdout)["entries"]
    assert entry["qc_reason"].startswith("every structure withheld")


def test_an_empty_folder_is_wrong_input_and_creates_no_history(tmp_path: Path) -> None:
    config = _data_folder_config(tmp_path)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / ".hidden").write_bytes(b"x")  # hidden files are skipped, as in every folder

    result = CliRunner().invoke(app, ["process", str(empty), "--config", str(config)])

    assert result.exit_code == INPUT_ERROR_EXIT_CODE, result.output
    assert result.output.strip() == f"error: no files in {empty}"
    assert not (tmp_path / "data").exists()


def test_files_without_a_qsm_acquisition_are_wrong_input_and_say_why(tmp_path: Path) -> None:
    config = _data_folder_config(tmp_path)
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image")
    for number in range(5):
        (folder / f"page{number}.pdf").write_bytes(b"%PDF-1.4")

    result = CliRunner().invoke(app, ["process", str(folder), "--config", str(config)])

    assert result.exit_code == INPUT_ERROR_EXIT_CODE, result.output
    # the user's own files are named (as given) so they can be found; logs keep hashes
    pdfs = ", ".join(str(folder / f"page{n}.pdf") for n in range(3))
    assert f"no QSM acquisition found: 6 file(s) not DICOM: {pdfs} and 3 more" in result.stdout, (
        result.stdout
    )
