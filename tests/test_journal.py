"""Every journal builder (:mod:`ledger.journal`) on a small worked example: records in, ledger out.

As Beancount's own plugin tests do, each case shows the entries it produces as
ledger text, here printed by :mod:`beancount.parser.printer` and compared
character for character, metadata included (``cmptest.assertEqualEntries``
ignores metadata, and the metadata is half of what these builders write:
meters, quantities, ``late``, ``usage_date``, the invoice a payment names).
Where the balances carry the point, the entries are also written as a month
file and loaded with Beancount's loader, with balance assertions.

The story, one workspace (``rules_hash`` fixed to ``rules-1``):

- ``acme``: plan ``pro`` from 2026-09-15, cycles anchored on the 15th: a 30.00
  base fee billed in advance, API calls with the first 10 free then 0.05 each,
  a 20.00 minimum commitment; 14 days to pay.
- ``beta``: plan ``std`` (the same calls, nothing else), calendar months.
- ``gift``: plan ``std``, calendar months, a prepaid credit of 5.00 granted
  2026-09-01 and expiring 2026-10-15.

The builders read only account names and plans from the rules: every amount is
in the records, computed by hand next to them.

Invoices: INV-2026-000001 (gift's grant, Sep 1), INV-2026-000002 (acme's first
fee, in advance, Sep 15), INV-2026-000003 (beta's September, Oct 1),
INV-2026-000004 (acme's first cycle and its second cycle's fee, Oct 15),
INV-2026-000005 (beta's October, taxed, Nov 1).

The second half (from "the builders one at a time") takes the builders one at a time:
hand-made snapshots, invoices and credit movements in, every field of every entry out, and
the entries loaded back through Beancount's loader. The end-to-end tests (test_posting,
test_metadata, test_close) run the builders through a workspace; these state each builder's
contract field by field, so a mutant that changes one metadata key, one sign or one date is
caught by a test that runs in milliseconds (``python3 tasks.py mutation posting``, README
"Mutation testing").

Its rules (fixture ``builder_rules``): customers ``acme`` (USD; grants 5.00 and 9.00 on Sep 1
expiring Oct 10 and Oct 31, and 100.00 on Oct 1 that never expires) and ``kaisha`` (JPY; 1000
on Sep 1 expiring Sep 30), plan ``pro``, meters ``api_calls`` and ``tokens``.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from beancount.parser import parser, printer

from ledger.accounts import AccountMap
from ledger.accruals import (
    Inclusion,
    fee_as_accrued,
    net_targets,
    plan_points,
    snapshot,
    split_credit,
    targets,
)
from ledger.books import format_entries
from ledger.cycles import Cycle
from ledger.discounts import DiscountRating
from ledger.facts.adjustments import Adjustment
from ledger.facts.credit_notes import CreditNote, CreditPart
from ledger.facts.invoices import Invoice, InvoiceLine, Snapshot, Tax, TaxLine
from ledger.facts.payments import CashApplication, Payment
from ledger.journal import post
from ledger.journal.accruals import accrual_entries, late_entries
from ledger.journal.adjustments import debit_entries, mark_credit_notes
from ledger.journal.close import acceptance_directive, assertion_day, balance_assertion
from ledger.journal.credit_notes import (
    credit_note_entries,
    fee_reduction_entries,
    running_cycle,
)
from ledger.journal.invoices import (
    breakage_entries,
    grant_invoices,
    invoice_entries,
    invoice_evidence,
)
from ledger.journal.meta import format_quantities, parse_quantities
from ledger.journal.payments import application_entries, payment_entries
from ledger.journal.sealed import catch_up, cumulative_quantities, usage_month
from ledger.rating import BaseFeeRating, ChargeRating, CreditMovement, CycleRating, Rating
from ledger.registry import load_registry
from ledger.rules import Rules, WalletGrant, load_rules
from tests.support.workspaces import METERS_CALLS, METERS_CALLS_TOKENS, balance, write_workspace

D = Decimal

PLANS = """\
plans:
  pro:
    currency: USD
    base_fee: {amount: "30.00", timing: advance}
    minimum_commitment: "20.00"
    charges:
      - meter: api_calls
        model: graduated
        tiers: [{up_to: 10, unit_price: "0"}, {unit_price: "0.05"}]
  std:
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers: [{up_to: 10, unit_price: "0"}, {unit_price: "0.05"}]
"""
CUSTOMERS = """\
customers:
  acme:
    currency: USD
    billing_anchor: start
    payment_terms_days: 14
    subscriptions: [{plan: pro, start: 2026-09-15}]
  beta: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: std, start: 2026-09-01}]}
  gift:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: std, start: 2026-09-01}]
    credits: [{amount: "5.00", granted: 2026-09-01, expires: 2026-10-15}]
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Rules:
    """The story's rules, their hash fixed so the expected text does not follow the YAML bytes."""
    root = tmp_path_factory.mktemp("journal") / "ws"
    write_workspace(root, meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)
    return load_rules(root / "rules").model_copy(update={"hash": "rules-1"})


# --- ledger text --------------------------------------------------------------------------


def printed(entries: Iterable[data.Directive]) -> str:
    """The entries as Beancount's printer writes them, a blank line between two."""
    return "\n".join(printer.format_entry(entry) for entry in entries)


def ledger(text: str) -> str:
    """Expected ledger text written in a test: dedented; a line ending in a backslash
    continues on the next (a Beancount line longer than this file's 100 columns)."""
    return re.sub(r"\s*\\\n\s*", " ", textwrap.dedent(text).lstrip("\n"))


def assert_ledger(entries: Iterable[data.Directive], expected: str) -> None:
    assert printed(entries) == ledger(expected)


def parsed(text: str) -> list[data.Directive]:
    """Ledger text in: the entries Beancount's parser reads from it (no errors)."""
    entries, errors, _ = parser.parse_string(ledger(text))
    assert not errors, errors
    return entries


def assert_books(tmp_path: Path, entries: Sequence[data.Directive], balances: str) -> None:
    """Write ``entries`` as a month file ``books/2026/journal.beancount`` after an ``open`` of
    every account they use (2026-01-01) and before the ``balances`` assertions, with an
    empty ``books/documents/<name>`` file for each document directive; Beancount's loader
    reads it without an error (so every transaction balances, every assertion holds and
    every document path resolves from the month's folder)."""
    accounts = sorted(
        {p.account for e in entries if isinstance(e, data.Transaction) for p in e.postings}
        | {e.account for e in entries if isinstance(e, data.Document)}
    )
    documents = tmp_path / "books" / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        if isinstance(entry, data.Document):
            (documents / Path(entry.filename).name).write_text("")
    month = tmp_path / "books" / "2026" / "journal.beancount"
    month.parent.mkdir(exist_ok=True)
    opens = "".join(f"2026-01-01 open {account}\n" for account in accounts)
    month.write_text(f"{opens}\n{printed(entries)}\n{ledger(balances)}")
    _, errors, _ = loader.load_file(str(month))
    assert not errors, [f"{e.source.get('lineno')}: {e.message}" for e in errors]


# --- the story's records ------------------------------------------------------------------


def september(customer: str) -> Cycle:
    """A ``std`` customer's whole September cycle, [Sep 1, Oct 1), the first of its subscription."""
    start, end = date(2026, 9, 1), date(2026, 10, 1)
    return Cycle(customer, "std", start, end, start, end, subscription=0, first=True, last=False)


def applied(reference: str, day: date, source: str, amount: str, invoice: str) -> CashApplication:
    """``meterbook apply``: ``amount`` of ``source`` (a payment or a credit note) to ``invoice``."""
    return CashApplication(reference, "apply", day, source, D(amount), "USD", invoice)


def refunded(reference: str, day: date, source: str, amount: str) -> CashApplication:
    """``meterbook refund``: ``amount`` of ``source`` paid back to the payer."""
    return CashApplication(reference, "refund", day, source, D(amount), "USD")


#: acme's first cycle through Sep 30: 90 calls, 80 billable × 0.05 = 4.00; the fee
#: recognized for 16 of the cycle's 30 days, 30.00 × 16/30 = 16.00.
ACME_SEP30 = Snapshot(
    link="acme-2026-09-15",
    customer="acme",
    cycle="2026-09-15/2026-10-15",
    plan="pro",
    through=date(2026, 9, 30),
    currency="USD",
    targets=(
        ("deferred", D("16.00")),
        ("subscription_revenue:pro", D("16.00")),
        ("unbilled", D("4.00")),
        ("usage_revenue:api_calls", D("4.00")),
    ),
    quantities=(("api_calls", D(90)),),
    evidence="ev-acme-0930",
)
#: through its last day, Oct 14: 310 calls, 300 × 0.05 = 15.00; the fee all recognized
#: (30.00); 20.00 committed − 15.00 used = 5.00 shortfall, unbilled 15.00 + 5.00 = 20.00.
ACME_OCT14 = Snapshot(
    link="acme-2026-09-15",
    customer="acme",
    cycle="2026-09-15/2026-10-15",
    plan="pro",
    through=date(2026, 10, 14),
    currency="USD",
    targets=(
        ("commitment_revenue:", D("5.00")),
        ("deferred", D("30.00")),
        ("subscription_revenue:pro", D("30.00")),
        ("unbilled", D("20.00")),
        ("usage_revenue:api_calls", D("15.00")),
    ),
    quantities=(("api_calls", D(310)),),
    evidence="ev-acme-1014",
)
#: beta's September: 90 calls, 80 × 0.05 = 4.00.
BETA_SEP30 = Snapshot(
    link="beta-2026-09-01",
    customer="beta",
    cycle="2026-09-01/2026-10-01",
    plan="std",
    through=date(2026, 9, 30),
    currency="USD",
    targets=(("unbilled", D("4.00")), ("usage_revenue:api_calls", D("4.00"))),
    quantities=(("api_calls", D(90)),),
    evidence="ev-beta-0930",
)

GRANT_INVOICE = Invoice(
    customer="gift",
    date=date(2026, 9, 1),
    currency="USD",
    lines=(
        InvoiceLine(
            "credit_grant",
            "prepaid credit granted 2026-09-01, expires 2026-10-15",
            "deferred",
            D("5.00"),
        ),
    ),
    rules="rules-1",
    number="INV-2026-000001",
    due=date(2026, 9, 1),
)
ACME_FEE_INVOICE = Invoice(
    customer="acme",
    date=date(2026, 9, 15),
    currency="USD",
    lines=(
        InvoiceLine(
            "base_fee",
            "pro base fee 2026-09-15/2026-10-15 (in advance)",
            "deferred",
            D("30.00"),
            cycle="2026-09-15/2026-10-15",
            link="acme-2026-09-15",
        ),
    ),
    rules="rules-1",
    number="INV-2026-000002",
    due=date(2026, 9, 29),
)
BETA_INVOICE = Invoice(
    customer="beta",
    date=date(2026, 10, 1),
    currency="USD",
    lines=(
        InvoiceLine(
            "usage",
            "api_calls (graduated)",
            "unbilled",
            D("4.00"),
            cycle="2026-09-01/2026-10-01",
            link="beta-2026-09-01",
            meter="api_calls",
            quantity=D(90),
            unit="call",
        ),
    ),
    rules="rules-1",
    number="INV-2026-000003",
    accruals=(BETA_SEP30,),
    due=date(2026, 10, 1),
)
ACME_INVOICE = Invoice(
    customer="acme",
    date=date(2026, 10, 15),
    currency="USD",
    lines=(
        InvoiceLine(
            "usage",
            "api_calls (graduated)",
            "unbilled",
            D("15.00"),
            cycle="2026-09-15/2026-10-15",
            link="acme-2026-09-15",
            meter="api_calls",
            quantity=D(310),
            unit="call",
        ),
        InvoiceLine(
            "commitment",
            "minimum commitment shortfall",
            "unbilled",
            D("5.00"),
            cycle="2026-09-15/2026-10-15",
            link="acme-2026-09-15",
        ),
        InvoiceLine(
            "base_fee",
            "pro base fee 2026-10-15/2026-11-15 (in advance)",
            "deferred",
            D("30.00"),
            cycle="2026-10-15/2026-11-15",
            link="acme-2026-10-15",
        ),
    ),
    rules="rules-1",
    number="INV-2026-000004",
    accruals=(ACME_SEP30, ACME_OCT14),
    due=date(2026, 10, 29),
)
#: beta's October: 2,010 calls, 2,000 × 0.05 = 100.00, and 10 % sales tax of US-WA on it.
TAXED_INVOICE = Invoice(
    customer="beta",
    date=date(2026, 11, 1),
    currency="USD",
    lines=(
        InvoiceLine(
            "usage",
            "api_calls (graduated)",
            "unbilled",
            D("100.00"),
            cycle="2026-10-01/2026-11-01",
            link="beta-2026-10-01",
            meter="api_calls",
            quantity=D(2010),
            unit="call",
        ),
    ),
    rules="rules-1",
    number="INV-2026-000005",
    due=date(2026, 11, 1),
    tax=Tax(lines=(TaxLine("US-WA", D("0.10"), D("100.00"), D("10.00"), "sales tax"),)),
)


# --- accruals.py --------------------------------------------------------------------------


def test_accruals_book_the_change_in_targets(rules: Rules, tmp_path: Path) -> None:
    """An accrual point books the change in its cycle's cumulative targets since the last one.

    acme's cycle [Sep 15, Oct 15): Sep 30 books the targets themselves (usage 4.00 to
    unbilled, 16.00 of the advance fee out of deferred revenue into subscription
    revenue). Oct 14 books 15.00 − 4.00 = 11.00 of usage, 30.00 − 16.00 = 14.00 of fee
    and the 5.00 shortfall (first seen on the cycle's last day): unbilled
    20.00 − 4.00 = 16.00. Given in any order, the points are booked in date order.
    Loaded: the cycle's unbilled is 20.00, its revenue 15.00 + 30.00 + 5.00 = 50.00,
    exactly what its invoice bills.
    """
    entries = accrual_entries([ACME_OCT14, ACME_SEP30], rules)
    assert_ledger(
        entries,
        r"""
        2026-09-30 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-09-30" \
            ^acme-2026-09-15
          customer: "acme"
          cycle: "2026-09-15/2026-10-15"
          meter: "api_calls"
          quantities: "api_calls=90"
          rules: "rules-1"
          evidence: "ev-acme-0930"
          Liabilities:Deferred-Revenue:Acme   16.00 USD
          Income:Subscriptions:Pro           -16.00 USD
          Assets:Receivables:Unbilled:Acme     4.00 USD
          Income:Usage:Api-Calls              -4.00 USD
            meter: "api_calls"
            quantity: 90

        2026-10-14 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-10-14" \
            ^acme-2026-09-15
          customer: "acme"
          cycle: "2026-09-15/2026-10-15"
          meter: "api_calls"
          quantities: "api_calls=310"
          rules: "rules-1"
          evidence: "ev-acme-1014"
          Income:Commitment-Shortfall         -5.00 USD
          Liabilities:Deferred-Revenue:Acme   14.00 USD
          Income:Subscriptions:Pro           -14.00 USD
          Assets:Receivables:Unbilled:Acme    16.00 USD
          Income:Usage:Api-Calls             -11.00 USD
            meter: "api_calls"
            quantity: 310
        """,
    )
    assert_books(
        tmp_path,
        entries,
        """
        2026-10-15 balance Assets:Receivables:Unbilled:Acme   20.00 USD
        2026-10-15 balance Income:Usage:Api-Calls            -15.00 USD
        2026-10-15 balance Income:Subscriptions:Pro          -30.00 USD
        2026-10-15 balance Income:Commitment-Shortfall        -5.00 USD
        """,
    )


def test_late_usage_of_an_invoiced_cycle(rules: Rules, tmp_path: Path) -> None:
    """Usage that arrives after its cycle was invoiced: the difference, in the first open month.

    beta's September was invoiced (INV-2026-000003) at 90 calls, 4.00. 40 more calls
    of Sep 28 arrive in November: 130 calls, 120 × 0.05 = 6.00 now. The invoiced
    accrual stays as it was; a late entry dated Nov 1 books 6.00 − 4.00 = 2.00 to
    unbilled (billed on beta's next invoice), its quantity the change (40) and its
    ``usage_date`` the accrual point it corrects.
    """
    now = Snapshot(
        link="beta-2026-09-01",
        customer="beta",
        cycle="2026-09-01/2026-10-01",
        plan="std",
        through=date(2026, 9, 30),
        currency="USD",
        targets=(("unbilled", D("6.00")), ("usage_revenue:api_calls", D("6.00"))),
        quantities=(("api_calls", D(130)),),
        evidence="ev-beta-0930-late",
    )
    entries = late_entries([(now, BETA_SEP30, date(2026, 11, 1))], rules)
    assert_ledger(
        entries,
        r"""
        2026-11-01 * "beta" "Late usage for invoiced cycle 2026-09-01/2026-10-01" ^beta-2026-09-01
          customer: "beta"
          cycle: "2026-09-01/2026-10-01"
          meter: "api_calls"
          quantities: "api_calls=40"
          rules: "rules-1"
          evidence: "ev-beta-0930-late"
          usage_date: 2026-09-30
          late: TRUE
          Assets:Receivables:Unbilled:Beta   2.00 USD
          Income:Usage:Api-Calls            -2.00 USD
            meter: "api_calls"
            quantity: 40
        """,
    )
    assert_books(
        tmp_path,
        [*accrual_entries([BETA_SEP30], rules), *entries],
        """
        2026-11-02 balance Assets:Receivables:Unbilled:Beta   6.00 USD
        """,
    )


def test_late_usage_under_the_commitment(rules: Rules) -> None:
    """Late usage inside a minimum commitment moves revenue; the customer owes no more.

    acme's first cycle was invoiced at 310 calls: usage 15.00, shortfall 5.00, 20.00
    in all. 20 late calls make 330: usage 16.00, shortfall 20.00 − 16.00 = 4.00, still
    20.00 in all. The late entry moves 1.00 from commitment to usage revenue and
    leaves unbilled alone. A cycle whose targets did not move posts nothing.
    """
    now = Snapshot(
        link="acme-2026-09-15",
        customer="acme",
        cycle="2026-09-15/2026-10-15",
        plan="pro",
        through=date(2026, 10, 14),
        currency="USD",
        targets=(
            ("commitment_revenue:", D("4.00")),
            ("deferred", D("30.00")),
            ("subscription_revenue:pro", D("30.00")),
            ("unbilled", D("20.00")),
            ("usage_revenue:api_calls", D("16.00")),
        ),
        quantities=(("api_calls", D(330)),),
        evidence="ev-acme-1014-late",
    )
    entries = late_entries([(now, ACME_OCT14, date(2026, 11, 1))], rules)
    assert_ledger(
        entries,
        r"""
        2026-11-01 * "acme" "Late usage for invoiced cycle 2026-09-15/2026-10-15" ^acme-2026-09-15
          customer: "acme"
          cycle: "2026-09-15/2026-10-15"
          meter: "api_calls"
          quantities: "api_calls=20"
          rules: "rules-1"
          evidence: "ev-acme-1014-late"
          usage_date: 2026-10-14
          late: TRUE
          Income:Commitment-Shortfall   1.00 USD
          Income:Usage:Api-Calls       -1.00 USD
            meter: "api_calls"
            quantity: 20
        """,
    )
    assert late_entries([(ACME_OCT14, ACME_OCT14, date(2026, 11, 1))], rules) == []


# --- invoices.py --------------------------------------------------------------------------


def test_invoice_settles_accruals_into_the_receivable(rules: Rules, tmp_path: Path) -> None:
    """An invoice moves what it bills out of unbilled and deferred revenue into the receivable.

    INV-2026-000004 bills acme's first cycle (usage 15.00 and shortfall 5.00: out of
    unbilled, 20.00) and the next cycle's fee in advance (30.00: into deferred revenue,
    earned day by day from Oct 15): receivable 50.00. It links both cycles, and its
    ``evidence`` digests the two accruals it froze. The document directive puts the
    invoice's page on the receivable, relative to the month's folder. Loaded after the
    cycle's accruals and its own fee's invoice (INV-2026-000002, Sep 15): the cycle's
    unbilled is exactly 0, its fee earned, and deferred revenue holds the next fee, 30.00; acme owes
    30.00 + 50.00 = 80.00.
    """
    entries = invoice_entries([ACME_INVOICE], rules)
    lines = "acme-2026-09-15\t2026-09-30\tev-acme-0930\nacme-2026-09-15\t2026-10-14\tev-acme-1014\n"
    assert invoice_evidence(ACME_INVOICE) == hashlib.sha256(lines.encode()).hexdigest()[:16]
    assert_ledger(
        entries,
        r"""
        2026-10-15 * "acme" "Invoice INV-2026-000004" \
            ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          due: 2026-10-29
          rules: "rules-1"
          cycle: "2026-09-15/2026-10-15,2026-10-15/2026-11-15"
          evidence: "f7979fc203599bb0"
          Assets:Receivables:Invoiced:Acme    50.00 USD
          Assets:Receivables:Unbilled:Acme   -20.00 USD
          Liabilities:Deferred-Revenue:Acme  -30.00 USD

        2026-10-15 document Assets:Receivables:Invoiced:Acme "../documents/INV-2026-000004.html" \
            ^INV-2026-000004
        """,
    )
    accruals = accrual_entries([ACME_SEP30, ACME_OCT14], rules)
    books = [*invoice_entries([ACME_FEE_INVOICE], rules), *accruals, *entries]
    assert_books(
        tmp_path,
        books,
        """
        2026-10-16 balance Assets:Receivables:Unbilled:Acme      0.00 USD
        2026-10-16 balance Assets:Receivables:Invoiced:Acme     80.00 USD
        2026-10-16 balance Liabilities:Deferred-Revenue:Acme   -30.00 USD
        """,
    )


def test_invoice_with_tax(rules: Rules, tmp_path: Path) -> None:
    """Tax is owed to the jurisdiction from the invoice date, never revenue.

    INV-2026-000005: beta's October usage 100.00 out of unbilled, 10 % sales tax of
    US-WA on it, 10.00, credited to ``Liabilities:Tax:US-WA``: receivable 110.00.
    """
    entries = invoice_entries([TAXED_INVOICE], rules)
    assert_ledger(
        entries,
        r"""
        2026-11-01 * "beta" "Invoice INV-2026-000005" ^INV-2026-000005 ^beta-2026-10-01
          customer: "beta"
          invoice: "INV-2026-000005"
          due: 2026-11-01
          rules: "rules-1"
          cycle: "2026-10-01/2026-11-01"
          Assets:Receivables:Invoiced:Beta   110.00 USD
          Assets:Receivables:Unbilled:Beta  -100.00 USD
          Liabilities:Tax:US-WA              -10.00 USD

        2026-11-01 document Assets:Receivables:Invoiced:Beta "../documents/INV-2026-000005.html" \
            ^INV-2026-000005
        """,
    )
    assert_books(
        tmp_path,
        entries,
        """
        2026-11-02 balance Assets:Receivables:Invoiced:Beta   110.00 USD
        2026-11-02 balance Liabilities:Tax:US-WA              -10.00 USD
        """,
    )


def test_breakage_at_expiry(rules: Rules) -> None:
    """Prepaid credit left at expiry is earned: deferred revenue → breakage revenue.

    gift's grant of 5.00 (billed on INV-2026-000001) drew 3.20 by Sep 30 (74 calls,
    64 × 0.05); 5.00 − 3.20 = 1.80 expires on Oct 15. The entry names the grant
    (``2026-09-01#1``: the first grant of that date) and the invoice that sold it, and
    links that invoice. Draws are the accruals' business, not breakage's. Posting ahead
    of the grant's invoice: the same entry without link or ``grant_invoice``.
    """
    movements = [
        CreditMovement("gift", 0, date(2026, 9, 30), "draw", D("3.20")),
        CreditMovement("gift", 0, date(2026, 10, 15), "breakage", D("1.80")),
    ]
    assert_ledger(
        breakage_entries(movements, rules, [GRANT_INVOICE]),
        r"""
        2026-10-15 * "gift" "Prepaid credit expired (breakage)" ^INV-2026-000001
          customer: "gift"
          grant: "2026-09-01#1"
          expires: 2026-10-15
          grant_invoice: "INV-2026-000001"
          rules: "rules-1"
          Liabilities:Deferred-Revenue:Gift   1.80 USD
          Income:Credit-Breakage             -1.80 USD
        """,
    )
    assert_ledger(
        breakage_entries(movements, rules),
        r"""
        2026-10-15 * "gift" "Prepaid credit expired (breakage)"
          customer: "gift"
          grant: "2026-09-01#1"
          expires: 2026-10-15
          rules: "rules-1"
          Liabilities:Deferred-Revenue:Gift   1.80 USD
          Income:Credit-Breakage             -1.80 USD
        """,
    )


# --- payments.py --------------------------------------------------------------------------


def test_payment_matched(rules: Rules, tmp_path: Path) -> None:
    """A payment naming an open invoice: the bank has the money, the customer owes less.

    BANK-1 pays beta's INV-2026-000003 (4.00) in full on Oct 5: cash 4.00, receivable
    −4.00, linked to the invoice and the cycle it billed. Loaded: beta owes 0.
    """
    payment = Payment(date(2026, 10, 5), D("4.00"), "USD", "INV-2026-000003", "BANK-1")
    entries = payment_entries([payment], [BETA_INVOICE], [], rules)
    assert_ledger(
        entries,
        r"""
        2026-10-05 * "beta" "Payment BANK-1 for INV-2026-000003" ^INV-2026-000003 ^beta-2026-09-01
          customer: "beta"
          invoice: "INV-2026-000003"
          reference: "BANK-1"
          Assets:Bank:Operating              4.00 USD
          Assets:Receivables:Invoiced:Beta  -4.00 USD
        """,
    )
    assert_books(
        tmp_path,
        [*invoice_entries([BETA_INVOICE], rules), *entries],
        """
        2026-10-06 balance Assets:Receivables:Invoiced:Beta   0.00 USD
        """,
    )


def test_payment_overpaid_and_unnamed(rules: Rules, tmp_path: Path) -> None:
    """Cash that settles no invoice is owed back to the payer: unapplied cash, a liability.

    acme owes 50.00 on INV-2026-000004 and pays 60.00 (BANK-2, Oct 20): 50.00 settles
    the receivable, the 10.00 over is unapplied cash (``unapplied: "overpayment"``).
    BANK-3, 15.00 naming no invoice, has no customer: all of it is unapplied cash.
    The bank is debited in full either way. Loaded: cash 75.00, unapplied cash
    10.00 + 15.00 = 25.00, INV-2026-000004 settled (acme's 30.00 left is the
    Sep 15 fee's invoice, which no payment named).
    """
    payments = [
        Payment(date(2026, 10, 20), D("60.00"), "USD", "INV-2026-000004", "BANK-2"),
        Payment(date(2026, 10, 20), D("15.00"), "USD", "", "BANK-3"),
    ]
    entries = payment_entries(payments, [ACME_FEE_INVOICE, ACME_INVOICE], [], rules)
    assert_ledger(
        entries,
        r"""
        2026-10-20 * "acme" "Payment BANK-2 for INV-2026-000004" \
            ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          reference: "BANK-2"
          unapplied: "overpayment"
          Assets:Bank:Operating              60.00 USD
          Assets:Receivables:Invoiced:Acme  -50.00 USD
          Liabilities:Unapplied-Cash        -10.00 USD

        2026-10-20 * "Payment BANK-3 (unapplied: no invoice)"
          reference: "BANK-3"
          unapplied: "no_invoice"
          Assets:Bank:Operating        15.00 USD
          Liabilities:Unapplied-Cash  -15.00 USD
        """,
    )
    invoices = invoice_entries([ACME_FEE_INVOICE, ACME_INVOICE], rules)
    assert_books(
        tmp_path,
        [*invoices, *entries],
        """
        2026-10-21 balance Assets:Bank:Operating               75.00 USD
        2026-10-21 balance Liabilities:Unapplied-Cash         -25.00 USD
        2026-10-21 balance Assets:Receivables:Invoiced:Acme    30.00 USD
        """,
    )


def test_unapplied_cash_applied_then_refunded(rules: Rules, tmp_path: Path) -> None:
    """Unapplied cash applied to an invoice later, and the rest paid back.

    BANK-3's 15.00 (no invoice named, Oct 20) is applied to beta's INV-2026-000003
    (4.00 open) on Nov 3, and the 15.00 − 4.00 = 11.00 left is refunded as PAYOUT-1 on
    Nov 9: unapplied cash goes down by 4.00 against the receivable, then by 11.00
    against the bank. Loaded: unapplied cash 0, beta owes 0, the bank kept 4.00.
    """
    payments = [Payment(date(2026, 10, 20), D("15.00"), "USD", "", "BANK-3")]
    applications = [
        applied("APPLY-BANK-3", date(2026, 11, 3), "BANK-3", "4.00", "INV-2026-000003"),
        refunded("PAYOUT-1", date(2026, 11, 9), "BANK-3", "11.00"),
    ]
    invoices = [BETA_INVOICE]
    entries = application_entries(applications, payments, invoices, [], rules)
    assert_ledger(
        entries,
        r"""
        2026-11-03 * "beta" "Unapplied cash BANK-3 applied to INV-2026-000003" \
            ^INV-2026-000003 ^beta-2026-09-01
          customer: "beta"
          invoice: "INV-2026-000003"
          application: "APPLY-BANK-3"
          source: "BANK-3"
          Liabilities:Unapplied-Cash         4.00 USD
          Assets:Receivables:Invoiced:Beta  -4.00 USD

        2026-11-09 * "Refund PAYOUT-1 of unapplied cash BANK-3"
          application: "PAYOUT-1"
          source: "BANK-3"
          Liabilities:Unapplied-Cash   11.00 USD
          Assets:Bank:Operating       -11.00 USD
        """,
    )
    books = [
        *invoice_entries(invoices, rules),
        *payment_entries(payments, invoices, [], rules, applications),
        *entries,
    ]
    assert_books(
        tmp_path,
        books,
        """
        2026-11-10 balance Liabilities:Unapplied-Cash          0.00 USD
        2026-11-10 balance Assets:Receivables:Invoiced:Beta    0.00 USD
        2026-11-10 balance Assets:Bank:Operating               4.00 USD
        """,
    )


def test_an_overpayment_refunded_is_the_payers_refund(rules: Rules, tmp_path: Path) -> None:
    """BANK-5 pays 10.00 naming beta's INV-2026-000003 (4.00 open) on Oct 20: 4.00 settles it,
    6.00 is an overpayment held as unapplied cash. On Nov 2 an application of 1.00 of BANK-5
    to the same invoice finds it paid: it applies nothing and posts nothing. On Nov 9 the 6.00
    is paid back as PAYOUT-2: the refund names beta, whose invoice the payment named (payee and
    ``customer``). Loaded: unapplied cash 0, beta owes 0, the bank kept 4.00."""
    payments = [Payment(date(2026, 10, 20), D("10.00"), "USD", "INV-2026-000003", "BANK-5")]
    applications = [
        applied("APPLY-BANK-5", date(2026, 11, 2), "BANK-5", "1.00", "INV-2026-000003"),
        refunded("PAYOUT-2", date(2026, 11, 9), "BANK-5", "6.00"),
    ]
    invoices = [BETA_INVOICE]
    entries = application_entries(applications, payments, invoices, [], rules)
    assert_ledger(
        entries,
        r"""
        2026-11-09 * "beta" "Refund PAYOUT-2 of unapplied cash BANK-5"
          customer: "beta"
          application: "PAYOUT-2"
          source: "BANK-5"
          Liabilities:Unapplied-Cash   6.00 USD
          Assets:Bank:Operating       -6.00 USD
        """,
    )
    books = [
        *invoice_entries(invoices, rules),
        *payment_entries(payments, invoices, [], rules, applications),
        *entries,
    ]
    assert_books(
        tmp_path,
        books,
        """
        2026-11-10 balance Liabilities:Unapplied-Cash          0.00 USD
        2026-11-10 balance Assets:Receivables:Invoiced:Beta    0.00 USD
        2026-11-10 balance Assets:Bank:Operating               4.00 USD
        """,
    )


def test_a_payment_for_an_invoice_already_settled_by_applied_cash_is_unapplied(
    rules: Rules, tmp_path: Path
) -> None:
    """BANK-3's 15.00 (no invoice named, Oct 20) is applied to beta's INV-2026-000003 (4.00)
    on Nov 3. beta's own payment BANK-7 of 4.00 for that invoice arrives on Nov 5: the invoice
    is settled already, so all 4.00 is held as unapplied cash (an overpayment), with beta named
    (the invoice's customer) and no receivable posting at all, not even of 0.00. Loaded:
    unapplied cash 11.00 + 4.00 = 15.00, beta owes 0, the bank holds 19.00."""
    payments = [
        Payment(date(2026, 10, 20), D("15.00"), "USD", "", "BANK-3"),
        Payment(date(2026, 11, 5), D("4.00"), "USD", "INV-2026-000003", "BANK-7"),
    ]
    applications = [
        applied("APPLY-BANK-3", date(2026, 11, 3), "BANK-3", "4.00", "INV-2026-000003"),
    ]
    invoices = [BETA_INVOICE]
    entries = payment_entries(payments, invoices, [], rules, applications)
    assert_ledger(
        entries[1:],
        r"""
        2026-11-05 * "beta" "Payment BANK-7 (unapplied: overpayment)" \
            ^INV-2026-000003 ^beta-2026-09-01
          customer: "beta"
          invoice: "INV-2026-000003"
          reference: "BANK-7"
          unapplied: "overpayment"
          Assets:Bank:Operating        4.00 USD
          Liabilities:Unapplied-Cash  -4.00 USD
        """,
    )
    moved = application_entries(applications, payments, invoices, [], rules)
    assert [e.tags for e in entries + moved] == [frozenset()] * 3  # no tags, never None
    books = [*invoice_entries(invoices, rules), *entries, *moved]
    assert_books(
        tmp_path,
        books,
        """
        2026-11-10 balance Liabilities:Unapplied-Cash        -15.00 USD
        2026-11-10 balance Assets:Receivables:Invoiced:Beta    0.00 USD
        2026-11-10 balance Assets:Bank:Operating              19.00 USD
        """,
    )


# --- credit_notes.py ----------------------------------------------------------------------

#: beta's INV-2026-000005 paid in full on Nov 5.
TAXED_PAID = Payment(date(2026, 11, 5), D("110.00"), "USD", "INV-2026-000005", "BANK-4")
#: 20.00 of its usage credited on Nov 10, with the 10 % tax on it: 22.00.
TAXED_NOTE = CreditNote(
    number="CN-2026-000002",
    seq=2,
    invoice="INV-2026-000005",
    customer="beta",
    date=date(2026, 11, 10),
    currency="USD",
    amount=D("22.00"),
    reason="outage on Oct 20",
    line=1,
    line_description="api_calls (graduated)",
    invoice_date=date(2026, 11, 1),
    invoice_total=D("110.00"),
    parts=(CreditPart(1, "usage", "api_calls (graduated)", D("20.00")),),
    tax=Tax(lines=(TaxLine("US-WA", D("0.10"), D("20.00"), D("2.00"), "sales tax"),)),
)


def test_credit_note_on_an_unpaid_invoice(rules: Rules) -> None:
    """A credit note gives revenue back (contra-revenue); unpaid, the customer owes less.

    CN-2026-000001 credits 2.00 of acme's usage line (line 1 of INV-2026-000004,
    nothing paid yet) on Oct 20: credit notes 2.00 against the receivable, linked to
    the note, the invoice and the cycles it billed; its page goes on the receivable.
    """
    note = CreditNote(
        number="CN-2026-000001",
        seq=1,
        invoice="INV-2026-000004",
        customer="acme",
        date=date(2026, 10, 20),
        currency="USD",
        amount=D("2.00"),
        reason="goodwill",
        line=1,
        line_description="api_calls (graduated)",
        invoice_date=date(2026, 10, 15),
        invoice_total=D("50.00"),
        parts=(CreditPart(1, "usage", "api_calls (graduated)", D("2.00")),),
    )
    entries = credit_note_entries([note], [ACME_INVOICE], [], rules)
    assert_ledger(
        entries,
        r"""
        2026-10-20 * "acme" "Credit note CN-2026-000001 for INV-2026-000004" \
            ^CN-2026-000001 ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          credit_note: "CN-2026-000001"
          reason: "goodwill"
          invoice_line: 1
          Income:Credit-Notes                2.00 USD
          Assets:Receivables:Invoiced:Acme  -2.00 USD

        2026-10-20 document Assets:Receivables:Invoiced:Acme "../documents/CN-2026-000001.html" \
            ^CN-2026-000001
        """,
    )


def test_credit_note_on_a_paid_taxed_invoice(rules: Rules, tmp_path: Path) -> None:
    """Paid already: what a credit note credits is owed back, a refund liability; with its tax.

    CN-2026-000002 credits 22.00 of beta's INV-2026-000005 (110.00, paid in full on
    Nov 5): 20.00 of usage revenue given back, the 2.00 of tax on it no longer owed to
    US-WA, and the 22.00 owed to beta. Loaded: tax owed 10.00 − 2.00 = 8.00, refunds
    22.00, beta's receivable 0.
    """
    invoices = [TAXED_INVOICE]
    entries = credit_note_entries([TAXED_NOTE], invoices, [TAXED_PAID], rules)
    assert_ledger(
        entries,
        r"""
        2026-11-10 * "beta" "Credit note CN-2026-000002 for INV-2026-000005" \
            ^CN-2026-000002 ^INV-2026-000005 ^beta-2026-10-01
          customer: "beta"
          invoice: "INV-2026-000005"
          credit_note: "CN-2026-000002"
          reason: "outage on Oct 20"
          invoice_line: 1
          Income:Credit-Notes        20.00 USD
          Liabilities:Tax:US-WA       2.00 USD
          Liabilities:Refunds:Beta  -22.00 USD

        2026-11-10 document Assets:Receivables:Invoiced:Beta "../documents/CN-2026-000002.html" \
            ^CN-2026-000002
        """,
    )
    books = [
        *invoice_entries(invoices, rules),
        *payment_entries([TAXED_PAID], invoices, [TAXED_NOTE], rules),
        *entries,
    ]
    assert_books(
        tmp_path,
        books,
        """
        2026-11-11 balance Liabilities:Tax:US-WA               -8.00 USD
        2026-11-11 balance Liabilities:Refunds:Beta           -22.00 USD
        2026-11-11 balance Assets:Receivables:Invoiced:Beta     0.00 USD
        """,
    )


def test_credit_balance_applied_then_refunded(rules: Rules, tmp_path: Path) -> None:
    """A credit note's credit balance (refund liability) applied to another invoice, then paid.

    CN-2026-000002 left beta 22.00 of credit balance. On Nov 12, 4.00 of it settles
    beta's open INV-2026-000003; on Nov 13 the 18.00 left is paid back (PAYOUT-2).
    Loaded: refunds 0, beta owes 0, the bank holds 110.00 − 18.00 = 92.00.
    """
    invoices = [BETA_INVOICE, TAXED_INVOICE]
    applications = [
        applied("APPLY-CN-2", date(2026, 11, 12), "CN-2026-000002", "4.00", "INV-2026-000003"),
        refunded("PAYOUT-2", date(2026, 11, 13), "CN-2026-000002", "18.00"),
    ]
    notes, payments = [TAXED_NOTE], [TAXED_PAID]
    entries = application_entries(applications, payments, invoices, notes, rules)
    assert_ledger(
        entries,
        r"""
        2026-11-12 * "beta" "Credit balance CN-2026-000002 applied to INV-2026-000003" \
            ^CN-2026-000002 ^INV-2026-000003 ^beta-2026-09-01
          customer: "beta"
          invoice: "INV-2026-000003"
          application: "APPLY-CN-2"
          source: "CN-2026-000002"
          Liabilities:Refunds:Beta           4.00 USD
          Assets:Receivables:Invoiced:Beta  -4.00 USD

        2026-11-13 * "beta" "Refund PAYOUT-2 of credit balance CN-2026-000002" ^CN-2026-000002
          customer: "beta"
          application: "PAYOUT-2"
          source: "CN-2026-000002"
          Liabilities:Refunds:Beta   18.00 USD
          Assets:Bank:Operating     -18.00 USD
        """,
    )
    books = [
        *invoice_entries(invoices, rules),
        *payment_entries(payments, invoices, notes, rules, applications),
        *credit_note_entries(notes, invoices, payments, rules, applications=applications),
        *entries,
    ]
    assert_books(
        tmp_path,
        books,
        """
        2026-11-14 balance Liabilities:Refunds:Beta            0.00 USD
        2026-11-14 balance Assets:Receivables:Invoiced:Beta    0.00 USD
        2026-11-14 balance Assets:Bank:Operating              92.00 USD
        """,
    )


#: 12.00 of acme's second fee (line 3 of INV-2026-000004, cycle [Oct 15, Nov 15)) credited
#: on Oct 26, all of it from days not yet earned: deferred revenue, not contra-revenue.
FEE_NOTE = CreditNote(
    number="CN-2026-000003",
    seq=3,
    invoice="INV-2026-000004",
    customer="acme",
    date=date(2026, 10, 26),
    currency="USD",
    amount=D("12.00"),
    reason="seats removed",
    line=3,
    line_description="pro base fee 2026-10-15/2026-11-15 (in advance)",
    invoice_date=date(2026, 10, 15),
    invoice_total=D("50.00"),
    parts=(
        CreditPart(
            3,
            "base_fee",
            "pro base fee 2026-10-15/2026-11-15 (in advance)",
            D("12.00"),
            deferred=D("12.00"),
            cycle="2026-10-15/2026-11-15",
        ),
    ),
)


def test_credit_note_on_an_advance_fee(rules: Rules) -> None:
    """A credit note on fee days not yet earned reverses deferred revenue, never revenue.

    CN-2026-000003 takes 12.00 off acme's 30.00 fee for [Oct 15, Nov 15) on Oct 26,
    before it is earned: deferred revenue 12.00 against the receivable (unpaid). The
    accruals keep recognizing the fee as billed, so the note also takes 12.00 out of
    the cycle's recognition, ratably over its 20 days left (Oct 26 – Nov 14): through
    Oct 31 (``through``, the books' end) 12.00 × 6/20 = 3.60.
    """
    entries = credit_note_entries([FEE_NOTE], [ACME_INVOICE], [], rules, through=date(2026, 10, 31))
    assert_ledger(
        entries,
        r"""
        2026-10-26 * "acme" "Credit note CN-2026-000003 for INV-2026-000004" \
            ^CN-2026-000003 ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          credit_note: "CN-2026-000003"
          reason: "seats removed"
          invoice_line: 3
          Liabilities:Deferred-Revenue:Acme   12.00 USD
          Assets:Receivables:Invoiced:Acme   -12.00 USD

        2026-10-26 document Assets:Receivables:Invoiced:Acme "../documents/CN-2026-000003.html" \
            ^CN-2026-000003

        2026-10-31 * "acme" "Base fee recognition reduced by CN-2026-000003 through 2026-10-31" \
            ^CN-2026-000003 ^acme-2026-10-15
          customer: "acme"
          credit_note: "CN-2026-000003"
          cycle: "2026-10-15/2026-11-15"
          Income:Subscriptions:Pro            3.60 USD
          Liabilities:Deferred-Revenue:Acme  -3.60 USD
        """,
    )


def test_fee_reduction_over_the_cycle(rules: Rules, tmp_path: Path) -> None:
    """The recognition a credit note takes out of an advance fee, at each accrual point left.

    CN-2026-000003's 12.00 over the 20 days from Oct 26: 3.60 through Oct 31 (6 days),
    the rest, 8.40, on the cycle's last day. Loaded with the fee's invoice, the note
    and the cycle's accruals (the fee alone: 30.00 × 17/31 = 16.45 through Oct 31, all
    30.00 by Nov 14): deferred revenue ends at 0, and the cycle earned
    30.00 − 12.00 = 18.00 of subscription revenue.
    """
    entries = fee_reduction_entries(FEE_NOTE, ACME_INVOICE, rules)
    assert_ledger(
        entries,
        r"""
        2026-10-31 * "acme" "Base fee recognition reduced by CN-2026-000003 through 2026-10-31" \
            ^CN-2026-000003 ^acme-2026-10-15
          customer: "acme"
          credit_note: "CN-2026-000003"
          cycle: "2026-10-15/2026-11-15"
          Income:Subscriptions:Pro            3.60 USD
          Liabilities:Deferred-Revenue:Acme  -3.60 USD

        2026-11-14 * "acme" "Base fee recognition reduced by CN-2026-000003 through 2026-11-14" \
            ^CN-2026-000003 ^acme-2026-10-15
          customer: "acme"
          credit_note: "CN-2026-000003"
          cycle: "2026-10-15/2026-11-15"
          Income:Subscriptions:Pro            8.40 USD
          Liabilities:Deferred-Revenue:Acme  -8.40 USD
        """,
    )
    fee = [
        Snapshot(
            "acme-2026-10-15",
            "acme",
            "2026-10-15/2026-11-15",
            "pro",
            day,
            "USD",
            (("deferred", D(amount)), ("subscription_revenue:pro", D(amount))),
        )
        for day, amount in ((date(2026, 10, 31), "16.45"), (date(2026, 11, 14), "30.00"))
    ]
    fee_invoice = invoice_entries([ACME_INVOICE], rules)
    note = credit_note_entries([FEE_NOTE], [ACME_INVOICE], [], rules, through=date(2026, 10, 25))
    books = [*fee_invoice, *accrual_entries(fee, rules), *note, *entries]
    assert_books(
        tmp_path,
        books,
        """
        2026-11-15 balance Liabilities:Deferred-Revenue:Acme    0.00 USD
        2026-11-15 balance Income:Subscriptions:Pro           -18.00 USD
        """,
    )


def test_fee_reduction_over_a_cycle_outside_every_subscription_now(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A cycle the subscriptions no longer hold keeps the schedule of the cycle as billed.

    acme's subscription is edited to end on 2026-10-15, the first day of the cycle
    ``[Oct 15, Nov 15)`` whose 30.00 fee INV-2026-000004 billed: no cycle of acme contains
    Oct 15 now (:func:`running_cycle` documents ``cycle`` itself for that case). Without a
    correction of its own (none is given: ``recut`` empty), CN-2026-000003's 12.00 is
    taken out over the billed cycle as in ``test_fee_reduction_over_the_cycle``: 12.00 ×
    6/20 = 3.60 through Oct 31 and the other 8.40 on Nov 14, from ``pro``'s revenue (the
    plan the fee line names: no cycle of the subscriptions is there to name another).
    """
    root = tmp_path_factory.mktemp("ended") / "ws"
    ended = CUSTOMERS.replace(
        "subscriptions: [{plan: pro, start: 2026-09-15}]",
        "subscriptions: [{plan: pro, start: 2026-09-15, end: 2026-10-15}]",
    )
    assert ended != CUSTOMERS
    write_workspace(root, meters=METERS_CALLS, plans=PLANS, customers=ended)
    rules = load_rules(root / "rules")
    assert running_cycle("acme", "2026-10-15/2026-11-15", rules) == "2026-10-15/2026-11-15"
    entries = fee_reduction_entries(FEE_NOTE, ACME_INVOICE, rules, recut={})
    assert [
        (e.date, e.meta["cycle"], [(p.account, p.units.number) for p in e.postings])
        for e in entries
    ] == [
        (
            day,
            "2026-10-15/2026-11-15",
            [
                ("Income:Subscriptions:Pro", D(amount)),
                ("Liabilities:Deferred-Revenue:Acme", -D(amount)),
            ],
        )
        for day, amount in ((date(2026, 10, 31), "3.60"), (date(2026, 11, 14), "8.40"))
    ]


def test_fee_reduction_on_an_add_ons_fee_follows_the_add_on(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A note on an add-on's advance fee is scheduled over the add-on's cycle, from its plan.

    acme runs ``pro`` from 2026-09-15 and, beside it, ``support`` (a 30.00 fee, no charges)
    as its subscription ``id: addon`` from the same day (both anchored on the 15th), the
    add-on cancelled from Nov 1.
    INV-2026-000004's add-on line billed 30.00 for ``[Oct 15, Nov 15)`` (link
    ``acme/addon-2026-10-15``); CN-2026-000003 takes 12.00 of it out on Oct 26. The add-on's
    cycle is now ``[Oct 15, Nov 1)`` (the main plan's still runs to Nov 15): all 12.00 comes
    out on Oct 31, its last day, and out of ``support``'s revenue (the main subscription's cycle,
    with the billed key, would say ``pro`` and 3.60 by Oct 31, 8.40 on Nov 14).
    """
    root = tmp_path_factory.mktemp("addon") / "ws"
    addon = CUSTOMERS.replace(
        "subscriptions: [{plan: pro, start: 2026-09-15}]",
        "subscriptions: [{plan: pro, start: 2026-09-15},"
        " {id: addon, plan: support, start: 2026-09-15, end: 2026-11-01, billing_anchor: start}]",
    )
    assert addon != CUSTOMERS
    plans = (
        PLANS + '  support:\n    currency: USD\n    base_fee: {amount: "30.00", timing: advance}\n'
    )
    write_workspace(root, meters=METERS_CALLS, plans=plans, customers=addon)
    rules = load_rules(root / "rules")
    # the add-on's cycle is cut, the main subscription's (the default series) is not
    assert running_cycle("acme", "2026-10-15/2026-11-15", rules, "addon") == "2026-10-15/2026-11-01"
    assert running_cycle("acme", "2026-10-15/2026-11-15", rules) == "2026-10-15/2026-11-15"
    main_cut = tmp_path_factory.mktemp("main-cut") / "ws"
    write_workspace(main_cut, meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS.replace(
        "{plan: pro, start: 2026-09-15}", "{plan: pro, start: 2026-09-15, end: 2026-11-01}"
    ))  # fmt: skip
    cut = load_rules(main_cut / "rules")
    assert running_cycle("acme", "2026-10-15/2026-11-15", cut) == "2026-10-15/2026-11-01"
    cycle, description = (
        "2026-10-15/2026-11-15",
        "support base fee 2026-10-15/2026-11-15 (in advance)",
    )
    fee = InvoiceLine(
        "base_fee", description, "deferred", D("30.00"), cycle=cycle, link="acme/addon-2026-10-15"
    )
    invoice = replace(ACME_INVOICE, lines=(*ACME_INVOICE.lines[:2], fee))
    note = replace(
        FEE_NOTE,
        line_description=description,
        parts=(replace(FEE_NOTE.parts[0], description=description),),
    )
    entries = fee_reduction_entries(note, invoice, rules, recut={})
    assert [
        (e.date, e.meta["cycle"], [(p.account, p.units.number) for p in e.postings])
        for e in entries
    ] == [
        (
            date(2026, 10, 31),
            "2026-10-15/2026-11-01",
            [
                ("Income:Subscriptions:Support", D("12.00")),
                ("Liabilities:Deferred-Revenue:Acme", D("-12.00")),
            ],
        )
    ]


# --- adjustments.py -----------------------------------------------------------------------


def test_debit_adjustment(rules: Rules, tmp_path: Path) -> None:
    """A rerate that raises an issued line: revenue earned now, unbilled until the next invoice.

    beta's September usage was invoiced at 80 × 0.05 = 4.00 (INV-2026-000003); a plan
    version effective Sep 1 prices the calls at 0.06: 4.80. On Nov 25 DA-2026-000001
    books the 0.80 difference as late usage is booked (unbilled / usage revenue),
    with its document on unbilled. Loaded: unbilled 0.80, usage revenue 4.80.
    """
    adjustment = Adjustment(
        run=1,
        document="DA-2026-000001",
        customer="beta",
        invoice="INV-2026-000003",
        line=1,
        line_key="usage:api_calls",
        kind="usage",
        meter="api_calls",
        link="beta-2026-09-01",
        cycle="2026-09-01/2026-10-01",
        currency="USD",
        invoiced=D("4.00"),
        rerated=D("4.80"),
        amount=D("0.80"),
        date=date(2026, 11, 25),
        since=date(2026, 9, 1),
        rules="rules-2",
    )
    entries = debit_entries([adjustment], rules)
    assert_ledger(
        entries,
        r"""
        2026-11-25 * "beta" "Debit adjustment DA-2026-000001 for INV-2026-000003" \
            ^DA-2026-000001 ^INV-2026-000003 ^beta-2026-09-01
          customer: "beta"
          invoice: "INV-2026-000003"
          debit_adjustment: "DA-2026-000001"
          cycle: "2026-09-01/2026-10-01"
          rerate: TRUE
          rules: "rules-2"
          Assets:Receivables:Unbilled:Beta   0.80 USD
          Income:Usage:Api-Calls            -0.80 USD
            meter: "api_calls"

        2026-11-25 document Assets:Receivables:Unbilled:Beta "../documents/DA-2026-000001.html" \
            ^DA-2026-000001
        """,
    )
    books = [*accrual_entries([BETA_SEP30], rules), *invoice_entries([BETA_INVOICE], rules)]
    assert_books(
        tmp_path,
        [*books, *entries],
        """
        2026-11-26 balance Assets:Receivables:Unbilled:Beta   0.80 USD
        2026-11-26 balance Income:Usage:Api-Calls            -4.80 USD
        """,
    )


def test_debit_adjustment_of_a_commitment_a_fee_and_an_advance_fee(
    rules: Rules, tmp_path: Path
) -> None:
    """A rerate that raises three other lines of beta's September cycle on one document,
    DA-2026-000002 of Nov 25 (6.00 into unbilled): the commitment shortfall by 1.00 (commitment
    revenue), the cycle's base fee billed in arrears by 2.00 (subscription revenue of its plan,
    ``std``) and a subscription change's fee billed in advance by 3.00 (deferred revenue: it is
    earned as the cycle runs). Lines in line-key order; no meter on any of them. Loaded:
    unbilled 6.00."""

    def line(number: int, kind: str, amount: str) -> Adjustment:
        return Adjustment(
            run=2, document="DA-2026-000002", customer="beta", invoice="INV-2026-000003",
            line=number, line_key=kind, kind=kind, meter="", link="beta-2026-09-01",
            cycle="2026-09-01/2026-10-01", currency="USD", invoiced=D(0), rerated=D(amount),
            amount=D(amount), date=date(2026, 11, 25), since=date(2026, 9, 1), rules="rules-3",
        )  # fmt: skip

    adjustments = [line(2, "commitment", "1.00"), line(3, "base_fee", "2.00")]
    adjustments.append(line(4, "subscription", "3.00"))
    entries = debit_entries(adjustments, rules)
    assert_ledger(
        entries[:1],
        r"""
        2026-11-25 * "beta" "Debit adjustment DA-2026-000002 for INV-2026-000003" \
            ^DA-2026-000002 ^INV-2026-000003 ^beta-2026-09-01
          customer: "beta"
          invoice: "INV-2026-000003"
          debit_adjustment: "DA-2026-000002"
          cycle: "2026-09-01/2026-10-01"
          rerate: TRUE
          rules: "rules-3"
          Assets:Receivables:Unbilled:Beta    6.00 USD
          Income:Subscriptions:Std           -2.00 USD
          Income:Commitment-Shortfall        -1.00 USD
          Liabilities:Deferred-Revenue:Beta  -3.00 USD
        """,
    )
    assert_books(
        tmp_path,
        entries,
        """
        2026-11-26 balance Assets:Receivables:Unbilled:Beta   6.00 USD
        """,
    )


def test_mark_credit_notes_a_rerate_issued() -> None:
    """Credit notes a rerate issued say so: ``rerate: TRUE``, the rules and the cycles.

    A version lowering acme's commitment to 19.00 makes the Sep 15 cycle's shortfall
    4.00, not 5.00: the rerate issues CN-2026-000004 for 1.00. Ledger text in: that
    note and CN-2026-000001 (goodwill, issued by hand); out: the rerate's note marked,
    the other untouched.
    """
    entries = parsed(r"""
        2026-10-20 * "acme" "Credit note CN-2026-000001 for INV-2026-000004" \
            ^CN-2026-000001 ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          credit_note: "CN-2026-000001"
          reason: "goodwill"
          Income:Credit-Notes                2.00 USD
          Assets:Receivables:Invoiced:Acme  -2.00 USD

        2026-11-25 * "acme" "Credit note CN-2026-000004 for INV-2026-000004" \
            ^CN-2026-000004 ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          credit_note: "CN-2026-000004"
          reason: "re-rated from 2026-09-15 with rules rules-2: minimum commitment -1.00"
          Income:Credit-Notes                1.00 USD
          Assets:Receivables:Invoiced:Acme  -1.00 USD
        """)
    adjustment = Adjustment(
        run=1,
        document="CN-2026-000004",
        customer="acme",
        invoice="INV-2026-000004",
        line=2,
        line_key="commitment",
        kind="commitment",
        meter="",
        link="acme-2026-09-15",
        cycle="2026-09-15/2026-10-15",
        currency="USD",
        invoiced=D("5.00"),
        rerated=D("4.00"),
        amount=D("-1.00"),
        date=date(2026, 11, 25),
        since=date(2026, 9, 15),
        rules="rules-2",
    )
    assert_ledger(
        mark_credit_notes(entries, [adjustment]),
        r"""
        2026-10-20 * "acme" "Credit note CN-2026-000001 for INV-2026-000004" \
            ^CN-2026-000001 ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          credit_note: "CN-2026-000001"
          reason: "goodwill"
          Income:Credit-Notes                2.00 USD
          Assets:Receivables:Invoiced:Acme  -2.00 USD

        2026-11-25 * "acme" "Credit note CN-2026-000004 for INV-2026-000004" \
            ^CN-2026-000004 ^INV-2026-000004 ^acme-2026-09-15 ^acme-2026-10-15
          customer: "acme"
          invoice: "INV-2026-000004"
          credit_note: "CN-2026-000004"
          reason: "re-rated from 2026-09-15 with rules rules-2: minimum commitment -1.00"
          rerate: TRUE
          rules: "rules-2"
          cycle: "2026-09-15/2026-10-15"
          Income:Credit-Notes                1.00 USD
          Assets:Receivables:Invoiced:Acme  -1.00 USD
        """,
    )


# --- sealed.py ----------------------------------------------------------------------------

#: October is sealed; its file holds acme's accrual of Oct 31 for [Oct 15, Nov 15): 210
#: calls, 200 × 0.05 = 10.00, and 30.00 × 17/31 = 16.45 of the fee.
SEALED_OCTOBER = """
    2026-10-31 * "acme" "Usage accrual 2026-10-15/2026-11-15 through 2026-10-31" ^acme-2026-10-15
      customer: "acme"
      cycle: "2026-10-15/2026-11-15"
      meter: "api_calls"
      quantities: "api_calls=210"
      rules: "rules-1"
      evidence: "ev-acme-1031"
      Liabilities:Deferred-Revenue:Acme   16.45 USD
      Income:Subscriptions:Pro           -16.45 USD
      Assets:Receivables:Unbilled:Acme    10.00 USD
      Income:Usage:Api-Calls             -10.00 USD
        meter: "api_calls"
        quantity: 210
    """
#: regeneration's Nov 14 accrual (an open month): written as it is.
NOVEMBER = """
    2026-11-14 * "acme" "Usage accrual 2026-10-15/2026-11-15 through 2026-11-14" ^acme-2026-10-15
      customer: "acme"
      cycle: "2026-10-15/2026-11-15"
      meter: "api_calls"
      quantities: "api_calls=410"
      rules: "rules-1"
      evidence: "ev-acme-1114"
      Liabilities:Deferred-Revenue:Acme   13.55 USD
      Income:Subscriptions:Pro           -13.55 USD
      Assets:Receivables:Unbilled:Acme    10.00 USD
      Income:Usage:Api-Calls             -10.00 USD
        meter: "api_calls"
        quantity: 410
    """


def test_catch_up_late_usage_behind_the_seal(tmp_path: Path) -> None:
    """Usage that arrived for a sealed month: the difference, posted on the first open day.

    20 calls of Oct 28 arrive in November, after October was sealed; acme's cycle is not
    invoiced yet, so regeneration now accrues 230 calls, 11.00, on Oct 31. The sealed
    file is never rewritten: the 11.00 − 10.00 = 1.00 and the 230 − 210 = 20 calls are
    a late adjustment dated Nov 1 (``usage_date`` Oct 31, the evidence regeneration
    has now). The November accrual is written as it is. Ledger text in (sealed and
    regenerated), ledger text out. Once November is sealed too, its file holding the
    adjustment, the next run posts nothing: earlier adjustments are on record. Loaded
    with the sealed file: unbilled 11.00 on Nov 2, as regeneration says.
    """
    now = SEALED_OCTOBER.replace("210", "230").replace("10.00", "11.00")
    regenerated = parsed(now.replace("ev-acme-1031", "ev-acme-1031b") + NOVEMBER)
    recorded = parsed(SEALED_OCTOBER)
    write, adjustments = catch_up(
        regenerated, recorded, first_open=date(2026, 11, 1), rules_hash="rules-1"
    )
    assert write == regenerated[1:]
    assert_ledger(
        adjustments,
        r"""
        2026-11-01 * "acme" "Late adjustment for sealed period 2026-10" ^acme-2026-10-15
          customer: "acme"
          cycle: "2026-10-15/2026-11-15"
          meter: "api_calls"
          quantities: "api_calls=20"
          rules: "rules-1"
          evidence: "ev-acme-1031b"
          usage_date: 2026-10-31
          late: TRUE
          Assets:Receivables:Unbilled:Acme   1.00 USD
          Income:Usage:Api-Calls            -1.00 USD
            meter: "api_calls"
            quantity: 20
        """,
    )
    sealed_november = [*recorded, *adjustments, *write]
    assert catch_up(
        regenerated, sealed_november, first_open=date(2026, 12, 1), rules_hash="rules-1"
    ) == ([], [])
    assert_books(
        tmp_path,
        [*recorded, *adjustments],
        """
        2026-11-02 balance Assets:Receivables:Unbilled:Acme   11.00 USD
        2026-11-02 balance Income:Usage:Api-Calls            -11.00 USD
        """,
    )


def test_catch_up_repricing_behind_the_seal() -> None:
    """Same quantities, other amounts: the terms changed behind the seal, not the usage.

    A plan version effective Oct 15 prices acme's calls at 0.06, and the cycle is not
    invoiced yet: regeneration accrues the same 210 calls at 200 × 0.06 = 12.00 on
    Oct 31. The 2.00 difference is a re-pricing (``repriced: TRUE``), its quantities
    the (zero) change, with no per-posting quantity: no usage arrived.
    """
    now = SEALED_OCTOBER.replace("10.00", "12.00")
    regenerated = parsed(now + NOVEMBER)
    write, adjustments = catch_up(
        regenerated, parsed(SEALED_OCTOBER), first_open=date(2026, 11, 1), rules_hash="rules-1"
    )
    assert write == regenerated[1:]
    assert_ledger(
        adjustments,
        r"""
        2026-11-01 * "acme" "Re-pricing of sealed period 2026-10: same quantities, current terms" \
            ^acme-2026-10-15
          customer: "acme"
          cycle: "2026-10-15/2026-11-15"
          meter: "api_calls"
          quantities: "api_calls=0"
          rules: "rules-1"
          evidence: "ev-acme-1031"
          usage_date: 2026-10-31
          late: TRUE
          repriced: TRUE
          Assets:Receivables:Unbilled:Acme   2.00 USD
          Income:Usage:Api-Calls            -2.00 USD
            meter: "api_calls"
        """,
    )


# --- the composition: ledger.journal.post -------------------------------------------------


def test_post_prepaid_credit_through_expiry(rules: Rules, tmp_path: Path) -> None:
    """Every entry of a rating: accruals, the issued invoices, breakage.

    gift's grant of 5.00 is billed on INV-2026-000001 (receivable / deferred). Its
    September, 74 calls (64 × 0.05 = 3.20), is rated through Oct 15 and all drawn from
    the grant: the Sep 30 accrual takes 3.20 out of deferred revenue, not unbilled.
    1.80 is left at expiry on Oct 15: breakage. Loaded: deferred revenue 0, revenue
    3.20 + 1.80 = 5.00, the grant's price.
    """
    cycle = september("gift")
    charge = ChargeRating(0, "api_calls", "graduated", D(74), 74, D("3.20"), (), True)
    rated = CycleRating(cycle, date(2026, 9, 30), "USD", (charge,), None, D(0), D("3.20"))
    rating = Rating(
        through=date(2026, 10, 15),
        cycles=(rated,),
        credits=(
            CreditMovement("gift", 0, date(2026, 9, 30), "draw", D("3.20"), cycle),
            CreditMovement("gift", 0, date(2026, 10, 15), "breakage", D("1.80")),
        ),
    )
    entries = post(
        rating,
        rules,
        [GRANT_INVOICE],
        first_open=date(2026, 9, 1),
        evidence={("gift-2026-09-01", date(2026, 9, 30)): "ev-gift-0930"},
    )
    assert_ledger(
        entries,
        r"""
        2026-09-30 * "gift" "Usage accrual 2026-09-01/2026-10-01 through 2026-09-30" \
            ^gift-2026-09-01
          customer: "gift"
          cycle: "2026-09-01/2026-10-01"
          meter: "api_calls"
          quantities: "api_calls=74"
          rules: "rules-1"
          evidence: "ev-gift-0930"
          Liabilities:Deferred-Revenue:Gift   3.20 USD
          Income:Usage:Api-Calls             -3.20 USD
            meter: "api_calls"
            quantity: 74

        2026-09-01 * "gift" "Invoice INV-2026-000001" ^INV-2026-000001
          customer: "gift"
          invoice: "INV-2026-000001"
          due: 2026-09-01
          rules: "rules-1"
          Assets:Receivables:Invoiced:Gift    5.00 USD
          Liabilities:Deferred-Revenue:Gift  -5.00 USD

        2026-09-01 document Assets:Receivables:Invoiced:Gift "../documents/INV-2026-000001.html" \
            ^INV-2026-000001

        2026-10-15 * "gift" "Prepaid credit expired (breakage)" ^INV-2026-000001
          customer: "gift"
          grant: "2026-09-01#1"
          expires: 2026-10-15
          grant_invoice: "INV-2026-000001"
          rules: "rules-1"
          Liabilities:Deferred-Revenue:Gift   1.80 USD
          Income:Credit-Breakage             -1.80 USD
        """,
    )
    assert_books(
        tmp_path,
        entries,
        """
        2026-10-16 balance Liabilities:Deferred-Revenue:Gift   0.00 USD
        2026-10-16 balance Income:Usage:Api-Calls             -3.20 USD
        2026-10-16 balance Income:Credit-Breakage             -1.80 USD
        2026-10-16 balance Assets:Receivables:Invoiced:Gift    5.00 USD
        """,
    )


def test_post_keeps_invoiced_accruals(rules: Rules, tmp_path: Path) -> None:
    """An invoiced cycle's accruals are posted as its invoice froze them; the rest is late.

    beta's September was invoiced at 90 calls, 4.00 (INV-2026-000003, which froze
    the Sep 30 accrual). Rated again after 40 late calls: 130 calls, 6.00. ``post``
    writes the frozen 4.00 accrual (regenerating never moves an invoiced accrual), a
    late entry of 2.00 dated the first open day, Nov 1, and the invoice. Loaded:
    unbilled 0 after the invoice, 2.00 from Nov 1 (for beta's next invoice).
    """
    cycle = september("beta")
    charge = ChargeRating(0, "api_calls", "graduated", D(130), 130, D("6.00"), (), True)
    rated = CycleRating(cycle, date(2026, 9, 30), "USD", (charge,), None, D(0), D(0))
    rating = Rating(through=date(2026, 11, 1), cycles=(rated,))
    entries = post(
        rating,
        rules,
        [BETA_INVOICE],
        first_open=date(2026, 11, 1),
        evidence={("beta-2026-09-01", date(2026, 9, 30)): "ev-beta-0930-late"},
    )
    assert_ledger(
        entries,
        r"""
        2026-09-30 * "beta" "Usage accrual 2026-09-01/2026-10-01 through 2026-09-30" \
            ^beta-2026-09-01
          customer: "beta"
          cycle: "2026-09-01/2026-10-01"
          meter: "api_calls"
          quantities: "api_calls=90"
          rules: "rules-1"
          evidence: "ev-beta-0930"
          Assets:Receivables:Unbilled:Beta   4.00 USD
          Income:Usage:Api-Calls            -4.00 USD
            meter: "api_calls"
            quantity: 90

        2026-11-01 * "beta" "Late usage for invoiced cycle 2026-09-01/2026-10-01" ^beta-2026-09-01
          customer: "beta"
          cycle: "2026-09-01/2026-10-01"
          meter: "api_calls"
          quantities: "api_calls=40"
          rules: "rules-1"
          evidence: "ev-beta-0930-late"
          usage_date: 2026-09-30
          late: TRUE
          Assets:Receivables:Unbilled:Beta   2.00 USD
          Income:Usage:Api-Calls            -2.00 USD
            meter: "api_calls"
            quantity: 40

        2026-10-01 * "beta" "Invoice INV-2026-000003" ^INV-2026-000003 ^beta-2026-09-01
          customer: "beta"
          invoice: "INV-2026-000003"
          due: 2026-10-01
          rules: "rules-1"
          cycle: "2026-09-01/2026-10-01"
          evidence: "ad9dc8cc3af966c9"
          Assets:Receivables:Invoiced:Beta   4.00 USD
          Assets:Receivables:Unbilled:Beta  -4.00 USD

        2026-10-01 document Assets:Receivables:Invoiced:Beta "../documents/INV-2026-000003.html" \
            ^INV-2026-000003
        """,
    )
    assert_books(
        tmp_path,
        entries,
        """
        2026-10-02 balance Assets:Receivables:Unbilled:Beta   0.00 USD
        2026-11-02 balance Assets:Receivables:Unbilled:Beta   2.00 USD
        """,
    )


# --- the builders one at a time ------------------------------------------------------------
BUILDER_PLANS = """\
plans:
  pro:
    currency: USD
    base_fee: {amount: "49.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.001"}
      - {meter: tokens, model: unit, unit_price: "0.01"}
  yen:
    currency: JPY
    charges:
      - {meter: tokens, model: unit, unit_price: "1"}
"""
BUILDER_CUSTOMERS = """\
customers:
  acme:
    currency: USD
    billing_anchor: start
    subscriptions: [{plan: pro, start: 2026-09-15}]
    credits:
      - {amount: "5.00", granted: 2026-09-01, expires: 2026-10-10}
      - {amount: "9.00", granted: 2026-09-01, expires: 2026-10-31}
      - {amount: "100.00", granted: 2026-10-01}
  kaisha:
    currency: JPY
    billing_anchor: calendar
    subscriptions: [{plan: yen, start: 2026-09-01}]
    credits: [{amount: "1000", granted: 2026-09-01, expires: 2026-09-30}]
"""
ACME = "acme-2026-09-15"
ACME_CYCLE = "2026-09-15/2026-10-15"


@pytest.fixture
def builder_rules(tmp_path: Path) -> Rules:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "meters.yaml").write_text(METERS_CALLS_TOKENS)
    (folder / "plans.yaml").write_text(BUILDER_PLANS)
    (folder / "customers.yaml").write_text(BUILDER_CUSTOMERS)
    return load_rules(folder, dict(load_registry(None).pricing_models))


def _snap(
    through: date,
    targets: dict[str, str],
    quantities: dict[str, int],
    evidence: str = "",
    *,
    link: str = ACME,
    customer: str = "acme",
    cycle: str = ACME_CYCLE,
    currency: str = "USD",
) -> Snapshot:
    return Snapshot(
        link=link,
        customer=customer,
        cycle=cycle,
        plan="pro",
        through=through,
        currency=currency,
        targets=tuple(sorted((k, D(v)) for k, v in targets.items())),
        quantities=tuple(sorted((m, D(q)) for m, q in quantities.items())),
        evidence=evidence,
    )


Row = tuple[str, str, Decimal, dict[str, object]]


def _shape(entry: data.Directive) -> tuple[object, ...]:
    """An entry as comparable values: date, flag, payee, narration, links, tags, metadata
    (without where it was read from) and per posting account, number, currency, metadata."""
    meta = {k: v for k, v in (entry.meta or {}).items() if k not in ("filename", "lineno")}
    if isinstance(entry, data.Document):  # generated: no metadata but where it comes from
        where = entry.meta
        return (
            entry.date,
            "document",
            entry.account,
            entry.filename,
            entry.tags,
            entry.links,
            where,
        )
    assert isinstance(entry, data.Transaction)
    postings = [
        (
            p.account,
            p.units.number,
            p.units.currency,
            {k: v for k, v in (p.meta or {}).items() if k not in ("filename", "lineno")},
        )
        for p in entry.postings
    ]
    return (
        entry.date,
        entry.flag,
        entry.payee,
        entry.narration,
        entry.links,
        entry.tags,
        meta,
        postings,
    )


def _loaded(entries: Sequence[data.Directive]) -> list[data.Directive]:
    """The entries printed as Beancount text (every account opened) and loaded back: the loader
    finds no error, so every transaction balances and every metadata value parses."""
    accounts = sorted(
        {p.account for e in entries if isinstance(e, data.Transaction) for p in e.postings}
        | {e.account for e in entries if isinstance(e, data.Document)}
    )
    opens = "".join(f"2026-01-01 open {a}\n" for a in accounts)
    text = 'option "operating_currency" "USD"\n' + opens + "\n" + format_entries(entries)
    loaded, errors, _ = loader.load_string(text)
    assert [e.message for e in errors] == []
    return [e for e in loaded if not isinstance(e, data.Open)]


# --- accrual_entries -------------------------------------------------------------------------


def test_accruals_post_the_change_in_each_cycles_targets(builder_rules: Rules) -> None:
    """acme's cycle [Sep 15, Oct 15), pro's 49.00 base fee in advance:

    - Sep 30: 16 of 30 days recognized, 49.00 × 16/30 = 26.13; 14,000 calls × 0.001 = 4.00,
      no tokens: deferred 26.13, Income:Subscriptions:Pro −26.13, unbilled 4.00,
      Income:Usage:Api-Calls −4.00 (quantity 14000).
    - Oct 7: nothing moved (same targets): no entry, and the Oct 14 change is still taken
      from Sep 30, not from Oct 7's equal figures.
    - Oct 14: all 49.00 recognized (+22.87); 36,000 calls = 36.00 (+32.00); 250 tokens × 0.01
      = 2.50 (+2.50, its first posting); a commitment shortfall of 1.50 (pro's 40.00 minimum
      less 38.50 of usage): unbilled 4.00 → 40.00 (+36.00).

    kaisha's calendar cycle [Oct 1, Nov 1) in JPY: 300 tokens of volume-like (non-final)
    usage → contract asset 300 JPY, Income:Usage:Tokens −300, its evidence kept. Entries come
    in (cycle link, date) order whatever the order of the snapshots.
    """
    sep30 = _snap(
        date(2026, 9, 30),
        {
            "deferred": "26.13",
            "subscription_revenue:pro": "26.13",
            "unbilled": "4.00",
            "usage_revenue:api_calls": "4.00",
        },
        {"api_calls": 14000, "tokens": 0},
        "e-sep30",
    )
    oct7 = _snap(date(2026, 10, 7), dict(sep30.targets), {"api_calls": 14000, "tokens": 0}, "e7")
    oct14 = _snap(
        date(2026, 10, 14),
        {
            "commitment_revenue:": "1.50",
            "deferred": "49.00",
            "subscription_revenue:pro": "49.00",
            "unbilled": "40.00",
            "usage_revenue:api_calls": "36.00",
            "usage_revenue:tokens": "2.50",
        },
        {"api_calls": 36000, "tokens": 250},
    )
    kaisha = _snap(
        date(2026, 10, 31),
        {"contract_asset": "300", "usage_revenue:tokens": "300"},
        {"tokens": 300},
        "e-kaisha",
        link="kaisha-2026-10-01",
        customer="kaisha",
        cycle="2026-10-01/2026-11-01",
        currency="JPY",
    )
    entries = accrual_entries([kaisha, oct14, oct7, sep30], builder_rules)
    link = frozenset({ACME})
    common = {"customer": "acme", "cycle": ACME_CYCLE, "meter": "api_calls,tokens"}
    assert [_shape(e) for e in entries] == [
        (
            date(2026, 9, 30),
            "*",
            "acme",
            "Usage accrual 2026-09-15/2026-10-15 through 2026-09-30",
            link,
            frozenset(),
            {
                **common,
                "quantities": "api_calls=14000,tokens=0",
                "rules": builder_rules.hash,
                "evidence": "e-sep30",
            },
            [
                ("Liabilities:Deferred-Revenue:Acme", D("26.13"), "USD", {}),
                ("Income:Subscriptions:Pro", D("-26.13"), "USD", {}),
                ("Assets:Receivables:Unbilled:Acme", D("4.00"), "USD", {}),
                (
                    "Income:Usage:Api-Calls",
                    D("-4.00"),
                    "USD",
                    {"meter": "api_calls", "quantity": D(14000)},
                ),
            ],
        ),
        (
            date(2026, 10, 14),
            "*",
            "acme",
            "Usage accrual 2026-09-15/2026-10-15 through 2026-10-14",
            link,
            frozenset(),
            {**common, "quantities": "api_calls=36000,tokens=250", "rules": builder_rules.hash},
            [
                ("Income:Commitment-Shortfall", D("-1.50"), "USD", {}),
                ("Liabilities:Deferred-Revenue:Acme", D("22.87"), "USD", {}),
                ("Income:Subscriptions:Pro", D("-22.87"), "USD", {}),
                ("Assets:Receivables:Unbilled:Acme", D("36.00"), "USD", {}),
                (
                    "Income:Usage:Api-Calls",
                    D("-32.00"),
                    "USD",
                    {"meter": "api_calls", "quantity": D(36000)},
                ),
                ("Income:Usage:Tokens", D("-2.50"), "USD", {"meter": "tokens", "quantity": D(250)}),
            ],
        ),
        (
            date(2026, 10, 31),
            "*",
            "kaisha",
            "Usage accrual 2026-10-01/2026-11-01 through 2026-10-31",
            frozenset({"kaisha-2026-10-01"}),
            frozenset(),
            {
                "customer": "kaisha",
                "cycle": "2026-10-01/2026-11-01",
                "meter": "tokens",
                "quantities": "tokens=300",
                "rules": builder_rules.hash,
                "evidence": "e-kaisha",
            },
            [
                ("Assets:Contract-Assets:Kaisha", D(300), "JPY", {}),
                ("Income:Usage:Tokens", D(-300), "JPY", {"meter": "tokens", "quantity": D(300)}),
            ],
        ),
    ]
    books = _loaded(entries)
    # through Oct 14 the cycle's balances are its targets: 40.00 unbilled, 49.00 recognized
    assert balance(books, "Assets:Receivables:Unbilled:Acme", date(2026, 10, 15)) == D("40.00")
    assert balance(books, "Income:Subscriptions:Pro", date(2026, 10, 15)) == D("-49.00")
    assert balance(books, "Income:Usage:Tokens", date(2026, 11, 1), "JPY") == D(-300)


def test_a_usage_revenue_posting_without_a_quantity_names_its_meter_only(
    builder_rules: Rules,
) -> None:
    """A snapshot whose quantities do not list a charged meter (written before quantities were
    kept): the revenue posting names the meter, no quantity; the entry names no meter."""
    old = _snap(date(2026, 9, 30), {"unbilled": "4.00", "usage_revenue:api_calls": "4.00"}, {})
    [entry] = accrual_entries([old], builder_rules)
    assert "meter" not in entry.meta and "quantities" not in entry.meta
    assert [(p.account, p.meta) for p in entry.postings] == [
        ("Assets:Receivables:Unbilled:Acme", None),
        ("Income:Usage:Api-Calls", {"meter": "api_calls"}),
    ]


# --- late_entries ----------------------------------------------------------------------------


def test_late_usage_posts_targets_now_less_the_frozen_ones(builder_rules: Rules) -> None:
    """acme's cycle was invoiced Oct 15 with its Oct 14 targets frozen: 36,000 calls (36.00),
    no tokens. Then 2,000 calls (+2.00) and 250 tokens (+2.50, a meter the frozen snapshot
    did not list) arrive for it: one entry dated Nov 1 (the first open day, given), usage_date
    Oct 14, late, quantities the change (api_calls=2000, tokens=250), +4.50 unbilled.
    A second late pair whose targets did not move posts nothing. kaisha's October, invoiced
    with 300 tokens (300 JPY), is corrected to 0 tokens by a negative event: its targets are
    gone (none left to hold), so the late entry takes all 300 back: unbilled −300, revenue
    +300, quantities tokens=-300."""
    frozen = _snap(
        date(2026, 10, 14),
        {"unbilled": "36.00", "usage_revenue:api_calls": "36.00"},
        {"api_calls": 36000},
        "e-frozen",
    )
    now = _snap(
        date(2026, 10, 14),
        {"unbilled": "40.50", "usage_revenue:api_calls": "38.00", "usage_revenue:tokens": "2.50"},
        {"api_calls": 38000, "tokens": 250},
        "e-now",
    )
    kaisha_frozen = _snap(
        date(2026, 10, 31),
        {"unbilled": "300", "usage_revenue:tokens": "300"},
        {"tokens": 300},
        link="kaisha-2026-10-01",
        customer="kaisha",
        cycle="2026-10-01/2026-11-01",
        currency="JPY",
    )
    kaisha_now = replace(kaisha_frozen, targets=(), quantities=(("tokens", D(0)),))
    entries = late_entries(
        [
            (frozen, frozen, date(2026, 10, 20)),
            (now, frozen, date(2026, 11, 1)),
            (kaisha_now, kaisha_frozen, date(2026, 11, 1)),
        ],
        builder_rules,
    )
    assert [_shape(e) for e in entries] == [
        (
            date(2026, 11, 1),
            "*",
            "acme",
            "Late usage for invoiced cycle 2026-09-15/2026-10-15",
            frozenset({ACME}),
            frozenset(),
            {
                "customer": "acme",
                "cycle": ACME_CYCLE,
                "meter": "api_calls,tokens",
                "quantities": "api_calls=2000,tokens=250",
                "rules": builder_rules.hash,
                "evidence": "e-now",
                "usage_date": date(2026, 10, 14),
                "late": True,
            },
            [
                ("Assets:Receivables:Unbilled:Acme", D("4.50"), "USD", {}),
                (
                    "Income:Usage:Api-Calls",
                    D("-2.00"),
                    "USD",
                    {"meter": "api_calls", "quantity": D(2000)},
                ),
                ("Income:Usage:Tokens", D("-2.50"), "USD", {"meter": "tokens", "quantity": D(250)}),
            ],
        ),
        (
            date(2026, 11, 1),
            "*",
            "kaisha",
            "Late usage for invoiced cycle 2026-10-01/2026-11-01",
            frozenset({"kaisha-2026-10-01"}),
            frozenset(),
            {
                "customer": "kaisha",
                "cycle": "2026-10-01/2026-11-01",
                "meter": "tokens",
                "quantities": "tokens=-300",
                "rules": builder_rules.hash,
                "usage_date": date(2026, 10, 31),
                "late": True,
            },
            [
                ("Assets:Receivables:Unbilled:Kaisha", D(-300), "JPY", {}),
                ("Income:Usage:Tokens", D(300), "JPY", {"meter": "tokens", "quantity": D(-300)}),
            ],
        ),
    ]
    assert balance(_loaded(entries), "Income:Usage:Api-Calls", date(2026, 11, 2)) == D("-2.00")


# --- invoice_entries and invoice_evidence ----------------------------------------------------


def _line(kind: str, account: str, amount: str, link: str = "", cycle: str = "") -> InvoiceLine:
    return InvoiceLine(
        kind=kind, description=kind, account=account, amount=D(amount), cycle=cycle, link=link
    )


def test_an_invoice_moves_what_it_bills_into_the_receivable(builder_rules: Rules) -> None:
    """acme's Oct 15 invoice INV-2026-000007 (due Nov 14): usage 36.00 (unbilled) and 3.00
    (contract asset) of the cycle [Sep 15, Oct 15), credit applied −2.00 (unbilled), the next
    cycle's 49.00 base fee in advance and a 100.00 credit grant (both deferred): 186.00, plus
    7.25 of US-CA tax = 193.25 receivable; unbilled −34.00, contract asset −3.00, deferred
    −149.00, Liabilities:Tax:US-CA −7.25. It froze two accruals (Sep 30 "e1", Oct 14 "e2"):
    evidence = sha256 of "acme-2026-09-15\\t2026-09-30\\te1\\n" and the Oct 14 line, cut to 16
    hex digits. Its document: ../documents/INV-2026-000007.html on the receivable, dated Oct 15.

    kaisha's grant invoice INV-2026-000002 (Sep 1, no due date given): 1000 JPY deferred, no
    unbilled or contract asset posting (nothing settled there), no cycle, no evidence (it froze
    no accrual), linked to itself only; its document under the folder given.
    """
    next_cycle = "2026-10-15/2026-11-15"
    acme = Invoice(
        customer="acme",
        date=date(2026, 10, 15),
        currency="USD",
        lines=(
            _line("usage", "unbilled", "36.00", ACME, ACME_CYCLE),
            _line("usage", "contract_asset", "3.00", ACME, ACME_CYCLE),
            _line("credit_applied", "unbilled", "-2.00", ACME, ACME_CYCLE),
            _line("base_fee", "deferred", "49.00", "acme-2026-10-15", next_cycle),
            _line("credit_grant", "deferred", "100.00"),
        ),
        rules="r-acme",
        number="INV-2026-000007",
        accruals=(
            _snap(date(2026, 10, 14), {"unbilled": "34.00"}, {}, "e2"),
            _snap(date(2026, 9, 30), {"unbilled": "4.00"}, {}, "e1"),
        ),
        due=date(2026, 11, 14),
        tax=Tax(lines=(TaxLine("US-CA", D("0.0725"), D("100.00"), D("7.25")),)),
    )
    kaisha = Invoice(
        customer="kaisha",
        date=date(2026, 9, 1),
        currency="JPY",
        lines=(_line("credit_grant", "deferred", "1000"),),
        rules="r-kaisha",
        number="INV-2026-000002",
    )
    evidence = hashlib.sha256(
        f"{ACME}\t2026-09-30\te1\n{ACME}\t2026-10-14\te2\n".encode()
    ).hexdigest()[:16]
    assert [_shape(e) for e in invoice_entries([acme], builder_rules)] == [
        (
            date(2026, 10, 15),
            "*",
            "acme",
            "Invoice INV-2026-000007",
            frozenset({"INV-2026-000007", ACME, "acme-2026-10-15"}),
            frozenset(),
            {
                "customer": "acme",
                "invoice": "INV-2026-000007",
                "due": date(2026, 11, 14),
                "rules": "r-acme",
                "cycle": f"{ACME_CYCLE},{next_cycle}",
                "evidence": evidence,
            },
            [
                ("Assets:Receivables:Invoiced:Acme", D("193.25"), "USD", {}),
                ("Assets:Receivables:Unbilled:Acme", D("-34.00"), "USD", {}),
                ("Assets:Contract-Assets:Acme", D("-3.00"), "USD", {}),
                ("Liabilities:Deferred-Revenue:Acme", D("-149.00"), "USD", {}),
                ("Liabilities:Tax:US-CA", D("-7.25"), "USD", {}),
            ],
        ),
        (
            date(2026, 10, 15),
            "document",
            "Assets:Receivables:Invoiced:Acme",
            "../documents/INV-2026-000007.html",
            frozenset(),
            frozenset({"INV-2026-000007"}),
            {"filename": "<meterbook>", "lineno": 0},
        ),
    ]
    grant = invoice_entries([kaisha], builder_rules, documents_dir="docs")
    assert [_shape(e) for e in grant] == [
        (
            date(2026, 9, 1),
            "*",
            "kaisha",
            "Invoice INV-2026-000002",
            frozenset({"INV-2026-000002"}),
            frozenset(),
            {"customer": "kaisha", "invoice": "INV-2026-000002", "rules": "r-kaisha"},
            [
                ("Assets:Receivables:Invoiced:Kaisha", D(1000), "JPY", {}),
                ("Liabilities:Deferred-Revenue:Kaisha", D(-1000), "JPY", {}),
            ],
        ),
        (
            date(2026, 9, 1),
            "document",
            "Assets:Receivables:Invoiced:Kaisha",
            "docs/INV-2026-000002.html",
            frozenset(),
            frozenset({"INV-2026-000002"}),
            {"filename": "<meterbook>", "lineno": 0},
        ),
    ]
    books = _loaded([e for e in [*invoice_entries([acme], builder_rules), *grant] if _is_txn(e)])
    assert balance(books, "Assets:Receivables:Invoiced:Acme", date(2026, 10, 16)) == D("193.25")


def _is_txn(entry: data.Directive) -> bool:
    return isinstance(entry, data.Transaction)


# --- breakage_entries and grant_invoices -----------------------------------------------------


def _grant_invoice(number: str, day: date, kinds: Iterable[str]) -> Invoice:
    lines = tuple(_line(kind, "deferred", "1.00") for kind in kinds)
    return Invoice("acme", day, "USD", lines, "r", number)


def test_grants_are_named_by_the_invoice_that_billed_them() -> None:
    """acme's Sep 1 invoice bills a base fee, then grants 5.00 and 9.00 (its 1st and 2nd
    credit_grant lines: grants "2026-09-01#1" and "#2"); the Oct 1 invoice bills the 100.00
    grant ("2026-10-01#1")."""
    invoices = [
        _grant_invoice("INV-1", date(2026, 9, 1), ["base_fee", "credit_grant", "credit_grant"]),
        _grant_invoice("INV-4", date(2026, 10, 1), ["credit_grant"]),
    ]
    assert grant_invoices(invoices) == {
        ("acme", "2026-09-01#1"): "INV-1",
        ("acme", "2026-09-01#2"): "INV-1",
        ("acme", "2026-10-01#1"): "INV-4",
    }


def test_breakage_one_entry_per_grant_and_day(builder_rules: Rules) -> None:
    """acme's 5.00 grant (#1 of Sep 1, expiring Oct 10) drew 1.45: 3.55 expires on Oct 10.
    Its 9.00 grant (#2, expiring Oct 31) leaves 2.00 + 1.00 on Oct 31 (two movements, one
    entry: 3.00) and 0.50 more on Nov 14 (usage that fell handed credit back: its own entry).
    The draw of 1.45 is no breakage. Both grants were billed on INV-1 (Sep 1), so their entries
    link it. kaisha's 1000 JPY grant expired Sep 30 with 400 left; no invoice billed it yet:
    no link, no grant_invoice. Entries by customer, day, grant."""
    movements = [
        CreditMovement("acme", 1, date(2026, 10, 31), "breakage", D("2.00")),
        CreditMovement("kaisha", 0, date(2026, 9, 30), "breakage", D(400)),
        CreditMovement("acme", 0, date(2026, 10, 5), "draw", D("1.45")),
        CreditMovement("acme", 0, date(2026, 10, 10), "breakage", D("3.55")),
        CreditMovement("acme", 1, date(2026, 11, 14), "breakage", D("0.50")),
        CreditMovement("acme", 1, date(2026, 10, 31), "breakage", D("1.00")),
    ]
    invoices = [_grant_invoice("INV-1", date(2026, 9, 1), ["credit_grant", "credit_grant"])]

    def expected(
        day: date, key: str, expires: date, amount: Decimal, customer: str = "acme"
    ) -> tuple[object, ...]:
        number = "INV-1" if customer == "acme" else None
        currency = "USD" if customer == "acme" else "JPY"
        meta: dict[str, object] = {"customer": customer, "grant": key, "expires": expires}
        if number:
            meta["grant_invoice"] = number
        return (
            day,
            "*",
            customer,
            "Prepaid credit expired (breakage)",
            frozenset({number} if number else ()),
            frozenset(),
            {**meta, "rules": builder_rules.hash},
            [
                (f"Liabilities:Deferred-Revenue:{customer.title()}", amount, currency, {}),
                ("Income:Credit-Breakage", -amount, currency, {}),
            ],
        )

    entries = breakage_entries(movements, builder_rules, invoices)
    assert [_shape(e) for e in entries] == [
        expected(date(2026, 10, 10), "2026-09-01#1", date(2026, 10, 10), D("3.55")),
        expected(date(2026, 10, 31), "2026-09-01#2", date(2026, 10, 31), D("3.00")),
        expected(date(2026, 11, 14), "2026-09-01#2", date(2026, 10, 31), D("0.50")),
        expected(date(2026, 9, 30), "2026-09-01#1", date(2026, 9, 30), D(400), "kaisha"),
    ]
    books = _loaded(entries)
    assert balance(books, "Income:Credit-Breakage", date(2026, 12, 1), "USD") == D("-7.05")
    assert (
        breakage_entries(movements[:1], builder_rules)[0].links == frozenset()
    )  # no invoices given


# --- catch_up: the sealed months against what regeneration would now post ------------------

SEALED = """\
2026-09-30 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-09-30" ^acme-2026-09-15
  customer: "acme"
  cycle: "2026-09-15/2026-10-15"
  meter: "api_calls,tokens"
  quantities: "api_calls=2,tokens=50"
  evidence: "ann-sep30"
  Assets:Receivables:Unbilled:Acme   0.50 USD
  Income:Usage:Tokens               -0.50 USD
    meter: "tokens"
    quantity: 50

2026-10-01 * "kaisha" "Usage accrual 2026-09-01/2026-10-01 through 2026-09-30" ^kaisha-2026-09-01
  customer: "kaisha"
  cycle: "2026-09-01/2026-10-01"
  meter: "tokens"
  quantities: "tokens=100"
  Assets:Receivables:Unbilled:Kaisha   100 JPY
  Income:Usage:Tokens                 -100 JPY
    meter: "tokens"
    quantity: 100

2026-10-14 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-10-14" ^acme-2026-09-15
  customer: "acme"
  cycle: "2026-09-15/2026-10-15"
  meter: "api_calls,tokens"
  quantities: "api_calls=2,tokens=80"
  evidence: "ann-oct14"
  Assets:Receivables:Unbilled:Acme   0.30 USD
  Income:Usage:Tokens               -0.30 USD
    meter: "tokens"
    quantity: 80

2026-10-15 * "acme" "Invoice INV-2" ^INV-2 ^acme-2026-09-15
  customer: "acme"
  invoice: "INV-2"
  Assets:Receivables:Invoiced:Acme   0.80 USD
  Assets:Receivables:Unbilled:Acme  -0.80 USD

2026-10-20 * "kaisha" "Late usage for invoiced cycle 2026-09-01/2026-10-01" ^kaisha-2026-09-01
  customer: "kaisha"
  cycle: "2026-09-01/2026-10-01"
  meter: "tokens"
  quantities: "tokens=7"
  usage_date: 2026-09-30
  late: TRUE
  Assets:Receivables:Unbilled:Kaisha   7 JPY
  Income:Usage:Tokens                 -7 JPY
    meter: "tokens"
    quantity: 7

2026-10-31 * "acme" "Usage accrual 2026-10-01/2026-11-01 through 2026-10-31" ^acme-2026-10-01
  customer: "acme"
  cycle: "2026-10-01/2026-11-01"
  meter: "api_calls,tokens"
  quantities: "api_calls=3,tokens=200"
  evidence: "cal-old"
  Assets:Receivables:Unbilled:Acme   2.00 USD
  Income:Usage:Tokens               -2.00 USD
    meter: "tokens"
    quantity: 200
"""
#: What posting now generates for the same period and after: the sealed entries unchanged but
#: for the Oct 31 accrual (1 call and 50 tokens more), kaisha's late entry dated again on the
#: first open day, a late entry of acme's invoiced cycle, a payment, an invoice and documents.
REGENERATED = """\
2026-09-30 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-09-30" ^acme-2026-09-15
  customer: "acme"
  cycle: "2026-09-15/2026-10-15"
  meter: "api_calls,tokens"
  quantities: "api_calls=2,tokens=50"
  evidence: "ann-sep30"
  Assets:Receivables:Unbilled:Acme   0.50 USD
  Income:Usage:Tokens               -0.50 USD
    meter: "tokens"
    quantity: 50

2026-10-01 * "kaisha" "Usage accrual 2026-09-01/2026-10-01 through 2026-09-30" ^kaisha-2026-09-01
  customer: "kaisha"
  cycle: "2026-09-01/2026-10-01"
  meter: "tokens"
  quantities: "tokens=100"
  Assets:Receivables:Unbilled:Kaisha   100 JPY
  Income:Usage:Tokens                 -100 JPY
    meter: "tokens"
    quantity: 100

2026-10-01 document Assets:Receivables:Invoiced:Kaisha "../documents/INV-1.html" ^INV-1

2026-11-01 * "acme" "Late usage for invoiced cycle 2026-09-15/2026-10-15" ^acme-2026-09-15
  customer: "acme"
  cycle: "2026-09-15/2026-10-15"
  meter: "api_calls,tokens"
  quantities: "api_calls=0,tokens=20"
  evidence: "ann-late"
  usage_date: 2026-10-14
  late: TRUE
  Assets:Receivables:Unbilled:Acme   0.20 USD
  Income:Usage:Tokens               -0.20 USD
    meter: "tokens"
    quantity: 20

2026-10-14 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-10-14" ^acme-2026-09-15
  customer: "acme"
  cycle: "2026-09-15/2026-10-15"
  meter: "api_calls,tokens"
  quantities: "api_calls=2,tokens=80"
  evidence: "ann-oct14"
  Assets:Receivables:Unbilled:Acme   0.30 USD
  Income:Usage:Tokens               -0.30 USD
    meter: "tokens"
    quantity: 80

2026-10-15 * "acme" "Invoice INV-2" ^INV-2 ^acme-2026-09-15
  customer: "acme"
  invoice: "INV-2"
  Assets:Receivables:Invoiced:Acme   0.80 USD
  Assets:Receivables:Unbilled:Acme  -0.80 USD

2026-11-01 * "kaisha" "Late usage for invoiced cycle 2026-09-01/2026-10-01" ^kaisha-2026-09-01
  customer: "kaisha"
  cycle: "2026-09-01/2026-10-01"
  meter: "tokens"
  quantities: "tokens=7"
  usage_date: 2026-09-30
  late: TRUE
  Assets:Receivables:Unbilled:Kaisha   7 JPY
  Income:Usage:Tokens                 -7 JPY
    meter: "tokens"
    quantity: 7

2026-10-20 * "Payment B-7 for INV-2" ^INV-2
  reference: "B-7"
  Assets:Bank:Operating              0.80 USD
  Assets:Receivables:Invoiced:Acme  -0.80 USD

2026-10-31 * "acme" "Usage accrual 2026-10-01/2026-11-01 through 2026-10-31" ^acme-2026-10-01
  customer: "acme"
  cycle: "2026-10-01/2026-11-01"
  meter: "api_calls,tokens"
  quantities: "api_calls=4,tokens=250"
  evidence: "cal-new"
  Assets:Receivables:Unbilled:Acme   2.50 USD
  Income:Usage:Tokens               -2.50 USD
    meter: "tokens"
    quantity: 250

2026-11-01 * "acme" "Invoice INV-3" ^INV-3 ^acme-2026-10-01
  customer: "acme"
  invoice: "INV-3"
  Assets:Receivables:Invoiced:Acme   2.50 USD
  Assets:Receivables:Unbilled:Acme  -2.50 USD

2026-11-01 document Assets:Receivables:Invoiced:Acme "../documents/INV-3.html" ^INV-3

2026-11-20 * "acme" "Late usage for invoiced cycle 2026-10-01/2026-11-01" ^acme-2026-10-01
  customer: "acme"
  cycle: "2026-10-01/2026-11-01"
  meter: "api_calls,tokens"
  quantities: "api_calls=0,tokens=5"
  usage_date: 2026-11-14
  late: TRUE
  Assets:Receivables:Unbilled:Acme   0.05 USD
  Income:Usage:Tokens               -0.05 USD
    meter: "tokens"
    quantity: 5
"""
OPENS = """\
2026-01-01 open Assets:Bank:Operating
2026-01-01 open Assets:Receivables:Invoiced:Acme
2026-01-01 open Assets:Receivables:Invoiced:Kaisha
2026-01-01 open Assets:Receivables:Unbilled:Acme
2026-01-01 open Assets:Receivables:Unbilled:Kaisha
2026-01-01 open Income:Usage:Tokens
"""


def _parsed(text: str) -> list[data.Directive]:
    """Entries as the session reads sealed month files: parsed, not booked."""
    entries, errors, _ = parser.parse_string(text)
    assert errors == []
    return list(entries)


def test_catch_up_posts_what_the_sealed_months_miss_on_the_first_open_day() -> None:
    """September and October are sealed (first open day Nov 1); the sealed files hold SEALED.

    - acme's cycle [Oct 1, Nov 1), not invoiced when sealed: its Oct 31 accrual had 3 calls and
      200 tokens (2.00); regeneration now has 4 and 250 (2.50): one late adjustment on Nov 1,
      "Late adjustment for sealed period 2026-10", usage_date Oct 31, +0.50 unbilled, quantities
      api_calls=1,tokens=50 (the change), evidence the regenerated "cal-new".
    - acme's invoiced cycle [Sep 15, Oct 15): 20 tokens more for Oct 12 (+0.20) come as a late
      entry dated Nov 1 with usage_date Oct 14, a sealed month: caught up as a sealed-period
      adjustment too (usage_date Oct 31): quantities api_calls=0,tokens=20 (sealed 2 calls and
      80 tokens, now 2 and 80 + 20), evidence "ann-late" (the late entry comes after the Oct 14
      accrual in book order, whatever the order given). Its Sep 30 accrual and invoice did not
      change: nothing for September.
    - kaisha's late entry of 7 JPY (usage Sep 30) was posted on Oct 20 before October was
      sealed; regeneration dates it Nov 1 now: the same usage, already in the books: nothing.
    - Payment B-7 (0.80 on Oct 20, no customer metadata, no payee) arrived after the seal:
      one adjustment for the links ^INV-2, with neither customer nor payee, cycle, quantities
      nor evidence (those are a cycle's).
    - What is dated Nov 1 or later (invoice INV-3, its document, the late usage of Nov 14) is
      written as it is; kaisha's document of Oct 1 is in a sealed month: neither.
    """
    write, adjustments = catch_up(
        _parsed(REGENERATED),
        _parsed(OPENS + SEALED),
        first_open=date(2026, 11, 1),
        rules_hash="r1",
    )
    assert [(e.date, type(e).__name__, getattr(e, "narration", "")) for e in write] == [
        (date(2026, 11, 1), "Transaction", "Invoice INV-3"),
        (date(2026, 11, 1), "Document", ""),
        (date(2026, 11, 20), "Transaction", "Late usage for invoiced cycle 2026-10-01/2026-11-01"),
    ]
    late = {"usage_date": date(2026, 10, 31), "late": True}
    assert [_shape(e) for e in adjustments] == [  # by usage month, customer ("" first), links
        (
            date(2026, 11, 1),
            "*",
            None,
            "Late adjustment for sealed period 2026-10",
            frozenset({"INV-2"}),
            frozenset(),
            {"rules": "r1", **late},
            [
                ("Assets:Bank:Operating", D("0.80"), "USD", {}),
                ("Assets:Receivables:Invoiced:Acme", D("-0.80"), "USD", {}),
            ],
        ),
        (
            date(2026, 11, 1),
            "*",
            "acme",
            "Late adjustment for sealed period 2026-10",
            frozenset({"acme-2026-09-15"}),
            frozenset(),
            {
                "customer": "acme",
                "cycle": "2026-09-15/2026-10-15",
                "meter": "api_calls,tokens",
                "quantities": "api_calls=0,tokens=20",
                "rules": "r1",
                "evidence": "ann-late",
                **late,
            },
            [
                ("Assets:Receivables:Unbilled:Acme", D("0.20"), "USD", {}),
                ("Income:Usage:Tokens", D("-0.20"), "USD", {"meter": "tokens", "quantity": D(20)}),
            ],
        ),
        (
            date(2026, 11, 1),
            "*",
            "acme",
            "Late adjustment for sealed period 2026-10",
            frozenset({"acme-2026-10-01"}),
            frozenset(),
            {
                "customer": "acme",
                "cycle": "2026-10-01/2026-11-01",
                "meter": "api_calls,tokens",
                "quantities": "api_calls=1,tokens=50",
                "rules": "r1",
                "evidence": "cal-new",
                **late,
            },
            [
                ("Assets:Receivables:Unbilled:Acme", D("0.50"), "USD", {}),
                ("Income:Usage:Tokens", D("-0.50"), "USD", {"meter": "tokens", "quantity": D(50)}),
            ],
        ),
    ]
    # the sealed books, what is written and the adjustments load as one balanced ledger
    books = _loaded(
        [
            *_parsed(SEALED),
            *(e for e in write if _is_txn(e)),
            *adjustments,
        ]
    )
    # Oct 31 sealed 2.00 + 0.50 caught up; the Nov 1 invoice moves 2.50; Nov 14 +0.05;
    # acme's older cycle: 0.50 + 0.30 − 0.80 invoiced + 0.20 late
    assert balance(books, "Assets:Receivables:Unbilled:Acme", date(2026, 12, 1)) == D("0.25")
    assert balance(books, "Assets:Receivables:Unbilled:Kaisha", date(2026, 12, 1)) == D(107)
    # November sealed too, with what was written and the adjustments: nothing is missing now
    november = format_entries([*(e for e in write if _is_txn(e)), *adjustments])
    again = catch_up(
        _parsed(REGENERATED),
        _parsed(OPENS + SEALED + november),
        first_open=date(2026, 12, 1),
        rules_hash="r1",
    )
    assert again == ([], [])


def test_catch_up_of_new_terms_for_the_same_usage_is_a_re_pricing() -> None:
    """A plan version makes acme's tokens 0.012 for its cycle [Oct 1, Nov 1), sealed with 3 calls
    and 200 tokens at 0.01 (2.00). Regenerated: the same quantities at 2.40. Every meter's change
    is a known 0 yet the amount moved: "Re-pricing of sealed period 2026-10: same quantities,
    current terms", repriced, quantities api_calls=0,tokens=0 and no per-posting quantity
    (no usage arrived). Refunds to kaisha on Oct 25 (50 JPY, its customer named only as payee)
    and Oct 26 (30 JPY, payee "Kaisha KK", customer metadata kaisha) are one customer's: one
    adjustment of 80 JPY."""
    sealed = SEALED.split("2026-10-31 *")[1]
    regenerated = (
        "2026-10-31 *"
        + sealed.replace("2.00 USD", "2.40 USD").replace('"cal-old"', '"v2"')
        + """
2026-10-25 * "kaisha" "Refund R-1"
  Assets:Receivables:Invoiced:Kaisha   50 JPY
  Assets:Bank:Operating               -50 JPY

2026-10-26 * "Kaisha KK" "Refund R-2"
  customer: "kaisha"
  Assets:Receivables:Invoiced:Kaisha   30 JPY
  Assets:Bank:Operating               -30 JPY
"""
    )
    _, adjustments = catch_up(
        _parsed(regenerated),
        _parsed("2026-10-31 *" + sealed),
        first_open=date(2026, 11, 1),
        rules_hash="r2",
    )
    late = {"usage_date": date(2026, 10, 31), "late": True}
    assert [_shape(e) for e in adjustments] == [
        (
            date(2026, 11, 1),
            "*",
            "acme",
            "Re-pricing of sealed period 2026-10: same quantities, current terms",
            frozenset({"acme-2026-10-01"}),
            frozenset(),
            {
                "customer": "acme",
                "cycle": "2026-10-01/2026-11-01",
                "meter": "api_calls,tokens",
                "quantities": "api_calls=0,tokens=0",
                "rules": "r2",
                "evidence": "v2",
                **late,
                "repriced": True,
            },
            [
                ("Assets:Receivables:Unbilled:Acme", D("0.40"), "USD", {}),
                ("Income:Usage:Tokens", D("-0.40"), "USD", {"meter": "tokens"}),
            ],
        ),
        (
            date(2026, 11, 1),
            "*",
            "kaisha",
            "Late adjustment for sealed period 2026-10",
            frozenset(),
            frozenset(),
            {"customer": "kaisha", "rules": "r2", **late},
            [
                ("Assets:Bank:Operating", D(-80), "JPY", {}),
                ("Assets:Receivables:Invoiced:Kaisha", D(80), "JPY", {}),
            ],
        ),
    ]
    assert _loaded(adjustments)


# --- reading the books back: usage months and cycle-to-date quantities -----------------------

CYCLE_ENTRIES = """\
2026-11-01 * "acme" "Late usage for invoiced cycle 2026-09-15/2026-10-15" ^acme-2026-09-15
  meter: "api_calls,tokens,images"
  quantities: "api_calls=0,tokens=20,images=3"
  usage_date: 2026-10-14
  late: TRUE
  Assets:Receivables:Unbilled:Acme   0.20 USD
  Income:Usage:Tokens               -0.20 USD

2026-09-30 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-09-30" ^acme-2026-09-15
  meter: "api_calls,tokens,images"
  quantities: "api_calls=2,tokens=50,images=1"
  Assets:Receivables:Unbilled:Acme   0.50 USD
  Income:Usage:Tokens               -0.50 USD

2026-12-01 * "acme" "Late adjustment for sealed period 2026-10" ^acme-2026-09-15
  meter: "api_calls,tokens,images"
  quantities: "api_calls=1,tokens=0"
  usage_date: 2026-10-31
  late: TRUE
  Assets:Receivables:Unbilled:Acme   0.01 USD
  Income:Usage:Api-Calls            -0.01 USD

2026-10-14 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-10-14" ^acme-2026-09-15
  meter: "api_calls,tokens,images"
  quantities: "api_calls=2,tokens=80"
  Assets:Receivables:Unbilled:Acme   0.30 USD
  Income:Usage:Tokens               -0.30 USD
"""


def test_cycle_to_date_quantities_in_book_order() -> None:
    """acme's cycle as the books hold it, entries given out of order: Sep 30 accrual (2 calls,
    50 tokens, 1 image), Oct 14 accrual (2 calls, 80 tokens; images listed without a figure:
    unknown), a late entry of Nov 1 for Oct 14 (+20 tokens, +3 images), a catch-up of Dec 1 for
    October (+1 call). In book order (usage date, the accrual before the late entries on the
    same day): calls 2 → 2 → 2 + 0 → 3; tokens 50 → 80 → 100 → 100; images 1 → unknown, and an
    unknown figure plus a change stays unknown (None) until an accrual sets it again.
    The usage months: the late entry's is October (its usage_date), not November."""
    by_date = {e.date: e for e in _parsed(CYCLE_ENTRIES)}
    sep30, oct14, late, catch = (
        by_date[date(2026, m, d)] for m, d in ((9, 30), (10, 14), (11, 1), (12, 1))
    )
    assert cumulative_quantities([catch, late, oct14, sep30]) == {
        "api_calls": D(3),
        "tokens": D(100),
        "images": None,
    }
    assert cumulative_quantities([sep30]) == {"api_calls": D(2), "tokens": D(50), "images": D(1)}
    assert [usage_month(e) for e in (sep30, oct14, late, catch)] == [
        date(2026, 9, 1),
        date(2026, 10, 1),
        date(2026, 10, 1),
        date(2026, 10, 1),
    ]
    # usage_date on an entry that is not late (none is written so) does not move it
    assert usage_month(late._replace(meta={**late.meta, "late": False})) == date(2026, 11, 1)


def test_quantities_that_do_not_parse_are_named() -> None:
    """Each item must be meter=finite number: a missing "=", an empty meter, a word, infinity
    and a second "=" are each refused with the item quoted."""
    assert parse_quantities("tokens=-2.5,images=0") == {"tokens": D("-2.5"), "images": D(0)}
    for text, item in (
        ("api_calls", "'api_calls'"),
        ("tokens=1,=5", "'=5'"),
        ("tokens=lots", "'tokens=lots'"),
        ("tokens=Infinity", "'tokens=Infinity'"),
        ("tokens=NaN", "'tokens=NaN'"),
        ("tokens=1=2", "'tokens=1=2'"),
    ):
        with pytest.raises(ValueError, match=f"^{item} is not meter=quantity$"):
            parse_quantities(text)


def test_catch_up_evidence_is_only_ever_the_regenerated_one() -> None:
    """Regenerated without digests (``regenerate(evidence=False)``), acme's Oct 31 accrual of 4
    calls and 250 tokens (2.50) against the sealed 3 and 200 (2.00, evidence "cal-old"): the
    +0.50 adjustment carries no evidence; the sealed entry's digest is not the store's now."""
    sealed = "2026-10-31 *" + SEALED.split("2026-10-31 *")[1]
    regenerated = (
        sealed.replace('  evidence: "cal-old"\n', "")
        .replace("2.00 USD", "2.50 USD")
        .replace("api_calls=3,tokens=200", "api_calls=4,tokens=250")
        .replace("quantity: 200", "quantity: 250")
    )
    _, [adjustment] = catch_up(
        _parsed(regenerated), _parsed(sealed), first_open=date(2026, 11, 1), rules_hash="r3"
    )
    assert "evidence" not in adjustment.meta
    assert (adjustment.meta["quantities"], adjustment.postings[0].units.number) == (
        "api_calls=1,tokens=50",
        D("0.50"),
    )
    # regeneration no longer posts the accrual at all (its usage gone from the store): the
    # reversal of the sealed 2.00 carries no evidence either, not the sealed "cal-old"
    _, [reversal] = catch_up([], _parsed(sealed), first_open=date(2026, 11, 1), rules_hash="r3")
    assert "evidence" not in reversal.meta
    assert [p.units.number for p in reversal.postings] == [D("-2.00"), D("2.00")]


def test_catch_up_of_late_usage_for_a_cycle_with_no_accrual_in_the_books() -> None:
    """kaisha's cycle [Sep 1, Oct 1) used its 100 free tokens (no accrual entry: nothing to
    post) and was invoiced; 7 tokens more (7 JPY) came late and were posted on Oct 20, before
    October was sealed. Now 12 tokens have come late: regenerated, the late entry (dated Nov 1)
    says 12. Both sides count from the invoiced figure no entry holds, so the change is
    12 − 7 = 5 tokens (5 JPY).

    An invoice issued after the seal for a sealed date (INV-9, Oct 15, billing acme's cycles
    [Sep 15, Oct 15) and [Oct 15, Nov 15)) is caught up as it is: both cycles named, all its
    links, no quantities (it is no single cycle's)."""
    late = """\
{day} * "kaisha" "Late usage for invoiced cycle 2026-09-01/2026-10-01" ^kaisha-2026-09-01
  customer: "kaisha"
  cycle: "2026-09-01/2026-10-01"
  meter: "tokens"
  quantities: "tokens={tokens}"
  usage_date: 2026-09-30
  late: TRUE
  Assets:Receivables:Unbilled:Kaisha   {tokens} JPY
  Income:Usage:Tokens                 -{tokens} JPY
"""
    invoice = """
2026-10-15 * "acme" "Invoice INV-9" ^INV-9 ^acme-2026-09-15 ^acme-2026-10-15
  customer: "acme"
  invoice: "INV-9"
  cycle: "2026-09-15/2026-10-15,2026-10-15/2026-11-15"
  evidence: "inv9"
  Assets:Receivables:Invoiced:Acme    50.80 USD
  Assets:Receivables:Unbilled:Acme    -1.80 USD
  Liabilities:Deferred-Revenue:Acme  -49.00 USD
"""
    _, adjustments = catch_up(
        _parsed(late.format(day="2026-11-01", tokens=12) + invoice),
        _parsed(late.format(day="2026-10-20", tokens=7)),
        first_open=date(2026, 11, 1),
        rules_hash="r4",
    )
    assert [(e.meta.get("cycle"), e.meta.get("quantities"), e.links) for e in adjustments] == [
        ("2026-09-01/2026-10-01", "tokens=5", frozenset({"kaisha-2026-09-01"})),
        (
            "2026-09-15/2026-10-15,2026-10-15/2026-11-15",
            None,
            frozenset({"INV-9", "acme-2026-09-15", "acme-2026-10-15"}),
        ),
    ]
    assert [p.units.number for p in adjustments[0].postings] == [D(5), D(-5)]
    assert adjustments[0].meta["usage_date"] == date(2026, 9, 30)


# --- targets and snapshots -------------------------------------------------------------------


def _charge(index: int, meter: str, quantity: str, amount: str, final: bool) -> ChargeRating:
    return ChargeRating(index, meter, "unit", D(quantity), 1, D(amount), (), final)


def test_targets_sum_every_charge_of_a_meter_and_split_credit_final_first() -> None:
    """acme's cycle [Sep 15, Oct 15) through Oct 14: 36,000 calls at 0.001 = 36.00 and, on the
    same meter, a 5.00 platform fee (both final); 250 tokens on volume tiers = 2.50 (not final);
    pro's 49.00 base fee in advance, all recognized; a 45.00 minimum: shortfall 45 − 43.50 =
    1.50; 43.00 of prepaid credit drawn, applied to final usage first: 41.00, then 2.00 to
    the tokens.

    usage_revenue:api_calls 36.00 + 5.00 = 41.00; unbilled 41.00 − 41.00 + 1.50 = 1.50;
    contract asset 2.50 − 2.00 = 0.50; deferred 43.00 + 49.00 = 92.00 (debits 94.00, credits
    41.00 + 2.50 + 1.50 + 49.00 = 94.00). In arrears, a 10.00 fee recognized 4.00 so far goes
    to unbilled; a free meter's zero revenue is no target, but its quantity is kept."""
    cycle = Cycle(
        "acme",
        "pro",
        date(2026, 9, 15),
        date(2026, 10, 15),
        date(2026, 9, 15),
        date(2026, 10, 15),
        0,
        True,
        False,
    )
    rated = CycleRating(
        cycle=cycle,
        through=date(2026, 10, 14),
        currency="USD",
        charges=(
            _charge(0, "api_calls", "36000", "36.00", True),
            _charge(1, "api_calls", "36000", "5.00", True),
            _charge(2, "tokens", "250", "2.50", False),
        ),
        base_fee=BaseFeeRating(timing="advance", billed=D("49.00"), recognized=D("49.00")),
        commitment_shortfall=D("1.50"),
        credit_applied=D("43.00"),
    )
    assert targets(rated) == {
        "usage_revenue:api_calls": D("41.00"),
        "usage_revenue:tokens": D("2.50"),
        "unbilled": D("1.50"),
        "contract_asset": D("0.50"),
        "deferred": D("92.00"),
        "commitment_revenue:": D("1.50"),
        "subscription_revenue:pro": D("49.00"),
    }
    arrears = CycleRating(
        cycle=cycle,
        through=date(2026, 9, 30),
        currency="USD",
        charges=(_charge(0, "api_calls", "50", "0", True),),
        base_fee=BaseFeeRating(timing="arrears", billed=D("10.00"), recognized=D("4.00")),
        commitment_shortfall=D(0),
        credit_applied=D(0),
    )
    assert snapshot(arrears, "ev") == Snapshot(
        link="acme-2026-09-15",
        customer="acme",
        cycle="2026-09-15/2026-10-15",
        plan="pro",
        through=date(2026, 9, 30),
        currency="USD",
        targets=(("subscription_revenue:pro", D("4.00")), ("unbilled", D("4.00"))),
        quantities=(("api_calls", D(50)),),
        evidence="ev",
    )


ACME_SEP = Cycle(
    "acme", "pro", date(2026, 9, 15), date(2026, 10, 15), date(2026, 9, 15), date(2026, 10, 15),
    0, True, False,
)  # fmt: skip


def _rated(through: date, amount: str) -> CycleRating:
    return CycleRating(
        cycle=ACME_SEP,
        through=through,
        currency="USD",
        charges=(_charge(0, "api_calls", str(int(D(amount) * 1000)), amount, True),),
        base_fee=None,
        commitment_shortfall=D(0),
        credit_applied=D(0),
    )


def test_plan_points_post_live_snapshots_or_the_frozen_ones_and_the_late_difference() -> None:
    """acme's cycle [Sep 15, Oct 15) rated at Sep 30 (4.00), Oct 7 (not an accrual point:
    never posted) and Oct 14 (36.00), with a digest for Sep 30 only: two points, Sep 30 with
    its evidence, Oct 14 with none ("").

    Invoiced on Oct 15 with Sep 30 at 4.00 and Oct 14 at 34.00 frozen: the frozen snapshots
    are posted, and Oct 14's 36.00 now differs: one late difference dated the first open day
    (Nov 1), or the invoice date (Oct 15) when nothing is sealed. Frozen at 36.00: no late."""
    rating = Rating(
        through=date(2026, 10, 14),
        cycles=(
            _rated(date(2026, 9, 30), "4.00"),
            _rated(date(2026, 10, 7), "20.00"),
            _rated(date(2026, 10, 14), "36.00"),
        ),
    )
    points, late = plan_points(
        rating, [], first_open=date.min, evidence={(ACME, date(2026, 9, 30)): "e1"}
    )
    assert [(p.through, p.target("unbilled"), p.evidence) for p in points] == [
        (date(2026, 9, 30), D("4.00"), "e1"),
        (date(2026, 10, 14), D("36.00"), ""),
    ]
    assert late == []
    frozen = (
        snapshot(_rated(date(2026, 9, 30), "4.00")),
        snapshot(_rated(date(2026, 10, 14), "34.00")),
    )
    invoice = Invoice("acme", date(2026, 10, 15), "USD", (), "r", "INV-1", accruals=frozen)
    points, late = plan_points(rating, [invoice], first_open=date(2026, 11, 1))
    assert points == list(frozen)
    assert [(now.target("unbilled"), then.target("unbilled"), day) for now, then, day in late] == [
        (D("36.00"), D("34.00"), date(2026, 11, 1))
    ]
    assert plan_points(rating, [invoice], first_open=date.min)[1][0][2] == date(2026, 10, 15)
    paid_up = Invoice(
        "acme", date(2026, 10, 15), "USD", (), "r", "INV-1",
        accruals=(snapshot(_rated(date(2026, 10, 14), "36.00")),),
    )  # fmt: skip
    assert plan_points(rating, [paid_up], first_open=date(2026, 11, 1))[1] == []


def test_an_accrual_takes_back_a_target_that_is_gone(builder_rules: Rules) -> None:
    """acme's cycle accrued 250 tokens (2.50) on Sep 30; a correction event brings the tokens
    to 0 by Oct 14, so the cycle has no target left: the Oct 14 accrual reverses the 2.50
    (unbilled −2.50, Income:Usage:Tokens +2.50 with quantity 0)."""
    sep30 = _snap(
        date(2026, 9, 30), {"unbilled": "2.50", "usage_revenue:tokens": "2.50"}, {"tokens": 250}
    )
    oct14 = _snap(date(2026, 10, 14), {}, {"tokens": 0})
    entries = accrual_entries([sep30, oct14], builder_rules)
    assert [(p.account, p.units.number, p.meta) for p in entries[1].postings] == [
        ("Assets:Receivables:Unbilled:Acme", D("-2.50"), None),
        ("Income:Usage:Tokens", D("2.50"), {"meter": "tokens", "quantity": D(0)}),
    ]
    assert balance(_loaded(entries), "Income:Usage:Tokens", date(2026, 10, 15)) == 0


def test_quantities_are_written_fixed_point() -> None:
    """A normalized thousand (1E+3) and a tenth of a millionth (1E-7) are written 1000 and
    0.0000001, the fixed-point form of every number in the books, not Decimal's exponents."""
    written = format_quantities([("storage_gb", D("1E+3")), ("tokens", D("1E-7"))])
    assert written == "storage_gb=1000,tokens=0.0000001"
    assert parse_quantities(written) == {"storage_gb": D(1000), "tokens": D("0.0000001")}


def test_tax_inclusive_targets_net_every_charge_of_a_meter() -> None:
    """kunde's October [Oct 1, Nov 1) in EUR, 19 % VAT included in its api_calls prices: 119.00
    of calls and an 11.90 platform fee on the same meter, both final. Each is netted on its
    own: 119.00 − 19.00 = 100.00 and 11.90 − 1.90 = 10.00, so the meter's revenue and unbilled
    are 110.00 (not the last charge's 10.00).

    An advance fee of 3,100 JPY invoiced with 495 of tax (2,605 booked), cut to 1,000 by a
    change: deferred revenue recognizes 1,000 − 495 + round(495 × 2,100 ÷ 3,100) = 1,000 − 495
    + 335 = 840 yen, rounded to the yen (335.32 would not be an amount)."""
    october = Cycle(
        "kunde", "pro", date(2026, 10, 1), date(2026, 11, 1), date(2026, 10, 1),
        date(2026, 11, 1), 0, True, False,
    )  # fmt: skip
    rated = CycleRating(
        cycle=october,
        through=date(2026, 10, 31),
        currency="EUR",
        charges=(
            _charge(0, "api_calls", "476", "119.00", True),
            _charge(1, "api_calls", "476", "11.90", True),
        ),
        base_fee=None,
        commitment_shortfall=D(0),
        credit_applied=D(0),
    )
    vat = Inclusion("EUR", {"usage:api_calls": (D("0.19"),)})
    assert net_targets(rated, vat) == {
        "usage_revenue:api_calls": D("110.00"),
        "unbilled": D("110.00"),
    }
    assert Inclusion("JPY", fee=(D(3100), D(2605))).advance_fee(D(1000)) == D(840)


def test_tax_inclusive_targets_credit_and_advance_fee() -> None:
    """kunde's October [Oct 1, Nov 1), 19 % VAT included in its usage prices:

    - 23.80 of tokens on volume tiers (not final): 20.00 net; 5.00 of prepaid credit drawn, all
      of it on that non-final usage: contract asset 20.00 − 5.00 = 15.00, deferred 5.00 (credit
      keeps its amount);
    - 119.00 of calls (final): 100.00 net; 10.00 of credit: unbilled 90.00, deferred 10.00;
    - 11.90 of calls (10.00 net) against a 59.50 minimum, VAT included: a 47.60 shortfall,
      40.00 net, to commitment revenue; unbilled 50.00;
    - in yen, a 3,100 base fee in advance with 10 % tax included, not invoiced yet: 3,100 − 282
      = 2,818 net, recognized through Oct 15, 15 of 31 days: 2,818 × 15 ÷ 31 = 1,363.5… →
      1,364 yen of revenue out of deferred revenue (not 1,363.55); once invoiced with 495 of
      tax taken out (2,605 booked to deferred revenue), 2,605 × 15 ÷ 31 = 1,260.48… → 1,260
      (the arrears rule, 1,500 recognized net of its tax, would give 1,364 both times)."""
    october = Cycle(
        "kunde", "pro", date(2026, 10, 1), date(2026, 11, 1), date(2026, 10, 1),
        date(2026, 11, 1), 0, True, False,
    )  # fmt: skip
    vat = Inclusion("EUR", {"usage:api_calls": (D("0.19"),), "usage:tokens": (D("0.19"),)})

    def rated(charge: ChargeRating, credit: str) -> CycleRating:
        return CycleRating(october, date(2026, 10, 31), "EUR", (charge,), None, D(0), D(credit))

    tokens = _charge(0, "tokens", "1000", "23.80", False)
    assert net_targets(rated(tokens, "5.00"), vat) == {
        "usage_revenue:tokens": D("20.00"),
        "contract_asset": D("15.00"),
        "deferred": D("5.00"),
    }
    calls = _charge(0, "api_calls", "476", "119.00", True)
    assert net_targets(rated(calls, "10.00"), vat) == {
        "usage_revenue:api_calls": D("100.00"),
        "unbilled": D("90.00"),
        "deferred": D("10.00"),
    }
    # 11.90 of calls against a 59.50 minimum, VAT included: the 47.60 shortfall is netted as
    # its own part, 40.00, and unbilled holds both: 10.00 + 40.00
    calls = _charge(0, "api_calls", "476", "11.90", True)
    short = CycleRating(october, date(2026, 10, 31), "EUR", (calls,), None, D("47.60"), D(0))
    assert net_targets(short, replace(vat, rates={**vat.rates, "commitment": (D("0.19"),)})) == {
        "usage_revenue:api_calls": D("10.00"),
        "commitment_revenue:": D("40.00"),
        "unbilled": D("50.00"),
    }
    fee = BaseFeeRating("advance", D(3100), D(1500))
    in_yen = CycleRating(october, date(2026, 10, 15), "JPY", (), fee, D(0), D(0))
    assert net_targets(in_yen, Inclusion("JPY", {"base_fee": (D("0.10"),)})) == {
        "deferred": D(1364),
        "subscription_revenue:pro": D(1364),
    }
    # invoiced with 495 of tax taken out (2,605 booked): 2,605 × 15 ÷ 31 = 1,260.48… → 1,260
    invoiced = Inclusion("JPY", {"base_fee": (D("0.10"),)}, fee=(D(3100), D(2605)))
    assert net_targets(in_yen, invoiced) == {
        "deferred": D(1260),
        "subscription_revenue:pro": D(1260),
    }


def test_close_assertions_for_december() -> None:
    """December 2026's close: assertions dated 2027-01-01 (a ``balance`` is checked at the start
    of its day, so it states the books through Dec 31). acme's receivable 42.50 USD; kaisha's
    unbilled is 0, written "0 JPY" (JPY has no minor unit) and acme's unbilled "0.00 USD" (to
    the cent, as every USD amount in the books); an accepted finding's reason is written on one
    line, its quotes escaped."""
    day = assertion_day("2026-12")
    assert day == date(2027, 1, 1)
    entries = [
        balance_assertion(day, "Assets:Receivables:Invoiced:Acme", D("42.50"), "USD"),
        balance_assertion(day, "Assets:Receivables:Unbilled:Acme", D(0), "USD"),
        balance_assertion(day, "Assets:Receivables:Unbilled:Kaisha", D(0), "JPY"),
        acceptance_directive(
            "2026-12", "gaps:acme:api_calls", 'meter "paused"\n  for the holidays'
        ),
    ]
    assert_ledger(
        entries,
        """\
        2027-01-01 balance Assets:Receivables:Invoiced:Acme                42.50 USD

        2027-01-01 balance Assets:Receivables:Unbilled:Acme                0.00 USD

        2027-01-01 balance Assets:Receivables:Unbilled:Kaisha              0 JPY

        2027-01-01 custom "meterbook-accept" "2026-12" "gaps:acme:api_calls" \\
            "meter \\"paused\\" for the holidays"
        """,
    )
    # Loaded after December's invoice of 42.50: 0.004 USD left in unbilled is within the 0.00
    # assertion's tolerance (Beancount's: 0.01 for an amount to the cent), no error; 0.02 left
    # fails it.
    books = textwrap.dedent(
        """\
        2026-01-01 open Assets:Receivables:Invoiced:Acme
        2026-01-01 open Assets:Receivables:Unbilled:Acme
        2026-01-01 open Assets:Receivables:Unbilled:Kaisha
        2026-01-01 open Income:Usage

        2026-12-31 * "acme" "INV-2026-000012"
          Assets:Receivables:Invoiced:Acme  42.50 USD
          Assets:Receivables:Unbilled:Acme  {left} USD
          Income:Usage
        """
    )
    for left, errors in [("0.004", 0), ("0.02", 1)]:
        text = books.format(left=left) + "\n" + format_entries(entries)
        _, found, _ = loader.load_string(text)
        assert len(found) == errors, [e.message for e in found]


def test_tax_inclusive_usage_in_yen_is_netted_to_the_yen(builder_rules: Rules) -> None:
    """kaisha's October [Oct 1, Nov 1) in JPY, 10 % consumption tax included in its tokens
    price: 1,000 tokens at 1 yen = 1,000 yen, holding round(1,000 × 0.10 ÷ 1.10) = round(90.90…)
    = 91 yen of tax: 909 yen of revenue and unbilled, the tax rounded to the yen (not 90.91,
    which would leave 909.09, no amount in yen). Posted, the books hold Income:Usage:Tokens
    −909 JPY."""
    october = Cycle(
        "kaisha", "yen", date(2026, 10, 1), date(2026, 11, 1), date(2026, 10, 1),
        date(2026, 11, 1), 0, True, False,
    )  # fmt: skip
    tokens = _charge(0, "tokens", "1000", "1000", True)
    rated = CycleRating(october, date(2026, 10, 31), "JPY", (tokens,), None, D(0), D(0))
    consumption_tax = Inclusion("JPY", {"usage:tokens": (D("0.10"),)})
    assert consumption_tax.net("usage:tokens", D(1000)) == D(909)
    net = net_targets(rated, consumption_tax)
    assert net == {"usage_revenue:tokens": D(909), "unbilled": D(909)}
    snap = replace(
        _snap(
            date(2026, 10, 31),
            {"unbilled": "1000", "usage_revenue:tokens": "1000"},
            {"tokens": 1000},
            link="kaisha-2026-10-01",
            customer="kaisha",
            cycle="2026-10-01/2026-11-01",
            currency="JPY",
        ),
        net=tuple(sorted(net.items())),
    )
    books = _loaded(accrual_entries([snap], builder_rules))
    assert balance(books, "Income:Usage:Tokens", date(2026, 11, 1), "JPY") == D(-909)


def test_late_usage_of_tax_inclusive_prices_moves_the_books_as_the_invoice_froze_them(
    builder_rules: Rules,
) -> None:
    """acme's cycle, 19 % VAT included in its calls' price of 0.25: invoiced with 476 calls,
    119.00 gross, 119.00 − round(119.00 × 0.19 ÷ 1.19) = 119.00 − 19.00 = 100.00 net. Then 96
    more calls arrive for it: 572 calls, 143.00 gross, 143.00 − round(22.8319…) = 143.00 −
    22.83 = 120.17 net.

    - Frozen net (the invoice booked 100.00): the late entry moves the books from 100.00 to
      120.17: unbilled +20.17, Income:Usage:Api-Calls −20.17 (not the gross 24.00).
    - Frozen gross (an invoice issued before accruals were net of tax: the books hold 119.00):
      the cycle stays as it was booked, gross: +24.00 (143.00 − 119.00), not 120.17 − 119.00
      = 1.17."""
    gross_then = {"unbilled": "119.00", "usage_revenue:api_calls": "119.00"}
    gross_now = {"unbilled": "143.00", "usage_revenue:api_calls": "143.00"}
    through = date(2026, 10, 14)

    def net(amount: str) -> tuple[tuple[str, Decimal], ...]:
        return (("unbilled", D(amount)), ("usage_revenue:api_calls", D(amount)))

    now = replace(_snap(through, gross_now, {"api_calls": 572}), net=net("120.17"))
    frozen_net = replace(_snap(through, gross_then, {"api_calls": 476}), net=net("100.00"))
    frozen_gross = _snap(through, gross_then, {"api_calls": 476})
    day = date(2026, 11, 1)
    for frozen, moved in ((frozen_net, D("20.17")), (frozen_gross, D("24.00"))):
        [entry] = late_entries([(now, frozen, day)], builder_rules)
        assert [(p.account, p.units.number, p.meta) for p in entry.postings] == [
            ("Assets:Receivables:Unbilled:Acme", moved, None),
            ("Income:Usage:Api-Calls", -moved, {"meter": "api_calls", "quantity": D(96)}),
        ]
        books = _loaded([entry])
        assert balance(books, "Assets:Receivables:Unbilled:Acme", date(2026, 11, 2)) == moved


def test_an_advance_fee_cut_to_nothing_recognizes_nothing() -> None:
    """The 3,100 JPY advance fee invoiced with 495 of tax (2,605 booked to deferred revenue),
    now billed 0 by a change: the change's credit note gives back all 3,100, its tax included,
    so deferred revenue recognizes 0 − 495 + round(495 × 3,100 ÷ 3,100) = 0 (before the fix,
    −495: a negative recognition of the tax). Billed in full it recognizes what was booked,
    3,100 − 495 = 2,605; untaxed, a fee cut to 0 recognizes 0 too."""
    invoiced = Inclusion("JPY", fee=(D(3100), D(2605)))
    assert invoiced.advance_fee(D(0)) == 0
    assert invoiced.advance_fee(D(3100)) == D(2605)
    assert Inclusion("JPY", fee=(D(3100), D(3100))).advance_fee(D(0)) == 0


def test_a_snapshot_without_a_digest_posts_no_evidence(builder_rules: Rules) -> None:
    """acme's cycle rated through Sep 30 at 4,000 calls (4.00), frozen with no evidence digest
    given (a cycle whose events were never digested): its accrual is dated Sep 30, moves 4.00
    into unbilled and carries no ``evidence`` key at all (never an empty or made-up one)."""
    snap = snapshot(_rated(date(2026, 9, 30), "4.00"))
    assert snap.evidence == ""
    [entry] = _loaded(accrual_entries([snap], builder_rules))
    assert entry.date == date(2026, 9, 30) and "evidence" not in entry.meta
    assert balance([entry], "Assets:Receivables:Unbilled:Acme", date(2026, 10, 1)) == D("4.00")


def test_an_invoice_without_tax_on_usage_accrued_net_gives_the_tax_back_to_revenue(
    builder_rules: Rules,
) -> None:
    """acme's usage of [Sep 15, Oct 15) was accrued net of 19 % VAT: 119.00 of calls, 100.00
    of unbilled. The invoice of Oct 15 charges no tax at all (the tax plugin no longer taxes
    the customer): the receivable is the full 119.00, unbilled −100.00, and the 19.00 the
    accruals took out comes back: Income:Tax-Included −19.00, with ``invoice_tax: 0`` and
    ``accrued_tax: 19.00`` on that posting. No Liabilities:Tax posting."""
    line = replace(_line("usage", "unbilled", "119.00", ACME, ACME_CYCLE), net=D("100.00"))
    untaxed = Invoice("acme", date(2026, 10, 15), "USD", (line,), "r", "INV-2026-000008")
    [posted] = [e for e in invoice_entries([untaxed], builder_rules) if _is_txn(e)]
    expected = [
        ("Assets:Receivables:Invoiced:Acme", D("119.00")),
        ("Assets:Receivables:Unbilled:Acme", D("-100.00")),
        ("Income:Tax-Included", D("-19.00")),
    ]
    # every amount written out, none left for Beancount to fill in
    assert [(p.account, p.units and p.units.number) for p in posted.postings] == expected
    assert "Income:Tax-Included -19.00 USD" in " ".join(format_entries([posted]).split())
    [entry] = _loaded([posted])
    assert [(p.account, p.units.number) for p in entry.postings] == expected
    meta = {k: v for k, v in entry.postings[2].meta.items() if k not in ("filename", "lineno")}
    assert meta == {"invoice_tax": 0, "accrued_tax": D("19.00")}


def test_a_snapshot_net_of_no_tax_keeps_the_invoice_record_as_it_was() -> None:
    """acme's cycle through Sep 30 (4.00 of calls) under a tax-inclusive customer whose prices
    hold no tax (a reverse-charged customer: no rates): net of nothing is the targets
    themselves, so the snapshot records no separate net figures (``net`` empty, the books post
    ``targets``: 4.00 unbilled) and the invoice that freezes it stores its accruals without a
    ``net`` key, as before tax-inclusive prices existed. With 19 % VAT included it does:
    4.00 − round(0.6387) = 3.36."""
    rated = _rated(date(2026, 9, 30), "4.00")
    snap = snapshot(rated, "e1", Inclusion("USD"))
    assert snap.net == () and snap.booked == {
        "unbilled": D("4.00"),
        "usage_revenue:api_calls": D("4.00"),
    }
    invoice = Invoice("acme", date(2026, 10, 15), "USD", (), "r", "INV-1", accruals=(snap,))
    assert '"net"' not in invoice.to_json()
    vat = Inclusion("USD", {"usage:api_calls": (D("0.19"),)})
    assert dict(snapshot(rated, "e1", vat).net) == {
        "unbilled": D("3.36"),
        "usage_revenue:api_calls": D("3.36"),
    }


# --- discounts, threshold invoices and top-ups in the targets (issue 18) -----------------------


def _discount(part: str, account: str, amount: str, recognized: str = "") -> DiscountRating:
    return DiscountRating("10 % off", part, account, D(amount), D(recognized or amount))


def test_targets_take_each_discount_off_what_its_line_settles() -> None:
    """acme's cycle [Sep 15, Oct 15) through Oct 14, with 10 % off everything: 41.00 of calls
    (final), 2.50 of tokens (volume tiers, not final), pro's 49.00 fee in advance, all
    recognized, a 1.50 commitment shortfall, 38.00 of prepaid credit drawn. The discounts are
    4.10 on the calls (off unbilled), 0.25 on the tokens (off the contract asset) and 4.90 on
    the fee (off deferred revenue).

    Credit is applied to final usage net of its discount first: min(38.00, 41.00 − 4.10) =
    36.90, the other 1.10 to the tokens. unbilled 41.00 − 36.90 + 1.50 − 4.10 = 1.50;
    contract asset 2.50 − 1.10 − 0.25 = 1.15; deferred 38.00 + 49.00 − 4.90 = 82.10; discount
    4.10 + 0.25 + 4.90 = 9.25. Debits 1.50 + 1.15 + 82.10 + 9.25 = 94.00 = credits 41.00 +
    2.50 + 1.50 + 49.00. Untaxed, net of no tax is the same (the fee's discount recognized by
    day is all of it on the cycle's last day)."""
    rated = CycleRating(
        cycle=ACME_SEP,
        through=date(2026, 10, 14),
        currency="USD",
        charges=(
            _charge(0, "api_calls", "41000", "41.00", True),
            _charge(1, "tokens", "250", "2.50", False),
        ),
        base_fee=BaseFeeRating(timing="advance", billed=D("49.00"), recognized=D("49.00")),
        commitment_shortfall=D("1.50"),
        credit_applied=D("38.00"),
        discounts=(
            _discount("usage:api_calls", "unbilled", "4.10"),
            _discount("usage:tokens", "contract_asset", "0.25"),
            _discount("base_fee", "deferred", "4.90"),
        ),
    )
    assert split_credit(rated) == (D("36.90"), D("1.10"))
    expected = {
        "usage_revenue:api_calls": D("41.00"),
        "usage_revenue:tokens": D("2.50"),
        "unbilled": D("1.50"),
        "contract_asset": D("1.15"),
        "deferred": D("82.10"),
        "commitment_revenue:": D("1.50"),
        "subscription_revenue:pro": D("49.00"),
        "discount:": D("9.25"),
    }
    assert targets(rated) == expected
    assert net_targets(rated, Inclusion("USD")) == expected


def test_tax_inclusive_discounts_are_netted_and_a_fees_recognized_by_day() -> None:
    """kunde's October [Oct 1, Nov 1) in yen through Oct 15 (15 of 31 days), 10 % tax
    included in its call prices and its fee, 10 % off both:

    - 11,000 of calls (final): 11,000 − round(1,000) = 10,000 of revenue and unbilled; its
      1,100 discount is netted as the calls are: 1,100 − 100 = 1,000 off unbilled at once;
    - the 3,100 fee in advance, not invoiced yet: 3,100 − round(281.8) = 2,818 net,
      recognized round(2,818 × 15 ÷ 31) = round(1,363.5…) = 1,364; its 310 discount is
      310 − round(28.2) = 282 net, recognized by day as the fee: round(282 × 15 ÷ 31) =
      round(136.45…) = 136 yen (136.45 in cents), out of deferred revenue.

    unbilled 9,000; deferred 1,364 − 136 = 1,228; discount 1,000 + 136 = 1,136. Debits
    9,000 + 1,228 + 1,136 = 11,364 = credits 10,000 + 1,364."""
    october = Cycle(
        "kunde", "pro", date(2026, 10, 1), date(2026, 11, 1), date(2026, 10, 1),
        date(2026, 11, 1), 0, True, False,
    )  # fmt: skip
    rated = CycleRating(
        cycle=october,
        through=date(2026, 10, 15),
        currency="JPY",
        charges=(_charge(0, "api_calls", "1100", "11000", True),),
        base_fee=BaseFeeRating("advance", D(3100), D(1500)),
        commitment_shortfall=D(0),
        credit_applied=D(0),
        discounts=(
            _discount("usage:api_calls", "unbilled", "1100"),
            _discount("base_fee", "deferred", "310", "150"),
        ),
    )
    tax = Inclusion("JPY", {"usage:api_calls": (D("0.10"),), "base_fee": (D("0.10"),)})
    assert net_targets(rated, tax) == {
        "usage_revenue:api_calls": D(10000),
        "unbilled": D(9000),
        "subscription_revenue:pro": D(1364),
        "deferred": D(1228),
        "discount:": D(1136),
    }


def test_plan_points_post_a_threshold_invoices_accrual_in_the_place_of_that_days() -> None:
    """acme's cycle [Sep 15, Oct 15) billed by threshold: INV-1 of Sep 21 froze the cycle
    through Sep 20 (2.00, not an accrual point), INV-2 of Oct 1 through Sep 30 (4.00, the
    month end's point). Those ``progress`` snapshots do not close the cycle.

    Rated through Sep 20 only (no accrual point reached, nothing live): the Sep 20 threshold
    snapshot is posted all the same. Rated through Oct 14, Sep 30 at 5.00 (a late call since
    INV-2) and Oct 14 at 36.00, with digests for both: Sep 20 and Sep 30 as the threshold
    invoices froze them (4.00, not 5.00; their own evidence, none here), then Oct 14 live
    with its digest. Once the cycle-end invoice of Oct 15 froze Sep 30 (at 4.00) and Oct 14
    (36.00), the frozen Oct 14 stands for both and Sep 30 is still the threshold's."""
    sep20, sep30 = (
        snapshot(_rated(date(2026, 9, 20), "2.00")),
        snapshot(_rated(date(2026, 9, 30), "4.00")),
    )
    first = Invoice("acme", date(2026, 9, 21), "USD", (), "r", "INV-1", progress=(sep20,))
    second = Invoice("acme", date(2026, 10, 1), "USD", (), "r", "INV-2", progress=(sep30,))
    early = Rating(through=date(2026, 9, 20), cycles=(_rated(date(2026, 9, 20), "2.00"),))
    assert plan_points(early, [first], first_open=date.min) == ([sep20], [])

    rating = Rating(
        through=date(2026, 10, 14),
        cycles=(_rated(date(2026, 9, 30), "5.00"), _rated(date(2026, 10, 14), "36.00")),
    )
    digests = {(ACME, date(2026, 9, 30)): "e1", (ACME, date(2026, 10, 14)): "e2"}
    points, late = plan_points(rating, [first, second], first_open=date.min, evidence=digests)
    assert [(p.through, p.target("unbilled"), p.evidence) for p in points] == [
        (date(2026, 9, 20), D("2.00"), ""),
        (date(2026, 9, 30), D("4.00"), ""),
        (date(2026, 10, 14), D("36.00"), "e2"),
    ]
    assert late == []
    oct14 = snapshot(_rated(date(2026, 10, 14), "36.00"))
    last = Invoice(
        "acme", date(2026, 10, 15), "USD", (), "r", "INV-3",
        accruals=(snapshot(_rated(date(2026, 9, 30), "4.00")), oct14),
    )  # fmt: skip
    points, late = plan_points(rating, [first, second, last], first_open=date.min)
    assert points == [sep20, sep30, oct14] and late == []


def test_a_late_change_of_the_fee_alone_is_dated_on_its_invoice() -> None:
    """acme's cycle [Sep 15, Oct 15) invoiced on Oct 15 with Oct 14 frozen at 4.00 of calls
    (unbilled) and pro's 49.00 advance fee recognized (deferred, subscription revenue); acme
    was invoiced again on Nov 15. The fee is now billed 30.00 (a change since): the late
    difference moves deferred and subscription revenue only, nothing an invoice settles, so it
    is dated on the cycle's invoice, Oct 15. When the calls move too (5.00: unbilled +1.00),
    its late line waits from the latest invoice before it is billed: Nov 15."""

    def rated(calls: str, fee: str) -> CycleRating:
        return replace(
            _rated(date(2026, 10, 14), calls),
            base_fee=BaseFeeRating("advance", D(fee), D(fee)),
        )

    frozen = snapshot(rated("4.00", "49.00"))
    invoices = [
        Invoice("acme", date(2026, 10, 15), "USD", (), "r", "INV-1", accruals=(frozen,)),
        Invoice("acme", date(2026, 11, 15), "USD", (), "r", "INV-2"),
    ]
    for calls, day in (("4.00", date(2026, 10, 15)), ("5.00", date(2026, 11, 15))):
        rating = Rating(through=date(2026, 10, 14), cycles=(rated(calls, "30.00"),))
        [(now, then, when)] = plan_points(rating, invoices, first_open=date.min)[1]
        assert (now.target("deferred"), then.target("deferred"), when) == (
            D("30.00"),
            D("49.00"),
            day,
        )


def test_a_discount_is_a_debit_to_its_plans_discount_account(builder_rules: Rules) -> None:
    """acme's cycle [Sep 15, Oct 15) with 10 % off its calls, discounts booked per plan
    (``accounts.yaml``: ``discounts: Income:Discounts:{plan}``). Sep 30: 4,000 calls, 4.00 of
    revenue less 0.40 off: Income:Discounts:Pro +0.40 (contra-revenue, a debit, no meter),
    unbilled +3.60, Income:Usage:Api-Calls −4.00. Oct 14: 15,000 calls, 15.00 less 1.50: the
    change, +1.10, +9.90, −11.00. Invoiced with Oct 14 frozen, 2,000 more calls arrive: the
    late entry of Nov 1 moves 2.00 less 0.20 the same way, the discount on pro's account."""
    per_plan = AccountMap({"discounts": "Income:Discounts:{plan}"})
    rules = builder_rules.model_copy(update={"accounts": per_plan})
    sep30 = _snap(
        date(2026, 9, 30),
        {"discount:": "0.40", "unbilled": "3.60", "usage_revenue:api_calls": "4.00"},
        {"api_calls": 4000},
    )
    oct14 = _snap(
        date(2026, 10, 14),
        {"discount:": "1.50", "unbilled": "13.50", "usage_revenue:api_calls": "15.00"},
        {"api_calls": 15000},
    )
    entries = accrual_entries([sep30, oct14], rules)
    calls = {"meter": "api_calls"}
    assert [[(p.account, p.units.number, p.meta) for p in e.postings] for e in entries] == [
        [
            ("Income:Discounts:Pro", D("0.40"), None),
            ("Assets:Receivables:Unbilled:Acme", D("3.60"), None),
            ("Income:Usage:Api-Calls", D("-4.00"), {**calls, "quantity": D(4000)}),
        ],
        [
            ("Income:Discounts:Pro", D("1.10"), None),
            ("Assets:Receivables:Unbilled:Acme", D("9.90"), None),
            ("Income:Usage:Api-Calls", D("-11.00"), {**calls, "quantity": D(15000)}),
        ],
    ]
    now = _snap(
        date(2026, 10, 14),
        {"discount:": "1.70", "unbilled": "15.30", "usage_revenue:api_calls": "17.00"},
        {"api_calls": 17000},
    )
    [late] = late_entries([(now, oct14, date(2026, 11, 1))], rules)
    assert [(p.account, p.units.number, p.meta) for p in late.postings] == [
        ("Income:Discounts:Pro", D("0.20"), None),
        ("Assets:Receivables:Unbilled:Acme", D("1.80"), None),
        ("Income:Usage:Api-Calls", D("-2.00"), {**calls, "quantity": D(2000)}),
    ]
    books = _loaded([*entries, late])
    assert balance(books, "Income:Discounts:Pro", date(2026, 11, 2)) == D("1.70")
    assert balance(books, "Assets:Receivables:Unbilled:Acme", date(2026, 11, 2)) == D("15.30")


def test_a_wallet_top_ups_invoice_names_its_grants_and_their_breakage(
    builder_rules: Rules,
) -> None:
    """acme buys two wallet top-ups on Oct 5, 50.00 (``topup:BANK-7``, expiring Nov 5) and
    20.00 (``topup:BANK-8``), billed on INV-5 with a 1.00 base fee and two rules grants of Oct
    5. The rules grants are named by their place among that day's ``credit_grant`` lines
    without a ``grant`` ("2026-10-05#1", "#2"), each top-up by its own key; the invoice's
    ``grant`` metadata lists the top-ups it sold, "topup:BANK-7,topup:BANK-8". 20.00 of
    BANK-7 is left on Nov 5: its breakage (the customer's 4th grant, after the rules' three)
    names it and links INV-5: deferred +20.00, Income:Credit-Breakage −20.00, as ``post``
    writes it from a rating whose grants hold the top-up."""
    lines = (
        _line("base_fee", "deferred", "1.00"),
        _line("credit_grant", "deferred", "5.00"),
        replace(_line("credit_grant", "deferred", "50.00"), grant="topup:BANK-7"),
        _line("credit_grant", "deferred", "9.00"),
        replace(_line("credit_grant", "deferred", "20.00"), grant="topup:BANK-8"),
    )
    invoice = Invoice("acme", date(2026, 10, 5), "USD", lines, "r", "INV-5")
    assert grant_invoices([invoice]) == {
        ("acme", "2026-10-05#1"): "INV-5",
        ("acme", "2026-10-05#2"): "INV-5",
        ("acme", "topup:BANK-7"): "INV-5",
        ("acme", "topup:BANK-8"): "INV-5",
    }
    [posted] = [e for e in invoice_entries([invoice], builder_rules) if _is_txn(e)]
    assert posted.meta["grant"] == "topup:BANK-7,topup:BANK-8"
    wallet = WalletGrant(
        amount=D("50.00"), granted=date(2026, 10, 5), expires=date(2026, 11, 5), key="topup:BANK-7"
    )
    grants = {"acme": (*builder_rules.customers["acme"].credits, wallet)}
    expired = CreditMovement("acme", 3, date(2026, 11, 5), "breakage", D("20.00"))
    [entry] = breakage_entries([expired], builder_rules, [invoice], grants)
    assert balance(_loaded([entry]), "Income:Credit-Breakage", date(2026, 11, 6)) == D("-20.00")
    # post() hands the rating's grants, top-ups included, to the breakage
    rated = Rating(through=date(2026, 11, 5), cycles=(), credits=(expired,), grants=grants)
    assert post(rated, builder_rules, [invoice], first_open=date.min)[-1] == entry
    assert _shape(entry) == (
        date(2026, 11, 5),
        "*",
        "acme",
        "Prepaid credit expired (breakage)",
        frozenset({"INV-5"}),
        frozenset(),
        {
            "customer": "acme",
            "grant": "topup:BANK-7",
            "expires": date(2026, 11, 5),
            "grant_invoice": "INV-5",
            "rules": builder_rules.hash,
        },
        [
            ("Liabilities:Deferred-Revenue:Acme", D("20.00"), "USD", {}),
            ("Income:Credit-Breakage", D("-20.00"), "USD", {}),
        ],
    )


# --- a threshold invoice's accrual: the fee as at the last accrual point (issue 20) -----------

ACME_QUARTER = Cycle(
    "acme", "pro", date(2026, 9, 15), date(2026, 12, 15), date(2026, 9, 15), date(2026, 12, 15),
    0, True, False,
)  # fmt: skip


def _quarter(through: date, fee: bool = True) -> CycleRating:
    """acme's quarter [Sep 15, Dec 15) (91 days) through ``through``, day ``n`` of it: 100
    calls a day at 0.001, n × 0.10 of usage (final) with 10 % ``launch`` off it; pro's 91.00
    fee in advance, 1.00 a day, n × 1.00 recognized, 10 % ``launch`` (9.10) and 5 % ``loyal``
    (4.55) off it, n × 0.10 and n × 0.05 of those recognized (contra-revenue by day)."""
    n = (through - ACME_QUARTER.start).days + 1
    usage = D(n) / 10
    off = [DiscountRating("launch", "usage:api_calls", "unbilled", usage / 10, usage / 10)]
    if fee:
        off += [
            DiscountRating("launch", "base_fee", "deferred", D("9.10"), usage),
            DiscountRating("loyal", "base_fee", "deferred", D("4.55"), usage / 2),
        ]
    return CycleRating(
        cycle=ACME_QUARTER,
        through=through,
        currency="USD",
        charges=(_charge(0, "api_calls", str(n * 100), str(usage), True),),
        base_fee=BaseFeeRating("advance", D("91.00"), D(n)) if fee else None,
        commitment_shortfall=D(0),
        credit_applied=D(0),
        discounts=tuple(off),
    )


def test_a_threshold_accrual_keeps_the_fee_and_its_discounts_as_at_the_last_accrual_point(
    builder_rules: Rules,
) -> None:
    """acme's quarter [Sep 15, Dec 15) (:func:`_quarter`), its accrual points Sep 30, Oct 31,
    Nov 30 and Dec 14 (days 16, 47, 77, 91); earlier threshold invoices rated it through Oct 20
    and Nov 20 (days 36, 67), and a threshold invoice now through Dec 5 (day 82): 8.20 of
    usage, 0.82 off it, the fee 82.00 recognized by day, its discounts 8.20 and 4.10.

    The threshold's accrual moves usage only: its fee is as at the last accrual point before
    Dec 5, Nov 30 (not Oct 31, not Nov 20, which is no accrual point, not Dec 14, after it):
    77.00 recognized, ``launch`` 7.70 and ``loyal`` 3.85 off it, each discount found by label,
    part and account; the usage and its 0.82 discount stay as rated through Dec 5. Booked after
    Nov 30's accrual (usage 7.70 − 0.77 = 6.93 unbilled; fee 77.00, deferred 77.00 − 7.70 −
    3.85 = 65.45; discounts 0.77 + 7.70 + 3.85 = 12.32), Dec 5's entry moves usage −0.50,
    unbilled +0.45, discounts +0.05, and neither subscription revenue nor deferred revenue.

    Through Sep 20 (day 6, before the first accrual point): nothing of the fee or its discounts
    recognized. On an accrual point (Nov 30), or for a cycle with no fee: the rating as it is."""
    days = (30, 20, 31, 20, 30, 5, 14)
    months = (9, 10, 10, 11, 11, 12, 12)
    ratings = [_quarter(date(2026, m, d)) for m, d in zip(months, days, strict=True)]
    sep30, nov30, dec5 = ratings[0], ratings[4], ratings[5]
    usage_off = DiscountRating("launch", "usage:api_calls", "unbilled", D("0.82"), D("0.82"))
    assert fee_as_accrued(dec5, ratings) == replace(
        dec5,
        base_fee=BaseFeeRating("advance", D("91.00"), D("77.00")),
        discounts=(
            usage_off,
            DiscountRating("launch", "base_fee", "deferred", D("9.10"), D("7.70")),
            DiscountRating("loyal", "base_fee", "deferred", D("4.55"), D("3.85")),
        ),
    )
    sep20 = _quarter(date(2026, 9, 20))
    assert fee_as_accrued(sep20, [sep20, sep30]) == replace(
        sep20,
        base_fee=BaseFeeRating("advance", D("91.00"), D(0)),
        discounts=(
            DiscountRating("launch", "usage:api_calls", "unbilled", D("0.06"), D("0.06")),
            DiscountRating("launch", "base_fee", "deferred", D("9.10"), D(0)),
            DiscountRating("loyal", "base_fee", "deferred", D("4.55"), D(0)),
        ),
    )
    assert fee_as_accrued(nov30, ratings) is nov30
    no_fee = _quarter(date(2026, 12, 5), fee=False)
    assert fee_as_accrued(no_fee, [_quarter(date(2026, 11, 30), fee=False), no_fee]) is no_fee

    points = [snapshot(nov30), snapshot(fee_as_accrued(dec5, ratings))]
    entries = accrual_entries(points, builder_rules)
    assert [(p.account, p.units.number) for p in entries[1].postings] == [
        ("Income:Discounts", D("0.05")),
        ("Assets:Receivables:Unbilled:Acme", D("0.45")),
        ("Income:Usage:Api-Calls", D("-0.50")),
    ]
    books = _loaded(entries)
    assert [
        balance(books, account, date(2026, 12, 6))
        for account in (
            "Income:Subscriptions:Pro",
            "Liabilities:Deferred-Revenue:Acme",
            "Assets:Receivables:Unbilled:Acme",
            "Income:Discounts",
        )
    ] == [D("-77.00"), D("65.45"), D("7.38"), D("12.37")]
