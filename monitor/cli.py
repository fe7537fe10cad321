"""Domain commands of the command line (`recon`); the application entry point is dicom_node.cli."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from monitor import __version__
from monitor.cli_options import ReconCommand
from monitor.errors import MonitorError
from monitor.nifti.reader import LoadedInput, NiftiInputError, load_acquisition
from monitor.nifti.writer import ensure_writable_folder, write_result
from monitor.settings import ENV_PREFIX, Settings, load_settings
from monitor.types import QSMResult

if TYPE_CHECKING:
    from monitor.norms import NormativeModel


def command_group(help_text: str | None = None) -> typer.Typer:
    """A command group as every qsm-monitor group is built: help when called bare, no shell
    completion installer, and plain help and error text. Typer's rich panels print flags as
    ``--json <bool>`` (as if they took a value) and errors as multi-line boxes; plain Click
    text shows ``--json`` and one ``Error:`` line."""
    return typer.Typer(
        no_args_is_help=True, add_completion=False, rich_markup_mode=None, help=help_text
    )


app = command_group()
norms_app = command_group(
    "Normative model: fit a site model, show one; the site's scan-rescan SD (retest)."
)
app.add_typer(norms_app, name="norms")
identity_app = command_group(
    "Identity review: visits held because their demographics contradict the patient's."
)
app.add_typer(identity_app, name="identity")
cohort_app = command_group("The whole history as one table.")
app.add_typer(cohort_app, name="cohort")
config_app = command_group("Settings: check a file before deploying it.")
app.add_typer(config_app, name="config")

INPUT_ERROR_EXIT_CODE = 2
"""Same code the argument parser uses for a bad command line: the input, not the program."""
NOT_REPORTABLE_EXIT_CODE = 3
"""`process`/`reprocess` ran without error but a study gave no reportable value (segmentation
QC withheld every structure): a script must not mistake that for a result."""


def exit_code_for(exc: MonitorError) -> int:
    """The one mapping from our errors to exit codes, for every command: 2 when the user's
    input is wrong (our `ValueError`s: settings, files, arguments), 1 for anything else."""
    return INPUT_ERROR_EXIT_CODE if isinstance(exc, ValueError) else 1


@contextmanager
def reported_errors() -> Iterator[None]:
    """Any of our errors becomes one line on stderr and its exit code, without a traceback;
    anything else is a bug and keeps its traceback."""
    try:
        yield
    except MonitorError as exc:
        typer.echo(error_line(exc), err=True)
        raise typer.Exit(exit_code_for(exc)) from None


def error_line(exc: MonitorError) -> str:
    """How every command prints one of our errors: one line, prefixed."""
    return "error: " + " ".join(str(exc).split())


def load_writable_settings_or_exit(config: Path | None) -> Settings:
    """Settings for a command that stores results, after checking that the data folder can
    be used, so an unusable folder is one line before any work rather than after it."""
    from monitor.db import database_url

    settings = load_settings_or_exit(config)
    with reported_errors():
        database_url(settings.storage.data_dir, settings.storage.database_url)
    return settings


def missing_data_problem(settings: Settings, config: Path | None) -> str | None:
    """Why a reading command has nothing to read (no database), naming the settings and the
    folder it looked at; None when there is data."""
    from monitor.db import has_data

    if has_data(settings.storage):
        return None
    source = settings_source(config)
    return (
        f"no qsm-monitor data in {settings.storage.data_dir.resolve()} ({source}); pass the "
        "node's --config, or see the folder given to `qsm-monitor demo --keep DIR`"
    )


def settings_source(config: Path | None) -> str:
    """Where the settings came from, for messages: the file, or the defaults, and whether
    environment variables changed them (a `QSM_MONITOR_...` left in a shell explains a
    surprising data folder)."""
    source = f"settings {config}" if config else "default settings (no --config)"
    overridden = sorted(name for name in os.environ if name.upper().startswith(ENV_PREFIX))
    if overridden:
        source += f", overridden by environment {', '.join(overridden)}"
    return source


def load_existing_data_or_exit(config: Path | None) -> Settings:
    """Settings for a command that only reads the history or the queue. It never creates
    the data folder (an empty `./qsm-monitor-data` made by a forgotten `--config` hid where
    the real data was); it says which settings and folder it reads, on stderr."""
    settings = load_settings_or_exit(config)
    problem = missing_data_problem(settings, config)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1)
    storage = settings.storage
    where = storage.database_url.split("@")[-1] if storage.database_url else storage.data_dir
    typer.echo(f"reading {where} ({settings_source(config)})", err=True)
    return settings


def load_settings_or_exit(config: Path | None) -> Settings:
    """The settings, or the configuration error printed and exit code 2 (a bad file is the
    user's input, not a crash)."""
    with reported_errors():
        return load_settings(config)


@app.command(cls=ReconCommand)
def recon(
    mag: Annotated[
        list[Path],
        typer.Option(
            "--mag",
            help="Magnitude NIfTI, one per echo (--mag e1.nii e2.nii or --mag e1.nii --mag "
            "e2.nii), or one 4-D file.",
        ),
    ],
    phase: Annotated[
        list[Path],
        typer.Option("--phase", help="Phase NIfTI (radians or Siemens 12-bit), like --mag."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    te_ms: Annotated[
        list[str] | None,
        typer.Option(
            "--te-ms",
            help="Echo times in ms, in file order (repeat or comma-separate); overrides sidecars.",
        ),
    ] = None,
    b0_tesla: Annotated[
        float | None, typer.Option("--b0-tesla", help="Field strength; overrides sidecars.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the written files as JSON (name -> path).")
    ] = False,
) -> None:
    """Reconstruct a susceptibility map (ppm) from multi-echo GRE NIfTI files (dcm2niix)."""
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    with reported_errors():
        settings = load_settings(config)
        loaded = load_acquisition(
            mag, phase, te_ms=_parse_echo_times(te_ms), b0_tesla=b0_tesla, label="cli"
        )
        ensure_writable_folder(out)
        result = _reconstruct(loaded, settings, console)
        record = {
            "software": "qsm-monitor",
            "version": __version__,
            "input": loaded.summary(),
            "total_seconds": round(time.perf_counter() - started, 3),
        }
        paths = write_result(result, out, record)
    if as_json:
        typer.echo(json.dumps({name: str(path) for name, path in paths.items()}))
    console.print(f"wrote {paths['chi_ppm']}, {paths['mask']}, {paths['qc']}", soft_wrap=True)


def _parse_echo_times(values: list[str] | None) -> list[float] | None:
    """Accept both ``--te-ms 4 --te-ms 8`` and ``--te-ms 4,8``."""
    if not values:
        return None
    items = [item for value in values for item in value.split(",") if item.strip()]
    try:
        return [float(item) for item in items]
    except ValueError:
        raise NiftiInputError(f"--te-ms values must be numbers in ms: {items}") from None


def _reconstruct(loaded: LoadedInput, settings: Settings, console: Console) -> QSMResult:
    """Run the JAX pipeline with the persistent compile cache on, printing stages as they start.

    JAX is imported here, not at module top, so that every other `qsm-monitor` command starts
    without paying for its import.
    """
    from monitor.recon.compile_cache import compilation_cache_dir, enable_compilation_cache
    from monitor.recon.pipeline import reconstruct

    enable_compilation_cache(compilation_cache_dir(settings))
    started = time.perf_counter()

    def progress(stage: str) -> None:
        console.print(f"[{time.perf_counter() - started:7.1f} s] {stage}", markup=False)

    return reconstruct(loaded.acquisition, settings.recon, progress=progress)


@app.command()
def warmup(
    shape: Annotated[
        tuple[int, int, int], typer.Option("--shape", help="Grid in voxels, e.g. 160 192 64.")
    ],
    echoes: Annotated[int, typer.Option("--echoes", min=1, help="Number of echoes.")],
    voxel_mm: Annotated[
        tuple[float, float, float], typer.Option("--voxel-mm", help="Voxel size, e.g. 1 1 2.")
    ],
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
) -> None:
    """Compile the reconstruction for one grid into the compilation cache, ahead of any data."""
    from monitor.recon.compile_cache import compilation_cache_dir, enable_compilation_cache
    from monitor.recon.warmup import warm_up

    settings = load_settings_or_exit(config)
    if min(shape) < 8 or min(voxel_mm) <= 0:
        typer.echo("error: --shape needs at least 8 voxels per axis and --voxel-mm > 0", err=True)
        raise typer.Exit(INPUT_ERROR_EXIT_CODE)
    cache = enable_compilation_cache(compilation_cache_dir(settings))
    seconds = warm_up(shape, echoes, voxel_mm, settings.recon)
    typer.echo(
        f"compiled the reconstruction for {'x'.join(map(str, shape))}x{echoes} "
        f"in {seconds:.1f} s into {cache}"
    )


@norms_app.command("fit")
def norms_fit(
    controls: Annotated[Path, typer.Argument(help="Controls CSV (format: docs/norms.md).")],
    out: Annotated[Path, typer.Option("--out", help="Site model JSON to write.")],
    name: Annotated[str, typer.Option("--name", help="Model name in reports.")] = "site",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap random seed.")] = 0,
) -> None:
    """Fit a site normative model from local controls processed by this pipeline."""
    from monitor.norms import save_model
    from monitor.norms.controls_csv import read_controls_csv
    from monitor.norms.fit import fit_site_model

    console = Console(highlight=False)
    with reported_errors():
        report = fit_site_model(
            read_controls_csv(controls), name=name, n_bootstrap=bootstrap, seed=seed
        )
    save_model(report.model, out)
    _print_model(report.model, console)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    console.print(f"wrote {out}; set [norms] model_path to use it", soft_wrap=True, markup=False)


@norms_app.command("show")
def norms_show(
    model: Annotated[
        Path | None, typer.Option("--model", help="Model JSON; default: the configured one.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The model file's JSON.")] = False,
) -> None:
    """Print a normative model: expected values by age, parameters and their intervals."""
    from monitor.norms import load_model

    with reported_errors():
        path = model if model is not None else load_settings(config).norms.model_path
        loaded = load_model(path)
    if as_json:
        typer.echo(json.dumps(loaded.to_json(), indent=2))
        return
    _print_model(loaded, Console(highlight=False))


@norms_app.command("retest")
def norms_retest(
    scans: Annotated[Path, typer.Argument(help="Repeat-scan CSV (format: docs/norms.md).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
) -> None:
    """Site scan-rescan SD per structure from repeat scans, with 95 % intervals, and the
    settings lines (risk section) that make the change rules use it."""
    import json
    from dataclasses import asdict

    from monitor.norms.retest import MIN_DF, estimate_retest_sd, read_retest_csv, settings_lines

    with reported_errors():
        settings = load_settings(config)
        estimates = estimate_retest_sd(read_retest_csv(scans))
    lines = settings_lines(estimates, settings.risk.retest_sd_ppb, settings.risk.side_retest_sd_ppb)
    if as_json:
        payload = {"estimates": [asdict(e) for e in estimates], "settings": lines}
        typer.echo(json.dumps(payload, indent=2))
    else:
        for e in estimates:
            typer.echo(
                f"{e.structure} {e.side}: SD {e.sd_ppb:.2f} ppb (95 % CI {e.ci_ppb[0]:.2f}-"
                f"{e.ci_ppb[1]:.2f}), {e.n_subjects} subjects, {e.n_scans} scans, df {e.df}"
            )
        typer.echo(
            "\n".join(
                [
                    "",
                    "in the settings file, these replace the keys of the same name in its "
                    "[risk] section (add the section if it has none):",
                    *lines,
                ]
            )
        )
    for e in estimates:
        if e.df < MIN_DF:
            typer.echo(
                f"warning: {e.structure} {e.side} has {e.df} degrees of freedom (< {MIN_DF}): "
                "the SD is poorly determined; rescan more people",
                err=True,
            )


def _print_model(model: NormativeModel, console: Console) -> None:
    from monitor.norms.table import band_table, model_lines, parameter_lines

    for line in model_lines(model):
        console.print(line, markup=False, highlight=False)
    console.print("parameters (95 % CI):", markup=False)
    for line in parameter_lines(model):
        console.print(f"  {line}", markup=False)
    bands = band_table(model)
    if bands is not None:
        console.print(bands)


@app.command()
def patient(
    patient_id: Annotated[str, typer.Argument(help="Patient ID as sent by the scanner.")],
    issuer: Annotated[str, typer.Option("--issuer", help="Issuer of Patient ID.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the trend plot (PNG) here.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
) -> None:
    """A patient's visits: values, z-scores, changes and risk, with a trend plot on request."""
    import json

    from monitor.tracking.schema import open_history
    from monitor.tracking.table import timeline_notes, timeline_table
    from monitor.tracking.timeline import load_timeline, write_patient_trend_plot

    settings = load_existing_data_or_exit(config)
    with open_history(settings) as sessions:
        timeline = load_timeline(sessions, patient_id, settings, issuer)
    if timeline is None:
        typer.echo("error: no visits of this patient in the history", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(timeline.as_json(), indent=2))
    else:
        console = Console(highlight=False)
        console.print(timeline_table(timeline))
        for note in timeline_notes(timeline):
            console.print(note, markup=False, soft_wrap=True)
    if plot is not None:
        written = write_patient_trend_plot(plot, settings, patient_id, issuer)
        message = f"wrote {written}" if written else "no measured visit to plot"
        typer.echo(message, err=True)


@app.command()
def assess(
    values: Annotated[Path, typer.Argument(help="Values CSV (format: docs/norms.md).")],
    norms: Annotated[
        Path | None, typer.Option("--norms", help="Normative model JSON; default: configured.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
) -> None:
    """Apply the tracking and risk rules to a table of measurements (no images): z, change,
    trend and risk with reasons for every visit."""
    import json

    from monitor.norms import load_model
    from monitor.tracking.replay import assess_values
    from monitor.tracking.table import assessed_lines
    from monitor.tracking.values_csv import read_values_csv

    with reported_errors():
        settings = load_settings(config)
        model = load_model(norms if norms is not None else settings.norms.model_path)
        assessed = assess_values(read_values_csv(values), model, settings)
    if as_json:
        typer.echo(json.dumps([visit.as_json() for visit in assessed], indent=2))
    else:
        typer.echo("\n".join(assessed_lines(assessed)))


@identity_app.command("list")
def identity_list(
    include_decided: Annotated[
        bool, typer.Option("--all", help="Also list visits already decided.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
) -> None:
    """Visits waiting for a person to decide whose they are (demographics side by side)."""
    import json
    from dataclasses import asdict

    from monitor.tracking.review import review_items
    from monitor.tracking.schema import open_history
    from monitor.tracking.table import review_lines

    settings = load_existing_data_or_exit(config)
    with open_history(settings) as sessions:
        items = review_items(sessions, include_decided)
    if as_json:
        typer.echo(json.dumps([asdict(item) for item in items], indent=2, default=str))
    elif not items:
        typer.echo("no visits waiting for identity review")
    else:
        typer.echo("\n".join(review_lines(items)))
        typer.echo("decide with: qsm-monitor identity resolve STUDY_UID --decision ... --by NAME")


@config_app.command("check")
def config_check(
    config: Annotated[Path, typer.Option("--config", help="Settings TOML file to check.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object: {"valid", "config", "settings"}.')
    ] = False,
) -> None:
    """Print "valid" and the effective settings (file, environment overrides and defaults;
    secrets masked), or the first error in one line with exit code 2."""
    with reported_errors():
        settings = load_settings(config)
    problem = _data_folder_problem(settings.storage.data_dir)
    if problem and not settings.storage.database_url:
        typer.echo(f"warning: {problem} on this machine", err=True)
    effective = settings.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps({"valid": True, "config": str(config), "settings": effective}))
        return
    typer.echo(f"valid: {config}")
    typer.echo(json.dumps(effective, indent=2))


def _data_folder_problem(data_dir: Path) -> str | None:
    """Why `data_dir` could not be created or written here, without creating it: a check of a
    file may run on another machine than the node, so this is a warning, not an error."""
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"data folder {data_dir} cannot be created ({existing} is not a folder)"
    try:  # a real attempt: permission bits say nothing for root or on /proc-like file systems
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".qsm-monitor-check-"))
    except OSError as exc:
        return f"data folder {data_dir} cannot be written ({existing}: {exc.strerror or exc})"
    return None


@cohort_app.command("export")
def cohort_export(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    controls: Annotated[
        bool,
        typer.Option(
            "--controls", help="Each subject's first visit QC released: the `norms fit` form."
        ),
    ] = False,
    pseudonymise: Annotated[
        bool, typer.Option("--pseudonymise", help="Hashed subject IDs; no study UIDs.")
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
) -> None:
    """Every visit, structure and side with QC flags, as CSV for researchers and `norms fit`."""
    from monitor.tracking.export import write_cohort_csv
    from monitor.tracking.schema import open_history

    settings = load_existing_data_or_exit(config)
    with (
        open_history(settings) as sessions,
        sessions() as session,
        out.open("w", newline="", encoding="utf-8") as handle,
    ):
        rows = write_cohort_csv(session, handle, controls=controls, pseudonymise=pseudonymise)
    typer.echo(f"wrote {rows} rows to {out}", err=True)
