"""`qsm-monitor config check`: a file is valid (effective settings shown, secrets masked) or
its first error is one line with exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dicom_node.cli import app

FHIR = """
[node]
port = 11113

[[destinations]]
name = "ehr"
kind = "fhir"
base_url = "http://127.0.0.1:8080/fhir"

[destinations.auth]
bearer_token = "s3cret-token"
"""


def test_a_valid_file_prints_effective_settings_with_secrets_masked(tmp_path):
    config = tmp_path / "qsm-monitor.toml"
    config.write_text(FHIR, encoding="utf-8")

    result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"valid: {config}\n")
    effective = json.loads(result.stdout.split("\n", 1)[1])
    assert effective["node"]["port"] == 11113 and effective["node"]["ae_title"] == "QSMMON"
    assert "s3cret-token" not in result.stdout
    assert effective["destinations"][0]["auth"]["bearer_token"] == "**********"
    as_json = CliRunner().invoke(app, ["config", "check", "--config", str(config), "--json"])
    expected = {"valid": True, "config": str(config), "settings": effective}
    assert json.loads(as_json.stdout) == expected


def test_an_invalid_file_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "qsm-monitor.toml"
    config.write_text("[risk]\nreliable_change_factr = 2\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown setting risk.reliable_change_factr; "
        "did you mean risk.reliable_change_factor?"
    ]


def test_a_data_folder_that_cannot_be_written_here_is_a_warning_and_nothing_is_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    config = tmp_path / "qsm-monitor.toml"
    for data_dir, expected in (
        (blocker / "data", "is not a folder"),
        (tmp_path / "new" / "data", None),
    ):
        config.write_text(f'[storage]\ndata_dir = "{data_dir}"\n', encoding="utf-8")

        result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])

        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"valid: {config}\n")
        if expected is None:
            assert result.stderr == ""
        else:
            assert result.stderr.startswith(f"warning: data folder {data_dir} cannot be created")
            assert expected in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "qsm-monitor.toml"]


def test_unreadable_files_and_non_json_environment_values_are_one_line(tmp_path, monkeypatch):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(128, 256)))
    good = tmp_path / "good.toml"
    good.write_text("[node]\nport = 11113\n", encoding="utf-8")
    cases = [
        (tmp_path, {}, f"error: configuration file {tmp_path} is a folder, not a file"),
        (binary, {}, f"error: configuration file {binary} is not UTF-8 text"),
        (
            good,
            {"QSM_MONITOR_RISK__SIDE_RETEST_SD_PPB": "{thalamus=3.0}"},
            "in an environment variable a list or table must be JSON",
        ),
    ]
    for config, environment, message in cases:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    monkeypatch.setenv("QSM_MONITOR_RISK__SIDE_RETEST_SD_PPB", '{"thalamus": 3.0}')
    result = CliRunner().invoke(app, ["config", "check", "--config", str(good), "--json"])
    assert json.loads(result.stdout)["settings"]["risk"]["side_retest_sd_ppb"] == {"thalamus": 3.0}
