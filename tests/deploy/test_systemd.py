"""deploy/systemd/qsm-monitor.service: hardened, consistent with the example configuration, and
accepted by systemd's own verifier (systemd-analyze works without a running systemd)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.deploy_files import EXAMPLE_CONFIG, SYSTEMD_UNIT, unit_settings

from monitor.settings import load_settings

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 2.0
"""systemd-analyze security score (0 = fully confined, 10 = unprotected); ours is about 1.5."""


def _single(settings: dict[str, list[str]], key: str) -> str:
    (value,) = settings[key]
    return value


def test_unit_runs_serve_unprivileged_on_the_example_config() -> None:
    unit = unit_settings()
    argv = shlex.split(_single(unit, "ExecStart"))
    assert Path(argv[0]).name == "qsm-monitor" and argv[1:3] == ["serve", "--config"]
    data_dir = load_settings(EXAMPLE_CONFIG).storage.data_dir
    assert _single(unit, "ReadWritePaths") == str(data_dir)
    assert _single(unit, "StateDirectory") == data_dir.name
    assert _single(unit, "User") not in {"", "root", "0"}
    assert _single(unit, "ProtectSystem") == "strict"
    assert _single(unit, "NoNewPrivileges") == "yes"
    assert _single(unit, "Restart") == "on-failure"
    assert _single(unit, "KillSignal") == "SIGTERM"
    assert "MemoryDenyWriteExecute" not in unit, "JAX compiles code at run time"


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit_and_rates_it_confined(tmp_path: Path) -> None:
    """Verified with the executable pointed at this environment's qsm-monitor."""
    installed = Path(sys.executable).parent / "qsm-monitor"
    argv0 = shlex.split(_single(unit_settings(), "ExecStart"))[0]
    unit = tmp_path / SYSTEMD_UNIT.name
    unit.write_text(SYSTEMD_UNIT.read_text().replace(argv0, str(installed)))
    verify = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) < MAX_EXPOSURE
