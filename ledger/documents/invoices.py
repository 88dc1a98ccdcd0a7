"""What an invoice shows besides its record: who it is billed to, each line in the customer's
words, the shortfall explained, the prepaid credit left.

The invoice's JSON is the store's record and is never changed for presentation; everything
here is read from it and from the rules when the document is rendered. acme's invoice of
2026-09-15 (plan ``pro``: minimum commitment 100.00; ``api_calls`` named "API calls")::

    API calls                      Pro · 2026-08-15 – 2026-09-14   1,955 call     0.00
    storage_gb                     Pro · 2026-08-15 – 2026-09-14   128.8 GB      12.88
    Minimum commitment shortfall   Pro · 2026-08-15 – 2026-09-14                 87.12
      minimum 100.00 − usage 12.88 = 87.12
    Base fee, billed in advance    Pro · 2026-09-15 – 2026-10-14                 49.00

    >>> from ledger.facts.invoices import Invoice, InvoiceLine
    >>> usage = InvoiceLine("usage", "api_calls (unit)", "unbilled", Decimal("12.88"),
    ...                     "2026-08-15/2026-09-15", "acme-2026-08-15", "api_calls")
    >>> short = InvoiceLine("commitment", "minimum commitment shortfall", "unbilled",
    ...                     Decimal("87.12"), "2026-08-15/2026-09-15", "acme-2026-08-15")
    >>> invoice = Invoice("acme", date(2026, 9, 15), "USD", (usage, short), "r1")
    >>> for row in invoice_rows(invoice, None):
    ...     print(f"{row.label:30} {row.period}")
    api_calls                      2026-08-15 – 2026-09-14
    Minimum commitment shortfall   2026-08-15 – 2026-09-14
    >>> invoice_rows(invoice, None)[1].shortfall
    Shortfall(minimum=Decimal('100.00'), usage=Decimal('12.88'), amount=Decimal('87.12'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.cycles import link_series
from ledger.facts.invoices import Invoice, InvoiceLine
from ledger.money import ZERO

if TYPE_CHECKING:
    from ledger.rules import CreditGrant, Rules

#: labels of the lines whose description is an internal one (the usage line's is the meter's)
LABELS = {
    "commitment": "Minimum commitment shortfall",
    "credit_applied": "Prepaid credit applied",
    "late_usage": "Late usage",
}


@dataclass(frozen=True)
class BillTo:
    """The customer an invoice is addressed to: its name and ``billing:`` in ``customers.yaml``."""

    id: str
    name: str
    contact: str = ""
    address: tuple[str, ...] = ()
    email: str = ""
    reference: str = ""


@dataclass(frozen=True)
class Shortfall:
    """A minimum commitment shortfall explained: the cycle's minimum (prorated as the rating
    prorates it) less its usage charges on the invoice gives the line's amount."""

    minimum: Decimal
    usage: Decimal
    amount: Decimal


@dataclass(frozen=True)
class InvoiceRow:
    """One invoice line as the customer reads it: ``label`` (the meter's name for usage),
    ``plan`` (the display name of the cycle's plan), ``period`` (the cycle's first and last
    day, inclusive) and, for a commitment line, the ``shortfall`` behind it."""

    line: InvoiceLine
    label: str
    plan: str = ""
    period: str = ""
    shortfall: Shortfall | None = None


@dataclass(frozen=True)
class PrepaidBalance:
    """What is left of one prepaid credit grant on the invoice date, and until when it can be
    used (``expires`` is the first day it no longer can; None: it does not expire)."""

    remaining: Decimal
    granted: date
    expires: date | None = None

    @property
    def last_day(self) -> date | None:
        return self.expires - timedelta(days=1) if self.expires is not None else None


def bill_to(rules: Rules, customer: str) -> BillTo:
    """The invoice's addressee: the customer's name (its id when it has none) and billing
    details; a customer no longer in the rules is its id."""
    known = rules.customers.get(customer)
    if known is None:
        return BillTo(customer, customer)
    billing = known.billing
    if billing is None:
        return BillTo(customer, known.name or customer)
    return BillTo(
        customer,
        known.name or customer,
        contact=billing.contact,
        address=billing.address,
        email=billing.email,
        reference=billing.reference,
    )


def period(cycle_key: str) -> str:
    """A cycle key ``start/end`` (end exclusive) as the days it covers, both included.

    >>> period("2026-08-15/2026-09-15"), period("")
    ('2026-08-15 – 2026-09-14', '')
    """
    if "/" not in cycle_key:
        return ""
    start, end = (date.fromisoformat(part) for part in cycle_key.split("/"))
    return f"{start} – {end - timedelta(days=1)}"


def invoice_rows(invoice: Invoice, rules: Rules | None) -> list[InvoiceRow]:
    """The invoice's lines in their order, labelled for the customer (``rules`` None: ids)."""
    usage: dict[str, Decimal] = {}
    for line in invoice.lines:
        if line.kind == "usage":
            usage[line.link] = usage.get(line.link, ZERO) + line.amount
    plans = {snap.link: snap.plan for snap in invoice.accruals}
    rows = []
    for line in invoice.lines:
        shortfall = None
        if line.kind == "commitment" and line.link in usage:
            used = usage[line.link]
            shortfall = Shortfall(line.amount + used, used, line.amount)
        plan = plans.get(line.link) or _plan_at(rules, invoice.customer, line.cycle, line.link)
        rows.append(
            InvoiceRow(
                line=line,
                label=line_label(line, rules),
                plan=_plan_name(rules, plan),
                period=period(line.cycle),
                shortfall=shortfall,
            )
        )
    return rows


def line_label(line: InvoiceLine, rules: Rules | None) -> str:
    """A line in the customer's words: a usage line by its meter's display name, the base fee
    as billed in advance or in arrears, the other kinds by what they are (``rules`` None: ids).
    """
    if line.kind == "usage":
        meter = rules.meters.get(line.meter) if rules is not None else None
        return (meter.name if meter is not None else "") or line.meter or line.description
    if line.kind == "base_fee":
        return f"Base fee, billed {'in advance' if line.account == 'deferred' else 'in arrears'}"
    if line.kind == "discount":  # "Discount launch: 20% off" under the line it discounts
        return f"Discount {line.description}"
    if line.kind in LABELS and (line.cycle or line.kind != "late_usage"):
        return LABELS[line.kind]  # late usage says its cycle in the period column
    return line.description[:1].upper() + line.description[1:]


def _plan_at(rules: Rules | None, customer: str, cycle_key: str, link: str = "") -> str:
    """The plan of the customer's subscription that the cycle ``start/end`` (of the
    subscription id its ``link`` names) belongs to."""
    if rules is None or "/" not in cycle_key or customer not in rules.customers:
        return ""
    start = date.fromisoformat(cycle_key.split("/")[0])
    found = ""
    series = link_series(link) if link else ""
    for sub in rules.customers[customer].subscriptions:
        if sub.id == series and sub.start <= start and (sub.end is None or start < sub.end):
            found = sub.plan
    return found


def _plan_name(rules: Rules | None, plan: str) -> str:
    known = rules.plans.get(plan) if rules is not None and plan else None
    return (known.name if known is not None else "") or plan


def prepaid_balances(
    grants: Sequence[CreditGrant], left: Mapping[str, Decimal]
) -> tuple[PrepaidBalance, ...]:
    """The customer's ``grants`` (:attr:`ledger.rating.Rating.grants`) with something left,
    from ``left`` by grant key (:func:`ledger.rating.credit_at_start` of the invoice date),
    soonest expiry first."""
    from ledger.rating import grant_key

    balances = [
        PrepaidBalance(left[key], grant.granted, grant.expires)
        for i, grant in enumerate(grants)
        if left.get(key := grant_key(grants, i), ZERO) > 0
    ]
    return tuple(sorted(balances, key=lambda b: (b.expires or date.max, b.granted)))
