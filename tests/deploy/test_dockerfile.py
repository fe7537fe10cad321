"""deploy/Dockerfile: what it copies exists, its commands are real, its health check works.

No image is built here (no Docker daemon); the HEALTHCHECK command line itself is run against
a real listener with the configuration the image ships.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support.deploy_files import (
    DEPLOY,
    EXAMPLE_CONFIG,
    REPO,
    dockerfile_instructions,
    dockerfile_values,
    entrypoint_config_path,
    exec_form,
    healthcheck_command,
)
from support.node_helpers import free_port

from dicom_node.receive.listener import Listener
from dicom_node.service.status import write_state
from monitor.settings import load_settings

VENV_BIN = str(Path(sys.executable).parent)


def _copy_sources() -> list[str]:
    """Sources of COPY instructions that come from the build context (not another stage)."""
    sources = []
    for arguments in dockerfile_values("COPY"):
        if arguments.startswith("--from="):
            continue
        *copied, _destination = arguments.split()
        sources.extend(copied)
    return sources


def test_copied_paths_exist_and_the_shipped_config_is_the_example() -> None:
    sources = _copy_sources()
    assert {"pyproject.toml", "monitor", "dicom_node"} <= set(sources)
    kept = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for source in sources:
        assert (REPO / source).exists(), f"COPY source missing: {source}"
        assert source in kept, f"COPY source excluded from the build context: {source}"
    shipped = [a for a in dockerfile_values("COPY") if a.endswith(str(entrypoint_config_path()))]
    assert shipped == [f"{EXAMPLE_CONFIG.relative_to(REPO)} {entrypoint_config_path()}"]


def test_copied_sources_build_a_package_with_every_tracked_file(tmp_path: Path) -> None:
    """The build stage's COPY set is enough: setuptools (build_py, the step pip's wheel build
    runs) finds every package module and data file from those sources alone."""
    context = tmp_path / "context"
    context.mkdir()
    for source in _copy_sources():
        target = context / source
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, target)
    built = tmp_path / "lib"
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py"]
        + ["--build-lib", str(built)],
        cwd=context,
        check=True,
        capture_output=True,
    )
    setuptools_config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in setuptools_config["packages"]["find"]["include"]]
    assert set(packages) <= set(_copy_sources()), "a package the Dockerfile does not copy"
    tracked = subprocess.run(
        ["git", "ls-files", *packages], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(name.endswith(".json") for name in tracked)
    missing = [name for name in tracked if not (built / name).is_file()]
    assert missing == [], f"not installed from the image's sources: {missing}"


def test_image_runs_as_non_root_with_data_volume_and_dicom_port() -> None:
    example = load_settings(EXAMPLE_CONFIG)
    (user,) = dockerfile_values("USER")
    assert user not in {"root", "0"}
    (volume,) = dockerfile_values("VOLUME")
    assert exec_form(volume) == [str(example.storage.data_dir)]
    assert dockerfile_values("EXPOSE") == [str(example.node.port)]
    keywords = [name for name, _ in dockerfile_instructions()]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_gpu_variant_uses_the_gpu_extra() -> None:
    assert "EXTRAS" in " ".join(dockerfile_values("ARG"))
    install = next(r for r in dockerfile_values("RUN") if "pip install" in r)
    assert "${EXTRAS:+[${EXTRAS}]}" in install
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'gpu = ["jax[cuda12]' in pyproject


@pytest.mark.parametrize("command", ["entrypoint", "healthcheck"])
def test_commands_are_real_cli_commands(command: str) -> None:
    if command == "entrypoint":
        (entrypoint,) = dockerfile_values("ENTRYPOINT")
        argv = exec_form(entrypoint)
    else:
        argv = shlex.split(healthcheck_command().split(">")[0])
    assert argv[:2] in (["qsm-monitor", "serve"], ["qsm-monitor", "status"])
    assert argv[2:] == ["--config", str(entrypoint_config_path())]
    result = subprocess.run(
        [f"{VENV_BIN}/qsm-monitor", argv[1], "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "--config" in result.stdout


def _run_healthcheck(env: dict[str, str]) -> int:
    """The Dockerfile's HEALTHCHECK line, verbatim except for where the config file lies."""
    command = healthcheck_command().replace(str(entrypoint_config_path()), str(EXAMPLE_CONFIG))
    path = f"{VENV_BIN}:{os.environ['PATH']}"
    return subprocess.run(["/bin/sh", "-c", command], env={**env, "PATH": path}).returncode


@pytest.mark.slow
def test_healthcheck_command_reports_healthy_and_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = {
        "QSM_MONITOR_NODE__HOST": "127.0.0.1",
        "QSM_MONITOR_NODE__PORT": str(free_port()),
        "QSM_MONITOR_STORAGE__DATA_DIR": str(tmp_path / "data"),
    }
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(EXAMPLE_CONFIG)
    assert str(settings.storage.data_dir) == overrides["QSM_MONITOR_STORAGE__DATA_DIR"]
    with Listener(settings):
        write_state(settings, workers=[])
        healthy = _run_healthcheck(overrides)
    stopped = _run_healthcheck(overrides)
    broken = _run_healthcheck({**overrides, "QSM_MONITOR_NODE__PORT": "not-a-port"})
    assert (healthy, stopped, broken) == (0, 1, 1)
