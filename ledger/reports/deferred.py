"""``meterbook report deferred``: deferred revenue recomputed from the issued invoices, next to
the books' balance, and the waterfall of its future recognition.

The workspace of ``tests/test_reports.py`` (base fee 30.00 in advance, ``ann``'s cycle
``[Oct 15, Nov 15)`` and a 5.00 prepaid credit expiring 2027-03-15) at 2026-10-31::

    Deferred revenue at 2026-10-31
    customer  currency  base fees  prepaid credits  scheduled  books  difference
    ann       USD           13.55             2.00      15.55  15.55        0.00

13.55 = 30.00 − round(30.00 × 17 ÷ 31): 17 of the cycle's 31 days are recognized by Oct 31.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.money import ZERO
from ledger.period import month_end, month_of, months_between, shift_month
from ledger.reports.sources import (
    Sources,
    as_of,
    at_minor_units,
)
from ledger.reports.table import Cell, Report, Table

if TYPE_CHECKING:
    from ledger.rating import Rating


@dataclass(frozen=True)
class Deferral:
    """Deferred revenue still to be recognized at a date: one advance base fee or one credit
    grant."""

    customer: str
    currency: str
    source: str
    remaining: Decimal
    #: month ("YYYY-MM", or "no expiry") → amount scheduled to be recognized in it
    schedule: tuple[tuple[str, Decimal], ...]


def deferrals(sources: Sources, day: date, rating: Rating | None = None) -> list[Deferral]:
    """What the deferred-revenue balances at the end of ``day`` consist of, and when it is
    recognized.

    Advance base fees on invoices dated on or before ``day`` are recognized by day
    to their cycle's end (month by month, as the accrual points post it); prepaid
    credits granted on invoices on or before ``day`` are drawn by usage, so their
    remainder is scheduled in the month they expire (breakage at the latest).
    """
    from ledger.credit_notes import fee_deferred_left

    out: list[Deferral] = []
    invoices = [inv for inv in sources.invoices if inv.date <= day]
    notes = [
        n for n in sources.credit_notes if n.date <= day
    ]  # a note's deferred part is off the fee
    for inv in invoices:
        for index, line in enumerate(inv.lines, start=1):
            if line.kind != "base_fee" or line.account != "deferred" or not line.cycle:
                continue
            end = date.fromisoformat(line.cycle.partition("/")[2])
            fee_left = fee_deferred_left(inv, index, notes, day)
            if not fee_left:
                continue
            schedule = []
            previous = fee_left
            for m in months_between(
                shift_month(month_of(day), 1), month_of(end - timedelta(days=1))
            ):
                remaining = fee_deferred_left(inv, index, notes, month_end(m))
                schedule.append((m, previous - remaining))
                previous = remaining
            out.append(
                Deferral(
                    inv.customer,
                    inv.currency,
                    f"base fee {line.cycle} ({inv.number})",
                    fee_left,
                    tuple(schedule),
                )
            )
    invoiced_grants = {
        (inv.customer, inv.date)
        for inv in invoices
        if any(line.kind == "credit_grant" for line in inv.lines)
    }
    needs_rating = any(
        (cid, g.granted) in invoiced_grants
        for cid, customer in sources.rules.customers.items()
        for g in customer.credits
    )
    if needs_rating:
        rating = rating or sources.session.rate(day)
        left: dict[tuple[str, int], Decimal] = defaultdict(lambda: ZERO)
        for move in rating.credits:
            if move.day <= day:
                left[(move.customer, move.grant)] += (
                    move.amount if move.kind == "return" else -move.amount
                )
        for cid, customer in sorted(sources.rules.customers.items()):
            for g, grant in enumerate(customer.credits):
                if (cid, grant.granted) not in invoiced_grants:
                    continue
                remaining = grant.amount + left[(cid, g)]
                if remaining <= 0:
                    continue
                when = month_of(grant.expires) if grant.expires else "no expiry"
                expiry = f", expires {grant.expires}" if grant.expires else ""
                out.append(
                    Deferral(
                        cid,
                        customer.currency,
                        f"prepaid credit granted {grant.granted}{expiry}",
                        remaining,
                        ((when, remaining),),
                    )
                )
    return sorted(out, key=lambda d: (d.customer, d.source))


def deferred(sources: Sources, month: str | None = None) -> Report:
    """Deferred-revenue balances per customer and the waterfall of their future recognition."""
    day = month_end(as_of(sources, month))
    items = deferrals(sources, day)
    balances = sources.balances(day)
    parts: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for item in items:
        parts[(item.customer, item.currency)][0 if item.source.startswith("base fee") else 1] += (
            item.remaining
        )
    for (kind, customer, currency), value in balances.items():
        if kind == "deferred" and value:
            parts.setdefault((customer, currency), [ZERO, ZERO])
    rows: list[tuple[Cell, ...]] = []
    for (customer, currency), (fees, credits) in sorted(parts.items()):
        in_books = -balances.get(
            ("deferred", customer, currency), ZERO
        )  # a liability: credit balance
        rows.append(
            (
                customer,
                currency,
                *at_minor_units(
                    currency, fees, credits, fees + credits, in_books, in_books - fees - credits
                ),
            )
        )
    waterfall = tuple(
        (m, item.customer, item.currency, item.source, amount)
        for item in items
        for m, amount in item.schedule
    )
    by_month: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for m, _customer, currency, _source, amount in waterfall:
        by_month[(m, currency)] += amount
    return Report(
        name="deferred",
        title=f"Deferred revenue at {day}",
        method=(
            f"Deferred revenue at {day} is recomputed from the issued invoices and compared "
            "with the books (a liability, shown positive). Advance base fees are recognized by "
            "day over their cycle, round(fee × days elapsed ÷ days in cycle) cumulative, exactly "
            "as the accrual points post them, so the waterfall gives each later month's share "
            "until the cycle ends. Prepaid credits are recognized as usage draws them, which "
            "cannot be scheduled: the remainder of each grant is placed in the month it expires "
            "(as breakage, at the latest), or under 'no expiry'. 'difference' is books − "
            "schedule and is 0 when the books hold exactly these deferrals. A credit note on an "
            "advance fee takes its deferred part out of the fee's remaining recognition, and one "
            "on prepaid credit out of the grant."
        ),
        tables=(
            Table(
                f"Deferred revenue at {day}",
                (
                    "customer",
                    "currency",
                    "base fees",
                    "prepaid credits",
                    "scheduled",
                    "books",
                    "difference",
                ),
                tuple(rows),
            ),
            Table(
                "Waterfall of future recognition",
                ("month", "customer", "currency", "source", "amount"),
                tuple(sorted(waterfall, key=lambda r: (r[0], r[1], r[3]))),
            ),
            Table(
                "Waterfall by month",
                ("month", "currency", "amount"),
                tuple((m, c, a) for (m, c), a in sorted(by_month.items())),
            ),
        ),
    )
