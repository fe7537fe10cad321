"""Readers for the files under deploy/, shared by the deploy tests (no Docker needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
EXAMPLE_CONFIG = DEPLOY / "qsm-monitor.example.toml"
COMPOSE_CONFIG = DEPLOY / "qsm-monitor.toml"
ORTHANC_CONFIG = DEPLOY / "orthanc" / "orthanc.json"
SYSTEMD_UNIT = DEPLOY / "systemd" / "qsm-monitor.service"


def dockerfile_instructions(path: Path = DEPLOY / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def dockerfile_values(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array instruction argument (ENTRYPOINT, VOLUME) as a list."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return [str(v) for v in value]


def healthcheck_command() -> str:
    """The shell command after HEALTHCHECK's options and CMD."""
    (healthcheck,) = dockerfile_values("HEALTHCHECK")
    _, _, command = healthcheck.partition(" CMD ")
    assert command, f"HEALTHCHECK without CMD: {healthcheck}"
    return command


def entrypoint_config_path() -> Path:
    """The --config path of the image's `qsm-monitor serve` entry point."""
    (entrypoint,) = dockerfile_values("ENTRYPOINT")
    argv = exec_form(entrypoint)
    return Path(argv[argv.index("--config") + 1])


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def orthanc_config() -> dict[str, Any]:
    return json.loads(ORTHANC_CONFIG.read_text())


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host source of a compose service's short-syntax volume entries."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def unit_settings(path: Path = SYSTEMD_UNIT) -> dict[str, list[str]]:
    """systemd unit as key -> every value given (keys may repeat; sections are not needed)."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings
