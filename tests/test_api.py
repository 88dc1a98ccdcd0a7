"""``meterbook api`` over real HTTP: uvicorn on a free loopback port, a real SQLite store.

Worked example (the workspace of tests/support/api.py, today ``T`` in UTC, acme's cycle ``T`` to one
month later, ``N`` days, N = 31 on 2026-12-04): acme's ingest pushes five events,

    line 1  acme  api.request     accepted
    line 2  acme  api.request     accepted
    line 3  acme  llm.completion  tokens 1200.5, accepted
    line 4  nobody api.request    rejected unknown_customer
    line 5  acme  api.request     time "yesterday-ish"  rejected bad_time

so ``received 5 = accepted 3 + rejected 2``; the same body again is 3 duplicates.
On day 1 of N the portal shows api_calls 2 (0.02 USD at 0.01) and tokens 1200.5
(1.2005 → 1.20 USD at 0.001); the run rate projects ``2 × N`` calls and
``1200.5 × N`` tokens: on 2026-12-04, 62 calls → 0.62 and 37215.5 tokens → 37.22,
usage 37.84, less prepaid credit (5.00 granted, all of it usable): 32.84 USD.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ledger.alerts import find_alerts
from ledger.api.app import Service
from ledger.api.keys import create_key, key_hash, revoke_key
from ledger.live_totals import daily_live_totals
from ledger.session import Session
from ledger.store import api_batches, api_keys, batches
from ledger.workspace import Workspace
from tests.support.api import (
    CONFIG,
    FIVE,
    NOW,
    TODAY,
    body,
    customers,
    event,
    free_port,
    plans,
    post,
    stamp,
    start_api,
)
from tests.support.workspaces import METERS_CALLS_TOKENS, run_cli, write_workspace


@dataclass
class Live:
    """A running API: its URL, workspace, session and keys (the key texts)."""

    url: str
    root: Path
    service: Service
    ingest: str
    acme: str
    beta: str
    revoked: str

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    """The API over a SQLite file, and over a fresh PostgreSQL schema when
    METERBOOK_TEST_DATABASE_URL is set."""
    config = CONFIG
    if request.param == "postgres":
        config = f'store = "{request.getfixturevalue("pg_url")}"\ntimezone = "UTC"\n'
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=config,
    )
    session = Session.open(Workspace.load(root))
    engine, rules = session.engine, session.rules
    ingest = create_key(engine, rules, "ingest").secret
    acme = create_key(engine, rules, "portal", "acme").secret
    beta = create_key(engine, rules, "portal", "beta").secret
    revoked = create_key(engine, rules, "portal", "acme")
    revoke_key(engine, revoked.key.id)
    engine.dispose()
    url, service, server, thread = start_api(root)
    try:
        yield Live(url, root, service, ingest, acme, beta, revoked.secret)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()


def test_ingest_accounts_for_every_row_and_is_idempotent_across_requests_and_files(
    live: Live,
) -> None:
    """The five events of the module docstring; again (3 duplicates); an NDJSON body with a
    CloudEvent; a file holding e-1 and a new event (1 duplicate, 1 accepted); e-2 with another
    payload (1 conflict)."""
    with live.client(live.ingest) as client:
        first = post(client, body(FIVE))
        assert first.status_code == 200, first.text
        got = first.json()
        assert (
            got["received"],
            got["accepted"],
            got["duplicates"],
            got["conflicts"],
            got["rejected"],
        ) == (5, 3, 0, 0, 2)
        assert got["reasons"] == {"bad_time": 1, "unknown_customer": 1}
        assert [(r["line"], r["reason"]) for r in got["rejects"]] == [
            (4, "unknown_customer"),
            (5, "bad_time"),
        ]
        again = post(client, body(FIVE)).json()
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 3, 2)

        cloud = {
            "specversion": "1.0",
            "id": "c-1",
            "source": "gw",
            "subject": "acme",
            "type": "api.request",
            "time": stamp(30),
            "data": {},
        }
        ndjson = json.dumps(cloud) + "\nnot json\n" + json.dumps(event("e-6")) + "\n"
        mixed = post(client, ndjson, "application/x-ndjson").json()
        assert (mixed["received"], mixed["accepted"], mixed["rejected"]) == (3, 2, 1)
        assert mixed["rejects"] == [{"line": 2, "reason": "bad_json", "detail": "Expecting value"}]

        changed = post(client, body([{**event("e-2"), "properties": {"region": "eu"}}])).json()
        assert (changed["conflicts"], changed["accepted"]) == (1, 0)
        assert changed["conflicting"] == [
            {
                "line": 1,
                "detail": "(app, e-2) is stored with another payload; the first stored wins",
            }
        ]

    file = live.root / "late.jsonl"
    file.write_text(json.dumps(event("e-1")) + "\n" + json.dumps(event("e-7")) + "\n")
    result = run_cli(live.root, "ingest", str(file))
    assert result.exit_code == 0, result.output
    assert "received 2, accepted 1, duplicates 1" in result.output


def test_every_write_names_its_key_and_each_batch_is_counted_once(live: Live) -> None:
    with live.client(live.ingest) as client:
        assert post(client, body(FIVE[:2])).status_code == 200
    engine = live.service.session.engine
    with engine.connect() as conn:
        (name,) = (
            conn.execute(sa.select(batches.c.file).where(batches.c.file.like("api:%")))
            .scalars()
            .all()
        )
        key_id = name.split(":")[1]
        assert (
            conn.execute(sa.select(api_keys.c.scope).where(api_keys.c.id == key_id)).scalar_one()
            == "ingest"
        )
        assert conn.execute(sa.select(api_batches.c.key_id)).scalars().all() == [key_id]
    live_totals = daily_live_totals(engine, start=TODAY, end=TODAY + timedelta(days=1))
    assert live_totals == {("api_calls", "acme"): {TODAY: Decimal(2)}}


def test_live_counters_feed_the_dual_track_reconciler(live: Live) -> None:
    """API counters: acme api_calls 2 and tokens 1200.5 today. A file then adds one call the API
    never saw: the batch metering gives 3, the live record 2, so the dual-track check reports 3 vs
    2."""
    with live.client(live.ingest) as client:
        assert post(client, body(FIVE[:3])).json()["accepted"] == 3
    engine = live.service.session.engine
    assert daily_live_totals(engine, start=TODAY, end=TODAY + timedelta(days=1)) == {
        ("api_calls", "acme"): {TODAY: Decimal(2)},
        ("tokens", "acme"): {TODAY: Decimal("1200.5")},
    }
    file = live.root / "extra.jsonl"
    file.write_text(json.dumps(event("f-1")) + "\n")
    assert run_cli(live.root, "ingest", str(file)).exit_code == 0
    from plugins.reconcile_dual_track import DualTrack

    @dataclass
    class Context:
        engine: Any
        rules: Any
        workspace: Any
        start: date
        end: date
        period: str

    month_start = TODAY.replace(day=1)
    month_end = (month_start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    session = live.service.session
    findings = list(
        DualTrack().check(
            Context(
                engine,
                session.rules,
                session.workspace,
                month_start,
                month_end,
                month_start.strftime("%Y-%m"),
            )
        )
    )
    assert [(f.customer, f.meter, f.expected, f.actual, f.severity) for f in findings] == [
        ("acme", "api_calls", Decimal(2), Decimal(3), "error")
    ]


def test_bad_requests_are_clear_json_4xx_and_store_nothing(tmp_path: Path) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    session = Session.open(Workspace.load(root))
    ingest = create_key(session.engine, session.rules, "ingest").secret
    portal = create_key(session.engine, session.rules, "portal", "acme").secret
    url, service, server, thread = start_api(root, max_body=2048)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ingest}"}) as client:
            cases = [
                (post(client, body(FIVE), "text/csv"), 415, "unsupported_media_type"),
                (post(client, '[{"id": "x",'), 400, "bad_json"),
                (post(client, body(FIVE[:2])[:-1] + ', {"id": 1 2}]'), 400, "bad_json"),
                (post(client, '"just a string"'), 400, "bad_json"),
                (post(client, "   "), 400, "empty_body"),
                (post(client, body([event(f"big-{i}") for i in range(40)])), 413, "body_too_large"),
                (
                    client.post("/v1/events", json=FIVE[:1], headers={"Authorization": ""}),
                    401,
                    "unauthorized",
                ),
                (
                    client.post(
                        "/v1/events", json=FIVE[:1], headers={"Authorization": "Bearer mbk_nope"}
                    ),
                    401,
                    "unauthorized",
                ),
                (
                    client.post(
                        "/v1/events", json=FIVE[:1], headers={"Authorization": f"Bearer {portal}"}
                    ),
                    403,
                    "forbidden",
                ),
            ]
            for response, status, code in cases:
                assert (response.status_code, response.json()["error"]) == (status, code), (
                    response.text
                )
                assert response.headers["content-type"] == "application/json"
            future = post(
                client,
                body([event("f", when=(NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))]),
            )
            assert future.json()["reasons"] == {"future_time": 1}
        with session.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()


PORTAL_GETS = [
    "/portal/",
    "/portal/summary",
    "/portal/caps",
    "/portal/documents",
    "/portal/documents/INV-2026-000001.html",
    "/portal/evidence/api_calls.csv",
]


def test_every_portal_route_refuses_no_key_a_revoked_key_and_an_ingest_key(live: Live) -> None:
    for path in PORTAL_GETS:
        for key, status in (
            (None, 401),
            (live.revoked, 401),
            ("mbk_k000000000000_" + "x" * 43, 401),
            (live.ingest, 403),
        ):
            with live.client(key) as client:
                response = client.get(path)
                assert response.status_code == status, (path, key, response.text)
                assert response.json()["error"] in ("unauthorized", "forbidden")
        with live.client(live.ingest) as client:
            assert client.post("/portal/caps/api_calls", json={"cap": "500"}).status_code == 403


def test_a_customer_sees_only_its_own_data(live: Live) -> None:
    with live.client(live.ingest) as client:
        post(client, body([*FIVE[:3], event("b-1", customer="beta")]))
    workspace = Workspace.load(live.root)
    statements = workspace.root / "statements"
    statements.mkdir()
    (statements / f"acme-{TODAY}.html").write_text("<p>acme's statement</p>")
    (statements / "secret.txt").write_text("not a document")
    with live.client(live.beta) as client:
        summary = client.get("/portal/summary").json()
        assert summary["customer"] == "beta"
        assert [(u["meter"], u["quantity"]) for u in summary["usage"]] == [
            ("api_calls", "1"),
            ("tokens", "0"),
        ]
        assert client.get("/portal/documents").json() == []
        assert client.get(f"/portal/documents/acme-{TODAY}.html").status_code == 404
        rows = client.get("/portal/evidence/api_calls.csv").text.splitlines()
        assert len(rows) == 2 and ",b-1," in rows[1]
        assert "Acme" not in client.get("/portal/").text
        for (
            path
        ) in PORTAL_GETS:  # beta's key on every route: beta's own figures or 404, never acme's
            response = client.get(path)
            assert response.status_code in (200, 404), (path, response.text)
            assert "acme" not in response.text.lower(), path
        assert client.post("/portal/caps/api_calls", json={"cap": "7"}).json()["customer"] == "beta"
    with live.client(live.acme) as client:
        assert client.get("/portal/caps").json()["changes"] == []  # beta's change is not acme's
        assert client.get(f"/portal/documents/acme-{TODAY}.html").text == "<p>acme's statement</p>"
        for path in (
            "/portal/documents/..%2Fmeterbook.toml",
            "/portal/documents/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            "/portal/documents/secret.txt",
            "/portal/documents/%2E%2E",
            "/portal/evidence/..%2F.csv",
        ):
            response = client.get(path)
            assert response.status_code == 404, (path, response.text)
            assert "store" not in response.text


def test_the_portal_shows_live_usage_and_the_projected_cycle_cost(live: Live) -> None:
    """The module docstring's figures, for whatever N today's cycle has."""
    with live.client(live.ingest) as client:
        post(client, body(FIVE[:3]))
    with live.client(live.acme) as client:
        summary = client.get("/portal/summary").json()
    cycle_days = summary["cycle"]["days"]
    assert summary["cycle"]["elapsed_days"] == 1
    assert [(u["meter"], u["quantity"], u["daily"]) for u in summary["usage"]] == [
        ("api_calls", "2", [{"day": str(TODAY), "quantity": "2", "events": 2}]),
        ("tokens", "1200.5", [{"day": str(TODAY), "quantity": "1200.5", "events": 1}]),
    ]
    cents = Decimal("0.01")
    calls = (Decimal(2 * cycle_days) * Decimal("0.01")).quantize(cents, ROUND_HALF_EVEN)
    tokens = (Decimal("1200.5") * cycle_days * Decimal("0.001")).quantize(cents, ROUND_HALF_EVEN)
    projection = summary["projection"]
    assert [c["projected_amount"] for c in projection["charges"]] == [str(calls), str(tokens)]
    assert Decimal(projection["total"]) == calls + tokens - Decimal("5.00")
    if cycle_days == 31:
        assert projection["total"] == "32.84"
    assert summary["credits"] == [
        {
            "amount": "5.00",
            "granted": str(TODAY),
            "expires": str(TODAY + timedelta(days=60)),
            "left": "3.78",
        }
    ]
    assert summary["caps"][0] | {"thresholds": None} == {
        "meter": "api_calls",
        "unit": "call",
        "cap": "100",
        "maximum": "1000",
        "used": "2",
        "projected": str(2 * cycle_days),
        "percent": "2.0",
        "status": "ok",
        "thresholds": None,
    }


def test_self_service_caps_stay_within_the_plan_maximum_and_alerts_use_them(live: Live) -> None:
    """acme's cap 100 (2 calls used: no alert). Lowered to 2 today: 2 ≥ 0.8 × 2 and ≥ 1.0 × 2, so
    both thresholds are reached today, each alert carrying cap 2 (the statement shows cap 2 and
    both); above 1000 (the plan's maximum), not a number, or on tokens (no maximum) is refused."""
    with live.client(live.ingest) as client:
        post(client, body(FIVE[:2]))
    session = Session.open(Workspace.load(live.root))
    assert find_alerts(session, TODAY) == []
    with live.client(live.acme) as client:
        for cap, status in (("1000.01", 422), ("-3", 422), ("1e3", 422), ("0", 422)):
            response = client.post("/portal/caps/api_calls", json={"cap": cap})
            assert (response.status_code, response.json()["error"]) == (status, "cap_refused"), cap
        assert client.post("/portal/caps/tokens", json={"cap": "10"}).status_code == 403
        assert client.post("/portal/caps/nope", json={"cap": "10"}).status_code == 404
        changed = client.post("/portal/caps/api_calls", json={"cap": "2"})
        assert changed.status_code == 200, changed.text
        assert changed.json() | {"changed_at": None} == {
            "customer": "acme",
            "meter": "api_calls",
            "cap": "2",
            "previous": "100",
            "effective": str(TODAY),
            "changed_at": None,
            "key": changed.json()["key"],
        }
        assert client.get("/portal/caps").json()["caps"][0]["status"] == f"100 % reached on {TODAY}"
    alerts = find_alerts(session, TODAY)
    assert [(a.id.split(":")[-1], a.cap, a.value, a.date) for a in alerts] == [
        ("80", Decimal(2), Decimal(2), TODAY),
        ("100", Decimal(2), Decimal(2), TODAY),
    ]
    from ledger.statements import build_statement, pick_cycle

    statement = build_statement(
        session, pick_cycle(session.rules, "acme", "current", TODAY), today=TODAY
    )
    assert [(c.meter, c.cap, [a.percent for a in c.crossed]) for c in statement.caps] == [
        ("api_calls", Decimal(2), ["80", "100"])
    ]
    listed = run_cli(live.root, "caps")
    assert (
        listed.exit_code == 0 and f"{TODAY}  acme" in listed.output and "100 -> 2" in listed.output
    )


def test_keys_are_stored_as_hashes_and_revoking_takes_effect_at_once(tmp_path: Path) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    created = run_cli(
        root, "keys", "create", "--scope", "portal", "--customer", "acme", "--label", "acme ops"
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("mbk_k")
    store = b"".join(p.read_bytes() for p in (root / "var").glob("events.sqlite*"))  # with the WAL
    assert secret.encode() not in store and key_hash(secret).encode() in store
    key_id = secret.split("_")[1]
    listed = run_cli(root, "keys", "list")
    assert f"{key_id}  portal  acme" in listed.output and secret not in listed.output
    assert run_cli(root, "keys", "create", "--scope", "portal").exit_code == 2
    assert (
        run_cli(root, "keys", "create", "--scope", "portal", "--customer", "nobody").exit_code == 2
    )
    assert run_cli(root, "keys", "create", "--scope", "ingest", "--customer", "acme").exit_code == 2
    url, service, server, thread = start_api(root)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
            assert client.get("/portal/summary").status_code == 200
            assert run_cli(root, "keys", "revoke", key_id).exit_code == 0
            assert client.get("/portal/summary").status_code == 401
        assert "REVOKED" in run_cli(root, "keys", "list").output
        assert run_cli(root, "keys", "revoke", "k000000000000").exit_code == 2
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()


def test_the_openapi_schema_names_every_route(live: Live) -> None:
    with live.client() as client:
        schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/v1/events",
        "/v1/health",
        "/portal/",
        "/portal/summary",
        "/portal/caps",
        "/portal/caps/{meter}",
        "/portal/documents",
        "/portal/documents/{name}",
        "/portal/evidence/{meter}.csv",
        "/portal/login",
        "/portal/logout",
    }
    assert "Event" in schema["components"]["schemas"]


def test_the_api_refuses_a_remote_host_without_allow_remote(tmp_path: Path) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    result = run_cli(root, "api", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "--allow-remote" in result.output


def test_edited_rules_are_used_without_a_restart(live: Live) -> None:
    """A customer added to customers.yaml is known to the running API about a second later."""
    with live.client(live.ingest) as client:
        assert post(client, body([event("g-1", customer="gamma")])).json()["reasons"] == {
            "unknown_customer": 1
        }
        rules = live.root / "rules" / "customers.yaml"
        rules.write_text(rules.read_text() + "  gamma: {currency: USD}\n")
        time.sleep(1.1)
        assert post(client, body([event("g-2", customer="gamma")])).json()["accepted"] == 1


def test_a_cookie_sign_in_changes_a_cap_only_with_the_page_token(live: Live) -> None:
    """Signed in by cookie (``/portal/login``), a form post without the page's token is refused
    (another site cannot post the form for the customer); with it, the cap changes."""
    import re

    with httpx.Client(base_url=live.url, timeout=30) as browser:
        assert browser.post("/portal/login", data={"key": "mbk_wrong"}).status_code == 401
        signed = browser.post("/portal/login", data={"key": live.acme})
        assert signed.status_code == 303 and "httponly" in signed.headers["set-cookie"].lower()
        page = browser.get("/portal/")
        assert (
            page.status_code == 200
            and "default-src 'none'" in page.headers["content-security-policy"]
        )
        refused = browser.post("/portal/caps/api_calls", data={"cap": "500"})
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        token = re.search(r'name="csrf" value="(\w+)"', page.text)
        assert token is not None
        done = browser.post("/portal/caps/api_calls", data={"cap": "500", "csrf": token.group(1)})
        assert done.status_code == 303
        assert browser.get("/portal/caps").json()["caps"][0]["cap"] == "500"
        browser.post("/portal/logout")
        assert browser.get("/portal/caps").status_code == 401


def test_a_killed_server_keeps_what_it_acknowledged_and_uncounted_batches_are_counted_at_start(
    tmp_path: Path,
) -> None:
    """``meterbook api`` as its own process: 2 events acknowledged, then SIGKILL: both are in the
    store. A batch stored without its counters (a process that died in between, made here by
    storing one directly) is counted when the API starts again: 2 + 1 calls live, exactly once."""
    import os
    import signal
    import subprocess
    import sys

    from ledger.api import intake
    from ledger.api.counters import batch_name

    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    session = Session.open(Workspace.load(root))
    key = create_key(session.engine, session.rules, "ingest")
    port = free_port()
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
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key.secret}"}
        ) as c:
            assert post(c, body(FIVE[:2])).json()["accepted"] == 2
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    with session.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 2
    stored = intake.ingest_body(
        session.engine,
        session.rules,
        body([event("late-1")]).encode(),
        "json",
        name=batch_name(key.key.id, "crashed"),
        now=datetime.now(UTC),
    )
    assert stored.report.accepted == 1
    day = {TODAY: Decimal(2)}
    assert daily_live_totals(session.engine, start=TODAY, end=TODAY + timedelta(days=1)) == {
        ("api_calls", "acme"): day
    }
    for _ in range(2):  # two starts: counted once
        Service.open(Workspace.load(root)).session.engine.dispose()
    assert daily_live_totals(session.engine, start=TODAY, end=TODAY + timedelta(days=1)) == {
        ("api_calls", "acme"): {TODAY: Decimal(3)}
    }
