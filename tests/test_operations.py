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
from tests.support import (
    METERS_CALLS,
    balance,
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


def test_late_usage_between_invoice_and_close_neither_holds_nor_blocks_the_close(root: Path) -> None:
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
        "meterbook: error: 2026-08 is before the workspace's first activity (2026-09-01, the earliest "
        "subscription start, credit grant or event): nothing to close, and a sealed month cannot be reopened"]
    assert not close_path(root / "books", "2026-08").exists()
    assert sealed_months(root / "books") == set()
    assert run_cli(root, "close", "2026-06").exit_code == 2
    insert_events(session.engine, calls("cal", ["2026-07-31"], "early"))
    assert "(2026-07-31," in run_cli(root, "close", "2026-06").output
    closed = run_cli(root, "close", "2026-09")  # July's event is outside any subscription: no entries
    assert closed.exit_code == 0, closed.output
    assert sealed_months(root / "books") == {"2026-09"}


def test_close_refuses_every_month_without_any_activity(tmp_path: Path) -> None:
    """No subscription, no grant, no event: nothing can be closed (exit 2, one line)."""
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS,
                           customers="customers:\n  cal: {currency: USD}\n")
    refused = run_cli(root, "close", "2026-09")
    assert refused.exit_code == 2
    assert refused.output.startswith("meterbook: error: 2026-09: nothing to close")
    assert len(refused.output.strip().splitlines()) == 1


# --- rerate (issue 12, defect 5) ---------------------------------------------------------------


def test_a_new_version_for_a_cycle_not_invoiced_is_a_repricing_not_late_usage(tmp_path: Path) -> None:
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
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, customers=(
        "customers:\n  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: u, start: 2026-09-15}]}\n"),
        plans=PLANS.replace("0.10", "1.00"))
    session = open_session(root)
    insert_events(session.engine, calls("ann", [*(f"2026-09-{d}" for d in range(16, 21)),
                                                *(f"2026-10-0{d}" for d in range(2, 7))]))
    assert run_cli(root, "close", "2026-09").exit_code == 0
    (root / "rules" / "plans.yaml").write_text(PLANS.replace("0.10", "1.00") + (
        "    versions:\n      - effective: 2026-09-15\n"
        "        charges: [{meter: api_calls, model: unit, unit_price: \"0.80\"}]\n"))
    rerated = run_cli(root, "rerate", "--from", "2026-09-15", "--date", "2026-10-20")
    assert rerated.exit_code == 0 and "nothing to re-rate" in rerated.output
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    adjustments = [e for e in entries if isinstance(e, data.Transaction) and e.date == date(2026, 10, 1)]
    assert len(adjustments) == 1
    (adjustment,) = adjustments
    assert adjustment.narration == "Re-pricing of sealed period 2026-09: same quantities, current terms"
    assert adjustment.meta["repriced"] is True and "Late" not in adjustment.narration
    assert {p.account: p.units.number for p in adjustment.postings} == {
        "Assets:Receivables:Unbilled:Ann": Decimal("-1.00"), USAGE: Decimal("1.00")}
    assert all("quantity" not in (p.meta or {}) for p in adjustment.postings)
    assert balance(entries, "Assets:Receivables:Unbilled:Ann", date(2026, 10, 15)) == Decimal("8.00")
    assert run_cli(root, "check").exit_code == 0


def test_removing_a_version_after_a_rerate_fails_check_until_rerated(tmp_path: Path) -> None:
    """tests/test_rerate.py's workspace: acme's October invoiced 20 calls × 1.00 = 20.00
    (INV-2026-000002), beta's 10.00 (INV-2026-000003, paid). A 0.80 version from Oct 1 and
    ``rerate`` credit −4.00 (CN-2026-000001) and −2.00 (CN-2026-000002).

    Removing the version afterwards leaves both credit notes unexplained: the current
    rules give 20.00 and 10.00 again. ``check`` fails (exit 1) naming each; a ``rerate``
    with the current rules posts the differences back as debit adjustments +4.00 and
    +2.00 (DA-2026-000001, DA-2026-000002), and ``check`` passes: Income:Credit-Notes
    6.00 and the debit adjustments' −6.00 of usage revenue cancel out.
    """
    from tests.test_rerate import PLANS as RERATE_PLANS
    from tests.test_rerate import make, version

    root = make(tmp_path)
    (root / "rules" / "plans.yaml").write_text(version("0.80"))
    assert run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20").exit_code == 0
    assert run_cli(root, "check").exit_code == 0
    (root / "rules" / "plans.yaml").write_text(RERATE_PLANS)
    checked = run_cli(root, "check")
    assert checked.exit_code == 1, checked.output
    assert ("INV-2026-000002 api_calls (cycle acme-2026-10-01): reratings posted -4.00 USD (CN-2026-000001), "
            "the current rules explain 0.00") in checked.output
    assert "INV-2026-000003 api_calls (cycle beta-2026-10-01): reratings posted -2.00 USD" in checked.output
    again = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert again.exit_code == 0 and "posted 0 credit notes and 2 debit adjustments" in again.output, again.output
    assert run_cli(root, "check").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, "Income:Credit-Notes", date(2026, 11, 21)) == Decimal("6.00")
    assert balance(entries, USAGE, date(2026, 11, 21)) == Decimal("-66.00")  # 60.00 invoiced + 6.00 re-billed
