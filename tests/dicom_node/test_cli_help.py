"""Help and usage errors read as plain text: a flag is shown as a flag (never ``--json
<bool>``, as if it took a value), and a mistyped option is one ``Error:`` line, not a box."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from dicom_node.cli import app
from monitor.cli import INPUT_ERROR_EXIT_CODE


def _command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command below `group` (Typer's Click group)."""
    paths = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        paths.append((*prefix, name))
        if hasattr(command, "commands"):  # a sub-group
            paths += _command_paths(command, (*prefix, name))
    return paths


def test_every_help_shows_flags_as_flags() -> None:
    commands = _command_paths(typer.main.get_command(app))
    assert len(commands) > 20  # every command and sub-command, not a few
    for path in commands:
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        assert "╭" not in result.output, path


def test_a_mistyped_option_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["process", ".", "--jsn"])
    assert result.exit_code == INPUT_ERROR_EXIT_CODE
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: No such option: --jsn (Possible options: --json)"]
    assert "╭" not in result.output
