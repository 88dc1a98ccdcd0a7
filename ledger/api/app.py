"""The ASGI application of ``meterbook api``: event ingest, the customer portal, the OpenAPI
schema.

Routes (every error is JSON ``{"error": CODE, "detail": TEXT}`` with a 4xx status):

==========================================  ======  ================================================
``POST /v1/events``                          ingest  events (JSON or NDJSON); the row accounting
``GET  /v1/health``                          none    ``{"status": "ok"}``
``GET  /openapi.json``                       none    the OpenAPI schema of every route
``GET  /portal/login``, ``POST``             none    sign in with a portal key (an HttpOnly cookie)
``POST /portal/logout``                      none    sign out (the cookie is cleared)
``GET  /portal/``                            portal  the portal page (HTML)
``GET  /portal/summary``                     portal  the page's figures as JSON
``GET  /portal/caps``                        portal  caps in force and the customer's cap changes
``POST /portal/caps/{meter}``                portal  raise or lower a cap within the plan's maximum
``GET  /portal/documents``                   portal  invoices, credit notes, statements to download
``GET  /portal/documents/{name}``            portal  one of them (only names that listing has)
``GET  /portal/evidence/{meter}.csv``        portal  every event behind a charge of a cycle
==========================================  ======  ================================================

A key is sent as ``Authorization: Bearer mbk_…``; the portal page also takes the
key from the ``meterbook_portal`` cookie set by ``/portal/login`` (HttpOnly,
SameSite=Strict; its forms carry a token derived from the key). A portal key
shows only the customer it is bound to: no route takes a customer from the request.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse

from ledger.api import counters, guard, intake, keys, portal
from ledger.errors import BadInput, MeterbookError
from ledger.escaping import SpreadsheetCsv
from ledger.lock import LockTimeout, workspace_lock
from ledger.session import Session
from ledger.workspace import Workspace

#: Largest request body accepted (bytes); larger ones get 413 before anything is read further.
MAX_BODY = 16 << 20
#: Seconds an API write waits for the workspace lock before answering 503 with Retry-After.
LOCK_WAIT = 5.0
COOKIE = "meterbook_portal"
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class ApiError(Exception):
    """An error answered as JSON ``{"error": code, "detail": detail}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


# --- the response models (the OpenAPI schema) ------------------------------------------------


class Problem(BaseModel):
    error: str = Field(description="machine-readable code, e.g. bad_json, unauthorized, forbidden")
    detail: str = Field(description="one line for people")


class RejectedRow(BaseModel):
    line: int = Field(
        description="the event's position in a JSON array (1-based), its line in NDJSON"
    )
    reason: str = Field(
        description="one of the file ingest's reject reasons, e.g. unknown_customer"
    )
    detail: str


class ConflictingRow(BaseModel):
    line: int
    detail: str


class IngestResult(BaseModel):
    batch: int | None = Field(description="the store batch holding this request's rows")
    received: int
    accepted: int
    duplicates: int
    conflicts: int
    rejected: int
    reasons: dict[str, int] = Field(description="rejected rows per reason")
    rejects: list[RejectedRow]
    conflicting: list[ConflictingRow]


class CapRequest(BaseModel):
    cap: str = Field(
        description="the new usage cap, a decimal in the meter's unit", examples=["250000"]
    )


class Health(BaseModel):
    status: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem},
    401: {"model": Problem},
    403: {"model": Problem},
    404: {"model": Problem},
    413: {"model": Problem},
    415: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


# --- the service: workspace, session, rules reloaded when edited ----------------------------------


@dataclass
class Service:
    """The open workspace behind the app; rules are reloaded when their files change."""

    workspace: Workspace
    session: Session
    max_body: int = MAX_BODY
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Seconds a write waits for the workspace lock (held by ``post``, ``close``, …) before 503.
    lock_wait: float = LOCK_WAIT
    _stamp: tuple[tuple[str, float], ...] = ()
    _checked: float = 0.0

    @classmethod
    def open(
        cls, workspace: Workspace, *, max_body: int = MAX_BODY, lock_wait: float = LOCK_WAIT
    ) -> Service:
        service = cls(workspace, Session.open(workspace), max_body, lock_wait=lock_wait)
        service._stamp = service._rules_stamp()
        with workspace_lock(workspace.root, "api (start)", store_url=workspace.store_url):
            counters.count_uncounted(service.session.engine, service.session.rules, workspace.tz)
        return service

    @contextlib.contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Hold the workspace lock for one write (``LockTimeout`` after :attr:`lock_wait` s):
        the API never writes the store while ``post``, ``close`` or ``ingest`` is half-way through.

        The file lock is :func:`ledger.lock.workspace_lock`'s; a PostgreSQL store's advisory
        lock (the same key) is taken on a pooled connection of the store rather than a new
        engine per write (that cost ~35 ms a request)."""
        deadline = time.monotonic() + self.lock_wait
        with (
            self.write_lock,
            workspace_lock(self.workspace.root, f"api {what}", timeout=self.lock_wait),
        ):
            if not self.workspace.store_url.startswith("postgresql"):
                yield
                return
            with self._advisory(deadline):
                yield

    @contextlib.contextmanager
    def _advisory(self, deadline: float) -> Iterator[None]:
        from sqlalchemy import text

        from ledger.lock import ADVISORY_CLASS

        key = f"{ADVISORY_CLASS}, hashtext(current_schema())"
        with self.session.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            while not conn.execute(text(f"SELECT pg_try_advisory_lock({key})")).scalar():
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"the store is locked by another meterbook command; gave up after "
                        f"{self.lock_wait:g} s"
                    )
                time.sleep(0.05)
            try:
                yield
            finally:
                conn.execute(text(f"SELECT pg_advisory_unlock({key})"))

    def _rules_stamp(self) -> tuple[tuple[str, float], ...]:
        try:
            return tuple(
                sorted((p.name, p.stat().st_mtime) for p in self.workspace.rules_dir.iterdir())
            )
        except OSError:
            return ()

    def current(self) -> Session:
        """The session, with the rules loaded again if a rules file changed (checked once a second);
        rules that no longer load keep the last good ones."""
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            stamp = self._rules_stamp()
            if stamp != self._stamp:
                from ledger.rules import load_rules

                try:
                    rules = load_rules(
                        self.workspace.rules_dir,
                        self.session.registry.pricing_models,
                        change_policy=self.workspace.subscription_changes,
                    )
                except MeterbookError:
                    return self.session
                self._stamp = stamp
                self.session = replace(self.session, rules=rules)
        return self.session


# --- keys ----------------------------------------------------------------------------------------


def _presented(request: Request, *, cookie: bool = True) -> str | None:
    """The key of a request: its ``Authorization: Bearer`` header, else (portal routes only,
    ``cookie``) the sign-in cookie. An ingest route never reads the cookie."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return request.cookies.get(COOKIE) if cookie else None


def _key(request: Request, scope: str) -> keys.ApiKey:
    service: Service = request.app.state.service
    text = _presented(request, cookie=scope == "portal")
    if not text:
        raise ApiError(
            401, "unauthorized", "send a key: Authorization: Bearer mbk_… (meterbook keys create)"
        )
    found = keys.verify(service.session.engine, text)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or revoked key")
    if found.scope != scope:
        raise ApiError(
            403,
            "forbidden",
            f"this route needs a {scope} key, not an {found.scope} key"
            if found.scope == "ingest"
            else f"this route needs an {scope} key, not a {found.scope} key",
        )
    return found


def ingest_key(request: Request) -> keys.ApiKey:
    return _key(request, "ingest")


def portal_key(request: Request) -> keys.ApiKey:
    found = _key(request, "portal")
    service: Service = request.app.state.service
    if found.customer not in service.current().rules.customers:
        raise ApiError(403, "forbidden", "this key's customer is no longer in the rules")
    return found


IngestKey = Annotated[keys.ApiKey, Depends(ingest_key)]
PortalKey = Annotated[keys.ApiKey, Depends(portal_key)]


def csrf_token(request: Request) -> str:
    """The token a cookie-signed-in form carries: derived from the key, unknown to other sites."""
    return hashlib.sha256(
        b"meterbook-portal-form:" + (_presented(request) or "").encode()
    ).hexdigest()[:32]


def _error_sig(request: Request, message: str) -> str:
    """The signature of a message shown on the page after a refused form: keyed by the
    signed-in key, so a link made by someone else cannot put its own text on the page."""
    return hmac.new(
        csrf_token(request).encode(), message.encode("utf-8", "replace"), "sha256"
    ).hexdigest()[:32]


def _check_csrf(request: Request, sent: object) -> None:
    """A write signed in by cookie (no ``Authorization`` header) must carry the page's token,
    as the form field ``csrf`` or the ``X-CSRF-Token`` header, whatever its content type."""
    if "authorization" in request.headers:
        return  # a bearer key is never sent by a browser on its own
    token = sent if isinstance(sent, str) and sent else request.headers.get("x-csrf-token", "")
    if not hmac.compare_digest(token.encode("utf-8", "replace"), csrf_token(request).encode()):
        raise ApiError(403, "forbidden", "the form's token does not match; reload the page")


# --- the app --------------------------------------------------------------------------------------


def create_app(service: Service) -> FastAPI:
    """The ASGI app serving ``service``'s workspace."""
    app = FastAPI(
        title="meterbook API",
        version="1",
        docs_url=None,
        redoc_url=None,
        description="Usage event ingest and the customer portal of a meterbook workspace.",
    )
    app.state.service = service
    templates = Environment(
        loader=PackageLoader("ledger.api", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            {"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(
            {"error": "invalid_request", "detail": f"{where}: {first.get('msg', 'invalid')}"},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": code, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    async def store_down(request: Request, exc: DBAPIError) -> JSONResponse:
        # the store refused or could not be reached (locked past the retries, down): nothing was
        # acknowledged, so the client may send the same request again
        return JSONResponse(
            {
                "error": "store_unavailable",
                "detail": "the store could not take the request; "
                "retry it (nothing of it was stored)",
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(LockTimeout)
    async def locked(request: Request, exc: LockTimeout) -> JSONResponse:
        # another command (post, close, ingest, keys) holds the workspace: nothing was written
        # (the holder's pid, host and the workspace path stay out of the answer)
        return JSONResponse(
            {
                "error": "workspace_locked",
                "detail": "another meterbook command (post, close, "
                "ingest, keys) holds the workspace; retry the request (nothing of it was stored)",
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(guard.BodyTooLarge)
    async def too_large(request: Request, exc: guard.BodyTooLarge) -> JSONResponse:
        return JSONResponse(
            {"error": "body_too_large", "detail": f"{exc}; send smaller batches"},
            status_code=413,
            headers={"Connection": "close"},
        )

    @app.exception_handler(guard.BodyTimeout)
    async def too_slow(request: Request, exc: guard.BodyTimeout) -> JSONResponse:
        return JSONResponse(
            {"error": "request_timeout", "detail": str(exc)},
            status_code=408,
            headers={"Connection": "close"},
        )

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse(
            {"error": "bad_input", "detail": " ".join(str(exc).split())}, status_code=400
        )

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": "internal", "detail": f"{type(exc).__name__}; see the server log"},
            status_code=500,
        )

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        if (
            request.method == "POST"
            and request.url.path.startswith("/portal")
            and guard.cross_site(request.headers)
        ):
            response: Response = JSONResponse(
                {"error": "forbidden", "detail": "a request from another site"}, status_code=403
            )
        else:
            response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.url.path.startswith("/portal"):
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("Content-Security-Policy", _CSP)
            response.headers.setdefault("X-Frame-Options", "DENY")
            # same-origin, not no-referrer: with no-referrer a browser's form POST says Origin: null
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    # --- ingest ---

    @app.post(
        "/v1/events",
        response_model=IngestResult,
        responses=_ERRORS,
        tags=["ingest"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                {"$ref": "#/components/schemas/Event"},
                            ]
                        }
                    },
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def post_events(request: Request, key: IngestKey) -> JSONResponse:
        """Store usage events: a JSON array (or one object) or NDJSON, plain events or CloudEvents.

        Same rules and row accounting as ``meterbook ingest``; committed before the answer."""
        kind = intake.body_kind(request.headers.get("content-type", ""))
        if kind is None:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send application/json (an event or an array) or application/x-ndjson",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > service.max_body:
            raise ApiError(
                413,
                "body_too_large",
                f"the body is over {service.max_body} bytes; send smaller batches",
            )
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > service.max_body:
                raise ApiError(
                    413,
                    "body_too_large",
                    f"the body is over {service.max_body} bytes; send smaller batches",
                )
            parts.append(chunk)
        body = b"".join(parts)
        if not body.strip():
            raise ApiError(400, "empty_body", "the body holds no events")
        if kind == "json":
            problem = intake.json_shape(body)
            if problem is not None:
                raise ApiError(400, "bad_json", problem)
        try:
            result = await run_in_threadpool(_store_events, service, body, kind, key.id)
        except intake.MalformedBody as exc:
            raise ApiError(400, "bad_json", str(exc)) from None
        return JSONResponse(result)

    @app.get("/v1/health", response_model=Health, tags=["ingest"])
    async def health() -> dict[str, str]:
        """Liveness: the service answers."""
        return {"status": "ok"}

    # --- portal: signing in ---

    @app.get("/portal/login", response_class=HTMLResponse, tags=["portal"])
    async def login_page(request: Request) -> HTMLResponse:
        """The sign-in form (a portal key)."""
        return HTMLResponse(templates.get_template("login.html").render(error=""))

    @app.post(
        "/portal/login",
        response_class=HTMLResponse,
        tags=["portal"],
        responses={303: {"description": "signed in: to /portal/"}},
    )
    def login(request: Request, key: Annotated[str, Form(max_length=200)]) -> Response:
        """Check a portal key and keep it in an HttpOnly, SameSite=Strict cookie."""
        found = keys.verify(service.session.engine, key.strip())
        if found is None or found.scope != "portal":
            page = templates.get_template("login.html").render(
                error="This is not a valid portal key."
            )
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse("/portal/", status_code=303)
        response.set_cookie(
            COOKIE,
            key.strip(),
            httponly=True,
            samesite="strict",
            path="/portal",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post(
        "/portal/logout", tags=["portal"], responses={303: {"description": "to /portal/login"}}
    )
    async def logout() -> Response:
        """Forget the key cookie."""
        response = RedirectResponse("/portal/login", status_code=303)
        response.delete_cookie(COOKIE, path="/portal")
        return response

    # --- portal: figures ---

    @app.get("/portal/", response_class=HTMLResponse, tags=["portal"], responses=_ERRORS)
    def portal_page(
        request: Request, key: PortalKey, error: str = "", sig: str = ""
    ) -> HTMLResponse:
        """The portal page: usage, daily chart, projected cost, caps, credit, documents."""
        if not hmac.compare_digest(
            sig.encode("utf-8", "replace"), _error_sig(request, error).encode()
        ):
            # only a message this server put in the link is shown (no text from a stranger's link)
            error = ""
        session = service.current()
        view = portal.portal_view(session, key.customer or "", session.today())
        page = templates.get_template("portal.html").render(
            v=view,
            s=view.statement,
            charts=_charts(view),
            csrf=csrf_token(request),
            error=error[:200],
        )
        return HTMLResponse(page)

    @app.get("/portal/summary", tags=["portal"], responses=_ERRORS)
    def summary(key: PortalKey) -> dict[str, Any]:
        """The portal's figures as JSON: cycle, usage per day, charges, projection, caps, credit,
        documents."""
        session = service.current()
        return portal.portal_view(session, key.customer or "", session.today()).to_json()

    @app.get("/portal/caps", tags=["portal"], responses=_ERRORS)
    def caps(key: PortalKey) -> dict[str, Any]:
        """The caps in force today (with the plan's maximum) and every cap change made."""
        session = service.current()
        view = portal.portal_view(session, key.customer or "", session.today())
        return {
            "caps": [c.to_json() for c in view.caps],
            "changes": [c.to_json() for c in view.changes],
        }

    @app.post(
        "/portal/caps/{meter}",
        tags=["portal"],
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/CapRequest"}},
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["cap", "csrf"],
                            "properties": {"cap": {"type": "string"}, "csrf": {"type": "string"}},
                        }
                    },
                },
            }
        },
    )
    async def set_cap(request: Request, meter: str, key: PortalKey) -> Response:
        """Raise or lower a usage cap from today on, within the plan's maximum (JSON or the page's
        form)."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        form = media in ("application/x-www-form-urlencoded", "multipart/form-data")
        if form:
            data = await request.form(max_files=0, max_fields=10)
            _check_csrf(request, data.get("csrf"))
            text = str(data.get("cap", ""))
        elif media == "application/json":
            _check_csrf(request, None)
            try:
                body = CapRequest.model_validate_json(await request.body())
            except ValueError:
                raise ApiError(422, "invalid_request", 'send {"cap": "<decimal>"}') from None
            text = body.cap
        else:  # text/plain and the like: what a cross-site form can send without a preflight
            raise ApiError(
                415,
                "unsupported_media_type",
                'send application/json {"cap": "<decimal>"} or the form',
            )
        session = service.current()
        try:
            change = await run_in_threadpool(
                _change_cap, service, session, key.customer or "", meter, text, key.id
            )
        except portal.CapRefused as exc:
            if form:
                message = exc.message[:200]
                return RedirectResponse(
                    f"/portal/?error={quote(message)}&sig={_error_sig(request, message)}",
                    status_code=303,
                )
            raise ApiError(exc.status, "cap_refused", exc.message) from None
        if form:
            return RedirectResponse("/portal/", status_code=303)
        return JSONResponse(change.to_json())

    @app.get("/portal/documents", tags=["portal"], responses=_ERRORS)
    def document_list(key: PortalKey) -> list[dict[str, str]]:
        """The customer's invoices, credit notes and statements (HTML, JSON, CSV)."""
        return [
            {"name": d.name, "kind": d.kind, "date": d.date, "url": f"/portal/documents/{d.name}"}
            for d in portal.documents(service.current(), key.customer or "")
        ]

    @app.get("/portal/documents/{name}", tags=["portal"], responses=_ERRORS)
    def document(name: str, key: PortalKey) -> Response:
        """One document of the listing, by name (nothing else on disk is reachable)."""
        found = {d.name: d for d in portal.documents(service.current(), key.customer or "")}.get(
            name
        )
        if found is None:
            raise ApiError(404, "not_found", "no such document of yours")
        media = {".html": "text/html", ".json": "application/json", ".csv": "text/csv"}[
            found.path.suffix
        ]
        return FileResponse(found.path, media_type=media, filename=found.name)

    @app.get("/portal/evidence/{meter}.csv", tags=["portal"], responses=_ERRORS)
    def evidence(meter: str, key: PortalKey, cycle: date | None = None) -> Response:
        """Every event behind the meter's charge in the cycle (today's or the one containing
        ``cycle``)."""
        session = service.current()
        return _evidence(session, key.customer or "", meter, cycle)

    app.openapi_schema = None
    _add_event_schema(app)
    app.add_middleware(guard.BodyGuard, ingest_limit=service.max_body)
    return app


def from_environment() -> FastAPI:
    """The app of the workspace in ``METERBOOK_API_WORKSPACE`` (each uvicorn worker process calls
    this)."""
    workspace = Workspace.load(Path(os.environ["METERBOOK_API_WORKSPACE"]))
    return create_app(
        Service.open(
            workspace,
            max_body=int(os.environ.get("METERBOOK_API_MAX_BODY", MAX_BODY)),
            lock_wait=float(os.environ.get("METERBOOK_API_LOCK_WAIT", LOCK_WAIT)),
        )
    )


#: Where request bodies are written for the engine: memory when the system has a tmpfs there.
_SPOOL = Path("/dev/shm") if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _store_events(service: Service, body: bytes, kind: str, key_id: str) -> dict[str, Any]:
    """Store a body's events (serialized: one writer) and count the batch live."""
    session = service.current()
    name = counters.batch_name(key_id, uuid.uuid4().hex)
    with service.writing("ingest"):
        floor = counters.event_floor(session.engine)
        report = intake.ingest_body(
            session.engine,
            session.rules,
            body,
            kind,
            name=name,
            now=datetime.now(UTC),
            spool=_SPOOL,
        )
        if report.report.batch_id is not None and report.report.accepted:
            counters.count_batch(
                session.engine,
                session.rules,
                session.workspace.tz,
                report.report.batch_id,
                key_id,
                floor,
            )
    return report.to_json()


def _change_cap(
    service: Service, session: Session, customer: str, meter: str, text: str, key_id: str
) -> portal.CapChange:
    """A cap change, made holding the workspace lock."""
    with service.writing("cap change"):
        return portal.change_cap(session, customer, meter, text, key_id, session.today())


def _evidence(session: Session, customer: str, meter_id: str, day: date | None) -> Response:
    from ledger.cycles import cycles_at
    from ledger.metering import cut_off_us
    from ledger.statements import CSV_COLUMNS, evidence_rows

    rules = session.rules
    today = session.today()
    if day is not None and day > today:
        raise ApiError(422, "invalid_request", "cycle: a day after today")
    running = cycles_at(rules.customers[customer], rules.plans, day or today)
    if not running and day is None:
        latest = portal.current_cycle(session, customer, today)
        running = (latest,) if latest is not None else ()
    if not running:
        raise ApiError(404, "not_found", "no billing cycle of yours contains that day")
    # with add-ons (subscription ids), the cycle of the subscription whose plan prices the meter
    cycle = next((c for c in running if meter_id in rules.plans[c.plan].priced_meters), running[0])
    meters = rules.plans[cycle.plan].priced_meters | set(rules.customers[customer].caps)
    if meter_id not in meters or meter_id not in rules.meters:
        raise ApiError(404, "not_found", f"no charge or cap of yours measures {meter_id!r}")
    tz = session.workspace.tz
    end = min(today + timedelta(days=1), cycle.end)  # through today, or the cycle's last day
    rows = evidence_rows(
        session.engine,
        [rules.meters[meter_id]],
        customer,
        cut_off_us(cycle.start, tz),
        cut_off_us(end, tz),
        tz,
    )

    def stream() -> Iterator[str]:
        out = io.StringIO()
        writer = SpreadsheetCsv(out)  # as the statement's CSV: no cell runs as a formula
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(row)
            if out.tell() > 1 << 16:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    name = f"{cycle.file_stem}-{meter_id}.csv"
    return StreamingResponse(
        stream(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _charts(view: portal.PortalView) -> list[dict[str, Any]]:
    """Per meter: the cycle's days with each day's quantity and bar height (0-100) for the SVG
    chart."""
    s = view.statement
    if s is None:
        return []
    days = [
        s.cycle.start.fromordinal(s.cycle.start.toordinal() + i)
        for i in range(s.projection.cycle_days)
    ]
    charts = []
    for usage in s.meters:
        by_day = {d: q for d, q, _n in usage.daily}
        top = max(by_day.values(), default=0) or 1
        bars = [
            {
                "day": d.isoformat(),
                "quantity": by_day.get(d, 0),
                "height": float(by_day.get(d, 0) / top) * 100,
                "today": d == s.through,
            }
            for d in days
        ]
        charts.append({"meter": usage.meter, "unit": usage.unit, "bars": bars, "top": top})
    return charts


def _add_event_schema(app: FastAPI) -> None:
    """The ``Event`` schema (a usage event or a CloudEvent) referenced by ``POST /v1/events``."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Event"] = {
            "type": "object",
            "description": "A usage event (id, source, customer, type, time, properties) "
            "or a structured-mode CloudEvent "
            "(specversion, id, source, subject = customer, type, time, data).",
            "properties": {
                "id": {"type": "string"},
                "source": {"type": "string"},
                "customer": {"type": "string"},
                "type": {"type": "string"},
                "time": {"type": "string", "format": "date-time"},
                "properties": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "specversion": {"type": "string"},
                "subject": {"type": "string"},
                "data": {"type": "object"},
            },
            "example": {
                "id": "e-1",
                "customer": "acme",
                "type": "api.request",
                "time": "2026-12-04T09:00:00Z",
                "properties": {"region": "eu"},
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
