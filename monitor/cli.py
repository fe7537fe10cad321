"""Domain commands of the command line (`recon`); the application entry point is dicom_node.cli."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)
