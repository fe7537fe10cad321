"""Data folder edges, through the installed console script as a user runs it: read-only
commands never create a data folder and say where they looked; an unusable data folder is one
plain error line and a non-zero exit for every command, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QSM_MONITOR = Path(sys.executable).with_name("qsm-monitor")

READ_ONLY = (
    ["status"],
    ["patient", "P1"],
    ["identity", "list"],
    ["cohort", "export", "--out", "cohort.csv"],
)
WRITING = (
    ["process", "."],
    ["reprocess", "P1"],
    ["backfill", "."],
)


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(QSM_MONITOR), *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:2]))
def test_read_only_commands_never_create_the_data_folder(args: list[str], tmp_path: Path) -> None:
    result = _run(args, tmp_path)
    assert result.returncode == 1, result.stderr
    assert not (tmp_path / "qsm-monitor-data").exists()
    said = result.stdout + result.stderr  # status reports it as its health problem
    assert "no qsm-monitor data in" in said
    assert "default settings (no --config)" in said
    assert "Traceback" not in result.stderr


def test_the_message_names_environment_overrides(tmp_path: Path) -> None:
    """A `QSM_MONITOR_...` left in a shell explains a surprising folder, so it is named."""
    result = _run(["status"], tmp_path, QSM_MONITOR_STORAGE__DATA_DIR=str(tmp_path / "elsewhere"))
    assert result.returncode == 1, result.stderr
    assert f"no qsm-monitor data in {tmp_path / 'elsewhere'}" in result.stdout
    assert "overridden by environment QSM_MONITOR_STORAGE__DATA_DIR" in result.stdout


@pytest.mark.parametrize("args", READ_ONLY + WRITING, ids=lambda a: " ".join(a[:2]))
def test_an_unusable_data_folder_is_one_line_for_every_command(
    args: list[str], tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("a file, so `process .` gets as far as the data folder")
    result = _run(args, tmp_path, QSM_MONITOR_STORAGE__DATA_DIR="/proc/nope")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    said = (result.stdout + result.stderr).splitlines()
    errors = [line for line in said if line.startswith(("error:", "not healthy:"))]
    assert len(errors) == 1, result.stderr
    assert "/proc/nope" in errors[0]
