"""`qsm-monitor` entry point: composes the domain commands with the service commands."""

from __future__ import annotations

import typer

from monitor import __version__
from monitor.cli import app as domain_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="qsm-monitor: longitudinal brain-iron (QSM) monitoring. Research use until validated.",
)
for command in domain_app.registered_commands:
    app.registered_commands.append(command)


@app.callback()
def _root() -> None:
    """Keep `qsm-monitor` a command group even while it has one command."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
