"""Who a visit belongs to: exact matching after a configured normalisation, never guessing.

A Patient ID is only unique within its issuer, so identity is the (identifier, issuer) pair.
The same pair with a different birth date or sex is not merged and not split off either: the
visit is held for review, because both a typing error and a recycled ID are possible and only
a person can tell them apart. A value missing on one side is not a contradiction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from monitor.settings import TrackingSettings


@dataclass(frozen=True)
class PatientKey:
    identifier: str
    issuer: str


@dataclass(frozen=True)
class Demographics:
    birth_date: date | None
    sex: str | None
    """"F", "M", "O" or None when the header had no usable value."""


def normalise_key(patient_id: str, issuer: str, settings: TrackingSettings) -> PatientKey:
    """The configured rule applied to both parts; an empty issuer takes the site default."""

    def rule(value: str) -> str:
        if settings.identifier_rule == "exact":
            return value
        value = value.strip()
        return value.upper() if settings.identifier_rule == "strip_upper" else value

    return PatientKey(rule(patient_id), rule(issuer) or rule(settings.default_issuer))


def missing_identity(key: PatientKey, settings: TrackingSettings) -> str | None:
    """Why this key cannot identify anyone, or None."""
    if not key.identifier:
        return "the study has no Patient ID"
    if settings.issuer_required and not key.issuer:
        return "the study has no Issuer of Patient ID and the site requires one"
    return None


def conflicts(known: Demographics, seen: Demographics) -> list[str]:
    """Contradictions between a patient's recorded demographics and a new visit's (no values:
    the reasons end up in reports, which must not repeat identifying data)."""
    found = []
    if known.birth_date and seen.birth_date and known.birth_date != seen.birth_date:
        found.append("birth date")
    if known.sex and seen.sex and known.sex != seen.sex:
        found.append("sex")
    return found


def parse_birth_date(value: str) -> date | None:
    """DICOM DA (YYYYMMDD); None when absent or malformed."""
    try:
        return datetime.strptime(value.strip(), "%Y%m%d").date()
    except ValueError:
        return None


def parse_sex(value: str) -> str | None:
    value = value.strip().upper()
    return value if value in {"F", "M", "O"} else None


def parse_study_datetime(study_date: str, study_time: str) -> datetime | None:
    """DICOM DA + TM (fractional seconds and missing parts allowed); None without a date."""
    try:
        day = datetime.strptime(study_date.strip(), "%Y%m%d")
    except ValueError:
        return None
    digits = study_time.strip().split(".")[0].replace(":", "")
    if not digits.isdigit():
        return day
    digits = digits.ljust(6, "0")[:6]
    try:
        return day.replace(hour=int(digits[:2]), minute=int(digits[2:4]), second=int(digits[4:]))
    except ValueError:
        return day


def age_years(birth: date | None, when: datetime | None) -> float | None:
    """Age at the visit in years (365.25-day years); None when either date is unknown."""
    if birth is None or when is None:
        return None
    age = (when.date() - birth).days / 365.25
    return round(age, 2) if age >= 0 else None
