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

COLUMNS = ("date", "customer", "meter", "quantity", "source")
#: ``source`` may be left out: every row's source is then ``default`` (as for usage events)
REQUIRED = COLUMNS[:4]
_BOM = b"\xef\xbb\xbf"


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


class LiveTotalsCsv(Importer):
    """``date,customer,meter,quantity,source`` CSV (kind ``live_totals``)."""

    kind = "live_totals"

    @property
    def name(self) -> str:
        return "live-totals"

    def identify(self, filepath: str) -> bool:
        """A ``.csv`` whose header names the live-totals columns (``source`` optional)."""
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
        return set(REQUIRED) <= names

    def account(self, filepath: str) -> str:
        return "Income:Usage"

    def extract(self, filepath: str, existing: Any) -> list[Any]:
        """Live totals never become ledger entries: ``meterbook ingest`` stores them
        and the dual-track reconciler compares them with the batch events."""
        return []

    def check(self, source: Source) -> None:
        """Raise :class:`HeaderError` if the header lacks a live-totals column."""
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
            missing = [n for n in REQUIRED if n not in names]
            if missing:
                raise HeaderError(f"line {reader.line_num}: header: missing column {missing[0]!r} "
                                  f"(live totals files have {','.join(COLUMNS)})")
            return reader, names
        return None

    def rows(self, source: Source) -> Iterator[RawLiveTotal]:
        opened = self._header(source)
        if opened is not None:
            reader, names = opened
            at = [names.index(n) if n in names else None for n in COLUMNS]
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
                yield RawLiveTotal(line, cells, *("" if i is None else cells[i] for i in at))
        source.drain()

    def read(self, path: str | os.PathLike[str]) -> Iterator[RawLiveTotal]:
        """The streaming generator of a file's rows."""
        with open(path, "rb") as file:
            yield from self.rows(Source(file))


def _unreadable(line: int, reason: str, detail: str, raw: str | list[str]) -> RawLiveTotal:
    event = unreadable(line, reason, detail, raw)
    return RawLiveTotal(line, event.raw, "", "", "", "", "", event.reason, event.detail)


def _store(engine: Engine, rules: Rules, path: Path, importer: Any, *, now: datetime, **options: Any,
           ) -> ingest.ImportReport:
    from ledger.live_totals import store_file

    return store_file(engine, rules, path, importer, now=now, **options)


# ``meterbook ingest`` routes an importer's records by its ``kind`` (ledger.ingest.KINDS):
# live totals go to their own table, judged and stored by ledger.live_totals.
ingest.KINDS.setdefault(LiveTotalsCsv.kind, _store)


@hookimpl
def meterbook_importers() -> list[Importer]:
    """First-party live-totals importer, registered through the same hook as third-party ones."""
    return [LiveTotalsCsv()]
