"""Month-end close through the real pipeline: assertions, seal, gate, late events, check.

The workspace (tests/support/close.py) has two customers on a graduated plan (10 calls free, then
0.05):

- ``cal`` (calendar cycles): 30 calls in September → 20 × 0.05 = 1.00 accrued on
  Sep 30, invoiced on Oct 1;
- ``ann`` (anniversary, from Sep 15): 14 calls Sep 16–29 → 4 × 0.05 = 0.20 on
  Sep 30; 11 more in October → 25 calls, 0.75 on Oct 14, invoiced Oct 15.

So September's close asserts Unbilled:Cal 1.00, Unbilled:Ann 0.20 and
Income:Usage:Api-Calls −1.20 on 2026-10-01.

The payments tests add, to cal's INV-2026-000001 (1.00, Oct 1) and ann's
INV-2026-000002 (0.75, Oct 15)::

    2026-10-05  0.40 USD  INV-2026-000001  BANK-1  partial: 0.40 applied, 0.60 still owed
    2026-10-20  2.00 USD  INV-2026-000002  BANK-2  overpaid: 0.75 applied, 1.25 unapplied
    2026-10-25 15.00 USD  (none)           BANK-3  unmatched: 15.00 unapplied
    2026-10-28  9.00 EUR  (none)           BANK-4  unmatched: 9.00 EUR unapplied
    2026-11-02  5.00 USD  INV-2026-000001  BANK-5  after October: not in its assertions

October's close asserts cash 0.40 + 2.00 + 15.00 = 17.40 USD and 9.00 EUR,
unapplied cash −(1.25 + 15.00) = −16.25 USD and −9.00 EUR, Receivables Cal 0.60.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from beancount.core.amount import Amount

from ledger.books import close_path, load_books, month_path, sealed_months
from ledger.closing import run_reconcilers
from ledger.events import Event
from ledger.facts.invoices import load_invoices
from ledger.payments import ingest_payments
from ledger.seal import GUARD_ACCOUNT
from ledger.session import Session
from tests.support.close import CUSTOMERS, PLANS, PLANTED
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

BEAN_CHECK = Path(sys.executable).parent / "bean-check"


_calls = calls


def _insert(session: Session, rows: list[Event]) -> None:
    insert_events(session.engine, rows)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
        plugins={"planted": PLANTED},
    )
    session = _session(root)
    _insert(
        session,
        [
            *_calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]),
            *_calls("ann", [f"2026-09-{16 + i:02d}" for i in range(14)]),
            *_calls("ann", [f"2026-10-{1 + i:02d}" for i in range(11)], "oct"),
        ],
    )
    session.post(date(2026, 9, 30))
    return root


_session = open_session


def bean_check(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"}
    return subprocess.run(
        [str(BEAN_CHECK), str(root / "books" / "main.beancount")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_close_writes_assertions_computed_from_the_store_and_a_seal(root: Path) -> None:
    result = run_cli(root, "close", "2026-09")
    assert result.exit_code == 0, result.output
    assert "closed 2026-09: 3 balance assertions" in result.output
    text = close_path(root / "books", "2026-09").read_text()
    assert "2026-10-01 balance Assets:Receivables:Unbilled:Cal" in text
    lines = {" ".join(line.split()) for line in text.splitlines()}
    assert "2026-10-01 balance Assets:Receivables:Unbilled:Cal 1.00 USD" in lines
    assert "2026-10-01 balance Assets:Receivables:Unbilled:Ann 0.20 USD" in lines
    assert "2026-10-01 balance Income:Usage:Api-Calls -1.20 USD" in lines
    assert 'custom "meterbook-seal" "2026-09" "' + "0" * 64 + '"' in text
    assert sealed_months(root / "books") == {"2026-09"}
    checked = bean_check(root)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_assertions_are_a_real_check(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Books that disagree with the store are not sealed: here the late adjustment is lost."""
    import ledger.session

    assert run_cli(root, "close", "2026-09").exit_code == 0
    _insert(_session(root), _calls("cal", ["2026-09-20"], "late"))  # cal's Oct 1 invoice bills 1.05
    real = ledger.session.catch_up
    monkeypatch.setattr(ledger.session, "catch_up", lambda *a, **k: (real(*a, **k)[0], []))
    before = book_hashes(root / "books")
    result = run_cli(root, "close", "2026-10")
    # the store-vs-ledger reconciler sees the lost adjustment first ...
    assert result.exit_code == 1, result.output
    blocking = [f for f in run_reconcilers(_session(root), "2026-10") if f.blocks_close]
    assert {f.check for f in blocking} == {"store-vs-ledger"}
    # ... and accepted anyway, the independently computed balance assertions still refuse the seal
    accepts = [
        arg
        for f in blocking
        for arg in ("--accept", f.id, "--reason", "test: assertions must catch it")
    ]
    result = run_cli(root, "close", "2026-10", *accepts)
    assert result.exit_code == 1, result.output
    assert "Balance failed for 'Assets:Receivables:Unbilled:Cal'" in result.output
    assert "nothing sealed" in result.output
    assert not close_path(root / "books", "2026-10").exists()
    assert sealed_months(root / "books") == {"2026-09"}
    assert {k: v for k, v in book_hashes(root / "books").items() if "2026-09" in k} == {
        k: v for k, v in before.items() if "2026-09" in k
    }
    monkeypatch.undo()
    assert run_cli(root, "close", "2026-10").exit_code == 0


def test_closing_a_closed_month_changes_nothing(root: Path) -> None:
    assert run_cli(root, "close", "2026-09").exit_code == 0
    before = book_hashes(root / "books")
    result = run_cli(root, "close", "2026-09")
    assert result.exit_code == 0, result.output
    assert "already closed" in result.output
    assert book_hashes(root / "books") == before


def test_months_close_in_order(root: Path) -> None:
    result = run_cli(root, "close", "2026-10")
    assert result.exit_code == 2, result.output
    assert "close 2026-09 first" in result.output
    assert not close_path(root / "books", "2026-10").exists()
    assert run_cli(root, "close", "2026-13").exit_code == 2
    future = run_cli(root, "close", "2099-01")
    assert future.exit_code == 2 and "has not ended yet" in future.output
    assert run_cli(root, "close", "2026-09").exit_code == 0
    assert run_cli(root, "close", "2026-08").exit_code == 2  # before the first closed month
    assert run_cli(root, "close", "2026-10").exit_code == 0
    assert sealed_months(root / "books") == {"2026-09", "2026-10"}
    assert bean_check(root).returncode == 0


def test_late_event_after_close_posts_in_the_open_month(root: Path) -> None:
    assert run_cli(root, "close", "2026-09").exit_code == 0
    sealed = {
        p: sha(p)
        for p in (month_path(root / "books", "2026-09"), close_path(root / "books", "2026-09"))
    }
    session = _session(root)
    _insert(session, _calls("cal", ["2026-09-20"], "late"))  # 31 calls: 21 × 0.05 = 1.05
    session.post(date(2026, 10, 31))
    assert {p: sha(p) for p in sealed} == sealed
    october = month_path(root / "books", "2026-10").read_text()
    assert "Late adjustment for sealed period 2026-09" in october
    assert "late: TRUE" in october and "usage_date: 2026-09-30" in october
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    late = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert (
        len(late) == 1 and late[0].date == date(2026, 10, 1) and "cal-2026-09-01" in late[0].links
    )
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 10, 2)) == Decimal("1.05")

    # the Oct 1 invoice bills the late usage with the rest of the cycle and clears unbilled
    issued = session.invoice(date(2026, 10, 31))
    cal = [inv for inv in issued if inv.customer == "cal" and inv.date == date(2026, 10, 1)]
    assert cal and cal[0].total == Decimal("1.05")
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 10, 2)) == 0
    # posting again adds nothing: the adjustment is already in the open month
    again = month_path(root / "books", "2026-10").read_text()
    session.post(date(2026, 10, 31))
    assert month_path(root / "books", "2026-10").read_text() == again
    assert {p: sha(p) for p in sealed} == sealed
    assert run_cli(root, "check").exit_code == 0
    assert run_cli(root, "close", "2026-10").exit_code == 0
    assert bean_check(root).returncode == 0


def test_late_event_for_an_invoiced_sealed_cycle_is_billed_next(root: Path) -> None:
    assert run_cli(root, "close", "2026-09").exit_code == 0
    assert (
        run_cli(root, "close", "2026-10").exit_code == 0
    )  # issues cal's Oct 1 and ann's Oct 15 invoices
    sealed = {p: sha(p) for p in (root / "books" / "2026").glob("*.beancount")}
    session = _session(root)
    _insert(session, _calls("cal", ["2026-09-25"], "late"))
    session.post(date(2026, 11, 20))
    assert {p: sha(p) for p in sealed} == sealed
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    late = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert [(e.date, e.meta["usage_date"]) for e in late] == [
        (date(2026, 11, 1), date(2026, 9, 30))
    ]
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 11, 2)) == Decimal("0.05")
    issued = session.invoice(date(2026, 12, 1))
    lines = [
        line
        for inv in issued
        if inv.customer == "cal"
        for line in inv.lines
        if line.kind == "late_usage"
    ]
    assert [line.amount for line in lines] == [Decimal("0.05")]
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Assets:Receivables:Unbilled:Cal", date(2026, 12, 2)) == 0
    assert {p: sha(p) for p in sealed} == sealed


def test_close_refused_with_an_open_error_finding_until_accepted(root: Path) -> None:
    (root / "planted").write_text("cal ann\n")
    refused = run_cli(root, "close", "2026-09")
    assert refused.exit_code == 1, refused.output
    assert "planted:cal:2026-09" in refused.output and "planted:ann:2026-09" in refused.output
    assert "nothing sealed" in refused.output
    assert not close_path(root / "books", "2026-09").exists()
    assert sealed_months(root / "books") == set()
    assert load_books(root / "books" / "main.beancount")[1] == []

    # one accepted, one still open: refused, but the acceptance is remembered
    partly = run_cli(
        root,
        "close",
        "2026-09",
        "--accept",
        "planted:cal:2026-09",
        "--reason",
        "meter reset on Sep 3",
    )
    assert partly.exit_code == 1, partly.output
    assert not close_path(root / "books", "2026-09").exists()
    assert (
        run_cli(
            root, "close", "2026-09", "--accept", "planted:nope:2026-09", "--reason", "x"
        ).exit_code
        == 2
    )
    assert (
        run_cli(root, "close", "2026-09", "--accept", "planted:ann:2026-09").exit_code == 2
    )  # no reason

    accepted = run_cli(
        root, "close", "2026-09", "--accept", "planted:ann:2026-09", "--reason", 'known "gap"'
    )
    assert accepted.exit_code == 0, accepted.output
    text = close_path(root / "books", "2026-09").read_text()
    assert (
        'custom "meterbook-accept" "2026-09" "planted:cal:2026-09" "meter reset on Sep 3"' in text
    )
    assert 'custom "meterbook-accept" "2026-09" "planted:ann:2026-09" "known \\"gap\\""' in text
    assert bean_check(root).returncode == 0


def test_check_passes_on_clean_books_and_fails_after_tampering(root: Path) -> None:
    assert run_cli(root, "close", "2026-09").exit_code == 0
    _session(root).post(date(2026, 10, 20))
    clean = run_cli(root, "check")
    assert clean.exit_code == 0, clean.output
    for name in ("bean-check", "seals (1 sealed month)", "rules", "store-to-ledger tie-out"):
        assert f"ok      {name}" in clean.output
    september = month_path(root / "books", "2026-09")
    september.write_text(september.read_text().replace("Usage accrual", "Usage accruals", 1))
    tampered = run_cli(root, "check")
    assert tampered.exit_code == 1, tampered.output
    assert "FAILED  bean-check" in tampered.output and "FAILED  seals" in tampered.output
    assert "month 2026-09 is sealed" in tampered.output


def test_check_finds_books_behind_the_store(root: Path) -> None:
    session = _session(root)
    _insert(session, _calls("cal", ["2026-09-20"], "new"))
    result = run_cli(root, "check")
    assert result.exit_code == 1, result.output
    assert "FAILED  store-to-ledger tie-out" in result.output
    assert "cal unbilled" in result.output


PAYMENTS = """\
date,amount,currency,invoice,reference
2026-10-05,0.40,USD,INV-2026-000001,BANK-1
2026-10-20,2.00,USD,INV-2026-000002,BANK-2
2026-10-25,15.00,USD,,BANK-3
2026-10-28,9.00,EUR,,BANK-4
2026-11-02,5.00,USD,INV-2026-000001,BANK-5
"""
# the unapplied rests of October's payments are error findings; the close needs them accepted
UNAPPLIED = [
    arg
    for ref in ("BANK-2", "BANK-3", "BANK-4")
    for arg in ("--accept", f"unapplied-cash:{ref}:2026-10", "--reason", "test: refund pending")
]


@pytest.fixture
def paid(root: Path, tmp_path: Path) -> Path:
    """September closed, the payments above stored and the books posted through November 2."""
    assert run_cli(root, "close", "2026-09").exit_code == 0
    bank = tmp_path / "bank.csv"
    bank.write_text(PAYMENTS)
    session = _session(root)
    assert (
        ingest_payments(session.engine, bank, now=datetime(2026, 11, 25, tzinfo=UTC)).accepted == 5
    )
    session.post(date(2026, 11, 2))
    return root


def assertions(root: Path, month: str) -> dict[tuple[str, str], Decimal]:
    entries, _errors, _options = load_books(root / "books" / "main.beancount")
    close = str(close_path(root / "books", month))
    return {
        (e.account, e.amount.currency): e.amount.number
        for e in entries
        if isinstance(e, data.Balance)
        and e.meta["filename"] == close
        and e.account != GUARD_ACCOUNT
    }


def test_close_asserts_cash_and_unapplied_cash_from_the_payments(paid: Path) -> None:
    result = run_cli(paid, "close", "2026-10", *UNAPPLIED)
    assert result.exit_code == 0, result.output
    issued = [
        (inv.number, inv.customer, inv.date, inv.total)
        for inv in load_invoices(_session(paid).engine)
    ]
    assert issued == [
        ("INV-2026-000001", "cal", date(2026, 10, 1), Decimal("1.00")),
        ("INV-2026-000002", "ann", date(2026, 10, 15), Decimal("0.75")),
    ]
    asserted = assertions(paid, "2026-10")
    # cash: every payment received through Oct 31 in full; BANK-5 (Nov 2) is not in it
    assert asserted[("Assets:Bank:Operating", "USD")] == Decimal("17.40")  # 0.40 + 2.00 + 15.00
    assert asserted[("Assets:Bank:Operating", "EUR")] == Decimal("9.00")
    # unapplied: BANK-2's 2.00 - 0.75 = 1.25 overpaid + BANK-3's 15.00 unmatched, a credit balance
    assert asserted[("Liabilities:Unapplied-Cash", "USD")] == Decimal("-16.25")
    assert asserted[("Liabilities:Unapplied-Cash", "EUR")] == Decimal("-9.00")
    # the partial payment leaves 1.00 - 0.40 = 0.60 owed by cal; ann's invoice is settled
    assert asserted[("Assets:Receivables:Invoiced:Cal", "USD")] == Decimal("0.60")
    assert asserted[("Assets:Receivables:Invoiced:Ann", "USD")] == Decimal("0.00")
    assert f"closed 2026-10: {len(asserted)} balance assertions" in result.output
    entries, errors, _options = load_books(paid / "books" / "main.beancount")
    assert errors == []
    checked = bean_check(paid)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the books past the month end hold BANK-5: 0.60 applied to cal, 4.40 overpaid
    assert balance(entries, "Assets:Bank:Operating", date(2026, 11, 3), "USD") == Decimal("22.40")
    assert balance(entries, "Liabilities:Unapplied-Cash", date(2026, 11, 3), "USD") == Decimal(
        "-20.65"
    )


def test_a_payment_amount_edited_in_the_month_file_fails_its_assertions(paid: Path) -> None:
    assert run_cli(paid, "close", "2026-10", *UNAPPLIED).exit_code == 0
    october = month_path(paid / "books", "2026-10")
    blocks = october.read_text().split("\n\n")
    [wire] = [i for i, block in enumerate(blocks) if 'reference: "BANK-3"' in block]
    assert (
        blocks[wire].count("15.00 USD") == 2
    )  # cash and unapplied cash: still a balanced transaction
    blocks[wire] = blocks[wire].replace("15.00 USD", "14.00 USD")
    october.write_text("\n\n".join(blocks))
    _entries, errors, _options = load_books(paid / "books" / "main.beancount")
    messages = [e.message for e in errors]
    assert any(
        m.startswith(
            "Balance failed for 'Assets:Bank:Operating': expected 17.40 USD != accumulated "
            "16.40 USD"
        )
        for m in messages
    ), messages
    assert any(
        m.startswith(
            "Balance failed for 'Liabilities:Unapplied-Cash': expected -16.25 USD != "
            "accumulated -15.25 USD"
        )
        for m in messages
    ), messages


def test_cash_assertions_do_not_read_the_posted_payments(
    paid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payment altered on its way to the books (and in every regeneration) is still caught:
    the cash figures come from the payments table, not from the payment entries."""
    import ledger.session

    real = ledger.session.payment_entries

    def fifteen_becomes_fourteen(*args: object, **kwargs: object) -> list[data.Transaction]:
        entries = real(*args, **kwargs)  # type: ignore[arg-type]
        return [
            e._replace(
                postings=[
                    p._replace(units=Amount(Decimal("14.00").copy_sign(p.units.number), "USD"))
                    for p in e.postings
                ]
            )
            if e.meta["reference"] == "BANK-3"
            else e
            for e in entries
        ]

    monkeypatch.setattr(ledger.session, "payment_entries", fifteen_becomes_fourteen)
    result = run_cli(paid, "close", "2026-10", *UNAPPLIED)
    assert result.exit_code == 1, result.output
    assert "Balance failed for 'Assets:Bank:Operating'" in result.output
    assert "Balance failed for 'Liabilities:Unapplied-Cash'" in result.output
    assert "nothing sealed" in result.output
    assert sealed_months(paid / "books") == {"2026-09"}
    monkeypatch.undo()
    assert run_cli(paid, "close", "2026-10", *UNAPPLIED).exit_code == 0


def test_check_ties_out_after_sealing_a_month_with_late_usage(tmp_path: Path) -> None:
    """ann (anniversary from Aug 15, 1.00 a call) is invoiced on Sep 15 for Aug 20 and Sep 5 (2.00);
    a late call of Sep 10 posts 1.00 to unbilled in September, and Sep 20 accrues 1.00 more. Once
    August and September are sealed, the tie-out still gives 2.00 on both sides (the late entry
    stays where the books dated it, not at the new first open day)."""
    plans = (
        "plans:\n  u:\n    currency: USD\n    charges:\n"
        '      - {meter: api_calls, model: unit, unit_price: "1.00"}\n'
    )
    customers = (
        "customers:\n  ann: {currency: USD, billing_anchor: start, subscriptions: "
        "[{plan: u, start: 2026-08-15}]}\n"
    )
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=plans, customers=customers)
    session = _session(root)
    _insert(session, _calls("ann", ["2026-08-20", "2026-09-05", "2026-09-20"]))
    session.invoice(date(2026, 9, 15))
    _insert(session, _calls("ann", ["2026-09-10"], "late"))
    session.post(date(2026, 9, 30))
    for month in ("2026-08", "2026-09"):
        assert run_cli(root, "close", month).exit_code == 0
    checked = run_cli(root, "check")
    assert checked.exit_code == 0, checked.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Assets:Receivables:Unbilled:Ann", date(2026, 10, 1)) == Decimal("2.00")
