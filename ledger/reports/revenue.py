"""``meterbook report revenue``: recognized revenue from the books, by month × line and by
month × customer.

On a workspace with two customers on plan ``p`` (base fee 30.00 in advance, 0.10 per API
call), ``meterbook report revenue --month 2026-10`` prints::

    Revenue (recognized, from the books)

    method: Recognized revenue is minus the sum of the books' Income postings (Beancount signs:
    income is negative), by the month of the entry's date; …

    Revenue by month and line
    month    group          line       account                 currency  revenue
    2026-10  usage          api_calls  Income:Usage:Api-Calls  USD          2.60
    2026-10  subscriptions  p          Income:Subscriptions:P  USD         60.45
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.money import ZERO
from ledger.period import month_of
from ledger.reports.sources import Sources, at_minor_unit, months_of
from ledger.reports.table import Cell, Report, Table

if TYPE_CHECKING:
    from ledger.rules import Rules

REVENUE_GROUPS = ("usage", "subscriptions", "other")


def income_lines(rules: Rules) -> dict[str, tuple[str, str]]:
    """Income account → (group, line): usage per meter id, subscriptions per plan id, other
    by name."""
    lines: dict[str, tuple[str, str]] = {}
    for meter in sorted(rules.meters):
        lines.setdefault(rules.account("usage_revenue", meter=meter), ("usage", meter))
    for plan in sorted(rules.plans):
        lines.setdefault(rules.account("subscription_revenue", plan=plan), ("subscriptions", plan))
    lines.setdefault(rules.account("commitment_revenue"), ("other", "commitment shortfall"))
    lines.setdefault(rules.account("breakage_revenue"), ("other", "credit breakage"))
    lines.setdefault(rules.account("credit_notes"), ("other", "credit notes"))
    for plan in sorted(rules.plans):  # contra-revenue (ledger.discounts)
        lines.setdefault(rules.account("discounts", plan=plan), ("other", "discounts"))
    return lines


def revenue_postings(
    sources: Sources, *, per_customer: bool = False
) -> Iterator[tuple[str, str, str, str, str, str, Decimal]]:
    """(month, customer, group, line, account, currency, revenue) per Income posting
    (revenue = −amount) of the books, or with ``per_customer`` of the per-customer
    transactions (:attr:`Sources.customer_transactions`: the same with customer books)."""
    lines = income_lines(sources.rules)
    for entry in sources.customer_transactions if per_customer else sources.transactions:
        customer = str((entry.meta or {}).get("customer") or entry.payee or "")
        for posting in entry.postings:
            if not posting.account.startswith("Income:") or posting.units is None:
                continue
            number = posting.units.number
            if not isinstance(number, Decimal):
                continue
            group, line = lines.get(posting.account, ("other", posting.account))
            yield (
                month_of(entry.date),
                customer,
                group,
                line,
                posting.account,
                posting.units.currency,
                -number,
            )


def revenue(sources: Sources, month: str | None = None) -> Report:
    """Recognized revenue by month × line (meter, plan, other) and by month × customer."""
    months = set(months_of(sources, month))
    by_line: dict[tuple[str, int, str, str, str], Decimal] = defaultdict(lambda: ZERO)
    by_customer: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    for m, _customer, group, line, account, currency, amount in revenue_postings(sources):
        if m in months:
            by_line[(m, REVENUE_GROUPS.index(group), line, account, currency)] += amount
    for m, customer, group, _line, _account, currency, amount in revenue_postings(
        sources, per_customer=True
    ):
        if m in months:
            by_customer[(m, customer, currency)][group] += amount
    line_rows = tuple(
        (m, REVENUE_GROUPS[g], line, account, currency, amount)
        for (m, g, line, account, currency), amount in sorted(by_line.items())
    )
    customer_rows: tuple[tuple[Cell, ...], ...] = tuple(
        (
            m,
            customer or "(none)",
            currency,
            *(at_minor_unit(groups[g], currency) for g in REVENUE_GROUPS),
            at_minor_unit(sum(groups.values(), ZERO), currency),
        )
        for (m, customer, currency), groups in sorted(by_customer.items())
    )
    return Report(
        name="revenue",
        title="Revenue (recognized, from the books)",
        method=(
            "Recognized revenue is minus the sum of the books' Income postings (Beancount "
            "signs: income is negative), by the month of the entry's date; late adjustments "
            "count in the open month they are posted in, as the books hold them. Usage revenue "
            "is per meter (its Income:Usage account), base fees under subscriptions per plan; "
            "commitment shortfall, credit breakage and credit notes (contra-revenue, negative) "
            "under other. The customer is the transaction's `customer` metadata."
        ),
        tables=(
            Table(
                "Revenue by month and line",
                ("month", "group", "line", "account", "currency", "revenue"),
                line_rows,
            ),
            Table(
                "Revenue by month and customer",
                ("month", "customer", "currency", "usage", "subscriptions", "other", "total"),
                customer_rows,
            ),
        ),
    )
