"""The report page for PACS viewers: the record's numbers on one page, as a Secondary Capture
and an Encapsulated PDF that pass dciodvfy, the PDF recoverable byte for byte (DCMTK)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.table import Table
from matplotlib.text import Text
from PIL import Image
from pydicom import dcmread
from support.outputs_support import (
    STRUCTURES,
    assembled_study,
    make_record,
    record_side,
    save,
    validator_errors,
)

from dicom_node.assemble.study import AssembledAcquisition
from dicom_node.outputs.common import read_sources
from dicom_node.outputs.key_images import build_key_image
from dicom_node.outputs.report_page import build_report_pdf, draw_report_page, write_report_page
from monitor.record import ProcessingRecord
from monitor.settings import Settings
from monitor.tracking.risk import DISCLAIMER

DCM2PDF = "/usr/bin/dcm2pdf"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> AssembledAcquisition:
    return assembled_study(tmp_path_factory.mktemp("source"))


def page_texts(record: dict) -> str:
    figure = draw_report_page(ProcessingRecord.from_json(record), None)
    cells = [
        cell.get_text().get_text()
        for table in figure.findobj(Table)
        for cell in table.get_celld().values()
    ]
    return "\n".join([*(t.get_text() for t in figure.findobj(Text)), *cells])


def test_the_page_shows_every_value_the_risk_and_the_disclaimer(
    study: AssembledAcquisition,
) -> None:
    record = make_record(study, risk_level="elevated")
    texts = page_texts(record)
    for structure in STRUCTURES:
        for side in ("left", "right", "bilateral"):
            values = record_side(record, structure, side)
            assert f"{values['mean_ppb']:.1f}" in texts, (structure, side)
            assert f"{values['change_ppb'] + 0.0:+.1f}" in texts, (structure, side)
    assert "Level: ELEVATED" in texts and "putamen above the normal range" in texts
    assert "previous visit 2025-01-14" in texts
    assert " ".join(DISCLAIMER.split()) in " ".join(texts.split())
    assert "echo times" in texts  # provenance


DEMO_LIKE_REASON = (
    "Thalamus susceptibility is falling: trend -8.3 ppb/year, -0.1 expected with age over 3 "
    "comparable visits (z = -4.83), latest value -11.7 ppb against the mean of the earlier ones "
    "(z = -3.97); limit z -2.05, crossed by a stable person at 3 % of visits (scan-rescan SD "
    "2.4 ppb)."
)


def _text_bottom(figure) -> float:  # type: ignore[no-untyped-def]
    """Lowest point (figure fraction) of the risk and QC text blocks as drawn."""
    renderer = figure.canvas.get_renderer()
    blocks = [t for t in figure.findobj(Text) if t.get_text() and 0.07 < t.get_position()[1] < 0.32]
    return min(t.get_window_extent(renderer).y0 for t in blocks) / figure.bbox.height


def _disclaimer_top(figure) -> float:  # type: ignore[no-untyped-def]
    renderer = figure.canvas.get_renderer()
    (footer,) = [t for t in figure.findobj(Text) if t.get_text().startswith(DISCLAIMER[:30])]
    return footer.get_window_extent(renderer).y1 / figure.bbox.height


def _rightmost(figure) -> float:  # type: ignore[no-untyped-def]
    """Right edge (figure fraction) of the widest text the page draws outside the table."""
    renderer = figure.canvas.get_renderer()
    texts = [t for t in figure.findobj(Text) if t.get_text() and t.get_figure() is figure]
    return max(t.get_window_extent(renderer).x1 for t in texts) / figure.bbox.width


def test_a_long_study_uid_wraps_inside_the_page(study: AssembledAcquisition) -> None:
    """Digits are wider than letters: the comparison line with its study UID once ran off
    the right edge when lines were cut by character count."""
    record = make_record(study, risk_level="not elevated")
    record["previous_study_uid"] = "2.25." + "2385545365821377676319814344607196309051"
    record["risk"]["reasons"] = [DEMO_LIKE_REASON]
    figure = draw_report_page(ProcessingRecord.from_json(record), None)
    figure.canvas.draw()
    assert _rightmost(figure) <= 0.94 + 0.002
    joined = "".join(" ".join(t.get_text() for t in figure.findobj(Text)).split())
    assert record["previous_study_uid"] in joined  # broken across lines, not cut


@pytest.mark.parametrize("reasons", [3, 40])
def test_risk_reasons_use_the_page_and_are_cut_only_when_they_cannot_fit(
    study: AssembledAcquisition, reasons: int
) -> None:
    record = make_record(study, risk_level="elevated")
    record["risk"]["reasons"] = [f"{n}. {DEMO_LIKE_REASON}" for n in range(1, reasons + 1)]
    figure = draw_report_page(ProcessingRecord.from_json(record), None)
    texts = " ".join(t.get_text() for t in figure.findobj(Text))
    joined = " ".join(texts.split())
    if reasons == 3:  # the demo's elevated patient: all of it fits
        assert "[...]" not in texts
        assert all(f"{n}. {DEMO_LIKE_REASON}" in joined for n in (1, 2, 3))
    else:
        assert "[...] (full text in the SR and the QC record)" in texts
    assert "echo times" in texts  # the provenance block is always there
    assert _text_bottom(figure) > _disclaimer_top(figure) + 0.005  # never into the footer
    assert _rightmost(figure) <= 0.94 + 0.002  # nothing runs off the page


def test_a_withheld_structure_says_why(study: AssembledAcquisition) -> None:
    record = make_record(study)
    del record["structures"]["thalamus"]
    record["qc"]["segmentation"] = {
        "reportable": True,
        "withheld": {"thalamus_left": "volume 14.2 ml outside plausible 4.0-13.0 ml"},
    }
    texts = page_texts(record)
    assert "withheld" in texts and "volume 14.2 ml outside" in texts


def test_sc_and_pdf_objects_pass_dciodvfy_and_keep_the_pdf(
    study: AssembledAcquisition, tmp_path: Path
) -> None:
    record = ProcessingRecord.from_json(make_record(study, risk_level="elevated"))
    png, pdf = tmp_path / "page.png", tmp_path / "page.pdf"
    write_report_page(record, None, png, pdf)
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape[0] > pixels.shape[1] > 1000  # A4 portrait at 130 dpi
    assert pixels.std() > 20  # not blank
    sources = read_sources(study.reference_paths)
    sc = save(
        build_key_image(record, sources, png, "report_page", settings=Settings()),
        tmp_path / "sc.dcm",
    )
    document = save(
        build_report_pdf(record, sources, pdf.read_bytes(), settings=Settings()),
        tmp_path / "pdf.dcm",
    )
    assert validator_errors(sc) == []
    assert validator_errors(document) == []
    stored = dcmread(document)
    assert stored.StudyInstanceUID == study.study_uid and stored.Modality == "DOC"
    # both carry the patient's ID and birth date in what a viewer renders
    assert dcmread(sc).BurnedInAnnotation == "YES"
    assert stored.BurnedInAnnotation == "YES"
    assert stored.SeriesNumber != dcmread(sc).SeriesNumber
    extracted = tmp_path / "back.pdf"
    run = subprocess.run(
        [DCM2PDF, str(document), str(extracted)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert extracted.read_bytes().rstrip(b"\0") == pdf.read_bytes()


def test_a_rolled_head_s_side_values_carry_the_caution(study: AssembledAcquisition) -> None:
    record = make_record(study, risk_level="not elevated")
    record["qc"].setdefault("segmentation", {})["b0_tilt_deg"] = {
        "towards_left": -15.0,
        "towards_back": 2.0,
    }
    figure = draw_report_page(ProcessingRecord.from_json(record), None)
    joined = " ".join(" ".join(t.get_text() for t in figure.findobj(Text)).split())
    assert "Left-right comparison with care: the head lay rolled 15 degrees" in joined
    record["qc"]["segmentation"]["b0_tilt_deg"]["towards_left"] = 5.0
    figure = draw_report_page(ProcessingRecord.from_json(record), None)
    assert "Left-right comparison" not in " ".join(t.get_text() for t in figure.findobj(Text))
