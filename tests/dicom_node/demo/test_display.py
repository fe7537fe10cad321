"""The demo's progress line: each finished stage is logged under the visit it belonged to."""

from __future__ import annotations

import io

from rich.console import Console

from dicom_node.demo.scenario import StageDisplay


def test_finished_stages_are_logged_under_their_own_visit() -> None:
    buffer = io.StringIO()
    display = StageDisplay(Console(file=buffer, log_path=False, log_time=False, width=100))
    display.set_visit("patient 2023")
    display.set_stage("delivering outputs")
    display.set_visit("control 2024")
    display.set_stage("done")
    lines = [line.strip() for line in buffer.getvalue().splitlines() if line.strip()]
    assert [line.rsplit(" (", 1)[0] for line in lines] == [
        "patient 2023: simulating the scan",
        "patient 2023: delivering outputs",
        "control 2024: simulating the scan",
    ]
