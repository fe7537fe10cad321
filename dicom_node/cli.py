"""`qsm-monitor` entry point: composes the domain commands with the service commands."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from monitor import __version__
from monitor.cli import (
    INPUT_ERROR_EXIT_CODE,
    NOT_REPORTABLE_EXIT_CODE,
    command_group,
    error_line,
    exit_code_for,
    identity_app,
    load_existing_data_or_exit,
    load_settings_or_exit,
    load_writable_settings_or_exit,
    missing_data_problem,
    reported_errors,
)
from monitor.cli import app as domain_app
from monitor.errors import MonitorError
from monitor.settings import Settings

app = command_group(
    "qsm-monitor: longitudinal brain-iron (QSM) monitoring. Research use until validated."
)
for command in domain_app.registered_commands:
    app.registered_commands.append(command)
app.registered_groups.extend(domain_app.registered_groups)


@app.callback()
def _root() -> None:
    """Keep `qsm-monitor` a command group even while it has one command."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


ConfigOption = Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force", help="Let a result with nothing reportable replace a visit's earlier values."
    ),
]


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run the DICOM node: listener, processing workers and deliveries, until SIGTERM/SIGINT."""
    from dicom_node.logs import configure_logging
    from dicom_node.service.serve import Service

    settings = load_writable_settings_or_exit(config)
    configure_logging()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    console = None
    try:
        if settings.web.enabled:
            from dicom_node.web import ConsoleServer

            console = ConsoleServer(settings)
            console.start()
            typer.echo(f"web console on {console.url}", err=True)
        Service(settings).run(stop, announce=lambda line: typer.echo(line, err=True))
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot start the service: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        if console is not None:
            console.stop()


users_app = command_group("Web console accounts (docs/web-console.md).")
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[
        str, typer.Option("--role", help="viewer (reads), reviewer (also decides), admin (all).")
    ],
    config: ConfigOption = None,
) -> None:
    """Add a console account; the password is read from standard input (asked twice on a
    terminal), never from the command line where other users could see it."""
    from dicom_node.db import configured_engine
    from dicom_node.web import AccountError, add_user, console_sessions

    settings = load_writable_settings_or_exit(config)
    password = _read_new_password()
    engine = configured_engine(settings.storage)
    try:
        add_user(console_sessions(engine), name, role, password)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(INPUT_ERROR_EXIT_CODE) from None
    finally:
        engine.dispose()
    typer.echo(f"user {name.strip()} added ({role})")


@users_app.command("list")
def users_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Console accounts and their roles (never their password hashes)."""
    from dicom_node.db import configured_engine
    from dicom_node.web import console_sessions, list_users

    settings = load_existing_data_or_exit(config)
    engine = configured_engine(settings.storage)
    try:
        users = [{"name": u.name, "role": u.role} for u in list_users(console_sessions(engine))]
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(users))
        return
    for user in users:
        typer.echo(f"{user['name']}\t{user['role']}")
    if not users:
        typer.echo("no console accounts yet: qsm-monitor users add NAME --role admin")


def _read_new_password() -> str:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            typer.echo("error: the passwords differ", err=True)
            raise typer.Exit(INPUT_ERROR_EXIT_CODE)
        return first
    return sys.stdin.readline().rstrip("\r\n")


@app.command()
def process(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (searched deeply).")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
    segmentation: Annotated[
        Path | None,
        typer.Option(help="External labels: label NIfTI or DICOM SEG on the same frame."),
    ] = None,
    force: ForceOption = False,
) -> None:
    """Process DICOM studies now, through the same pipeline the service uses."""
    from dicom_node.process.batch import collect_files, found_no_acquisition, process_paths
    from dicom_node.process.summary import is_reportable, record_summary

    _exit_if_missing([*paths, *([segmentation] if segmentation else [])])
    files = collect_files(paths)  # walked once: process_paths takes the files as they are
    if not files:
        typer.echo(f"error: no files in {', '.join(str(p) for p in paths)}", err=True)
        raise typer.Exit(INPUT_ERROR_EXIT_CODE)
    settings = load_writable_settings_or_exit(config)
    if force:
        settings = settings.with_forced_replacement()
    if segmentation is not None:
        settings = settings.with_external_segmentation(segmentation)
        _check_segmentation_file(segmentation, settings)
    records = process_paths(files, settings, progress=lambda stage: typer.echo(stage, err=True))
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    else:
        for record in records:
            typer.echo("\n".join(record_summary(record)))
    if found_no_acquisition(records):
        raise typer.Exit(INPUT_ERROR_EXIT_CODE)  # the files hold nothing to process
    if any(record.get("error") for record in records):
        raise typer.Exit(1)
    if any(not is_reportable(record) for record in records):
        raise typer.Exit(NOT_REPORTABLE_EXIT_CODE)


def _exit_if_missing(paths: list[Path]) -> None:
    """One line and exit 2 for paths that do not exist, before the data folder is touched
    (a mistyped path must not leave an empty history behind)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: not found: {', '.join(missing)}", err=True)
        raise typer.Exit(INPUT_ERROR_EXIT_CODE)


def _check_segmentation_file(segmentation: Path, settings: Settings) -> None:
    """Refuse an unusable `--segmentation` before any reconstruction: a label NIfTI must be
    readable and follow the label scheme; anything else must be a DICOM SEG."""
    from dicom_node.assemble.seg_input import is_label_nifti, is_segmentation
    from monitor.segment.external import read_nifti_labels

    if is_label_nifti(segmentation):
        with reported_errors():
            read_nifti_labels(segmentation, settings.segmentation)
    elif not is_segmentation(segmentation):
        typer.echo(
            f"error: {segmentation} is neither a label NIfTI (.nii, .nii.gz) nor a DICOM SEG",
            err=True,
        )
        raise typer.Exit(INPUT_ERROR_EXIT_CODE)


@app.command()
def reprocess(
    patient_id: Annotated[str, typer.Argument(help="Patient ID as sent by the scanner.")],
    issuer: Annotated[str, typer.Option("--issuer", help="Issuer of Patient ID.")] = "",
    config: ConfigOption = None,
    as_json: JsonOption = False,
    force: ForceOption = False,
) -> None:
    """Re-run a patient's visits with the current pipeline from their retained DICOM files."""
    from dicom_node.process.reprocess import reprocess_patient
    from dicom_node.process.summary import is_reportable, record_summary

    load_existing_data_or_exit(config)  # nothing to re-run without a history: never create one
    settings = load_writable_settings_or_exit(config)
    if force:
        settings = settings.with_forced_replacement()
    with reported_errors():
        records = reprocess_patient(
            settings, patient_id, issuer, progress=lambda stage: typer.echo(stage, err=True)
        )
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    else:
        for record in records:
            typer.echo("\n".join(record_summary(record)))
    if any(record.get("error") for record in records):
        raise typer.Exit(1)
    if any(not is_reportable(record) for record in records):
        raise typer.Exit(NOT_REPORTABLE_EXIT_CODE)


@app.command()
def backfill(
    paths: Annotated[list[Path], typer.Argument(help="Archive folders of DICOM (searched deeply)")],
    config: ConfigOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue: process only what has no result yet.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Process an archive through the configured engine, oldest visits first per patient."""
    from dicom_node.process.backfill import backfill as run_backfill

    _exit_if_missing(paths)
    settings = load_writable_settings_or_exit(config)
    with reported_errors():
        summary = run_backfill(paths, settings, resume, lambda line: typer.echo(line, err=True))
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
    else:
        typer.echo(
            f"{summary.processed} processed, {summary.failed} failed, "
            f"{summary.already_done} already done, {summary.found} found "
            f"({summary.set_aside} set aside) in {summary.seconds:.1f} s"
        )
    if summary.found == 0:
        typer.echo("error: no multi-echo GRE acquisition found in the given paths", err=True)
        raise typer.Exit(1)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Listener health (C-ECHO), queue counts and recent jobs; exit 1 when not healthy."""
    from dicom_node.service.status import service_status

    settings = load_settings_or_exit(config)
    problem = missing_data_problem(settings, config)
    if problem:  # nothing to inspect, and a health check must not create a data folder
        typer.echo(
            json.dumps({"healthy": False, "problems": [problem]})
            if as_json
            else f"not healthy: {problem}"
        )
        raise typer.Exit(1)
    report: dict[str, Any] = service_status(settings)
    listener = report["listener"]
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        typer.echo(
            f"listener: {'running' if listener['running'] else 'stopped'}, echo: {listener['echo']}"
        )
        for problem in report["problems"]:
            typer.echo(f"  not healthy: {problem}")
        typer.echo(f"compute: {_compute_line(report['compute'])}")
        typer.echo(f"jobs: {report['job_counts']}")
        typer.echo(f"deliveries: {report['delivery_counts']}")
        for name, destination in report["destinations"].items():
            line = f"  {name} ({destination['kind']}): {destination['counts']}"
            if destination["last_error"]:
                line += f"; last error: {destination['last_error']}"
            if destination["next_attempt_at"]:
                line += f"; next attempt {destination['next_attempt_at']}"
            typer.echo(line)
        for job in report["jobs"]:
            typer.echo(f"  job {job['id']} {job['state']} {job['error'] or ''}".rstrip())
        if report["dead_letters"]:
            typer.echo("dead letters (qsm-monitor resend STUDY_UID delivers them again):")
        for dead in report["dead_letters"]:
            typer.echo(
                f"  {dead['study_uid']} {dead['output']} -> {dead['destination']} "
                f"after {dead['attempts']} attempts: {dead['error']}"
            )
        if report["not_processed_series"]:
            typer.echo("series received but not processed (latest reason):")
        for series in report["not_processed_series"]:
            typer.echo(
                f"  {series['series_uid']} (study {series['study_uid']}) at "
                f"{series['noted_at']}: {series['reason']}"
            )
        typer.echo(f"prior fetches: {report['prior_fetch_counts']}")
        for fetch in report["prior_fetch_problems"]:
            typer.echo(
                f"  fetch {fetch['id']} {fetch['state']} (study {fetch['study_uid'] or '-'}) "
                f"after {fetch['attempts']} attempts, next {fetch['next_attempt_at']}: "
                f"{fetch['error']}"
            )
    if not report["healthy"]:
        raise typer.Exit(1)


def _compute_line(compute: dict[str, Any]) -> str:
    """One line: the engine, and for Ray its nodes, CPUs/GPUs and tasks in flight."""
    if "error" in compute:
        return f"{compute['engine']} (unreachable: {compute['error']})"
    if compute["engine"] != "ray":
        return f"local ({compute['cpus']} CPUs), {compute['tasks_in_flight']} jobs running"
    return (
        f"ray at {compute['address']}: {compute['nodes']} nodes, "
        f"{compute['cpus']:g} CPUs ({compute['cpus_in_use']:g} busy), "
        f"{compute['gpus']:g} GPUs ({compute['gpus_in_use']:g} busy), "
        f"{compute['tasks_in_flight']} jobs running"
    )


@app.command()
def resend(
    study_uid: Annotated[str, typer.Argument(help="Study Instance UID whose results to resend.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a study's outputs for delivery again (delivered and dead-lettered alike).

    Receivers get no duplicates: the same SOP Instance UIDs, FHIR conditional creates and
    file names. A running service delivers them; otherwise they wait for the next `serve`.
    """
    from dicom_node.db import open_node_db
    from dicom_node.deliver.outbox import Outbox
    from dicom_node.release import ReleaseGate, ReviewError

    settings = load_existing_data_or_exit(config)
    with open_node_db(settings) as sessions:
        try:
            queued = ReleaseGate(sessions, settings, Outbox(sessions, settings)).resend(study_uid)
        except ReviewError as exc:
            typer.echo(f"error: not sent: {exc}", err=True)
            raise typer.Exit(1) from None
    if queued == 0:
        typer.echo("error: no deliveries for this study (no result, or no destination)", err=True)
        raise typer.Exit(1)
    typer.echo(
        json.dumps({"study_uid": study_uid, "queued": queued})
        if as_json
        else f"{queued} deliveries queued"
    )


@app.command()
def demo(
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Keep all data and outputs in this new folder.")
    ] = None,
    visits: Annotated[
        int, typer.Option("--visits", min=1, max=6, help="Yearly visits of the simulated patient.")
    ] = 3,
) -> None:
    """Simulate a patient and a control, send them by DICOM to a real local node, show results."""
    from rich.console import Console

    from dicom_node.demo.scenario import print_outcome, run_demo

    console = Console()
    with reported_errors():
        outcome = run_demo(visits, keep, Console(stderr=True, log_path=False))
    print_outcome(outcome, console)
    for problem in outcome.failed:
        typer.echo(f"failed: {problem}", err=True)
    if outcome.failed:
        raise typer.Exit(1)


priors_app = command_group(
    "Prior exams: fetch a patient's earlier studies from the [priors] source PACS."
)
app.add_typer(priors_app, name="priors")


@priors_app.command("fetch")
def priors_fetch(
    patient_id: Annotated[str, typer.Argument(help="Patient ID as the PACS holds it.")],
    issuer: Annotated[str, typer.Option("--issuer", help="Issuer of Patient ID.")] = "",
    since: Annotated[
        int | None,
        typer.Option("--since", min=1900, max=9999, help="Earliest study year (YYYY)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be retrieved; retrieve nothing.")
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Query the PACS for the patient's earlier multi-echo GRE series and retrieve those the
    node does not have. With C-MOVE they arrive at the listener, so `serve` must be running;
    with C-GET they are spooled here and a running (or the next) `serve` takes them in."""
    from dicom_node.db import open_node_db
    from dicom_node.logs import configure_logging
    from dicom_node.priors.fetch import default_since, plan_fetch, run_fetch
    from dicom_node.priors.query import PriorQuery

    settings = load_settings_or_exit(config)
    configure_logging()
    first = f"{since:04d}0101" if since is not None else default_since(settings)
    query = PriorQuery(patient_id.strip(), issuer.strip(), first)
    with reported_errors(), open_node_db(settings) as sessions:
        plan = plan_fetch(settings, sessions, query)
        wanted = [
            {
                "study_date": series.study_date,
                "study_uid": series.study_uid,
                "series_uid": series.series_uid,
                "instances": series.instances,
            }
            for series in plan.wanted
        ]
        found = {"wanted": wanted, "known_studies": plan.known_studies, "dry_run": dry_run}
        for series in [] if as_json else wanted:
            count = "?" if series["instances"] is None else series["instances"]
            typer.echo(
                f"{series['study_date'] or '-'} study {series['study_uid']} "
                f"series {series['series_uid']} ({count} instances)"
            )
        summary = (
            f"{len(plan.wanted)} series in {len(plan.study_uids)} studies; "
            f"{plan.known_studies} matching studies already known"
        )
        if dry_run:
            typer.echo(json.dumps(found) if as_json else f"dry run: would retrieve {summary}")
            return
        outcome = run_fetch(settings, sessions, plan)
    retrieved = outcome.completed + outcome.warnings
    typer.echo(
        json.dumps({**found, "retrieved_instances": retrieved})
        if as_json
        else f"retrieved {retrieved} instances: {summary}"
    )


def main() -> None:
    """The console script: an error of ours from any command is one line and an exit code
    (commands that catch their own errors earlier keep their messages)."""
    try:
        app()
    except MonitorError as exc:
        typer.echo(error_line(exc), err=True)
        sys.exit(exit_code_for(exc))


@identity_app.command("resolve")
def identity_resolve(
    study_uid: Annotated[str, typer.Argument(help="Study Instance UID of the held visit.")],
    decision: Annotated[
        str,
        typer.Option(
            "--decision", help="same_person (a typing error) or different_person (another patient)."
        ),
    ],
    reviewer: Annotated[str, typer.Option("--by", help="Who decided (kept with the visit).")],
    update_patient: Annotated[
        bool,
        typer.Option(
            "--update-patient",
            help="same_person only: the visit's birth date/sex are right, the patient's were not.",
        ),
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Settle a held visit; the patient's assessments are recomputed and amended reports of
    visits already sent are queued for the service to deliver."""
    from dicom_node.process.identity import settle_identity

    settings = load_settings_or_exit(config)
    with reported_errors():
        outcome = settle_identity(settings, study_uid, decision, reviewer, update_patient)
    item = outcome.item
    if as_json:
        decided = {"study_uid": item.study_uid, "status": item.status, "reviewer": item.reviewer}
        typer.echo(
            json.dumps(
                {
                    **decided,
                    "reassessed": outcome.reassessed,
                    "amendments_queued": outcome.amendments_queued,
                }
            )
        )
        return
    typer.echo(f"visit {item.study_uid}: {item.status} (decided by {item.reviewer})")
    if outcome.reassessed:
        typer.echo(
            f"re-assessed {outcome.reassessed} visit(s) of this patient; "
            f"{outcome.amendments_queued} amended report(s) queued for delivery by the service"
        )
