"""Live meter totals importer: a daily export of the product's own meter, as CSV, streaming.

The file has a header naming at least these columns (any order; extra columns
are read past)::

    date,customer,meter,quantity,source
    2026-10-01,acme,api_calls,812,gateway-eu
    2026-10-01,acme,api_calls,388,gateway-us

One :class:`RawLiveTotal` per row, in constant memory whatever the file size:

    >>> import io
    >>> from ledger.importers.events import Source
    >>> text = b"date,customer,meter,quantity,source\\n2026-10-01,acme,api_calls,812,gateway-eu\\n"
    >>> [row] = LiveTotalsCsv().rows(Source(io.BytesIO(text)))
    >>> row.line, row.date, row.customer, row.meter, row.quantity, row.source
    (2, '2026-10-01', 'acme', 'api_calls', '812', 'gateway-eu')

This module only reads (a row it cannot read gets ``bad_csv``, ``bad_encoding``
or ``too_long``); :mod:`ledger.live_totals` judges each row against the rules,
stores it idempotently by ``(source, date, customer, meter)`` and reads the
totals back for the dual-track reconciler. ``source`` may be left out (every
row's source is then ``default``); a header without one of the other four
columns refuses the whole file (:class:`ledger.importers.events.HeaderError`).
"""

from __future__ import annotations

from typing import NamedTuple

from beangulp import Importer

from ledger.hookspecs import hookimpl
from ledger.importers._columns import ColumnsCsv

COLUMNS = ("date", "customer", "meter", "quantity", "source")
#: ``source`` may be left out: every row's source is then ``default`` (as for usage events)
REQUIRED = COLUMNS[:4]


class RawLiveTotal(NamedTuple):
    """One live-totals row as read, before :func:`ledger.live_totals.live_total_of` judges it."""

    line: int
    raw: str | list[str]
    date: str
    customer: str
    meter: str
    quantity: str
    source: str
    reason: str = ""
    detail: str = ""


class LiveTotalsCsv(ColumnsCsv[RawLiveTotal]):
    """``date,customer,meter,quantity,source`` CSV (kind ``live_totals``, registered by
    :mod:`ledger.plugins.record_kinds`): live totals never become ledger entries; the
    dual-track reconciler compares them with the batch events."""

    kind = "live_totals"
    importer_name = "live-totals"
    what = "live totals"
    columns = COLUMNS
    required = REQUIRED
    record = RawLiveTotal
    ledger_account = "Income:Usage"


@hookimpl
def meterbook_importers() -> list[Importer]:
    """First-party live-totals importer, registered through the same hook as third-party ones."""
    return [LiveTotalsCsv()]
