"""Payments importer: a bank or payment-processor export as CSV, streaming.

The file has a header naming at least these columns (any order; extra columns
such as a payer name are read past)::

    date,amount,currency,invoice,reference
    2026-10-20,60.00,USD,INV-2026-000001,BANK-1
    2026-10-26,15.00,USD,,BANK-3

One :class:`RawPayment` per row, in constant memory whatever the file size:

    >>> import io
    >>> from ledger.importers.events import Source
    >>> text = (
    ...     b"date,amount,currency,invoice,reference\\n"
    ...     b"2026-10-20,60.00,USD,INV-2026-000001,BANK-1\\n"
    ... )
    >>> [row] = PaymentsCsv().rows(Source(io.BytesIO(text)))
    >>> row.line, row.date, row.amount, row.currency, row.invoice, row.reference
    (2, '2026-10-20', '60.00', 'USD', 'INV-2026-000001', 'BANK-1')

This module only reads (a row it cannot read gets ``bad_csv``, ``bad_encoding``
or ``too_long``); :mod:`ledger.payments` judges each row (``missing_field``,
``bad_date``, ``bad_number`` …), stores it idempotently by ``reference`` and
posts it. A row of ``kind`` ``topup`` buys wallet credit for ``customer`` instead
(:mod:`ledger.topups`; ``kind``, ``customer`` and ``expires`` are optional columns)::

    date,amount,currency,invoice,reference,kind,customer,expires
    2026-10-05,50.00,USD,,BANK-7,topup,acme,2027-10-05

A header without the five columns refuses the whole file
(:class:`ledger.importers.events.HeaderError`): nothing is written.
"""

from __future__ import annotations

from typing import NamedTuple

from beangulp import Importer

from ledger.hookspecs import hookimpl
from ledger.importers._columns import ColumnsCsv

COLUMNS = ("date", "amount", "currency", "invoice", "reference", "kind", "customer", "expires")
#: The columns every payments file has; ``kind``, ``customer`` and ``expires`` are optional
#: (a ``topup`` row buys wallet credit, :mod:`ledger.topups`).
REQUIRED = COLUMNS[:5]


class RawPayment(NamedTuple):
    """One payments row as read, before :func:`ledger.payments.payment_of` judges it."""

    line: int
    raw: str | list[str]
    date: str
    amount: str
    currency: str
    invoice: str
    reference: str
    kind: str = ""  # "" or "payment": cash received; "topup": a wallet top-up
    customer: str = ""  # a top-up's customer
    expires: str = ""  # a top-up's expiry day, or ""
    reason: str = ""
    detail: str = ""


class PaymentsCsv(ColumnsCsv[RawPayment]):
    """``date,amount,currency,invoice,reference`` CSV (kind ``payments``, registered by
    :mod:`ledger.plugins.record_kinds`): payments are stored by ``meterbook ingest`` and
    matched to invoices by ``meterbook post``."""

    kind = "payments"
    importer_name = "payments-csv"
    what = "payments"
    columns = COLUMNS
    required = REQUIRED
    record = RawPayment
    ledger_account = "Assets:Bank:Operating"


@hookimpl
def meterbook_importers() -> list[Importer]:
    """First-party payments importer, registered through the same hook as third-party ones."""
    return [PaymentsCsv()]
