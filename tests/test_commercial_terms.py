"""All four commercial terms of issue 18 on one customer over a quarter, by hand.

acme (calendar cycles) is on plan ``p`` from 2026-10-01: 31.00 a month in advance and 0.10
per API call. Beside it runs the add-on ``support`` on plan ``a``: 10.00 a month in advance,
from 2026-10-15, anchored on its own start ([Oct 15, Nov 15), [Nov 15, Dec 15), …). Its
terms: ``launch``, 20 % off the whole invoice for three cycles from Oct 1 (each subscription
gets three: Oct, Nov, Dec and Oct 15, Nov 15, Dec 15); ``invoice_threshold: "5.00"``; and a
20.00 wallet top-up bought on Oct 10 with ``meterbook topup`` (no expiry).

Usage: 10 calls a day Oct 11–30 (200); 5 a day Nov 2–11 (50), 25 a day Nov 16–19 (100),
5 a day Nov 21–30 (50): 200 in November; 5 a day Dec 1–4 (20). Today is 2026-12-05.

The runs, in order: ``topup``; ``invoice --through`` Oct 10, Oct 15; ``close 2026-10``;
``invoice --through`` Nov 1, Nov 15, Nov 20; ``close 2026-11``; ``invoice --through`` Dec 5.

Each 20 % is round(0.2 × gross): the fee 31.00 → 6.20, the add-on 10.00 → 2.00, a month's
200 calls 20.00 → 4.00. Credit draws usage net of its discount. The threshold counts usage
through D − 1 net of discounts and credit drawn, less earlier threshold invoices::

    INV-2026-000001  Oct 1   p fee Oct 31.00, discount −6.20                          24.80
    INV-2026-000002  Oct 10  wallet top-up topup:acme/2026-10-10/20.00               20.00
    INV-2026-000003  Oct 15  a fee Oct 15–Nov 14 10.00, discount −2.00                 8.00
      (no threshold invoice on Oct 31: 200 calls through Oct 30 are 16.00 net, all
       covered by the wallet's 20.00)
    INV-2026-000004  Nov 1   Oct usage 20.00, discount −4.00, credit −16.00 (= 0.00);
                             p fee Nov 31.00, discount −6.20                          24.80
    INV-2026-000005  Nov 15  a fee Nov 15–Dec 14 10.00, discount −2.00                 8.00
      (Nov 15 checks 50 calls through Nov 14: 5.00 − 1.00 − 4.00 of credit = 0.00)
    INV-2026-000006  Nov 20  threshold: 150 calls 15.00, discount −3.00,
                             credit −4.00 (the wallet's last)                          8.00
      (Nov 30 checks 195 calls: 19.50 − 3.90 − 4.00 − 8.00 = 3.60 < 5.00: none)
    INV-2026-000007  Dec 1   Nov usage 20.00, discount −4.00, credit −4.00,
                             threshold billed −8.00 (= 4.00); p fee Dec 24.80          28.80
      (Dec 5 checks 20 calls: 2.00 − 0.40 = 1.60 < 5.00: none)

Recognition: the main fee whole at each month end (31.00 less 6.20 of discount); the add-on
by day, its discount on the same schedule: Oct 31 17/31 days: round(10.00 × 17/31) = 5.48,
round(2.00 × 17/31) = 1.10; Nov 14 the rest 4.52 and 0.90; Nov 30 16/30 days of the second
cycle: 5.33 and 1.07. The wallet: 16.00 drawn on Oct 31 (4.00 left), 4.00 by the threshold
invoice's accrual of Nov 19 (0.00 left). Balances at each month end (start of the next day):

    account                              Oct 31     Nov 30     Dec 5
    Assets:Receivables:Invoiced:Acme      52.80      93.60    122.40
    Assets:Receivables:Unbilled:Acme       0.00       4.00      0.00
    Assets:Contract-Assets:Acme            0.00       0.00      0.00
    Liabilities:Deferred-Revenue:Acme     -7.62      -3.74    -28.54
    Income:Usage:Api-Calls               -20.00     -40.00
    Income:Subscriptions:P               -31.00     -62.00
    Income:Subscriptions:A                -5.48     -15.33
    Income:Discounts                      11.30      23.47

Deferred on Oct 31 is the wallet's 4.00 + the add-on's 8.00 − 4.38 recognized; on Nov 30 the
add-on's 8.00 − 4.26 (the wallet is empty). Net revenue: October 20.00 + 31.00 + 5.48 −
11.30 = 45.18 (= 24.80 + 16.00 + 4.38 out of deferred revenue); November 20.00 + 31.00 +
4.52 + 5.33 − 12.17 = 48.68. The seven invoices add up to 122.40, the receivable.
"""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data

from ledger.books import load_books
from ledger.facts.invoices import Invoice, load_invoices
from ledger.rating import undrawn_credit
from tests.support.workspaces import (
    METERS_CALLS,
    balance,
    calls,
    insert_events,
    module_scope,
    open_session,
    run_cli,
    write_workspace,
)

PLANS = """\
plans:
  p:
    currency: USD
    base_fee: {amount: "31.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
  a:
    currency: USD
    base_fee: {amount: "10.00", timing: advance}
"""
CUSTOMERS = """\
customers:
  acme:
    currency: USD
    billing_anchor: calendar
    invoice_threshold: "5.00"
    subscriptions:
      - {plan: p, start: 2026-10-01}
      - {id: support, plan: a, start: 2026-10-15, billing_anchor: start}
    discounts:
      - {id: launch, percent: "20", cycles: 3, start: 2026-10-01}
"""
D = Decimal
RECEIVABLE = "Assets:Receivables:Invoiced:Acme"
UNBILLED = "Assets:Receivables:Unbilled:Acme"
CONTRACT = "Assets:Contract-Assets:Acme"
DEFERRED = "Liabilities:Deferred-Revenue:Acme"
USAGE = "Income:Usage:Api-Calls"
FEE_P = "Income:Subscriptions:P"
FEE_A = "Income:Subscriptions:A"
DISCOUNTS = "Income:Discounts"
KEY = "topup:acme/2026-10-10/20.00"
#: ``meterbook credit`` of line 1 (usage) on Dec 5, the invoice's number to follow
CREDIT = ("credit", "--line", "1", "--reason", "goodwill", "--date", "2026-12-05")
#: The balances of the module docstring, at the start of each day (None: not asserted).
BALANCES = {
    date(2026, 11, 1): {
        RECEIVABLE: "52.80",
        UNBILLED: "0.00",
        CONTRACT: "0.00",
        DEFERRED: "-7.62",
        USAGE: "-20.00",
        FEE_P: "-31.00",
        FEE_A: "-5.48",
        DISCOUNTS: "11.30",
    },
    date(2026, 12, 1): {
        RECEIVABLE: "93.60",
        UNBILLED: "4.00",
        CONTRACT: "0.00",
        DEFERRED: "-3.74",
        USAGE: "-40.00",
        FEE_P: "-62.00",
        FEE_A: "-15.33",
        DISCOUNTS: "23.47",
    },
    date(2026, 12, 6): {RECEIVABLE: "122.40", UNBILLED: "0.00", DEFERRED: "-28.54"},
}


def _days(days: range, per_day: int, month: int) -> list[str]:
    return [f"2026-{month:02d}-{d:02d}" for d in days for _ in range(per_day)]


@pytest.fixture(scope=module_scope)  # type: ignore[arg-type]
def quarter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace after every run of the module docstring, in its order."""
    root = write_workspace(
        tmp_path_factory.mktemp("quarter") / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
    )
    days = [
        *_days(range(11, 31), 10, 10),
        *_days(range(2, 12), 5, 11),
        *_days(range(16, 20), 25, 11),
        *_days(range(21, 31), 5, 11),
        *_days(range(1, 5), 5, 12),
    ]
    insert_events(open_session(root).engine, calls("acme", days))
    topup = run_cli(root, "topup", "acme", "--amount", "20.00", "--date", "2026-10-10")
    assert topup.exit_code == 0, topup.output
    for step in (
        ("invoice", "--through", "2026-10-10"),
        ("invoice", "--through", "2026-10-15"),
        ("close", "2026-10"),
        ("invoice", "--through", "2026-11-01"),
        ("invoice", "--through", "2026-11-15"),
        ("invoice", "--through", "2026-11-20"),
        ("close", "2026-11"),
        ("invoice", "--through", "2026-12-05"),
    ):
        result = run_cli(root, *step)
        assert result.exit_code == 0, (step, result.output)
    return root


def _invoices(root: Path) -> list[Invoice]:
    return sorted(load_invoices(open_session(root).engine), key=lambda i: i.number)


def _lines(invoice: Invoice) -> list[tuple[str, Decimal]]:
    return [(ln.kind, ln.amount) for ln in invoice.lines]


def test_seven_invoices_with_their_dates_and_totals(quarter: Path) -> None:
    """The module docstring's invoices; none by threshold on Oct 31, Nov 15, Nov 30, Dec 5."""
    assert [(i.number, i.date, i.total) for i in _invoices(quarter)] == [
        ("INV-2026-000001", date(2026, 10, 1), D("24.80")),
        ("INV-2026-000002", date(2026, 10, 10), D("20.00")),
        ("INV-2026-000003", date(2026, 10, 15), D("8.00")),
        ("INV-2026-000004", date(2026, 11, 1), D("24.80")),
        ("INV-2026-000005", date(2026, 11, 15), D("8.00")),
        ("INV-2026-000006", date(2026, 11, 20), D("8.00")),
        ("INV-2026-000007", date(2026, 12, 1), D("28.80")),
    ]


def test_each_invoice_shows_its_discount_credit_and_threshold_lines(quarter: Path) -> None:
    """Gross lines, each discount under its line, the wallet's credit and the threshold
    invoice's deduction, as the module docstring lists them."""
    inv = {i.number[-1]: _lines(i) for i in _invoices(quarter)}
    assert inv["1"] == [("base_fee", D("31.00")), ("discount", D("-6.20"))]
    assert inv["2"] == [("credit_grant", D("20.00"))]
    assert inv["3"] == [("base_fee", D("10.00")), ("discount", D("-2.00"))]
    assert inv["4"] == [
        ("usage", D("20.00")),
        ("discount", D("-4.00")),
        ("credit_applied", D("-16.00")),
        ("base_fee", D("31.00")),
        ("discount", D("-6.20")),
    ]
    assert inv["5"] == [("base_fee", D("10.00")), ("discount", D("-2.00"))]
    assert inv["6"] == [
        ("usage", D("15.00")),
        ("discount", D("-3.00")),
        ("credit_applied", D("-4.00")),
    ]
    assert inv["7"] == [
        ("usage", D("20.00")),
        ("discount", D("-4.00")),
        ("credit_applied", D("-4.00")),
        ("threshold_billed", D("-8.00")),
        ("base_fee", D("31.00")),
        ("discount", D("-6.20")),
    ]


@pytest.mark.parametrize("day", sorted(BALANCES))
def test_month_end_balances_through_beancounts_loader(quarter: Path, day: date) -> None:
    entries, errors, _ = load_books(open_session(quarter).workspace.main_file)
    assert errors == []
    got = {account: balance(entries, account, day) for account in BALANCES[day]}
    assert got == {account: D(v) for account, v in BALANCES[day].items()}


def test_the_wallet_is_drawn_16_then_4(quarter: Path) -> None:
    """The top-up: 20.00 into deferred revenue on its own invoice of Oct 10; 16.00 drawn on
    Oct 31 (4.00 left on Nov 1), the last 4.00 by the threshold invoice's accrual of Nov 19."""
    session = open_session(quarter)
    rating = session.rate(date(2026, 11, 30), {"acme"})
    moves = [(m.day, m.kind, m.amount) for m in rating.credits if m.customer == "acme"]
    assert moves == [
        (date(2026, 10, 31), "draw", D("16.00")),
        (date(2026, 11, 19), "draw", D("4.00")),
    ]
    grants = rating.grants_of(session.rules.customers["acme"])
    assert undrawn_credit(rating, grants, "acme", date(2026, 11, 1)) == {KEY: D("4.00")}
    assert undrawn_credit(rating, grants, "acme", date(2026, 11, 30)) == {KEY: D("0.00")}
    entries, _, _ = load_books(session.workspace.main_file)
    sold = [e for e in entries if isinstance(e, data.Transaction) and e.meta.get("grant") == KEY]
    assert [(e.date, e.meta["invoice"]) for e in sold] == [(date(2026, 10, 10), "INV-2026-000002")]
    assert balance(entries, DEFERRED, date(2026, 10, 11)) == D("-44.80")  # 24.80 + 20.00


def test_both_months_closed_check_and_trace_pass(quarter: Path) -> None:
    """``close`` sealed October and November (the fixture asserted exit 0); their close files
    assert the docstring's balances; ``check`` passes; ``trace`` verifies every invoice."""
    books = open_session(quarter).workspace.books_dir
    october = " ".join((books / "2026" / "2026-10.close.beancount").read_text().split())
    assert f"2026-11-01 balance {DEFERRED} -7.62 USD" in october
    assert f"2026-11-01 balance {DISCOUNTS} 11.30 USD" in october
    november = " ".join((books / "2026" / "2026-11.close.beancount").read_text().split())
    assert f"2026-12-01 balance {UNBILLED} 4.00 USD" in november
    assert f"2026-12-01 balance {DISCOUNTS} 23.47 USD" in november
    check = run_cli(quarter, "check")
    assert check.exit_code == 0, check.output
    for number in (f"INV-2026-00000{n}" for n in range(1, 8)):
        traced = run_cli(quarter, "trace", number)
        assert traced.exit_code == 0, (number, traced.output)
        assert "verified" in traced.output, (number, traced.output)


def test_the_statement_shows_the_discount_and_the_wallet(quarter: Path) -> None:
    """November's statement: 200 calls 20.00, launch −4.00, credit applied 4.00 and 0.00
    remaining; October's: credit applied 16.00, 4.00 remaining on Oct 31."""
    out = quarter / "statements"
    for cycle in ("2026-10-01", "2026-11-01"):
        result = run_cli(quarter, "statement", "acme", "--cycle", cycle, "--out", str(out))
        assert result.exit_code == 0, result.output
    november = (out / "acme-2026-11-01.html").read_text()
    assert "Discount launch: 20% off" in november
    assert "Applied this cycle: 4.00 USD" in november
    october = (out / "acme-2026-10-01.html").read_text()
    assert "Applied this cycle: 16.00 USD" in october
    assert "remaining on 2026-10-31: 4.00 USD" in october


def test_the_deferred_schedule_holds_the_fees_net_of_their_discount(quarter: Path) -> None:
    """The deferred-revenue report of each close (and ``report deferred``) recomputes the
    books' balance: the add-on's fee is deferred net of its discount and recognized with it,
    so Oct 31 schedules 10.00 − 5.48 − (2.00 − 1.10) = 3.62 of it (and the wallet's 4.00),
    Nov 30 10.00 − 5.33 − (2.00 − 1.07) = 3.74: no difference with the books. (It scheduled
    the gross fee, 4.52 and 4.67, a difference of −0.90 and −0.93.)"""
    books = open_session(quarter).workspace.books_dir / "2026"
    assert (
        "| acme | USD | 3.62 | 4.00 | 7.62 | 7.62 | 0.00 |"
        in (books / "2026-10.close.md").read_text()
    )
    assert (
        "| acme | USD | 3.74 | 0.00 | 3.74 | 3.74 | 0.00 |"
        in (books / "2026-11.close.md").read_text()
    )
    report = run_cli(quarter, "report", "deferred", "--month", "2026-11")
    assert report.exit_code == 0, report.output
    rows = [" ".join(line.split()) for line in report.output.splitlines()]
    assert "acme USD 3.74 0.00 3.74 3.74 0.00 0.00" in rows
    assert "2026-12 acme USD base fee 2026-11-15/2026-12-15 (INV-2026-000005) 3.74" in rows


def test_usage_billed_by_threshold_is_creditable_once(quarter: Path, tmp_path: Path) -> None:
    """November's usage is billed 8.00 on INV-2026-000006 (creditable there: 8.00) and the
    rest on INV-2026-000007, whose usage line shows the cycle's cumulative 20.00 less 4.00 of
    discount and deducts the 8.00: it may be credited 16.00 − 8.00 = 8.00 (the wallet's 4.00
    counted in, as on any invoice whose credit applied paid for usage), not 16.00, or the
    8.00 would be credited twice (24.00 on 16.00 of net usage) without ``--force``."""
    root = tmp_path / "ws"
    shutil.copytree(quarter, root)
    assert run_cli(root, *CREDIT, "INV-2026-000006", "--amount", "8.00").exit_code == 0
    refused = run_cli(root, *CREDIT, "INV-2026-000007", "--amount", "8.01")
    assert refused.exit_code == 2, refused.output
    assert "can still be credited (8.00 USD)" in refused.output
    accepted = run_cli(root, *CREDIT, "INV-2026-000007", "--amount", "8.00")
    assert accepted.exit_code == 0, accepted.output
    assert run_cli(root, "post", "--through", "2026-12-05").exit_code == 0
    checked = run_cli(root, "check")
    assert checked.exit_code == 0, checked.output


def test_a_statement_after_a_threshold_invoice_counts_the_credit_it_drew(quarter: Path) -> None:
    """November's statement as of Nov 25, after INV-2026-000006 (Nov 20) drew the wallet's last
    4.00 through Nov 19, before the month end draws anything. 175 calls in 25 days (50 + 100 +
    25) run to 175 ÷ 25 × 30 = 210 calls: 21.00; the fee 31.00 in advance; 20 % off both,
    4.20 + 6.20 = 10.40; credit: the 4.00 the threshold invoice drew (none left after it):
    21.00 + 31.00 − 10.40 − 4.00 = 37.60. Counting the month ends' draws only, the projection
    left that 4.00 out (41.60: the wallet spent twice over, once on INV-2026-000006 and not
    at all here)."""
    from ledger.cycles import cycle_at
    from ledger.statements import build_statement

    session = open_session(quarter)
    cycle = cycle_at(session.rules.customers["acme"], session.rules.plans, date(2026, 11, 25))
    assert cycle is not None and cycle.plan == "p"
    statement = build_statement(session, cycle, today=date(2026, 11, 25))
    projection = statement.projection
    assert [(c.quantity, c.projected_quantity) for c in projection.charges] == [(175, 210)]
    assert (projection.usage, projection.base_fee, projection.discount) == (
        D("21.00"),
        D("31.00"),
        D("10.40"),
    )
    assert projection.credit == D("4.00")
    assert projection.total == D("37.60")
