"""Rich tables for `qsm-monitor patient` (no patient data in titles: the operator typed the
ID, and terminals get logged) and `qsm-monitor identity list` (which must show demographics:
they are what the reviewer compares with the hospital's records), and the visits of
`qsm-monitor assess`."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table

from monitor.segment.structures import STRUCTURES
from monitor.tracking.replay import AssessedVisit
from monitor.tracking.review import ReviewItem
from monitor.tracking.signed import signed
from monitor.tracking.tables import CONFIRMED, SEPARATED
from monitor.tracking.timeline import PatientTimeline, TimelineEntry

COLUMN_NAMES = {"globus_pallidus": "pallidum"}


def timeline_table(timeline: PatientTimeline) -> Table:
    """One row per visit: date, age, risk, then each structure's value (z; change since the
    previous comparable visit, * when reliable)."""
    table = Table(
        title="Deep grey matter susceptibility (ppb): value (z) change",
        caption="* reliable change. Decision support only, not a diagnosis.",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    # Fits 80 columns without cutting a date, a risk level or a value (issue 17).
    table.add_column("date", no_wrap=True, min_width=10)
    table.add_column("age", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("risk", min_width=len("indeterminate"))
    for name in STRUCTURES:
        table.add_column(COLUMN_NAMES.get(name, name), justify="right", min_width=8)
    for entry in timeline.entries:
        table.add_row(
            _date(entry),
            "-" if entry.age_years is None else f"{entry.age_years:.1f}",
            _status(entry),
            entry.risk_level or "-",
            *(_cell(entry.structures.get(name), "\n") for name in STRUCTURES),
        )
    return table


def timeline_notes(timeline: PatientTimeline) -> list[str]:
    """Why a visit is not reportable, held for review or not comparable: too long for a
    table cell (the table alone said only "indeterminate")."""
    notes = []
    for entry in timeline.entries:
        when = _date(entry)
        if entry.qc_reason:
            notes.append(f"{when}: not reportable: {entry.qc_reason}")
        if entry.identity_status != CONFIRMED:
            notes.append(f"{when}: identity review: {entry.identity_reason}")
        elif entry.comparable is False:
            notes.append(f"{when}: not comparable: {entry.not_comparable_reason}")
    return notes


def review_lines(items: list[ReviewItem]) -> list[str]:
    """Two lines per visit, not a table: the Study Instance UID must stay whole for copying
    into `identity resolve`, and it alone fills most of a terminal line."""
    lines = []
    for item in items:
        when = "-" if item.study_datetime is None else item.study_datetime.date().isoformat()
        issuer = f" (issuer {item.patient_issuer})" if item.patient_issuer else ""
        decided = f", decided by {item.reviewer}" if item.reviewer else ""
        lines.append(item.study_uid)
        lines.append(
            f"  {when}, Patient ID {item.patient_identifier}{issuer}: {item.status}{decided}; "
            f"birth date visit {item.visit_birth_date or '-'} / record "
            f"{item.patient_birth_date or '-'}; sex visit {item.visit_sex or '-'} / record "
            f"{item.patient_sex or '-'}"
        )
    return lines


def assessed_lines(assessed: Sequence[AssessedVisit]) -> list[str]:
    """`qsm-monitor assess`: per visit its risk, each structure's value (z) change since the
    previous comparable visit (* reliable) and slope over the comparable visits, and the
    reasons (they carry the trend test's numbers); the legend first, where a reader starts."""
    lines = ["value (z) change since the previous comparable visit, * reliable change; ppb"]
    for visit in assessed:
        a = visit.assessment
        age = "-" if visit.age_years is None else f"{visit.age_years:.1f}"
        protocol = f", protocol {visit.protocol}" if visit.protocol else ""
        lines.append(
            f"{visit.subject_id} {visit.visit_at.date().isoformat()} (age {age}{protocol}): "
            f"risk {a.risk['level']}"
        )
        for name in STRUCTURES:
            block = a.structures.get(name)
            if block is None:
                continue
            rate = block.get("annual_change_ppb_per_year")
            slope = "" if rate is None else f"; slope {rate:+.1f} ppb/year"
            lines.append(f"  {name.replace('_', ' ')}: {_cell(block)}{slope}")
        lines.extend(f"  - {reason}" for reason in a.risk["reasons"])
    return lines


def _status(entry: TimelineEntry) -> str:
    if entry.identity_status == SEPARATED:
        return "other person"
    if entry.identity_status != CONFIRMED:
        return "review"
    if entry.comparable is False:
        return "not comparable"
    return "ok" if entry.structures else "no values"


def _date(entry: TimelineEntry) -> str:
    return "-" if entry.study_datetime is None else entry.study_datetime.date().isoformat()


def _cell(block: dict | None, separator: str = " ") -> str:
    """Value, (z) and change of one structure; the table puts them on lines of their own so
    its narrow columns fit 80 characters."""
    if not block or block.get("mean_ppb") is None:
        return "-"
    parts = [f"{block['mean_ppb']:.1f}"]
    if block.get("z") is not None:
        parts.append(f"({signed(block['z'])})")
    change = block.get("change_ppb")
    if change is not None:
        parts.append(f"{signed(change)}{'*' if block.get('reliable_change') else ''}")
    return separator.join(parts)
