"""Finance reports on a small workspace (tests/support/reports.py) whose figures are computed
by hand.

Plan ``p``: base fee 30.00 in advance, 0.10 per API call (unit price, final → unbilled).

- ``cal`` (calendar cycles from Sep 1): 20 calls Sep 1–20, 10 calls Oct 1–10.
  Invoices: Sep 1 base fee 30.00 (INV-1, paid Sep 10);
  Oct 1 usage 2.00 + base fee 30.00 = 32.00 (INV-3).
  Accruals: Sep 30 usage 2.00, base fee 30.00; Oct 31 usage 1.00, base fee 30.00.
- ``ann`` (anniversary from Sep 15, prepaid credit 5.00 expiring 2027-03-15): 14 calls Sep 16–29,
  11 calls Oct 1–11, 5 calls Oct 20–24.
  Invoices: Sep 15 base fee 30.00 + credit 5.00 = 35.00 (INV-2, 10.00 paid Oct 5);
  Oct 15 base fee 30.00 (INV-4; usage 2.50 − credit 2.50 = 0).
  Accruals (credit drawn, deferred → usage revenue): Sep 30 1.40 + base fee 16/30 × 30 = 16.00;
  Oct 14 1.10 + 14.00; Oct 31 0.50 + base fee of [Oct 15, Nov 15) 17/31 × 30 = 16.45.

So: revenue Sep 3.40 usage + 46.00 subscriptions, Oct 2.60 + 60.45; deferred at Oct 31 is ann's
13.55 (30.00 − 16.45, recognized in November) + 2.00 credit left (5 − 2.50 − 0.50, expiring March).

The usage patterns (a second workspace, one ``tokens`` event a month, May–Oct 2026):
``steady`` ≈ 1000 a month, ``collapse`` 1000 then 100, ``spike`` 500 then 1500,
``linear`` ≈ 1000 + 200·x.
"""

from __future__ import annotations

import csv
import doctest
import importlib
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from beancount import loader
from beancount.core import data

from ledger.books import load_books
from ledger.errors import RulesError
from ledger.events import Event, parse_time
from ledger.reports import REPORTS, build_report
from ledger.reports.aging import aging_bucket
from ledger.reports.forecast import linear_trend, plan_on
from ledger.reports.sources import Sources
from ledger.reports.table import Report
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.reports import CUSTOMERS, PLANS, accounting_workspace, make_workspace
from tests.support.workspaces import METERS_CALLS, calls, insert_events, run_cli

D = Decimal


@pytest.fixture(scope="module")
def books_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reports") / "ws"
    session = accounting_workspace(root)
    session.invoice(date(2026, 10, 31))
    issued = {
        inv.number: (inv.customer, inv.date, inv.total)
        for inv in session.invoice(date(2026, 10, 31))
    }
    assert issued == {}  # already issued above
    return root


@pytest.fixture
def session(books_root: Path) -> Session:
    return Session.open(Workspace.load(books_root))


def rows(report: Report, title: str) -> list[dict[str, Any]]:
    """The rows of the table titled ``title`` (or the first whose title starts with it), as
    dicts."""
    exact = [t for t in report.tables if t.title == title]
    table = (exact or [t for t in report.tables if t.title.startswith(title)])[0]
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


def test_invoices_are_the_ones_computed_by_hand(session: Session) -> None:
    from ledger.facts.invoices import load_invoices

    assert [(i.number, i.customer, i.date, i.total) for i in load_invoices(session.engine)] == [
        ("INV-2026-000001", "cal", date(2026, 9, 1), D("30.00")),
        ("INV-2026-000002", "ann", date(2026, 9, 15), D("35.00")),
        ("INV-2026-000003", "cal", date(2026, 10, 1), D("32.00")),
        ("INV-2026-000004", "ann", date(2026, 10, 15), D("30.00")),
    ]


def test_revenue_by_month_meter_and_customer(session: Session) -> None:
    report = build_report(session, "revenue")
    assert [
        (r["month"], r["line"], r["account"], r["revenue"])
        for r in rows(report, "Revenue by month and line")
    ] == [
        ("2026-09", "api_calls", "Income:Usage:Api-Calls", D("3.40")),
        ("2026-09", "p", "Income:Subscriptions:P", D("46.00")),
        ("2026-10", "api_calls", "Income:Usage:Api-Calls", D("2.60")),
        ("2026-10", "p", "Income:Subscriptions:P", D("60.45")),
    ]
    october = build_report(session, "revenue", month="2026-10")
    assert [
        (r["customer"], r["usage"], r["subscriptions"], r["other"], r["total"])
        for r in rows(october, "Revenue by month and customer")
    ] == [
        ("ann", D("1.60"), D("30.45"), D("0.00"), D("32.05")),
        ("cal", D("1.00"), D("30.00"), D("0.00"), D("31.00")),
    ]


def test_unbilled_at_month_ends(session: Session) -> None:
    september = rows(build_report(session, "unbilled", month="2026-09"), "Unbilled")
    assert [(r["customer"], r["unbilled"], r["contract asset"]) for r in september] == [
        ("cal", D("2.00"), D("0.00")),
        ("(total)", D("2.00"), D("0.00")),
    ]  # ann's usage drew on its credit
    october = build_report(session, "unbilled")  # default: the books' last month
    assert october.title == "Unbilled revenue at 2026-10-31"
    assert [(r["customer"], r["total"]) for r in rows(october, "Unbilled")] == [
        ("cal", D("1.00")),
        ("(total)", D("1.00")),
    ]


def test_deferred_balances_and_waterfall(session: Session) -> None:
    september = build_report(session, "deferred", month="2026-09")
    assert [
        (r["customer"], r["base fees"], r["prepaid credits"], r["books"], r["difference"])
        for r in rows(september, "Deferred revenue at")
    ] == [("ann", D("14.00"), D("3.60"), D("17.60"), D("0.00"))]  # cal's fees are fully recognized
    assert [(r["month"], r["customer"], r["amount"]) for r in rows(september, "Waterfall of")] == [
        ("2026-10", "ann", D("14.00")),
        ("2027-03", "ann", D("3.60")),
    ]

    october = build_report(session, "deferred", month="2026-10")
    assert [
        (
            r["customer"],
            r["base fees"],
            r["prepaid credits"],
            r["scheduled"],
            r["books"],
            r["difference"],
        )
        for r in rows(october, "Deferred revenue at")
    ] == [("ann", D("13.55"), D("2.00"), D("15.55"), D("15.55"), D("0.00"))]
    waterfall = rows(october, "Waterfall of")
    assert [(r["month"], r["amount"]) for r in waterfall] == [
        ("2026-11", D("13.55")),
        ("2027-03", D("2.00")),
    ]
    assert waterfall[0]["source"] == "base fee 2026-10-15/2026-11-15 (INV-2026-000004)"
    assert waterfall[1]["source"] == "prepaid credit granted 2026-09-15, expires 2027-03-15"


def test_aging_buckets_on_known_dates(session: Session) -> None:
    october = build_report(session, "aging", month="2026-10")
    assert [
        (r["invoice"], r["days past due"], r["bucket"], r["open"])
        for r in rows(october, "Open invoices")
    ] == [
        ("INV-2026-000002", 46, "31–60", D("25.00")),  # 35.00 − 10.00 paid
        ("INV-2026-000004", 16, "1–30", D("30.00")),
        ("INV-2026-000003", 30, "1–30", D("32.00")),
    ]  # INV-1 was paid in full
    summary = {r["customer"]: r for r in rows(october, "Aging by customer")}
    assert (summary["ann"]["1–30"], summary["ann"]["31–60"], summary["ann"]["total"]) == (
        D("30.00"),
        D("25.00"),
        D("55.00"),
    )
    assert summary["ann"]["books"] == D("55.00") and summary["cal"]["books"] == D("32.00")
    assert summary["(total)"]["total"] == D("87.00") == summary["(total)"]["books"]
    september = build_report(session, "aging", month="2026-09")
    assert [
        (r["invoice"], r["days past due"], r["bucket"]) for r in rows(september, "Open invoices")
    ] == [("INV-2026-000002", 15, "1–30")]
    assert [aging_bucket(d) for d in (0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
        "current",
        "1–30",
        "1–30",
        "31–60",
        "31–60",
        "61–90",
        "61–90",
        "over 90",
        "over 90",
    ]


def test_payment_terms_set_the_due_date_the_invoice_keeps(tmp_path: Path) -> None:
    """ann on net 30: INV-2 (Sep 15) is due Oct 15, INV-4 (Oct 15) due Nov 14 — aged from those."""
    root = tmp_path / "ws"
    accounting_workspace(root)
    customers = root / "rules" / "customers.yaml"
    customers.write_text(CUSTOMERS.replace("  ann:\n", "  ann:\n    payment_terms_days: 30\n"))
    session = Session.open(Workspace.load(root))
    session.invoice(date(2026, 10, 31))
    october = build_report(session, "aging", month="2026-10")
    assert [
        (r["invoice"], r["due date"], r["days past due"], r["bucket"])
        for r in rows(october, "Open invoices")
    ] == [
        ("INV-2026-000002", date(2026, 10, 15), 16, "1–30"),
        ("INV-2026-000004", date(2026, 11, 14), 0, "current"),  # due in 14 days: 0, never -14
        ("INV-2026-000003", date(2026, 10, 1), 30, "1–30"),  # cal: no terms, due on receipt
    ]
    document = json.loads((root / "books" / "documents" / "INV-2026-000004.json").read_text())
    assert (document["date"], document["due"]) == ("2026-10-15", "2026-11-14")
    html = (root / "books" / "documents" / "INV-2026-000004.html").read_text()
    assert "<dt>Due date</dt><dd>2026-11-14 (30 days)</dd>" in html
    entries, errors, _ = loader.load_file(str(root / "books" / "main.beancount"))
    assert errors == []
    invoice = next(
        e
        for e in entries
        if isinstance(e, data.Transaction) and e.meta.get("invoice") == "INV-2026-000004"
    )
    assert invoice.meta["due"] == date(2026, 11, 14)
    # Terms changed later never re-age an issued invoice: the due date is the invoice's own.
    customers.write_text(CUSTOMERS)
    again = build_report(Session.open(Workspace.load(root)), "aging", month="2026-10")
    assert [r["due date"] for r in rows(again, "Open invoices")] == [
        date(2026, 10, 15),
        date(2026, 11, 14),
        date(2026, 10, 1),
    ]


def test_aging_never_shows_negative_days_past_due(tmp_path: Path) -> None:
    """ann on net 30, report at 2026-10-31: INV-2026-000004 (Oct 15, due Nov 14) is 14 days before
    its due date: 0 days past due and 'current' in the table, the JSON and the CSV (it showed -14);
    INV-2026-000002 (due Oct 15) is 31 − 15 = 16 days past due."""
    root = tmp_path / "ws"
    accounting_workspace(root)
    customers = root / "rules" / "customers.yaml"
    customers.write_text(CUSTOMERS.replace("  ann:\n", "  ann:\n    payment_terms_days: 30\n"))
    session = Session.open(Workspace.load(root))
    session.invoice(date(2026, 10, 31))
    october = build_report(session, "aging", month="2026-10")
    found = {
        r["invoice"]: (r["days past due"], r["bucket"]) for r in rows(october, "Open invoices")
    }
    assert found["INV-2026-000004"] == (0, "current")
    assert found["INV-2026-000002"] == (16, "1–30")
    assert min(days for days, _ in found.values()) == 0
    as_json = run_cli(root, "report", "aging", "--month", "2026-10", "--json")
    assert as_json.exit_code == 0, as_json.output
    table = json.loads(as_json.output)["tables"][0]
    assert [(r["invoice"], r["days past due"]) for r in table["rows"]] == [
        ("INV-2026-000002", 16),
        ("INV-2026-000004", 0),
        ("INV-2026-000003", 30),
    ]
    as_csv = run_cli(root, "report", "aging", "--month", "2026-10", "--csv")
    assert "INV-2026-000004,ann,2026-10-15,2026-11-14,0,current," in as_csv.output


def test_negative_payment_terms_are_a_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with pytest.raises(RulesError):
        make_workspace(
            root,
            METERS_CALLS,
            PLANS,
            CUSTOMERS.replace("  ann:\n", "  ann:\n    payment_terms_days: -5\n"),
        )
    result = run_cli(root, "rate")
    assert result.exit_code == 2
    assert (
        "rules/customers.yaml:" in result.output
        and "customers.ann.payment_terms_days" in result.output
    )
    assert len(result.output.strip().splitlines()) == 1


def test_rollforward_identity_and_figures(session: Session, books_root: Path) -> None:
    report = build_report(session, "rollforward")
    for table in report.tables:
        for row in table.rows:
            r = dict(zip(table.columns, row, strict=True))
            if "accrued" in r:
                assert (
                    r["opening"] + r["accrued"] - r["invoiced"] + r["adjustments"] == r["closing"]
                )
            elif "billed" in r:
                assert (
                    r["opening"] + r["billed"] - r["recognized"] + r["adjustments"] == r["closing"]
                )
            else:
                assert (
                    r["opening"] + r["invoiced"] - r["collected"] - r["credited"] + r["adjustments"]
                    == r["closing"]
                )
    figures = {(t.title.split(" (")[0], row[0]): row[2:] for t in report.tables for row in t.rows}
    assert figures[("Unbilled roll-forward", "2026-09")] == (
        D("0.00"),
        D("2.00"),
        D("0.00"),
        D("0.00"),
        D("2.00"),
    )
    assert figures[("Unbilled roll-forward", "2026-10")] == (
        D("2.00"),
        D("1.00"),
        D("2.00"),
        D("0.00"),
        D("1.00"),
    )
    assert figures[("Deferred-revenue roll-forward", "2026-09")] == (
        D("0.00"),
        D("65.00"),
        D("47.40"),
        D("0.00"),
        D("17.60"),
    )
    assert figures[("Deferred-revenue roll-forward", "2026-10")] == (
        D("17.60"),
        D("60.00"),
        D("62.05"),
        D("0.00"),
        D("15.55"),
    )
    assert figures[("Receivables roll-forward", "2026-09")] == (
        D("0.00"),
        D("65.00"),
        D("30.00"),
        D("0.00"),
        D("0.00"),
        D("35.00"),
    )
    assert figures[("Receivables roll-forward", "2026-10")] == (
        D("35.00"),
        D("62.00"),
        D("10.00"),
        D("0.00"),
        D("0.00"),
        D("87.00"),
    )
    # the closing balances are the books' own, as Beancount loads them
    entries, errors, _ = load_books(books_root / "books" / "main.beancount")
    assert errors == []
    receivable = sum(
        (
            p.units.number
            for e in entries
            if hasattr(e, "postings") and e.date <= date(2026, 10, 31)
            for p in e.postings
            if p.account.startswith("Assets:Receivables:Invoiced:")
        ),
        D(0),
    )
    assert receivable == D("87.00")
    only = build_report(session, "rollforward", month="2026-10")
    assert {row[0] for t in only.tables for row in t.rows} == {"2026-10"}


def test_arpu_is_revenue_per_active_customer(session: Session) -> None:
    """Plan ``p``: 30.00 a month in advance, recognized by day, and 0.10 a call.

    - ``cal`` (calendar, from Sep 1): September 30.00 + 20 calls × 0.10 = 32.00; October
      30.00 + 10 calls = 31.00.
    - ``ann`` (cycles from Sep 15): September 16 of the cycle's 30 days of 30.00 = 16.00 + 14
      calls = 1.40, 17.40; October the cycle's last 14 days 14.00 + 17 of [Oct 15, Nov 15)'s
      31 days 30.00 × 17 / 31 = 16.45 + 16 calls = 1.60, 32.05.

    Both are active in both months: ARPU September (32.00 + 17.40) ÷ 2 = 24.70, October
    (31.00 + 32.05) ÷ 2 = 31.525 → 31.52 (half-even); usage alone 3.40 ÷ 2 = 1.70 and
    2.60 ÷ 2 = 1.30. Per unit, the calls still cost 0.10 each (34 and 26 calls).
    """
    report = build_report(session, "arpu")
    assert report.title == "Average revenue per user"
    assert [tuple(r.values()) for r in rows(report, "Revenue per customer")] == [
        ("2026-09", "USD", 2, D("49.40"), D("24.70"), D("3.40"), D("1.70")),
        ("2026-10", "USD", 2, D("63.05"), D("31.52"), D("2.60"), D("1.30")),
    ]
    assert [
        (r["month"], r["meter"], r["customers"], r["quantity"], r["revenue"], r["revenue per unit"])
        for r in rows(report, "Revenue per unit")
    ] == [
        ("2026-09", "api_calls", 2, D(34), D("3.40"), D("0.100000")),
        ("2026-10", "api_calls", 2, D(26), D("2.60"), D("0.100000")),
    ]


def test_cli_text_json_csv_and_bad_input(books_root: Path) -> None:
    text = run_cli(books_root, "report", "aging", "--month", "2026-10")
    assert text.exit_code == 0, text.output
    assert "Receivables aging at 2026-10-31" in text.output
    assert "its date plus the customer's payment_terms_days" in " ".join(text.output.split())
    assert (
        "INV-2026-000002  ann       2026-09-15    2026-09-15             46  31–60" in text.output
    )

    as_json = run_cli(books_root, "report", "revenue", "--json")
    assert as_json.exit_code == 0, as_json.output
    lines = as_json.output.splitlines()
    assert len(lines) == 1
    body = json.loads(lines[0])
    assert body["report"] == "revenue" and body["method"].startswith("Recognized revenue")
    assert body["tables"][0]["rows"][0] == {
        "month": "2026-09",
        "group": "usage",
        "line": "api_calls",
        "account": "Income:Usage:Api-Calls",
        "currency": "USD",
        "revenue": "3.40",
    }

    as_csv = run_cli(books_root, "report", "deferred", "--month", "2026-10", "--csv")
    assert as_csv.exit_code == 0, as_csv.output
    blocks = [list(csv.reader(io.StringIO(b))) for b in as_csv.output.split("\n\n")]
    assert blocks[0][0] == [
        "table",
        "customer",
        "currency",
        "base fees",
        "prepaid credits",
        "scheduled",
        "books",
        "late, booked later",
        "difference",
    ]
    assert blocks[0][1] == [
        "Deferred revenue at 2026-10-31",
        "ann",
        "USD",
        "13.55",
        "2.00",
        "15.55",
        "15.55",
        "0.00",
        "0.00",
    ]

    unknown = run_cli(books_root, "report", "profit")
    assert unknown.exit_code == 2 and "unknown report 'profit'" in unknown.output
    bad = run_cli(books_root, "report", "revenue", "--month", "2026-13")
    assert bad.exit_code == 2 and "--month" in bad.output
    both = run_cli(books_root, "report", "revenue", "--json", "--csv")
    assert both.exit_code == 2


def test_reports_need_books(tmp_path: Path) -> None:
    session = make_workspace(tmp_path / "ws", METERS_CALLS, PLANS, CUSTOMERS)
    result = run_cli(tmp_path / "ws", "report", "revenue")
    assert result.exit_code == 2 and "run `meterbook post` first" in result.output
    assert set(REPORTS) == {
        "revenue",
        "unbilled",
        "deferred",
        "aging",
        "rollforward",
        "arpu",
        "forecast",
        "risk",
        "tax",
    }
    assert Sources(session).transactions == []


@pytest.mark.parametrize("name", ["aging", "arpu", "forecast", "risk", "sources", "table"])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"ledger.reports.{name}"))
    assert result.attempted > 0 and result.failed == 0


# --- usage patterns: forecast and risk --------------------------------------------------------

TOKENS = (
    "meters:\n  tokens: {event_type: llm.completion, aggregation: sum, value: tokens, "
    "unit: token}\n"
)
TOKEN_PLANS = """\
plans:
  t:
    currency: USD
    base_fee: {amount: "10.00"}
    charges:
      - {meter: tokens, model: unit, unit_price: "0.01"}
"""
PATTERNS = {  # May … October 2026
    "steady": [1000, 1010, 990, 1005, 995, 1000],
    "collapse": [1000, 1020, 980, 1000, 1010, 100],
    "spike": [500, 510, 490, 500, 505, 1500],
    "linear": [1000, 1210, 1390, 1600, 1805, 2000],  # 1000 + 200·x within ±1.5 %
}


def usage_workspace(root: Path, store: str = "sqlite:///var/events.sqlite") -> Path:
    customers = "customers:\n" + "".join(
        f"  {c}: {{currency: USD, billing_anchor: calendar, subscriptions: [{{plan: t, start: "
        "2026-05-01}]}\n"
        for c in PATTERNS
    )
    session = make_workspace(root, TOKENS, TOKEN_PLANS, customers, store)
    rows = []
    for customer, values in PATTERNS.items():
        for month, value in enumerate(values, start=5):
            # two events a month, so the count differs from the quantity
            for half, day in ((value // 2, 3), (value - value // 2, 17)):
                rows.append(
                    Event.build(
                        source="t",
                        id=f"{customer}-{month}-{day}",
                        customer=customer,
                        type="llm.completion",
                        time=parse_time(f"2026-{month:02d}-{day:02d}T08:00:00Z"),
                        properties={"tokens": str(half)},
                    )
                )
    insert_events(session.engine, rows)
    return root


@pytest.fixture(scope="module")
def usage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return usage_workspace(tmp_path_factory.mktemp("usage") / "ws")


def test_risk_and_forecast_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The same monthly usage measured by PostgreSQL gives the same flags and trend."""
    session = Session.open(Workspace.load(usage_workspace(tmp_path / "ws", pg_url)))
    status = {
        r["customer"]: r["status"]
        for r in rows(build_report(session, "risk", month="2026-10"), "Usage")
    }
    assert status == {
        "collapse": "churn risk",
        "spike": "bill-shock risk",
        "linear": "ok",
        "steady": "ok",
    }
    trend = {
        r["customer"]: r["slope per month"]
        for r in rows(build_report(session, "forecast", month="2026-10"), "Usage trend")
    }
    assert trend["linear"] == D("199.86")


def test_risk_flags_the_collapse_and_the_spike_not_the_steady(usage_root: Path) -> None:
    report = build_report(Session.open(Workspace.load(usage_root)), "risk", month="2026-10")
    status = {r["customer"]: r for r in rows(report, "Usage against")}
    assert status["collapse"]["status"] == "churn risk"
    assert status["collapse"]["trailing median"] == D(1000) and status["collapse"]["latest"] == D(
        100
    )
    assert status["collapse"]["change %"] == D("-90.0")
    assert status["spike"]["status"] == "bill-shock risk"
    assert status["steady"]["status"] == "ok" and status["linear"]["status"] == "ok"
    assert [r["customer"] for r in rows(report, "Usage against")][:2] == [
        "collapse",
        "spike",
    ]  # flagged first
    assert "50 % of the median" in report.method and "200 %" in report.method


def test_risk_baseline_is_the_full_months_since_the_customer_started(tmp_path: Path) -> None:
    """Judged in October 2026, with the trailing months July, August and September:

    - ``late`` subscribes on 2026-08-25: 100 tokens in August (a week), 1,000 in September,
      1,300 in October. Its baseline is September alone (August is partial, July before it):
      median 1,000, change (1,300 / 1,000 − 1) = +30.0 %, ``ok``. Counting July as 0 and the
      partial August gave a median of 100 and +1,200.0 %, a false bill-shock risk.
    - ``trial`` subscribes on 2026-08-10 but sends events from 2026-07-01 (a trial): it started
      on 2026-07-01, so July, August and September count (400, 600, 500: median 500) and 1,500
      in October is +200.0 %, a ``bill-shock risk``.
    - ``fresh`` subscribes on 2026-10-03: no full month before October, ``no baseline``.
    """
    customers = (
        "customers:\n"
        "  late: {currency: USD, subscriptions: [{plan: t, start: 2026-08-25}]}\n"
        "  trial: {currency: USD, subscriptions: [{plan: t, start: 2026-08-10}]}\n"
        "  fresh: {currency: USD, subscriptions: [{plan: t, start: 2026-10-03}]}\n"
    )
    session = make_workspace(tmp_path / "ws", TOKENS, TOKEN_PLANS, customers)
    usage = {
        "late": {"2026-08-26": 100, "2026-09-10": 1000, "2026-10-10": 1300},
        "trial": {"2026-07-01": 400, "2026-08-12": 600, "2026-09-12": 500, "2026-10-12": 1500},
        "fresh": {"2026-10-05": 50},
    }
    insert_events(
        session.engine,
        [
            Event.build(
                source="t",
                id=f"{customer}-{day}",
                customer=customer,
                type="llm.completion",
                time=parse_time(f"{day}T08:00:00Z"),
                properties={"tokens": str(tokens)},
            )
            for customer, days in usage.items()
            for day, tokens in days.items()
        ],
    )
    found = {
        r["customer"]: r for r in rows(build_report(session, "risk", month="2026-10"), "Usage")
    }
    assert found["late"]["baseline"] == "2026-09"
    assert (found["late"]["trailing median"], found["late"]["change %"]) == (D(1000), D("30.0"))
    assert found["late"]["status"] == "ok"
    assert found["trial"]["baseline"] == "2026-07 to 2026-09"
    assert (found["trial"]["trailing median"], found["trial"]["change %"]) == (D(500), D("200.0"))
    assert found["trial"]["status"] == "bill-shock risk"
    assert (found["fresh"]["baseline"], found["fresh"]["status"]) == (None, "no baseline")


def test_forecast_of_a_linear_trend_is_within_two_percent(usage_root: Path) -> None:
    report = build_report(Session.open(Workspace.load(usage_root)), "forecast", month="2026-10")
    assert report.title == "Forecast for 2026-11 to 2027-01 (trend through 2026-10)"
    assert "least-squares" in report.method
    by_meter = {
        (r["customer"], r["month"], r["meter"]): r
        for r in rows(report, "Forecast by customer and meter")
    }
    for k, month in enumerate(("2026-11", "2026-12", "2027-01"), start=6):
        true = D(1000 + 200 * k)
        got = by_meter[("linear", month, "tokens")]["quantity"]
        assert abs(got - true) / true < D("0.02"), (month, got, true)
        assert by_meter[("linear", month, "tokens")]["amount"] == (got * D("0.01")).quantize(
            D("0.01")
        )
        steady = by_meter[("steady", month, "tokens")]["quantity"]
        assert abs(steady - 1000) / 1000 < D("0.02")
    totals = {r["customer"]: r for r in rows(report, "Forecast by customer")}
    november = by_meter[("linear", "2026-11", "tokens")]["amount"]
    assert totals["linear"]["2026-11"] == november + D("10.00")  # usage + base fee
    assert totals["collapse"]["plan"] == "t"


def test_linear_trend_is_least_squares() -> None:
    intercept, slope = linear_trend([D(1000), D(1210), D(1390), D(1600), D(1805), D(2000)])
    # x̄ = 2.5, ȳ = 9005/6 = 1500.833…, Sxx = 17.5, Sxy = Σ(x − x̄)·y = 3497.5
    # → slope 3497.5 / 17.5 = 199.857142…, intercept 1500.833… − 2.5 × 199.857… = 1001.190…
    assert slope.quantize(D("0.000001")) == D("199.857143")
    assert intercept.quantize(D("0.001")) == D("1001.190")


def test_forecast_follows_a_plan_change_and_spreads_a_quarterly_cycle(tmp_path: Path) -> None:
    """Sep on monthly ``p`` (0.10 a call), from Oct on quarterly ``q`` (a flat 90.00 per quarter).

    10 calls a day all October: the forecast prices November on ``q`` — 90.00 a quarter is
    30.00 a month, not 90.00 — and the plan change is seen (``p`` has no end date)."""
    plans = (
        PLANS
        + """\
  q:
    currency: USD
    cycle: quarterly
    charges:
      - {meter: api_calls, model: flat, amount: "90.00"}
"""
    )
    customers = (
        "customers:\n  c:\n    currency: USD\n    billing_anchor: calendar\n"
        "    subscriptions: [{plan: p, start: 2026-09-01}, {plan: q, start: 2026-10-01}]\n"
    )
    session = make_workspace(tmp_path / "ws", METERS_CALLS, plans, customers)
    insert_events(
        session.engine,
        [e for d in range(1, 32) for e in calls("c", [f"2026-10-{d:02d}"] * 10, f"d{d}-")],
    )
    assert plan_on(session.rules, "c", date(2026, 9, 30)).id == "p"
    assert plan_on(session.rules, "c", date(2026, 10, 1)).id == "q"
    assert plan_on(session.rules, "c", date(2026, 8, 31)) is None
    report = build_report(session, "forecast", month="2026-10")
    [row] = rows(report, "Forecast by customer")
    assert (row["plan"], row["2026-11"]) == ("q", D("30.00"))


def test_forecast_prices_each_month_with_the_plan_version_of_its_cycle(tmp_path: Path) -> None:
    """Plan ``v``: 30.00 a month in advance and 0.10 a call; a version effective 2026-12-01
    raises them to 40.00 and 0.20. Both customers make 300 calls in September and in October
    (10 a day, days 1–30), so the trend is flat at 300 calls a month.

    - ``cal`` (calendar cycles): November on the old terms, 300 × 0.10 + 30.00 = 60.00;
      December and January on the new, 300 × 0.20 + 40.00 = 100.00.
    - ``ann`` (cycles from the 15th): the cycle running on December 1 started on November 15,
      before the version, so it is billed on the old terms: December 60.00 as November; the
      cycle running on January 1 started on December 15: January 100.00.

    Without the version, every month was 60.00.
    """
    plans = """\
plans:
  v:
    currency: USD
    base_fee: {amount: "30.00"}
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
    versions:
      - effective: 2026-12-01
        base_fee: {amount: "40.00"}
        charges:
          - {meter: api_calls, model: unit, unit_price: "0.20"}
"""
    customers = (
        "customers:\n"
        "  cal: {currency: USD, billing_anchor: calendar, "
        "subscriptions: [{plan: v, start: 2026-09-01}]}\n"
        "  ann: {currency: USD, subscriptions: [{plan: v, start: 2026-09-15}]}\n"
    )
    session = make_workspace(tmp_path / "ws", METERS_CALLS, plans, customers)
    days = [f"2026-{m:02d}-{d:02d}" for m in (9, 10) for d in range(1, 31)]
    insert_events(
        session.engine,
        [e for c in ("cal", "ann") for d in days for e in calls(c, [d] * 10, f"{c}{d}-")],
    )
    report = build_report(session, "forecast", month="2026-10")
    totals = {r["customer"]: r for r in rows(report, "Forecast by customer")}
    assert [totals["cal"][m] for m in ("2026-11", "2026-12", "2027-01")] == [
        D("60.00"),
        D("100.00"),
        D("100.00"),
    ]
    assert [totals["ann"][m] for m in ("2026-11", "2026-12", "2027-01")] == [
        D("60.00"),
        D("60.00"),
        D("100.00"),
    ]


def test_flow_of_names_adjustments_before_what_they_correct() -> None:
    from ledger.reports.rollforward import flow_of

    def entry(**meta: object) -> data.Transaction:
        return data.Transaction(
            {"filename": "x", "lineno": 1, **meta},
            date(2026, 10, 1),
            "*",
            "c",
            "n",
            frozenset(),
            frozenset(),
            [],
        )

    assert flow_of(entry(invoice="INV-2026-000001")) == "invoice"
    assert (
        flow_of(entry(invoice="INV-2026-000001", debit_adjustment="DA-2026-000001")) == "adjustment"
    )
    assert flow_of(entry(invoice="INV-2026-000001", late=True)) == "adjustment"
    assert flow_of(entry(invoice="INV-2026-000001", reference="BANK-1")) == "payment"
    assert flow_of(entry(invoice="INV-2026-000001", credit_note="CN-2026-000001")) == "credit_note"
    assert flow_of(entry(customer="c")) == "accrual"


def test_deferred_shows_late_usage_booked_after_the_month(tmp_path: Path) -> None:
    """Late usage drawn from a grant after its month was sealed explains the books' difference.

    The workspace above, invoiced through Sep 30 and September closed (sealed); ann's cycle
    [Sep 15, Oct 15) is not invoiced yet. Then 3 calls of ``ann`` dated Sep 29 arrive:
    3 × 0.10 = 0.30, drawn from its 5.00 grant. The store rates them into September, so the
    schedule at Sep 30 holds 5.00 − 1.40 − 0.30 = 3.30 of credit, 14.00 + 3.30 = 17.30 in all;
    the sealed books keep 17.60, and posting through Oct 10 books the draw on Oct 1, the first
    open day, as a late adjustment (usage_date Sep 30) debiting deferred revenue 0.30. So:
    books 17.60, late −0.30, difference 17.60 − 0.30 − 17.30 = 0.00 (0.30 without the column).
    """
    root = tmp_path / "ws"
    session = accounting_workspace(root)
    session.invoice(date(2026, 9, 30))
    closed = run_cli(root, "close", "2026-09")
    assert closed.exit_code == 0, closed.output
    insert_events(session.engine, calls("ann", ["2026-09-29"] * 3, "late"))
    session = Session.open(Workspace.load(root))
    session.post(date(2026, 10, 10))
    late = [
        e
        for e in load_books(root / "books" / "main.beancount")[0]
        if isinstance(e, data.Transaction) and (e.meta or {}).get("late")
    ]
    assert [(e.date, e.meta["usage_date"]) for e in late] == [
        (date(2026, 10, 1), date(2026, 9, 30))
    ]
    september = build_report(session, "deferred", month="2026-09")
    assert [
        (
            r["customer"],
            r["base fees"],
            r["prepaid credits"],
            r["scheduled"],
            r["books"],
            r["late, booked later"],
            r["difference"],
        )
        for r in rows(september, "Deferred revenue at")
    ] == [("ann", D("14.00"), D("3.30"), D("17.30"), D("17.60"), D("-0.30"), D("0.00"))]


def test_applied_cash_is_collected_not_less_invoiced(tmp_path: Path) -> None:
    """Plan ``u`` at 1.00 a call, acme (calendar) 10 calls in September: INV-2026-000001,
    10.00, Oct 1. BANK-1, 15.00 naming no invoice, Oct 5 (unapplied cash); 10.00 of it applied
    to INV-2026-000001 on Oct 12 (Dr unapplied cash / Cr receivable).

    Receivables in October: opening 0.00 + invoiced 10.00 − collected 10.00 (the applied
    cash) = closing 0.00. The application names the invoice, and was counted as an invoice:
    invoiced 0.00 (10.00 − 10.00), collected 0.00.
    """
    root = tmp_path / "ws"
    session = make_workspace(
        root,
        METERS_CALLS,
        plans="plans:\n  u:\n    currency: USD\n    charges:\n"
        '      - {meter: api_calls, model: unit, unit_price: "1.00"}\n',
        customers="customers:\n  acme: {currency: USD, billing_anchor: calendar,"
        " subscriptions: [{plan: u, start: 2026-09-01}]}\n",
    )
    insert_events(session.engine, calls("acme", [f"2026-09-{d:02d}" for d in range(1, 11)]))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    (tmp_path / "bank.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-10-05,15.00,USD,,BANK-1\n"
    )
    assert run_cli(root, "ingest", str(tmp_path / "bank.csv")).exit_code == 0
    applied = run_cli(
        root,
        "apply",
        "BANK-1",
        "--invoice",
        "INV-2026-000001",
        "--amount",
        "10.00",
        "--date",
        "2026-10-12",
    )
    assert applied.exit_code == 0, applied.output
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    report = json.loads(
        run_cli(root, "report", "rollforward", "--month", "2026-10", "--json").output
    )
    [table] = [t for t in report["tables"] if t["title"].startswith("Receivables")]
    assert table["rows"] == [
        {
            "month": "2026-10",
            "currency": "USD",
            "opening": "0.00",
            "invoiced": "10.00",
            "collected": "10.00",
            "credited": "0.00",
            "adjustments": "0.00",
            "closing": "0.00",
        }
    ]


def test_forecast_prices_the_main_plan_and_its_addon(tmp_path: Path) -> None:
    """``c`` on ``p`` (30.00 a month and 0.10 a call, calendar cycles) from Sep 1 and on the
    add-on ``s`` (12.00 a month, no meter; ``id: support``, cycles from Oct 15) from Oct 15.
    300 calls in September and in October (10 a day, days 1–30): a flat trend of 300.

    November: ``p`` 300 × 0.10 + 30.00 = 60.00, plus ``s`` 12.00 = 72.00 (60.00 without the
    add-on); the plans column names both."""
    plans = PLANS + '  s:\n    currency: USD\n    base_fee: {amount: "12.00"}\n'
    customers = (
        "customers:\n  c:\n    currency: USD\n    billing_anchor: calendar\n"
        "    subscriptions: [{plan: p, start: 2026-09-01}, "
        "{id: support, plan: s, start: 2026-10-15, billing_anchor: start}]\n"
    )
    session = make_workspace(tmp_path / "ws", METERS_CALLS, plans, customers)
    insert_events(
        session.engine,
        [
            e
            for month in ("09", "10")
            for d in range(1, 31)
            for e in calls("c", [f"2026-{month}-{d:02d}"] * 10, f"m{month}d{d}-")
        ],
    )
    report = build_report(session, "forecast", month="2026-10")
    [row] = rows(report, "Forecast by customer")
    assert (row["plan"], row["2026-11"], row["2026-12"]) == ("p,s", D("72.00"), D("72.00"))
