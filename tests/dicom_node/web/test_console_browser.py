"""The web console in Debian's Chromium (Playwright, nothing downloaded), over a node whose
worker really processed two visits of one patient and held them for review.

A reviewer logs in, sees the queue, approves the first visit (its SR reaches the folder
destination once the deliverer runs) and rejects the second with a reason; a viewer cannot
approve, a request without session or without the CSRF token is refused, and the admin's audit
page shows all of it. Screenshots go to $QSM_SCREENSHOTS (docs/web-console/ in the repo was
made this way) or a temporary folder; each is checked to be a real, non-blank PNG.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright
from support.console_support import PASSWORDS, ROLES
from support.node_helpers import free_port

from dicom_node.assemble.study import assemble_study
from dicom_node.db import configured_engine
from dicom_node.deliver.outbox import Outbox
from dicom_node.process.worker import Worker
from dicom_node.queue.jobs import JobQueue
from dicom_node.release import ReleaseGate, ReviewState
from dicom_node.synthetic.modules import PatientIdentity
from dicom_node.synthetic.series import write_acquisition_series
from dicom_node.web import ConsoleServer, add_user, console_sessions
from monitor.phantom.simulate import PhantomConfig, simulate_phantom
from monitor.settings import Settings, load_settings

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SMALL_HEAD = PhantomConfig(
    shape=(48, 56, 40),
    voxel_mm=(3.0, 3.0, 3.0),
    n_echoes=3,
    field_margin_mm=9.0,
    supersample=False,
)
VISITS = (
    PatientIdentity(patient_id="WEB-0007", birth_date="19700101", sex="F", study_date="20250310"),
    PatientIdentity(patient_id="WEB-0007", birth_date="19700101", sex="F", study_date="20260312"),
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    root = tmp_path_factory.mktemp("console")
    settings = load_settings(
        None,
        storage={"data_dir": root / "data"},
        destinations=[{"name": "drop", "kind": "folder", "path": root / "drop"}],
        release={"require_review": True},
        web={"enabled": True, "port": free_port(), "refresh_s": 60},
    )
    engine = configured_engine(settings.storage)
    sessions = console_sessions(engine)
    for name, role in ROLES.items():
        add_user(sessions, name, role, PASSWORDS[name])
    worker = Worker(settings, JobQueue(sessions, settings.jobs), Outbox(sessions, settings), "w")
    acquisition = simulate_phantom(SMALL_HEAD).acquisition
    for visit in VISITS:
        files = write_acquisition_series(acquisition, root / visit.study_date, "siemens", visit)
        (assembled,) = assemble_study(files).acquisitions
        worker.queue.enqueue(
            assembled.idempotency_key, visit.study_uid, {"paths": [str(p) for p in files]}
        )
        assert worker.run_once()
    assert worker.outbox.rows() == []  # held: nothing queued for delivery yet
    server = ConsoleServer(settings)
    server.start()
    yield settings, root
    server.stop()
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def shots() -> Path:
    default = Path(os.environ.get("TMPDIR", "/tmp")) / "qsm-console-shots"
    folder = Path(os.environ.get("QSM_SCREENSHOTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, name: str) -> None:
    path = shots() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert pixels.shape[0] > 300 and pixels.std() > 10, f"{name} looks blank"


def log_in(browser: Browser, settings: Settings, name: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"http://127.0.0.1:{settings.web.port}/")
    assert "/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    assert page.url.rstrip("/").endswith(str(settings.web.port)), page.url
    return page


def gate_for(settings: Settings) -> ReleaseGate:
    sessions = console_sessions(configured_engine(settings.storage))
    return ReleaseGate(sessions, settings, Outbox(sessions, settings))


def test_review_flow_in_chromium(node: tuple[Settings, Path], browser: Browser) -> None:
    settings, root = node
    base = f"http://127.0.0.1:{settings.web.port}"
    gate = gate_for(settings)
    first, second = sorted(gate.listed(ReviewState.PENDING), key=lambda r: r.id)

    reviewer = log_in(browser, settings, "rita")
    assert reviewer.inner_text("#release").count("pending: 2") == 1
    assert "done: 2" in reviewer.inner_text("#queue")
    screenshot(reviewer, "node")
    reviewer.goto(f"{base}/review")
    assert reviewer.locator("#pending tr").count() == 3  # header + two held visits
    screenshot(reviewer, "review-list")

    reviewer.goto(f"{base}/review/{second.id}")
    assert "WEB-0007" in reviewer.inner_text("main")
    assert "Previous visit: 2025-03-10" in reviewer.inner_text("main")
    screenshot(reviewer, "review-visit")
    reviewer.click("#reject")  # the reason is required: the browser does not submit
    assert gate.get(second.id).state == ReviewState.PENDING
    reviewer.fill("textarea[name=reason]", "motion artefact over the basal ganglia")
    reviewer.click("#reject")
    assert "Rejected; nothing was sent" in reviewer.inner_text(".msg")

    reviewer.goto(f"{base}/review/{first.id}")
    reviewer.click("#approve")
    assert "Approved" in reviewer.inner_text(".msg")
    while gate.outbox.deliver_next("test-deliverer"):
        pass
    delivered = sorted(p.name for p in (root / "drop").rglob("*") if p.is_file())
    for name in ("sr.dcm", "report_page.dcm", "report_pdf.dcm"):  # the page goes with the SR
        assert name in delivered, delivered
    page = Path(first.outputs["report_page_png"])
    (shots() / "report-page.png").write_bytes(page.read_bytes())
    pixels = np.asarray(Image.open(page).convert("L"), dtype=float)
    assert pixels.shape[0] > pixels.shape[1] and pixels.std() > 10
    reviewer.goto(base)
    assert "done 1" in reviewer.inner_text("#destinations") or "done" in reviewer.inner_text(
        "#destinations"
    )
    assert gate.get(second.id).reason == "motion artefact over the basal ganglia"

    viewer = log_in(browser, settings, "victor")
    viewer.goto(f"{base}/review/{first.id}")
    assert viewer.locator("#approve").count() == 0
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = viewer.request.post(f"{base}/review/{second.id}/approve", form={"csrf_token": token})
    assert forged.status == 403
    no_token = reviewer.request.post(f"{base}/review/{second.id}/approve", form={})
    assert no_token.status == 403
    anonymous = browser.new_page()
    assert (
        anonymous.request.post(
            f"{base}/review/{second.id}/approve", form={"csrf_token": token}
        ).status
        == 401
    )
    assert gate.get(second.id).state == ReviewState.REJECTED

    reviewer.goto(f"{base}/patients?id=WEB-0007")
    assert reviewer.locator("#timeline tr").count() == 3
    screenshot(reviewer, "patient")
    reviewer.goto(f"{base}/alerts")
    screenshot(reviewer, "alerts")
    reviewer.goto(f"{base}/identity")
    screenshot(reviewer, "identity")

    admin = log_in(browser, settings, "alice")
    admin.goto(f"{base}/audit")
    audit = admin.inner_text("#audit")
    for expected in ("approve", "reject", "refused", "rita", "victor"):
        assert expected in audit, expected
    screenshot(admin, "audit")
