"""Attacks on ``meterbook api`` that once got through, each tried again over real HTTP.

Workspace: the one of tests/test_api.py (acme and beta on plan ``pro``, api_calls
capped at 100, the plan's maximum 1000), acme's display name carrying markup.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from ledger.api import guard
from ledger.api.app import Service, create_app
from ledger.api.keys import create_key
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.api import CONFIG, body, customers, event, free_port, plans, post, start_api
from tests.support.workspaces import METERS_CALLS_TOKENS, write_workspace

EVIL_NAME = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


class Api:
    def __init__(self, url: str, root: Path, ingest: str, acme: str, beta: str):
        self.url, self.root, self.ingest, self.acme, self.beta = url, root, ingest, acme, beta

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {key}"} if key else {}
        )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    text = customers().replace("    name: Acme Corp\n", f"    name: '{EVIL_NAME}'\n")
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS_TOKENS, plans=plans(), customers=text, config=CONFIG
    )
    session = Session.open(Workspace.load(root))
    keys = [
        create_key(session.engine, session.rules, "ingest").secret,
        create_key(session.engine, session.rules, "portal", "acme").secret,
        create_key(session.engine, session.rules, "portal", "beta").secret,
    ]
    session.engine.dispose()
    url, service, server, thread = start_api(root)
    try:
        yield Api(url, root, *keys)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()


def test_an_ingest_key_in_the_portal_cookie_does_not_ingest(api: Api) -> None:
    """The cookie is the portal's sign-in: /v1/events reads only the Authorization header."""
    with httpx.Client(base_url=api.url, timeout=30, cookies={"meterbook_portal": api.ingest}) as c:
        answer = post(c, body([event("c-1")]))
    assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")
    with api.client(api.ingest) as c:
        assert post(c, body([event("c-1")])).json()["accepted"] == 1  # the header still works


@contextlib.contextmanager
def signed_in(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as browser:
        assert browser.post("/portal/login", data={"key": api.acme}).status_code == 303
        yield browser


def test_a_cookie_cap_change_needs_the_page_token_whatever_the_content_type(api: Api) -> None:
    """Another site's form can post ``text/plain`` that parses as JSON, or JSON by fetch: a
    cookie-signed-in write without the page's token is refused (415 / 403), as is any POST
    whose Origin or Sec-Fetch-Site names another site; the page's token as X-CSRF-Token works."""
    with signed_in(api) as browser:
        for content_type in ("text/plain", "", "application/x-json"):
            refused = browser.post(
                "/portal/caps/api_calls",
                content=b'{"cap": "900"}',
                headers={"Content-Type": content_type},
            )
            assert refused.status_code == 415, (content_type, refused.text)
        refused = browser.post("/portal/caps/api_calls", json={"cap": "900"})
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        refused = browser.post(
            "/portal/caps/api_calls", json={"cap": "900"}, headers={"X-CSRF-Token": "0" * 32}
        )
        assert refused.status_code == 403
        token = browser.get("/portal/").text.split('name="csrf" value="')[1].split('"')[0]
        from_elsewhere = browser.post(
            "/portal/caps/api_calls",
            json={"cap": "900"},
            headers={"X-CSRF-Token": token, "Origin": "https://evil.example"},
        )
        assert (from_elsewhere.status_code, from_elsewhere.text) == (
            403,
            '{"error":"forbidden","detail":"a request from another site"}',
        )
        login = browser.post(
            "/portal/login", data={"key": api.beta}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert login.status_code == 403
        assert (
            browser.get("/portal/caps").json()["caps"][0]["cap"] == "100"
        )  # nothing changed so far
        done = browser.post(
            "/portal/caps/api_calls",
            json={"cap": "900"},
            headers={"X-CSRF-Token": token, "Origin": api.url},
        )
        assert done.status_code == 200 and done.json()["cap"] == "900"


@pytest.mark.parametrize(
    "cap", ["\u0663\u0660\u0660", "NaN", "-5", "1e3", "1001", "0", "Infinity", "1" * 40]
)
def test_a_cap_outside_plain_ascii_decimals_up_to_the_plan_maximum_is_refused(
    api: Api, cap: str
) -> None:
    """Arabic-Indic digits (٣٠٠ = 300 to Python's Decimal), NaN, negatives, exponents and anything
    over the plan's maximum (1000) are refused with 422; the cap stays 100."""
    with api.client(api.acme) as c:
        refused = c.post("/portal/caps/api_calls", json={"cap": cap})
        assert (refused.status_code, refused.json()["error"]) == (422, "cap_refused")
        assert c.get("/portal/caps").json()["caps"][0]["cap"] == "100"


def test_bodies_are_bounded_in_size_and_time(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cap change of 100 KB is 413 (64 KiB for every route but ingest) and never read whole; a
    body that stops arriving (slowloris) is answered 408 after BODY_IDLE (0.5 s here) and
    nothing of it is stored."""
    monkeypatch.setattr(guard, "BODY_IDLE", 0.5)
    with api.client(api.acme) as c:
        large = c.post(
            "/portal/caps/api_calls",
            content=b'{"cap": "5", "x": "' + b"a" * 100_000 + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert (large.status_code, large.json()["error"]) == (413, "body_too_large")
    host, port = api.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.ingest}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[".encode()
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
    assert time.monotonic() - started < 5
    with api.client(api.acme) as c:
        assert c.get("/portal/summary").json()["usage"][0]["events"] == 0


def test_a_connection_whose_headers_never_end_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn with the API's protocol (:class:`ledger.api.guard.HeaderDeadline`): a client that
    sends half a request line and waits is cut off after HEADER_TIMEOUT (0.5 s here)."""
    monkeypatch.setattr(guard, "HEADER_TIMEOUT", 0.5)
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    service = Service.open(Workspace.load(root))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            http=guard.HeaderDeadline,
        )
    )
    import threading

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        assert (
            httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200
        )  # whole requests pass
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            assert sock.recv(1024) == b""  # closed by the server, not by our 10 s timeout
        assert time.monotonic() - started < 5
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()


def test_no_document_outside_the_listing_is_served(api: Api) -> None:
    """A symbolic link planted among the statements (to meterbook.toml) is neither listed nor
    served; ``..`` in any encoding never leaves the route; another customer's statement is 404."""
    statements = api.root / "statements"
    statements.mkdir()
    (statements / "acme-2026-10-01.html").write_text("<h1>October</h1>")
    (statements / "beta-2026-10-01.html").write_text("<h1>beta's</h1>")
    (statements / "acme-2026-11-01.html").symlink_to(api.root / "meterbook.toml")
    with api.client(api.acme) as c:
        assert [d["name"] for d in c.get("/portal/documents").json()] == ["acme-2026-10-01.html"]
        assert c.get("/portal/documents/acme-2026-10-01.html").text == "<h1>October</h1>"
        for path in (
            "acme-2026-11-01.html",
            "beta-2026-10-01.html",
            "..%2fmeterbook.toml",
            "%2e%2e%2f%2e%2e%2fmeterbook.toml",
            "..%252fmeterbook.toml",
            "..\\meterbook.toml",
        ):
            answer = c.get(f"/portal/documents/{path}")
            assert answer.status_code == 404 and "store" not in answer.text, path


def test_markup_in_names_and_event_properties_is_inert(api: Api) -> None:
    """acme's name and an event property carry <script>: the page shows them escaped under a CSP
    with no script source, no-store, nosniff and no framing; the evidence CSV quotes them."""
    with api.client(api.ingest) as c:
        assert (
            post(c, body([event("x-1", note="<script>alert(3)</script>", cmd="=1+1")])).json()[
                "accepted"
            ]
            == 1
        )
    with api.client(api.acme) as c:
        page = c.get("/portal/?error=<svg/onload=alert(4)>")
        csv = c.get("/portal/evidence/api_calls.csv")
    assert "<script" not in page.text and "<img" not in page.text and "<svg/onload" not in page.text
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none';")
    assert "script-src" not in page.headers["content-security-policy"]
    assert (
        page.headers["cache-control"],
        page.headers["x-content-type-options"],
        page.headers["x-frame-options"],
        page.headers["referrer-policy"],
    ) == ("no-store", "nosniff", "DENY", "same-origin")
    assert csv.headers["cache-control"] == "no-store" and csv.headers["content-type"].startswith(
        "text/csv"
    )
    assert '""note"":""<script>alert(3)</script>""' in csv.text


def test_a_signed_in_cookie_dies_with_its_revoked_key(api: Api) -> None:
    """Signed in, then ``keys revoke``: the same cookie is 401 on the very next request (the
    cookie holds the key itself, checked on each request, not a session that outlives it)."""
    from ledger.api.keys import parse_key, revoke_key

    with signed_in(api) as browser:
        assert browser.get("/portal/summary").status_code == 200
        session = Session.open(Workspace.load(api.root))
        revoke_key(session.engine, parse_key(api.acme) or "")
        session.engine.dispose()
        for path in (
            "/portal/",
            "/portal/summary",
            "/portal/caps",
            "/portal/documents",
            "/portal/evidence/api_calls.csv",
        ):
            answer = browser.get(path)
            assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized"), path
        assert browser.post("/portal/login", data={"key": api.acme}).status_code == 401


def test_a_server_killed_mid_request_neither_loses_nor_double_counts_on_retry(
    tmp_path: Path,
) -> None:
    """``meterbook api`` in its own process gets 50,000 events in one request and is killed
    (SIGKILL) 0.3 s in, before it answers. Started again, the client sends the same request
    twice: 50,000 events stored and counted live (50,000 calls today), the second time 50,000
    duplicates, whatever point the kill reached (before, inside or after the transaction)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import threading
    from datetime import UTC, datetime, timedelta

    from ledger.live_totals import daily_live_totals

    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    session = Session.open(Workspace.load(root))
    key = create_key(session.engine, session.rules, "ingest").secret
    port = free_port()
    today = datetime.now(UTC).date()
    payload = json.dumps([event(f"k-{i}") for i in range(50_000)])

    def start() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from ledger.cli import main; main()",
                "--workspace",
                str(root),
                "api",
                "--port",
                str(port),
            ],
            start_new_session=True,
        )
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("the API did not start")

    def send() -> httpx.Response:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=120,
            headers={"Authorization": f"Bearer {key}"},
        ) as c:
            return post(c, payload)

    server = start()
    outcome: dict[str, object] = {}
    sender = threading.Thread(target=lambda: outcome.update(answer=_try(send)))
    sender.start()
    time.sleep(0.3)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    sender.join(timeout=60)
    assert isinstance(outcome["answer"], Exception), (
        "answered before the kill: the test proves nothing"
    )
    server = start()
    try:
        first, again = send(), send()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    assert (
        first.status_code == 200 and first.json()["accepted"] + first.json()["duplicates"] == 50_000
    )
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 50_000)
    with session.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 50_000
    assert daily_live_totals(session.engine, start=today, end=today + timedelta(days=1)) == {
        ("api_calls", "acme"): {today: Decimal(50_000)}
    }
    session.engine.dispose()


def _try(call: Callable[[], httpx.Response]) -> httpx.Response | Exception:
    try:
        return call()
    except httpx.TransportError as exc:
        return exc


def test_the_page_shows_only_error_messages_it_signed(api: Api) -> None:
    """A link to ``/portal/?error=Your account is suspended, call +1 555 0100`` puts no text on a
    customer's page; a refused cap form redirects with its message and a signature keyed by the
    signed-in key, and that message is shown (to that key only)."""
    with signed_in(api) as browser:
        spoofed = browser.get(
            "/portal/", params={"error": "Your account is suspended, call +1 555 0100"}
        )
        assert (
            spoofed.status_code == 200
            and "suspended" not in spoofed.text
            and 'id="error"' not in spoofed.text
        )
        token = spoofed.text.split('name="csrf" value="')[1].split('"')[0]
        refused = browser.post("/portal/caps/api_calls", data={"cap": "5000", "csrf": token})
        assert refused.status_code == 303 and "&sig=" in refused.headers["location"]
        shown = browser.get(refused.headers["location"])
        assert (
            '<p class="error" id="error">at most 1000, the maximum of your plan</p>' in shown.text
        )
    with api.client(api.beta) as other:  # the same link under another key: not shown
        assert "at most 1000" not in other.get(refused.headers["location"]).text
