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
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from beancount.parser import parser, printer

from ledger.cycles import Cycle
from ledger.facts.adjustments import Adjustment
from ledger.facts.credit_notes import CreditNote, CreditPart
from ledger.facts.invoices import Invoice, InvoiceLine, Snapshot, Tax, TaxLine
from ledger.facts.payments import CashApplication, Payment
from ledger.journal import post
from ledger.journal.accruals import accrual_entries, late_entries
from ledger.journal.adjustments import debit_entries, mark_credit_notes
from ledger.journal.credit_notes import credit_note_entries, fee_reduction_entries
from ledger.journal.invoices import breakage_entries, invoice_entries, invoice_evidence
from ledger.journal.payments import application_entries, payment_entries
from ledger.journal.sealed import catch_up
from ledger.rating import ChargeRating, CreditMovement, CycleRating, Rating
from ledger.rules import Rules, load_rules
from tests.support.workspaces import METERS_CALLS, write_workspace

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
