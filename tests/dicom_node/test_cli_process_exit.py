"""`qsm-monitor process` is truthful about a study that gave no reportable value (slow: one
small reconstruction): labels that put nothing on any structure make segmentation QC withhold
every structure; the command prints the reason, not just paths, and exits with its own code."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from support.delivery_helpers import small_study
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.synthetic.modules import PatientIdentity
from monitor.cli import NOT_REPORTABLE_EXIT_CODE

pytestmark = pytest.mark.slow


def test_process_exits_with_its_code_and_says_why_when_nothing_is_reportable(
    tmp_path: Path,
) -> None:
    files, labels = small_study(tmp_path / "study", PatientIdentity(patient_id="EXIT-1"))
    image = nib.load(labels)
    empty = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.int16), image.affine), empty)
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[recon]\ntv_iterations = 5\n')

    folder = str(files[0].parent)
    result = CliRunner().invoke(
        app, ["process", folder, "--config", str(config), "--segmentation", str(empty)]
    )

    assert result.exit_code == NOT_REPORTABLE_EXIT_CODE, result.output
    assert "NOT REPORTABLE: every structure withheld" in result.stdout
    assert "outputs:" in result.stdout
