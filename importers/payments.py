"""Payments importer: a bank or payment-processor export as CSV, streaming.

The file has a header naming at least these columns (any order; extra columns
such as a payer name are read past)::

    date,amount,currency,invoice,reference
    2026-10-20,60.00,USD,INV-2026-000001,BANK-1
    2026-10-26,15.00,USD,,BANK-3

One :class:`RawPayment` per row, in constant memory whatever the file size:

    >>> import io
    >>> from ledger.importers.events import Source
    >>> text = b"date,amount,currency,invoice,reference\\n2026-10-20,60.00,USD,INV-2026-000001,BANK-1\\n"
    >>> [row] = PaymentsCsv().rows(Source(io.BytesIO(text)))
    >>> row.line, row.date, row.amount, row.currency, row.invoice, row.reference
    (2, '2026-10-20', '60.00', 'USD', 'INV-2026-000001', 'BANK-1')

This module only reads (a row it cannot read gets ``bad_csv``, ``bad_encoding``
or ``too_long``); :mod:`ledger.payments` judges each row (``missing_field``,
``bad_date``, ``bad_number`` …), stores it idempotently by ``reference`` and
posts it. A header without the five columns refuses the whole file
(:class:`ledger.importers.events.HeaderError`): nothing is written.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from beangulp import Importer

from ledger import ingest
from ledger.hookspecs import hookimpl
from ledger.importers.events import HeaderError, Source, unreadable

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledger.rules import Rules

COLUMNS = ("date", "amount", "currency", "invoice", "reference")
_BOM = b"\xef\xbb\xbf"


class RawPayment(NamedTuple):
    """One payments row as read, before :func:`ledger.payments.payment_of` judges it."""

    line: int
    raw: str | list[str]
    date: str
    amount: str
    currency: str
    invoice: str
    reference: str
    reason: str = ""
    detail: str = ""


class PaymentsCsv(Importer):
    """``date,amount,currency,invoice,reference`` CSV (kind ``payments``)."""

    kind = "payments"

    @property
    def name(self) -> str:
        return "payments-csv"

    def identify(self, filepath: str) -> bool:
        """A ``.csv`` whose header names the five payment columns."""
        if not filepath.lower().endswith(".csv"):
            return False
        try:
            with open(filepath, "rb") as file:
                head = file.read(65536).removeprefix(_BOM)
        except OSError:
            return False
        first = next((line for line in head.splitlines() if line.strip()), b"")
        try:
            names = {c.strip() for c in next(csv.reader([first.decode("utf-8")]))}
        except (UnicodeDecodeError, csv.Error, StopIteration):
            return False
        return set(COLUMNS) <= names

    def account(self, filepath: str) -> str:
        return "Assets:Bank:Operating"

    def extract(self, filepath: str, existing: Any) -> list[Any]:
        """Payments are not extracted one by one into a ledger file: ``meterbook
        ingest`` stores them and ``meterbook post`` matches them to invoices."""
        return []

    def check(self, source: Source) -> None:
        """Raise :class:`HeaderError` if the header lacks a payment column."""
        self._header(source)

    def _header(self, source: Source) -> tuple[Any, list[str]] | None:
        reader = csv.reader(source.lines(), strict=False)
        for cells in reader:
            if not cells:
                if reader.line_num in source.bad:
                    raise HeaderError(f"line {reader.line_num}: header: {source.bad[reader.line_num][1]}")
                continue
            names = [c.strip() for c in cells]
            if len(set(names)) != len(names):
                duplicate = next(n for n in names if names.count(n) > 1)
                raise HeaderError(f"line {reader.line_num}: header: duplicate column {duplicate!r}")
            missing = [n for n in COLUMNS if n not in names]
            if missing:
                raise HeaderError(f"line {reader.line_num}: header: missing column {missing[0]!r} "
                                  f"(payments files have {','.join(COLUMNS)})")
            return reader, names
        return None

    def rows(self, source: Source) -> Iterator[RawPayment]:
        opened = self._header(source)
        if opened is not None:
            reader, names = opened
            at = [names.index(n) for n in COLUMNS]
            width = len(names)
            for cells in reader:
                line = reader.line_num
                if len(cells) != width:
                    if not cells:
                        if line in source.bad:
                            reason, detail, raw = source.bad.pop(line)
                            yield _unreadable(line, reason, detail, raw)
                        continue
                    if len(cells) > width:
                        yield _unreadable(line, "bad_csv", f"{len(cells)} cells, the header has {width}", cells)
                        continue
                    cells = cells + [""] * (width - len(cells))
                yield RawPayment(line, cells, *(cells[i] for i in at))
        source.drain()

    def read(self, path: str | os.PathLike[str]) -> Iterator[RawPayment]:
        """The streaming generator of a file's rows."""
        with open(path, "rb") as file:
            yield from self.rows(Source(file))


def _unreadable(line: int, reason: str, detail: str, raw: str | list[str]) -> RawPayment:
    event = unreadable(line, reason, detail, raw)
    return RawPayment(line, event.raw, "", "", "", "", "", event.reason, event.detail)


def _store(engine: Engine, rules: Rules, path: Path, importer: Any, *, now: datetime, **options: Any,
           ) -> ingest.ImportReport:
    from ledger.payments import store_file

    return store_file(engine, rules, path, importer, now=now, **options)


# ``meterbook ingest`` routes an importer's records by its ``kind`` (ledger.ingest.KINDS):
# payments go to their own table, judged and stored by ledger.payments.
ingest.KINDS.setdefault(PaymentsCsv.kind, _store)


@hookimpl
def meterbook_importers() -> list[Importer]:
    """First-party payments importer, registered through the same hook as third-party ones."""
    return [PaymentsCsv()]
