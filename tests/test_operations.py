"""Real operations in a different order than the happy path (issue 12), each a worked example.

The workspace: one plan ``u`` at 0.10 USD per API call, customer ``cal`` on
calendar cycles from 2026-09-01.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data

from ledger.books import close_path, load_books, sealed_months
from ledger.errors import AfterTodayError, SealedMonthError
from ledger.facts.adjustments import load_adjustments
from ledger.facts.credit_notes import load_credit_notes
from ledger.facts.invoices import load_invoices
from tests.support.rerate import PLANS as RERATE_PLANS
from tests.support.rerate import make, version
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
      - {meter: api_calls, model: unit, unit_price: "0.10"}
"""
CUSTOMERS = """\
customers:
  cal: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
"""
UNBILLED = "Assets:Receivables:Unbilled:Cal"
RECEIVABLE = "Assets:Receivables:Invoiced:Cal"
USAGE = "Income:Usage:Api-Calls"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)


def test_late_usage_between_invoice_and_close_neither_holds_nor_blocks_the_close(
    root: Path,
) -> None:
    """The runbook order: invoice on the 1st, late usage arrives, close a few days later.

    10 calls Sep 1–10 → 1.00 accrued on Sep 30, invoiced by INV-2026-000001 on Oct 1,
    which freezes the cycle. Then a call dated Sep 20 arrives (before September is
    closed): 0.10 of late usage, dated Oct 1 (the invoice date, the first day the
    frozen cycle can take it) and billed on INV-2026-000002 (Nov 1).

    - the reconcilers see nothing wrong with September (the store side freezes the
      cycle exactly as the books do); ``invoice --through 2026-11-01`` holds no one;
    - ``close 2026-09`` asserts Unbilled:Cal 1.00 and Income:Usage -1.00 on Oct 1;
    - ``close 2026-10`` asserts Unbilled:Cal 1.00 − 1.00 + 0.10 = 0.10, Receivable
      1.00 and Income:Usage −1.10 on Nov 1 (INV-2026-000002 is dated Nov 1, after);
    - ``check`` passes throughout.
    """
    session = open_session(root)
    insert_events(session.engine, calls("cal", [f"2026-09-{d:02d}" for d in range(1, 11)]))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    insert_events(session.engine, calls("cal", ["2026-09-20"], "late"))
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    assert run_cli(root, "check").exit_code == 0
    reconciled = run_cli(root, "reconcile", "2026-09")
    assert reconciled.exit_code == 0, reconciled.output
    invoiced = run_cli(root, "invoice", "--through", "2026-11-01")
    assert invoiced.exit_code == 0 and "held" not in invoiced.output, invoiced.output
    assert "INV-2026-000002  2026-11-01  cal" in invoiced.output and "0.10 USD" in invoiced.output
    for month in ("2026-09", "2026-10"):
        closed = run_cli(root, "close", month)
        assert closed.exit_code == 0, closed.output
    assert sealed_months(root / "books") == {"2026-09", "2026-10"}
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, UNBILLED, date(2026, 10, 1)) == Decimal("1.00")
    assert balance(entries, USAGE, date(2026, 10, 1)) == Decimal("-1.00")
    assert balance(entries, UNBILLED, date(2026, 11, 1)) == Decimal("0.10")
    assert balance(entries, RECEIVABLE, date(2026, 11, 1)) == Decimal("1.00")
    assert balance(entries, USAGE, date(2026, 11, 1)) == Decimal("-1.10")
    october = (root / "books" / "2026" / "2026-10.close.beancount").read_text()
    assert f"2026-11-01 balance {UNBILLED}" in october and "0.10 USD" in october
    assert run_cli(root, "check").exit_code == 0


def test_close_refuses_a_month_before_the_first_activity(root: Path) -> None:
    """The first subscription starts 2026-09-01 and no event is older: ``close 2026-08``
    (a typo for 2026-09) is exit 2 with one line and seals nothing; ``close 2026-09``
    then works. With no subscription, grant or event at all, every month is refused.
    An event dated 2026-07-31 (before any subscription) makes July the first activity;
    it bills nothing, so September is still the first month with entries.
    """
    session = open_session(root)
    insert_events(session.engine, calls("cal", ["2026-09-03"]))
    refused = run_cli(root, "close", "2026-08")
    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        "meterbook: error: 2026-08 is before the workspace's first activity (2026-09-01, the "
        "earliest "
        "subscription start, credit grant or event): nothing to close, and a sealed month "
        "cannot be reopened"
    ]
    assert not close_path(root / "books", "2026-08").exists()
    assert sealed_months(root / "books") == set()
    assert run_cli(root, "close", "2026-06").exit_code == 2
    insert_events(session.engine, calls("cal", ["2026-07-31"], "early"))
    assert "(2026-07-31," in run_cli(root, "close", "2026-06").output
    closed = run_cli(
        root, "close", "2026-09"
    )  # July's event is outside any subscription: no entries
    assert closed.exit_code == 0, closed.output
    assert sealed_months(root / "books") == {"2026-09"}


def test_close_refuses_every_month_without_any_activity(tmp_path: Path) -> None:
    """No subscription, no grant, no event: nothing can be closed (exit 2, one line)."""
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers="customers:\n  cal: {currency: USD}\n",
    )
    refused = run_cli(root, "close", "2026-09")
    assert refused.exit_code == 2
    assert refused.output.startswith("meterbook: error: 2026-09: nothing to close")
    assert len(refused.output.strip().splitlines()) == 1


# --- rerate (issue 12, defect 5) ---------------------------------------------------------------


def test_a_new_version_for_a_cycle_not_invoiced_is_a_repricing_not_late_usage(
    tmp_path: Path,
) -> None:
    """``ann`` (anniversary from 2026-09-15) on ``u`` at 1.00 a call: 5 calls Sep 16–20 and
    5 on Oct 2–6. September is closed with the Sep 30 accrual 5 × 1.00 = 5.00 sealed.

    Then a version effective 2026-09-15 makes a call 0.80 and ``rerate --from 2026-09-15``
    runs: the cycle is not invoiced yet, so nothing is re-rated (no document), and
    ``post`` re-prices it. The sealed accrual should now be 5 × 0.80 = 4.00: the
    difference −1.00 is booked on Oct 1 as a *re-pricing* of the sealed period (same
    quantities, ``repriced: TRUE``, no per-posting quantity), not as late usage of 0
    calls. Oct 14 accrues 10 × 0.80 − 4.00 = 4.00, so Unbilled:Ann is 5.00 − 1.00 + 4.00
    = 8.00 at the cycle's end, and ``check`` passes.
    """
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        customers=(
            "customers:\n  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: u, "
            "start: 2026-09-15}]}\n"
        ),
        plans=PLANS.replace("0.10", "1.00"),
    )
    session = open_session(root)
    insert_events(
        session.engine,
        calls(
            "ann",
            [*(f"2026-09-{d}" for d in range(16, 21)), *(f"2026-10-0{d}" for d in range(2, 7))],
        ),
    )
    assert run_cli(root, "close", "2026-09").exit_code == 0
    (root / "rules" / "plans.yaml").write_text(
        PLANS.replace("0.10", "1.00")
        + (
            "    versions:\n      - effective: 2026-09-15\n"
            '        charges: [{meter: api_calls, model: unit, unit_price: "0.80"}]\n'
        )
    )
    rerated = run_cli(root, "rerate", "--from", "2026-09-15", "--date", "2026-10-20")
    assert rerated.exit_code == 0 and "nothing to re-rate" in rerated.output
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    adjustments = [
        e for e in entries if isinstance(e, data.Transaction) and e.date == date(2026, 10, 1)
    ]
    assert len(adjustments) == 1
    (adjustment,) = adjustments
    assert (
        adjustment.narration
        == "Re-pricing of sealed period 2026-09: same quantities, current terms"
    )
    assert adjustment.meta["repriced"] is True and "Late" not in adjustment.narration
    assert {p.account: p.units.number for p in adjustment.postings} == {
        "Assets:Receivables:Unbilled:Ann": Decimal("-1.00"),
        USAGE: Decimal("1.00"),
    }
    assert all("quantity" not in (p.meta or {}) for p in adjustment.postings)
    assert balance(entries, "Assets:Receivables:Unbilled:Ann", date(2026, 10, 15)) == Decimal(
        "8.00"
    )
    assert run_cli(root, "check").exit_code == 0


def test_removing_a_version_after_a_rerate_fails_check_until_rerated(tmp_path: Path) -> None:
    """The rerate workspace (tests/support/rerate.py): acme's October invoiced 20 calls × 1.00 =
    20.00 (INV-2026-000002), beta's 10.00 (INV-2026-000003, paid). A 0.80 version from Oct 1 and
    ``rerate`` credit −4.00 (CN-2026-000001) and −2.00 (CN-2026-000002).

    Removing the version afterwards leaves both credit notes unexplained: the current
    rules give 20.00 and 10.00 again. ``check`` fails (exit 1) naming each; a ``rerate``
    with the current rules posts the differences back as debit adjustments +4.00 and
    +2.00 (DA-2026-000001, DA-2026-000002), and ``check`` passes: Income:Credit-Notes
    6.00 and the debit adjustments' −6.00 of usage revenue cancel out.
    """
    root = make(tmp_path)
    (root / "rules" / "plans.yaml").write_text(version("0.80"))
    assert run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20").exit_code == 0
    assert run_cli(root, "check").exit_code == 0
    (root / "rules" / "plans.yaml").write_text(RERATE_PLANS)
    checked = run_cli(root, "check")
    assert checked.exit_code == 1, checked.output
    assert (
        "INV-2026-000002 api_calls (cycle acme-2026-10-01): reratings posted -4.00 USD "
        "(CN-2026-000001), "
        "the current rules explain 0.00"
    ) in checked.output
    assert (
        "INV-2026-000003 api_calls (cycle beta-2026-10-01): reratings posted -2.00 USD"
        in checked.output
    )
    again = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert (
        again.exit_code == 0 and "posted 0 credit notes and 2 debit adjustments" in again.output
    ), again.output
    assert run_cli(root, "check").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Income:Credit-Notes", date(2026, 11, 21)) == Decimal("6.00")
    assert balance(entries, USAGE, date(2026, 11, 21)) == Decimal(
        "-66.00"
    )  # 60.00 invoiced + 6.00 re-billed


# --- cash application (issue 12, defect 4) ------------------------------------------------------

CASH_CUSTOMERS = """\
customers:
  acme: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
  beta: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
"""


def test_unapplied_cash_and_credit_balances_are_applied_and_refunded(tmp_path: Path) -> None:
    """Plan ``u`` at 1.00 a call. acme: 10 calls in September (INV-2026-000001, 10.00, Oct 1),
    20 in October (INV-2026-000003, 20.00, Nov 1); beta: 10 in September (INV-2026-000002,
    10.00, Oct 1), 5 in October (INV-2026-000004, 5.00, Nov 1).

    ======  ========================================  ==========================================
    Oct 5   BANK-1 15.00 names no invoice            cash 15.00 / unapplied cash 15.00
    Oct 6   BANK-2 10.00 pays INV-2026-000002         cash 10.00 / receivable beta 10.00
    Oct 10  CN-2026-000001 4.00 on the paid INV-2     credit notes 4.00 / refunds beta 4.00
    Oct 12  apply BANK-1 to INV-2026-000001 (10.00)   unapplied cash 10.00 / receivable acme 10.00
    Oct 20  refund BANK-1 as PAYOUT-1 (the 5.00 left)  unapplied cash 5.00 / cash 5.00
    Oct 21  refund 1.50 of CN-2026-000001, PAYOUT-2    refunds beta 1.50 / cash 1.50
    Nov 2   apply CN-2026-000001 to INV-2026-000004    refunds beta 2.50 / receivable beta 2.50
    ======  ========================================  ==========================================

    October closes with no unapplied-cash finding (BANK-1 is fully applied or paid out)
    and asserts, on Nov 1: cash 15.00 + 10.00 − 5.00 − 1.50 = 18.50, unapplied cash
    0.00, Refunds:Beta −4.00 + 1.50 = −2.50. On Nov 3: receivable acme 10.00 − 10.00 +
    20.00 = 20.00, beta 10.00 − 10.00 + 5.00 − 2.50 = 2.50, Refunds:Beta 0.00.
    """
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS.replace("0.10", "1.00"),
        customers=CASH_CUSTOMERS,
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *calls("acme", [f"2026-09-{d:02d}" for d in range(1, 11)]),
            *calls("acme", [f"2026-10-{d:02d}" for d in range(1, 21)], "oct"),
            *calls("beta", [f"2026-09-{d:02d}" for d in range(1, 11)]),
            *calls("beta", [f"2026-10-{d:02d}" for d in range(1, 6)], "oct"),
        ],
    )
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    (tmp_path / "bank.csv").write_text(
        "date,amount,currency,invoice,reference\n"
        "2026-10-05,15.00,USD,,BANK-1\n2026-10-06,10.00,USD,INV-2026-000002,BANK-2\n"
    )
    assert run_cli(root, "ingest", str(tmp_path / "bank.csv")).exit_code == 0
    assert (
        run_cli(
            root,
            "credit",
            "INV-2026-000002",
            "--amount",
            "4.00",
            "--reason",
            "goodwill",
            "--date",
            "2026-10-10",
        ).exit_code
        == 0
    )

    too_much = run_cli(
        root,
        "apply",
        "BANK-1",
        "--invoice",
        "INV-2026-000001",
        "--amount",
        "12.00",
        "--date",
        "2026-10-12",
    )
    assert too_much.exit_code == 2
    assert (
        too_much.output
        == "meterbook: error: --amount 12.00: INV-2026-000001 owes 10.00 USD on 2026-10-12\n"
    )
    other = run_cli(
        root, "apply", "CN-2026-000001", "--invoice", "INV-2026-000001", "--date", "2026-10-12"
    )
    assert (
        other.exit_code == 2
        and "CN-2026-000001 is beta's credit balance; INV-2026-000001 is acme's" in other.output
    )
    applied = run_cli(
        root, "apply", "BANK-1", "--invoice", "INV-2026-000001", "--date", "2026-10-12"
    )
    assert applied.exit_code == 0, applied.output
    assert applied.output.split() == [
        "APPLY-BANK-1-INV-2026-000001-2026-10-12",
        "2026-10-12",
        "BANK-1",
        "10.00",
        "USD",
        "to",
        "INV-2026-000001",
    ]
    again = run_cli(root, "apply", "BANK-1", "--invoice", "INV-2026-000001", "--date", "2026-10-12")
    assert again.exit_code == 0 and "recorded before; nothing changed" in again.output
    assert (
        run_cli(
            root, "refund", "BANK-1", "--reference", "PAYOUT-1", "--date", "2026-10-20"
        ).exit_code
        == 0
    )
    partial = run_cli(
        root,
        "refund",
        "CN-2026-000001",
        "--reference",
        "PAYOUT-2",
        "--amount",
        "1.50",
        "--date",
        "2026-10-21",
    )
    assert partial.exit_code == 0, partial.output
    empty = run_cli(root, "refund", "BANK-1", "--reference", "PAYOUT-3", "--date", "2026-10-22")
    assert empty.output == "meterbook: error: BANK-1 holds no unapplied cash on 2026-10-22\n"

    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    for month in ("2026-09", "2026-10"):
        closed = run_cli(root, "close", month)
        assert closed.exit_code == 0, closed.output
        assert "unapplied-cash:" not in closed.output
    october = {
        " ".join(line.split())
        for line in (root / "books" / "2026" / "2026-10.close.beancount").read_text().splitlines()
    }
    assert {
        "2026-11-01 balance Assets:Bank:Operating 18.50 USD",
        "2026-11-01 balance Liabilities:Unapplied-Cash 0.00 USD",
        "2026-11-01 balance Liabilities:Refunds:Beta -2.50 USD",
    } <= october
    sealed = run_cli(
        root, "refund", "CN-2026-000001", "--reference", "PAYOUT-4", "--date", "2026-10-31"
    )
    assert sealed.exit_code == 2 and "is in a sealed month" in sealed.output

    assert run_cli(root, "invoice", "--through", "2026-11-01").exit_code == 0
    credit = run_cli(
        root, "apply", "CN-2026-000001", "--invoice", "INV-2026-000004", "--date", "2026-11-02"
    )
    assert credit.exit_code == 0 and "2.50 USD  to INV-2026-000004" in credit.output, credit.output
    assert run_cli(root, "post", "--through", "2026-11-02").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    day = date(2026, 11, 3)
    assert balance(entries, "Assets:Bank:Operating", day) == Decimal("18.50")
    assert balance(entries, "Liabilities:Unapplied-Cash", day) == 0
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", day) == Decimal("20.00")
    assert balance(entries, "Assets:Receivables:Invoiced:Beta", day) == Decimal("2.50")
    assert balance(entries, "Liabilities:Refunds:Beta", day) == 0
    assert balance(entries, "Income:Credit-Notes", day) == Decimal("4.00")
    narrations = {
        e.narration for e in entries if isinstance(e, data.Transaction) and "application" in e.meta
    }
    assert narrations == {
        "Unapplied cash BANK-1 applied to INV-2026-000001",
        "Refund PAYOUT-1 of unapplied cash BANK-1",
        "Refund PAYOUT-2 of credit balance CN-2026-000001",
        "Credit balance CN-2026-000001 applied to INV-2026-000004",
    }
    assert run_cli(root, "check").exit_code == 0
    aging = run_cli(root, "report", "aging")
    assert "INV-2026-000001" not in aging.output  # paid by the applied cash


def test_apply_and_refund_keep_the_date_rules_from_python(tmp_path: Path) -> None:
    """The engine, not the CLI, refuses cash moved in a sealed month or after today.

    acme: 10 calls in September at 1.00 (INV-2026-000001, 10.00, Oct 1); BANK-1 15.00 on
    Oct 5 names no invoice; September closed (first open day Oct 1). The session is opened
    as of Oct 15: ``Session.apply`` and ``Session.refund`` dated Sep 30 (sealed) or Oct 16
    (after today) are refused and store nothing; applied on Oct 12 it stores 10.00 (what
    INV-2026-000001 owes) and leaves 5.00, which a refund on Oct 15 pays out.
    """
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS.replace("0.10", "1.00"),
        customers=CASH_CUSTOMERS,
    )
    session = open_session(root)
    insert_events(session.engine, calls("acme", [f"2026-09-{d:02d}" for d in range(1, 11)]))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    (tmp_path / "bank.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-10-05,15.00,USD,,BANK-1\n"
    )
    assert run_cli(root, "ingest", str(tmp_path / "bank.csv")).exit_code == 0
    assert run_cli(root, "post", "--through", "2026-10-14").exit_code == 0
    closed = run_cli(root, "close", "2026-09")
    assert closed.exit_code == 0, closed.output

    session = open_session(root, today=date(2026, 10, 15))
    with pytest.raises(SealedMonthError) as sealed:
        session.apply("BANK-1", "INV-2026-000001", on=date(2026, 9, 30))
    assert str(sealed.value) == (
        "--date: 2026-09-30 is in a sealed month; cash is applied in an open month "
        "(from 2026-10-01)"
    )
    with pytest.raises(SealedMonthError):
        session.refund("BANK-1", on=date(2026, 9, 30), reference="PAYOUT-0")
    with pytest.raises(AfterTodayError) as late:
        session.apply("BANK-1", "INV-2026-000001", on=date(2026, 10, 16))
    assert str(late.value).startswith("--date: 2026-10-16 is after today (2026-10-15, UTC); ")
    with pytest.raises(AfterTodayError):
        session.refund("BANK-1", on=date(2026, 10, 16), reference="PAYOUT-0")
    assert session.stored_facts().applications == ()

    applied, stored = session.apply("BANK-1", "INV-2026-000001", on=date(2026, 10, 12))
    assert stored and (applied.amount, applied.invoice) == (Decimal("10.00"), "INV-2026-000001")
    paid_out, stored = session.refund("BANK-1", on=date(2026, 10, 15), reference="PAYOUT-1")
    assert stored and (paid_out.kind, paid_out.amount) == ("refund", Decimal("5.00"))
    assert [(a.reference, a.amount) for a in session.stored_facts().applications] == [
        ("APPLY-BANK-1-INV-2026-000001-2026-10-12", Decimal("10.00")),
        ("PAYOUT-1", Decimal("5.00")),
    ]


# --- subscription changes after invoicing (issue 12, defect 1) ----------------------------------

FEE_PLANS = """\
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


def _acme(subscriptions: str, policy: str = "") -> str:
    return (
        "customers:\n  acme: {currency: USD, billing_anchor: calendar, "
        f"subscriptions: [{subscriptions}]{policy}}}\n"
    )


@pytest.fixture
def billed(tmp_path: Path) -> Path:
    """acme on ``p`` (31.00 a month in advance) from Oct 1, one call on Oct 3; INV-2026-000001
    bills October's fee, 31.00, on Oct 1."""
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS,
        customers=_acme("{plan: p, start: 2026-10-01}"),
    )
    insert_events(open_session(root).engine, calls("acme", ["2026-10-03"]))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    return root


def test_cancellation_after_the_advance_fee_is_credited_for_the_unused_days(billed: Path) -> None:
    """acme cancels from Oct 11, entered after INV-2026-000001 billed October's 31.00.

    The cycle is now [Oct 1, Oct 11): 10 of 31 days, 31.00 × 10 ÷ 31 = 10.00, recognized
    by Oct 10. Until the books reach Oct 10 the credit is pending (``trace`` says when);
    ``post`` credits the 21.00 billed for Oct 11–31 on the cycle's last day,
    Oct 10 (CN-2026-000001: deferred 21.00 / receivable 21.00, the invoice is unpaid), so
    deferred revenue is −31.00 + 10.00 + 21.00 = 0 from Oct 11 on. INV-2026-000002 (Oct 11)
    bills the call, 1.00: acme owes 31.00 − 21.00 + 1.00 = 11.00. ``trace`` verifies the
    invoice (the credit note explains its fee line), ``check`` passes, and posting again
    issues nothing new.
    """
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-11}")
    )
    # posted through Oct 1 only: the credit (dated Oct 10) is not due yet, and trace says so
    assert run_cli(billed, "check").exit_code == 0
    pending = run_cli(billed, "trace", "INV-2026-000001")
    assert pending.exit_code == 0 and "21.00 to be credited on 2026-10-10" in pending.output, (
        pending.output
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    assert run_cli(billed, "invoice", "--through", "2026-11-01").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    (note,) = [e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta]
    assert (note.date, note.meta["credit_note"], note.meta["invoice"]) == (
        date(2026, 10, 10),
        "CN-2026-000001",
        "INV-2026-000001",
    )
    assert note.meta["reason"] == (
        "subscription change: cycle 2026-10-01/2026-11-01 now 2026-10-01/2026-10-11, "
        "base fee 31.00 now 10.00"
    )
    assert {p.account: p.units.number for p in note.postings} == {
        "Liabilities:Deferred-Revenue:Acme": Decimal("21.00"),
        "Assets:Receivables:Invoiced:Acme": Decimal("-21.00"),
    }
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", date(2026, 10, 11)) == 0
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-10.00")
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 11, 2)) == Decimal(
        "11.00"
    )
    traced = run_cli(billed, "trace", "INV-2026-000001")
    assert traced.exit_code == 0, traced.output
    assert (
        "the subscription changed after the invoice: CN-2026-000001 credit 21.00" in traced.output
    )
    assert run_cli(billed, "check").exit_code == 0
    before = (billed / "books" / "2026" / "2026-10.beancount").read_bytes()
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    assert (billed / "books" / "2026" / "2026-10.beancount").read_bytes() == before
    assert run_cli(billed, "close", "2026-10").exit_code == 0


def test_a_manual_credit_note_after_a_cancellation_does_not_reduce_recognition_twice(
    billed: Path,
) -> None:
    """The cancellation from Oct 11 as above, then an accountant credits the unused days by
    hand on Oct 20: ``credit`` first issues the subscription change's CN-2026-000001
    (21.00), so 31.00 − 21.00 = 10.00 is all that line can still be credited and a
    manual 21.00 is refused. A goodwill note of 5.00 on the fee line (CN-2026-000002) is
    contra-revenue in full: the fee's 10.00 is recognized already, nothing is deferred,
    so recognition stays 10.00 (not 10.00 − 21.00) and deferred revenue stays 0.
    """
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-11}")
    )
    refused = run_cli(
        billed,
        "credit",
        "INV-2026-000001",
        "--line",
        "1",
        "--amount",
        "21.00",
        "--reason",
        "unused days",
        "--date",
        "2026-10-20",
    )
    assert refused.exit_code == 2
    assert "more than line 1 of INV-2026-000001 can still be credited (10.00 USD)" in refused.output
    goodwill = run_cli(
        billed,
        "credit",
        "INV-2026-000001",
        "--line",
        "1",
        "--amount",
        "5.00",
        "--reason",
        "goodwill",
        "--date",
        "2026-10-20",
    )
    assert goodwill.exit_code == 0 and goodwill.output.startswith("CN-2026-000002"), goodwill.output
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-10.00")
    assert balance(entries, "Income:Credit-Notes", date(2026, 11, 1)) == Decimal("5.00")
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", date(2026, 11, 1)) == 0
    assert run_cli(billed, "check").exit_code == 0


def test_a_paid_downgrade_mid_cycle_credits_a_refund_and_bills_the_new_plan(
    billed: Path, tmp_path: Path
) -> None:
    """acme paid INV-2026-000001 (31.00) on Oct 2, then moves to ``s`` (15.50 a month) from
    Oct 16, entered on Oct 20 (backdated).

    - ``p`` keeps [Oct 1, Oct 16): 15 days, 31.00 × 15 ÷ 31 = 15.00; the 16.00 for the
      rest was paid, so CN-2026-000001 (dated Oct 15) is deferred 16.00 / refund
      liability 16.00;
    - ``s`` starts its own cycle [Oct 16, Nov 1): 15.50 × 16 ÷ 31 = 8.00, billed on
      INV-2026-000002 on Oct 16 with p's call (1.00): 9.00;
    - deferred revenue: p −31.00 + 15.00 + 16.00 = 0, s −8.00 + 8.00 = 0 on Nov 1;
    - the credit balance pays INV-2026-000002 (``apply CN-2026-000001``: refund liability
      9.00 / receivable 9.00) and the 7.00 left is refunded (``refund``: refund
      liability / cash), so acme owes 0 and is owed 0.
    """
    (tmp_path / "bank.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-10-02,31.00,USD,INV-2026-000001,BANK-1\n"
    )
    assert run_cli(billed, "ingest", str(tmp_path / "bank.csv")).exit_code == 0
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01}, {plan: s, start: 2026-10-16}")
    )
    invoiced = run_cli(billed, "invoice", "--through", "2026-10-20")
    assert invoiced.exit_code == 0 and "INV-2026-000002  2026-10-16  acme" in invoiced.output, (
        invoiced.output
    )
    assert "9.00 USD" in invoiced.output
    assert (
        run_cli(
            billed,
            "apply",
            "CN-2026-000001",
            "--invoice",
            "INV-2026-000002",
            "--date",
            "2026-10-20",
        ).exit_code
        == 0
    )
    assert (
        run_cli(
            billed, "refund", "CN-2026-000001", "--reference", "PAYOUT-1", "--date", "2026-10-21"
        ).exit_code
        == 0
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    (note,) = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("credit_note")]
    assert note.date == date(2026, 10, 15)
    assert {p.account: p.units.number for p in note.postings} == {
        "Liabilities:Deferred-Revenue:Acme": Decimal("16.00"),
        "Liabilities:Refunds:Acme": Decimal("-16.00"),
    }
    day = date(2026, 11, 1)
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", day) == 0
    assert balance(entries, "Income:Subscriptions:P", day) == Decimal("-15.00")
    assert balance(entries, "Income:Subscriptions:S", day) == Decimal("-8.00")
    assert balance(entries, "Liabilities:Refunds:Acme", day) == 0
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", day) == 0
    assert balance(entries, "Assets:Bank:Operating", day) == Decimal("24.00")  # 31.00 in, 7.00 out
    for number in ("INV-2026-000001", "INV-2026-000002"):
        assert run_cli(billed, "trace", number).exit_code == 0
    assert run_cli(billed, "check").exit_code == 0


def test_an_edit_that_recuts_a_cycle_whose_usage_is_billed_is_refused(billed: Path) -> None:
    """November's invoice (Nov 1) bills October's usage and freezes the cycle [Oct 1, Nov 1).
    Ending the subscription on Oct 20 afterwards would re-cut a billed cycle: ``post`` is
    refused with one line (exit 2) naming the cycle, the invoice and the first day a change
    may take effect, and nothing is written; ``check`` fails the same way."""
    assert run_cli(billed, "invoice", "--through", "2026-11-01").exit_code == 0
    before = (billed / "books" / "2026" / "2026-10.beancount").read_bytes()
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-20}")
    )
    refused = run_cli(billed, "post", "--through", "2026-11-30")
    assert refused.exit_code == 2
    assert refused.output == (
        "meterbook: error: rules/customers.yaml: customers.acme.subscriptions: cycle "
        "^acme-2026-10-01 "
        "(2026-10-01/2026-11-01, plan p) is now 2026-10-01/2026-10-20 on plan p, but "
        "INV-2026-000002 already "
        "billed its usage: a billed cycle is not re-cut; date the change on or after 2026-11-01. "
        "Nothing was written\n"
    )
    assert (billed / "books" / "2026" / "2026-10.beancount").read_bytes() == before
    assert run_cli(billed, "check").exit_code == 1
    # ending it on Nov 1 instead credits November's advance fee in full
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-11-01}")
    )
    assert run_cli(billed, "post", "--through", "2026-11-30").exit_code == 0
    assert run_cli(billed, "check").exit_code == 0
    entries, _errors, _ = load_books(billed / "books" / "main.beancount")
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", date(2026, 12, 1)) == 0


def test_policy_no_proration_and_change_at_next_cycle(billed: Path) -> None:
    """``subscription_changes: {proration: none}``: cancelling from Oct 11 bills the cut
    cycle in full, so nothing is credited and the 31.00 is recognized over Oct 1–10.
    ``{effective: next_cycle}``: the cancellation waits for the cycle's end (Nov 1), so
    October runs in full and nothing is credited either."""
    (billed / "rules" / "customers.yaml").write_text(
        _acme(
            "{plan: p, start: 2026-10-01, end: 2026-10-11}",
            ", subscription_changes: {proration: none}",
        )
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == [] and not [
        e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta
    ]
    assert balance(entries, "Income:Subscriptions:P", date(2026, 10, 11)) == Decimal("-31.00")
    (billed / "rules" / "customers.yaml").write_text(
        _acme(
            "{plan: p, start: 2026-10-01, end: 2026-10-11}",
            ", subscription_changes: {effective: next_cycle}",
        )
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == [] and not [
        e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta
    ]
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-31.00")
    assert run_cli(billed, "check").exit_code == 0


def test_a_held_invoice_holds_the_customers_later_invoices(billed: Path, tmp_path: Path) -> None:
    """Found by the simulator. acme overpays INV-2026-000001 (31.00) with 34.00 on Oct 2:
    3.00 of unapplied cash, an error finding of October naming acme. ``invoice --through
    2026-12-01`` drafts acme's Nov 1 invoice (October's call, 1.00, and November's fee,
    31.00: 32.00), which bills October: held; its Dec 1 invoice (November's fee) bills
    November, which has no finding, but is held too: issued before the Nov 1 one it would
    take the lower number and bill as if November's fee were not invoiced. Once the
    finding is accepted the two are issued in date order (INV-2026-000002 on Nov 1,
    INV-2026-000003 on Dec 1) and both trace verified."""
    (tmp_path / "bank.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-10-02,34.00,USD,INV-2026-000001,BANK-1\n"
    )
    assert run_cli(billed, "ingest", str(tmp_path / "bank.csv")).exit_code == 0
    held = run_cli(billed, "invoice", "--through", "2026-12-01")
    assert held.exit_code == 1 and "issued 0 invoices" in held.output, held.output
    assert "2 invoices held by open error findings" in held.output
    accepted = run_cli(
        billed,
        "invoice",
        "--through",
        "2026-12-01",
        "--accept",
        "unapplied-cash:BANK-1:2026-10",
        "--reason",
        "refund on its way",
    )
    assert accepted.exit_code == 0, accepted.output
    assert "INV-2026-000002  2026-11-01  acme" in accepted.output
    assert "INV-2026-000003  2026-12-01  acme" in accepted.output
    for number in ("INV-2026-000002", "INV-2026-000003"):
        assert run_cli(billed, "trace", number).exit_code == 0


def test_check_fails_while_a_due_subscription_correction_is_not_posted(billed: Path) -> None:
    """The books are posted through Oct 31; then acme's cancellation from Oct 11 is entered.
    Its credit (21.00, dated Oct 10) is due within the books' horizon: ``check`` fails
    naming the invoice line until ``post`` issues CN-2026-000001, then passes."""
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-11}")
    )
    checked = run_cli(billed, "check")
    assert checked.exit_code == 1
    assert "INV-2026-000001 line 1 ^acme-2026-10-01: billed 31.00, now 10.00" in checked.output
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    assert run_cli(billed, "check").exit_code == 0


def test_an_edit_that_adds_a_line_to_an_issued_invoice_is_refused(billed: Path) -> None:
    """Found by the simulator. One invoice per customer and day, and INV-2026-000001 (Oct 1)
    is issued: a prepaid grant dated Oct 1 entered afterwards would be billed on it, so it
    is refused with one line (exit 2), nothing written (before, it was never invoiced). The
    same grant dated Oct 2 is billed on its own invoice, INV-2026-000002 (25.00)."""
    before = (billed / "rules" / "customers.yaml").read_text()
    (billed / "rules" / "customers.yaml").write_text(
        before.replace("}]}", '}], credits: [{amount: "25.00", granted: 2026-10-01}]}')
    )
    grant = run_cli(billed, "invoice", "--through", "2026-10-02")
    assert grant.exit_code == 2
    assert grant.output == (
        "meterbook: error: rules/customers.yaml: customers.acme.credits: a grant of 25.00 on "
        "2026-10-01 would be "
        "billed on INV-2026-000001, already issued for that day: grant it on or after 2026-10-02. "
        "Nothing was written\n"
    )
    assert run_cli(billed, "check").exit_code == 1
    (billed / "rules" / "customers.yaml").write_text(
        before.replace("}]}", '}], credits: [{amount: "25.00", granted: 2026-10-02}]}')
    )
    issued = run_cli(billed, "invoice", "--through", "2026-10-02")
    assert issued.exit_code == 0 and "INV-2026-000002  2026-10-02  acme" in issued.output, (
        issued.output
    )
    assert run_cli(billed, "check").exit_code == 0


def test_trace_verifies_an_invoice_a_rerate_raised(tmp_path: Path) -> None:
    """Found by the simulator. The rerate workspace (tests/support/rerate.py): acme's October, 20
    calls, invoiced 20.00 on INV-2026-000002; a version from Oct 1 at 1.20 a call re-rates it to
    24.00, so DA-2026-000001 (+4.00, unbilled / usage revenue) names INV-2026-000002 in its
    metadata. It is a document of its own, not a second invoice transaction:
    ``trace INV-2026-000002`` stays verified (it found two invoice transactions before)."""
    root = make(tmp_path)
    (root / "rules" / "plans.yaml").write_text(version("1.20"))
    rerated = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert rerated.exit_code == 0 and "DA-2026-000001" in rerated.output, rerated.output
    traced = run_cli(root, "trace", "INV-2026-000002")
    assert traced.exit_code == 0, traced.output
    assert "Debit adjustment DA-2026-000001" in traced.output


def test_a_credit_note_before_a_cancellation_is_not_taken_out_twice(billed: Path) -> None:
    """Found by the simulator. On Oct 1 acme gets a goodwill note of 9.30 on its October fee
    (CN-2026-000001: 9.30 out of deferred revenue, to be taken out of October's recognition
    day by day). Then acme cancels from Oct 2: the cycle is [Oct 1, Oct 2), 31.00 × 1 ÷ 31 =
    1.00. The correction credits 31.00 − 1.00 − 9.30 = 20.70 (CN-2026-000002), the first
    note's schedule over the old cycle is dropped (taken out at once), so deferred revenue
    is −31.00 + 1.00 + 9.30 + 20.70 = 0, revenue 1.00, and acme owes 1.00."""
    assert (
        run_cli(
            billed,
            "credit",
            "INV-2026-000001",
            "--line",
            "1",
            "--amount",
            "9.30",
            "--reason",
            "goodwill",
            "--date",
            "2026-10-01",
        ).exit_code
        == 0
    )
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-02}")
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    notes = {
        e.meta["credit_note"]: e
        for e in entries
        if isinstance(e, data.Transaction) and "credit_note" in e.meta and "reason" in e.meta
    }
    assert notes["CN-2026-000002"].meta["reason"].startswith("subscription change")
    assert {p.account: p.units.number for p in notes["CN-2026-000002"].postings} == {
        "Liabilities:Deferred-Revenue:Acme": Decimal("20.70"),
        "Assets:Receivables:Invoiced:Acme": Decimal("-20.70"),
    }
    day = date(2026, 11, 1)
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", day) == 0
    assert balance(entries, "Income:Subscriptions:P", day) == Decimal("-1.00")
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", day) == Decimal("1.00")
    assert run_cli(billed, "trace", "INV-2026-000001").exit_code == 0
    assert run_cli(billed, "check").exit_code == 0


def test_a_month_with_a_note_closes_after_a_cut_corrected_in_the_next_month(
    tmp_path: Path,
) -> None:
    """Found by the simulator (seed 61115). acme is on ``p`` (31.00 a month in advance) from
    Oct 15, cycles from its start: INV-2026-000001 bills [Oct 15, Nov 15), 31 days, 1.00 a
    day. A goodwill note of 3.10 on the fee on Oct 26 (CN-2026-000001, all deferred). Then
    acme cancels from Nov 5: the cycle is [Oct 15, Nov 5), 21 days, 21.00; the correction
    (CN-2026-000002, dated the cycle's last day Nov 4) credits 31.00 − 21.00 − 3.10 = 6.90 and
    drops the first note's schedule (taken out at once). October's books recognize Oct 15–31:
    17.00, deferred −31.00 + 3.10 + 17.00 = −10.90. ``close 2026-10`` asserts the same from
    the store: before the fix, the store side (through Oct 31) did not see the Nov 4
    correction and took 3.10 × 6 ÷ 10 = 1.86 of the note out of October (−15.14 and
    −12.76): two Balance errors, and the month could never be closed."""
    customers = "customers:\n  acme: {currency: USD, billing_anchor: start, subscriptions: [%s]}\n"
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS,
        customers=customers % "{plan: p, start: 2026-10-15}",
    )
    assert run_cli(root, "invoice", "--through", "2026-10-15").exit_code == 0
    note = run_cli(
        root, "credit", "INV-2026-000001", "--amount", "3.10", "--reason", "goodwill",
        "--line", "1", "--date", "2026-10-26",
    )  # fmt: skip
    assert note.exit_code == 0, note.output
    (root / "rules" / "customers.yaml").write_text(
        customers % "{plan: p, start: 2026-10-15, end: 2026-11-05}"
    )
    posted = run_cli(root, "post", "--through", "2026-11-10")
    assert posted.exit_code == 0, posted.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    fix = next(e for e in entries if e.meta.get("credit_note") == "CN-2026-000002")
    assert {p.account: p.units.number for p in fix.postings} == {
        "Liabilities:Deferred-Revenue:Acme": Decimal("6.90"),
        "Assets:Receivables:Invoiced:Acme": Decimal("-6.90"),
    }
    deferred, revenue = "Liabilities:Deferred-Revenue:Acme", "Income:Subscriptions:P"
    assert balance(entries, revenue, date(2026, 11, 1)) == Decimal("-17.00")
    assert balance(entries, deferred, date(2026, 11, 1)) == Decimal("-10.90")
    closed = run_cli(root, "close", "2026-10")
    assert closed.exit_code == 0, closed.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, revenue, date(2026, 11, 11)) == Decimal("-21.00")
    assert balance(entries, deferred, date(2026, 11, 11)) == 0
    assert run_cli(root, "check").exit_code == 0


def test_trace_counts_a_sealed_notes_schedule_caught_up_with_the_note(tmp_path: Path) -> None:
    """Found by the simulator (seed 60948). acme is on ``p`` (31.00 a month in advance) from
    Oct 15, cycles from its start: INV-2026-000001 bills [Oct 15, Nov 15), 31 days, 1.00 a
    day. A goodwill note of 3.10 on the fee on Oct 26 is taken out of recognition from Oct 26
    to Nov 14 (20 days): 3.10 × 6 ÷ 20 = 0.93 by Oct 31. October is closed: revenue 17.00 −
    0.93 = 16.07. acme then cancels from Nov 1: the cycle is [Oct 15, Nov 1), 17.00; the
    correction credits 31.00 − 17.00 − 3.10 = 10.90 and drops the note's schedule, so the
    sealed 0.93 comes back as a late adjustment on Nov 1 carrying ^CN-2026-000001: revenue
    16.07 + 0.93 = 17.00, deferred revenue 0. ``trace`` of the invoice counts that catch-up
    with the note, not as the cycle's fee revenue (it read 17.00 + 0.93 = 17.93 against the
    store's 17.00: NOT verified)."""
    customers = "customers:\n  acme: {currency: USD, billing_anchor: start, subscriptions: [%s]}\n"
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS,
        customers=customers % "{plan: p, start: 2026-10-15}",
    )
    assert run_cli(root, "invoice", "--through", "2026-10-15").exit_code == 0
    note = run_cli(
        root, "credit", "INV-2026-000001", "--amount", "3.10", "--reason", "goodwill",
        "--line", "1", "--date", "2026-10-26",
    )  # fmt: skip
    assert note.exit_code == 0, note.output
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    closed = run_cli(root, "close", "2026-10")
    assert closed.exit_code == 0, closed.output
    deferred, revenue = "Liabilities:Deferred-Revenue:Acme", "Income:Subscriptions:P"
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert balance(entries, revenue, date(2026, 11, 1)) == Decimal("-16.07")
    (root / "rules" / "customers.yaml").write_text(
        customers % "{plan: p, start: 2026-10-15, end: 2026-11-01}"
    )
    posted = run_cli(root, "post", "--through", "2026-11-05")
    assert posted.exit_code == 0, posted.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, revenue, date(2026, 11, 6)) == Decimal("-17.00")
    assert balance(entries, deferred, date(2026, 11, 6)) == 0
    traced = run_cli(root, "trace", "INV-2026-000001")
    assert traced.exit_code == 0, traced.output
    assert run_cli(root, "check").exit_code == 0


def test_a_credit_note_before_a_cut_that_leaves_a_debit_is_not_taken_out_twice(
    billed: Path,
) -> None:
    """Found by the simulator (seed 60453: a goodwill note, then a plan change). On Oct 1
    acme gets a goodwill note of 9.30 on its October fee (CN-2026-000001: 9.30 out of
    deferred revenue, scheduled over October). Then acme cancels from Oct 23: the cycle is
    [Oct 1, Oct 23), 31.00 × 22 ÷ 31 = 22.00. The correction is 22.00 − 31.00 + 9.30 =
    0.30, a debit (DA-2026-000001, Oct 22: unbilled 0.30 / deferred revenue 0.30), and the
    first note's schedule over the old cycle is dropped (taken out at once) as after a
    credit: deferred revenue −31.00 + 9.30 − 0.30 + 22.00 = 0 from Oct 23 on, revenue
    22.00 (before, the note's 9.30 was also taken out of the cut cycle's recognition:
    revenue 12.70 and deferred revenue −9.30, a credit balance, after the cycle ended)."""
    assert (
        run_cli(
            billed,
            *("credit", "INV-2026-000001", "--line", "1", "--amount", "9.30"),
            *("--reason", "goodwill", "--date", "2026-10-01"),
        ).exit_code
        == 0
    )
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-23}")
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    (debit,) = [
        e for e in entries if isinstance(e, data.Transaction) and "debit_adjustment" in e.meta
    ]
    assert (debit.date, debit.meta["debit_adjustment"]) == (date(2026, 10, 22), "DA-2026-000001")
    assert {p.account: p.units.number for p in debit.postings} == {
        "Assets:Receivables:Unbilled:Acme": Decimal("0.30"),
        "Liabilities:Deferred-Revenue:Acme": Decimal("-0.30"),
    }
    day = date(2026, 10, 23)
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", day) == 0
    assert balance(entries, "Income:Subscriptions:P", day) == Decimal("-22.00")
    assert run_cli(billed, "trace", "INV-2026-000001").exit_code == 0
    assert run_cli(billed, "check").exit_code == 0


def test_a_credit_note_over_a_cut_cycle_after_the_cut_is_taken_back(billed: Path) -> None:
    """Found by the simulator (seed 60628). acme cancels from Oct 21 (posted through Oct 5:
    its correction, dated Oct 20, is pending), then gets a goodwill note of 9.30 on Oct 5
    (CN-2026-000001, scheduled over the cycle as it then runs, [Oct 1, Oct 21)). Posted
    through Oct 31: [Oct 1, Oct 21) is 20 of 31 days, 20.00, credited 31.00 − 20.00 =
    11.00 (CN-2026-000002, Oct 20). The cancellation is then taken back: the fee is
    31.00 again, charged back by DA-2026-000001 (11.00, Oct 21, where the days the
    cancellation left billed ran out), and the goodwill note,
    which no correction counted as taken out at once, is still taken out of October's
    recognition: deferred revenue −31.00 + 9.30 + 11.00 − 11.00 − 9.30 + 31.00 = 0 on Nov
    1, revenue 31.00 − 9.30 = 21.70 (it was dropped, leaving deferred revenue a 9.30 debit)."""
    customers = billed / "rules" / "customers.yaml"
    customers.write_text(_acme("{plan: p, start: 2026-10-01, end: 2026-10-21}"))
    assert run_cli(billed, "post", "--through", "2026-10-05").exit_code == 0
    goodwill = run_cli(
        billed,
        *("credit", "INV-2026-000001", "--line", "1", "--amount", "9.30"),
        *("--reason", "goodwill", "--date", "2026-10-05"),
    )
    assert goodwill.exit_code == 0, goodwill.output
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    customers.write_text(_acme("{plan: p, start: 2026-10-01}"))
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    documents = {
        (e.meta.get("credit_note") or e.meta.get("debit_adjustment"), e.date)
        for e in entries
        if isinstance(e, data.Transaction) and ("reason" in e.meta or "debit_adjustment" in e.meta)
    }
    assert documents == {
        ("CN-2026-000001", date(2026, 10, 5)),
        ("CN-2026-000002", date(2026, 10, 20)),
        ("DA-2026-000001", date(2026, 10, 21)),
    }
    day = date(2026, 11, 1)
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", day) == 0
    assert balance(entries, "Income:Subscriptions:P", day) == Decimal("-21.70")
    assert run_cli(billed, "trace", "INV-2026-000001").exit_code == 0
    assert run_cli(billed, "check").exit_code == 0


def test_a_cycle_cut_to_end_on_an_issued_day_is_refused(billed: Path) -> None:
    """Found by the simulator (seed 60555). acme gets a prepaid grant of 5.00 on Oct 11:
    INV-2026-000002 (Oct 11, 5.00). Cancelled afterwards from Oct 11, its cycle [Oct 1,
    Nov 1) would end on Oct 11 and its usage (the Oct 3 call, 1.00) be invoiced on Oct 11,
    a day whose invoice is issued and did not bill it: it was never billed, and ``trace``
    of INV-2026-000002 re-drafted it with the call. Refused with one line (exit 2),
    nothing written. Cancelled from Oct 12 instead: [Oct 1, Oct 12), 31.00 × 11 ÷ 31 =
    11.00 of the fee, so 31.00 − 11.00 = 20.00 is credited (CN-2026-000001, Oct 11, the
    cycle's last day), and the cycle is invoiced on its own day, Oct 12."""
    grant = ', credits: [{amount: "5.00", granted: 2026-10-11}]'
    customers = billed / "rules" / "customers.yaml"
    customers.write_text(_acme("{plan: p, start: 2026-10-01}", grant))
    granted = run_cli(billed, "invoice", "--through", "2026-10-11")
    assert "INV-2026-000002  2026-10-11  acme" in granted.output, granted.output
    before = book_hashes(billed / "books")
    customers.write_text(_acme("{plan: p, start: 2026-10-01, end: 2026-10-11}", grant))
    refused = run_cli(billed, "post", "--through", "2026-10-31")
    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        "meterbook: error: rules/customers.yaml: customers.acme.subscriptions: the cycle "
        "2026-10-01/2026-10-11 (plan p) would be invoiced on 2026-10-11, but INV-2026-000002 "
        "of that day is already issued: end or change it on or after 2026-10-12. Nothing was "
        "written"
    ]
    assert book_hashes(billed / "books") == before
    customers.write_text(_acme("{plan: p, start: 2026-10-01, end: 2026-10-12}", grant))
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    (note,) = [e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta]
    assert note.date == date(2026, 10, 11)
    assert {p.account: p.units.number for p in note.postings} == {
        "Liabilities:Deferred-Revenue:Acme": Decimal("20.00"),
        "Assets:Receivables:Invoiced:Acme": Decimal("-20.00"),
    }
    third = run_cli(billed, "invoice", "--through", "2026-10-12")
    assert "INV-2026-000003  2026-10-12  acme" in third.output, third.output
    for number in ("INV-2026-000001", "INV-2026-000002", "INV-2026-000003"):
        assert run_cli(billed, "trace", number).exit_code == 0, number
    assert run_cli(billed, "check").exit_code == 0


def test_late_usage_after_a_later_invoice_is_billed_once_on_the_next_one(root: Path) -> None:
    """Found by the simulator (seeds 50003 and 60082). 10 calls Sep 1–10 → 1.00,
    INV-2026-000001 (Oct 1) bills them and freezes September. A prepaid grant of 21.00 on
    Oct 5 gets INV-2026-000002 (Oct 5, 21.00). Then 6 calls dated Sep 20 arrive: 6 × 0.10 =
    0.60 of late usage, which the books post on Oct 5: the date of cal's latest invoice
    when they arrived, the day their line waits from (posted on Oct 1, the frozen cycle's
    invoice date, Unbilled:Cal would hold 0.60 before INV-2026-000002, which settles 0 of
    it). INV-2026-000002 was issued before they arrived, so it never had them: its trace
    re-drafts it without them (verified, 21.00) instead of adding a 0.60 line. They wait
    for the next invoice: INV-2026-000003 (Nov 1) bills late usage 0.60 exactly once (the
    grant's 21.00 is for usage after Oct 5; none came), so cal owes 1.00 + 21.00 + 0.60 =
    22.60 and Unbilled:Cal is 1.00 − 1.00 + 0.60 − 0.60 = 0 after it. Every trace stays
    verified as September, October and November are sealed (the first open day moving past
    the invoices does not move the late lines to another invoice), and ``check`` passes.
    """
    session = open_session(root)
    insert_events(session.engine, calls("cal", [f"2026-09-{d:02d}" for d in range(1, 11)]))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    (root / "rules" / "customers.yaml").write_text(
        "customers:\n  cal:\n    currency: USD\n    billing_anchor: calendar\n"
        "    subscriptions: [{plan: u, start: 2026-09-01}]\n"
        '    credits: [{amount: "21.00", granted: 2026-10-05, expires: 2026-11-10}]\n'
    )
    second = run_cli(root, "invoice", "--through", "2026-10-05")
    assert "INV-2026-000002  2026-10-05  cal" in second.output, second.output
    insert_events(session.engine, calls("cal", ["2026-09-20"] * 6, "late"))
    assert run_cli(root, "post", "--through", "2026-10-05").exit_code == 0
    traced = run_cli(root, "trace", "INV-2026-000002")
    assert traced.exit_code == 0 and "late_usage" not in traced.output, traced.output
    third = run_cli(root, "invoice", "--through", "2026-11-01")
    assert "INV-2026-000003  2026-11-01  cal" in third.output, third.output
    invoices = {inv.number: inv for inv in session.issued_invoices()}
    assert [(line.kind, line.amount) for line in invoices["INV-2026-000002"].lines] == [
        ("credit_grant", Decimal("21.00"))
    ]
    assert [(line.kind, line.amount) for line in invoices["INV-2026-000003"].lines] == [
        ("usage", Decimal("0.00")),  # October: no calls
        ("late_usage", Decimal("0.60")),
    ]
    assert run_cli(root, "post", "--through", "2026-11-30").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    (late,) = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert late.date == date(2026, 10, 5)
    assert balance(entries, UNBILLED, date(2026, 10, 5)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 12, 1)) == Decimal("22.60")
    assert balance(entries, UNBILLED, date(2026, 11, 2)) == 0
    assert balance(entries, USAGE, date(2026, 12, 1)) == Decimal("-1.60")
    for month in ("2026-09", "2026-10", "2026-11"):
        assert run_cli(root, "close", month).exit_code == 0
        for number in invoices:
            again = run_cli(root, "trace", number)
            assert again.exit_code == 0, f"after closing {month}:\n{again.output}"
    assert run_cli(root, "check").exit_code == 0


def test_a_workspace_default_policy_that_a_customer_overrides(billed: Path) -> None:
    """``[subscription_changes]`` in meterbook.toml is the workspace's default policy; a
    customer's own ``subscription_changes`` keys override it.

    With ``proration = "none"`` for the workspace, acme's cancellation from Oct 11 bills
    October in full: no credit note, 31.00 recognized over Oct 1–10. acme's own
    ``{proration: by_day}`` then overrides it: the cycle is 10 of 31 days, 31.00 × 10 ÷ 31
    = 10.00, so the correction credits 31.00 − 10.00 = 21.00 (CN-2026-000001) and the
    recognized fee is 10.00. A bad value or an unknown key is one line naming the file and
    the key, exit 2.
    """
    config = billed / "meterbook.toml"
    base = config.read_text()
    config.write_text(base + '[subscription_changes]\nproration = "none"\n')
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-11}")
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == [] and not [
        e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta
    ]
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-31.00")
    (billed / "rules" / "customers.yaml").write_text(
        _acme(
            "{plan: p, start: 2026-10-01, end: 2026-10-11}",
            ", subscription_changes: {proration: by_day}",
        )
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    (note,) = [e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta]
    assert note.meta["credit_note"] == "CN-2026-000001"
    assert {p.account: p.units.number for p in note.postings} == {
        "Liabilities:Deferred-Revenue:Acme": Decimal("21.00"),
        "Assets:Receivables:Invoiced:Acme": Decimal("-21.00"),
    }
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-10.00")
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", date(2026, 11, 1)) == 0
    assert run_cli(billed, "check").exit_code == 0
    for table, message in (
        (
            'proration = "daily"',
            "subscription_changes.proration: expected 'by_day' or 'none', got 'daily'",
        ),
        (
            'effective = "later"',
            "subscription_changes.effective: expected 'now' or 'next_cycle', got 'later'",
        ),
        ("prorate = true", "subscription_changes.prorate: unknown key"),
    ):
        config.write_text(base + f"[subscription_changes]\n{table}\n")
        refused = run_cli(billed, "post", "--through", "2026-10-31")
        assert refused.exit_code == 2
        (line,) = refused.output.strip().splitlines()
        assert "meterbook.toml: " in line and message in line, line


def test_a_goodwill_note_before_a_cut_under_no_proration_follows_the_cut_cycle(
    billed: Path,
) -> None:
    """``proration: none``: the cut cycle is billed in full and its fee recognized over the
    days it ran. A goodwill note of 9.30 on October's fee (Oct 1, before any recognition: all
    9.30 deferred) is taken out of the fee's recognition over the rest of the cycle *as it
    now runs*, at its accrual points. acme then cancels from Oct 11: the cycle is [Oct 1,
    Oct 11), its one accrual point Oct 10, where the 31.00 is recognized and the note's 9.30
    taken out: 31.00 − 9.30 = 21.70 of revenue, deferred revenue −31.00 + 9.30 + 21.70 = 0
    on Oct 11 (not a debit of 9.30 waiting for the old cycle's Oct 31), nothing else
    credited. A second note of 1.00 on the fee on Oct 20, after the cut cycle ended, is
    contra-revenue in full (Income:Credit-Notes 1.00: nothing of the fee is deferred any
    more); the call of Oct 3 is billed on Oct 11, as before.
    """
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01}", ", subscription_changes: {proration: none}")
    )
    goodwill = ("--reason", "goodwill", "--line", "1")
    first = run_cli(
        billed, "credit", "INV-2026-000001", "--amount", "9.30", *goodwill, "--date", "2026-10-01"
    )
    assert first.exit_code == 0, first.output
    (billed / "rules" / "customers.yaml").write_text(
        _acme(
            "{plan: p, start: 2026-10-01, end: 2026-10-11}",
            ", subscription_changes: {proration: none}",
        )
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    deferred, revenue = "Liabilities:Deferred-Revenue:Acme", "Income:Subscriptions:P"
    assert balance(entries, deferred, date(2026, 10, 11)) == 0
    assert balance(entries, revenue, date(2026, 10, 11)) == Decimal("-21.70")
    assert balance(entries, revenue, date(2026, 11, 1)) == Decimal("-21.70")
    second = run_cli(
        billed, "credit", "INV-2026-000001", "--amount", "1.00", *goodwill, "--date", "2026-10-20"
    )
    assert second.exit_code == 0, second.output
    assert run_cli(billed, "invoice", "--through", "2026-11-01").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    notes = [e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta]
    assert [n.meta["credit_note"] for n in notes if "reason" in n.meta] == [
        "CN-2026-000001",
        "CN-2026-000002",
    ]
    assert balance(entries, deferred, date(2026, 11, 1)) == 0
    assert balance(entries, "Income:Credit-Notes", date(2026, 11, 1)) == Decimal("1.00")
    assert run_cli(billed, "trace", "INV-2026-000001").exit_code == 0
    assert run_cli(billed, "check").exit_code == 0


def test_trace_checks_a_frozen_accrual_whose_cycle_kept_no_line(tmp_path: Path) -> None:
    """Found by the simulator (seed 60097). acme is on ``u`` (usage only, 0.10 a call) from
    Sep 15, calendar cycles, and makes no call; September is closed (nothing to invoice: no
    zero invoice). On Oct 1 acme is moved to ``p`` (31.00 a month in advance) from Sep 16,
    backdated: ``u``'s cycle is now [Sep 15, Sep 16), with nothing to bill, and ``p``'s first
    cycle [Sep 16, Oct 1) is 15 of 30 days: 31.00 × 15 ÷ 30 = 15.50. Both would be invoiced
    on Sep 16, in the sealed month, so they move to the first open day: INV-2026-000001
    (Oct 1) bills 15.50 + October's 31.00 = 46.50 and freezes ``u``'s cycle (its accrual of
    Sep 15, 0 calls) without a line for it (zero lines are left off). ``trace`` checks that
    frozen accrual's evidence against the store like any other: verified.
    """
    u = "plans:\n  u:\n    currency: USD\n    charges:\n      - {meter: api_calls, model: unit, "
    u += 'unit_price: "0.10"}\n'
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS + u.removeprefix("plans:\n"),
        customers=_acme("{plan: u, start: 2026-09-15}"),
    )
    assert run_cli(root, "post", "--through", "2026-09-30").exit_code == 0
    closed = run_cli(root, "close", "2026-09")
    assert closed.exit_code == 0, closed.output
    (root / "rules" / "customers.yaml").write_text(
        _acme("{plan: u, start: 2026-09-15}, {plan: p, start: 2026-09-16}")
    )
    invoiced = run_cli(root, "invoice", "--through", "2026-10-01")
    assert invoiced.exit_code == 0, invoiced.output
    (invoice,) = open_session(root).issued_invoices()
    assert (invoice.number, invoice.date, invoice.total) == (
        "INV-2026-000001",
        date(2026, 10, 1),
        Decimal("46.50"),
    )
    assert "acme-2026-09-15" in {snap.link for snap in invoice.accruals}
    assert "acme-2026-09-15" not in invoice.cycles
    traced = run_cli(root, "trace", "INV-2026-000001")
    assert traced.exit_code == 0, traced.output
    assert "frozen accrual ^acme-2026-09-15 2026-09-15 evidence" in traced.output
    assert run_cli(root, "check").exit_code == 0


def test_a_fee_or_grant_moved_out_of_a_sealed_month_is_billed_once(tmp_path: Path) -> None:
    """Found by the simulator's fee check (seed 60097; ``check`` and ``trace`` passed).
    acme is on ``u`` (usage only) from Sep 15 and makes no call; September is closed. On
    Oct 1 acme moves to ``p`` (31.00 a month in advance) from Sep 23, backdated: ``p``'s
    first cycle [Sep 23, Oct 1) is 8 of 30 days, 31.00 × 8 ÷ 30 = 8.27, to be billed on
    Sep 23, which is sealed, so it moves to the first open day: INV-2026-000001 (Oct 1)
    bills 8.27 + October's 31.00 = 39.27. The next run (through Oct 2) issues nothing: the
    fee is billed (it used to be billed again on every next day). A grant of 20.00 dated
    Sep 20, entered on Oct 2, is billed once likewise: INV-2026-000002 (Oct 2, the day after
    acme's last invoice), then nothing. Deferred revenue after October: −39.27 − 20.00 +
    8.27 (the sealed Sep 30 point, posted on Oct 1) + 31.00 (October) = −20.00, the grant.
    ``trace`` verifies both: INV-2026-000001's re-draft leaves off the grant entered after
    it was issued, which INV-2026-000002 bills.
    """
    u = "  u:\n    currency: USD\n    charges:\n      - {meter: api_calls, model: unit, "
    u += 'unit_price: "0.10"}\n'
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS + u,
        customers=_acme("{plan: u, start: 2026-09-15}"),
    )
    assert run_cli(root, "post", "--through", "2026-09-30").exit_code == 0
    assert run_cli(root, "close", "2026-09").exit_code == 0
    subscriptions = "{plan: u, start: 2026-09-15}, {plan: p, start: 2026-09-23}"
    (root / "rules" / "customers.yaml").write_text(_acme(subscriptions))
    first = run_cli(root, "invoice", "--through", "2026-10-01")
    assert "INV-2026-000001  2026-10-01  acme" in first.output and "39.27" in first.output
    assert "issued 0 invoices" in run_cli(root, "invoice", "--through", "2026-10-02").output
    (root / "rules" / "customers.yaml").write_text(
        _acme(subscriptions, ', credits: [{amount: "20.00", granted: 2026-09-20}]')
    )
    second = run_cli(root, "invoice", "--through", "2026-10-03")
    assert "INV-2026-000002  2026-10-02  acme" in second.output and "20.00" in second.output
    assert "issued 0 invoices" in run_cli(root, "invoice", "--through", "2026-10-05").output
    invoices = open_session(root).issued_invoices()
    assert [(inv.number, inv.total) for inv in invoices] == [
        ("INV-2026-000001", Decimal("39.27")),
        ("INV-2026-000002", Decimal("20.00")),
    ]
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", date(2026, 11, 1)) == Decimal(
        "-20.00"
    )
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-39.27")
    assert run_cli(root, "check").exit_code == 0
    for number in ("INV-2026-000001", "INV-2026-000002"):
        assert run_cli(root, "trace", number).exit_code == 0


def test_trace_counts_a_free_tier_quantity_under_late_usage(tmp_path: Path) -> None:
    """Found by the simulator (seed 60228). Plan ``g``: 31.00 a month in advance, calls free
    up to 10, then 1.00 each. acme makes 5 calls Sep 1–5: September's accrual records 5
    calls for 0.00 (no revenue posting for the meter, the quantity only in ``quantities``);
    INV-2026-000002 (Oct 1) freezes the cycle. 8 calls dated Sep 20 arrive late: 13 calls,
    (13 − 10) × 1.00 = 3.00, posted as late usage of +8 calls on Oct 1. ``trace`` of the
    cycle adds the late 8 to the accrual's 5 (it read 8, and said the store's 13 differs)."""
    plans = (
        "plans:\n  g:\n    currency: USD\n"
        '    base_fee: {amount: "31.00", timing: advance}\n'
        "    charges:\n      - meter: api_calls\n        model: graduated\n        tiers:\n"
        '          - {up_to: 10, unit_price: "0"}\n          - {unit_price: "1.00"}\n'
    )
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=plans,
        customers=_acme("{plan: g, start: 2026-09-01}"),
    )
    session = open_session(root)
    insert_events(session.engine, calls("acme", [f"2026-09-0{d}" for d in range(1, 6)]))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    insert_events(session.engine, calls("acme", ["2026-09-20"] * 8, "late"))
    assert run_cli(root, "post", "--through", "2026-10-05").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    (late,) = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late")]
    assert (late.date, late.meta["quantities"]) == (date(2026, 10, 1), "api_calls=8")
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 10, 2)) == Decimal("-3.00")
    traced = run_cli(root, "trace", "^acme-2026-09-01")
    assert traced.exit_code == 0, traced.output
    assert run_cli(root, "check").exit_code == 0


def test_an_invoice_that_bills_part_of_a_sealed_months_catch_up_traces(root: Path) -> None:
    """Found by the simulator (seed 61007). September is closed with no usage (cal's cycle
    [Sep 1, Oct 1) carries 0.00). Two calls dated Sep 29 and 30 then arrive: September is
    sealed, so they are caught up on Oct 1. INV-2026-000001 (Oct 1) bills them: 2 × 0.10 =
    0.20. A third call dated Sep 30 arrives after the invoice. The books regenerate the
    catch-up from the store: one late adjustment "now − sealed" = 0.30 − 0.00 = 0.30 on Oct 1,
    of which the invoice billed 0.20; the 0.10 waits in unbilled revenue for the next invoice.

    - Income:Usage −0.30, Unbilled:Cal 0.30 − 0.20 = 0.10, Receivable 0.20 on Oct 2;
    - ``trace INV-2026-000001`` is verified: the sealed month's 0.00 + the catch-up's 0.30 =
      the store's 0.30, and the invoice's 0.20 lies between them (it read invoice 0.20 +
      late 0.30 ≠ store 0.30: NOT verified);
    - ``check`` passes.
    """
    assert run_cli(root, "post", "--through", "2026-09-30").exit_code == 0
    closed = run_cli(root, "close", "2026-09")
    assert closed.exit_code == 0, closed.output
    session = open_session(root)
    insert_events(session.engine, calls("cal", ["2026-09-29", "2026-09-30"]))
    invoiced = run_cli(root, "invoice", "--through", "2026-10-01")
    assert invoiced.exit_code == 0 and "0.20 USD" in invoiced.output, invoiced.output
    insert_events(session.engine, calls("cal", ["2026-09-30"], "after"))
    assert run_cli(root, "post", "--through", "2026-10-01").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, USAGE, date(2026, 10, 2)) == Decimal("-0.30")
    assert balance(entries, UNBILLED, date(2026, 10, 2)) == Decimal("0.10")
    assert balance(entries, RECEIVABLE, date(2026, 10, 2)) == Decimal("0.20")
    traced = run_cli(root, "trace", "INV-2026-000001")
    assert traced.exit_code == 0, traced.output
    assert run_cli(root, "check").exit_code == 0


def test_an_end_taken_back_charges_the_added_days_from_the_billed_end(tmp_path: Path) -> None:
    """Found by the simulator (seed 61231). acme is on ``p`` (31.00 a month in advance) from
    Oct 10, cycles from its start, ending Oct 20: INV-2026-000001 bills [Oct 10, Oct 20), 31.00
    × 10 ÷ 31 = 10.00, into deferred revenue. acme then takes the end back: the cycle is
    [Oct 10, Nov 10) again, 31.00, recognized at 1.00 a day. The 21.00 the longer cycle adds
    is a debit adjustment dated Oct 20, where the billed days run out (unbilled 21.00 /
    deferred −21.00), so deferred revenue never holds a debit:

    - Oct 31 accrual recognizes 22 days, 22.00: deferred −10.00 − 21.00 + 22.00 = −9.00 on
      Nov 1 (dated on the new cycle's last day, Nov 9, the charge left +12.00, a debit);
    - Nov 10: deferred 0, revenue 31.00, unbilled 21.00 until the next invoice bills it.
    """
    customers = "customers:\n  acme: {currency: USD, billing_anchor: start, subscriptions: [%s]}\n"
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS,
        customers=customers % "{plan: p, start: 2026-10-10, end: 2026-10-20}",
    )
    invoiced = run_cli(root, "invoice", "--through", "2026-10-10")
    assert invoiced.exit_code == 0 and "10.00 USD" in invoiced.output, invoiced.output
    (root / "rules" / "customers.yaml").write_text(customers % "{plan: p, start: 2026-10-10}")
    posted = run_cli(root, "post", "--through", "2026-11-09")
    assert posted.exit_code == 0, posted.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    charge = next(
        e for e in entries if isinstance(e, data.Transaction) and "DA-2026-000001" in e.links
    )
    assert charge.date == date(2026, 10, 20)
    deferred, revenue = "Liabilities:Deferred-Revenue:Acme", "Income:Subscriptions:P"
    assert balance(entries, deferred, date(2026, 11, 1)) == Decimal("-9.00")
    assert balance(entries, revenue, date(2026, 11, 1)) == Decimal("-22.00")
    assert balance(entries, deferred, date(2026, 11, 10)) == 0
    assert balance(entries, revenue, date(2026, 11, 10)) == Decimal("-31.00")
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 11, 10)) == Decimal(
        "21.00"
    )
    assert run_cli(root, "trace", "INV-2026-000001").exit_code == 0
    assert run_cli(root, "check").exit_code == 0


def test_a_charge_for_added_days_is_not_dated_before_an_invoice_already_issued(
    tmp_path: Path,
) -> None:
    """Found by the simulator (seed 61975). acme is on ``p`` (31.00 a month in advance,
    calendar cycles) from Oct 1, ending Oct 7: INV-2026-000001 (Oct 1) bills [Oct 1, Oct 7),
    31.00 × 6 ÷ 31 = 6.00. A prepaid grant of 35.00 on Oct 12 is billed by INV-2026-000002
    (Oct 12). Then the end moves to Oct 29: [Oct 1, Oct 29) is 28 days, 28.00, so 22.00 more
    is charged. The billed days ran out on Oct 7, but an invoice was issued since without
    that charge: the debit adjustment is dated Oct 12 (a charge is billed by the customer's
    first invoice dated after it), so INV-2026-000002's re-draft does not take it in
    (dated Oct 7, ``trace INV-2026-000002`` found a 22.00 line the invoice lacks), and the
    next invoice (Nov 1) bills it: 22.00 on top of November's nothing."""
    customers = (
        "customers:\n  acme: {currency: USD, billing_anchor: calendar, subscriptions: [%s],\n"
        '    credits: [{amount: "35.00", granted: 2026-10-12, expires: 2026-12-01}]}\n'
    )
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS,
        customers=customers % "{plan: p, start: 2026-10-01, end: 2026-10-07}",
    )
    invoiced = run_cli(root, "invoice", "--through", "2026-10-12")
    assert invoiced.exit_code == 0 and "6.00 USD" in invoiced.output, invoiced.output
    assert "35.00 USD" in invoiced.output, invoiced.output
    (root / "rules" / "customers.yaml").write_text(
        customers % "{plan: p, start: 2026-10-01, end: 2026-10-29}"
    )
    posted = run_cli(root, "post", "--through", "2026-10-31")
    assert posted.exit_code == 0, posted.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    charge = next(
        e for e in entries if isinstance(e, data.Transaction) and "DA-2026-000001" in e.links
    )
    assert charge.date == date(2026, 10, 12)
    assert sum(p.units.number for p in charge.postings if p.units.number > 0) == Decimal("22.00")
    traced = run_cli(root, "trace", "INV-2026-000002")
    assert traced.exit_code == 0, traced.output
    later = run_cli(root, "invoice", "--through", "2026-11-01")
    assert later.exit_code == 0 and "22.00 USD" in later.output, later.output
    assert run_cli(root, "check").exit_code == 0


FREE_TIER_PLANS = """\
plans:
  pro:
    currency: USD
    base_fee: {amount: "30.00", timing: advance}
    charges:
      - meter: tokens
        model: graduated
        tiers:
          - {up_to: 1000, unit_price: "0"}
          - {unit_price: "0.02"}
"""


@pytest.mark.parametrize("sealed", [False, True])
def test_late_usage_in_a_free_tier_is_explained_not_a_difference(
    tmp_path: Path, sealed: bool
) -> None:
    """Found by the simulator (seed 70344). ann is on ``pro`` (30.00 a month in advance, the
    first 1,000 tokens free) from Sep 1, calendar cycles. 100 tokens on Sep 5; INV-2026-000002
    (Oct 1) freezes September's accrual at 100 tokens, 0.00. 250 tokens dated Sep 20 then
    arrive: 350 tokens still cost 0.00, so no late entry moves any amount and none is posted.
    ``trace`` of the cycle and of the invoice are verified, the quantity (books 100, store
    350) and the evidence explained as usage priced at 0 that arrived after the invoice (they
    were differences: NOT verified); ``check`` passes. Likewise when September was closed
    before the tokens arrived (seed 67012): the cycle's trace explains the quantity by the
    seal, and the invoice's frozen accrual by the cycle's trace."""
    from ledger.events import Event, parse_time
    from tests.support.workspaces import METERS_CALLS_TOKENS

    def tokens(day: str, n: int, i: int) -> Event:
        return Event.build(
            source="t",
            id=f"ann-tok{i}",
            customer="ann",
            type="llm.completion",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={"tokens": n},
        )

    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=FREE_TIER_PLANS,
        customers="customers:\n  ann: {currency: USD, billing_anchor: calendar, "
        "subscriptions: [{plan: pro, start: 2026-09-01}]}\n",
    )
    session = open_session(root)
    insert_events(session.engine, [tokens("2026-09-05", 100, 1)])
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    if sealed:
        assert run_cli(root, "close", "2026-09").exit_code == 0
    insert_events(session.engine, [tokens("2026-09-20", 250, 2)])
    assert run_cli(root, "post", "--through", "2026-10-05").exit_code == 0
    cycle = run_cli(root, "trace", "ann-2026-09-01")
    assert cycle.exit_code == 0, cycle.output
    assert "tokens quantity: books 100, store 350" in cycle.output
    assert ("is sealed" if sealed else "priced at 0") in cycle.output
    invoice = run_cli(root, "trace", "INV-2026-000002")
    assert invoice.exit_code == 0, invoice.output
    assert run_cli(root, "check").exit_code == 0


def test_a_cancellation_taken_back_after_its_credit_charges_from_the_credited_end(
    tmp_path: Path,
) -> None:
    """Found by the simulator (seed 64036). acme is on ``p`` (31.00 a month in advance) from
    Oct 10, cycles from its start: INV-2026-000001 bills [Oct 10, Nov 10), 31.00. acme
    cancels from Oct 20: CN-2026-000001 credits 31.00 − 10.00 = 21.00 on Oct 19. Then the
    cancellation is taken back: the cycle is [Oct 10, Nov 10) again and DA-2026-000001
    charges the 21.00 back. The days billed, as the credit note left them, ran out on Oct 20,
    so the charge is dated Oct 20 (dated on the cycle's last day, Nov 9, it left deferred
    revenue a debit of −31.00 + 21.00 + 22.00 = 12.00 after October's 22 recognized days):

    - Nov 1: deferred −31.00 + 21.00 − 21.00 + 22.00 = −9.00, revenue 22.00;
    - Nov 10: deferred 0, revenue 31.00.
    """
    customers = "customers:\n  acme: {currency: USD, billing_anchor: start, subscriptions: [%s]}\n"
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS,
        customers=customers % "{plan: p, start: 2026-10-10}",
    )
    assert run_cli(root, "invoice", "--through", "2026-10-10").exit_code == 0
    (root / "rules" / "customers.yaml").write_text(
        customers % "{plan: p, start: 2026-10-10, end: 2026-10-20}"
    )
    assert run_cli(root, "post", "--through", "2026-10-19").exit_code == 0
    (root / "rules" / "customers.yaml").write_text(customers % "{plan: p, start: 2026-10-10}")
    posted = run_cli(root, "post", "--through", "2026-11-09")
    assert posted.exit_code == 0, posted.output
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    dated = {
        link: e.date
        for e in entries
        if isinstance(e, data.Transaction)
        for link in e.links
        if link.startswith(("CN-", "DA-"))
    }
    assert dated == {"CN-2026-000001": date(2026, 10, 19), "DA-2026-000001": date(2026, 10, 20)}
    deferred, revenue = "Liabilities:Deferred-Revenue:Acme", "Income:Subscriptions:P"
    assert balance(entries, deferred, date(2026, 11, 1)) == Decimal("-9.00")
    assert balance(entries, revenue, date(2026, 11, 1)) == Decimal("-22.00")
    assert balance(entries, deferred, date(2026, 11, 10)) == 0
    assert balance(entries, revenue, date(2026, 11, 10)) == Decimal("-31.00")
    assert run_cli(root, "check").exit_code == 0


def test_a_cut_no_more_than_a_goodwill_note_needs_no_correction_and_traces(billed: Path) -> None:
    """Found by the simulator (seed 68107, on an add-on's fee). acme's October fee, 31.00
    (INV-2026-000001), gets a goodwill note of 21.00 on Oct 1 (CN-2026-000001). acme then
    cancels from Oct 11: the fee is 31.00 × 10 ÷ 31 = 10.00, and the note already took 21.00
    out of it, so the correction is 10.00 − 31.00 + 21.00 = 0: no document. ``trace`` of the
    invoice bridges its fee line (31.00, the store now 10.00) with the note's 21.00 (it found
    no correction to explain it: NOT verified). Deferred revenue −31.00 + 21.00 + 10.00 = 0
    and revenue 10.00 when the cut cycle ends; acme owes 31.00 − 21.00 = 10.00."""
    note = run_cli(
        billed,
        *("credit", "INV-2026-000001", "--line", "1", "--amount", "21.00"),
        *("--reason", "goodwill", "--date", "2026-10-01"),
    )
    assert note.exit_code == 0, note.output
    (billed / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-11}")
    )
    assert run_cli(billed, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(billed / "books" / "main.beancount")
    assert errors == []
    assert not [
        e for e in entries if isinstance(e, data.Transaction) and "CN-2026-000002" in e.links
    ]
    day = date(2026, 10, 11)
    assert balance(entries, "Liabilities:Deferred-Revenue:Acme", day) == 0
    assert balance(entries, "Income:Subscriptions:P", day) == Decimal("-10.00")
    traced = run_cli(billed, "trace", "INV-2026-000001")
    assert traced.exit_code == 0, traced.output
    assert "nothing left to correct" in traced.output
    assert run_cli(billed, "check").exit_code == 0


def test_a_cycle_billed_by_a_later_invoice_is_not_in_an_earlier_invoices_redraft(
    root: Path,
) -> None:
    """Found by the simulator (seed 73142). cal has no usage in September: its cycle
    [Sep 1, Oct 1) has nothing to bill and September is closed. 3 calls in October:
    INV-2026-000001 (Nov 1) bills 0.30 for October. Then a call of Sep 20 arrives: September's
    cycle now bills 0.10, on INV-2026-000002, dated Oct 1 (the first open day; its number after
    the Nov 1 invoice's). ``trace INV-2026-000001`` re-drafts it with the invoices issued before
    it, which do not include the one that billed September: September's 0.10 is not its to
    re-draft (it found a 0.10 line the invoice lacks: NOT verified). Both traces verified,
    ``check`` passes, receivable 0.40."""
    assert run_cli(root, "post", "--through", "2026-09-30").exit_code == 0
    assert run_cli(root, "close", "2026-09").exit_code == 0
    session = open_session(root)
    insert_events(session.engine, calls("cal", ["2026-10-05", "2026-10-06", "2026-10-07"]))
    first = run_cli(root, "invoice", "--through", "2026-11-01")
    assert first.exit_code == 0 and "0.30 USD" in first.output, first.output
    insert_events(session.engine, calls("cal", ["2026-09-20"], "late"))
    second = run_cli(root, "invoice", "--through", "2026-11-01")
    assert second.exit_code == 0 and "INV-2026-000002  2026-10-01" in second.output, second.output
    for number in ("INV-2026-000001", "INV-2026-000002"):
        traced = run_cli(root, "trace", number)
        assert traced.exit_code == 0, traced.output
    assert run_cli(root, "check").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, RECEIVABLE, date(2026, 11, 2)) == Decimal("0.40")


def test_a_plan_change_taken_back_twice_reverses_the_unbilled_charge(billed: Path) -> None:
    """acme's October fee on ``p`` (31.00, INV-2026-000001 of Oct 1) becomes [Oct 1, Oct 2),
    1.00, by a plan change to ``s`` from Oct 2, set before the invoice (so INV-2026-000001 bills
    1.00: the fixture's invoice is re-done here). The change is then taken back (``p`` all
    month: DA-2026-000001 charges 30.00 on Oct 2, unbilled) and made again (``s`` from Oct 2:
    the fee is 1.00 again). The 30.00 was never billed: taking it back reverses the unbilled
    charge by DA-2026-000002 of −30.00, dated Oct 2 like the charge, leaving no refund liability
    and no debit in deferred revenue (found by the simulator, seed 74120: a credit note of 30.00
    dated Oct 1 credited the receivable 1.00 and a refund liability 29.00, for money never
    billed). The Nov 1 invoice bills both, +30.00 and −30.00, beside s's November fee 15.50;
    the receivable is 1.00 + 15.00 (s from Oct 2, 30 of 31 days of 15.50) + 15.50 = 31.50."""
    root = billed.parent / "again"
    change = "{plan: p, start: 2026-10-01}, {plan: s, start: 2026-10-02}"
    write_workspace(root, meters=METERS_CALLS, plans=FEE_PLANS, customers=_acme(change))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    customers = root / "rules" / "customers.yaml"
    customers.write_text(_acme("{plan: p, start: 2026-10-01}"))
    assert run_cli(root, "post", "--through", "2026-10-08").exit_code == 0
    customers.write_text(_acme(change))
    assert run_cli(root, "post", "--through", "2026-10-08").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Liabilities:Refunds:Acme", date(2026, 10, 9)) == 0
    for day in (date(2026, 10, 2), date(2026, 10, 3)):
        assert balance(entries, "Liabilities:Deferred-Revenue:Acme", day) <= 0
    session = open_session(root)
    assert load_credit_notes(session.engine) == []
    assert [(a.document, a.date, a.amount) for a in load_adjustments(session.engine)] == [
        ("DA-2026-000001", date(2026, 10, 2), Decimal("30.00")),
        ("DA-2026-000002", date(2026, 10, 2), Decimal("-30.00")),
    ]
    assert run_cli(root, "invoice", "--through", "2026-11-01").exit_code == 0
    november = load_invoices(session.engine)[-1]
    assert [(ln.kind, ln.amount) for ln in november.lines if ln.kind != "usage"] == [
        ("base_fee", Decimal("15.50")),
        ("rerate", Decimal("30.00")),
        ("rerate", Decimal("-30.00")),
    ]
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 11, 2)) == Decimal(
        "31.50"
    )
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 11, 2)) == 0
    assert run_cli(root, "check").exit_code == 0


def test_a_part_billed_catch_up_over_a_sealed_accrual_with_usage_traces(root: Path) -> None:
    """Found by the simulator (seed 75310), 61007's case with usage in the sealed month. One
    call on Sep 10 is accrued and sealed with September (cal's cycle [Sep 1, Oct 1): 0.10,
    quantity 1). Two calls of Sep 29 and 30 arrive: INV-2026-000001 (Oct 1) bills 3 × 0.10 =
    0.30. A call of Sep 30 arrives after it. The late adjustment for sealed September is "now −
    sealed" = 0.40 − 0.10 = 0.30, quantity 4 − 1 = 3. ``trace INV-2026-000001`` is verified:
    sealed + catch-up = store for the amount (0.10 + 0.30 = 0.40) and the quantity (1 + 3 = 4),
    the invoice's 0.30 and 3 between them (the quantity read invoice 3 + late 3 ≠ store 4).
    Receivable 0.30, unbilled 0.10 + 0.30 − 0.30 = 0.10 on Oct 2."""
    session = open_session(root)
    insert_events(session.engine, calls("cal", ["2026-09-10"]))
    assert run_cli(root, "post", "--through", "2026-09-30").exit_code == 0
    assert run_cli(root, "close", "2026-09").exit_code == 0
    insert_events(session.engine, calls("cal", ["2026-09-29", "2026-09-30"], "late"))
    invoiced = run_cli(root, "invoice", "--through", "2026-10-01")
    assert invoiced.exit_code == 0 and "0.30 USD" in invoiced.output, invoiced.output
    insert_events(session.engine, calls("cal", ["2026-09-30"], "after"))
    assert run_cli(root, "post", "--through", "2026-10-01").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, RECEIVABLE, date(2026, 10, 2)) == Decimal("0.30")
    assert balance(entries, UNBILLED, date(2026, 10, 2)) == Decimal("0.10")
    traced = run_cli(root, "trace", "INV-2026-000001")
    assert traced.exit_code == 0, traced.output
    assert run_cli(root, "check").exit_code == 0


def test_a_charge_for_added_days_is_dated_before_a_top_ups_invoice(tmp_path: Path) -> None:
    """Found by the simulator (seed 86041). acme on ``p`` (31.00 a month in advance) ended from
    Oct 2: INV-2026-000001 of Oct 1 bills [Oct 1, Oct 2), 1.00. A 20.00 top-up on Oct 5 is
    INV-2026-000002 of Oct 5 (a top-up's own invoice). The end is then moved to Oct 3: [Oct 1,
    Oct 3) is 2.00, DA-2026-000001 charges 1.00 from Oct 2, where the billed day ran out. A
    charge is not dated before an invoice issued since (that invoice did not bill it), but a
    top-up's invoice bills nothing else, so it does not count: dated Oct 5, deferred revenue
    held a 1.00 debit from Oct 2 (−1.00 billed, 2.00 recognized by Oct 2) to Oct 5."""
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=FEE_PLANS,
        customers=_acme("{plan: p, start: 2026-10-01, end: 2026-10-02}"),
    )
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    assert (
        run_cli(root, "topup", "acme", "--amount", "20.00", "--date", "2026-10-05").exit_code == 0
    )
    assert run_cli(root, "invoice", "--through", "2026-10-05").exit_code == 0
    (root / "rules" / "customers.yaml").write_text(
        _acme("{plan: p, start: 2026-10-01, end: 2026-10-03}")
    )
    assert run_cli(root, "post", "--through", "2026-10-08").exit_code == 0
    adjustments = load_adjustments(open_session(root).engine)
    assert [(a.document, a.date, a.amount) for a in adjustments] == [
        ("DA-2026-000001", date(2026, 10, 2), Decimal("1.00"))
    ]
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    for day in (date(2026, 10, 3), date(2026, 10, 5), date(2026, 10, 9)):
        assert balance(entries, "Liabilities:Deferred-Revenue:Acme", day) <= 0, day
    assert run_cli(root, "check").exit_code == 0
