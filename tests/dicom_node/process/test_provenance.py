"""Every reconstruction choice a site can configure is named in the provenance (a missing name
failed every job of a node configured with it)."""

from __future__ import annotations

import itertools
from typing import get_args

from support.node_acquisitions import small_acquisition

from dicom_node.process.pipeline import STEP_NAMES, provenance
from monitor.settings import ReconSettings, load_settings


def _choices(field: str) -> tuple[str, ...]:
    return get_args(ReconSettings.model_fields[field].annotation)


def test_every_configurable_step_is_named_in_the_provenance() -> None:
    acquisition = small_acquisition()
    for unwrap, background, inversion in itertools.product(
        _choices("unwrap"), _choices("background"), _choices("inversion")
    ):
        settings = load_settings(
            None, recon={"unwrap": unwrap, "background": background, "inversion": inversion}
        )
        steps = provenance(acquisition, settings, "whole_brain").steps
        for choice in (unwrap, background, inversion):
            assert STEP_NAMES[choice] in steps
