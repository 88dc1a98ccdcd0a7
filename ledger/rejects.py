"""Rejected rows, as the store keeps them: file, line, reason and its detail.

``ingest`` keeps every row it cannot store in the ``rejects`` table with one
reason (``unknown_customer``, ``bad_time`` …) and a detail a person can act on;
``meterbook rejects`` lists them. A workspace where ``usage.csv`` line 3 names a
customer the rules do not know lists::

    usage.csv:3  unknown_customer  customer 'Alpha' is not in the rules

Only rows not yet resolved are listed (``ingest --retry-rejected`` resolves a row
that the current rules accept); ``include_resolved`` lists those too. Filters:
the file (its name as given to ``ingest``, or just its base name), the reason,
and the ingest date (UTC day of the import that rejected the row), inclusive.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import PurePath
from typing import Any

from sqlalchemy import Engine, select

from ledger.escaping import SpreadsheetCsv, for_terminal
from ledger.store import batches, rejects

#: Columns of ``--csv`` and keys of ``--json``, in order.
FIELDS = ("file", "line", "reason", "detail", "ingested", "importer", "resolved")


@dataclass(frozen=True)
class RejectedRow:
    """One stored reject. ``ingested`` is the UTC day of the import that rejected it;
    ``resolved`` whether ``ingest --retry-rejected`` has since stored it."""

    file: str
    line: int
    reason: str
    detail: str
    ingested: date
    importer: str
    resolved: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "reason": self.reason,
            "detail": self.detail,
            "ingested": self.ingested.isoformat(),
            "importer": self.importer,
            "resolved": self.resolved,
        }

    def text(self) -> str:
        """``file:line  reason  detail``, with control characters of the input made visible."""
        mark = "  (resolved)" if self.resolved else ""
        return for_terminal(f"{self.file}:{self.line}  {self.reason}  {self.detail}{mark}")


def list_rejects(
    engine: Engine,
    *,
    file: str | None = None,
    reason: str | None = None,
    since: date | None = None,
    until: date | None = None,
    include_resolved: bool = False,
    limit: int | None = None,
    exact_file: bool = False,
) -> list[RejectedRow]:
    """Stored rejects in file, line order (then storage order), filtered as given
    (``exact_file``: ``file`` is the name as stored, not also a base name)."""
    query = (
        select(
            rejects.c.file,
            rejects.c.line,
            rejects.c.reason,
            rejects.c.detail,
            batches.c.started_at,
            rejects.c.importer,
            rejects.c.resolved_batch_id,
        )
        .join(batches, batches.c.id == rejects.c.batch_id)
        .order_by(rejects.c.file, rejects.c.line, rejects.c.id)
    )
    if not include_resolved:
        query = query.where(rejects.c.resolved_batch_id.is_(None))
    if file is not None and exact_file:
        query = query.where(rejects.c.file == file)
    if reason is not None:
        query = query.where(rejects.c.reason == reason)
    if since is not None:
        query = query.where(batches.c.started_at >= since.isoformat())
    if until is not None:  # stamps are ISO text: every stamp of ``until`` sorts before its next day
        query = query.where(batches.c.started_at < until.isoformat() + "~")
    found = []
    with engine.connect() as conn:
        for name, line, why, detail, started, importer, resolved in conn.execute(query):
            if file is not None and file not in (name, PurePath(name).name):
                continue
            day = date.fromisoformat(started[:10])
            found.append(
                RejectedRow(
                    name, int(line), why, detail or "", day, importer or "", resolved is not None
                )
            )
            if limit is not None and len(found) >= limit:
                break
    return found


def to_csv(rows: Sequence[RejectedRow]) -> str:
    """Header and one row per reject, every cell safe to open in a spreadsheet
    (:class:`ledger.escaping.SpreadsheetCsv`: a detail ``=HYPERLINK(…)`` is not a formula)."""
    out = io.StringIO()
    writer = SpreadsheetCsv(out)
    writer.writerow(FIELDS)
    for row in rows:
        cells = row.as_dict()
        writer.writerow([_cell(cells[key]) for key in FIELDS])
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
