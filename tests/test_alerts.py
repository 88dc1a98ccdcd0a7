"""Caps and alerts: crossings computed by hand, raised once, notified through the hook and the
webhook plugin.

The workspace (tests/support/alerts.py, UTC): plan ``g`` charges api_calls graduated, 10 free then
0.05.

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
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.alerts import pending_deliveries, raise_alerts, raised_ids
from ledger.cli import cli
from ledger.errors import RulesError, WorkspaceError
from ledger.rules import load_rules
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.alerts import PLANS, make_workspace
from tests.support.workspaces import METERS_CALLS

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


def received(session: Session) -> list[str]:
    path = session.workspace.root / "plugins" / "received.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_cap_crossing_alerts_once_and_only_once(tmp_path: Path, store_url: str) -> None:
    session = make_workspace(tmp_path / "ws", store_url, plugins={"recorder": RECORDER})

    run = raise_alerts(session, date(2026, 9, 8))
    assert [(a.id, a.date, a.value) for a in run.alerts if a.customer == "capped"] == [
        ("usage-cap:capped:api_calls:2026-09-01:80", date(2026, 9, 8), Decimal(80))
    ]
    assert run.new == {
        "usage-cap:capped:api_calls:2026-09-01:80",
        "spend-cap:spender:2026-09-01:50",
    }
    assert raise_alerts(session, date(2026, 9, 8)).new == set()  # same run again: nothing new

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
    assert (
        len(received(session))
        == len(set(received(session)))
        == len(raised_ids(session.engine))
        == 6
    )
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
    assert spend[0].message == (
        "spender: spend reached 50 % of the cap (2.00 of 4.00 USD) on 2026-09-05: "
        "2.00 USD in cycle 2026-09-01/2026-10-01"
    )
    assert spend[0].payload()["meter"] is None and spend[0].payload()["value"] == "2.00"
    assert not [a for a in run.alerts if a.customer == "quiet"]


def test_failing_plugin_is_reported_and_does_not_stop_others(tmp_path: Path) -> None:
    session = make_workspace(
        tmp_path / "ws",
        f"sqlite:///{tmp_path / 'e.sqlite'}",
        plugins={"boom": BOOM, "recorder": RECORDER},
    )
    run = raise_alerts(session, date(2026, 9, 30))
    ids = [a.id for a in run.alerts]
    assert len(ids) == 4 and run.new == set(ids) == raised_ids(session.engine)  # raised once, kept
    assert received(session) == ids  # the recorder took every one
    assert {(f.plugin, f.error) for _id, f in run.failures} == {
        ("meterbook_local.boom", "RuntimeError: smtp down")
    }
    assert [a for a, _f in run.failures] == ids
    assert [(p.alert, p.plugin, p.attempts, p.error) for p in run.pending] == [
        (i, "meterbook_local.boom", 1, "RuntimeError: smtp down") for i in ids
    ]  # in date order
    again = raise_alerts(
        session, date(2026, 9, 30)
    )  # boom alone is called again, the recorder is not
    assert again.new == set() and [a for a, _f in again.failures] == ids
    assert received(session) == ids
    assert {p.attempts for p in again.pending} == {2}


FLAKY = """\
from pathlib import Path

from ledger.hookspecs import hookimpl

HERE = Path(__file__).parent


@hookimpl
def meterbook_alert(alert):
    with open(HERE / "flaky-calls.txt", "a") as handle:
        handle.write(alert.id + "\\n")
    if (HERE / "down").exists():
        raise RuntimeError("smtp down")
    with open(HERE / "flaky-took.txt", "a") as handle:
        handle.write(alert.id + "\\n")
"""


def _lines(root: Path, name: str) -> list[str]:
    path = root / "plugins" / name
    return path.read_text().splitlines() if path.exists() else []


def test_a_failed_plugin_is_retried_alone_and_each_plugin_takes_each_alert_once(
    tmp_path: Path, store_url: str
) -> None:
    root = tmp_path / "ws"
    session = make_workspace(root, store_url, plugins={"recorder": RECORDER, "flaky": FLAKY})
    (root / "plugins" / "down").touch()
    runner = CliRunner()
    args = ["--workspace", str(root), "alerts", "--through", "2026-09-09"]
    # through Sep 9: spender 50 % (Sep 5), capped 80 % (Sep 8), spender 100 % (Sep 9)
    ids = [
        "spend-cap:spender:2026-09-01:50",
        "usage-cap:capped:api_calls:2026-09-01:80",
        "spend-cap:spender:2026-09-01:100",
    ]

    first = runner.invoke(cli, [*args, "--json"])
    assert first.exit_code == 1, first.output
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(r["id"], r["new"], r["pending"]) for r in rows] == [
        (i, True, ["meterbook_local.flaky"]) for i in ids
    ]
    assert first.stderr == (
        "meterbook: error: plugin meterbook_local.flaky has not taken 3 alerts "
        "(last error: RuntimeError: smtp down); the next run retries them\n"
    )
    assert received(session) == ids and _lines(root, "flaky-calls.txt") == ids
    assert _lines(root, "flaky-took.txt") == []

    (root / "plugins" / "down").unlink()  # the mail server is back
    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "PENDING" not in second.stdout and second.stderr == ""
    assert second.stdout.splitlines()[-1] == "3 crossings through 2026-09-09, 0 new"
    assert received(session) == ids  # the recorder was not called again
    assert _lines(root, "flaky-calls.txt") == ids + ids and _lines(root, "flaky-took.txt") == ids

    third = runner.invoke(cli, args)  # nothing owed: nobody is called
    assert third.exit_code == 0, third.output
    assert received(session) == ids and _lines(root, "flaky-calls.txt") == ids + ids
    assert pending_deliveries(session.engine) == []


def test_a_pending_delivery_waits_for_its_plugin_to_come_back(
    tmp_path: Path, store_url: str
) -> None:
    root = tmp_path / "ws"
    session = make_workspace(root, store_url, plugins={"boom": BOOM})
    runner = CliRunner()
    args = ["--workspace", str(root), "alerts", "--through", "2026-09-09"]
    assert runner.invoke(cli, args).exit_code == 1
    (root / "plugins" / "boom.py").unlink()  # removed while it owes 3 deliveries
    for _ in range(2):  # kept and reported, run after run
        gone = runner.invoke(cli, args)
        assert gone.exit_code == 1, gone.output
        assert gone.stderr == (
            "meterbook: error: plugin meterbook_local.boom is not loaded: 3 alerts wait for it "
            "(restore it, or drop them: meterbook alerts --drop-undelivered meterbook_local.boom)\n"
        )
        lines = gone.stdout.splitlines()
        assert lines[1::2] == ["     PENDING meterbook_local.boom (not loaded)"] * 3
        assert lines[-1] == "3 crossings through 2026-09-09, 0 new, 3 deliveries pending"
    assert {(p.plugin, p.attempts, p.loaded) for p in pending_deliveries(session.engine)} == {
        ("meterbook_local.boom", 1, False)
    }

    # an earlier --through still lists what waits, and says so in the exit code
    early = runner.invoke(cli, [*args[:-1], "2026-09-05", "--json"])
    assert early.exit_code == 1
    assert [
        (r["id"], r["new"], r["pending"]) for r in map(json.loads, early.stdout.splitlines())
    ] == [
        ("spend-cap:spender:2026-09-01:50", False, ["meterbook_local.boom"]),
        ("usage-cap:capped:api_calls:2026-09-01:80", False, ["meterbook_local.boom"]),
        ("spend-cap:spender:2026-09-01:100", False, ["meterbook_local.boom"]),
    ]

    (root / "plugins" / "boom.py").write_text(RECORDER)  # back (fixed): it takes each once
    back = runner.invoke(cli, args)
    assert back.exit_code == 0, back.output
    assert received(session) == [
        "spend-cap:spender:2026-09-01:50",
        "usage-cap:capped:api_calls:2026-09-01:80",
        "spend-cap:spender:2026-09-01:100",
    ]
    assert runner.invoke(cli, args).exit_code == 0 and len(received(session)) == 3


def test_deliveries_of_a_retired_plugin_are_dropped_only_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    session = make_workspace(root, f"sqlite:///{tmp_path / 'e.sqlite'}", plugins={"boom": BOOM})
    runner = CliRunner()
    args = ["--workspace", str(root), "alerts", "--through", "2026-09-09"]
    assert runner.invoke(cli, args).exit_code == 1
    (root / "plugins" / "boom.py").unlink()
    typo = runner.invoke(cli, [*args, "--drop-undelivered", "boom"])
    assert typo.exit_code == 2
    assert typo.stderr == (
        "meterbook: error: alerts --drop-undelivered: plugin 'boom' owes no alert deliveries "
        "(pending: meterbook_local.boom)\n"
    )
    assert len(pending_deliveries(session.engine)) == 3
    dropped = runner.invoke(cli, [*args, "--drop-undelivered", "meterbook_local.boom"])
    assert dropped.exit_code == 0, dropped.output
    assert (
        dropped.stdout.splitlines()[0]
        == "dropped 3 undelivered alerts of plugin meterbook_local.boom"
    )
    assert dropped.stdout.splitlines()[-1] == "3 crossings through 2026-09-09, 0 new"
    assert (
        pending_deliveries(session.engine) == [] and len(raised_ids(session.engine)) == 3
    )  # still raised


def test_cli_lists_crossings_and_marks_new(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root, f"sqlite:///{tmp_path / 'e.sqlite'}", plugins={"boom": BOOM})
    runner = CliRunner()
    args = ["--workspace", str(root), "alerts", "--through", "2026-09-09"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 1, first.output
    assert first.stdout.splitlines() == [
        "NEW  2026-09-05  spend-cap:spender:2026-09-01:50  spender: spend reached 50 % of the "
        "cap (2.00 of 4.00 USD) "
        "on 2026-09-05: 2.00 USD in cycle 2026-09-01/2026-10-01",
        "     PENDING meterbook_local.boom",
        "NEW  2026-09-08  usage-cap:capped:api_calls:2026-09-01:80  capped: api_calls usage "
        "reached 80 % of the cap "
        "(80 of 100 call) on 2026-09-08: 80 call in cycle 2026-09-01/2026-10-01",
        "     PENDING meterbook_local.boom",
        "NEW  2026-09-09  spend-cap:spender:2026-09-01:100  spender: spend reached 100 % of the "
        "cap (4.00 of 4.00 USD) "
        "on 2026-09-09: 4.00 USD in cycle 2026-09-01/2026-10-01",
        "     PENDING meterbook_local.boom",
        "3 crossings through 2026-09-09, 3 new, 3 deliveries pending",
    ]
    assert first.stderr == (
        "meterbook: error: plugin meterbook_local.boom has not taken 3 alerts "
        "(last error: RuntimeError: smtp down); the next run retries them\n"
    )
    (root / "plugins" / "boom.py").write_text(
        BOOM.replace('raise RuntimeError("smtp down")', "pass")
    )
    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "NEW" not in second.stdout and "PENDING" not in second.stdout
    assert second.stdout.splitlines()[-1] == "3 crossings through 2026-09-09, 0 new"
    later = runner.invoke(cli, [*args[:-1], "2026-09-10", "--json"])
    assert later.exit_code == 0
    assert [(r["id"], r["new"], r["pending"]) for r in map(json.loads, later.stdout.splitlines())][
        -1
    ] == ("usage-cap:capped:api_calls:2026-09-01:100", True, [])
    bad = runner.invoke(cli, ["--workspace", str(root), "alerts", "--through", "09/09/2026"])
    assert bad.exit_code == 2 and "--through" in bad.output


def test_a_delivery_is_claimed_by_one_run_at_a_time(tmp_path: Path, store_url: str) -> None:
    from ledger.alerts import INTERRUPTED_AFTER, claim, find_alerts, record, settle
    from ledger.registry import NotificationFailure

    session = make_workspace(tmp_path / "ws", store_url)
    engine, now = session.engine, datetime(2026, 9, 10, 12, tzinfo=UTC)
    alert = find_alerts(session, date(2026, 9, 8))[0]
    assert record(engine, [alert], ["mailer"], now=now) == {alert.id}
    assert record(engine, [alert], ["mailer"], now=now) == set()  # raised once
    assert claim(engine, alert.id, "mailer", now=now)  # never tried: taken
    assert not claim(engine, alert.id, "mailer", now=now)  # in progress in that run
    assert not claim(engine, alert.id, "other", now=now)  # owes nothing
    settle(engine, alert.id, "mailer", NotificationFailure("mailer", "meterbook_alert", "E: down"))
    assert claim(engine, alert.id, "mailer", now=now)  # failed: taken again
    later = now + INTERRUPTED_AFTER
    assert not claim(engine, alert.id, "mailer", now=later)  # in progress for exactly the lease
    assert claim(
        engine, alert.id, "mailer", now=later + timedelta(seconds=1)
    )  # interrupted: taken again
    (pending,) = pending_deliveries(engine)
    assert (pending.attempts, pending.error, pending.last_attempt) == (
        3,
        "",
        "2026-09-11T12:00:01+00:00",
    )
    settle(engine, alert.id, "mailer", None)
    assert pending_deliveries(engine) == [] and not claim(engine, alert.id, "mailer", now=later)


SLOW_RECORDER = RECORDER.replace(
    "def meterbook_alert(alert):\n",
    "def meterbook_alert(alert):\n    __import__('time').sleep(0.05)\n",
)


def test_concurrent_runs_deliver_each_alert_once(tmp_path: Path, store_url: str) -> None:
    session = make_workspace(tmp_path / "ws", store_url, plugins={"recorder": SLOW_RECORDER})
    sessions = [Session.open(session.workspace) for _ in range(3)]
    runs: list[Any] = []
    errors: list[BaseException] = []

    def check(s: Session) -> None:
        try:
            runs.append(raise_alerts(s, date(2026, 9, 30)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=check, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(runs) == 3
    ids = sorted(a.id for a in runs[0].alerts)
    assert len(ids) == 4
    assert sorted(i for run in runs for i in run.new) == ids  # each raised by one run
    # each (alert, plugin) delivered by exactly one run; the webhook plugin is always loaded
    assert sorted(pair for run in runs for pair in run.delivered) == sorted(
        (i, p) for i in ids for p in ("ledger.plugins.webhook", "meterbook_local.recorder")
    )
    assert sorted(received(session)) == ids
    assert pending_deliveries(session.engine) == []


def test_the_migration_keeps_alerts_raised_before_it(tmp_path: Path) -> None:
    from sqlalchemy import inspect, text

    from ledger.store import MIGRATIONS, _v_alert_deliveries, open_store

    url = f"sqlite:///{tmp_path / 'e.sqlite'}"
    session = make_workspace(tmp_path / "ws", url, plugins={"recorder": RECORDER})
    assert len(raise_alerts(session, date(2026, 9, 8)).new) == 2
    session.engine.dispose()
    engine = open_store(url)
    with (
        engine.begin() as conn
    ):  # back to the schema before deliveries, as an older meterbook left it
        conn.exec_driver_sql("DROP TABLE alert_deliveries")
        conn.exec_driver_sql("ALTER TABLE alerts DROP COLUMN unit")
        conn.execute(
            text("UPDATE meta SET value = :v WHERE key = 'schema_version'"),
            {"v": str(MIGRATIONS.index(_v_alert_deliveries))},
        )
    engine.dispose()
    engine = open_store(url)
    with engine.connect() as conn:
        assert "unit" in {c["name"] for c in inspect(conn).get_columns("alerts")}
        assert conn.execute(text("SELECT count(*) FROM alerts WHERE unit IS NULL")).scalar() == 2
    engine.dispose()
    session = Session.open(session.workspace)
    run = raise_alerts(session, date(2026, 9, 30))  # earlier alerts owe nothing
    assert len(run.new) == 2 and run.pending == () and len(received(session)) == 4


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
    return (
        f'[alerts]\nwebhook_url = "{url}"\noutbox = "var/outbox.jsonl"\nattempts = 3\n'
        "timeout_seconds = 2\nbackoff_seconds = 0.01\n"
    )


def test_webhook_fails_twice_then_delivers_exactly_once(tmp_path: Path, hook_server: Any) -> None:
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
    session = make_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path / 'e.sqlite'}", alerts=_alerts_config(url)
    )
    hook_server.statuses = [500, 503]
    run = raise_alerts(session, date(2026, 9, 8))
    # spender spent 3.50 by Sep 8 (over 2.00, under 4.00); capped made 80 calls
    spend, usage = run.alerts
    assert [spend.id, usage.id] == [
        "spend-cap:spender:2026-09-01:50",
        "usage-cap:capped:api_calls:2026-09-01:80",
    ]
    assert run.new == {spend.id, usage.id} and run.failures == ()
    # the first alert: 500, 503, then 200; the second delivered at once; each exactly once
    assert [(s, key) for s, key, _b in hook_server.requests] == [
        (500, spend.id),
        (503, spend.id),
        (200, spend.id),
        (200, usage.id),
    ]
    delivered = [json.loads(b) for s, _k, b in hook_server.requests if s == 200]
    assert delivered == [spend.payload(), usage.payload()]
    assert (
        delivered[1]["threshold"] == "0.8"
        and delivered[1]["value"] == "80"
        and delivered[1]["cap"] == "100"
    )
    assert len({b for _s, _k, b in hook_server.requests[:3]}) == 1  # retries send the same body
    assert not (session.workspace.root / "var" / "outbox.jsonl").exists()

    raise_alerts(session, date(2026, 9, 8))  # nothing new: nothing sent
    assert len(hook_server.requests) == 4


def test_webhook_that_always_fails_lands_in_the_outbox(tmp_path: Path, hook_server: Any) -> None:
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
    session = make_workspace(
        tmp_path / "ws", f"sqlite:///{tmp_path / 'e.sqlite'}", alerts=_alerts_config(url)
    )
    hook_server.statuses = [503] * 100
    run = raise_alerts(session, date(2026, 9, 30))
    assert len(run.new) == 4 and run.failures == ()  # the outbox is a handled outcome
    assert len(hook_server.requests) == 4 * 3  # three attempts each
    lines = [
        json.loads(line)
        for line in (session.workspace.root / "var" / "outbox.jsonl").read_text().splitlines()
    ]
    assert [line["alert"]["id"] for line in lines] == [a.id for a in run.alerts]
    assert {(line["attempts"], line["error"], line["url"]) for line in lines} == {
        (3, "HTTP 503 Service Unavailable", url)
    }
    raise_alerts(session, date(2026, 9, 30))
    assert len((session.workspace.root / "var" / "outbox.jsonl").read_text().splitlines()) == 4


def test_webhook_client_errors_are_not_retried_and_refused_connections_are(
    tmp_path: Path, hook_server: Any
) -> None:
    from ledger.plugins.webhook import deliver
    from ledger.workspace import AlertsConfig

    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
    config = AlertsConfig(
        webhook_url=url, outbox=tmp_path / "outbox.jsonl", attempts=3, backoff_seconds=0
    )
    hook_server.statuses = [400]
    result = deliver({"id": "x"}, config)
    assert (result.delivered, result.attempts, result.error) == (False, 1, "HTTP 400 Bad Request")
    hook_server.server_close()  # nothing listens any more
    refused = deliver({"id": "y"}, config)
    assert (refused.delivered, refused.attempts) == (False, 3)
    assert [
        json.loads(line)["alert"]["id"]
        for line in (tmp_path / "outbox.jsonl").read_text().splitlines()
    ] == ["x", "y"]


def test_customer_webhook_overrides_the_workspace_url(tmp_path: Path) -> None:
    session = make_workspace(
        tmp_path / "ws",
        f"sqlite:///{tmp_path / 'e.sqlite'}",
        alerts='[alerts]\nwebhook_url = "https://hooks.example.com/all"\n',
    )
    text = (session.workspace.rules_dir / "customers.yaml").read_text()
    (session.workspace.rules_dir / "customers.yaml").write_text(
        text.replace(
            "    caps: {api_calls: 100}\n",
            "    caps: {api_calls: 100}\n    webhook: http://127.0.0.1:9/c\n",
        )
    )
    session = Session.open(session.workspace)
    from ledger.alerts import find_alerts

    urls = {(a.customer, a.delivery.webhook_url) for a in find_alerts(session, date(2026, 9, 30))}
    assert urls == {
        ("capped", "http://127.0.0.1:9/c"),
        ("spender", "https://hooks.example.com/all"),
    }


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("    spend_cap: 4.0\n", 'spend_cap: expected a decimal string such as "4.0", got a float'),
        ('    spend_cap: "4.001"\n', "spend_cap: 4.001 has more decimal places than USD (2)"),
        ('    spend_cap: "0"\n', "spend_cap: a spend cap is an amount of USD above 0"),
        ('    caps: {api_calls: "0"}\n', "caps.api_calls: a usage cap is a quantity above 0"),
        ("    webhook: ftp://example.com\n", "webhook: expected an http:// or https:// URL"),
    ],
)
def test_caps_are_validated(tmp_path: Path, line: str, message: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "meters.yaml").write_text(METERS_CALLS)
    (rules / "plans.yaml").write_text(PLANS)
    (rules / "customers.yaml").write_text(
        "customers:\n  c:\n    currency: USD\n    subscriptions: [{plan: g, start: 2026-09-01}]\n"
        + line
    )
    with pytest.raises(RulesError) as info:
        load_rules(rules)
    assert str(info.value) == f"rules/customers.yaml:5: customers.c.{message}"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'webhook_url = "hooks.example.com"',
            'alerts.webhook_url: expected an http:// or https:// URL or ""',
        ),
        ("attempts = 0", "alerts.attempts: expected a whole number from 1 to 10"),
        (
            "timeout_seconds = 0",
            "alerts.timeout_seconds: expected a number of seconds above 0 up to 60",
        ),
        ("retries = 2", "alerts.retries: unknown key"),
    ],
)
def test_alerts_config_is_validated(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "meterbook.toml").write_text(f"[alerts]\n{table}\n")
    with pytest.raises(WorkspaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Workspace.load(tmp_path)
    (tmp_path / "meterbook.toml").write_text('[alerts]\nwebhook_url = "https://h.example.com/x"\n')
    config = Workspace.load(tmp_path).alerts
    assert (config.webhook_url, config.outbox, config.attempts) == (
        "https://h.example.com/x",
        tmp_path.resolve() / "var" / "alerts-outbox.jsonl",
        3,
    )
