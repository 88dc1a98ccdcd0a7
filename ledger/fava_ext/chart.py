"""The Revenue page's data in the shapes Fava's own components take.

Fava (1.30) mounts ``<svelte-component type="…">`` elements found in an extension's
page, reading their data from an inner ``<script type="application/json">`` (see
``fava/ext/fava_ext_test/templates/FavaExtTest.html``): ``charts`` is Fava's chart
switcher (bar charts of :class:`fava.internal_api.BarChart`, line charts of
:class:`fava.internal_api.BalancesChart`), ``query-table`` the table of a BQL query
result (:class:`fava.core.query.QueryResultTable`), sortable and with amounts formatted
by Fava for its locale and each currency's precision. So the pages draw no chart and
format no number of their own; the self-contained statements keep their inline SVG
(:mod:`ledger.statements`), which must render with no Fava around.

With two months of USD::

    >>> from ledger.fava_ext.figures import MonthFigures
    >>> rows = (MonthFigures("2026-09", "USD", Decimal("160"), Decimal("60"), Decimal("110"),
    ...                      Decimal("10"), Decimal("60")),
    ...         MonthFigures("2026-10", "USD", Decimal("34"), Decimal("110"), Decimal("30"),
    ...                      Decimal("6"), Decimal("0")))
    >>> [(c.type, c.label) for c in revenue_charts(rows)]  # doctest: +NORMALIZE_WHITESPACE
    [('bar', 'recognized'), ('bar', 'invoiced'), ('balances', 'unbilled (end)'),
     ('balances', 'deferred (end)'), ('balances', 'receivable (end)')]
    >>> bars = revenue_charts(rows)[0].data
    >>> [(b.date.isoformat(), dict(b.balance)) for b in bars]
    [('2026-09-30', {'USD': Decimal('160')}), ('2026-10-31', {'USD': Decimal('34')})]
    >>> table = revenue_table(rows)
    >>> [c.name for c in table.types]
    ['month', 'recognized', 'invoiced', 'unbilled (end)', 'deferred (end)', 'receivable (end)']
    >>> table.rows[0][:2]
    ('2026-09', {'number': Decimal('160'), 'currency': 'USD'})
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from fava.core.charts import DateAndBalance, DateAndBalanceWithBudget
from fava.core.inventory import SimpleCounterInventory
from fava.core.query import AmountColumn, QueryResultTable, StrColumn
from fava.internal_api import BalancesChart, BarChart

from ledger.fava_ext.figures import MonthFigures
from ledger.period import month_end

#: (label, MonthFigures field): flows of the month are bars, balances at its end are lines.
FLOWS = (("recognized", "recognized"), ("invoiced", "invoiced"))
BALANCES = (
    ("unbilled (end)", "unbilled"),
    ("deferred (end)", "deferred"),
    ("receivable (end)", "receivable"),
)


def _by_month(
    rows: Sequence[MonthFigures], field: str
) -> list[tuple[date, SimpleCounterInventory]]:
    months: dict[str, SimpleCounterInventory] = {}
    for row in rows:
        months.setdefault(row.month, SimpleCounterInventory())[row.currency] = getattr(row, field)
    return [(month_end(month), inventory) for month, inventory in sorted(months.items())]


def revenue_charts(rows: Sequence[MonthFigures]) -> list[BarChart | BalancesChart]:
    """Fava ``charts``: a bar chart per flow, a line chart per month-end balance, every currency."""
    charts: list[BarChart | BalancesChart] = [
        BarChart(
            label,
            [
                DateAndBalanceWithBudget(day, inventory, {}, {})
                for day, inventory in _by_month(rows, f)
            ],
        )
        for label, f in FLOWS
    ]
    charts += [
        BalancesChart(
            label, [DateAndBalance(day, inventory) for day, inventory in _by_month(rows, f)]
        )
        for label, f in BALANCES
    ]
    return charts


def amount(number: Decimal, currency: str) -> dict[str, Any]:
    """An ``Amount`` cell of a Fava query table."""
    return {"number": number, "currency": currency}


def revenue_table(rows: Sequence[MonthFigures]) -> QueryResultTable:
    """Fava ``query-table`` of one currency's months (amounts as ``Amount`` cells)."""
    labels = [label for label, _f in FLOWS + BALANCES]
    return QueryResultTable(
        [StrColumn("month"), *(AmountColumn(label) for label in labels)],
        [
            (
                row.month,
                *(  # type: ignore[arg-type]
                    amount(getattr(row, f), row.currency) for _l, f in FLOWS + BALANCES
                ),
            )
            for row in rows
        ],
    )
