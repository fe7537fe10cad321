"""Assembly and emission in a pool of node processes give what they give in this one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from support.delivery_helpers import segmentation_config, small_study

from dicom_node.assemble.study import assemble_study
from dicom_node.process.node_work import InlineNodeWork, NodeWorkPool
from dicom_node.process.pipeline import process_acquisition
from dicom_node.synthetic.modules import PatientIdentity
from monitor.settings import load_settings


@pytest.mark.slow
def test_pool_assembly_and_emission_match_the_inline_ones(tmp_path: Path) -> None:
    files, labels = small_study(tmp_path / "in", PatientIdentity())
    (assembled,) = assemble_study(files).acquisitions

    def processed(folder: str, node_work):
        config = tmp_path / f"{folder}.toml"
        config.write_text(
            f'[storage]\ndata_dir = "{tmp_path / folder}"\n[recon]\ntv_iterations = 5\n'
            f"{segmentation_config(labels)}"
        )
        return process_acquisition(assembled, load_settings(config), node_work=node_work)

    here = processed("here", InlineNodeWork())
    with NodeWorkPool(1) as pool:
        (pool_assembled,) = pool.assemble(files).acquisitions
        pooled = processed("pool", pool)

    assert pool_assembled.idempotency_key == assembled.idempotency_key
    np.testing.assert_array_equal(
        pool_assembled.acquisition.phase_rad, assembled.acquisition.phase_rad
    )

    assert here.error is None and pooled.error is None
    assert set(pooled.outputs) == set(here.outputs)
    assert {"sr", "report_page", "fhir_bundle", "key_image_segmentation"} <= set(pooled.outputs)
    assert pooled.qc["emit"] == here.qc["emit"]
    for name in ("sr", "report_page", "key_image_segmentation"):
        path = Path(pooled.outputs[name])
        assert str(path).startswith(str(tmp_path / "pool")) and path.is_file()
        assert dcmread(path).SOPClassUID == dcmread(here.outputs[name]).SOPClassUID


def test_pool_needs_a_process() -> None:
    with pytest.raises(ValueError, match="at least one process"):
        NodeWorkPool(0)
