"""Who may see and do what in the web console, on a real database, through real HTTP
handling (Starlette's test client): login, sessions, CSRF, roles, rate limit, audit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.console_support import (
    PASSWORDS,
    ConsoleNode,
    console_node,
    console_settings,
    csrf_of,
    hold_visit,
)

from dicom_node.release import ReviewState
from dicom_node.web import create_app
from dicom_node.web.audit import recent_actions

BASE = "https://console.test"  # session cookies are Secure


@pytest.fixture
def node(tmp_path: Path, db_url: str) -> ConsoleNode:
    node = console_node(console_settings(tmp_path, db_url))
    sr = tmp_path / "out" / "sr.dcm"
    sr.parent.mkdir()
    sr.write_bytes(b"DICOM bytes")
    record = {"patient_id": "MRN-7", "study_date": "2026-11-30", "risk": {"level": "normal"}}
    hold_visit(node, "acq-1", "1.2.3", record, {"sr": sr})
    return node


def client(node: ConsoleNode) -> TestClient:
    return TestClient(create_app(node.settings, node.sessions), base_url=BASE)


def signed_in(node: ConsoleNode, name: str) -> TestClient:
    browser = client(node)
    form = browser.get("/login")
    reply = browser.post(
        "/login",
        data={"username": name, "password": PASSWORDS[name], "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/", reply.text
    return browser


def review_id(node: ConsoleNode) -> int:
    (review,) = node.gate.listed()
    return review.id


def test_only_health_and_metrics_answer_without_login(node: ConsoleNode) -> None:
    anonymous = client(node)
    assert anonymous.get("/healthz").json() == {"ok": True}
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert 'qsm_reviews{state="pending"} 1.0' in metrics.text
    assert "qsm_processing_seconds_bucket" in metrics.text
    for path in ("/", "/review", f"/review/{review_id(node)}", "/patients", "/alerts", "/audit"):
        reply = anonymous.get(path, follow_redirects=False)
        assert reply.status_code == 303 and reply.headers["location"].startswith("/login"), path
    refused = anonymous.post(f"/review/{review_id(node)}/approve", data={"csrf_token": "x"})
    assert refused.status_code == 401
    assert node.gate.get(review_id(node)).state == ReviewState.PENDING


def test_login_refuses_wrong_passwords_forged_forms_and_open_redirects(node: ConsoleNode) -> None:
    browser = client(node)
    token = csrf_of(browser.get("/login").text)
    wrong = browser.post(
        "/login", data={"username": "rita", "password": "nope", "csrf_token": token}
    )
    assert "wrong password" in wrong.text
    assert browser.get("/", follow_redirects=False).status_code == 303
    forged = client(node).post(
        "/login", data={"username": "rita", "password": PASSWORDS["rita"], "csrf_token": "x"}
    )
    assert forged.status_code == 403
    token = csrf_of(browser.get("/login").text)
    elsewhere = browser.post(
        "/login",
        data={
            "username": "rita",
            "password": PASSWORDS["rita"],
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/"
    cookie = elsewhere.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie


def test_repeated_failures_block_the_name_even_with_the_right_password(node: ConsoleNode) -> None:
    browser = client(node)
    for _ in range(node.settings.web.login_attempts):
        token = csrf_of(browser.get("/login").text)
        browser.post("/login", data={"username": "rita", "password": "bad", "csrf_token": token})
    token = csrf_of(browser.get("/login").text)
    blocked = browser.post(
        "/login", data={"username": "rita", "password": PASSWORDS["rita"], "csrf_token": token}
    )
    assert "Too many failed logins" in blocked.text
    assert browser.get("/", follow_redirects=False).status_code == 303
    actions = [entry.action for entry in recent_actions(node.sessions)]
    assert actions.count("login_failed") == node.settings.web.login_attempts
    assert "login_blocked" in actions


def test_a_viewer_sees_but_cannot_decide(node: ConsoleNode) -> None:
    viewer = signed_in(node, "victor")
    page = viewer.get(f"/review/{review_id(node)}")
    assert page.status_code == 200 and "MRN-7" in page.text
    assert 'id="approve"' not in page.text and "can look but not decide" in page.text
    refused = viewer.post(
        f"/review/{review_id(node)}/approve", data={"csrf_token": csrf_of(page.text)}
    )
    assert refused.status_code == 403 and "viewer" in refused.text
    assert node.gate.get(review_id(node)).state == ReviewState.PENDING
    assert viewer.get("/audit").status_code == 403
    (refusal, *_) = recent_actions(node.sessions)
    assert (refusal.user_name, refusal.action, refusal.detail) == ("victor", "refused", "role")


def test_a_reviewer_decides_only_with_the_session_token(node: ConsoleNode) -> None:
    reviewer = signed_in(node, "rita")
    page = reviewer.get(f"/review/{review_id(node)}")
    no_token = reviewer.post(f"/review/{review_id(node)}/approve", data={})
    other_token = reviewer.post(
        f"/review/{review_id(node)}/approve", data={"csrf_token": csrf_of(page.text) + "x"}
    )
    assert no_token.status_code == other_token.status_code == 403
    assert node.gate.get(review_id(node)).state == ReviewState.PENDING
    no_reason = reviewer.post(
        f"/review/{review_id(node)}/reject", data={"csrf_token": csrf_of(page.text), "reason": " "}
    )
    assert "needs a reason" in no_reason.text
    approved = reviewer.post(
        f"/review/{review_id(node)}/approve", data={"csrf_token": csrf_of(page.text)}
    )
    assert "Approved; 1 deliveries queued" in approved.text
    assert node.gate.get(review_id(node)).decided_by == "rita"
    assert len(node.gate.outbox.rows()) == 1
    admin = signed_in(node, "alice")
    audit = admin.get("/audit")
    assert audit.status_code == 200 and "approve" in audit.text and "rita" in audit.text


def test_a_trusted_proxy_header_names_a_known_user(tmp_path: Path, db_url: str) -> None:
    node = console_node(console_settings(tmp_path, db_url, trusted_user_header="X-Remote-User"))
    proxy = client(node)
    assert proxy.get("/", follow_redirects=False).status_code == 401
    assert proxy.get("/", headers={"X-Remote-User": "mallory"}).status_code == 401
    page = proxy.get("/review", headers={"X-Remote-User": "victor"})
    assert page.status_code == 200 and "victor (viewer)" in page.text
    assert "qsm_session" in page.headers["set-cookie"]


def test_alerts_list_elevated_visits_and_take_an_acknowledgement_with_a_note(
    node: ConsoleNode, tmp_path: Path
) -> None:
    record = {
        "patient_id": "MRN-9",
        "study_date": "2026-12-01",
        "risk": {"level": "elevated", "reasons": ["thalamus fell 9.1 ppb in a year"]},
    }
    hold_visit(node, "acq-2", "1.2.9", record, {})
    viewer, reviewer = signed_in(node, "victor"), signed_in(node, "rita")
    page = viewer.get("/alerts")
    assert "MRN-9" in page.text and "thalamus fell 9.1 ppb" in page.text
    assert "MRN-7" not in page.text  # not elevated
    assert 'name="note"' not in page.text  # a viewer cannot acknowledge
    (alert_id,) = {int(x) for x in re.findall(r"/alerts/(\d+)/ack", reviewer.get("/alerts").text)}
    refused = viewer.post(
        f"/alerts/{alert_id}/ack", data={"csrf_token": csrf_of(page.text), "note": "seen"}
    )
    assert refused.status_code == 403
    token = csrf_of(reviewer.get("/alerts").text)
    empty = reviewer.post(f"/alerts/{alert_id}/ack", data={"csrf_token": token, "note": " "})
    assert "needs a note" in empty.text
    done = reviewer.post(
        f"/alerts/{alert_id}/ack", data={"csrf_token": token, "note": "neurologist informed"}
    )
    assert "Acknowledged" in done.text and "rita: neurologist informed" in done.text
    again = reviewer.post(f"/alerts/{alert_id}/ack", data={"csrf_token": token, "note": "x"})
    assert "acknowledged already" in again.text
    (entry, *_) = recent_actions(node.sessions)
    assert (entry.action, entry.target, entry.detail) == (
        "alert_ack",
        "1.2.9",
        "neurologist informed",
    )


def test_identity_page_and_a_decision_on_an_unknown_visit(node: ConsoleNode) -> None:
    reviewer = signed_in(node, "rita")
    page = reviewer.get("/identity")
    assert page.status_code == 200 and "no visit is held" in page.text
    reply = reviewer.post(
        "/identity/resolve",
        data={"csrf_token": csrf_of(page.text), "study_uid": "9.9.9", "decision": "same_person"},
    )
    assert "Not settled" in reply.text and "no visit with this Study Instance UID" in reply.text


def test_resend_is_for_admins_and_never_passes_an_open_review(node: ConsoleNode) -> None:
    reviewer, admin = signed_in(node, "rita"), signed_in(node, "alice")
    token = csrf_of(reviewer.get("/").text)
    assert (
        reviewer.post(
            "/deliveries/resend", data={"csrf_token": token, "study_uid": "1.2.3"}
        ).status_code
        == 403
    )
    token = csrf_of(admin.get("/").text)
    held = admin.post("/deliveries/resend", data={"csrf_token": token, "study_uid": "1.2.3"})
    assert "Not sent: this study&#39;s results await review" in held.text
    node.gate.approve(review_id(node), "rita")
    sent = admin.post("/deliveries/resend", data={"csrf_token": token, "study_uid": "1.2.3"})
    assert "1 deliveries queued again" in sent.text
