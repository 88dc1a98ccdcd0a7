"""``meterbook report unbilled``: each customer's unbilled and contract-asset balances in the
books at a month's end (accrued, not invoiced yet), with a total per currency."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ledger.money import ZERO
from ledger.period import month_end
from ledger.reports.sources import Sources, as_of, at_minor_units
from ledger.reports.table import Cell, Report, Table


def unbilled(sources: Sources, month: str | None = None) -> Report:
    """Per customer: unbilled and contract-asset balances at the end of the month."""
    day = month_end(as_of(sources, month))
    balances = sources.balances(day)
    keys = sorted({(c, cur) for (k, c, cur) in balances if k in ("unbilled", "contract_asset")})
    rows: list[tuple[Cell, ...]] = []
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for customer, currency in keys:
        u, ca = (
            balances.get(("unbilled", customer, currency), ZERO),
            balances.get(("contract_asset", customer, currency), ZERO),
        )
        rows.append((customer, currency, *at_minor_units(currency, u, ca, u + ca)))
        totals[currency][0] += u
        totals[currency][1] += ca
    for currency, (u, ca) in sorted(totals.items()):
        rows.append(("(total)", currency, *at_minor_units(currency, u, ca, u + ca)))
    return Report(
        name="unbilled",
        title=f"Unbilled revenue at {day}",
        method=(
            f"Balances of each customer's unbilled and contract-asset accounts in the books "
            f"after every entry dated on or before {day}: usage, commitment shortfalls and "
            "arrears base fees accrued and not invoiced yet (contract assets: volume-tier "
            "usage whose price depends on the cycle-end total)."
        ),
        tables=(
            Table(
                f"Unbilled at {day}",
                ("customer", "currency", "unbilled", "contract asset", "total"),
                tuple(rows),
            ),
        ),
    )
