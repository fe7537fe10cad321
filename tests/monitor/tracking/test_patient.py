"""`qsm-monitor patient`: timeline (table and JSON) and the trend plot with the normative band."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.tracking_helpers import shifted, visit
from typer.testing import CliRunner

from dicom_node.cli import app
from monitor.db import configured_engine
from monitor.norms import default_model
from monitor.settings import load_settings
from monitor.tracking.history import record_visit
from monitor.tracking.plot import TrendPoint, write_trend_plot
from monitor.tracking.schema import history_sessions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A data directory whose history holds three visits of P-1, one held for review."""
    path = tmp_path / "qsm-monitor.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    settings = load_settings(path)
    sessions = history_sessions(configured_engine(settings.storage))
    record_visit(sessions, visit("20240301"), settings)
    record_visit(sessions, visit("20250301", shifted(thalamus=-12.0)), settings)
    record_visit(sessions, visit("20250601", birth_date="19810101"), settings)
    return path


def test_json_timeline_lists_every_visit_in_order(config: Path) -> None:
    result = CliRunner().invoke(app, ["patient", "P-1", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.stdout)
    entries = timeline["entries"]
    assert [e["study_datetime"][:10] for e in entries] == ["2024-03-01", "2025-03-01", "2025-06-01"]
    assert [e["identity_status"] for e in entries] == ["confirmed", "confirmed", "needs_review"]
    assert entries[1]["structures"]["thalamus"]["change_ppb"] == pytest.approx(-12.0)
    assert entries[1]["risk_level"] == "elevated"
    assert entries[0]["inputs_retained"] is False  # the helper's input paths do not exist


def test_table_and_plot(config: Path, tmp_path: Path) -> None:
    plot = tmp_path / "trend.png"
    result = CliRunner().invoke(
        app, ["patient", " P-1 ", "--config", str(config), "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    assert "-12.0*" in result.stdout  # thalamus change, reliable
    assert "identity review" in result.stdout
    assert plot.read_bytes()[:8] == PNG_SIGNATURE


def test_unknown_patient_exits_with_a_message(config: Path) -> None:
    result = CliRunner().invoke(app, ["patient", "NOBODY", "--config", str(config)])
    assert result.exit_code == 1
    assert "no visits" in result.stderr


def test_trend_plot_draws_band_and_points(tmp_path: Path) -> None:
    """The band changes the picture: the same points without norms give a different image."""
    points = [
        TrendPoint(datetime(2024 + i, 3, 1), 44.0 + i, 95.0 + 12.0 * i, comparable=i != 1)
        for i in range(3)
    ]
    with_band = write_trend_plot(tmp_path / "a.png", {"globus_pallidus": points}, default_model())
    without = write_trend_plot(tmp_path / "b.png", {"globus_pallidus": points}, None)
    assert with_band.read_bytes()[:8] == PNG_SIGNATURE
    assert with_band.read_bytes() != without.read_bytes()
    assert not list(tmp_path.glob(".trend-*"))  # no partial files left
    with pytest.raises(ValueError, match="nothing to plot"):
        write_trend_plot(tmp_path / "c.png", {}, None)


def test_trend_plot_rings_reliable_changes_and_names_withheld_structures(tmp_path: Path) -> None:
    def points(changed: bool, value: float | None = 90.0) -> list[TrendPoint]:
        return [
            TrendPoint(
                datetime(2024 + i, 3, 1),
                44.0 + i,
                None if value is None else value + i,
                reliable_change=changed and i == 2,
            )
            for i in range(3)
        ]

    plain = write_trend_plot(tmp_path / "a.png", {"putamen": points(False)}, default_model())
    ringed = write_trend_plot(tmp_path / "b.png", {"putamen": points(True)}, default_model())
    assert plain.read_bytes() != ringed.read_bytes()
    # A structure withheld at every visit gets a panel that says so (it used to be empty axes).
    series = {"putamen": points(False), "thalamus": points(False, value=None)}
    withheld = np.asarray(Image.open(write_trend_plot(tmp_path / "c.png", series, None)))
    thalamus = withheld[:, : withheld.shape[1] // 2, :3].astype(float)  # report order: first
    assert (thalamus.std(axis=-1) < 1).all()  # grey text and frame only: no coloured points
    assert thalamus.min() < 150  # but not blank: the frame and the "no value" text
    putamen = withheld[:, withheld.shape[1] // 2 :, :3].astype(float)
    assert (putamen.std(axis=-1) > 20).any()  # the coloured points are there


def test_a_visit_with_nothing_reportable_shows_why(tmp_path: Path) -> None:
    """Not just "indeterminate": the segmentation QC reason, in the table's notes and JSON."""
    path = tmp_path / "qsm-monitor.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    settings = load_settings(path)
    sessions = history_sessions(configured_engine(settings.storage))
    reason = "every structure withheld; thalamus_left withheld: volume 40.00 ml"
    record_visit(sessions, visit("20240301", structures={}, qc_failure=reason), settings)

    table = CliRunner().invoke(app, ["patient", "P-1", "--config", str(path)])
    as_json = CliRunner().invoke(app, ["patient", "P-1", "--config", str(path), "--json"])

    assert table.exit_code == 0, table.output
    assert f"2024-03-01: not reportable: {reason}" in " ".join(table.stdout.split())
    assert json.loads(as_json.stdout)["entries"][0]["qc_reason"] == reason


def test_the_table_fits_80_columns_without_cutting_anything(config: Path) -> None:
    import io

    from rich.console import Console

    from monitor.tracking.schema import open_history
    from monitor.tracking.table import timeline_table
    from monitor.tracking.timeline import load_timeline

    settings = load_settings(config)
    with open_history(settings) as sessions:
        timeline = load_timeline(sessions, "P-1", settings)
    buffer = io.StringIO()
    Console(file=buffer, width=80).print(timeline_table(timeline))
    text = buffer.getvalue()
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("2025-06-01", "thalamus", "pallidum", "-12.0*", "elevated"):
        assert word in text, word
