"""Patient history tables: patients, visits, acquisitions, measurements, assessments.

They have their own metadata, separate from the node's queue tables, because their schema is
owned by Alembic migrations (`monitor/tracking/migrations`): a hospital's history must survive
upgrades, whereas the queue tables are created as needed. Every change to these classes needs
a new migration.

One patient is one (identifier, issuer) pair after normalisation. A visit is one DICOM study;
it belongs to its patient's history only when its identity is "confirmed"; a visit whose birth
date or sex contradicts the patient's is kept "needs_review" and never enters the trend,
until a person decides (`monitor.tracking.review`): "same_person" confirms it, "different_person"
keeps it "separated" (another person sharing the Patient ID) and out of the trend for good.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

CONFIRMED = "confirmed"
NEEDS_REVIEW = "needs_review"
SEPARATED = "separated"
SAME_PERSON = "same_person"
DIFFERENT_PERSON = "different_person"

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so later migrations can alter them on SQLite (batch mode needs names)."""


class TrackingBase(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class Patient(TrackingBase):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("identifier", "issuer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(String(64))
    """Patient ID after the configured normalisation."""
    issuer: Mapped[str] = mapped_column(String(64), default="")
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(1))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    visits: Mapped[list[Visit]] = relationship(back_populates="patient")


class Visit(TrackingBase):
    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_datetime: Mapped[datetime | None] = mapped_column(DateTime)
    """Scanner-local date and time of the study; None when the header had no date."""
    age_years: Mapped[float | None] = mapped_column(Float)
    birth_date: Mapped[date | None] = mapped_column(Date)
    """As this visit's header gave it (may contradict the patient's: then needs review)."""
    sex: Mapped[str | None] = mapped_column(String(1))
    identity_status: Mapped[str] = mapped_column(String(16))
    identity_reason: Mapped[str | None] = mapped_column(Text)
    identity_review: Mapped[str | None] = mapped_column(String(16))
    """A person's decision (SAME_PERSON or DIFFERENT_PERSON); it outlasts re-processing."""
    identity_reviewer: Mapped[str | None] = mapped_column(String(64))
    identity_reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    patient: Mapped[Patient] = relationship(back_populates="visits")
    acquisitions: Mapped[list[Acquisition]] = relationship(back_populates="visit")


class Acquisition(TrackingBase):
    """One processed QSM acquisition with the protocol fingerprint that decides comparability."""

    __tablename__ = "acquisitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    series_uids: Mapped[list[str]] = mapped_column(JSON)
    field_strength_t: Mapped[float] = mapped_column(Float)
    echo_times_ms: Mapped[list[float]] = mapped_column(JSON)
    voxel_mm: Mapped[list[float]] = mapped_column(JSON)
    vendor: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(64), default="")
    pipeline_version: Mapped[str] = mapped_column(String(32))
    pipeline_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    reference_region: Mapped[str] = mapped_column(String(16))
    input_paths: Mapped[list[str]] = mapped_column(JSON)
    """The DICOM files it was processed from: re-processing works while they are retained."""
    reportable: Mapped[bool] = mapped_column(Boolean)
    qc_reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime] = mapped_column(DateTime)
    visit: Mapped[Visit] = relationship(back_populates="acquisitions")
    measurements: Mapped[list[Measurement]] = relationship(
        back_populates="acquisition", cascade="all, delete-orphan"
    )
    assessment: Mapped[Assessment | None] = relationship(
        back_populates="acquisition", cascade="all, delete-orphan"
    )


class Measurement(TrackingBase):
    """Statistics of one structure and side ("left", "right", "bilateral"), in ppb."""

    __tablename__ = "measurements"
    __table_args__ = (UniqueConstraint("acquisition_id", "structure", "side"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    acquisition_id: Mapped[int] = mapped_column(ForeignKey("acquisitions.id"), index=True)
    structure: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(16))
    mean_ppb: Mapped[float | None] = mapped_column(Float)
    median_ppb: Mapped[float | None] = mapped_column(Float)
    sd_ppb: Mapped[float | None] = mapped_column(Float)
    volume_ml: Mapped[float | None] = mapped_column(Float)
    voxel_count: Mapped[int | None] = mapped_column(Integer)
    acquisition: Mapped[Acquisition] = relationship(back_populates="measurements")


class Assessment(TrackingBase):
    """The latest assessment of an acquisition; rewritten when history around it changes."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    acquisition_id: Mapped[int] = mapped_column(ForeignKey("acquisitions.id"), unique=True)
    risk_level: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    comparable: Mapped[bool] = mapped_column(Boolean)
    not_comparable_reason: Mapped[str | None] = mapped_column(Text)
    previous_study_uid: Mapped[str | None] = mapped_column(String(64))
    baseline_study_uid: Mapped[str | None] = mapped_column(String(64))
    structures: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The record's structures block: values, norms scores and changes (record_schema.md)."""
    norms: Mapped[dict[str, Any]] = mapped_column(JSON)
    assessed_at: Mapped[datetime] = mapped_column(DateTime)
    acquisition: Mapped[Acquisition] = relationship(back_populates="assessment")
