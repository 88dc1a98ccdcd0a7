"""A CSV of named columns, streamed: the base of the payments and live-totals importers.

A subclass names its columns and the record each row becomes; this class finds
the header (any column order, extra columns read past, a missing required column
refuses the whole file with :class:`ledger.importers.events.HeaderError`) and
yields one record per row in constant memory. A row it cannot read gets
``bad_csv``, ``bad_encoding`` or ``too_long``; judging the values is the engine's
job (:mod:`ledger.payments`, :mod:`ledger.live_totals`).

This module provides no hook: the registry skips modules whose name starts with ``_``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from typing import Any, ClassVar, Generic, TypeVar

from ledger.importers._filing import Filing
from ledger.importers.events import (
    HeaderError,
    Records,
    Source,
    csv_header,
    csv_records,
    unreadable,
)

_BOM = b"\xef\xbb\xbf"
Record = TypeVar("Record")


class ColumnsCsv(Filing, Generic[Record]):
    """``identify``, ``check`` and ``rows`` for a CSV with the columns ``columns``.

    ``record`` is built as ``record(line, raw, *values in columns order)`` for a
    row, and ``record(line, raw, "", …, reason, detail)`` for an unreadable one.
    Columns not in ``required`` may be absent from the header (their value is "").
    """

    kind: ClassVar[str]
    importer_name: ClassVar[str]
    #: What the files are called in a header error ("payments files have …").
    what: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    required: ClassVar[tuple[str, ...]]
    record: ClassVar[Any]
    ledger_account: ClassVar[str]

    @property
    def name(self) -> str:
        return self.importer_name

    def identify(self, filepath: str) -> bool:
        """A CSV whose header names every required column, whatever the file's name."""
        try:
            with open(filepath, "rb") as file:
                head = file.read(65536).removeprefix(_BOM)
        except OSError:
            return False
        return set(self.required) <= csv_header(head)

    def dates(self, filepath: str) -> Iterator[date]:
        """The ``date`` of each readable row (beangulp's ``archive`` files the document on the
        latest)."""
        try:
            for row in self.read(filepath):
                if not row.reason:  # type: ignore[attr-defined]
                    try:
                        yield date.fromisoformat(row.date.strip())  # type: ignore[attr-defined]
                    except ValueError:
                        continue
        except (HeaderError, OSError):
            return

    def check(self, source: Source) -> None:
        """Raise :class:`HeaderError` if the header lacks a required column."""
        self._header(source)

    def _header(self, source: Source) -> tuple[Records, list[str]] | None:
        records = csv_records(source)
        for line, cells in records:
            if isinstance(cells, tuple):
                raise HeaderError(f"line {line}: header: {cells[1]}")
            names = [c.strip() for c in cells]
            if len(set(names)) != len(names):
                duplicate = next(n for n in names if names.count(n) > 1)
                raise HeaderError(f"line {line}: header: duplicate column {duplicate!r}")
            missing = [n for n in self.required if n not in names]
            if missing:
                raise HeaderError(
                    f"line {line}: header: missing column {missing[0]!r} "
                    f"({self.what} files have {','.join(self.columns)})"
                )
            return records, names
        return None

    def rows(self, source: Source) -> Iterator[Record]:
        opened = self._header(source)
        if opened is not None:
            records, names = opened
            at = [names.index(n) if n in names else None for n in self.columns]
            width = len(names)
            for line, cells in records:
                if isinstance(cells, tuple):
                    yield self._unreadable(line, *cells)
                    continue
                n = len(cells)  # a short row's missing cells are empty (never padded to the width)
                if n > width:
                    detail = f"{n} cells, the header has {width}"
                    yield self._unreadable(line, "bad_csv", detail, cells)
                    continue
                yield self.record(
                    line, cells, *("" if i is None or i >= n else cells[i] for i in at)
                )
        source.drain()

    def read(self, path: str | os.PathLike[str]) -> Iterator[Record]:
        """The streaming generator of a file's rows."""
        with open(path, "rb") as file:
            yield from self.rows(Source(file))

    def _unreadable(self, line: int, reason: str, detail: str, raw: str | list[str]) -> Record:
        event = unreadable(line, reason, detail, raw)
        blanks = [""] * len(self.columns)
        return self.record(line, event.raw, *blanks, event.reason, event.detail)  # type: ignore[no-any-return]
