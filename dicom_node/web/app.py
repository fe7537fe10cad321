"""The web console: server-rendered pages over the node's database, behind a login.

Every page and action needs a signed-in user (a session cookie, or an authenticating reverse
proxy's header when `[web] trusted_user_header` is set), except `/healthz` and `/metrics`.
Every form carries its session's CSRF token (the login form a double-submit cookie) and every
action is written to the audit table. Query strings and bodies are never logged (patient IDs
travel in them).
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from dicom_node.deliver.outbox import Outbox
from dicom_node.process.identity import settle_identity
from dicom_node.release.reviews import ReleaseGate, ReviewError, ReviewState
from dicom_node.service.status import service_status
from dicom_node.web.accounts import Role, authenticate, find_user, has_role
from dicom_node.web.alerts import acknowledge, elevated_alerts
from dicom_node.web.audit import recent_actions, record_action
from dicom_node.web.login_limit import LoginLimiter
from dicom_node.web.metrics import node_registry
from dicom_node.web.review_view import IMAGE_OUTPUTS, review_view
from dicom_node.web.web_sessions import (
    close_session,
    csrf_matches,
    open_session,
    session_for,
)
from monitor.errors import MonitorError
from monitor.norms import load_model
from monitor.settings import Settings
from monitor.tracking.plot import write_trend_plot
from monitor.tracking.review import review_items
from monitor.tracking.timeline import load_timeline

SESSION_COOKIE = "qsm_session"
LOGIN_CSRF_COOKIE = "qsm_login_csrf"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def fixed(value: float | None, decimals: int = 1, signed: bool = False) -> str:
    """A number at its reported precision for pages: blank when absent, never "-0.0"."""
    if value is None:
        return ""
    rounded = round(float(value), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{rounded:+.{decimals}f}" if signed and rounded else f"{rounded:.{decimals}f}"


TEMPLATES.env.filters["fixed"] = fixed


class NotSignedIn(Exception):
    """No valid session (or proxy user) on a request that needs one."""


class Forbidden(Exception):
    """Signed in, but the role lacks the right, or the CSRF token is missing or wrong."""


@dataclass(frozen=True)
class Visitor:
    name: str
    role: str
    csrf_token: str
    new_cookie: str | None = None
    """A session opened for a proxy-authenticated user on this request (set on the reply)."""


class Console:
    """What the routes share: settings, database sessions, the release gate, the limiter."""

    def __init__(self, settings: Settings, sessions: sessionmaker) -> None:
        self.settings, self.sessions = settings, sessions
        self.gate = ReleaseGate(sessions, settings, Outbox(sessions, settings))
        web = settings.web
        self.limiter = LoginLimiter(web.login_attempts, web.login_window_s)

    def visitor(self, request: Request) -> Visitor:
        token = request.cookies.get(SESSION_COOKIE)
        row = session_for(self.sessions, token)
        header = self.settings.web.trusted_user_header
        if header:
            name = (request.headers.get(header) or "").strip()
            user = find_user(self.sessions, name) if name else None
            if user is None:
                raise NotSignedIn
            if row is not None and row.user_name == user.name:
                return Visitor(user.name, user.role, row.csrf_token)
            token = open_session(self.sessions, user.name, self.settings.web.session_hours)
            fresh = session_for(self.sessions, token)
            assert fresh is not None  # just written
            return Visitor(user.name, user.role, fresh.csrf_token, new_cookie=token)
        if row is None:
            raise NotSignedIn
        user = find_user(self.sessions, row.user_name)
        if user is None:  # deleted since login
            raise NotSignedIn
        return Visitor(user.name, user.role, row.csrf_token)

    async def action(self, request: Request, needed: Role) -> tuple[Visitor, dict[str, str]]:
        """A POST: signed in, the role, and the session's CSRF token in the form."""
        visitor = self.visitor(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not csrf_matches(visitor.csrf_token, form.get("csrf_token")):
            record_action(self.sessions, visitor.name, "refused", request.url.path, "CSRF token")
            raise Forbidden("the form's security token is missing or stale; reload the page")
        if not has_role(visitor.role, needed):
            record_action(self.sessions, visitor.name, "refused", request.url.path, "role")
            raise Forbidden(f"your role ({visitor.role}) cannot do this; {needed} needed")
        return visitor, form

    def page(self, request: Request, name: str, visitor: Visitor, **context: Any) -> Response:
        response = TEMPLATES.TemplateResponse(
            request,
            name,
            {
                "visitor": visitor,
                "is_admin": has_role(visitor.role, Role.ADMIN),
                "can_review": has_role(visitor.role, Role.REVIEWER),
                "message": request.query_params.get("msg"),
                "settings": self.settings,
                **context,
            },
        )
        self.remember(response, visitor)
        return response

    def remember(self, response: Response, visitor: Visitor) -> None:
        if visitor.new_cookie:
            self.set_session_cookie(response, visitor.new_cookie)

    def set_session_cookie(self, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(self.settings.web.session_hours * 3600),
            httponly=True,
            secure=self.settings.web.secure_cookies,
            samesite="strict",
        )


def back(path: str, message: str) -> RedirectResponse:
    """Post/redirect/get with a short message shown on the next page."""
    return RedirectResponse(f"{path}?msg={quote(message)}", status_code=303)


def create_app(settings: Settings, sessions: sessionmaker) -> FastAPI:
    """The console over `sessions` (a schema made by `dicom_node.web.console_schema`)."""
    console = Console(settings, sessions)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if request.method == "GET" and not settings.web.trusted_user_header:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        return Response("sign in first\n", status_code=401, media_type="text/plain")

    @app.exception_handler(Forbidden)
    async def _forbidden(_request: Request, exc: Forbidden) -> Response:
        return Response(f"refused: {exc}\n", status_code=403, media_type="text/plain")

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            with sessions() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure is the answer itself
            return JSONResponse({"ok": False, "problem": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True})

    registry = node_registry(sessions)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {
                "csrf_token": token,
                "next": _safe_next(request.query_params.get("next")),
                "message": request.query_params.get("msg"),
            },
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            secure=settings.web.secure_cookies,
            samesite="strict",
        )
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE) or "", form.get("csrf_token")):
            raise Forbidden("the login form's security token is missing or stale; reload it")
        name, address = form.get("username", "").strip(), _client(request)
        wait_s = console.limiter.blocked_for_s(name, address)
        if wait_s > 0:
            record_action(sessions, name or "-", "login_blocked", "", "too many failures")
            return back("/login", f"Too many failed logins; try again in {wait_s:.0f} s.")
        user = authenticate(sessions, name, form.get("password", ""))
        if user is None:
            console.limiter.failed(name, address)
            record_action(sessions, name or "-", "login_failed")
            return back("/login", "Unknown user name or wrong password.")
        console.limiter.succeeded(name, address)
        record_action(sessions, user.name, "login")
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        console.set_session_cookie(
            response, open_session(sessions, user.name, settings.web.session_hours)
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        visitor, _ = await console.action(request, Role.VIEWER)
        close_session(sessions, request.cookies.get(SESSION_COOKIE))
        record_action(sessions, visitor.name, "logout")
        response = back("/login", "Signed out.")
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def node(request: Request) -> Response:
        visitor = console.visitor(request)
        return console.page(
            request,
            "node.html",
            visitor,
            status=service_status(settings),
            reviews=console.gate.counts(),
        )

    @app.post("/deliveries/resend")
    async def resend(request: Request) -> Response:
        visitor, form = await console.action(request, Role.ADMIN)
        study_uid = form.get("study_uid", "").strip()
        try:
            queued = console.gate.resend(study_uid)
        except ReviewError as exc:
            return back("/", f"Not sent: {exc}.")
        record_action(sessions, visitor.name, "resend", study_uid, f"{queued} deliveries")
        return back("/", f"{queued} deliveries queued again.")

    @app.get("/review", response_class=HTMLResponse)
    def reviews(request: Request) -> Response:
        visitor = console.visitor(request)
        pending = [review_view(sessions, r) for r in console.gate.listed(ReviewState.PENDING)]
        decided = [
            review_view(sessions, r)
            for r in console.gate.listed(limit=30)
            if r.state != ReviewState.PENDING
        ]
        return console.page(
            request,
            "reviews.html",
            visitor,
            pending=pending,
            decided=decided,
            require_review=settings.release.require_review,
        )

    @app.get("/review/{review_id}", response_class=HTMLResponse)
    def review(request: Request, review_id: int) -> Response:
        visitor = console.visitor(request)
        found = console.gate.get(review_id)
        if found is None:
            return Response("no such review\n", status_code=404, media_type="text/plain")
        return console.page(request, "review.html", visitor, item=review_view(sessions, found))

    @app.get("/review/{review_id}/image/{output}")
    def review_image(request: Request, review_id: int, output: str) -> Response:
        console.visitor(request)
        found = console.gate.get(review_id)
        path = None if found is None or output not in IMAGE_OUTPUTS else found.outputs.get(output)
        if path is None or not Path(path).is_file():
            return Response("no such image\n", status_code=404, media_type="text/plain")
        return Response(Path(path).read_bytes(), media_type="image/png")

    @app.post("/review/{review_id}/approve")
    async def approve(request: Request, review_id: int) -> Response:
        visitor, _ = await console.action(request, Role.REVIEWER)
        try:
            queued = console.gate.approve(review_id, visitor.name)
        except ReviewError as exc:
            return back(f"/review/{review_id}", f"Not approved: {exc}.")
        target = f"review {review_id}"
        record_action(sessions, visitor.name, "approve", target, f"{queued} deliveries")
        return back("/review", f"Approved; {queued} deliveries queued.")

    @app.post("/review/{review_id}/reject")
    async def reject(request: Request, review_id: int) -> Response:
        visitor, form = await console.action(request, Role.REVIEWER)
        reason = form.get("reason", "")
        try:
            console.gate.reject(review_id, visitor.name, reason)
        except ReviewError as exc:
            return back(f"/review/{review_id}", f"Not rejected: {exc}.")
        record_action(sessions, visitor.name, "reject", f"review {review_id}", reason.strip())
        return back("/review", "Rejected; nothing was sent.")

    @app.get("/identity", response_class=HTMLResponse)
    def identity(request: Request) -> Response:
        visitor = console.visitor(request)
        return console.page(
            request, "identity.html", visitor, items=review_items(sessions, include_decided=True)
        )

    @app.post("/identity/resolve")
    async def identity_resolve(request: Request) -> Response:
        visitor, form = await console.action(request, Role.REVIEWER)
        study_uid = form.get("study_uid", "")
        try:
            outcome = settle_identity(
                settings,
                study_uid,
                form.get("decision", ""),
                visitor.name,
                form.get("update_patient") == "yes",
            )
        except MonitorError as exc:
            return back("/identity", f"Not settled: {exc}")
        record_action(
            sessions, visitor.name, "identity_resolve", study_uid, form.get("decision", "")
        )
        return back(
            "/identity",
            f"Settled; {outcome.reassessed} visit(s) re-assessed, "
            f"{outcome.amendments_queued} amended report(s) queued.",
        )

    @app.get("/patients", response_class=HTMLResponse)
    def patients(request: Request) -> Response:
        visitor = console.visitor(request)
        patient_id = (request.query_params.get("id") or "").strip()
        timeline = load_timeline(sessions, patient_id, settings) if patient_id else None
        if patient_id:
            record_action(sessions, visitor.name, "patient_viewed", patient_id)
        return console.page(
            request,
            "patients.html",
            visitor,
            patient_id=patient_id,
            timeline=timeline,
            structures=("thalamus", "caudate", "putamen", "globus_pallidus"),
        )

    @app.get("/patients/trend.png")
    def patient_trend(request: Request) -> Response:
        console.visitor(request)
        patient_id = (request.query_params.get("id") or "").strip()
        timeline = load_timeline(sessions, patient_id, settings) if patient_id else None
        series = {} if timeline is None else timeline.trend_series()
        if not series:
            return Response("nothing to plot\n", status_code=404, media_type="text/plain")
        with tempfile.TemporaryDirectory() as folder:
            path = write_trend_plot(
                Path(folder) / "trend.png",
                series,
                load_model(settings.norms.model_path),
                timeline.sex if timeline else None,
            )
            return Response(path.read_bytes(), media_type="image/png")

    @app.get("/alerts", response_class=HTMLResponse)
    def alerts(request: Request) -> Response:
        visitor = console.visitor(request)
        return console.page(request, "alerts.html", visitor, alerts=elevated_alerts(sessions))

    @app.post("/alerts/{result_id}/ack")
    async def alert_ack(request: Request, result_id: int) -> Response:
        visitor, form = await console.action(request, Role.REVIEWER)
        try:
            study_uid = acknowledge(sessions, result_id, visitor.name, form.get("note", ""))
        except ValueError as exc:
            return back("/alerts", f"Not acknowledged: {exc}.")
        record_action(sessions, visitor.name, "alert_ack", study_uid, form.get("note", "").strip())
        return back("/alerts", "Acknowledged.")

    @app.get("/audit", response_class=HTMLResponse)
    def audit(request: Request) -> Response:
        visitor = console.visitor(request)
        if not has_role(visitor.role, Role.ADMIN):
            raise Forbidden(f"your role ({visitor.role}) cannot read the audit; admin needed")
        return console.page(request, "audit.html", visitor, entries=recent_actions(sessions))

    return app


def _safe_next(target: str | None) -> str:
    """Only local paths after login (an open redirect would help phishing)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"
