"""``meterbook report arpu``: average revenue per user, the revenue the books recognized in a
month divided by the customers active in it, per currency.

Two customers active in October, one recognizing 31.00 and the other 32.05: ARPU
63.05 ÷ 2 = 31.525, 31.52 at the cent (half-even). A customer is active in a month when one
of its subscriptions runs on a day of it (:func:`is_active`), or the books recognized revenue
from it in the month (a late adjustment after a churn).

A second table keeps the effective price per unit of each meter: 26 API calls in October and
2.60 of usage revenue at 0.10 a call is 0.10 per call; tokens cost millionths, so that figure
keeps 6 significant digits (:func:`_per_unit`).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import TYPE_CHECKING

from ledger.money import ZERO
from ledger.period import month_end, month_start
from ledger.reports.revenue import revenue_postings
from ledger.reports.sources import Sources, at_minor_unit, monthly_usage, months_of
from ledger.reports.table import Cell, Report, Table

if TYPE_CHECKING:
    from ledger.rules import Customer

#: Significant digits of revenue per unit.
PER_UNIT_DIGITS = 6


def _per_unit(amount: Decimal, quantity: Decimal) -> Decimal:
    """``amount ÷ quantity`` to :data:`PER_UNIT_DIGITS` significant digits (tokens cost
    millionths).

    >>> _per_unit(Decimal("2.60"), Decimal(26)), _per_unit(Decimal("10.59"), Decimal(5296513))
    (Decimal('0.10'), Decimal('0.00000199943'))
    """
    with localcontext() as context:
        context.prec = PER_UNIT_DIGITS
        context.rounding = ROUND_HALF_EVEN
        return amount / quantity


def is_active(customer: Customer, month: str) -> bool:
    """Whether one of the customer's subscriptions runs on at least one day of ``month`` (an
    ``end`` is exclusive: a subscription ending on 2026-10-01 last ran on 2026-09-30).

    >>> from datetime import date
    >>> from ledger.rules import Customer, Subscription
    >>> churned = Customer(id="c", currency="USD", subscriptions=(
    ...     Subscription(plan="p", start=date(2026, 8, 15), end=date(2026, 10, 1)),))
    >>> [is_active(churned, m) for m in ("2026-07", "2026-08", "2026-09", "2026-10")]
    [False, True, True, False]
    """
    first, last = month_start(month), month_end(month)
    return any(
        sub.start <= last and (sub.end is None or sub.end > first) for sub in customer.subscriptions
    )


def _per_customer(sources: Sources, months: list[str]) -> tuple[tuple[Cell, ...], ...]:
    """(month, currency, customers, revenue, per customer, usage revenue, per customer) rows."""
    revenue_by: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    usage_by: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    active: dict[tuple[str, str], set[str]] = defaultdict(set)
    for m, customer, group, _line, _account, currency, amount in revenue_postings(sources):
        if m in months:
            revenue_by[(m, currency)][customer] += amount
            if group == "usage":
                usage_by[(m, currency)] += amount
            if customer in sources.rules.customers and amount:
                active[(m, currency)].add(customer)
    for cid, record in sources.rules.customers.items():
        for m in months:
            if is_active(record, m):
                active[(m, record.currency)].add(cid)
    rows: list[tuple[Cell, ...]] = []
    for m, currency in sorted(set(revenue_by) | set(active)):
        count = len(active.get((m, currency), ()))
        total = sum(revenue_by.get((m, currency), {}).values(), ZERO)
        usage = usage_by.get((m, currency), ZERO)
        rows.append(
            (
                m,
                currency,
                count,
                at_minor_unit(total, currency),
                at_minor_unit(total / count, currency) if count else None,
                at_minor_unit(usage, currency),
                at_minor_unit(usage / count, currency) if count else None,
            )
        )
    return tuple(rows)


def arpu(sources: Sources, month: str | None = None) -> Report:
    """Average revenue per user: revenue (books) ÷ active customers, per month and currency;
    and revenue per unit of each meter."""
    months = months_of(sources, month)
    revenue_by: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    for m, _customer, group, line, _account, currency, amount in revenue_postings(sources):
        if group == "usage" and m in months:
            revenue_by[(m, line, currency)] += amount
    quantity_by: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    customers: dict[tuple[str, str, str], set[str]] = {}
    for (cid, meter, m), usage in monthly_usage(sources, months).items():
        currency = sources.rules.customers[cid].currency
        quantity_by[(m, meter, currency)] += usage.quantity
        if usage.quantity:
            customers.setdefault((m, meter, currency), set()).add(cid)
    rows = []
    for key in sorted(set(revenue_by) | {k for k, q in quantity_by.items() if q}):
        m, meter, currency = key
        quantity, amount = quantity_by.get(key, ZERO), revenue_by.get(key, ZERO)
        per_unit = _per_unit(amount, quantity) if quantity else None
        unit = sources.rules.meters[meter].unit if meter in sources.rules.meters else ""
        rows.append(
            (
                m,
                meter,
                unit,
                currency,
                len(customers.get(key, ())),
                quantity,
                at_minor_unit(amount, currency),
                per_unit,
            )
        )
    return Report(
        name="arpu",
        title="Average revenue per user",
        method=(
            "Per calendar month and currency: the revenue recognized in the books (every "
            "Income account, entries dated in the month, as the revenue report) divided by the "
            "customers active in the month: those with a subscription running on at least one "
            "of its days, and any other customer the books recognized revenue from in it (a "
            "late adjustment after a churn). 'usage' is the part recognized on Income:Usage. "
            "Per customer figures are rounded half-even to the currency's minor unit; empty "
            "without active customers. Revenue per unit, per meter and calendar month: the usage "
            "revenue recognized in the books (its "
            "Income:Usage account, entries dated in the month) divided by the quantity the "
            "meter measured in the event store over the same month (SQL metering, workspace "
            "timezone, summed over the customers billing in that currency). Accruals at month "
            "ends make the two cover the same usage; late adjustments land in the month they "
            "are posted. Shown to 6 significant digits; empty when nothing was measured."
        ),
        tables=(
            Table(
                "Revenue per customer by month",
                (
                    "month",
                    "currency",
                    "active customers",
                    "revenue",
                    "revenue per customer",
                    "usage revenue",
                    "usage revenue per customer",
                ),
                _per_customer(sources, months),
            ),
            Table(
                "Revenue per unit by month and meter",
                (
                    "month",
                    "meter",
                    "unit",
                    "currency",
                    "customers",
                    "quantity",
                    "revenue",
                    "revenue per unit",
                ),
                tuple(rows),
            ),
        ),
    )
