"""Finance reports over the books and the store, and the month-end close report.

``meterbook report revenue --month 2026-10`` on a workspace with two customers
on plan ``p`` (base fee 30.00 in advance, 0.10 per API call) prints::

    Revenue (recognized, from the books)

    method: Recognized revenue is minus the sum of the books' Income postings (Beancount …

    Revenue by month and line
    month    group          line       account                 currency  revenue
    2026-10  usage          api_calls  Income:Usage:Api-Calls  USD          2.60
    2026-10  subscriptions  p          Income:Subscriptions:P  USD         60.45

Every report is a :class:`~ledger.reports.table.Report`: a name, a title, the method
(one paragraph saying how it is computed) and tables of plain cells (str, Decimal,
int, date or None), printable as text, JSON or CSV. Accounting figures (revenue,
balances, roll-forwards) are read from the books as Beancount loads them, so
they are what Fava shows and what the seal protects; usage quantities are
measured in the event store by SQL metering (:func:`ledger.metering.measure`);
the deferred-revenue schedule and the receivables' open amounts are recomputed
from the issued invoices, payments and credit notes in the store, and each is
shown next to the books' balance it must explain.

One module per concern:

- :mod:`~ledger.reports.table`: the report, its tables and how they print;
- :mod:`~ledger.reports.sources`: what reports read (books, issued facts, monthly usage,
  the months a report covers);
- one module per report, each with a function ``(sources, month) -> Report`` named like it:
  :mod:`~ledger.reports.revenue`, :mod:`~ledger.reports.unbilled`,
  :mod:`~ledger.reports.deferred`, :mod:`~ledger.reports.aging`,
  :mod:`~ledger.reports.rollforward`, :mod:`~ledger.reports.arpu`,
  :mod:`~ledger.reports.forecast`, :mod:`~ledger.reports.risk`, :mod:`~ledger.reports.tax`;
- :mod:`~ledger.reports.close`: the close report (``books/YYYY/YYYY-MM.close.md``), these
  reports for the closed month in Markdown with the findings, acceptances and the seal hash.

This module is the registry: :data:`REPORTS` by name and :func:`build_report`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ledger.errors import BadInput
from ledger.period import is_month
from ledger.reports import (
    aging,
    arpu,
    deferred,
    forecast,
    revenue,
    risk,
    rollforward,
    tax,
    unbilled,
)
from ledger.reports.close import close_report_path, close_report_text, write_close_report
from ledger.reports.sources import Sources
from ledger.reports.table import Cell, Report, Table

if TYPE_CHECKING:
    from ledger.session import Session

__all__ = [
    "PERIOD_REPORTS",
    "REPORTS",
    "Cell",
    "Report",
    "ReportFunction",
    "Sources",
    "Table",
    "build_report",
    "close_report_path",
    "close_report_text",
    "write_close_report",
]

#: reports whose ``--month`` may be a period ``FIRST..LAST``
PERIOD_REPORTS = frozenset({"tax"})

ReportFunction = Callable[[Sources, "str | None"], Report]

#: every report by name, in the order ``meterbook report`` and Fava list them
REPORTS: dict[str, ReportFunction] = {
    "revenue": revenue.revenue,
    "unbilled": unbilled.unbilled,
    "deferred": deferred.deferred,
    "aging": aging.aging,
    "rollforward": rollforward.rollforward,
    "arpu": arpu.arpu,
    "forecast": forecast.forecast,
    "risk": risk.risk,
    "tax": tax.tax,
}


def build_report(session: Session, name: str, *, month: str | None = None) -> Report:
    """The report ``name`` (see :data:`REPORTS`) for ``month`` (``YYYY-MM``; default per report).

    Unknown names and malformed months are :class:`BadInput`.
    """
    function = REPORTS.get(name)
    if function is None:
        raise BadInput(f"unknown report {name!r} (known: {', '.join(REPORTS)})")
    if month is not None and not is_month(month):
        first, period, last = month.partition("..")  # a period: reports that sum over months (tax)
        if not (
            name in PERIOD_REPORTS
            and period
            and is_month(first)
            and is_month(last)
            and first <= last
        ):
            also = " or FIRST..LAST" if name in PERIOD_REPORTS else ""
            raise BadInput(f"--month: {month!r} is not YYYY-MM{also}")
    return function(Sources(session), month)
