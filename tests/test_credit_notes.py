"""Credit-note worked examples through ``meterbook credit`` and the books, loaded with Beancount.

The payments workspace (tests/support/payments.py): acme's INV-2026-000001 of 2026-10-01 is
110.00 USD (line 1: 100 calls = 100.00, line 2: 1,000 tokens = 10.00).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from click.testing import CliRunner, Result

from ledger.books import load_books
from ledger.cli import cli
from ledger.credit_notes import _pro_rata, issue_credit_note
from ledger.errors import BadInput
from ledger.facts.credit_notes import load_credit_notes
from ledger.facts.invoices import load_invoices
from ledger.journal.credit_notes import credit_note_entries
from ledger.reports import build_report
from ledger.session import Session
from tests.support.payments import books_of, import_payments, payments_workspace
from tests.support.workspaces import (
    METERS_CALLS,
    STORE,
    balance,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

RECEIVABLE = "Assets:Receivables:Invoiced:Acme"
REFUNDS = "Liabilities:Refunds:Acme"


def credit(session: Session, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(session.workspace.root), "credit", *args])


def pay(session: Session, tmp_path: Path, amount: str, day: str = "2026-10-10") -> None:
    path = tmp_path / f"pay-{amount}.csv"
    path.write_text(
        f"date,amount,currency,invoice,reference\n{day},{amount},USD,INV-2026-000001,PAY-{amount}\n"
    )
    assert import_payments(session, path).accepted == 1


def transaction(entries: list[data.Directive], number: str) -> data.Transaction:
    """The note's own transaction (not the fee-recognition reductions that carry its number too)."""
    [found] = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and e.meta.get("credit_note") == number
        and e.narration.startswith("Credit note")
    ]
    return found


def test_credit_note_on_unpaid_invoice_reduces_the_receivable(tmp_path: Path) -> None:
    session = payments_workspace(tmp_path)
    result = credit(
        session,
        "INV-2026-000001",
        "--amount",
        "30",
        "--reason",
        "outage 2026-09-03",
        "--date",
        "2026-10-05",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("CN-2026-000001  2026-10-05  acme")
    entries = books_of(session)
    # 110.00 invoiced, 30.00 credited while unpaid: 80.00 owed; nothing to refund
    assert balance(entries, RECEIVABLE, date(2026, 10, 5)) == Decimal("110.00")
    assert balance(entries, RECEIVABLE, date(2026, 10, 6)) == Decimal("80.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 10, 6)) == Decimal("30.00")
    assert balance(entries, REFUNDS, date(2026, 11, 1)) == 0
    txn = transaction(entries, "CN-2026-000001")
    assert txn.links == {"CN-2026-000001", "INV-2026-000001", "acme-2026-09-01"}
    assert txn.meta["reason"] == "outage 2026-09-03" and txn.meta["customer"] == "acme"
    docs = [e for e in entries if isinstance(e, data.Document) and "CN-2026-000001" in e.links]
    assert [d.account for d in docs] == [RECEIVABLE]
    documents = session.workspace.books_dir / "documents"
    assert "Credit note CN-2026-000001" in (documents / "CN-2026-000001.html").read_text()
    record = json.loads((documents / "CN-2026-000001.json").read_text())
    assert (record["invoice"], record["amount"], record["line"]) == (
        "INV-2026-000001",
        "30.00",
        None,
    )
    # a payment of the 80.00 left then settles the invoice exactly
    pay(session, tmp_path, "80.00", "2026-10-10")
    entries = books_of(session)
    assert balance(entries, RECEIVABLE, date(2026, 10, 11)) == 0
    assert balance(entries, "Liabilities:Unapplied-Cash", date(2026, 11, 1)) == 0


def test_credit_note_on_paid_invoice_is_a_refund_liability(tmp_path: Path) -> None:
    session = payments_workspace(tmp_path)
    pay(session, tmp_path, "110.00")
    assert (
        credit(
            session,
            "INV-2026-000001",
            "--amount",
            "25.00",
            "--reason",
            "goodwill",
            "--date",
            "2026-10-12",
        ).exit_code
        == 0
    )
    entries = books_of(session)
    # paid in full on Oct 10: the 25.00 credit is owed back to acme
    assert balance(entries, RECEIVABLE, date(2026, 10, 13)) == 0
    assert balance(entries, REFUNDS, date(2026, 10, 13)) == Decimal("-25.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 10, 13)) == Decimal("25.00")


def test_credit_note_on_partly_paid_invoice_splits(tmp_path: Path) -> None:
    session = payments_workspace(tmp_path)
    pay(session, tmp_path, "80.00")  # 30.00 of 110.00 still open
    assert (
        credit(
            session,
            "INV-2026-000001",
            "--amount",
            "50",
            "--reason",
            "outage",
            "--date",
            "2026-10-12",
        ).exit_code
        == 0
    )
    entries = books_of(session)
    # 30.00 cancels what is still owed, the other 20.00 was paid: refund
    assert balance(entries, RECEIVABLE, date(2026, 10, 11)) == Decimal("30.00")
    assert balance(entries, RECEIVABLE, date(2026, 10, 13)) == 0
    assert balance(entries, REFUNDS, date(2026, 10, 13)) == Decimal("-20.00")
    assert [p.units.number for p in transaction(entries, "CN-2026-000001").postings] == [
        Decimal("50"),
        Decimal("-30.00"),
        Decimal("-20"),
    ]


def test_more_than_creditable_is_refused_without_force(tmp_path: Path) -> None:
    session = payments_workspace(tmp_path)
    assert (
        credit(
            session, "INV-2026-000001", "--amount", "100", "--reason", "a", "--date", "2026-10-05"
        ).exit_code
        == 0
    )
    # creditable now 110.00 − 100.00 = 10.00
    refused = credit(
        session, "INV-2026-000001", "--amount", "10.01", "--reason", "b", "--date", "2026-10-06"
    )
    assert refused.exit_code == 2
    assert "10.00 USD" in refused.output and "--force" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert [n.number for n in load_credit_notes(session.engine)] == ["CN-2026-000001"]
    forced = credit(
        session,
        "INV-2026-000001",
        "--amount",
        "15",
        "--reason",
        "b",
        "--date",
        "2026-10-06",
        "--force",
    )
    assert forced.exit_code == 0, forced.output
    assert "(forced)" in forced.output
    entries = books_of(session)
    # unpaid: 100.00 then 10.00 against the receivable; the 5.00 beyond the invoice is owed back
    assert balance(entries, RECEIVABLE, date(2026, 10, 7)) == 0
    assert balance(entries, REFUNDS, date(2026, 10, 7)) == Decimal("-5")
    assert transaction(entries, "CN-2026-000002").meta["forced"] is True


def test_line_credit_is_capped_by_the_line(tmp_path: Path) -> None:
    session = payments_workspace(tmp_path)
    # line 2 is the tokens: 10.00
    refused = credit(
        session,
        "INV-2026-000001",
        "--line",
        "2",
        "--amount",
        "10.50",
        "--reason",
        "x",
        "--date",
        "2026-10-05",
    )
    assert refused.exit_code == 2 and "line 2 of INV-2026-000001" in refused.output
    ok = credit(
        session,
        "INV-2026-000001",
        "--line",
        "2",
        "--amount",
        "10.00",
        "--reason",
        "tokens miscounted",
        "--date",
        "2026-10-05",
    )
    assert ok.exit_code == 0, ok.output
    assert (
        credit(
            session,
            "INV-2026-000001",
            "--line",
            "2",
            "--amount",
            "0.01",
            "--reason",
            "x",
            "--date",
            "2026-10-05",
        ).exit_code
        == 2
    )
    assert (
        credit(
            session,
            "INV-2026-000001",
            "--line",
            "3",
            "--amount",
            "1",
            "--reason",
            "x",
            "--date",
            "2026-10-05",
        ).exit_code
        == 2
    )
    entries = books_of(session)
    txn = transaction(entries, "CN-2026-000001")
    assert txn.meta["invoice_line"] == Decimal(2)
    assert balance(entries, RECEIVABLE, date(2026, 10, 6)) == Decimal("100.00")


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    session = payments_workspace(tmp_path)
    for args, needle in (
        (["INV-2026-000001", "--amount", "abc", "--reason", "x"], "--amount"),
        (["INV-2026-000001", "--amount", "1.001", "--reason", "x"], "decimal places"),
        (["INV-2026-000001", "--amount", "-1", "--reason", "x"], "positive"),
        (["INV-2026-000001", "--amount", "1", "--reason", " "], "--reason"),
        (["INV-2099-000001", "--amount", "1", "--reason", "x"], "not an issued invoice"),
        (["INV-2026-000001", "--amount", "1", "--reason", "x", "--date", "2026-09-30"], "before"),
        (["INV-2026-000001", "--amount", "1", "--reason", "x", "--date", "31/10/2026"], "--date"),
    ):
        result = credit(session, *args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert load_credit_notes(session.engine) == []


def test_numbers_are_sequential_and_books_deterministic(tmp_path: Path) -> None:
    session = payments_workspace(tmp_path)
    for amount in ("1", "2"):
        assert (
            credit(
                session,
                "INV-2026-000002",
                "--amount",
                amount,
                "--reason",
                "r",
                "--date",
                "2026-10-03",
            ).exit_code
            == 0
        )
    assert [n.number for n in load_credit_notes(session.engine)] == [
        "CN-2026-000001",
        "CN-2026-000002",
    ]
    books_of(session)
    books_dir = session.workspace.books_dir
    first = {p: p.read_bytes() for p in sorted(books_dir.rglob("*")) if p.is_file()}
    books_of(session)
    assert {p: p.read_bytes() for p in sorted(books_dir.rglob("*")) if p.is_file()} == first


# --- credit notes on lines billed to deferred revenue -------------------------------------------
#
# What was billed but not yet earned is taken out of deferred revenue, not given back as
# contra-revenue (the bug: a note on a prepaid-credit invoice debited Income:Credit-Notes,
# left Deferred-Revenue untouched, and the credited amount came back as breakage).

GLOBEX_DEFERRED = "Liabilities:Deferred-Revenue:Globex"
GLOBEX_RECEIVABLE = "Assets:Receivables:Invoiced:Globex"
PREPAID_PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
"""
PREPAID_CUSTOMERS = """\
customers:
  globex:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-09-01}]
    credits:
      - {amount: "1000.00", granted: 2026-09-01, expires: 2026-12-01}
"""


def prepaid(tmp_path: Path, october: int = 0, store: str = STORE) -> Session:
    """globex buys 1,000.00 of credit on Sep 1 (INV-2026-000001, deferred), uses 300 calls at
    1.00 in September (drawn on Sep 30) and ``october`` calls on Oct 20. The session runs as
    of 2026-12-31: the books are written through the grant's expiry (Dec 1) and the year."""
    session = open_session(
        write_workspace(
            tmp_path / "ws",
            meters=METERS_CALLS,
            plans=PREPAID_PLANS,
            customers=PREPAID_CUSTOMERS,
            config=store,
        ),
        today=date(2026, 12, 31),
    )
    insert_events(
        session.engine,
        calls("globex", [f"2026-09-{1 + i % 28:02d}" for i in range(300)])
        + calls("globex", ["2026-10-20"] * october, prefix="oct"),
    )
    [grant] = session.invoice(through=date(2026, 9, 1))
    assert (grant.number, grant.total, grant.lines[0].kind) == (
        "INV-2026-000001",
        Decimal("1000.00"),
        "credit_grant",
    )
    return session


def books_through(session: Session, through: date) -> list[data.Directive]:
    session.invoice(through=through)
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return list(entries)


def test_prepaid_credit_note_reverses_deferred_revenue_and_shrinks_breakage(tmp_path: Path) -> None:
    session = prepaid(tmp_path)
    note = session.credit(
        "INV-2026-000001",
        amount="500",
        reason="unused credit refunded",
        on=date(2026, 10, 12),
    )
    # rated through Oct 12: 300.00 drawn on Sep 30, so 700.00 undrawn; all 500.00 comes out of
    # deferred
    assert [(p.line, p.kind, p.amount, p.deferred, p.grant) for p in note.parts] == [
        (1, "credit_grant", Decimal("500.00"), Decimal("500.00"), "2026-09-01#1")
    ]
    entries = books_through(session, date(2026, 12, 31))
    txn = transaction(entries, note.number)
    assert {p.account: p.units.number for p in txn.postings} == {
        GLOBEX_DEFERRED: Decimal("500.00"),
        GLOBEX_RECEIVABLE: Decimal("-500.00"),
    }
    # deferred (a liability, negative):
    #   1000.00 billed − 300.00 drawn = 700.00; − 500.00 credited = 200.00
    assert balance(entries, GLOBEX_DEFERRED, date(2026, 10, 12)) == Decimal("-700.00")
    assert balance(entries, GLOBEX_DEFERRED, date(2026, 10, 13)) == Decimal("-200.00")
    assert balance(entries, GLOBEX_DEFERRED, date(2026, 12, 1)) == Decimal("-200.00")
    # expiry on Dec 1: breakage is the 200.00 left, not 700.00; deferred ends at 0
    assert balance(entries, "Income:Credit-Breakage", date(2026, 12, 2)) == Decimal("-200.00")
    assert balance(entries, GLOBEX_DEFERRED, date(2026, 12, 2)) == 0
    assert balance(entries, "Income:Credit-Notes", date(2027, 1, 1)) == 0
    # 1000.00 invoiced, 500.00 credited; the Oct 1 invoice is 300.00 usage − 300.00 credit = 0.00
    assert balance(entries, GLOBEX_RECEIVABLE, date(2027, 1, 1)) == Decimal("500.00")
    record = json.loads(
        (session.workspace.books_dir / "documents" / f"{note.number}.json").read_text()
    )
    assert [(p["line"], p["amount"], p["deferred"]) for p in record["parts"]] == [
        (1, "500.00", "500.00")
    ]
    assert (
        "Deferred revenue reversed"
        in (session.workspace.books_dir / "documents" / f"{note.number}.html").read_text()
    )


def test_prepaid_credit_note_leaves_less_to_draw(tmp_path: Path) -> None:
    session = prepaid(tmp_path, october=250)
    session.credit("INV-2026-000001", amount="500", reason="r", on=date(2026, 10, 12))
    entries = books_through(session, date(2026, 12, 31))
    nov = next(i for i in load_invoices(session.engine) if i.date == date(2026, 11, 1))
    # 200.00 left after the note: of October's 250 calls (250.00), 200.00 drawn, 50.00 billed
    assert [(ln.kind, ln.amount) for ln in nov.lines] == [
        ("usage", Decimal("250.00")),
        ("credit_applied", Decimal("-200.00")),
    ]
    assert balance(entries, GLOBEX_DEFERRED, date(2026, 11, 1)) == 0
    assert balance(entries, "Income:Credit-Breakage", date(2027, 1, 1)) == 0


def test_crediting_more_than_the_undrawn_grant_is_refused_unless_forced(
    tmp_path: Path, store_url: str
) -> None:
    """On SQLite and PostgreSQL: the grant is rated while the note's transaction holds the lock."""
    session = prepaid(tmp_path, store=f'store = "{store_url}"\n')
    session.credit("INV-2026-000001", amount="500", reason="a", on=date(2026, 10, 12))
    # 500.00 of the invoice can still be credited, but only 200.00 of the grant is undrawn
    with pytest.raises(BadInput) as refused:
        session.credit("INV-2026-000001", amount="200.01", reason="b", on=date(2026, 10, 20))
    message = str(refused.value)
    assert "200.00 USD" in message and "--force" in message and "\n" not in message
    assert [n.number for n in load_credit_notes(session.engine)] == ["CN-2026-000001"]
    forced = session.credit(
        "INV-2026-000001", amount="250", reason="b", on=date(2026, 10, 20), force=True
    )
    assert forced.forced and [(p.amount, p.deferred) for p in forced.parts] == [
        (Decimal("250.00"), Decimal("200.00"))
    ]
    entries = books_through(session, date(2026, 12, 31))
    # 200.00 from deferred, the 50.00 beyond the grant's balance is contra-revenue
    assert {p.account: p.units.number for p in transaction(entries, forced.number).postings} == {
        "Income:Credit-Notes": Decimal("50.00"),
        GLOBEX_DEFERRED: Decimal("200.00"),
        GLOBEX_RECEIVABLE: Decimal("-250.00"),
    }
    assert balance(entries, GLOBEX_DEFERRED, date(2026, 10, 21)) == 0
    assert balance(entries, "Income:Credit-Breakage", date(2027, 1, 1)) == 0


def test_prepaid_credit_needs_the_rating(tmp_path: Path) -> None:
    """Without grant balances (a caller that cannot rate) a grant line is refused, not guessed."""
    session = prepaid(tmp_path)
    with pytest.raises(BadInput, match="prepaid credit"):
        issue_credit_note(
            session.engine, "INV-2026-000001", amount="1", reason="r", on=date(2026, 10, 12)
        )


ACME_DEFERRED = "Liabilities:Deferred-Revenue:Acme"
FEE_PLANS = """\
plans:
  pro:
    currency: USD
    base_fee: {amount: "31.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
"""
FEE_CUSTOMERS = """\
customers:
  acme: {currency: USD, billing_anchor: start, subscriptions: [{plan: pro, start: 2026-10-15}]}
"""


def advance_fee(tmp_path: Path) -> Session:
    """acme's fee of 31.00 is billed in advance: INV-2026-000001 on Oct 15 for [Oct 15, Nov 15)
    (31 days, 1.00 a day); 10 calls at 1.00 in that cycle; INV-2026-000002 on Nov 15 is
    10.00 usage + 31.00 fee for [Nov 15, Dec 15) (30 days). The session runs as of
    2026-12-14, the last day of that cycle."""
    session = open_session(
        write_workspace(
            tmp_path / "ws", meters=METERS_CALLS, plans=FEE_PLANS, customers=FEE_CUSTOMERS
        ),
        today=date(2026, 12, 14),
    )
    insert_events(session.engine, calls("acme", [f"2026-10-{20 + i}" for i in range(10)]))
    issued = session.invoice(through=date(2026, 11, 15))
    assert [(i.number, i.total) for i in issued] == [
        ("INV-2026-000001", Decimal("31.00")),
        ("INV-2026-000002", Decimal("41.00")),
    ]
    return session


def test_advance_fee_credited_mid_cycle(tmp_path: Path) -> None:
    session = advance_fee(tmp_path)
    result = credit(
        session,
        "INV-2026-000001",
        "--line",
        "1",
        "--amount",
        "25",
        "--reason",
        "downgrade",
        "--date",
        "2026-10-26",
    )
    assert result.exit_code == 0, result.output
    [note] = load_credit_notes(session.engine)
    # recognized through Oct 25: 11 of 31 days = 11.00; 20.00 still deferred: 20.00 of the 25.00
    # comes out of deferred revenue, 5.00 gives recognized revenue back
    assert [(p.amount, p.deferred, p.revenue) for p in note.parts] == [
        (Decimal("25.00"), Decimal("20.00"), Decimal("5.00"))
    ]
    session.post(through=date(2026, 11, 30))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    assert {p.account: p.units.number for p in transaction(entries, note.number).postings} == {
        "Income:Credit-Notes": Decimal("5.00"),
        ACME_DEFERRED: Decimal("20.00"),
        RECEIVABLE: Decimal("-25.00"),
    }
    # the 20.00 is taken out of recognition over the 20 days Oct 26 – Nov 14:
    # 6 days by Oct 31 = 6.00, the other 14.00 on Nov 14;
    # the accruals still recognize 17.00 (Oct 31) and 14.00 (Nov 14)
    reductions = [
        (e.date, {p.account: p.units.number for p in e.postings})
        for e in entries
        if isinstance(e, data.Transaction)
        and e.meta.get("credit_note") == note.number
        and e.narration.startswith("Base fee recognition")
    ]
    assert reductions == [
        (
            date(2026, 10, 31),
            {"Income:Subscriptions:Pro": Decimal("6.00"), ACME_DEFERRED: Decimal("-6.00")},
        ),
        (
            date(2026, 11, 14),
            {"Income:Subscriptions:Pro": Decimal("14.00"), ACME_DEFERRED: Decimal("-14.00")},
        ),
    ]
    # deferred: 31.00 billed; 11.00 after the note; Oct 31: 11.00 − 17.00 + 6.00 = 0; Nov 14: 0
    assert balance(entries, ACME_DEFERRED, date(2026, 10, 26)) == Decimal("-31.00")
    assert balance(entries, ACME_DEFERRED, date(2026, 10, 27)) == Decimal("-11.00")
    assert balance(entries, ACME_DEFERRED, date(2026, 11, 1)) == 0
    assert balance(entries, ACME_DEFERRED, date(2026, 11, 15)) == 0
    # the cycle's fee revenue: 31.00 − 20.00 = 11.00 (the days before the note); 5.00 contra
    assert balance(entries, "Income:Subscriptions:Pro", date(2026, 11, 15)) == Decimal("-11.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 11, 15)) == Decimal("5.00")
    books_dir = session.workspace.books_dir
    first = {p: p.read_bytes() for p in sorted(books_dir.rglob("*")) if p.is_file()}
    session.post(through=date(2026, 11, 30))
    assert {p: p.read_bytes() for p in sorted(books_dir.rglob("*")) if p.is_file()} == first


def test_whole_invoice_note_is_split_pro_rata(tmp_path: Path) -> None:
    session = advance_fee(tmp_path)
    assert (
        credit(
            session,
            "INV-2026-000002",
            "--amount",
            "20.50",
            "--reason",
            "goodwill",
            "--date",
            "2026-11-20",
        ).exit_code
        == 0
    )
    [note] = load_credit_notes(session.engine)
    # 20.50 over usage 10.00 and fee 31.00 (41.00): 5.00 and 15.50; the fee's days recognized
    # through Nov 19 are 5 of 30 = 5.17, so all 15.50 is still deferred
    assert [(p.line, p.kind, p.amount, p.deferred) for p in note.parts] == [
        (1, "usage", Decimal("5.00"), Decimal("0")),
        (2, "base_fee", Decimal("15.50"), Decimal("15.50")),
    ]
    session.post(through=date(2026, 12, 14))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    assert {p.account: p.units.number for p in transaction(entries, note.number).postings} == {
        "Income:Credit-Notes": Decimal("5.00"),
        ACME_DEFERRED: Decimal("15.50"),
        RECEIVABLE: Decimal("-20.50"),
    }
    # 15.50 out of recognition over Nov 20 – Dec 14 (25 days): 11 days by Nov 30 = 6.82, then 8.68
    # deferred on Dec 1:
    #   −31.00 billed + 15.50 credited + 16.53 recognized (16/30 of 31.00) − 6.82 reduced
    assert balance(entries, ACME_DEFERRED, date(2026, 12, 1)) == Decimal("-5.79")
    assert balance(entries, ACME_DEFERRED, date(2026, 12, 15)) == 0
    # fee revenue of both cycles: 31.00 + (31.00 − 15.50)
    assert balance(entries, "Income:Subscriptions:Pro", date(2026, 12, 15)) == Decimal("-46.50")
    record = json.loads(
        (session.workspace.books_dir / "documents" / f"{note.number}.json").read_text()
    )
    assert [(p["line"], p["amount"], p["deferred"]) for p in record["parts"]] == [
        (1, "5.00", "0.00"),
        (2, "15.50", "15.50"),
    ]
    # the deferred report explains the books' 5.79 on Nov 30: all of it recognized in December
    report = build_report(session, "deferred", month="2026-11")
    [row] = [
        r
        for t in report.tables
        if t.title.startswith("Deferred revenue at")
        for r in (dict(zip(t.columns, row, strict=True)) for row in t.rows)
        if r["customer"] == "acme"
    ]
    assert (row["base fees"], row["books"], row["difference"]) == (
        Decimal("5.79"),
        Decimal("5.79"),
        Decimal("0.00"),
    )


def test_fee_reductions_stop_at_the_posting_date(tmp_path: Path) -> None:
    session = advance_fee(tmp_path)
    note = session.credit(
        "INV-2026-000001", amount="25", reason="downgrade", on=date(2026, 10, 26), line=1
    )
    invoices = load_invoices(session.engine)
    entries = credit_note_entries([note], invoices, [], session.rules, through=date(2026, 11, 13))
    # only the Oct 31 reduction (6.00) is dated through Nov 13; Nov 14's waits for the books to get
    # there
    assert [
        (e.date, e.postings[0].units.number)
        for e in entries
        if isinstance(e, data.Transaction) and e.narration.startswith("Base fee")
    ] == [(date(2026, 10, 31), Decimal("6.00"))]


def test_prepaid_credit_note_through_the_cli_shows_on_the_statement(tmp_path: Path) -> None:
    """`meterbook credit` on a grant line, then the customer's statement: 200.00 of credit left."""
    session = prepaid(tmp_path, october=100)
    result = credit(
        session,
        "INV-2026-000001",
        "--amount",
        "500",
        "--reason",
        "unused credit refunded",
        "--date",
        "2026-10-12",
    )
    assert result.exit_code == 0, result.output
    refused = credit(
        session, "INV-2026-000001", "--amount", "200.01", "--reason", "more", "--date", "2026-10-12"
    )
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    # 1000.00 − 300.00 drawn in September − 500.00 credited − 100.00 drawn in October = 100.00
    out = CliRunner().invoke(
        cli,
        [
            "--workspace",
            str(session.workspace.root),
            "statement",
            "globex",
            "--cycle",
            "2026-10-15",
            "--out",
            str(tmp_path / "st"),
        ],
    )
    assert out.exit_code == 0, out.output
    html = next((tmp_path / "st").glob("*.html")).read_text()
    assert "Prepaid credit remaining</span><b>100.00 USD</b>" in html


# --- a note on an advance fee whose subscription changed after it ------------------------
#: ``p`` 31.00 a month in advance, ``s`` 15.50; calendar cycles.
CHANGE_PLANS = """\
plans:
  p:
    currency: USD
    base_fee: {amount: "31.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
  s:
    currency: USD
    base_fee: {amount: "15.50", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
"""


def _changed_after_goodwill(
    tmp_path: Path, subscriptions: str, policy: str = ""
) -> list[data.Directive]:
    """acme on ``p`` from Oct 1 (calendar): INV-2026-000001 bills October's fee, 31.00, on
    Oct 1; CN-2026-000001 gives 9.30 of it back on Oct 5 (goodwill, out of deferred revenue,
    scheduled over the rest of the cycle); then ``customers.yaml`` is edited to
    ``subscriptions`` and the books posted through Oct 31. Their entries, loaded back."""
    customers = (
        "customers:\n  acme: {currency: USD, billing_anchor: calendar, subscriptions: [%s]%s}\n"
    )
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=CHANGE_PLANS,
        customers=customers % ("{plan: p, start: 2026-10-01}", ""),
    )
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    note = run_cli(
        root, "credit", "INV-2026-000001", "--line", "1", "--amount", "9.30",
        "--reason", "goodwill", "--date", "2026-10-05",
    )  # fmt: skip
    assert note.exit_code == 0, note.output
    (root / "rules" / "customers.yaml").write_text(customers % (subscriptions, policy))
    posted = run_cli(root, "post", "--through", "2026-10-31")
    assert posted.exit_code == 0, posted.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    return entries


def test_a_note_on_a_fee_whose_plan_changed_reduces_the_new_plans_revenue(tmp_path: Path) -> None:
    """acme's October fee (31.00 on ``p``, INV-2026-000001) gets a 9.30 goodwill note on
    Oct 5; then acme is moved to ``s`` (15.50) for all of October, backdated to Oct 1. The
    cycle keeps its key, ``2026-10-01/2026-11-01``, but is now ``s``'s: the live accruals
    recognize 15.50 to ``Income:Subscriptions:S``, and the change's correction
    (CN-2026-000002, Oct 31) credits 31.00 − 15.50 = 15.50 out of deferred revenue. The
    goodwill note's 9.30 is still taken out of the cycle's recognition, by Oct 31, and out of
    the revenue the cycle is now recognized to, ``s``'s: ``Income:Subscriptions:S`` −15.50 +
    9.30 = −6.20 (31.00 − 9.30 − 15.50 earned), ``p`` 0.00 (taken from ``p`` instead: +9.30
    on an income account that earned nothing), deferred revenue −31.00 + 9.30 + 15.50 +
    15.50 − 9.30 = 0 on Nov 1."""
    entries = _changed_after_goodwill(tmp_path, "{plan: s, start: 2026-10-01}")
    [reduced] = [
        e
        for e in entries
        if isinstance(e, data.Transaction) and e.narration.startswith("Base fee recognition")
    ]
    assert (reduced.date, reduced.meta["cycle"]) == (date(2026, 10, 31), "2026-10-01/2026-11-01")
    assert {p.account: p.units.number for p in reduced.postings} == {
        "Income:Subscriptions:S": Decimal("9.30"),
        "Liabilities:Deferred-Revenue:Acme": Decimal("-9.30"),
    }
    nov1 = date(2026, 11, 1)
    assert balance(entries, "Income:Subscriptions:S", nov1) == Decimal("-6.20")
    assert balance(entries, "Income:Subscriptions:P", nov1) == 0
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", nov1) == 0


def test_a_note_on_a_fee_whose_cycle_a_cancellation_cut_ends_with_the_cut_cycle(
    tmp_path: Path,
) -> None:
    """acme's October fee (31.00, INV-2026-000001) gets a 9.30 goodwill note on Oct 5,
    scheduled from Oct 5 to Oct 31. Then acme cancels from Oct 11 with ``proration: none``:
    the cycle is now ``[Oct 1, Oct 11)``, billed in full (no correction note), its 31.00
    recognized by its last day, Oct 10. The note's 9.30 is taken out of the cycle as it now
    runs: all of it on Oct 10 (the cut cycle's last day and only accrual point), so on Oct 11
    deferred revenue is −31.00 + 9.30 + 31.00 − 9.30 = 0 and revenue 31.00 − 9.30 = 21.70
    (scheduled over the cycle as billed, the 9.30 would wait for Oct 31: deferred revenue
    −9.30 after the cycle ended)."""
    entries = _changed_after_goodwill(
        tmp_path,
        "{plan: p, start: 2026-10-01, end: 2026-10-11}",
        ", subscription_changes: {proration: none}",
    )
    reductions = [
        (e.date, e.meta["cycle"], e.postings[0].account, e.postings[0].units.number)
        for e in entries
        if isinstance(e, data.Transaction) and e.narration.startswith("Base fee recognition")
    ]
    assert reductions == [
        (date(2026, 10, 10), "2026-10-01/2026-10-11", "Income:Subscriptions:P", Decimal("9.30"))
    ]
    oct11 = date(2026, 10, 11)
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", oct11) == 0
    assert balance(entries, "Income:Subscriptions:P", oct11) == Decimal("-21.70")


def test_a_note_split_pro_rata_gives_the_cents_left_to_the_largest_remainders() -> None:
    """``_pro_rata``, the split of a note without ``--line`` over the lines it can credit: each
    share rounded down to the minor unit, the units left over to the largest remainders, a tie
    to the earlier line.

    - 10.00 over three equal lines: 3.333… each, floors 3.33 (9.99), the cent left to line 1
      (all three tie): 3.34, 3.33, 3.33.
    - 0.50 over weights 2 and 1: 0.3333… and 0.1666…, floors 0.33 and 0.16 (0.49); remainders
      0.0033… and 0.0066…: the cent to line 2, the larger remainder though the smaller share:
      0.33, 0.17.
    - 0.02 over three equal lines: 0.0066… each, floors 0.00 (rounded down, not to the nearest
      0.01, which would hand out 0.03), the two cents to lines 1 and 2: 0.01, 0.01, 0.00.
    - 10 yen over three equal lines (no minor unit): floors 3, the yen left to line 1: 4, 3, 3.
    """
    equal = [(1, Decimal(1)), (2, Decimal(1)), (3, Decimal(1))]
    assert _pro_rata(Decimal("10.00"), equal, "USD") == [
        (1, Decimal("3.34")),
        (2, Decimal("3.33")),
        (3, Decimal("3.33")),
    ]
    assert _pro_rata(Decimal("0.50"), [(1, Decimal(2)), (2, Decimal(1))], "USD") == [
        (1, Decimal("0.33")),
        (2, Decimal("0.17")),
    ]
    assert _pro_rata(Decimal("0.02"), equal, "USD") == [
        (1, Decimal("0.01")),
        (2, Decimal("0.01")),
        (3, Decimal("0.00")),
    ]
    yen = _pro_rata(Decimal(10), equal, "JPY")
    assert yen == [(1, Decimal(4)), (2, Decimal(3)), (3, Decimal(3))]
    assert [str(share) for _, share in yen] == ["4", "3", "3"]


def test_a_note_without_a_line_is_split_over_what_each_line_can_still_be_credited() -> None:
    """``allocate``, the split of a note over an invoice's lines, on hand-made records.

    INV-2026-000007 (USD): line 1 100.00 of calls, line 2 10.00 of tokens, line 3 0.50 of
    storage. CN-2026-000001 credited 60.00 on its line 1; CN-2026-000002, on another invoice,
    10.00 on that one's line 2 (not this invoice's). What each line can still be credited:
    40.00, 10.00, 0.50 (50.50).

    - A note of 30.00: pro rata 30 × 40/50.50 = 23.7623…, 30 × 10/50.50 = 5.9405…,
      30 × 0.50/50.50 = 0.2970…; floors 23.76 + 5.94 + 0.29 = 29.99, the cent left to line 3
      (remainder 0.0070, the largest): 23.76, 5.94, 0.30.
    - A forced note of 60.00: the 50.50 left on the lines, and 9.50 beyond the invoice on
      line 0 (kind "", "beyond the invoice (forced)").
    - In yen (no minor unit), 5 over lines of 7 and 3: 3.5 and 1.5, floors 3 and 1, the yen
      left to line 1 (a tie): 4 and 1, whole yen.
    - Prepaid-credit lines (two grants billed on Sep 1, ``2026-09-01#1`` and ``#2``; 5.00 of
      the first undrawn on Oct 12, the second drawn in full): 8.00 on line 1 is refused unless
      forced (forced: 8.00, of which 5.00 deferred), 5.00 is all undrawn (deferred 5.00), a
      forced 3.00 on line 2 has nothing deferred; without the balances, refused.
    - An advance fee of 31.00 for [Oct 1, Nov 1), 1.00 a day: 20.00 credited on Oct 16 finds
      31.00 − 15.00 recognized through Oct 15 = 16.00 deferred. Cut since to [Oct 1, Oct 21)
      and billed in full (``current``: 31.00 over 20 days), 31.00 × 15/20 = 23.25 is
      recognized by then: 7.75 deferred, over the cut cycle. ``current`` as billed: 16.00.
      On Nov 2 all of it is recognized: nothing deferred, and no cycle to reduce.
    - A yen fee of 1,000 including 100 of tax (900 booked to deferred revenue), for the same
      cycle: 505 credited on Oct 16 stands for 505 − round(100 × 505/1,000 = 50.5) = 505 − 50
      = 455 of deferred revenue (half to even, in whole yen), of the 900 − round(900 ×
      15/31 = 435.48…) = 465 still deferred: 455, written ``455``.
    """
    from dataclasses import replace

    from ledger.credit_notes import allocate
    from ledger.facts.credit_notes import CreditNote, CreditPart
    from ledger.facts.invoices import Invoice, InvoiceLine

    d, oct12 = Decimal, date(2026, 10, 12)

    def line(kind: str, text: str, amount: str, account: str = "unbilled") -> InvoiceLine:
        return InvoiceLine(kind, text, account, d(amount))

    usd = Invoice(
        "acme",
        date(2026, 10, 1),
        "USD",
        (line("usage", "calls", "100.00"), line("usage", "tokens", "10.00"),
         line("usage", "storage", "0.50")),
        "r",
        number="INV-2026-000007",
    )  # fmt: skip

    def note(number: str, invoice: str, part: int, amount: str) -> CreditNote:
        return CreditNote(
            number, 1, invoice, "acme", date(2026, 10, 5), "USD", d(amount), "x",
            parts=(CreditPart(part, "usage", "", d(amount)),),
        )  # fmt: skip

    earlier = [note("CN-2026-000001", usd.number, 1, "60.00"),
               note("CN-2026-000002", "INV-2026-000003", 2, "10.00")]  # fmt: skip
    assert allocate(usd, earlier, d("30.00"), oct12) == (
        CreditPart(1, "usage", "calls", d("23.76")),
        CreditPart(2, "usage", "tokens", d("5.94")),
        CreditPart(3, "usage", "storage", d("0.30")),
    )
    forced = allocate(usd, earlier, d("60.00"), oct12, force=True)
    assert forced == (
        CreditPart(1, "usage", "calls", d("40.00")),
        CreditPart(2, "usage", "tokens", d("10.00")),
        CreditPart(3, "usage", "storage", d("0.50")),
        CreditPart(0, "", "beyond the invoice (forced)", d("9.50")),
    )
    assert [str(p.deferred) for p in forced] == ["0.00"] * 4
    jpy = Invoice(
        "kaisha", date(2026, 10, 1), "JPY",
        (line("usage", "calls", "7"), line("usage", "tokens", "3")), "r", number="INV-2026-000008",
    )  # fmt: skip
    yen = allocate(jpy, [], d(5), oct12)
    assert [(p.line, str(p.amount)) for p in yen] == [(1, "4"), (2, "1")]
    grant = Invoice(
        "acme", date(2026, 9, 1), "USD",
        (line("credit_grant", "prepaid credit", "20.00", "deferred"),
         line("credit_grant", "prepaid credit", "50.00", "deferred")), "r",
        number="INV-2026-000009",
    )  # fmt: skip

    def balances(customer: str, on: date) -> dict[str, Decimal]:
        assert (customer, on) == ("acme", oct12)
        return {"2026-09-01#1": d("5.00")}  # #2 drawn in full: not listed

    def part(n: int, amount: str, deferred: str) -> CreditPart:
        key = f"2026-09-01#{n}"
        return CreditPart(n, "credit_grant", "prepaid credit", d(amount), d(deferred), key)

    refused = "more than its prepaid credit still undrawn on 2026-10-12 .5.00 USD.; use --force"
    with pytest.raises(BadInput, match=refused):
        allocate(grant, [], d("8.00"), oct12, line=1, balances=balances)
    with pytest.raises(
        BadInput,
        match=r"its undrawn balance was not rated \(issue the note through Session\.credit\)$",
    ):
        allocate(grant, [], d("8.00"), oct12, line=1)
    assert allocate(grant, [], d("8.00"), oct12, line=1, balances=balances, force=True) == (
        part(1, "8.00", "5.00"),
    )
    assert allocate(grant, [], d("5.00"), oct12, line=1, balances=balances) == (
        part(1, "5.00", "5.00"),
    )
    assert allocate(grant, [], d("3.00"), oct12, line=2, balances=balances, force=True) == (
        part(2, "3.00", "0.00"),
    )
    cycle, link = "2026-10-01/2026-11-01", "acme-2026-10-01"
    fee = InvoiceLine(
        "base_fee", f"p base fee {cycle} (in advance)", "deferred", d("31.00"), cycle=cycle,
        link=link,
    )  # fmt: skip
    advance = Invoice("acme", date(2026, 10, 1), "USD", (fee,), "r", number="INV-2026-000010")
    oct16 = date(2026, 10, 16)

    def on_fee(deferred: str, over: str) -> tuple[CreditPart, ...]:
        return (CreditPart(1, "base_fee", fee.description, d("20.00"), d(deferred), cycle=over),)

    assert allocate(advance, [], d("20.00"), oct16) == on_fee("16.00", cycle)
    cut = {link: ("2026-10-01/2026-10-21", d("31.00"))}
    assert allocate(advance, [], d("20.00"), oct16, current=cut) == on_fee(
        "7.75", "2026-10-01/2026-10-21"
    )
    same = {link: (cycle, d("31.00"))}
    assert allocate(advance, [], d("20.00"), oct16, current=same) == on_fee("16.00", cycle)
    assert allocate(advance, [], d("20.00"), date(2026, 11, 2)) == on_fee("0.00", "")
    yen_fee = replace(fee, amount=d(1000), net=d(900))
    inclusive = Invoice("kaisha", date(2026, 10, 1), "JPY", (yen_fee,), "r", number="INV-11")
    [taken] = allocate(inclusive, [], d(505), oct16)
    assert (taken.amount, str(taken.deferred), taken.cycle) == (d(505), "455", cycle)


def test_what_a_line_can_be_credited_with_the_tax_charged_on_it() -> None:
    """``line_with_tax``: a line's creditable amount with its tax, on hand-made invoices.

    Taxed on average (the plugin said no line's tax): lines 100.00, 33.33 and 16.67 (150.00),
    10 % tax 15.00, total 165.00. CN-2026-000001 credited 10.00 of line 2 (+ 1.00 tax): 154.00
    is left. Each line: what is left less the other lines' rest with their tax, so the three
    add up to 154.00 whatever the rounding:

    - line 1: others 23.33 + 16.67 = 40.00, with tax 44.00: 154.00 − 44.00 = 110.00;
    - line 2: others 100.00 + 16.67 = 116.67, with tax round(128.337) = 128.34: 25.66;
    - line 3: others 100.00 + 23.33 = 123.33, with tax round(135.663) = 135.66: 18.34
      (110.00 + 25.66 + 18.34 = 154.00; 16.67 × 1.1 alone would round to 18.34 too, 23.33 ×
      1.1 to 25.66).

    Each line's own tax known (100.00 at 19 % and 100.00 at 7 %, 226.00): line 1 119.00, not
    the average's 226.00 − 113.00 = 113.00; after a note of 50.00 on it that gave back 9.50 of
    its tax: 50.00 + 19.00 − 9.50 = 59.50. Untaxed, or prices including the tax: the line's
    own amount.
    """
    from dataclasses import replace

    from ledger.credit_notes import line_with_tax
    from ledger.facts.credit_notes import CreditNote, CreditPart
    from ledger.facts.invoices import Invoice, InvoiceLine, Tax, TaxLine

    d = Decimal

    def invoice(amounts: tuple[str, ...], tax: Tax | None) -> Invoice:
        lines = tuple(
            InvoiceLine("usage", f"m{i}", "unbilled", d(a)) for i, a in enumerate(amounts)
        )
        return Invoice("acme", date(2026, 10, 1), "USD", lines, "r", number="INV-1", tax=tax)

    ten = Tax(lines=(TaxLine("US-WA", d("0.10"), d("150.00"), d("15.00")),))
    average = invoice(("100.00", "33.33", "16.67"), ten)
    assert average.total == d("165.00")
    mine = [
        CreditNote(
            "CN-2026-000001", 1, "INV-1", "acme", date(2026, 10, 5), "USD", d("11.00"), "x",
            parts=(CreditPart(2, "usage", "m1", d("10.00")),),
        )
    ]  # fmt: skip
    left = d("154.00")
    assert [
        line_with_tax(average, 1, d("100.00"), left, mine),
        line_with_tax(average, 2, d("23.33"), left, mine),
        line_with_tax(average, 3, d("16.67"), left, mine),
    ] == [d("110.00"), d("25.66"), d("18.34")]
    own = Tax(
        lines=(
            TaxLine("DE", d("0.19"), d("100.00"), d("19.00")),
            TaxLine("DE", d("0.07"), d("100.00"), d("7.00")),
        ),
        line_tax=(((0, d("19.00")),), ((1, d("7.00")),)),
    )
    per_line = invoice(("100.00", "100.00"), own)
    assert line_with_tax(per_line, 1, d("100.00"), d("226.00"), []) == d("119.00")
    half = CreditNote(
        "CN-2026-000002", 2, "INV-1", "acme", date(2026, 10, 5), "USD", d("59.50"), "x",
        parts=(CreditPart(1, "usage", "m0", d("50.00")),),
        tax=Tax(lines=(TaxLine("DE", d("0.19"), d("50.00"), d("9.50")),)),
    )  # fmt: skip
    assert line_with_tax(per_line, 1, d("50.00"), d("166.50"), [half]) == d("59.50")
    untaxed = invoice(("100.00", "50.00"), None)
    assert line_with_tax(untaxed, 1, d("100.00"), d("150.00"), []) == d("100.00")
    inclusive = invoice(("110.00", "55.00"), replace(ten, inclusive=True))
    assert line_with_tax(inclusive, 1, d("110.00"), d("165.00"), []) == d("110.00")


def test_deferred_revenue_left_on_a_fee_after_notes_and_a_cut() -> None:
    """``fee_deferred_left``: what an advance fee still holds in deferred revenue, by hand.

    INV-2026-000001 billed 31.00 for ``[Oct 1, Nov 1)``; CN-2026-000001 (goodwill, Oct 5) took
    9.30 of it out of deferred revenue, scheduled over that cycle (and 1.00 of the prepaid
    credit on line 2). CN-2026-000009 on another invoice, and the part on line 2, are not this
    fee's.

    - Unchanged, through Oct 15: recognized 31.00 × 15/31 = 15.00, the note's 9.30 reduced by
      9.30 × 11/27 = 3.79 (Oct 5–15 of Oct 5–31): 31.00 − 15.00 − (9.30 − 3.79) = 10.49.
    - Cut to ``[Oct 1, Oct 21)`` billed in full (``proration: none``, no correction note):
      through Oct 15, 31.00 × 15/20 = 23.25 recognized, the note's 9.30 over the cut cycle,
      9.30 × 11/16 = 6.39375, rounded up (a note's schedule never takes out less than its
      share) to 6.40 by then: 31.00 − 23.25 − (9.30 − 6.40) = 4.85.
    - Cut to 20 days by day (``current`` fee 20.00) with its correction CN-2026-000002 (Oct 21,
      1.70 out at once: 31.00 − 20.00 − 9.30): through Oct 25 all 20.00 recognized, the goodwill
      note counts in full (its schedule dropped): 31.00 − 20.00 − 9.30 − 1.70 = 0.
    - Cut to ``[Oct 1, Oct 11)`` in full, the goodwill note dated Oct 15, after that cycle ended:
      taken out at once on its date, so through Oct 20 the fee is recognized (31.00) and the note
      reduced in full: 0; through Oct 14, before the note: 0 − 9.30 = −9.30 (it counts in full).
    - Moved to a 20.00 plan for the same cycle (the key unchanged), with its correction of
      11.00 (31.00 − 20.00): the goodwill note stays scheduled over the cycle. Through Oct 15:
      20.00 × 15/31 = 9.68 recognized: 31.00 − 9.68 − (9.30 − 3.79) − 11.00 = 4.81.
    - In yen, a fee of 1,000 including 100 of tax (900 deferred), a goodwill note of 100 on
      Oct 5: through Oct 15, 900 × 15/31 = 435.48… is 435, the note reduced by 100 × 11/27 =
      40.7… = 41: 900 − 435 − 59 = 406. Cut to ``[Oct 1, Oct 11)`` billed at 333: it recognizes
      333 − 100 + round(100 × 667/1,000 = 66.7) = 300, so through Oct 20: 900 − 300 − 0 = 600.
    """
    from dataclasses import replace

    from ledger.credit_notes import fee_deferred_left
    from ledger.facts.credit_notes import CreditNote, CreditPart
    from ledger.facts.invoices import Invoice, InvoiceLine

    d = Decimal
    billed, cut = "2026-10-01/2026-11-01", "2026-10-01/2026-10-21"
    fee = InvoiceLine(
        "base_fee", f"p base fee {billed} (in advance)", "deferred", d("31.00"), cycle=billed,
        link="acme-2026-10-01",
    )  # fmt: skip
    other = InvoiceLine("credit_grant", "prepaid credit", "deferred", d("5.00"))
    invoice = Invoice("acme", date(2026, 10, 1), "USD", (fee, other), "r", number="INV-2026-000001")

    def note(number: str, day: int, reason: str, *parts: CreditPart, on: str = "") -> CreditNote:
        amount = sum((p.amount for p in parts), d(0))
        return CreditNote(
            number, int(number[-1]), on or invoice.number, "acme", date(2026, 10, day), "USD",
            amount, reason, parts=parts,
        )  # fmt: skip

    goodwill = note(
        "CN-2026-000001", 5, "goodwill",
        CreditPart(1, "base_fee", fee.description, d("9.30"), d("9.30"), cycle=billed),
        CreditPart(2, "credit_grant", "prepaid credit", d("1.00"), d("1.00"), "2026-10-01#1"),
    )  # fmt: skip
    elsewhere = note(
        "CN-2026-000009", 5, "subscription change: cycle x now y, base fee 1 now 2",
        CreditPart(1, "base_fee", "", d("4.00"), d("4.00"), cycle=billed), on="INV-2026-000005",
    )  # fmt: skip
    notes = [elsewhere, goodwill]
    oct15 = date(2026, 10, 15)
    assert fee_deferred_left(invoice, 1, notes, oct15) == d("10.49")
    assert fee_deferred_left(invoice, 1, notes, oct15, (cut, d("31.00"))) == d("4.85")
    correction = note(
        "CN-2026-000002", 21,
        f"subscription change: cycle {billed} now {cut}, base fee 31.00 now 20.00",
        CreditPart(1, "base_fee", fee.description, d("1.70"), d("1.70")),
    )  # fmt: skip
    corrected = [elsewhere, goodwill, correction]
    assert fee_deferred_left(invoice, 1, corrected, date(2026, 10, 25), (cut, d("20.00"))) == 0
    late = replace(goodwill, date=oct15)
    ten_days = ("2026-10-01/2026-10-11", d("31.00"))
    assert fee_deferred_left(invoice, 1, [late], date(2026, 10, 20), ten_days) == 0
    assert fee_deferred_left(invoice, 1, [late], date(2026, 10, 14), ten_days) == d("-9.30")
    plan = replace(
        correction,
        reason=f"subscription change: cycle {billed} now {billed}, base fee 31.00 now 20.00",
        parts=(CreditPart(1, "base_fee", fee.description, d("11.00"), d("11.00")),),
    )
    assert fee_deferred_left(invoice, 1, [goodwill, plan], oct15, (billed, d("20.00"))) == d("4.81")
    yen_fee = replace(fee, amount=d(1000), net=d(900))
    yen = replace(invoice, currency="JPY", lines=(yen_fee,))
    gift = replace(
        goodwill,
        currency="JPY",
        amount=d(100),
        parts=(CreditPart(1, "base_fee", fee.description, d(100), d(100), cycle=billed),),
    )
    assert fee_deferred_left(yen, 1, [gift], oct15) == d(406)
    cut_yen = ("2026-10-01/2026-10-11", d(333))
    assert fee_deferred_left(yen, 1, [gift], date(2026, 10, 20), cut_yen) == d(600)


def test_a_note_on_a_discounted_advance_fee_takes_the_fee_net_of_its_discount() -> None:
    """``allocate`` on an advance fee with a discount (:mod:`ledger.discounts`), by hand.

    INV-2026-000001 bills 31.00 for ``[Oct 1, Nov 1)`` and a discount of 6.20 on it (net
    24.80, 0.80 a day, both in deferred revenue). 20.00 credited on line 1 on Oct 16: through
    Oct 15 the fee has recognized 31.00 × 15/31 = 15.00 and its discount 6.20 × 15/31 = 3.00,
    so deferred revenue holds (31.00 − 15.00) − (6.20 − 3.00) = 12.80 of it: the part defers
    12.80 and gives back 7.20 of revenue, with round(7.20 × 6.20/24.80) = 1.80 of discount.
    On Nov 2 the cycle is recognized: nothing deferred, 20.00 of revenue and 5.00 of discount.
    """
    from ledger.credit_notes import allocate
    from ledger.facts.credit_notes import CreditPart
    from ledger.facts.invoices import Invoice, InvoiceLine

    d, cycle, link = Decimal, "2026-10-01/2026-11-01", "acme-2026-10-01"
    fee = InvoiceLine(
        "base_fee", f"p base fee {cycle} (in advance)", "deferred", d("31.00"), cycle=cycle,
        link=link,
    )  # fmt: skip
    off = InvoiceLine(
        "discount", "10 % off", "deferred", d("-6.20"), cycle=cycle, link=link, on="base_fee"
    )
    invoice = Invoice("acme", date(2026, 10, 1), "USD", (fee, off), "r", number="INV-2026-000001")
    assert allocate(invoice, [], d("20.00"), date(2026, 10, 16), line=1) == (
        CreditPart(
            1, "base_fee", fee.description, d("20.00"), d("12.80"), cycle=cycle, discount=d("1.80")
        ),
    )
    [later] = allocate(invoice, [], d("20.00"), date(2026, 11, 2), line=1)
    assert (later.deferred, later.cycle, later.discount) == (d("0.00"), "", d("5.00"))


def test_note_schedules_round_up_so_deferred_revenue_stays_a_credit() -> None:
    """Found by the simulator (seed 88518). A 15.50 fee for ``[Sep 10, Oct 10)`` (30 days),
    CN-2026-000001 of 5.42 on Sep 10 (all deferred, scheduled over the 30 days) and
    CN-2026-000002 of 6.66 on Sep 22 (6.05 deferred: 10.08 − round(10.08 × 12/30) = 10.08 −
    4.03, scheduled over the 18 days Sep 22 – Oct 9). Through Sep 30 (21 days): the fee
    round(15.50 × 21/30) = 10.85; the first note 5.42 × 21/30 = 3.794 → 3.80, the second 6.05
    × 9/18 = 3.025 → 3.03 (rounded up): 10.85 − 3.80 − 3.03 = 4.02 recognized of the 15.50 −
    5.42 − 6.05 = 4.03 the notes left, so deferred revenue holds 0.01 for Oct 1–9. Rounded
    half-even (3.79, 3.02) they recognized 4.04: a 0.01 debit in deferred revenue."""
    from ledger.credit_notes import fee_recognized, fee_reduction

    cycle, d = "2026-09-10/2026-10-10", Decimal
    sep30 = date(2026, 9, 30)
    fee = fee_recognized(d("15.50"), cycle, sep30, "USD")
    first = fee_reduction(d("5.42"), cycle, date(2026, 9, 10), sep30, "USD")
    second = fee_reduction(d("6.05"), cycle, date(2026, 9, 22), sep30, "USD")
    assert (fee, first, second) == (d("10.85"), d("3.80"), d("3.03"))
    assert d("15.50") - d("5.42") - d("6.05") - (fee - first - second) == d("0.01")
    assert fee_reduction(d("6.05"), cycle, date(2026, 9, 22), date(2026, 10, 9), "USD") == d("6.05")
