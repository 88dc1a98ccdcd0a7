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
from ledger.rules import WalletGrant
from ledger.topups import topup_description

if TYPE_CHECKING:
    from ledger.facts.invoices import Invoice
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
    from ledger.credit_notes import fee_deferred_left, fee_recognized, line_discount

    def fee_left(inv: Invoice, index: int, through: date) -> Decimal:
        # deferred revenue holds the fee net of its discount, recognized on the fee's schedule
        left = fee_deferred_left(inv, index, notes, through)
        off = line_discount(inv, index)
        cycle = inv.lines[index - 1].cycle
        return left - (off - fee_recognized(off, cycle, through, inv.currency)) if off else left

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
            left_on_day = fee_left(inv, index, day)
            if not left_on_day:
                continue
            schedule = []
            previous = left_on_day
            for m in months_between(
                shift_month(month_of(day), 1), month_of(end - timedelta(days=1))
            ):
                remaining = fee_left(inv, index, month_end(m))
                schedule.append((m, previous - remaining))
                previous = remaining
            out.append(
                Deferral(
                    inv.customer,
                    inv.currency,
                    f"base fee {line.cycle} ({inv.number})",
                    left_on_day,
                    tuple(schedule),
                )
            )
    invoiced_grants = {
        (inv.customer, inv.date)
        for inv in invoices
        if any(line.kind == "credit_grant" for line in inv.lines)
    }
    # wallet top-ups (ledger.topups): each on an invoice of its own that names it
    invoiced_topups = {(inv.customer, ln.grant) for inv in invoices for ln in inv.lines if ln.grant}
    needs_rating = bool(invoiced_topups) or any(
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
            for g, grant in enumerate(rating.grants_of(customer)):
                if isinstance(grant, WalletGrant):
                    if (cid, grant.key) not in invoiced_topups:
                        continue
                elif (cid, grant.granted) not in invoiced_grants:
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
                        topup_description(grant)
                        if isinstance(grant, WalletGrant)
                        else f"prepaid credit granted {grant.granted}{expiry}",
                        remaining,
                        ((when, remaining),),
                    )
                )
    return sorted(out, key=lambda d: (d.customer, d.source))


#: The deferred report's method on late entries booked after its date.
LATE_METHOD = (
    " Usage that arrived after its month was sealed "
    "draws the grant in the schedule but is booked later, on the first open day, as a "
    "late entry (late: TRUE, usage_date on or before this date): 'late, booked later' "
    "is what those entries move deferred revenue by, and 'difference' is books + late − "
    "schedule. Usage that arrived after its cycle was invoiced is booked at the cycle's "
    "last day (its usage_date), so a date inside that cycle shows it as a difference."
)


def late_after(sources: Sources, day: date) -> dict[tuple[str, str], Decimal]:
    """(customer, currency) → how much the late entries dated after ``day`` for usage on or
    before it move deferred revenue (a liability, shown positive: a draw is negative).

    A late event is rated into its own cycle by the store, but the books take it on the first
    open day (``late: TRUE``, ``usage_date``): the books at ``day`` do not hold it yet."""
    kinds = sources.account_kinds
    moved: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for entry in sources.customer_transactions:
        meta = entry.meta or {}
        usage = meta.get("usage_date")
        if entry.date <= day or not meta.get("late") or not isinstance(usage, date):
            continue
        if usage > day:
            continue
        for posting in entry.postings:
            found = kinds.get(posting.account)
            if found is None or found[0] != "deferred" or posting.units is None:
                continue
            if isinstance(posting.units.number, Decimal):
                moved[(found[1], posting.units.currency)] -= posting.units.number
    return {key: value for key, value in moved.items() if value}


def deferred(sources: Sources, month: str | None = None, *, booked_later: bool = True) -> Report:
    """Deferred-revenue balances per customer and the waterfall of their future recognition.

    ``booked_later`` False leaves out the column of late entries booked after the date: the
    close report, written as its month is sealed (nothing can be booked into it later yet),
    keeps the layout its seals were taken with."""
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
    late = late_after(sources, day) if booked_later else {}
    for customer, currency in late:
        parts.setdefault((customer, currency), [ZERO, ZERO])
    rows: list[tuple[Cell, ...]] = []
    for (customer, currency), (fees, credits) in sorted(parts.items()):
        in_books = -balances.get(
            ("deferred", customer, currency), ZERO
        )  # a liability: credit balance
        later = late.get((customer, currency), ZERO)
        figures = (fees, credits, fees + credits, in_books, *((later,) if booked_later else ()))
        rows.append(
            (
                customer,
                currency,
                *at_minor_units(currency, *figures, in_books + later - fees - credits),
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
            "on prepaid credit out of the grant." + (LATE_METHOD if booked_later else "")
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
                    *(("late, booked later",) if booked_later else ()),
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
