"""The shipped configurations load, say what they claim, and agree with each other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from support.deploy_files import COMPOSE_CONFIG, EXAMPLE_CONFIG, orthanc_config

from monitor.settings import Settings, load_settings

SITE_VALUES = {("node", "host"): "0.0.0.0", ("storage", "data_dir"): Path("/var/lib/qsm-monitor")}
"""The only values in the example that differ from the built-in defaults (marked SITE there)."""


def _differences(loaded: Any, default: Any, where: tuple[str, ...] = ()) -> dict[tuple, Any]:
    if isinstance(loaded, dict):
        found: dict[tuple, Any] = {}
        for key in loaded:
            found |= _differences(loaded[key], default[key], (*where, key))
        return found
    return {} if loaded == default else {where: loaded}


def test_example_states_the_defaults_except_site_values() -> None:
    example = load_settings(EXAMPLE_CONFIG)
    differences = _differences(example.model_dump(), Settings().model_dump())
    assert differences == SITE_VALUES
    assert example.destinations == []


def test_example_has_every_settings_section() -> None:
    tables = set(re.findall(r"(?m)^#?\[\[?([a-z_]+)", EXAMPLE_CONFIG.read_text()))
    missing = sorted(set(Settings.model_fields) - tables)
    assert missing == [], f"add these sections to {EXAMPLE_CONFIG.name}: {missing}"


def test_example_snippets_enable_one_destination_of_each_kind(tmp_path: Path) -> None:
    """Lines where '#' directly precedes a setting are promised to work once uncommented."""
    enabled = re.sub(r"(?m)^#(?=[\[a-z])", "", EXAMPLE_CONFIG.read_text())
    assert enabled != EXAMPLE_CONFIG.read_text()
    (tmp_path / "enabled.toml").write_text(enabled)
    settings = load_settings(tmp_path / "enabled.toml")
    assert sorted(d.kind for d in settings.destinations) == ["dicom", "fhir", "folder", "webhook"]
    (ehr,) = (d for d in settings.destinations if d.kind == "fhir")
    assert ehr.auth.bearer_token is not None and ehr.routed_outputs == {"fhir_bundle"}
    assert settings.node.tls.cert_file is not None and not settings.node.tls.enabled
    assert settings.storage.database_url.startswith("postgresql")


def test_compose_config_talks_to_the_compose_orthanc_and_hapi() -> None:
    settings = load_settings(COMPOSE_CONFIG)
    orthanc = orthanc_config()
    route = orthanc["DicomModalities"][orthanc["QsmMonitorRouting"]["Modality"]]
    assert (route["AET"], route["Port"]) == (settings.node.ae_title, settings.node.port)
    assert settings.node.host == "0.0.0.0"
    assert orthanc["DicomAet"] in settings.node.allowed_calling_ae
    destinations = {d.name: d for d in settings.destinations}
    pacs, ehr = destinations["pacs"], destinations["ehr"]
    assert pacs.kind == "dicom" and (pacs.host, pacs.port, pacs.ae_title) == (
        "orthanc",
        orthanc["DicomPort"],
        orthanc["DicomAet"],
    )
    assert {"sr", "qsm_parametric_map", "qsm_mr_series"} <= pacs.routed_outputs
    assert ehr.kind == "fhir" and ehr.base_url == "http://hapi:8080/fhir"
    assert ehr.routed_outputs == {"fhir_bundle"}
