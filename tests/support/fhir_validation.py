"""Run the independent FHIR validator (tests/support/fhir_validator/validate.mjs) from the tests.

Its npm packages are installed once into a cache outside the repository, keyed by the lock
file's hash, so only the first run on a machine needs the npm registry. When node, npm or the
registry are missing the tests FAIL rather than skip: a skipped validation looks like a passed
one in a CI summary, and FHIR validity is a release requirement (docs/fhir.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

VALIDATOR = Path(__file__).parent / "fhir_validator"
INSTALL_TIMEOUT_S = 300


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qsm-monitor-tests"


def install_validator() -> Path:
    """Directory holding the validator's node_modules; installs them on first use."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} not found: install Node.js and npm (.ci/run does) to validate FHIR"
            )
    digest = hashlib.sha256(
        b"".join((VALIDATOR / name).read_bytes() for name in ("package.json", "package-lock.json"))
    ).hexdigest()[:16]
    target = cache_root() / f"fhir-validator-{digest}"
    if (target / "node_modules").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="fhir-validator-", dir=target.parent))
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(VALIDATOR / name, staging / name)
    failure = _npm_ci(staging) and _npm_ci(staging)  # one retry: registries hiccup
    if failure:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"npm ci for the FHIR validator failed: {failure}")
    try:
        staging.rename(target)  # atomic: a concurrent run either sees all of it or nothing
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another run installed it first
    return target


def _npm_ci(directory: Path) -> str | None:
    """Install the pinned packages; the error text on failure, None on success."""
    try:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"took over {INSTALL_TIMEOUT_S} s"
    return None if done.returncode == 0 else done.stderr.strip()[-800:]


def validate(documents: list[dict[str, Any]], validator_dir: Path) -> dict[str, Any]:
    """Issues the independent validator reports for resources or Bundles (and their entries);
    one node start for all of them, because starting it costs seconds on a busy machine."""
    done = subprocess.run(
        ["node", str(VALIDATOR / "validate.mjs"), str(validator_dir)],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"FHIR validator crashed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)


def problems(result: dict[str, Any]) -> list[str]:
    """Errors and warnings (information-level notes are not problems)."""
    return [
        f"{issue['severity']} {issue['path']}: {issue['message']}"
        for issue in result["issues"]
        if issue["severity"] in ("fatal", "error", "warning")
    ]
