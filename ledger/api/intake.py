"""Events pushed over HTTP, judged and stored by the same engine as files (:mod:`ledger.ingest`).

A request body is either JSON (``application/json``, ``application/cloudevents+json``,
``application/cloudevents-batch+json``: one event object or an array of them) or
NDJSON (``application/x-ndjson``, ``application/jsonl``: one event per line). Each
object is a usage event as in files — ``id, source, customer, type, time,
properties`` — or a structured-mode CloudEvent (an object with ``specversion``:
``subject`` is the customer, ``data`` the properties); the two may be mixed.

The body is written to a temporary file and imported with
:func:`ledger.ingest.ingest_file`: one transaction and one ``batches`` row per
request (named ``api:<key id>:<request id>``, so every stored row names the key
that made it), the same rules, reject reasons and row accounting, and idempotence
on ``(source, id)`` across requests and files. The transaction has committed before
the function returns, so the 200 that follows is only sent for stored events.

    >>> body = (b'[{"id": "e-1", "customer": "acme", "type": "api.request",'
    ...         b' "time": "2026-12-04T09:00:00Z"}]')
    >>> kinds = "application/json; charset=utf-8", "application/x-ndjson", "text/csv"
    >>> [body_kind(kind) for kind in kinds]
    ['json', 'ndjson', None]
    >>> import io
    >>> list(JsonBody().rows(Source(io.BytesIO(b'[{"id": "e-1"}, {"id": '))))
    Traceback (most recent call last):
    ledger.api.intake.MalformedBody: event 2: Expecting value

A JSON body that is not JSON (or not an object or array) is refused whole (HTTP
400): :class:`MalformedBody` is raised while the body is read, inside the ingest
transaction, which is rolled back, so nothing of it is stored. In NDJSON, as in a
``.jsonl`` file, a line that is not JSON is one ``bad_json`` reject.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from ledger.errors import BadInput
from ledger.importers.events import (
    CloudEventsJson,
    CloudEventsJsonl,
    HeaderError,
    JsonlEvents,
    RawEvent,
    Source,
)
from ledger.ingest import ImportReport, ingest_file
from ledger.rules import Rules
from ledger.store import conflicts, rejects

JSON_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
#: Rejected rows listed in a response (the counts per reason are always complete).
SHOWN_REJECTS = 1000

_PLAIN = JsonlEvents()
_CLOUD = CloudEventsJsonl()


def _event(line: int, raw: str, obj: Any) -> RawEvent:
    """A plain event object, or a CloudEvent when it has ``specversion``."""
    reader = _CLOUD if isinstance(obj, dict) and "specversion" in obj else _PLAIN
    return reader.event(line, raw, obj)


class MalformedBody(HeaderError):
    """A JSON body that cannot be read as events at all: refused whole."""


_UNREADABLE = "; the rest of the file is unreadable"


class JsonBody(CloudEventsJson):
    """A JSON body: one event object or an array, plain events or CloudEvents. An event's
    ``line`` is its position in the array (1-based), what a client can find it by."""

    importer_name = "api-json"
    #: set when the body was found malformed (the engine turns the exception into BadInput)
    malformed: str | None = None

    def event(self, line: int, raw: str, obj: Any) -> RawEvent:
        return _event(line, raw, obj)

    def rows(self, source: Source) -> Iterator[RawEvent]:
        for position, row in enumerate(super().rows(source), 1):
            if row.reason and row.detail.endswith(_UNREADABLE):
                self.malformed = f"event {position}: {row.detail.removesuffix(_UNREADABLE)}"
                raise MalformedBody(self.malformed)
            yield row._replace(line=position)


class NdjsonBody(JsonlEvents):
    """An NDJSON body: one event per line, plain events or CloudEvents."""

    importer_name = "api-ndjson"

    def event(self, line: int, raw: str, obj: Any) -> RawEvent:
        return _event(line, raw, obj)


def body_kind(content_type: str) -> str | None:
    """``json``, ``ndjson`` or None (unsupported) for a Content-Type header."""
    media = content_type.split(";")[0].strip().lower()
    if media in JSON_TYPES:
        return "json"
    if media in NDJSON_TYPES:
        return "ndjson"
    return None


def json_shape(body: bytes) -> str | None:
    """None when a JSON body starts as an object or an array, else what is wrong.

    >>> json_shape(b'  [{"id": "e-1"}]'), json_shape(b'"e-1"')
    (None, 'expected an event object or an array of them')
    """
    if body.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] in (b"[", b"{"):
        return None
    return "expected an event object or an array of them"


@dataclass(frozen=True)
class RowProblem:
    """A row of the request that was not stored as new: rejected (with its reason) or a conflict."""

    line: int
    outcome: str  # rejected | conflict
    reason: str
    detail: str


@dataclass(frozen=True)
class IntakeReport:
    """One request's accounting: the file ingest's counts, and its rejected and conflicting rows."""

    report: ImportReport
    problems: tuple[RowProblem, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        r = self.report
        return {
            "batch": r.batch_id,
            "received": r.received,
            "accepted": r.accepted,
            "duplicates": r.duplicates,
            "conflicts": r.conflicts,
            "rejected": r.rejected,
            "reasons": dict(sorted(r.reasons.items())),
            "rejects": [
                {"line": p.line, "reason": p.reason, "detail": p.detail}
                for p in self.problems
                if p.outcome == "rejected"
            ],
            "conflicting": [
                {"line": p.line, "detail": p.detail}
                for p in self.problems
                if p.outcome == "conflict"
            ],
        }


def ingest_body(
    engine: Engine,
    rules: Rules,
    body: bytes,
    kind: str,
    *,
    name: str,
    now: datetime,
    spool: Path | None = None,
) -> IntakeReport:
    """Store a request body's events (one transaction, committed on return) and account for each
    row."""
    importer = JsonBody() if kind == "json" else NdjsonBody()
    handle, path = tempfile.mkstemp(
        prefix="meterbook-api-", suffix=".json" if kind == "json" else ".jsonl", dir=spool
    )
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(body)
        try:
            report = ingest_file(engine, rules, Path(path), importer, now=now, name=name)
        except BadInput:
            if isinstance(importer, JsonBody) and importer.malformed:  # rolled back: nothing stored
                raise MalformedBody(importer.malformed) from None
            raise
    finally:
        os.unlink(path)
    problems: list[RowProblem] = []
    if report.rejected or report.conflicts:
        with engine.connect() as conn:
            if report.rejected:
                r = rejects.c
                for line, reason, detail in conn.execute(
                    sa.select(r.line, r.reason, r.detail)
                    .where(r.batch_id == report.batch_id)
                    .order_by(r.line, r.id)
                    .limit(SHOWN_REJECTS)
                ):
                    problems.append(RowProblem(int(line), "rejected", reason, detail))
            if report.conflicts:
                c = conflicts.c
                for line, event_id, source in conn.execute(
                    sa.select(c.line, c.event_id, c.source)
                    .where(c.batch_id == report.batch_id)
                    .order_by(c.line)
                    .limit(SHOWN_REJECTS)
                ):
                    problems.append(
                        RowProblem(
                            int(line),
                            "conflict",
                            "conflict",
                            f"({source}, {event_id}) is stored with another payload; "
                            "the first stored wins",
                        )
                    )
    return IntakeReport(report, tuple(problems))
