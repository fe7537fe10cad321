"""`AssembledAcquisition.reference_paths`: the sources every derived object copies."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from pydicom import dcmread
from support.node_acquisitions import small_acquisition

from dicom_node.assemble.study import assemble_study
from dicom_node.geometry import geometry_from_affine
from dicom_node.synthetic.series import write_acquisition_series


def test_reference_paths_are_first_echo_magnitude_in_slice_order(tmp_path: Path) -> None:
    acq = small_acquisition()
    paths = write_acquisition_series(acq, tmp_path, "ge")  # magnitude and phase in one series
    random.Random(5).shuffle(paths)
    assembled = assemble_study(paths).acquisitions[0]
    headers = [dcmread(p, stop_before_pixels=True) for p in assembled.reference_paths]
    assert len(headers) == acq.shape[2]
    assert {float(h.EchoTime) for h in headers} == {acq.te_s[0] * 1000.0}
    assert {h.ImageType[2] for h in headers} == {"MAGNITUDE"}
    geometry = geometry_from_affine(assembled.acquisition.affine_ras)
    for z, header in enumerate(headers):
        np.testing.assert_allclose(
            [float(v) for v in header.ImagePositionPatient], geometry.position_lps(z), atol=1e-4
        )
