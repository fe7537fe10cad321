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


def test_the_visit_table_groups_subjects_and_says_the_z_scores_are_illustrative() -> None:
    from types import SimpleNamespace

    from dicom_node.demo.scenario import ILLUSTRATIVE_Z, visit_table
    from monitor.record import ProcessingRecord

    def visit(subject: str, year: int):  # type: ignore[no-untyped-def]
        record = ProcessingRecord(f"{subject}{year}", "P", "1.2", f"{year}0101")
        label = f"{subject} {year}"
        return SimpleNamespace(subject=subject, label=label, simulated_change_ppb={}), record

    outcome = SimpleNamespace(
        visits=[visit("patient", 2023), visit("control", 2023), visit("patient", 2024)]
    )
    buffer = io.StringIO()
    Console(file=buffer, width=80).print(visit_table(outcome))  # type: ignore[arg-type]
    text = buffer.getvalue()
    order = [text.index(label) for label in ("control 2023", "patient 2023", "patient 2024")]
    assert order == sorted(order)
    assert "illustrative only" in " ".join(text.split()) and "illustrative" in ILLUSTRATIVE_Z
