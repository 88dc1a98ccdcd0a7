"""Supplementary invoices: what a churned customer still owes after its last invoice is billed.

Plan ``u`` charges 1.00 per API call, monthly, calendar-anchored; ``w`` is the
same at 2.00. Customers:

- ``gone``: subscribed Sep 1, ended Sep 18: one cycle ``[Sep 1, Sep 18)``,
  invoiced on Sep 18 — its last invoice;
- ``stay``: ``u`` from Sep 1 to Oct 1, then ``w`` from Oct 1 with no end (a plan
  change, not an end: its first subscription has ``end: 2026-10-01``).

Late usage of an invoiced cycle is posted dated the invoice date (here Sep 18,
an open month), and a debit adjustment on its rerate date; both wait in
unbilled. Every number below is computed by hand in the comments.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from beancount.core import data
from click.testing import CliRunner

from ledger.books import load_books
from ledger.cli import cli
from ledger.facts.invoices import SUPPLEMENTARY, Invoice, load_invoices
from ledger.rerate import rerate
from ledger.session import Session
from tests.support.workspaces import (
    METERS_CALLS,
    balance,
    book_hashes,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
  w:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "2.00"}
"""
#: plan ``u`` re-priced to 1.25 a call from Sep 1, after the fact
RERATED = PLANS.replace(
    """      - {meter: api_calls, model: unit, unit_price: "1.00"}
""",
    """      - {meter: api_calls, model: unit, unit_price: "1.00"}
    versions:
      - effective: 2026-09-01
        charges:
          - {meter: api_calls, model: unit, unit_price: "1.25"}
""",
)
CUSTOMERS = """\
customers:
  gone:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-09-01, end: 2026-09-18}]
  stay:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-09-01, end: 2026-10-01}, {plan: w, start: 2026-10-01}]
"""
UNBILLED = "Assets:Receivables:Unbilled:Gone"
RECEIVABLE = "Assets:Receivables:Invoiced:Gone"


def workspace(root: Path) -> Session:
    return open_session(
        write_workspace(root, meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)
    )


def churned(root: Path) -> Session:
    """``gone``: 10 calls on Sep 1..10, invoiced on Sep 18 (INV-2026-000001, 10 × 1.00 = 10.00)."""
    session = workspace(root)
    insert_events(session.engine, calls("gone", [f"2026-09-{d:02d}" for d in range(1, 11)]))
    issued = session.invoice(through=date(2026, 9, 18))
    assert [(i.number, i.customer, i.date, i.total, i.kind) for i in issued] == [
        ("INV-2026-000001", "gone", date(2026, 9, 18), Decimal("10.00"), "regular")
    ]
    return session


def books(session: Session) -> list[data.Directive]:
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return entries


def late_run(root: Path) -> tuple[Session, list[Invoice]]:
    """Two calls of Sep 15 and 16 arrive after the Sep 18 invoice; then invoice through Sep 30."""
    session = churned(root)
    insert_events(session.engine, calls("gone", ["2026-09-15", "2026-09-16"], "late"))
    # Sep 19 is the earliest a supplementary invoice may be dated (the day after the last invoice):
    # a run through Sep 18 issues nothing and the late 2.00 waits in unbilled
    assert session.invoice(through=date(2026, 9, 18)) == []
    assert balance(books(session), UNBILLED, date(2026, 9, 19)) == Decimal("2.00")
    return session, session.invoice(through=date(2026, 9, 30))


def test_late_usage_of_a_churned_customer_gets_a_supplementary_invoice(tmp_path: Path) -> None:
    session, issued = late_run(tmp_path / "a")
    # 2 calls × 1.00, dated the day after the last invoice (the late entry is dated Sep 18)
    assert [(i.number, i.customer, i.date, i.total, i.kind) for i in issued] == [
        ("INV-2026-000002", "gone", date(2026, 9, 19), Decimal("2.00"), SUPPLEMENTARY)
    ]
    supplementary = issued[0]
    assert [
        (ln.kind, ln.description, ln.account, ln.amount, ln.link) for ln in supplementary.lines
    ] == [
        (
            "late_usage",
            "late usage for 2026-09-01/2026-09-18",
            "unbilled",
            Decimal("2.00"),
            "gone-2026-09-01",
        )
    ]
    assert supplementary.key == "gone/2026-09-19/supplementary" and supplementary.accruals == ()

    entries = books(session)
    late = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late") is True]
    assert [(e.date, e.postings[0].account, e.postings[0].units.number) for e in late] == [
        (date(2026, 9, 18), UNBILLED, Decimal("2.00"))
    ]
    invoice = [
        e
        for e in entries
        if isinstance(e, data.Transaction) and e.meta.get("invoice") == "INV-2026-000002"
    ]
    assert len(invoice) == 1 and invoice[0].date == date(2026, 9, 19)
    assert {"INV-2026-000002", "gone-2026-09-01"} <= invoice[0].links
    # unbilled: 10.00 accrued − 10.00 invoiced + 2.00 late − 2.00 supplementary = 0;
    # receivable 12.00
    assert balance(entries, UNBILLED, date(2026, 9, 19)) == Decimal("2.00")
    assert balance(entries, UNBILLED, date(2026, 9, 20)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 9, 20)) == Decimal("12.00")
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 10, 1)) == Decimal("-12.00")

    # its documents: the JSON says what kind it is and reads back;
    # regular invoices' JSON has no kind
    documents = session.workspace.books_dir / "documents"
    stored = (documents / "INV-2026-000002.json").read_text()
    assert (
        json.loads(stored)["kind"] == SUPPLEMENTARY and Invoice.from_json(stored) == supplementary
    )
    assert "kind" not in json.loads((documents / "INV-2026-000001.json").read_text())
    assert Invoice.from_json((documents / "INV-2026-000001.json").read_text()).kind == "regular"
    assert "INV-2026-000002" in (documents / "INV-2026-000002.html").read_text()
    assert [i.number for i in load_invoices(session.engine)] == [
        "INV-2026-000001",
        "INV-2026-000002",
    ]
    # `meterbook trace` re-drafts it from the store and finds the same line
    traced = CliRunner().invoke(
        cli, ["--workspace", str(session.workspace.root), "trace", "INV-2026-000002"]
    )
    assert traced.exit_code == 0, traced.output
    assert "line 1 late_usage [unbilled] amount" in traced.output
    assert (
        "verified: the invoice, its document and the books equal the recomputation" in traced.output
    )

    # idempotent: nothing more to bill, the books do not move
    before = book_hashes(session.workspace.books_dir)
    assert session.invoice(through=date(2026, 9, 30)) == []
    assert book_hashes(session.workspace.books_dir) == before
    assert session.invoice(through=date(2026, 10, 31)) == []
    assert balance(books(session), UNBILLED, date(2026, 11, 1)) == 0

    # one more late call after the supplementary invoice: another one, the day after it
    insert_events(session.engine, calls("gone", ["2026-09-17"], "later"))
    again = session.invoice(through=date(2026, 10, 31))
    assert [(i.number, i.date, i.total, i.key) for i in again] == [
        ("INV-2026-000003", date(2026, 9, 20), Decimal("1.00"), "gone/2026-09-20/supplementary")
    ]
    entries = books(session)
    assert balance(entries, UNBILLED, date(2026, 9, 21)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 9, 21)) == Decimal("13.00")


def test_supplementary_invoices_are_deterministic(tmp_path: Path) -> None:
    first, second = late_run(tmp_path / "a"), late_run(tmp_path / "b")
    assert [i.to_json() for i in first[1]] == [i.to_json() for i in second[1]]
    assert book_hashes(first[0].workspace.books_dir) == book_hashes(second[0].workspace.books_dir)


def test_debit_adjustment_of_a_churned_customer_gets_a_supplementary_invoice(
    tmp_path: Path,
) -> None:
    session = churned(tmp_path / "ws")
    (session.workspace.rules_dir / "plans.yaml").write_text(RERATED)
    session = open_session(session.workspace.root)
    report = rerate(session, date(2026, 9, 1), on=date(2026, 9, 25))
    # 10 calls × 1.25 = 12.50 re-rated − 10.00 invoiced = +2.50, a debit adjustment dated Sep 25
    assert [(ln.customer, ln.invoice, ln.difference, ln.document) for ln in report.lines] == [
        ("gone", "INV-2026-000001", Decimal("2.50"), "DA-2026-000001")
    ]
    assert balance(books(session), UNBILLED, date(2026, 9, 26)) == Decimal("2.50")

    issued = session.invoice(through=date(2026, 9, 30))
    # dated the adjustment's day (later than the day after the last invoice, Sep 19)
    assert [(i.number, i.customer, i.date, i.total, i.kind) for i in issued] == [
        ("INV-2026-000002", "gone", date(2026, 9, 25), Decimal("2.50"), SUPPLEMENTARY)
    ]
    assert [(ln.kind, ln.description, ln.account, ln.amount) for ln in issued[0].lines] == [
        (
            "rerate",
            "DA-2026-000001 debit adjustment: api_calls of INV-2026-000001 re-rated from "
            "2026-09-01",
            "unbilled",
            Decimal("2.50"),
        )
    ]
    entries = books(session)
    # the adjustment and the invoice are both dated Sep 25: Dr unbilled 2.50, then Cr unbilled 2.50
    sep25 = [
        (e.meta.get("debit_adjustment") or e.meta.get("invoice"), p.units.number)
        for e in entries
        if isinstance(e, data.Transaction) and e.date == date(2026, 9, 25)
        for p in e.postings
        if p.account == UNBILLED
    ]
    assert sorted(sep25) == [
        ("DA-2026-000001", Decimal("2.50")),
        ("INV-2026-000002", Decimal("-2.50")),
    ]
    assert balance(entries, UNBILLED, date(2026, 9, 26)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 9, 26)) == Decimal("12.50")
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 9, 26)) == Decimal("-12.50")
    before = book_hashes(session.workspace.books_dir)
    assert session.invoice(through=date(2026, 9, 30)) == []
    assert book_hashes(session.workspace.books_dir) == before
    # trace re-drafts it with the debit adjustment recorded by then; the HTML says what it is
    traced = CliRunner().invoke(
        cli, ["--workspace", str(session.workspace.root), "trace", "INV-2026-000002"]
    )
    assert traced.exit_code == 0, traced.output
    html = (session.workspace.books_dir / "documents" / "INV-2026-000002.html").read_text()
    assert "<h1>Supplementary invoice INV-2026-000002</h1>" in html


def test_late_usage_and_a_debit_adjustment_share_one_supplementary_invoice(tmp_path: Path) -> None:
    session = churned(tmp_path / "ws")
    insert_events(
        session.engine, calls("gone", ["2026-09-12"], "late")
    )  # 1 call after the Sep 18 invoice
    (session.workspace.rules_dir / "plans.yaml").write_text(RERATED)
    session = open_session(session.workspace.root)
    report = rerate(session, date(2026, 9, 1), on=date(2026, 9, 25))
    # late usage is priced as invoiced (1.00); the rerate prices all 11 calls: 13.75 − 11.00 = +2.75
    assert [(ln.difference, ln.document) for ln in report.lines] == [
        (Decimal("2.75"), "DA-2026-000001")
    ]

    issued = session.invoice(through=date(2026, 9, 30))
    # one invoice per customer per run, dated the latest posting (Sep 25): 1.00 + 2.75 = 3.75
    assert [(i.date, i.total, i.kind) for i in issued] == [
        (date(2026, 9, 25), Decimal("3.75"), SUPPLEMENTARY)
    ]
    assert [(ln.kind, ln.amount) for ln in issued[0].lines] == [
        ("late_usage", Decimal("1.00")),
        ("rerate", Decimal("2.75")),
    ]
    entries = books(session)
    assert balance(entries, UNBILLED, date(2026, 9, 26)) == 0
    # 11 calls × 1.25: all of it revenue, all of it invoiced (10.00 + 3.75)
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 9, 26)) == Decimal("-13.75")
    assert balance(entries, RECEIVABLE, date(2026, 9, 26)) == Decimal("13.75")
    assert session.invoice(through=date(2026, 10, 31)) == []


def test_an_active_customers_late_usage_waits_for_its_next_regular_invoice(tmp_path: Path) -> None:
    session = workspace(tmp_path / "ws")
    unbilled = "Assets:Receivables:Unbilled:Stay"
    insert_events(
        session.engine,
        [*calls("stay", [f"2026-09-{d:02d}" for d in range(1, 6)]), *calls("gone", ["2026-09-02"])],
    )
    issued = session.invoice(through=date(2026, 10, 1))
    # gone: 1 call on Sep 18; stay: 5 calls on Oct 1
    # (its September plan ends there, the next runs on)
    assert [(i.customer, i.date, i.total) for i in issued] == [
        ("gone", date(2026, 9, 18), Decimal("1.00")),
        ("stay", date(2026, 10, 1), Decimal("5.00")),
    ]
    insert_events(
        session.engine,
        [
            *calls("stay", ["2026-09-20"], "late"),
            *calls("stay", ["2026-10-05", "2026-10-06", "2026-10-07"], "oct"),
        ],
    )
    # a plan change is not an end: stay's late 1.00 waits, no supplementary invoice
    assert session.invoice(through=date(2026, 10, 31)) == []
    entries = books(session)
    assert balance(entries, unbilled, date(2026, 10, 2)) == Decimal(
        "1.00"
    )  # the late entry, dated Oct 1
    issued = session.invoice(through=date(2026, 11, 1))
    # November 1: October's 3 calls × 2.00 (plan w) = 6.00 + the late 1.00 = 7.00
    assert [(i.customer, i.date, i.total, i.kind) for i in issued] == [
        ("stay", date(2026, 11, 1), Decimal("7.00"), "regular")
    ]
    assert [(ln.kind, ln.amount) for ln in issued[0].lines] == [
        ("usage", Decimal("6.00")),
        ("late_usage", Decimal("1.00")),
    ]
    assert balance(books(session), unbilled, date(2026, 11, 2)) == 0


FREE_PLANS = """\
plans:
  f:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0"}
          - {unit_price: "0.05"}
"""
FREE_CUSTOMERS = """\
customers:
  free: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: f, start: 2026-09-01}]}
  ended:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: f, start: 2026-09-01, end: 2026-09-18}]
"""


def test_a_free_cycle_billed_late_is_invoiced_in_the_first_open_month(tmp_path: Path) -> None:
    """September's 5 calls are free, so no invoice was issued and September and October were
    sealed; 20 late calls of Sep 20 make the cycle bill (25 − 10) × 0.05 = 0.75. That invoice
    cannot be dated Oct 1 (sealed) nor, for ``ended``, Sep 18: both are dated Nov 1, the first
    open day, and clear the late unbilled to 0; the next run bills nothing again."""
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=FREE_PLANS, customers=FREE_CUSTOMERS
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [*calls("free", ["2026-09-05"] * 5, "a"), *calls("ended", ["2026-09-05"] * 5, "a")],
    )
    for month in ("2026-09", "2026-10"):
        assert run_cli(root, "close", month).exit_code == 0
    assert load_invoices(session.engine) == []
    insert_events(
        session.engine,
        [*calls("free", ["2026-09-20"] * 20, "late"), *calls("ended", ["2026-09-10"] * 20, "late")],
    )
    session = open_session(root)
    issued = session.invoice(through=date(2026, 11, 30))
    assert [(i.customer, i.date, i.total, [ln.cycle for ln in i.lines]) for i in issued] == [
        ("ended", date(2026, 11, 1), Decimal("0.75"), ["2026-09-01/2026-09-18"]),
        # free's regular Nov 1 invoice (October: 0 calls) takes September's lines
        (
            "free",
            date(2026, 11, 1),
            Decimal("0.75"),
            ["2026-10-01/2026-11-01", "2026-09-01/2026-10-01"],
        ),
    ]
    entries = books(session)
    for cid in ("Free", "Ended"):
        assert balance(entries, f"Assets:Receivables:Unbilled:{cid}", date(2026, 11, 2)) == 0
        assert balance(entries, f"Assets:Receivables:Invoiced:{cid}", date(2026, 11, 2)) == Decimal(
            "0.75"
        )
    assert session.invoice(through=date(2026, 11, 30)) == []
    for number in ("INV-2026-000001", "INV-2026-000002"):
        traced = run_cli(root, "trace", number)
        assert traced.exit_code == 0, traced.output
    assert run_cli(root, "check").exit_code == 0
    # once November is sealed too, trace still puts September's lines back on the Nov 1 invoices
    assert run_cli(root, "close", "2026-11").exit_code == 0
    for number in ("INV-2026-000001", "INV-2026-000002"):
        traced = run_cli(root, "trace", number)
        assert traced.exit_code == 0, traced.output


def test_a_supplementary_invoice_after_a_sealed_month_is_traced(tmp_path: Path) -> None:
    """Found by the simulator (seed 60517). ``gone`` ended Sep 18 and was invoiced that day
    (INV-2026-000001, 10.00); September is closed. Two calls of Sep 15 and 16 arrive after:
    late usage of a cycle in a sealed month, posted on the first open day, Oct 1 (2 × 1.00 =
    2.00 in Unbilled:Gone). ``invoice --through 2026-10-05`` bills it on a supplementary
    invoice dated Oct 1 (the latest of the line's posting day Oct 1, the day after the last
    invoice Sep 19 and the end Sep 18): INV-2026-000002, 2.00, Unbilled:Gone 0 after it.

    ``trace`` re-drafts it: its late line was dated on the previous invoice (Sep 18), which
    dated the re-draft Sep 19, so no draft matched ``gone/2026-10-01/supplementary`` and
    the invoice was "NOT verified". A supplementary invoice's re-drafted lines are dated as
    they were posted (never after the invoice): verified."""
    session = churned(tmp_path / "ws")
    root = session.workspace.root
    closed = run_cli(root, "close", "2026-09")
    assert closed.exit_code == 0, closed.output
    insert_events(session.engine, calls("gone", ["2026-09-15", "2026-09-16"], "late"))
    issued = run_cli(root, "invoice", "--through", "2026-10-05")
    assert issued.exit_code == 0, issued.output
    (supplementary,) = [i for i in load_invoices(session.engine) if i.kind == SUPPLEMENTARY]
    assert (supplementary.number, supplementary.date, supplementary.total) == (
        "INV-2026-000002",
        date(2026, 10, 1),
        Decimal("2.00"),
    )
    entries = books(session)
    assert balance(entries, UNBILLED, date(2026, 10, 2)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 10, 2)) == Decimal("12.00")
    traced = run_cli(root, "trace", "INV-2026-000002")
    assert traced.exit_code == 0, traced.output
    assert "verified: the invoice, its document and the books equal" in traced.output
    assert run_cli(root, "check").exit_code == 0


def test_a_supplementary_invoice_is_traced_after_the_customer_comes_back(tmp_path: Path) -> None:
    """Found by the simulator (seed 65014). ``gone`` ended Sep 18 (INV-2026-000001, 10.00) and
    its late 2.00 went on the supplementary INV-2026-000002 of Sep 19, as a churned customer
    has no next invoice. Then ``gone`` subscribes again from Oct 1: by today's rules it has
    not ended, so a re-draft would leave the 2.00 for its next regular invoice. ``trace``
    re-drafts the supplementary invoice as issued, on its date (before: "the store and rules
    draft no invoice for gone/2026-09-19/supplementary", NOT verified); ``check`` passes and
    the 2.00 is billed once."""
    session, issued = late_run(tmp_path / "ws")
    assert [(i.number, i.total, i.kind) for i in issued] == [
        ("INV-2026-000002", Decimal("2.00"), SUPPLEMENTARY)
    ]
    root = session.workspace.root
    (root / "rules" / "customers.yaml").write_text(
        CUSTOMERS.replace(
            "subscriptions: [{plan: u, start: 2026-09-01, end: 2026-09-18}]",
            "subscriptions: [{plan: u, start: 2026-09-01, end: 2026-09-18}, "
            "{plan: u, start: 2026-10-01}]",
        )
    )
    assert run_cli(root, "post", "--through", "2026-10-05").exit_code == 0
    traced = run_cli(root, "trace", "INV-2026-000002")
    assert traced.exit_code == 0, traced.output
    assert run_cli(root, "check").exit_code == 0
    assert balance(books(open_session(root)), UNBILLED, date(2026, 10, 6)) == 0


def test_a_supplementary_invoice_keeps_its_debit_adjustment_when_a_regular_one_joins_its_day(
    tmp_path: Path,
) -> None:
    """Found by the simulator (seed 81267). ``cal`` on ``f`` (31.00 a month in advance, 0.10 a
    call), ended from Sep 2: the cycle [Sep 1, Sep 2) is 1 of 30 days, round(31.00 / 30) =
    1.03, INV-2026-000001 of Sep 1. The end is then moved to Sep 12: [Sep 1, Sep 12) is 11
    days, round(31.00 × 11 / 30) = 11.37, so DA-2026-000001 charges 10.34 from Sep 2, where the
    billed days ran out. ``cal`` has ended, so no regular invoice takes it: the supplementary
    INV-2026-000002 of Sep 12 (the subscription's end) bills it. Six calls of Sep 1 arrive
    after: the cycle's own invoice of Sep 12, INV-2026-000003, bills 0.60. ``trace`` of the
    supplementary invoice re-drafted the day with the regular invoice first, which took the
    10.34, and found no supplementary invoice to compare ("the store and rules draft no
    invoice"); what an issued invoice billed stays on it. Receivable 1.03 + 10.34 + 0.60 =
    11.97."""
    plans = (
        'plans:\n  f:\n    currency: USD\n    base_fee: {amount: "31.00", timing: advance}\n'
        '    charges:\n      - {meter: api_calls, model: unit, unit_price: "0.10"}\n'
    )
    customers = (
        "customers:\n  cal:\n    currency: USD\n    billing_anchor: calendar\n"
        "    subscriptions: [{plan: f, start: 2026-09-01, end: %s}]\n"
    )
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=plans, customers=customers % "2026-09-02"
    )
    assert run_cli(root, "invoice", "--through", "2026-09-01").exit_code == 0
    (root / "rules" / "customers.yaml").write_text(customers % "2026-09-12")
    assert run_cli(root, "invoice", "--through", "2026-09-13").exit_code == 0
    insert_events(open_session(root).engine, calls("cal", ["2026-09-01"] * 6, "late"))
    assert run_cli(root, "invoice", "--through", "2026-09-13").exit_code == 0
    invoices = load_invoices(open_session(root).engine)
    assert [(i.number, i.date, i.kind, i.total) for i in invoices] == [
        ("INV-2026-000001", date(2026, 9, 1), "regular", Decimal("1.03")),
        ("INV-2026-000002", date(2026, 9, 12), SUPPLEMENTARY, Decimal("10.34")),
        ("INV-2026-000003", date(2026, 9, 12), "regular", Decimal("0.60")),
    ]
    for number in ("INV-2026-000002", "INV-2026-000003"):
        traced = run_cli(root, "trace", number)
        assert traced.exit_code == 0 and "NOT verified" not in traced.output, traced.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Assets:Receivables:Invoiced:Cal", date(2026, 9, 13)) == Decimal(
        "11.97"
    )
    assert run_cli(root, "check").exit_code == 0
