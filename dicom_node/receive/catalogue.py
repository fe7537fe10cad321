"""The catalogue of received instances and their series, in the node database.

Assembly needs to group instances and pick echoes without opening every file again, so the
few header fields it sorts on are copied here when the instance is stored. Series rows carry
the bookkeeping for completion (arrival times, counts) and the hand-over state.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydicom import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dicom_node.db import Base

T = TypeVar("T")


class SeriesState(enum.StrEnum):
    RECEIVING = "receiving"
    COMPLETE = "complete"
    """Stable or fully counted; announced to the service for assembly."""
    ASSEMBLED = "assembled"
    STUCK = "stuck"
    """The service could not take it over after several attempts; `status` lists it as
    unhealthy, and a newly arriving instance of the series tries again."""


class Series(Base):
    __tablename__ = "series"

    series_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    first_received_at: Mapped[datetime] = mapped_column(DateTime)
    last_received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    expected_count: Mapped[int | None] = mapped_column(Integer, default=None)
    """Trusted only while every instance so far announced the same total and none arrived
    beyond it; otherwise None for good (completion then waits for stability)."""
    state: Mapped[str] = mapped_column(String(16), default=SeriesState.RECEIVING, index=True)


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_uid: Mapped[str] = mapped_column(ForeignKey("series.series_uid"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    sop_class: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    received_at: Mapped[datetime] = mapped_column(DateTime)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[int | None] = mapped_column(Integer)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    echo_number: Mapped[int | None] = mapped_column(Integer)
    echo_time_ms: Mapped[float | None] = mapped_column(Float)
    image_type: Mapped[str | None] = mapped_column(String(256))
    """Values joined by a backslash, as in the file (e.g. ``ORIGINAL\\PRIMARY\\P\\ND``)."""
    number_of_frames: Mapped[int | None] = mapped_column(Integer)


@dataclass(frozen=True)
class InstanceHeader:
    """What the catalogue keeps of one instance; built once from the received dataset."""

    sop_uid: str
    sop_class: str
    study_uid: str
    series_uid: str
    modality: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    echo_number: int | None = None
    echo_time_ms: float | None = None
    image_type: str | None = None
    number_of_frames: int | None = None
    images_in_acquisition: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset, sop_uid: str, sop_class: str) -> InstanceHeader:
        """Read the header fields; malformed optional values become None, not errors.

        Raises ValueError if the study or series UID is missing (nothing to file it under).
        """
        study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
        series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
        if not study_uid or not series_uid:
            raise ValueError("instance has no Study or Series Instance UID")
        image_type = _optional(ds, "ImageType", lambda v: "\\".join(str(x) for x in v))
        return cls(
            sop_uid=sop_uid,
            sop_class=sop_class,
            study_uid=study_uid,
            series_uid=series_uid,
            modality=_optional(ds, "Modality", str),
            series_number=_optional(ds, "SeriesNumber", int),
            instance_number=_optional(ds, "InstanceNumber", int),
            echo_number=_optional(ds, "EchoNumbers", _first_int),
            echo_time_ms=_optional(ds, "EchoTime", float),
            image_type=image_type,
            number_of_frames=_optional(ds, "NumberOfFrames", int),
            images_in_acquisition=_optional(ds, "ImagesInAcquisition", int),
        )

    @property
    def announced_total(self) -> int | None:
        """Instances this series should hold, if the header says so believably.

        Multi-frame objects pack a variable number of frames per instance, so their count
        cannot be predicted; and a total that this instance's number does not fit in (some
        vendors count slices of one echo only) is wrong for the series.
        """
        total, number = self.images_in_acquisition, self.instance_number
        if (self.number_of_frames or 1) > 1 or total is None or number is None:
            return None
        return total if 1 <= number <= total else None


def _first_int(value: Any) -> int:
    """EchoNumbers is multi-valued in principle; the first value identifies the echo."""
    return int(value[0] if isinstance(value, MultiValue) else value)


def _optional(ds: Dataset, keyword: str, convert: Callable[[Any], T]) -> T | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else convert(value)
    except (ValueError, TypeError, IndexError):
        return None


def has_instance(session: Session, sop_uid: str) -> bool:
    return session.scalar(select(Instance.id).where(Instance.sop_uid == sop_uid)) is not None


def record_instance(session: Session, header: InstanceHeader, path: str, now: datetime) -> None:
    """Add the instance row and update its series (caller commits).

    A late instance reopens a series that was already complete or assembled, so the series is
    announced again once stable (assembly jobs are idempotent per content).
    Raises sqlalchemy IntegrityError if the SOP Instance UID is already catalogued.
    """
    series = session.get(Series, header.series_uid)
    if series is None:
        series = Series(
            series_uid=header.series_uid,
            study_uid=header.study_uid,
            first_received_at=now,
            last_received_at=now,
            instance_count=0,
            expected_count=header.announced_total,
            state=SeriesState.RECEIVING,
        )
        session.add(series)
        # The row must exist before the instance refers to it: without a relationship the
        # unit of work may insert the instance first, which PostgreSQL's foreign key refuses
        # (SQLite does not enforce it).
        session.flush()
    elif series.expected_count != header.announced_total:
        series.expected_count = None
    series.instance_count += 1
    if series.expected_count is not None and series.instance_count > series.expected_count:
        series.expected_count = None
    series.last_received_at = now
    series.state = SeriesState.RECEIVING
    session.add(
        Instance(
            sop_uid=header.sop_uid,
            series_uid=header.series_uid,
            study_uid=header.study_uid,
            sop_class=header.sop_class,
            path=path,
            received_at=now,
            modality=header.modality,
            series_number=header.series_number,
            instance_number=header.instance_number,
            echo_number=header.echo_number,
            echo_time_ms=header.echo_time_ms,
            image_type=header.image_type,
            number_of_frames=header.number_of_frames,
        )
    )
    session.flush()


def series_instances(session: Session, series_uid: str) -> list[Instance]:
    """The catalogued instances of a series, in instance-number order (for assembly)."""
    query = (
        select(Instance)
        .where(Instance.series_uid == series_uid)
        .order_by(Instance.instance_number, Instance.id)
    )
    return list(session.scalars(query))


def mark_assembled(session: Session, series_uid: str) -> None:
    """Record that the service has handed this series to assembly (caller commits)."""
    series = session.get(Series, series_uid)
    if series is None:
        raise KeyError(f"series not in catalogue: {series_uid}")
    series.state = SeriesState.ASSEMBLED
