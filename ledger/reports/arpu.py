"""``meterbook report arpu``: average revenue per unit, the usage revenue the books recognized
for a meter in a month divided by the quantity the store measured for it.

26 API calls in October and 2.60 of usage revenue at 0.10 a call: 0.10 per call. Tokens cost
millionths, so the figure keeps 6 significant digits (:func:`_per_unit`).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from ledger.money import ZERO
from ledger.reports.revenue import revenue_postings
from ledger.reports.sources import Sources, at_minor_unit, monthly_usage, months_of
from ledger.reports.table import Report, Table

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


def arpu(sources: Sources, month: str | None = None) -> Report:
    """Average revenue per unit: usage revenue (books) ÷ quantity (store), per meter and
    month."""
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
        title="Average revenue per unit",
        method=(
            "Per meter and calendar month: the usage revenue recognized in the books (its "
            "Income:Usage account, entries dated in the month) divided by the quantity the "
            "meter measured in the event store over the same month (SQL metering, workspace "
            "timezone, summed over the customers billing in that currency). Accruals at month "
            "ends make the two cover the same usage; late adjustments land in the month they "
            "are posted. Shown to 6 significant digits; empty when nothing was measured."
        ),
        tables=(
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
