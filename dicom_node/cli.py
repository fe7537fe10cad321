"""`qsm-monitor` entry point: composes the domain commands with the service commands."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from monitor import __version__
from monitor.cli import INPUT_ERROR_EXIT_CODE
from monitor.cli import app as domain_app
from monitor.settings import ConfigError, Settings, load_settings

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


ConfigOption = Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(INPUT_ERROR_EXIT_CODE) from None


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run the DICOM node: listener, processing workers and deliveries, until SIGTERM/SIGINT."""
    from dicom_node.logging_utils import configure_logging
    from dicom_node.service import Service

    settings = _settings(config)
    configure_logging()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        Service(settings).run(stop)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot start the service: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def process(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (searched deeply).")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Process DICOM studies now, through the same pipeline the service uses."""
    from dicom_node.batch import process_paths

    settings = _settings(config)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: not found: {', '.join(missing)}", err=True)
        raise typer.Exit(INPUT_ERROR_EXIT_CODE)
    records = process_paths(paths, settings, progress=lambda stage: typer.echo(stage, err=True))
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    else:
        for record in records:
            outcome = record.get("error") or ", ".join(record["outputs"].values())
            typer.echo(f"{record['study_uid']}: {outcome}")
    if any(record.get("error") for record in records):
        raise typer.Exit(1)


@app.command()
def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Listener health (C-ECHO), queue counts and recent jobs; exit 1 when not healthy."""
    from dicom_node.status import service_status

    report: dict[str, Any] = service_status(_settings(config))
    listener = report["listener"]
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        typer.echo(
            f"listener: {'running' if listener['running'] else 'stopped'}, "
            f"echo: {listener['echo']}"
        )
        typer.echo(f"jobs: {report['job_counts']}")
        typer.echo(f"deliveries: {report['delivery_counts']}")
        for job in report["jobs"]:
            typer.echo(f"  job {job['id']} {job['state']} {job['error'] or ''}".rstrip())
    if not listener["healthy"]:
        raise typer.Exit(1)


def main() -> None:
    app()
