"""``meterbook report aging``: open receivables per invoice at a month's end, bucketed by days
past the due date, per customer next to the books' receivable.

An invoice dated 2026-10-15 with 14 days' payment terms is due 2026-10-29; 20.00 of it still
open at 2026-10-31 is 2 days past due, in bucket ``1–30``; at 2026-10-20 it is ``current``
(0 days past due, never negative).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from ledger.money import ZERO
from ledger.period import month_end
from ledger.reports.sources import Sources, as_of, at_minor_units
from ledger.reports.table import Cell, Report, Table

#: Aging buckets by days past the due date (the due date itself is "current").
BUCKETS = ("current", "1–30", "31–60", "61–90", "over 90")


def aging_bucket(days_past_due: int) -> str:
    """The aging bucket of an open amount ``days_past_due`` days after its due date.

    >>> [aging_bucket(d) for d in (-3, 0, 1, 30, 31, 60, 61, 90, 91)]
    ['current', 'current', '1–30', '1–30', '31–60', '31–60', '61–90', '61–90', 'over 90']
    """
    if days_past_due <= 0:
        return BUCKETS[0]
    if days_past_due <= 30:
        return BUCKETS[1]
    if days_past_due <= 60:
        return BUCKETS[2]
    if days_past_due <= 90:
        return BUCKETS[3]
    return BUCKETS[4]


@dataclass(frozen=True)
class OpenItem:
    """An invoice with an amount still open at a date; ``days_past_due`` is 0 until its due
    date (an invoice due 2026-11-14 is 0 days past due, 'current', at 2026-10-31, not -14)."""

    invoice: str
    customer: str
    invoice_date: date
    due: date
    days_past_due: int
    currency: str
    open: Decimal

    @property
    def bucket(self) -> str:
        return aging_bucket(self.days_past_due)


def open_items(sources: Sources, day: date) -> list[OpenItem]:
    """Invoices dated on or before ``day`` still open after the payments and credit notes
    dated on or before ``day`` (the settlement replay of :func:`ledger.payments.open_amounts`),
    and negative invoices whose credit is not applied or refunded yet, as negative amounts
    (the customer's credit in the receivable, so the report ties to the books)."""
    from ledger.payments import open_amounts, outstanding

    invoices = [inv for inv in sources.invoices if inv.date <= day]
    facts = (
        invoices,
        [p for p in sources.payments if p.date <= day],
        [n for n in sources.credit_notes if n.date <= day],
        [a for a in sources.facts.applications if a.date <= day],
    )
    amounts = open_amounts(*facts)
    if any(inv.total < 0 for inv in invoices):
        credits = outstanding(*facts)
        amounts.update({inv.number: -credits[inv.number] for inv in invoices if inv.total < 0})
    items = []
    for inv in invoices:
        left = amounts.get(inv.number, ZERO)
        if left:
            due = inv.due_date
            past_due = max(0, (day - due).days)  # not due yet: 0 days past due, 'current'
            items.append(
                OpenItem(inv.number, inv.customer, inv.date, due, past_due, inv.currency, left)
            )
    return sorted(items, key=lambda i: (i.customer, i.invoice_date, i.invoice))


def aging(sources: Sources, month: str | None = None) -> Report:
    """Open receivables per invoice at the month's end, bucketed by days past due."""
    day = month_end(as_of(sources, month))
    items = open_items(sources, day)
    balances = sources.balances(day)
    per_customer: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
        lambda: {b: ZERO for b in BUCKETS}
    )
    for item in items:
        per_customer[(item.customer, item.currency)][item.bucket] += item.open
    for (kind, customer, currency), value in balances.items():
        if kind == "receivable" and value:
            per_customer.setdefault((customer, currency), {b: ZERO for b in BUCKETS})
    summary: list[tuple[Cell, ...]] = []
    totals: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {b: ZERO for b in (*BUCKETS, "books")}
    )
    for (customer, currency), buckets in sorted(per_customer.items()):
        in_books = balances.get(("receivable", customer, currency), ZERO)
        summary.append(
            (
                customer,
                currency,
                *at_minor_units(
                    currency, *(buckets[b] for b in BUCKETS), sum(buckets.values(), ZERO), in_books
                ),
            )
        )
        for b in BUCKETS:
            totals[currency][b] += buckets[b]
        totals[currency]["books"] += in_books
    for currency, t in sorted(totals.items()):
        summary.append(
            (
                "(total)",
                currency,
                *at_minor_units(
                    currency,
                    *(t[b] for b in BUCKETS),
                    sum((t[b] for b in BUCKETS), ZERO),
                    t["books"],
                ),
            )
        )
    return Report(
        name="aging",
        title=f"Receivables aging at {day}",
        method=(
            f"Open amount of each invoice dated on or before {day} after the payments and "
            f"credit notes dated on or before {day}, replayed in date order as the books settle "
            "them. The due date is the one stated on the invoice: its date plus the customer's "
            "payment_terms_days (0, due on receipt, unless the rules say otherwise); an invoice "
            "is 'current' (0 days past due) until its due date; days past due = the report date "
            "− the due date, bucketed current, 1–30, 31–60, 61–90 and over 90. 'books' is the "
            "customer's receivable balance in the books at the same date, which the open "
            "amounts add up to when nothing was credited beyond an invoice."
        ),
        tables=(
            Table(
                f"Open invoices at {day}",
                (
                    "invoice",
                    "customer",
                    "invoice date",
                    "due date",
                    "days past due",
                    "bucket",
                    "currency",
                    "open",
                ),
                tuple(
                    (
                        i.invoice,
                        i.customer,
                        i.invoice_date,
                        i.due,
                        i.days_past_due,
                        i.bucket,
                        i.currency,
                        i.open,
                    )
                    for i in items
                ),
            ),
            Table(
                "Aging by customer",
                ("customer", "currency", *BUCKETS, "total", "books"),
                tuple(summary),
            ),
        ),
    )
