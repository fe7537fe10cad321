"""The visit's report as one page for PACS viewers: a Secondary Capture image and an
Encapsulated PDF of the same page.

Many PACS viewers show a TID 1500 SR as bare text, if at all; every viewer shows an image and
most archives keep a PDF. The page holds what a reader needs at a glance: the values per
structure and side with their z and change, the trend charts with the normative band, the
risk statement with its reasons, QC and provenance, and the decision-support disclaimer.
Numbers are drawn at their reported precision (`Values.rounded`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import datetime
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.files import write_durably
from dicom_node.outputs.common import (
    check_sources,
    derived_uid,
    equipment,
    producing_version,
    series_number,
)
from monitor.record import ProcessingRecord, region_words
from monitor.segment.structures import SIDES, STRUCTURES
from monitor.settings import Settings
from monitor.tracking.risk import DISCLAIMER

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
PAGE_INCHES = (8.27, 11.69)
"""A4 portrait."""
PNG_DPI = 130
TEXT_TOP, TEXT_BOTTOM = 0.31, 0.045
"""Where the risk and QC text may go: below the trend chart, above the disclaimer footer."""
TEXT_WIDTH = 0.88
"""Text runs from x = 0.06 to the right margin at 0.94 (figure fraction)."""
HEADING_HEIGHT = 0.024
LINE_SPACING = 1.3
CUT_NOTE = "[...] (full text in the SR and the QC record)"
TITLE = "Brain iron (QSM) monitoring report"
PDF_SERIES_DESCRIPTION = "QSM report (PDF)"
INTERPRETATION_WORDS = {"L": "below", "N": "within", "H": "above"}
_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def draw_report_page(record: ProcessingRecord, trend_png: Path | None) -> Figure:
    """The page as a matplotlib figure (drawn once, saved as PNG and PDF)."""
    figure = Figure(figsize=PAGE_INCHES, dpi=PNG_DPI)
    FigureCanvasAgg(figure)
    figure.text(0.06, 0.965, TITLE, fontsize=16, weight="bold")
    figure.text(0.06, 0.945, _identity_line(record), fontsize=9)
    reference = region_words(str(record.reference_name or "whole_brain"))
    figure.text(
        0.06, 0.928,
        f"Mean magnetic susceptibility in ppb against the {reference}; z for age and sex "
        f"against {record.norms.name if record.norms else 'the normative model'}.",
        fontsize=8, color="0.3",
    )  # fmt: skip
    _values_table(figure, record)
    if trend_png is not None and trend_png.is_file():
        charts = figure.add_axes((0.06, 0.33, 0.88, 0.33))
        with Image.open(trend_png) as image:
            charts.imshow(np.asarray(image.convert("RGB")))
        charts.set_axis_off()
    else:
        figure.text(
            0.06, 0.5, "No trend chart: the patient's history has no values yet.", fontsize=9
        )
    _text_blocks(figure, TEXT_TOP, TEXT_BOTTOM, [
        ("Progression risk", _risk_lines(record), 8.5),
        ("Quality control and provenance", _qc_lines(record), 7.0),
    ])  # fmt: skip
    figure.text(0.06, 0.025, "\n".join(textwrap.wrap(DISCLAIMER, 110)), fontsize=8, style="italic")
    figure.text(
        0.94, 0.025, f"qsm-monitor {producing_version(record)}", fontsize=7, ha="right", color="0.4"
    )
    return figure


def write_report_page(
    record: ProcessingRecord, trend_png: Path | None, png_path: Path, pdf_path: Path
) -> None:
    """Both renderings of the page, each written atomically."""
    figure = draw_report_page(record, trend_png)
    png, pdf = BytesIO(), BytesIO()
    figure.savefig(png, format="png", dpi=PNG_DPI, facecolor="white")
    # No creation date in the PDF: a re-run of the same record gives the same bytes.
    figure.savefig(pdf, format="pdf", metadata={"Title": TITLE, "CreationDate": None})
    write_durably(png_path, png.getvalue())
    write_durably(pdf_path, pdf.getvalue())


def build_report_pdf(
    record: ProcessingRecord, sources: Sequence[Dataset], pdf: bytes, *, settings: Settings
) -> Dataset:
    """An Encapsulated PDF object in the study of `sources` (the first-echo magnitude)."""
    check_sources(record, sources)
    if not pdf.startswith(b"%PDF"):
        raise ValueError("the report page is not a PDF")
    now = datetime.now()
    ds = Dataset()
    source = sources[0]
    for keyword in _PATIENT_STUDY:
        if keyword in source:
            setattr(ds, keyword, source.data_element(keyword).value)
    for keyword in (
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
    ):
        if keyword not in ds:
            setattr(ds, keyword, "")  # type 2: present, empty when the source had none
    ds.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 192")
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = derived_uid(record, "report_pdf", "instance")
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = derived_uid(record, "report_pdf", "series")
    ds.SeriesNumber = series_number(settings, "report_pdf")
    ds.SeriesDescription = PDF_SERIES_DESCRIPTION
    made = equipment(record, settings)
    ds.Manufacturer = made["manufacturer"]
    ds.ManufacturerModelName = made["manufacturer_model_name"]
    ds.SoftwareVersions = made["software_versions"]
    ds.DeviceSerialNumber = made["device_serial_number"]
    ds.ConversionType = "SYN"
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.AcquisitionDateTime = ""
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = TITLE
    ds.ConceptNameCodeSequence = DicomSequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def _identity_line(record: ProcessingRecord) -> str:
    previous = (
        f"previous visit {record.previous_study_date or 'of unknown date'}"
        if record.previous_study_uid
        else "first visit (no earlier values)"
    )
    born = f", born {record.birth_date}" if record.birth_date else ""
    sex = f", sex {record.sex}" if record.sex else ""
    return (
        f"Patient {record.patient_id}{born}{sex}   |   study of "
        f"{_iso_date(record.study_date) or 'unknown date'}   |   {previous}"
    )


def _iso_date(value: str | None) -> str | None:
    """DICOM DA (YYYYMMDD) as YYYY-MM-DD for readers; other forms as given."""
    if value and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _values_table(figure: Figure, record: ProcessingRecord) -> None:
    header = [
        "structure",
        "side",
        "now (ppb)",
        "z",
        "normal range (ppb)",
        "change (ppb)",
        "beyond retest",
    ]
    withheld = record.qc.segmentation_withheld
    rows = []
    for structure in STRUCTURES:
        for side in ("bilateral", *SIDES):
            rows.append(_row(record, structure, side, withheld))
    axes = figure.add_axes((0.06, 0.68, 0.88, 0.235))
    axes.set_axis_off()
    table = axes.table(
        cellText=rows,
        colLabels=header,
        loc="upper center",
        cellLoc="center",
        colWidths=[0.16, 0.1, 0.1, 0.08, 0.3, 0.13, 0.13],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1.0, 1.12)
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#e9edf2")
            cell.set_text_props(weight="bold")


def _row(
    record: ProcessingRecord, structure: str, side: str, withheld: dict[str, str]
) -> list[str]:
    name = structure.replace("_", " ") if side == "bilateral" else ""
    values = record.structures.values(structure, side)
    if values is None or values.mean_ppb is None:
        reason = withheld.get(f"{structure}_{side}") or (
            "a side is withheld" if side == "bilateral" else "not measured"
        )
        return [name, side, "withheld", "", textwrap.shorten(str(reason), 40), "", ""]
    shown = values.rounded()
    low, high = shown.reference_range_ppb or (None, None)
    normal = "" if low is None or high is None else f"{low:.1f} to {high:.1f}"
    word = INTERPRETATION_WORDS.get(str(shown.interpretation), "")
    reliable = "" if shown.reliable_change is None else ("yes" if shown.reliable_change else "no")
    return [
        name,
        side,
        f"{shown.mean_ppb:.1f}",
        "" if shown.z is None else f"{shown.z + 0.0:.2f}",
        f"{normal} ({word})" if normal and word else normal,
        "" if shown.change_ppb is None else f"{shown.change_ppb + 0.0:+.1f}",
        reliable,
    ]


def _risk_lines(record: ProcessingRecord) -> list[str]:
    risk = record.risk
    if risk is None:
        return ["No risk assessment (processing failed)."]
    lines = [f"Level: {risk.level.upper()}"]
    lines += [f"- {reason}" for reason in risk.reasons if reason != DISCLAIMER]
    if record.comparison_text:
        lines.append(record.comparison_text)
    return lines


def _qc_lines(record: ProcessingRecord) -> list[str]:
    qc = record.qc
    verdict = "reportable" if qc.segmentation_reportable else "not reportable"
    withheld = qc.segmentation_withheld
    lines = [f"Segmentation: {qc.segmentation_method}, {verdict}."]
    if withheld:  # each side's reason is in the table
        lines[0] += f" {len(withheld)} structure side(s) withheld by QC (reasons in the table)."
    elif qc.segmentation_reason:
        lines.append(qc.segmentation_reason)
    if qc.left_right_caution:
        lines.append(qc.left_right_caution)
    provenance = qc.provenance
    if provenance is not None:
        lines.append("; ".join(provenance.lines()))
    return lines


def _text_blocks(
    figure: Figure, top: float, bottom: float, blocks: list[tuple[str, list[str], float]]
) -> None:
    """Headed text blocks one below the other from `top`, each as tall as its text.

    Only when all of them do not fit above `bottom` (the footer) is the longest cut, ending
    with a pointer to the full text: a page that cut the risk reasons mid-sentence above a
    blank quarter of the page hid exactly what the reader needed.
    """
    wrapped = [
        [part for line in lines for part in _wrapped(figure, line, size)]
        for _, lines, size in blocks
    ]
    heights = [_line_height(size) for _, _, size in blocks]
    spare = top - bottom - len(blocks) * HEADING_HEIGHT
    while sum(len(w) * h for w, h in zip(wrapped, heights, strict=True)) > spare:
        cuttable = [i for i, lines in enumerate(wrapped) if len(lines) > 2]
        if not cuttable:
            break
        longest = max(cuttable, key=lambda i: len(wrapped[i]) * heights[i])
        wrapped[longest] = [*wrapped[longest][:-2], CUT_NOTE]  # one line shorter each time
    y = top
    for (heading, _, size), lines, height in zip(blocks, wrapped, heights, strict=True):
        figure.text(0.06, y, heading, fontsize=10, weight="bold", va="top")
        figure.text(
            0.06,
            y - HEADING_HEIGHT + 0.005,
            "\n".join(lines),
            fontsize=size,
            va="top",
            linespacing=LINE_SPACING,
        )
        y -= HEADING_HEIGHT + len(lines) * height


def _wrapped(figure: Figure, text: str, size: float) -> list[str]:
    """`text` in lines that fit between the page margins at `size` points, measured with the
    page's own font rather than counted in characters: digits are wider than average
    letters, so a character count let a study UID run off the page. A word longer than a
    line (a UID) is broken where it reaches the margin."""
    renderer = figure.canvas.get_renderer()
    font = FontProperties(size=size)
    limit = TEXT_WIDTH * figure.bbox.width

    def fits(candidate: str) -> bool:
        return renderer.get_text_width_height_descent(candidate, font, ismath=False)[0] <= limit

    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        while not fits(word):
            cut = max(k for k in range(1, len(word)) if fits(word[:k]) or k == 1)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    return [*lines, current] if current else lines


def _line_height(size: float) -> float:
    """One text line of `size` points as a fraction of the page height."""
    return size * LINE_SPACING / 72.0 / PAGE_INCHES[1]
