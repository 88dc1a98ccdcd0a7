"""Caps and alerts: crossings computed by hand, raised once, notified through the hook and the webhook plugin.

Workspace below (UTC): plan ``g`` charges api_calls graduated, 10 free then 0.05.

- ``capped`` (cap 100 calls, thresholds 80 % and 100 %): 10 calls a day from Sep 1 and Oct 1,
  so cumulative 10·d calls on day d: 80 % on Sep 8 (80 calls), 100 % on Sep 10 (100); again
  in October's cycle on Oct 8 and Oct 10.
- ``spender`` (spend cap 4.00 USD, thresholds 50 % and 100 %): 10 calls a day from Sep 1, so
  spend on day d is (10·d − 10) × 0.05 = 0.5·d − 0.5: 2.00 on Sep 5, 4.00 on Sep 9.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.alerts import raise_alerts, raised_ids
from ledger.cli import cli
from ledger.errors import RulesError, WorkspaceError
from ledger.events import Event, parse_time
from ledger.rules import load_rules
from ledger.session import Session
from ledger.store import batches, events
from ledger.workspace import Workspace

METERS = "meters:\n  api_calls: {event_type: api.request, aggregation: count, unit: call}\n"
PLANS = """\
plans:
  g:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {unit_price: "0.05"}
"""
CUSTOMERS = """\
customers:
  capped:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    caps: {api_calls: 100}
  spender:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
    spend_cap: "4.00"
    alert_thresholds: ["0.5", "1.0"]
  quiet:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: g, start: 2026-09-01}]
"""
RECORDER = """\
from pathlib import Path

from ledger.hookspecs import hookimpl


@hookimpl
def meterbook_alert(alert):
    with open(Path(__file__).parent / "received.txt", "a") as handle:
        handle.write(alert.id + "\\n")
"""
BOOM = """\
from ledger.hookspecs import hookimpl


@hookimpl
def meterbook_alert(alert):
    raise RuntimeError("smtp down")
"""


def _calls(customer: str, days: list[str]) -> list[Event]:
    return [Event.build(source="t", id=f"{customer}-{day}-{i}", customer=customer, type="api.request",
                        time=parse_time(f"{day}T12:00:00Z"), properties={})
            for day in days for i in range(10)]


def make_workspace(root: Path, store: str, *, alerts: str = "", plugins: dict[str, str] | None = None) -> Session:
    (root / "rules").mkdir(parents=True)
    config = f'store = "{store}"\n'
    if plugins:
        config += 'plugins_dir = "plugins"\n'
        (root / "plugins").mkdir()
        for name, text in plugins.items():
            (root / "plugins" / f"{name}.py").write_text(text)
    (root / "meterbook.toml").write_text(config + alerts)
    (root / "rules" / "meters.yaml").write_text(METERS)
    (root / "rules" / "plans.yaml").write_text(PLANS)
    (root / "rules" / "customers.yaml").write_text(CUSTOMERS)
    session = Session.open(Workspace.load(root))
    sep = [f"2026-09-{d:02d}" for d in range(1, 31)]
    rows = [*_calls("capped", sep), *_calls("capped", [f"2026-10-{d:02d}" for d in range(1, 11)]),
            *_calls("spender", sep), *_calls("quiet", sep[:3])]
    with session.engine.begin() as conn:
        batch = conn.execute(batches.insert().values(
            file="t", sha256="0" * 64, importer="test", started_at="now")).inserted_primary_key[0]
        conn.execute(events.insert(), [e.row(batch) for e in rows])
    return session


def received(session: Session) -> list[str]:
    path = session.workspace.root / "plugins" / "received.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_cap_crossing_alerts_once_and_only_once(tmp_path: Path, store_url: str) -> None:
    session = make_workspace(tmp_path / "ws", store_url, plugins={"recorder": RECORDER})

    run = raise_alerts(session, date(2026, 9, 8))
    assert [(a.id, a.date, a.value) for a in run.alerts if a.customer == "capped"] == [
        ("usage-cap:capped:api_calls:2026-09-01:80", date(2026, 9, 8), Decimal(80))]
    assert run.new == {"usage-cap:capped:api_calls:2026-09-01:80", "spend-cap:spender:2026-09-01:50"}
    assert raise_alerts(session, date(2026, 9, 8)).new == set()        # same run again: nothing new

    later = raise_alerts(session, date(2026, 10, 31))
    capped = [(a.id, a.date, a.value) for a in later.alerts if a.customer == "capped"]
    assert capped == [
        ("usage-cap:capped:api_calls:2026-09-01:80", date(2026, 9, 8), Decimal(80)),
        ("usage-cap:capped:api_calls:2026-09-01:100", date(2026, 9, 10), Decimal(100)),
        ("usage-cap:capped:api_calls:2026-10-01:80", date(2026, 10, 8), Decimal(80)),
        ("usage-cap:capped:api_calls:2026-10-01:100", date(2026, 10, 10), Decimal(100)),
    ]
    assert "usage-cap:capped:api_calls:2026-09-01:80" not in later.new
    for _ in range(2):
        again = raise_alerts(session, date(2026, 10, 31))
        assert again.new == set() and again.alerts == later.alerts

    # the hook saw each crossing exactly once, in the order raised
    capped_received = [i for i in received(session) if i.startswith("usage-cap")]
    assert capped_received == [a for a, _d, _v in capped]
    assert len(received(session)) == len(set(received(session))) == len(raised_ids(session.engine)) == 6
    assert capped[0][0] in raised_ids(session.engine)


def test_spend_cap_crossings(tmp_path: Path) -> None:
    session = make_workspace(tmp_path / "ws", f"sqlite:///{tmp_path / 'e.sqlite'}")
    run = raise_alerts(session, date(2026, 9, 30))
    spend = [a for a in run.alerts if a.kind == "spend_cap"]
    # spend on day d = 0.5·d − 0.5: 2.00 (50 % of 4.00) on Sep 5, 4.00 on Sep 9
    assert [(a.id, a.date, a.value, a.level) for a in spend] == [
        ("spend-cap:spender:2026-09-01:50", date(2026, 9, 5), Decimal("2.00"), Decimal(2)),
        ("spend-cap:spender:2026-09-01:100", date(2026, 9, 9), Decimal("4.00"), Decimal(4)),
    ]
    assert spend[0].message == ("spender: spend reached 50 % of the cap (2.00 of 4.00 USD) on 2026-09-05: "
                                "2.00 USD in cycle 2026-09-01/2026-10-01")
    assert spend[0].payload()["meter"] is None and spend[0].payload()["value"] == "2.00"
    assert not [a for a in run.alerts if a.customer == "quiet"]


def test_failing_plugin_is_reported_and_does_not_stop_others(tmp_path: Path) -> None:
    session = make_workspace(tmp_path / "ws", f"sqlite:///{tmp_path / 'e.sqlite'}",
                             plugins={"boom": BOOM, "recorder": RECORDER})
    run = raise_alerts(session, date(2026, 9, 30))
    assert run.new == set() and len(run.pending) == 4  # not every plugin took them: not marked raised
    assert sorted(received(session)) == sorted(run.pending)
    assert {(f.plugin, f.error) for _id, f in run.failures} == {("meterbook_local.boom", "RuntimeError: smtp down")}
    assert len(run.failures) == 4
    assert raised_ids(session.engine) == set()
    again = raise_alerts(session, date(2026, 9, 30))  # retried, never lost (the recorder hears them twice)
    assert again.pending == run.pending and len(again.failures) == 4
    assert len(received(session)) == 8


def test_cli_lists_crossings_and_marks_new(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root, f"sqlite:///{tmp_path / 'e.sqlite'}", plugins={"boom": BOOM})
    runner = CliRunner()
    first = runner.invoke(cli, ["--workspace", str(root), "alerts", "--through", "2026-09-09", "--json"])
    assert first.exit_code == 1, first.output
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(r["id"], r["new"], r["pending"]) for r in rows] == [
        ("spend-cap:spender:2026-09-01:50", False, True),
        ("usage-cap:capped:api_calls:2026-09-01:80", False, True),
        ("spend-cap:spender:2026-09-01:100", False, True)]
    assert first.stderr == (
        "meterbook: error: 3 new alerts not delivered (plugin meterbook_local.boom on "
        "spend-cap:spender:2026-09-01:50: RuntimeError: smtp down; 2 more failures); they are not marked raised "
        "and the next run retries them\n")
    (root / "plugins" / "boom.py").unlink()
    second = runner.invoke(cli, ["--workspace", str(root), "alerts", "--through", "2026-09-09"])
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[-1] == "3 crossings through 2026-09-09, 3 new"
    third = runner.invoke(cli, ["--workspace", str(root), "alerts", "--through", "2026-09-09"])
    assert "NEW" not in third.stdout
    assert third.stdout.splitlines()[-1] == "3 crossings through 2026-09-09, 0 new"
    bad = runner.invoke(cli, ["--workspace", str(root), "alerts", "--through", "09/09/2026"])
    assert bad.exit_code == 2 and "--through" in bad.output


# --- the webhook plugin ---------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = server.statuses.pop(0) if server.statuses else 200
        server.requests.append((status, self.headers["Idempotency-Key"], body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.statuses, server.requests = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _alerts_config(url: str) -> str:
    return (f'[alerts]\nwebhook_url = "{url}"\noutbox = "var/outbox.jsonl"\nattempts = 3\n'
            "timeout_seconds = 2\nbackoff_seconds = 0.01\n")


def test_webhook_fails_twice_then_delivers_exactly_once(tmp_path: Path, hook_server: Any) -> None:
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
    session = make_workspace(tmp_path / "ws", f"sqlite:///{tmp_path / 'e.sqlite'}", alerts=_alerts_config(url))
    hook_server.statuses = [500, 503]
    run = raise_alerts(session, date(2026, 9, 8))
    # spender spent 3.50 by Sep 8 (over 2.00, under 4.00); capped made 80 calls
    spend, usage = run.alerts
    assert [spend.id, usage.id] == ["spend-cap:spender:2026-09-01:50", "usage-cap:capped:api_calls:2026-09-01:80"]
    assert run.new == {spend.id, usage.id} and run.failures == ()
    # the first alert: 500, 503, then 200; the second delivered at once; each exactly once
    assert [(s, key) for s, key, _b in hook_server.requests] == [
        (500, spend.id), (503, spend.id), (200, spend.id), (200, usage.id)]
    delivered = [json.loads(b) for s, _k, b in hook_server.requests if s == 200]
    assert delivered == [spend.payload(), usage.payload()]
    assert delivered[1]["threshold"] == "0.8" and delivered[1]["value"] == "80" and delivered[1]["cap"] == "100"
    assert len({b for _s, _k, b in hook_server.requests[:3]}) == 1     # retries send the same body
    assert not (session.workspace.root / "var" / "outbox.jsonl").exists()

    raise_alerts(session, date(2026, 9, 8))                            # nothing new: nothing sent
    assert len(hook_server.requests) == 4


def test_webhook_that_always_fails_lands_in_the_outbox(tmp_path: Path, hook_server: Any) -> None:
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
    session = make_workspace(tmp_path / "ws", f"sqlite:///{tmp_path / 'e.sqlite'}", alerts=_alerts_config(url))
    hook_server.statuses = [503] * 100
    run = raise_alerts(session, date(2026, 9, 30))
    assert len(run.new) == 4 and run.failures == ()                   # the outbox is a handled outcome
    assert len(hook_server.requests) == 4 * 3                         # three attempts each
    lines = [json.loads(line) for line in (session.workspace.root / "var" / "outbox.jsonl").read_text().splitlines()]
    assert [line["alert"]["id"] for line in lines] == [a.id for a in run.alerts]
    assert {(line["attempts"], line["error"], line["url"]) for line in lines} == {
        (3, "HTTP 503 Service Unavailable", url)}
    raise_alerts(session, date(2026, 9, 30))
    assert len((session.workspace.root / "var" / "outbox.jsonl").read_text().splitlines()) == 4


def test_webhook_client_errors_are_not_retried_and_refused_connections_are(tmp_path: Path,
                                                                            hook_server: Any) -> None:
    from ledger.plugins.webhook import deliver
    from ledger.workspace import AlertsConfig

    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
    config = AlertsConfig(webhook_url=url, outbox=tmp_path / "outbox.jsonl", attempts=3, backoff_seconds=0)
    hook_server.statuses = [400]
    result = deliver({"id": "x"}, config)
    assert (result.delivered, result.attempts, result.error) == (False, 1, "HTTP 400 Bad Request")
    hook_server.server_close()                                        # nothing listens any more
    refused = deliver({"id": "y"}, config)
    assert (refused.delivered, refused.attempts) == (False, 3)
    assert [json.loads(line)["alert"]["id"] for line in (tmp_path / "outbox.jsonl").read_text().splitlines()] == [
        "x", "y"]


def test_customer_webhook_overrides_the_workspace_url(tmp_path: Path) -> None:
    session = make_workspace(tmp_path / "ws", f"sqlite:///{tmp_path / 'e.sqlite'}",
                             alerts='[alerts]\nwebhook_url = "https://hooks.example.com/all"\n')
    text = (session.workspace.rules_dir / "customers.yaml").read_text()
    (session.workspace.rules_dir / "customers.yaml").write_text(
        text.replace("    caps: {api_calls: 100}\n", "    caps: {api_calls: 100}\n    webhook: http://127.0.0.1:9/c\n"))
    session = Session.open(session.workspace)
    from ledger.alerts import find_alerts

    urls = {(a.customer, a.delivery.webhook_url) for a in find_alerts(session, date(2026, 9, 30))}
    assert urls == {("capped", "http://127.0.0.1:9/c"), ("spender", "https://hooks.example.com/all")}


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "message"), [
    ('    spend_cap: 4.0\n', 'spend_cap: expected a decimal string such as "4.0", got a float'),
    ('    spend_cap: "4.001"\n', "spend_cap: 4.001 has more decimal places than USD (2)"),
    ('    spend_cap: "0"\n', "spend_cap: a spend cap is an amount of USD above 0"),
    ('    caps: {api_calls: "0"}\n', "caps.api_calls: a usage cap is a quantity above 0"),
    ('    webhook: ftp://example.com\n', "webhook: expected an http:// or https:// URL"),
])
def test_caps_are_validated(tmp_path: Path, line: str, message: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "meters.yaml").write_text(METERS)
    (rules / "plans.yaml").write_text(PLANS)
    (rules / "customers.yaml").write_text(
        "customers:\n  c:\n    currency: USD\n    subscriptions: [{plan: g, start: 2026-09-01}]\n" + line)
    with pytest.raises(RulesError) as info:
        load_rules(rules)
    assert str(info.value) == f"rules/customers.yaml:5: customers.c.{message}"


@pytest.mark.parametrize(("table", "message"), [
    ('webhook_url = "hooks.example.com"', 'alerts.webhook_url: expected an http:// or https:// URL or ""'),
    ("attempts = 0", "alerts.attempts: expected a whole number from 1 to 10"),
    ("timeout_seconds = 0", "alerts.timeout_seconds: expected a number of seconds above 0 up to 60"),
    ('retries = 2', "alerts.retries: unknown key"),
])
def test_alerts_config_is_validated(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "meterbook.toml").write_text(f"[alerts]\n{table}\n")
    with pytest.raises(WorkspaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Workspace.load(tmp_path)
    (tmp_path / "meterbook.toml").write_text('[alerts]\nwebhook_url = "https://h.example.com/x"\n')
    config = Workspace.load(tmp_path).alerts
    assert (config.webhook_url, config.outbox, config.attempts) == (
        "https://h.example.com/x", tmp_path.resolve() / "var" / "alerts-outbox.jsonl", 3)
