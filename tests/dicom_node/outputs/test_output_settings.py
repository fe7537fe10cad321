"""Destination configuration: each kind states what it needs and what it may receive."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dicom_node.outputs.emit import FILE_NAMES
from dicom_node.outputs.qsm_map import OUTPUT_NAMES as QSM_MAP_OUTPUTS
from monitor.settings import (
    DEFAULT_OUTPUTS,
    DICOM_OUTPUTS,
    OUTPUT_NAMES,
    ConfigError,
    load_settings,
)


def destination(**fields: object) -> list[dict[str, object]]:
    return [{"name": "d", **fields}]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "dicom", "host": "h", "port": 104}, "needs ae_title"),
        ({"kind": "fhir"}, "needs base_url"),
        ({"kind": "folder"}, "needs path"),
        ({"kind": "webhook"}, "needs url"),
        ({"kind": "email", "url": "x"}, "Input should be"),
        ({"kind": "webhook", "url": "x", "outputs": ["sr"]}, "cannot take ['sr']"),
        (
            {"kind": "dicom", "host": "h", "port": 1, "ae_title": "A", "outputs": ["alert"]},
            "cannot take ['alert']",
        ),  # fmt: skip
        ({"kind": "fhir", "base_url": "x", "auth": {"token_url": "t"}}, "SMART auth needs"),
        (
            {
                "kind": "webhook",
                "url": "x",
                "auth": {"token_url": "t", "client_id": "c", "private_key_file": "k"},
            },
            "SMART auth is for fhir",
        ),  # fmt: skip
    ],
)
def test_incomplete_or_wrong_destinations_are_refused(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match="destinations.0") as error:
        load_settings(None, destinations=destination(**fields))
    assert message in str(error.value)


def test_destination_names_are_unique() -> None:
    twice = [{"name": "a", "kind": "folder", "path": "x"}] * 2
    with pytest.raises(ConfigError, match="destination names must be unique"):
        load_settings(None, destinations=twice)


def test_routing_defaults_per_kind_and_explicit_override(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        """
[[destinations]]
name = "ehr"
kind = "fhir"
base_url = "https://fhir.example.org/r4"
auth = { bearer_token = "abc" }

[[destinations]]
name = "drop"
kind = "folder"
path = "/srv/drop"
outputs = ["sr", "trend_plot_png"]
"""
    )
    ehr, drop = load_settings(config).destinations
    assert ehr.routed_outputs == {"fhir_bundle"} == set(DEFAULT_OUTPUTS["fhir"])
    assert ehr.auth.bearer_token is not None
    assert "abc" not in repr(ehr)  # secrets never printed with the settings
    assert drop.routed_outputs == {"sr", "trend_plot_png"}


def test_the_documented_example_configuration_loads(tmp_path: Path) -> None:
    docs = (Path(__file__).parents[3] / "docs" / "node-service.md").read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", docs, flags=re.DOTALL)
    config = tmp_path / "example.toml"
    config.write_text(example)
    settings = load_settings(config)
    kinds = {d.name: d.kind for d in settings.destinations}
    assert kinds == {"pacs": "dicom", "ehr": "fhir", "engine": "folder", "alerts": "webhook"}
    assert settings.destinations[1].auth.smart


def test_destinations_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = [{"name": "alerts", "kind": "webhook", "url": "https://a.example.org",
             "auth": {"bearer_token": "t0ken"}}]  # fmt: skip
    monkeypatch.setenv("QSM_MONITOR_DESTINATIONS", json.dumps(hook))
    (destination,) = load_settings(None).destinations
    assert destination.auth.bearer_token is not None
    assert destination.auth.bearer_token.get_secret_value() == "t0ken"


def test_every_emitted_output_name_can_be_routed() -> None:
    """Routing validates names against `OUTPUT_NAMES`; an output the emit step makes under
    another name could never be configured for a destination."""
    emitted = set(FILE_NAMES) | {"chi_ppm", "mask", "qc"}  # + monitor.nifti.writer's
    assert emitted == OUTPUT_NAMES
    assert set(QSM_MAP_OUTPUTS.values()) <= set(DICOM_OUTPUTS)
