"""Posting worked examples: the books are loaded with Beancount and balances read at dates.

Plans and customers: tests/support/posting.py. Every number below is computed by hand in
the comments.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data

from ledger.books import load_books
from ledger.events import Event, parse_time
from ledger.session import Session
from tests.support.posting import CUSTOMERS, PLANS
from tests.support.workspaces import (
    METERS_CALLS_TOKENS,
    balance,
    calls,
    insert_events,
    open_session,
    write_workspace,
)


def _workspace(tmp_path: Path) -> Session:
    return open_session(
        write_workspace(
            tmp_path / "ws", meters=METERS_CALLS_TOKENS, plans=PLANS, customers=CUSTOMERS
        )
    )


def _insert(session: Session, rows: list[Event]) -> None:
    insert_events(session.engine, rows)


_calls = calls


def _tokens(customer: str, items: list[tuple[str, str]]) -> list[Event]:
    return [
        Event.build(
            source="t",
            id=f"{customer}-tok{i}",
            customer=customer,
            type="llm.completion",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={"tokens": n},
        )
        for i, (day, n) in enumerate(items)
    ]


@pytest.fixture
def books(tmp_path: Path) -> tuple[Session, list[data.Directive]]:
    session = _workspace(tmp_path)
    sep = [f"2026-09-{d:02d}" for d in range(1, 31)]
    _insert(
        session,
        [
            *_calls("cal", sep),  # 30 calls in September
            *_calls("ann", [f"2026-09-{16 + i % 14:02d}" for i in range(14)]),  # 14 calls Sep 15–30
            *_calls("ann", [f"2026-10-{1 + i:02d}" for i in range(11)], "b"),  # 11 calls Oct 1–14
            *_tokens("vol", [("2026-09-20", "60"), ("2026-10-05", "90")]),
            *_calls("cr", sep),
            *_calls("mc", sep),
        ],
    )
    session.invoice(through=date(2026, 10, 31))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return session, entries


def test_calendar_cycle_graduated(books: tuple[Session, list[data.Directive]]) -> None:
    _, entries = books
    # 30 calls: 10 free + 20 × 0.05 = 1.00 accrued on Sep 30, invoiced Oct 1
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 10, 1)) == Decimal("1.00")
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 10, 2)) == 0
    assert balance(entries, "Assets:Receivables:Invoiced:Cal", date(2026, 10, 2)) == Decimal("1.00")


def test_anniversary_cycle_crossing_month_end_graduated(
    books: tuple[Session, list[data.Directive]],
) -> None:
    _, entries = books
    # Sep 30: 14 calls → 4 × 0.05 = 0.20; Oct 14: 25 calls → 15 × 0.05 = 0.75; invoiced Oct 15
    assert balance(entries, "Assets:Receivables:Unbilled:Ann", date(2026, 10, 1)) == Decimal("0.20")
    assert balance(entries, "Assets:Receivables:Unbilled:Ann", date(2026, 10, 15)) == Decimal(
        "0.75"
    )
    assert balance(entries, "Assets:Receivables:Unbilled:Ann", date(2026, 10, 16)) == 0
    assert balance(entries, "Assets:Receivables:Invoiced:Ann", date(2026, 10, 16)) == Decimal(
        "0.75"
    )


def test_anniversary_cycle_volume_tiers_use_contract_asset(
    books: tuple[Session, list[data.Directive]],
) -> None:
    _, entries = books
    # Sep 30: 60 tokens × 0.02 = 1.20; Oct 14: 150 tokens fall in the 0.01 tier: 1.50 (+0.30)
    assert balance(entries, "Assets:Contract-Assets:Vol", date(2026, 10, 1)) == Decimal("1.20")
    assert balance(entries, "Assets:Contract-Assets:Vol", date(2026, 10, 15)) == Decimal("1.50")
    assert balance(entries, "Assets:Contract-Assets:Vol", date(2026, 10, 16)) == 0
    assert balance(entries, "Income:Usage:Tokens", date(2026, 10, 16)) == Decimal("-1.50")


def test_base_fee_in_advance_prorated_and_recognized_by_day(
    books: tuple[Session, list[data.Directive]],
) -> None:
    _, entries = books
    # first cycle [Sep 11, Oct 1) is 20 of 30 days: 20.00 invoiced Sep 11, recognized by Sep 30
    assert balance(entries, "Assets:Receivables:Invoiced:Bf", date(2026, 9, 12)) == Decimal("20.00")
    assert balance(entries, "Liabilities:Deferred-Revenue:Bf", date(2026, 9, 12)) == Decimal(
        "-20.00"
    )
    assert balance(entries, "Liabilities:Deferred-Revenue:Bf", date(2026, 10, 1)) == 0
    assert balance(entries, "Income:Subscriptions:B", date(2026, 10, 1)) == Decimal("-20.00")
    # Oct 1 invoices the full October fee 30.00 in advance; all recognized by Oct 31
    assert balance(entries, "Assets:Receivables:Invoiced:Bf", date(2026, 10, 2)) == Decimal("50.00")
    assert balance(entries, "Liabilities:Deferred-Revenue:Bf", date(2026, 11, 1)) == 0


def test_credits_drawn_and_breakage(books: tuple[Session, list[data.Directive]]) -> None:
    _, entries = books
    # grant 5.00 invoiced Sep 1 (receivable / deferred); September usage 1.00 drawn from it
    assert balance(entries, "Liabilities:Deferred-Revenue:Cr", date(2026, 10, 1)) == Decimal(
        "-4.00"
    )
    assert balance(entries, "Assets:Receivables:Unbilled:Cr", date(2026, 10, 1)) == 0
    # the 4.00 left expires on Oct 15: breakage revenue
    assert balance(entries, "Liabilities:Deferred-Revenue:Cr", date(2026, 10, 16)) == 0
    assert balance(entries, "Income:Credit-Breakage", date(2026, 10, 16)) == Decimal("-4.00")
    assert balance(entries, "Assets:Receivables:Invoiced:Cr", date(2026, 10, 16)) == Decimal("5.00")


def test_commitment_shortfall(books: tuple[Session, list[data.Directive]]) -> None:
    _, entries = books
    # usage 20 × 0.05 = 1.00 < minimum 20.00: shortfall 19.00 accrued Sep 30, invoice 20.00
    assert balance(entries, "Income:Commitment-Shortfall", date(2026, 10, 1)) == Decimal("-19.00")
    assert balance(entries, "Assets:Receivables:Invoiced:Mc", date(2026, 10, 2)) == Decimal("20.00")


def test_every_cycle_accruals_sum_to_invoice(books: tuple[Session, list[data.Directive]]) -> None:
    """Each usage line of each invoice document (``books/documents/INV-….json``) is the sum of
    the Income:Usage postings of its meter carrying its cycle link, up to the invoice date; and
    after each invoice its customer has no unbilled or contract-asset balance left."""
    session, entries = books
    documents = sorted((session.workspace.books_dir / "documents").glob("INV-*.json"))
    invoices = {
        e.meta["invoice"]: e
        for e in entries
        if isinstance(e, data.Transaction) and "invoice" in e.meta
    }
    assert [p.stem for p in documents] == sorted(invoices) and len(documents) == 8
    usage_lines = 0
    for path in documents:
        document = json.loads(path.read_text())
        invoice = invoices[document["number"]]
        for line in document["lines"]:
            if line["kind"] != "usage":
                continue
            usage_lines += 1
            account = session.rules.account("usage_revenue", meter=line["meter"])
            posted = -sum(
                (
                    p.units.number
                    for e in entries
                    if isinstance(e, data.Transaction)
                    and line["link"] in e.links
                    and "invoice" not in e.meta
                    and e.date < invoice.date
                    for p in e.postings
                    if p.account == account
                ),
                Decimal(0),
            )
            assert posted == Decimal(line["amount"]), (
                document["number"],
                line["meter"],
                line["link"],
            )
        after = date.fromordinal(invoice.date.toordinal() + 1)
        for kind in ("unbilled", "contract_asset"):
            account = session.rules.account(kind, customer=document["customer"])
            assert balance(entries, account, after) == 0, (document["number"], account)
    # 8 invoices: cal, ann, vol, cr and mc bill usage once each; bf's base fees (Sep 11, Oct 1) and
    # cr's credit grant (Sep 1) have no usage line; ann's and vol's first cycles had no usage
    assert usage_lines == 5


def test_late_usage_after_invoice_is_a_separate_adjustment(tmp_path: Path) -> None:
    session = _workspace(tmp_path)
    _insert(session, _calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]))
    issued = session.invoice(through=date(2026, 10, 1))
    assert [(i.customer, i.total) for i in issued if i.customer == "cal"] == [
        ("cal", Decimal("1.00"))
    ]
    _insert(session, _calls("cal", ["2026-09-20"], "late"))  # arrives after the invoice
    session.invoice(through=date(2026, 11, 1))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    late = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late") is True]
    assert len(late) == 1 and late[0].meta["usage_date"] == date(2026, 9, 30)
    # one more call at 0.05, posted after the Oct 1 invoice and billed as its own line on Nov 1
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 10, 2)) == Decimal("0.05")
    nov = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and e.date == date(2026, 11, 1)
        and e.meta.get("customer") == "cal"
        and "invoice" in e.meta
    ]
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 11, 2)) == 0
    assert nov and nov[0].postings[0].units.number == Decimal("0.05")


def test_books_are_deterministic(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        session = _workspace(tmp_path / name)
        rows = _calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)])
        if name == "b":
            rows.reverse()
        for i in range(0, len(rows), 7):
            _insert(session, rows[i : i + 7])
        session.invoice(through=date(2026, 10, 31))
        books_dir = session.workspace.books_dir
        outputs.append(
            {
                p.relative_to(books_dir): p.read_bytes()
                for p in sorted(books_dir.rglob("*"))
                if p.is_file()
            }
        )
    assert outputs[0] == outputs[1]


def test_late_usage_after_a_later_invoice_is_dated_where_its_line_waits(tmp_path: Path) -> None:
    """Found by the ingest-order property (Hypothesis seed 3204…7729, issue 12). vol
    (anniversary cycles from Aug 15; volume tokens: all at 0.02 up to 100, all at 0.01
    beyond, accrued as a contract asset) uses 91 tokens on Sep 9 and 30 on Sep 17.
    ``invoice --through 2026-10-15`` issues INV-2026-000001 (Sep 15, [Aug 15, Sep 15): 91 ×
    0.02 = 1.82) and INV-2026-000002 (Oct 15, [Sep 15, Oct 15): 30 × 0.02 = 0.60).

    Then 17 tokens dated Sep 11 arrive: the first cycle is 108 tokens × 0.01 = 1.08, a late
    difference of 1.08 − 1.82 = −0.74. INV-2026-000002 was issued before they arrived, so
    its line waits from Oct 15 and the books post it there, not on Sep 15 (the frozen
    cycle's invoice date): Contract-Assets:Vol before Oct 15 = 1.82 − 1.82 + 0.60 = 0.60,
    exactly what INV-2026-000002 settles (on Sep 15 it was 0.60 − 0.74 = −0.14 there).

    200 tokens on Oct 20 ([Oct 15, Nov 15): 200 × 0.01 = 2.00): INV-2026-000003 (Nov 15)
    bills 2.00 − 0.74 = 1.26, the −0.74 + 2.00 the books hold before Nov 15; 0 after."""
    customers = (
        "customers:\n  vol: {currency: USD, billing_anchor: start, "
        "subscriptions: [{plan: v, start: 2026-08-15}]}\n"
    )
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS_TOKENS, plans=PLANS, customers=customers
    )
    session = open_session(root, today=date(2026, 11, 30))
    _insert(session, _tokens("vol", [("2026-09-09", "91"), ("2026-09-17", "30")]))
    first = session.invoice(through=date(2026, 10, 15))
    assert [(i.date, i.total) for i in first] == [
        (date(2026, 9, 15), Decimal("1.82")),
        (date(2026, 10, 15), Decimal("0.60")),
    ]
    later = _tokens("vol", [("2026-09-11", "17"), ("2026-10-20", "200")])
    _insert(session, [replace(e, id=f"vol-late{i}") for i, e in enumerate(later)])
    (third,) = session.invoice(through=date(2026, 11, 15))
    assert (third.number, third.date, third.total) == (
        "INV-2026-000003",
        date(2026, 11, 15),
        Decimal("1.26"),
    )
    assert [(line.kind, line.amount) for line in third.lines] == [
        ("usage", Decimal("2.00")),
        ("late_usage", Decimal("-0.74")),
    ]
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    (entry,) = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert (entry.date, entry.meta["usage_date"]) == (date(2026, 10, 15), date(2026, 9, 14))
    asset = "Assets:Contract-Assets:Vol"
    assert [balance(entries, asset, day) for day in (date(2026, 9, 15), date(2026, 10, 15))] == [
        Decimal("1.82"),
        Decimal("0.60"),
    ]
    assert balance(entries, asset, date(2026, 10, 16)) == Decimal("-0.74")
    assert balance(entries, asset, date(2026, 11, 15)) == Decimal("1.26")
    assert balance(entries, asset, date(2026, 11, 16)) == 0
