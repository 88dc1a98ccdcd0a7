"""Usage statements: totals tie to the invoices, the CSV holds exactly the cycle's events, the HTML
stands alone.

The workspace (tests/support/statements.py), timezone Europe/Berlin (UTC+2 in September), so a cycle
starting Sep 1 begins at 2026-08-31T22:00Z and ends before 2026-09-30T22:00Z. Plan ``g``: api_calls
graduated (10 free, then 0.05) and eu tokens at 0.01 each.

``acme`` (calendar cycles from Sep 1; cap 100 calls; spend cap 40.00):
    10 calls a day at 12:00Z, Sep 1–30                     300 calls
    2026-08-31T22:30Z (Sep 1, 00:30 local)                   1 call   in the cycle
    2026-09-30T21:59:59Z (Sep 30, 23:59:59 local)            1 call   in the cycle
    2026-09-30T22:00Z (Oct 1 local)                          1 call   next cycle
    2026-08-31T21:59:59Z (Aug 31 local)                      1 call   before the subscription
    1000 eu tokens and 500 us tokens on Sep 5             1000 tokens (us filtered out)
  September: 302 calls → (302 − 10) × 0.05 = 14.60; 1000 tokens × 0.01 = 10.00; total 24.60.
``fee`` (plan ``b``: base fee 30.00 in advance + the same api_calls): 10 calls a day,
  300 calls → 14.50; the cycle billed 30.00 on Sep 1 and 14.50 on Oct 1: 44.50.
``cred`` (plan ``g``, 5.00 prepaid credit granted Sep 1): 300 calls → 14.50 − 5.00 = 9.50.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from ledger.errors import BadInput
from ledger.facts.invoices import load_invoices
from ledger.session import Session
from ledger.statements import write_statement
from tests.support.statements import SEPTEMBER, make_session


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return make_session(tmp_path / "ws", f"sqlite:///{tmp_path / 'events.sqlite'}")


def test_finished_cycle_total_equals_the_invoice(session: Session, tmp_path: Path) -> None:
    session.invoice(through=date(2026, 10, 1))
    invoices = load_invoices(session.engine)
    out = tmp_path / "out"
    files = {
        c: write_statement(session, c, which="2026-09-15", out=out, today=date(2026, 10, 20))
        for c in ("acme", "fee", "cred")
    }

    acme = files["acme"].statement
    assert acme.finished and acme.through == date(2026, 9, 30)
    [invoice] = [i for i in invoices if i.customer == "acme" and i.date == date(2026, 10, 1)]
    assert acme.total == invoice.total == Decimal("24.60")
    assert [(line.meter, line.quantity, line.amount) for line in acme.lines] == [
        ("api_calls", Decimal(302), Decimal("14.60")),
        ("tokens", Decimal(1000), Decimal("10.00")),
    ]
    assert acme.projection.total == acme.total  # finished: projection = actual

    # an advance base fee is billed on the cycle's first day: the cycle's lines across invoices
    fee = files["fee"].statement
    billed = sum(
        (line.amount for i in invoices for line in i.lines if line.link == fee.cycle.link),
        Decimal(0),
    )
    assert fee.total == billed == Decimal("44.50")

    cred = files["cred"].statement
    [cred_invoice] = [i for i in invoices if i.customer == "cred" and i.date == date(2026, 10, 1)]
    assert cred.total == cred_invoice.total == Decimal("9.50")
    assert (cred.credit_applied, cred.credit_remaining) == (Decimal("5.00"), Decimal("0.00"))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_exactly_the_cycles_events(session: Session, tmp_path: Path) -> None:
    files = write_statement(
        session, "acme", which="2026-09-15", out=tmp_path / "out", today=date(2026, 10, 20)
    )
    rows = _rows(files.csv)
    calls = {r["event_id"] for r in rows if r["meter"] == "api_calls"}
    assert calls == {f"acme-{day}-{i}" for day in SEPTEMBER for i in range(10)} | {
        "edge-in-first",
        "edge-in-last",
    }
    assert [r["event_id"] for r in rows if r["meter"] == "tokens"] == ["tok-eu"]
    assert len(rows) == files.evidence.rows == 303
    first = rows[0]
    assert (first["event_id"], first["day"], first["time"], first["quantity"]) == (
        "edge-in-first",
        "2026-09-01",
        "2026-08-31T22:30:00Z",
        "1",
    )
    # the CSV adds up to the statement's quantities
    usage = {m.meter: m.quantity for m in files.statement.meters}
    assert (
        sum(Decimal(r["quantity"]) for r in rows if r["meter"] == "api_calls")
        == usage["api_calls"]
        == 302
    )
    assert (
        sum(Decimal(r["quantity"]) for r in rows if r["meter"] == "tokens")
        == usage["tokens"]
        == 1000
    )
    daily = dict((d, q) for d, q, _n in files.statement.meters[0].daily)
    assert (
        daily[date(2026, 9, 1)] == daily[date(2026, 9, 30)] == 11 and daily[date(2026, 9, 2)] == 10
    )


def test_html_is_self_contained_escaped_and_deterministic(session: Session, tmp_path: Path) -> None:
    files = write_statement(
        session, "acme", which="2026-09-15", out=tmp_path / "a", today=date(2026, 10, 20)
    )
    html = files.html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html and "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html
    assert "&lt;Acme &amp; Co&gt;" in html and "<Acme" not in html
    assert html.count("<svg") == 2 and "14.60 USD" in html and "24.60 USD" in html
    assert f"sha256 {files.evidence.sha256}" in html
    again = write_statement(
        session, "acme", which="2026-09-15", out=tmp_path / "b", today=date(2026, 10, 20)
    )
    assert again.html.read_bytes() == files.html.read_bytes()
    assert again.csv.read_bytes() == files.csv.read_bytes()


def test_current_cycle_projects_the_run_rate(session: Session, tmp_path: Path) -> None:
    files = write_statement(session, "acme", out=tmp_path / "out", today=date(2026, 9, 10))
    s = files.statement
    assert (s.cycle.key, s.through, s.finished, s.elapsed_days) == (
        "2026-09-01/2026-10-01",
        date(2026, 9, 10),
        False,
        10,
    )
    # to date: 10 days × 10 calls + the 00:30 call of Sep 1 = 101 calls → 4.55; 1000 tokens → 10.00
    assert s.total == Decimal("14.55")
    # run rate × 30/10: 303 calls → (303 − 10) × 0.05 = 14.65; 3000 tokens → 30.00
    assert [
        (c.meter, c.quantity, c.projected_quantity, c.projected_amount)
        for c in s.projection.charges
    ] == [("api_calls", 101, 303, Decimal("14.65")), ("tokens", 1000, 3000, Decimal("30.00"))]
    assert s.projection.total == Decimal("44.65")
    assert "÷ 10 elapsed days × 30 days" in s.projection.method
    # caps: 101 of 100 calls (80 % on Sep 8 with 81, 100 % on Sep 10 with 101); spend 14.55 of 40.00
    usage_cap, spend_cap = s.caps
    assert (usage_cap.used, usage_cap.percent, usage_cap.projected) == (101, Decimal("101.0"), 303)
    assert [(a.percent, a.date) for a in usage_cap.crossed] == [
        ("80", date(2026, 9, 8)),
        ("100", date(2026, 9, 10)),
    ]
    assert (spend_cap.used, spend_cap.percent, spend_cap.projected) == (
        Decimal("14.55"),
        Decimal("36.4"),
        Decimal("44.65"),
    )
    assert spend_cap.crossed == ()
    assert len(_rows(files.csv)) == 102  # 101 calls + 1 eu token event


def test_statement_cli(session: Session, tmp_path: Path) -> None:
    root = str(session.workspace.root)
    runner = CliRunner()
    ok = runner.invoke(cli, ["--workspace", root, "statement", "acme", "--cycle", "2026-09-15"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[0] == (
        "acme  2026-09-01/2026-10-01  through 2026-09-30  total 24.60 USD  projected 24.60 USD"
    )
    assert (session.workspace.root / "statements" / "acme-2026-09-01.html").is_file()
    assert (session.workspace.root / "statements" / "acme-2026-09-01.csv").is_file()
    for args, message in [
        (["nobody"], "unknown customer 'nobody'"),
        (
            ["acme", "--cycle", "15.09.2026"],
            "--cycle: '15.09.2026' is neither 'current' nor a date",
        ),
        (["acme", "--cycle", "2026-08-01"], "no billing cycle containing 2026-08-01"),
        (["acme", "--cycle", "2099-01-01"], "has not started yet"),
    ]:
        bad = runner.invoke(cli, ["--workspace", root, "statement", *args])
        assert bad.exit_code == 2, bad.output
        assert message in bad.output and "Traceback" not in bad.output


def test_statement_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    session = make_session(tmp_path / "ws", pg_url)
    files = write_statement(
        session, "acme", which="2026-09-15", out=tmp_path / "out", today=date(2026, 10, 20)
    )
    assert files.statement.total == Decimal("24.60") and files.evidence.rows == 303
    sqlite = make_session(tmp_path / "ws2", f"sqlite:///{tmp_path / 'e2.sqlite'}")
    other = write_statement(
        sqlite, "acme", which="2026-09-15", out=tmp_path / "out2", today=date(2026, 10, 20)
    )
    assert other.csv.read_bytes() == files.csv.read_bytes()


def test_unknown_customer_is_bad_input(session: Session) -> None:
    with pytest.raises(BadInput, match="unknown customer"):
        write_statement(session, "nobody", today=date(2026, 9, 10))


def test_charges_are_labelled_in_the_customers_words(session: Session, tmp_path: Path) -> None:
    """``fee``'s September statement labels its charges as its invoice does: the meter's
    display name (its id where it has none: ``api_calls``), and "Base fee, billed in advance"
    (30.00), never the rating's internal description ``b base fee 2026-09-01/2026-10-01 (in
    advance)`` or ``api_calls (graduated)``."""
    files = write_statement(
        session, "fee", which="2026-09-15", out=tmp_path / "out", today=date(2026, 10, 20)
    )
    assert files.statement.labels == ("Base fee, billed in advance", "api_calls")
    html = files.html.read_text(encoding="utf-8")
    assert "<tr><td>api_calls<" in html and "<tr><td>Base fee, billed in advance<" in html
    assert "(graduated)" not in html and "(in advance)" not in html
