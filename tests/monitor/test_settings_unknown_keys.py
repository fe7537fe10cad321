"""A misspelt setting is an error naming the key and the nearest valid one, wherever it is:
inside a section, in a list of tables, or in an environment override."""

from __future__ import annotations

import re

import pytest

from monitor.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[node]\nallowed_calling_aes = ["SCANNER"]\n',
            "unknown setting node.allowed_calling_aes; did you mean node.allowed_calling_ae?",
        ),
        (
            "[risk]\nreliable_change_factr = 2.0\n",
            "unknown setting risk.reliable_change_factr; did you mean risk.reliable_change_factor?",
        ),
        (
            '[[destinations]]\nname = "f"\nkind = "folder"\npath = "/tmp"\nhots = "pacs"\n',
            "unknown setting destinations.0.hots; did you mean destinations.0.host?",
        ),
        ("[nodes]\nport = 104\n", "unknown setting nodes; did you mean node?"),
        ("[node.tls]\ncert_fil = 'x'\n", "unknown setting node.tls.cert_fil"),
        # `type` for `kind`: the typo is named, not the "missing" key it leaves behind
        ('[[destinations]]\ntype = "dicom"\n', "unknown setting destinations.0.type"),
    ],
)
def test_unknown_keys_in_the_file_are_errors(tmp_path, toml, message):
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(toml, encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_settings(config)

    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "QSM_MONITOR_NODE__PORTT",
            "unknown setting node.portt (environment variable QSM_MONITOR_NODE__PORTT); "
            "did you mean node.port?",
        ),
        (
            "QSM_MONITOR_NOD__PORT",
            "unknown setting in environment variable QSM_MONITOR_NOD__PORT; did you mean node?",
        ),
    ],
)
def test_unknown_keys_in_environment_overrides_are_errors(monkeypatch, variable, message):
    monkeypatch.setenv(variable, "11113")

    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        load_settings()


def test_a_bad_value_from_the_environment_names_its_variable(monkeypatch):
    monkeypatch.setenv("QSM_MONITOR_NODE__PORT", "abc")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert str(raised.value).startswith(
        "invalid configuration value node.port (environment variable QSM_MONITOR_NODE__PORT): "
    )


def test_known_keys_still_load(tmp_path, monkeypatch):
    config = tmp_path / "qsm-monitor.toml"
    config.write_text('[node]\nallowed_calling_ae = ["SCANNER"]\n', encoding="utf-8")
    monkeypatch.setenv("QSM_MONITOR_NODE__PORT", "11113")

    settings = load_settings(config)

    assert settings.node.allowed_calling_ae == ["SCANNER"] and settings.node.port == 11113
