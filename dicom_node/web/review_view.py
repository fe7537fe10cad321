"""What a reviewer sees of one held visit: values beside the previous visit, QC, images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from dicom_node.queue.results import Result
from dicom_node.release.reviews import Review
from monitor.record import ProcessingRecord, region_words
from monitor.segment.structures import SIDES, STRUCTURES

IMAGE_OUTPUTS = ("key_image_segmentation_png", "trend_plot_png")


@dataclass(frozen=True)
class ValueRow:
    structure: str
    side: str
    mean_ppb: float | None
    previous_ppb: float | None
    change_ppb: float | None
    z: float | None
    interpretation: str | None
    reliable_change: bool | None


@dataclass(frozen=True)
class ReviewView:
    review: Review
    record: ProcessingRecord | None
    rows: list[ValueRow]
    withheld: dict[str, str]
    images: list[str]
    reference: str


def review_view(sessions: sessionmaker, review: Review) -> ReviewView:
    with sessions() as session:
        result = session.scalar(select(Result).where(Result.idempotency_key == review.source_key))
    record = None if result is None else result.processing_record()
    rows = [] if record is None else _rows(record)
    withheld = {} if record is None else record.qc.segmentation_withheld
    images = [name for name in IMAGE_OUTPUTS if Path(review.outputs.get(name, "")).is_file()]
    reference = region_words(str(record.reference_name or "whole_brain")) if record else ""
    return ReviewView(review, record, rows, withheld, images, reference)


def _rows(record: ProcessingRecord) -> list[ValueRow]:
    rows = []
    for structure in STRUCTURES:
        for side in (*SIDES, "bilateral"):
            values = record.structures.values(structure, side)
            if values is None or values.mean_ppb is None:
                continue
            shown = values.rounded()
            previous = (
                None
                if values.change_ppb is None or values.mean_ppb is None
                else round(values.mean_ppb - values.change_ppb, 1)
            )
            rows.append(
                ValueRow(
                    structure=structure.replace("_", " "),
                    side=side,
                    mean_ppb=shown.mean_ppb,
                    previous_ppb=previous,
                    change_ppb=shown.change_ppb,
                    z=shown.z,
                    interpretation=shown.interpretation,
                    reliable_change=shown.reliable_change,
                )
            )
    return rows
