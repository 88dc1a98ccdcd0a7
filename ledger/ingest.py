"""Idempotent ingest: every row of a file accepted, duplicate, conflict or rejected.

A worked example — with ``e-2`` already stored and ``nobody`` not a customer::

    id,customer,type,time
    e-1,acme,api.request,2026-10-05T08:30:00Z
    e-2,acme,api.request,2026-10-05T08:31:00Z
    e-3,nobody,api.request,2026-10-05T08:32:00Z

    $ meterbook ingest usage.csv
    usage.csv: received 3, accepted 1, duplicates 1, conflicts 0, rejected 1 (unknown_customer 1)

Always ``received = accepted + duplicates + conflicts + rejected``:

- *accepted*: stored in ``events`` in its canonical form (:class:`ledger.events.Event`);
- *duplicate*: same ``(source, id)`` and payload hash as the stored event;
- *conflict*: same ``(source, id)``, another payload: kept in ``conflicts`` with
  both hashes and the new payload; the first event stored wins, within a file too;
- *rejected*: kept in ``rejects`` with its raw row, file, line and one reason
  (:data:`REASONS`, checked in that order).

One file is one database transaction and one ``batches`` row: an import that
crashes or is killed leaves nothing of that file behind, and importing the same
file again accepts nothing. On SQLite rows are inserted with ``ON CONFLICT DO
NOTHING`` and classified afterwards from the stored hash and batch. On PostgreSQL
each chunk's keys are copied (``COPY``) into a staging table and claimed in
``event_keys`` in key order (so concurrent imports do not deadlock), and the rows
that took their key are copied into the month-partitioned ``events``
(:meth:`_Batch._copy`); a deadlock or serialization failure re-runs the file.
Either way four processes importing overlapping files store each event exactly once.

A big file (:data:`PARALLEL_MIN_BYTES`) is read and judged in a forked parser
process while this one inserts, so Python and the database work on two cores,
when a core is idle (:func:`_spare_core`; on a busy machine the second process
only adds CPU); the parser never writes to the store (see :func:`_add_from_parser`).

Importers (:mod:`ledger.importers.events`) only read; this module judges rows
against the rules. An importer declares the ``kind`` of record it yields and a file
goes to its kind to be stored: usage ``events`` are this module's own (:data:`EVENTS`);
every other kind (``payments`` and ``live_totals``, with their own tables, or a third
party's) is an :class:`ledger.hookspecs.ImporterKind` a plugin registers through the
hook ``meterbook_importer_kinds``, the first-party ones too.
"""

from __future__ import annotations

import gc
import inspect
import json
import marshal
import multiprocessing
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from hashlib import sha256 as _digest
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from sqlalchemy import Connection, Engine, func, select, tuple_, update

from ledger.errors import BadInput, PluginError
from ledger.events import TimeError, number_of, number_problem, parse_time, to_us
from ledger.hookspecs import ImporterKind, PluginImporter
from ledger.store import batches, conflicts, events, rejects

if TYPE_CHECKING:
    from ledger.importers.events import RawEvent, Source
    from ledger.rules import Rules
    from ledger.workspace import Workspace

#: Reject reasons, in the order rows are checked (one reason per row).
REASONS = (
    "bad_encoding",
    "too_long",
    "bad_json",
    "bad_csv",
    "missing_field",
    "bad_time",
    "unknown_type",
    "unknown_customer",
    "future_time",
    "bad_number",
    "negative_quantity",
)
#: How far in the future (after ``now``) an event time may be.
FUTURE_SLACK_US = 5 * 60 * 1_000_000
#: Rows per insert (and per progress step).
CHUNK = 10_000
#: Files at least this big are read and judged in a second process while this
#: one inserts (Linux only: the parser is forked, so it needs no pickling).
PARALLEL_MIN_BYTES = 4 << 20
#: Use the parser process even when no core is idle (tests, benchmarks).
PARALLEL_WHEN_BUSY = False
MAX_ID = 255
RETRY_FILE = "<retry-rejected>"
_NUMERIC = frozenset({"sum", "max", "latest"})
_RETRYABLE = frozenset({"40P01", "40001"})
_UNKNOWN = object()


@runtime_checkable
class Importer(Protocol):
    """What ingest needs of an importer (first-party: ``ledger.importers.events``)."""

    kind: str

    @property
    def name(self) -> str: ...

    def identify(self, filepath: str) -> bool: ...

    def check(self, source: Source) -> None: ...

    def rows(self, source: Source) -> Iterator[RawEvent]: ...


@dataclass(frozen=True)
class ImportReport:
    """The accounting of one file's rows.

    >>> r = ImportReport("u.csv", "events-csv", 3, 1, 1, 0, 1, {"unknown_customer": 1})
    >>> r.text()
    'u.csv: received 3, accepted 1, duplicates 1, conflicts 0, rejected 1 (unknown_customer 1)'
    >>> r.to_json()  # doctest: +NORMALIZE_WHITESPACE
    '{"file": "u.csv", "received": 3, "accepted": 1, "duplicates": 1, "conflicts": 0,
    "rejected": 1, "reasons": {"unknown_customer": 1}}'
    """

    file: str
    importer: str
    received: int
    accepted: int
    duplicates: int
    conflicts: int
    rejected: int
    reasons: Mapping[str, int] = field(default_factory=dict)
    batch_id: int | None = None
    sha256: str = ""
    #: This import's first rejected rows, ``(line, reason, detail)``, and first conflicting
    #: rows, ``(line, key)``, in file order (at most :data:`FIRST_SHOWN` + 1 of each): what
    #: ``ingest`` prints under the counts. The store keeps them all (``meterbook rejects``).
    first_rejects: tuple[tuple[int, str, str], ...] = ()
    first_conflicts: tuple[tuple[int, str], ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "file": self.file,
                "received": self.received,
                "accepted": self.accepted,
                "duplicates": self.duplicates,
                "conflicts": self.conflicts,
                "rejected": self.rejected,
                "reasons": dict(sorted(self.reasons.items())),
            }
        )

    def text(self) -> str:
        line = (
            f"{self.file}: received {self.received}, accepted {self.accepted}, "
            f"duplicates {self.duplicates}, "
            f"conflicts {self.conflicts}, rejected {self.rejected}"
        )
        if self.reasons:
            line += " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) + ")"
        return line


#: How many rejected and conflicting rows an :class:`ImportReport` names (one more than
#: ``ingest`` prints, so that it can say there are more).
FIRST_SHOWN = 3


def _first(found: list[Any], more: Any) -> None:
    """Append ``more`` to ``found`` while it holds fewer than ``FIRST_SHOWN + 1``."""
    if len(found) <= FIRST_SHOWN:
        found.append(more)


class Rejected(Exception):
    """A row's one reject reason (raised inside the row check, caught per row)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


# --- judging a row against the rules --------------------------------------------------


@dataclass(frozen=True)
class _ValueRule:
    meter: str
    prop: str
    numeric: bool
    filter: tuple[tuple[str, str], ...]


class Checks:
    """The rules a row must pass, compiled once per import.

    ``now`` decides ``future_time`` (an event more than 5 minutes after it).
    """

    def __init__(self, rules: Rules, now: datetime):
        self.customers = frozenset(rules.customers)
        types: dict[str, list[_ValueRule]] = {}
        for meter in rules.meters.values():
            rules_of_type = types.setdefault(meter.event_type, [])
            if meter.aggregation != "count" and meter.value:
                rules_of_type.append(
                    _ValueRule(
                        meter.id,
                        meter.value,
                        meter.aggregation in _NUMERIC,
                        tuple(sorted(meter.filter.items())),
                    )
                )
        self.types = {t: tuple(v) for t, v in types.items()}
        self.limit_us = to_us(now) + FUTURE_SLACK_US
        self._minutes: dict[str, int] = {}
        self._keys: dict[str, str] = {}
        self._numbers: dict[str, object] = {}

    def time_us(self, text: str) -> int:
        """:func:`ledger.events.to_us` of :func:`ledger.events.parse_time`, cached per minute
        for the common ``YYYY-MM-DDTHH:MM:SS`` + ``Z``/``±hh:mm`` form."""
        n = len(text)
        if (
            (n == 20 or n == 25)
            and text[16] == ":"
            and text[17:19].isascii()
            and text[17:19].isdigit()
        ):
            key = text[:16] + text[19:]
            base = self._minutes.get(key)
            if base is None:
                base = to_us(parse_time(text[:16] + ":00" + text[19:]))
                if len(self._minutes) > 100_000:
                    self._minutes.clear()
                self._minutes[key] = base
            seconds = int(text[17:19])
            if seconds < 60:
                return base + seconds * 1_000_000
        return to_us(parse_time(text))

    def row(self, ev: RawEvent, batch_id: int) -> tuple[Any, ...]:
        """The ``events`` row of a readable event, or :class:`Rejected`.

        The strings are built by hand and are identical to
        :attr:`ledger.events.Event.properties_json`, ``numbers_json`` and
        ``payload_hash`` (tested), without a ``json.dumps`` per row.
        """
        _, _, id_, source, customer, type_, when, props, _, _ = ev
        if not (id_ and customer and type_ and when):
            name = (
                "id" if not id_ else "customer" if not customer else "type" if not type_ else "time"
            )
            raise Rejected("missing_field", f"{name} is missing")
        if len(id_) > MAX_ID:
            raise Rejected("too_long", f"id is {len(id_)} characters (at most {MAX_ID})")
        if len(source) > MAX_ID:
            raise Rejected("too_long", f"source is {len(source)} characters (at most {MAX_ID})")
        # the per-minute cache of time_us, inlined for the common form (same result)
        if (
            len(when) == 20
            and when[16] == ":"
            and (base := self._minutes.get(when[:16] + when[19:])) is not None
            and (seconds := when[17:19]).isascii()
            and seconds.isdigit()
            and int(seconds) < 60
        ):
            time_us = base + int(seconds) * 1_000_000
        else:
            try:
                time_us = self.time_us(when)
            except (TimeError, ValueError, OverflowError) as exc:
                raise Rejected("bad_time", str(exc)) from None
        value_rules = self.types.get(type_)
        if value_rules is None:
            raise Rejected("unknown_type", f"no meter selects event type {type_!r}")
        if customer not in self.customers:
            raise Rejected("unknown_customer", f"customer {customer!r} is not in the rules")
        if time_us > self.limit_us:
            raise Rejected("future_time", f"time {when} is more than 5 minutes in the future")
        parts = []
        nums = []
        numbers: dict[str, tuple[int, int] | None] = {}
        keys = self._keys
        cache = self._numbers
        for name, text in props.items():
            k = keys.get(name)
            if k is None:
                k = keys[name] = encode_basestring(name)
            parts.append(k + ":" + encode_basestring(text))
            pair = cache.get(text, _UNKNOWN)
            if pair is _UNKNOWN:
                pair = number_of(text)
                if len(cache) > 100_000:
                    cache.clear()
                cache[text] = pair
            numbers[name] = pair  # type: ignore[assignment]
            if pair is not None:
                nums.append(f"{k}:[{pair[0]},{pair[1]}]")  # type: ignore[index]
        for rule in value_rules:
            if rule.filter and any(props.get(fk) != fv for fk, fv in rule.filter):
                continue
            if rule.prop not in props:
                raise Rejected(
                    "missing_field", f"property {rule.prop!r} is missing (meter {rule.meter})"
                )
            if rule.numeric:
                pair = numbers[rule.prop]
                if pair is None:
                    raise Rejected(
                        "bad_number",
                        f"{rule.prop}: {number_problem(props[rule.prop])} (meter {rule.meter})",
                    )
                if pair[0] < 0:
                    raise Rejected(
                        "negative_quantity",
                        f"{rule.prop}={props[rule.prop]!r} is negative (meter {rule.meter})",
                    )
        props_json = "{" + ",".join(parts) + "}"
        payload = (
            '{"customer":'
            + (keys.get(customer) or _encode(keys, customer))
            + ',"id":'
            + encode_basestring(id_)
            + ',"properties":'
            + props_json
            + ',"source":'
            + (keys.get(source) or _encode(keys, source))
            + ',"time_us":'
            + str(time_us)
            + ',"type":'
            + (keys.get(type_) or _encode(keys, type_))
            + "}"
        )
        return (
            source,
            id_,
            customer,
            type_,
            time_us,
            props_json,
            "{" + ",".join(nums) + "}",
            _digest(payload.encode()).hexdigest(),
            batch_id,
        )


def _encode(cache: dict[str, str], text: str) -> str:
    """``encode_basestring(text)``, remembered (names, customers, types and sources repeat)."""
    if len(cache) > 100_000:
        cache.clear()
    encoded = cache[text] = encode_basestring(text)
    return encoded


def _payload(source: str, id: str, customer: str, type: str, time_us: int, props_json: str) -> str:
    """:meth:`ledger.events.Event.canonical_payload`, built from its parts."""
    return (
        '{"customer":'
        + encode_basestring(customer)
        + ',"id":'
        + encode_basestring(id)
        + ',"properties":'
        + props_json
        + ',"source":'
        + encode_basestring(source)
        + ',"time_us":'
        + str(time_us)
        + ',"type":'
        + encode_basestring(type)
        + "}"
    )


# --- one file's batch --------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """A chunk of rows judged against the rules, ready to store.

    ``rows`` are the ``events`` rows in the order they are inserted, ``lines``
    their file lines and ``where`` their positions in the chunk; ``outcomes``
    has one entry per chunk position (the reject reason, ``""`` for a row);
    ``rejects`` are the ``rejects`` table rows. Only plain values, so the parser
    process sends a chunk with :mod:`marshal` (:meth:`dump`, :meth:`load`).

    >>> j = Judged(2, [("app", "e-1")], [2], [0], ["", "bad_time"], [], {"bad_time": 1})
    >>> Judged.load(j.dump()) == j
    True
    """

    received: int
    rows: list[tuple[Any, ...]]
    lines: list[int]
    where: list[int]
    outcomes: list[str]
    rejects: list[dict[str, Any]]
    reasons: dict[str, int]

    def dump(self) -> bytes:
        return marshal.dumps(
            (
                self.received,
                self.rows,
                self.lines,
                self.where,
                self.outcomes,
                self.rejects,
                self.reasons,
            )
        )

    @classmethod
    def load(cls, data: bytes) -> Judged:
        return cls(*marshal.loads(data))


class _Judge:
    """Judges chunks of one batch's rows against the rules (:meth:`Checks.row`).

    With ``by_key`` the rows are put in key order (stable, so the first row of a
    key in the file is inserted first and wins): concurrent imports then lock
    keys in the same order and do not deadlock. With ``typed`` (PostgreSQL, which
    claims keys in key order in SQL instead) each row carries the typed quantity.
    """

    def __init__(
        self,
        checks: Checks,
        batch_id: int,
        *,
        file: str,
        importer: str,
        keep_rejects: bool,
        by_key: bool,
        typed: bool = False,
    ):
        self.checks = checks
        self.batch_id = batch_id
        self.file = file
        self.importer = importer
        self.keep_rejects = keep_rejects
        self.by_key = by_key
        # PostgreSQL rows carry the typed quantity (events.q_*): per event type, the
        # numeric property its meters read, an unfiltered meter's first (by name)
        self.typed: dict[str, str] | None = None
        if typed:
            self.typed = {
                t: min((bool(r.filter), r.prop) for r in rules if r.numeric)[1]
                for t, rules in checks.types.items()
                if any(r.numeric for r in rules)
            }
        self._pairs: dict[str, tuple[int, int] | None] = {}

    def __call__(self, chunk: Sequence[RawEvent]) -> Judged:
        from ledger.importers.events import raw_text

        outcomes = [""] * len(chunk)
        good: list[tuple[Any, ...]] = []
        lines: list[int] = []
        where: list[int] = []
        bad: list[dict[str, Any]] = []
        reasons: Counter[str] = Counter()
        row_of = self.checks.row
        batch_id = self.batch_id
        for i, ev in enumerate(chunk):
            if ev.reason:
                reason, detail = ev.reason, ev.detail
            else:
                try:
                    good.append(row_of(ev, batch_id))
                    lines.append(ev.line)
                    where.append(i)
                    continue
                except Rejected as exc:
                    reason, detail = exc.reason, exc.detail
            outcomes[i] = reason
            reasons[reason] += 1
            if self.keep_rejects:
                bad.append(
                    {
                        "batch_id": batch_id,
                        "file": self.file,
                        "line": ev.line,
                        "reason": reason,
                        "detail": detail,
                        "raw": raw_text(ev.raw),
                        "importer": self.importer,
                        "record": None
                        if ev.reason
                        else json.dumps(ev.record(), ensure_ascii=False),
                    }
                )
        if self.typed is not None:
            good = [
                self._typed(row, chunk[i].properties) for row, i in zip(good, where, strict=True)
            ]
        if self.by_key and len(good) > 1:
            order = sorted(
                range(len(good)), key=lambda k: (good[k][0], good[k][1])
            )  # stable: file order wins
            good = [good[k] for k in order]
            lines = [lines[k] for k in order]
            where = [where[k] for k in order]
        return Judged(len(chunk), good, lines, where, outcomes, bad, dict(reasons))

    def _typed(self, row: tuple[Any, ...], properties: Mapping[str, str]) -> tuple[Any, ...]:
        """``row`` + ``(q_name, q_units, q_nanos)``: the quantity metering reads, typed."""
        assert self.typed is not None
        name = self.typed.get(row[3])
        text = properties.get(name) if name is not None else None
        if text is None:
            return (*row, None, None, None)
        pairs = self._pairs
        pair = pairs.get(text, _UNKNOWN)
        if pair is _UNKNOWN:
            pair = number_of(text)
            if len(pairs) > 100_000:
                pairs.clear()
            pairs[text] = pair  # type: ignore[assignment]
        if pair is None or not -(1 << 63) <= pair[0] < (1 << 63):  # type: ignore[index]
            return (*row, None, None, None)
        return (*row, name, pair[0], pair[1])  # type: ignore[index]


class _Batch:
    """One import batch inside one transaction: rows in, counts out."""

    def __init__(
        self,
        conn: Connection,
        checks: Checks,
        *,
        file: str,
        importer: str,
        keep_rejects: bool = True,
    ):
        self.conn = conn
        self.importer = importer
        self.sqlite = conn.dialect.name == "sqlite"
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.first_rejects: list[tuple[int, str, str]] = []
        self.first_conflicts: list[tuple[int, str]] = []
        self.id = _start_batch(conn, file, importer)
        self.judge = _Judge(
            checks,
            self.id,
            file=file,
            importer=importer,
            keep_rejects=keep_rejects,
            by_key=False,
            typed=not self.sqlite,
        )
        self.floor = 0
        if self.sqlite:
            top = conn.execute(select(func.coalesce(func.max(events.c.pk), 0))).scalar_one()
            self.floor = int(top)
        self.staging = False
        self.months: set[tuple[int, int]] = set()  # partitions known to exist (PostgreSQL)
        ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conflict = " ON CONFLICT (source, event_id) DO NOTHING"
        self.insert_sql = (
            "INSERT INTO events (source, event_id, customer, type, time_us, properties, numbers, "
            f"payload_hash, batch_id) VALUES ({', '.join([ph] * 9)}){conflict}"
        )

    @property
    def file(self) -> str:
        """The file the rows come from (recorded with rejects and conflicts)."""
        return self.judge.file

    @file.setter
    def file(self, value: str) -> None:
        self.judge.file = value

    def add(self, chunk: Sequence[RawEvent] | Judged) -> list[str]:
        """Judge (unless the parser process did) and store a chunk of rows; return
        each row's outcome (``accepted``, ``duplicate``, ``conflict`` or the reject reason)."""
        judged = chunk if isinstance(chunk, Judged) else self.judge(chunk)
        outcomes = judged.outcomes
        self.counts["received"] += judged.received
        self.counts["rejected"] += judged.received - len(judged.rows)
        self.reasons.update(judged.reasons)
        for row in judged.rejects:
            _first(self.first_rejects, (row["line"], row["reason"], row["detail"]))
        fresh = _not_yet_rejected(self.conn, judged.rejects)
        if fresh:
            self.conn.execute(rejects.insert(), fresh)
        if judged.rows:
            self._store(judged, outcomes)
        return outcomes

    def _store(self, judged: Judged, outcomes: list[str]) -> None:
        rows = judged.rows
        if not self.sqlite:
            self._copy(judged, outcomes)
            return
        cursor = self.conn.connection.cursor()
        try:
            if self.sqlite:
                floor = self.conn.exec_driver_sql(
                    "SELECT coalesce(max(pk), 0) FROM events"
                ).scalar_one()
                cursor.executemany(self.insert_sql, rows)
                if cursor.rowcount == len(rows):  # fast path: every key was new
                    self.counts["accepted"] += len(rows)
                    for i in judged.where:
                        outcomes[i] = "accepted"
                    return
            else:
                floor = self.floor
                cursor.executemany(self.insert_sql, rows)  # in key order (see _Judge)
        finally:
            cursor.close()
        self._classify(judged, outcomes, floor)

    def _copy(self, judged: Judged, outcomes: list[str]) -> None:
        """PostgreSQL: ``COPY`` the chunk's keys into a temporary staging table, claim them
        set-based, ``COPY`` the rows that took their key into ``events``.

        The chunk's rows come in file order; the first row of each key is the one
        that may be accepted. Those rows' keys are staged; one
        statement claims them in ``event_keys`` (in key order, ``ON CONFLICT DO
        NOTHING``) and returns the keys it took: *accepted*, and their rows are copied
        into ``events`` (each to its month's partition). Only when some row did not
        take its key (a repeat in the file, a stored key) is the stored hash of those
        keys read, by primary key
        (never a scan of a source's history): *duplicate* when equal, else *conflict*.
        Concurrent imports of overlapping files store each event once: ``ON CONFLICT``
        waits for the other transaction's key, and the read that follows sees it.
        """
        from ledger.store import _DAY_US, ensure_partitions, months_of_days

        conn = self.conn
        rows = judged.rows
        if not self.staging:
            conn.exec_driver_sql(
                'CREATE TEMPORARY TABLE meterbook_staging (source TEXT COLLATE "C", '
                'event_id TEXT COLLATE "C", payload_hash TEXT, batch_id INTEGER, time_us BIGINT) '
                "ON COMMIT DROP"
            )
            self.staging = True
        else:
            conn.exec_driver_sql("TRUNCATE meterbook_staging")
        times = [r[4] for r in rows]
        months = months_of_days({min(times) // _DAY_US, max(times) // _DAY_US})
        if len(months) > 1:
            months = months_of_days({t // _DAY_US for t in times})
        if not self.months.issuperset(months):
            ensure_partitions(conn, months)
            self.months.update(months)
        firsts: list[int] = []  # positions in rows of each key's first row (rows are in file order)
        seen: set[tuple[str, str]] = set()
        cursor = conn.connection.cursor()
        try:
            staging = "COPY meterbook_staging FROM STDIN"
            with cursor.copy(staging) as copy:  # type: ignore[attr-defined]
                write = copy.write_row
                for k, row in enumerate(rows):
                    key = (row[0], row[1])
                    if key not in seen:
                        seen.add(key)
                        write((row[0], row[1], row[7], row[8], row[4]))
                        firsts.append(k)
            claimed = set(conn.exec_driver_sql(_CLAIM_KEYS).all())
            taken = [k for k in firsts if (rows[k][0], rows[k][1]) in claimed]
            if taken:
                with cursor.copy(_COPY_EVENTS) as copy:  # type: ignore[attr-defined]
                    write = copy.write_row
                    for k in taken:
                        write(rows[k])
        finally:
            cursor.close()
        where = judged.where
        for k in taken:
            outcomes[where[k]] = "accepted"
        self.counts["accepted"] += len(taken)
        if len(taken) == len(rows):
            return
        taken_set = set(taken)
        rest = [k for k in range(len(rows)) if k not in taken_set]
        stored: dict[tuple[str, str], str] = {
            (source, event_id): digest
            for source, event_id, digest in conn.exec_driver_sql(
                _STORED_HASHES,
                {"sources": [rows[k][0] for k in rest], "ids": [rows[k][1] for k in rest]},
            )
        }
        found: list[dict[str, Any]] = []
        for k in rest:
            row, line, i = rows[k], judged.lines[k], where[k]
            digest = stored.get((row[0], row[1]))
            if digest is None:
                raise _Retry(f"event {(row[0], row[1])} vanished while importing")
            if digest == row[7]:
                outcomes[i] = "duplicate"
                self.counts["duplicates"] += 1
            else:
                outcomes[i] = "conflict"
                self.counts["conflicts"] += 1
                found.append(
                    {
                        "source": row[0],
                        "event_id": row[1],
                        "stored_hash": digest,
                        "payload_hash": row[7],
                        "payload": _payload(row[0], row[1], row[2], row[3], row[4], row[5]),
                        "batch_id": self.id,
                        "file": self.file,
                        "line": line,
                    }
                )
        if found:
            found.sort(key=lambda c: c["line"])  # quarantined in file order
            conn.execute(conflicts.insert(), found)
            self._note_conflicts(found)

    def _classify(self, judged: Judged, outcomes: list[str], floor: int) -> None:
        rows = judged.rows
        keys = list(dict.fromkeys((r[0], r[1]) for r in rows))
        stored: dict[tuple[str, str], tuple[str, int, int]] = {}
        key_cols = tuple_(events.c.source, events.c.event_id)
        for start in range(0, len(keys), 500):
            query = select(
                events.c.source,
                events.c.event_id,
                events.c.payload_hash,
                events.c.batch_id,
                events.c.pk,
            ).where(key_cols.in_(keys[start : start + 500]))
            for source, event_id, digest, batch_id, pk in self.conn.execute(query):
                stored[(source, event_id)] = (digest, batch_id, pk)
        claimed: set[tuple[str, str]] = set()
        found: list[dict[str, Any]] = []
        for row, line, i in zip(rows, judged.lines, judged.where, strict=True):
            key = (row[0], row[1])
            if key not in stored:
                raise _Retry(f"event {key} vanished while importing")
            digest, batch_id, pk = stored[key]
            if batch_id == self.id and pk > floor and key not in claimed:
                claimed.add(key)
                self.floor = max(self.floor, pk)
                outcome = "accepted"
            elif digest == row[7]:
                outcome = "duplicate"
            else:
                outcome = "conflict"
                found.append(
                    {
                        "source": row[0],
                        "event_id": row[1],
                        "stored_hash": digest,
                        "payload_hash": row[7],
                        "payload": _payload(row[0], row[1], row[2], row[3], row[4], row[5]),
                        "batch_id": self.id,
                        "file": self.file,
                        "line": line,
                    }
                )
            outcomes[i] = outcome
        counts = Counter(outcomes[i] for i in judged.where)
        self.counts["accepted"] += counts["accepted"]
        self.counts["duplicates"] += counts["duplicate"]
        self.counts["conflicts"] += counts["conflict"]
        if found:
            found.sort(
                key=lambda c: c["line"]
            )  # quarantined in file order whatever the insert order
            self.conn.execute(conflicts.insert(), found)
            self._note_conflicts(found)

    def _note_conflicts(self, found: list[dict[str, Any]]) -> None:
        for row in found:
            _first(self.first_conflicts, (row["line"], f"{row['source']}/{row['event_id']}"))

    def finish(self, sha256: str) -> ImportReport:
        report = _finish_batch(
            self.conn, self.id, self.file, self.importer, self.counts, self.reasons, sha256
        )
        return replace(
            report,
            first_rejects=tuple(sorted(self.first_rejects)[: FIRST_SHOWN + 1]),
            first_conflicts=tuple(sorted(self.first_conflicts)[: FIRST_SHOWN + 1]),
        )


def _start_batch(conn: Connection, file: str, importer: str) -> int:
    key = conn.execute(
        batches.insert().values(
            file=file, sha256="", importer=importer, started_at=_stamp(), reasons="{}"
        )
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def _finish_batch(
    conn: Connection,
    batch_id: int,
    file: str,
    importer: str,
    counts: Mapping[str, int],
    reasons: Mapping[str, int],
    sha256: str,
) -> ImportReport:
    """Record a file's accounting on its batch row and return it."""
    c = {
        k: counts.get(k, 0) for k in ("received", "accepted", "duplicates", "conflicts", "rejected")
    }
    ordered = dict(sorted(reasons.items()))
    conn.execute(
        update(batches)
        .where(batches.c.id == batch_id)
        .values(sha256=sha256, finished_at=_stamp(), reasons=json.dumps(ordered), **c)
    )
    return ImportReport(
        file,
        importer,
        c["received"],
        c["accepted"],
        c["duplicates"],
        c["conflicts"],
        c["rejected"],
        ordered,
        batch_id,
        sha256,
    )


#: The set-based half of a PostgreSQL chunk (see :meth:`_Batch._copy`): the staged rows
#: (one per key) claim their keys in key order; the keys taken come back.
_CLAIM_KEYS = """
INSERT INTO event_keys (source, event_id, payload_hash, batch_id, time_us)
SELECT source, event_id, payload_hash, batch_id, time_us FROM meterbook_staging
ORDER BY source, event_id
ON CONFLICT DO NOTHING
RETURNING source, event_id
"""
#: The stored hashes of keys a chunk's rows did not take: one primary-key probe per key.
_STORED_HASHES = """
SELECT k.source, k.event_id, k.payload_hash
FROM unnest(%(sources)s::text[], %(ids)s::text[]) AS u(source, event_id)
JOIN event_keys AS k ON k.source = u.source COLLATE "C" AND k.event_id = u.event_id COLLATE "C"
"""
#: ... and the rows that took their key are copied into ``events`` (rows as :meth:`Checks.row`
#: makes them, with the typed quantity :meth:`_Judge._typed` adds).
_COPY_EVENTS = (
    "COPY events (source, event_id, customer, type, time_us, properties, numbers, "
    "payload_hash, batch_id, q_name, q_units, q_nanos) FROM STDIN"
)


class _Retry(Exception):
    """The transaction must be run again (deadlock, serialization failure)."""


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _chunks(rows: Iterable[RawEvent], size: int) -> Iterator[list[RawEvent]]:
    chunk: list[RawEvent] = []
    append = chunk.append
    for row in rows:
        append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
            append = chunk.append
    if chunk:
        yield chunk


@contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while a file is imported.

    A chunk is tens of thousands of new lists, dicts and tuples, and every few
    thousand allocations Python scans them, and now and then the whole heap:
    a third of the CPU time of an import. Ingest makes no reference cycles, so
    nothing is lost; collection resumes (if it was on) when the file is done.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) in _RETRYABLE:
        return True
    return "database is locked" in str(orig)


def _transaction(
    engine: Engine, work: Callable[[Connection], ImportReport], attempts: int = 20
) -> ImportReport:
    """Run ``work`` in one transaction, again from the start on deadlock."""
    for attempt in range(attempts):
        with engine.connect() as conn:
            try:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock before reading
                report = work(conn)
                conn.commit()
                return report
            except Exception as exc:
                conn.rollback()
                if attempt + 1 < attempts and (isinstance(exc, _Retry) or _retryable(exc)):
                    time.sleep(random.uniform(0.01, 0.05 * (attempt + 1)))
                    continue
                raise
    raise AssertionError("unreachable")


def _not_yet_rejected(conn: Connection, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rejects of ``found`` the store does not already hold unresolved: the same file name,
    line and raw row. Importing a file again counts its rejected rows again in the new batch's
    report (received = accepted + … + rejected) but stores each only once, so ``meterbook
    rejects`` lists it once and ``ingest --retry-rejected`` runs it once.

    A row rejected at line 7 of ``usage.csv`` (``raw`` ``"e1,Alpha,…"``) and the same file
    imported again: the second import stores nothing new for line 7; an edited line 7 is a new
    reject; a reject resolved by ``--retry-rejected`` and rejected again is stored again.
    """
    if not found:
        return found
    lines = [row["line"] for row in found]
    held: set[tuple[str, int, str]] = set()
    for file in {row["file"] for row in found}:
        held.update(
            (name, line, raw)
            for name, line, raw in conn.execute(
                select(rejects.c.file, rejects.c.line, rejects.c.raw).where(
                    rejects.c.file == file,
                    rejects.c.resolved_batch_id.is_(None),
                    rejects.c.line.between(min(lines), max(lines)),
                )
            )
        )
    fresh = []
    for row in found:
        key = (row["file"], row["line"], row["raw"])
        if key not in held:
            held.add(key)  # one file's chunk never repeats a line, but be exact anyway
            fresh.append(row)
    return fresh


# --- files of other records (payments, live meter totals) ----------------------------------


#: Stores one readable record of a file: returns ``accepted``, ``duplicates`` or
#: ``conflicts``, or raises :class:`Rejected`. Arguments: connection, row, batch id.
StoreRecord = Callable[[Connection, Any, int], str]


def ingest_records(
    engine: Engine,
    path: Path,
    importer: Importer,
    store: StoreRecord,
    *,
    name: str,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one file of records other than usage events in one transaction, run
    again from the start on deadlock, with the same accounting as events: a batch
    row, then per row the outcome ``store`` gives, or a reject (kept with its raw
    row) when the importer could not read it or ``store`` raises :class:`Rejected`.
    Always ``received = accepted + duplicates + conflicts + rejected``. This is
    how the payments and live-totals kinds (:class:`ImporterKind`) store their files.
    """
    from ledger.importers.events import HeaderError, Source, raw_text

    def work(conn: Connection) -> ImportReport:
        batch_id = _start_batch(conn, name, importer.name)
        counts: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        first_rejects: list[tuple[int, str, str]] = []
        first_conflicts: list[tuple[int, str]] = []
        try:
            with open(path, "rb") as file:
                source = Source(file, progress=progress)
                for raw in importer.rows(source):
                    counts["received"] += 1
                    try:
                        if raw.reason:
                            raise Rejected(raw.reason, raw.detail)
                        outcome = store(conn, raw, batch_id)
                        counts[outcome] += 1
                        if outcome == "conflicts":
                            _first(first_conflicts, (raw.line, _record_key(raw)))
                    except Rejected as exc:
                        _first(first_rejects, (raw.line, exc.reason, exc.detail))
                        # record None: nothing to retry against new rules (fix the file)
                        fresh = _not_yet_rejected(
                            conn,
                            [
                                dict(
                                    batch_id=batch_id,
                                    file=name,
                                    line=raw.line,
                                    reason=exc.reason,
                                    detail=exc.detail,
                                    raw=raw_text(raw.raw),
                                    importer=importer.name,
                                    record=None,
                                )
                            ],
                        )
                        if fresh:  # an empty list would insert one row of defaults
                            conn.execute(rejects.insert(), fresh)
                        counts["rejected"] += 1
                        reasons[exc.reason] += 1
        except HeaderError as exc:
            raise BadInput(f"{name}: {exc}") from None
        except OSError as exc:
            raise BadInput(f"{name}: cannot read: {exc.strerror or exc}") from None
        report = _finish_batch(
            conn, batch_id, name, importer.name, counts, reasons, source.sha.hexdigest()
        )
        return replace(
            report, first_rejects=tuple(first_rejects), first_conflicts=tuple(first_conflicts)
        )

    return _transaction(engine, work)


def _record_key(raw: Any) -> str:
    """The key of a payments row (its ``reference``) or a live-totals row
    (``source/date/customer/meter``), as ``ingest`` names a conflict."""
    if hasattr(raw, "reference"):
        return str(raw.reference)
    return "/".join(str(getattr(raw, k, "")) for k in ("source", "date", "customer", "meter"))


# --- files ---------------------------------------------------------------------------------


def default_importers() -> list[Importer]:
    """The first-party importers (until the plugin registry provides them)."""
    from ledger.importers import events as first_party

    return list(first_party.importers())


def select_importer(
    path: Path, importers: Sequence[PluginImporter], name: str | None = None
) -> Importer:
    """The importer named ``name``, or the first whose ``identify`` accepts the file (by its
    content), or the generic importer of its extension (which refuses a bad header clearly)."""
    known = ", ".join(i.name for i in importers)
    if name:
        for importer in importers:
            if importer.name == name:
                return ingest_importer(importer)
        raise BadInput(f"--importer: unknown importer {name!r} (known: {known})")
    for importer in importers:
        try:
            recognised = importer.identify(str(path))
        except (
            Exception
        ) as exc:  # a plugin bug: name the importer, as closing.run_reconcilers names a reconciler
            detail = " ".join(str(exc).split())
            raise PluginError(
                f"importer {getattr(importer, 'name', type(importer).__name__)!r} "
                f"({type(importer).__module__}) failed to identify {path}: "
                f"{type(exc).__name__}: {detail}"
            ) from None
        if recognised:
            return ingest_importer(importer)
    for (
        importer
    ) in importers:  # a .csv/.jsonl nobody recognises: its generic importer tells what is wrong
        if getattr(importer, "generic", False) and path.suffix.lower() in getattr(
            importer, "extensions", ()
        ):
            return ingest_importer(importer)
    raise BadInput(
        f"{path}: no importer recognises this file; pass --importer NAME (known: {known})"
    )


def _kind_of(
    path: Path, importer: Importer, kinds: Mapping[str, ImporterKind] | None
) -> ImporterKind:
    """The kind ``importer`` yields: usage events, or one of ``kinds`` (the registry's,
    :attr:`ledger.registry.Registry.importer_kinds`; None: usage events alone)."""
    found = EVENTS if importer.kind == EVENTS.name else (kinds or {}).get(importer.kind)
    if found is None:
        raise BadInput(
            f"{path}: importer {importer.name} yields {importer.kind!r} records, which this "
            "meterbook cannot store"
        )
    return found


def check_file(
    path: Path, importer: Importer, kinds: Mapping[str, ImporterKind] | None = None
) -> None:
    """Refuse a file that cannot be imported at all (no kind stores its records, unreadable,
    bad header), before anything is written."""
    from ledger.importers.events import HeaderError, Source

    _kind_of(path, importer, kinds)
    try:
        with open(path, "rb") as file:
            importer.check(Source(file))
    except HeaderError as exc:
        raise BadInput(f"{path}: {exc}") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None


def ingest_file(
    engine: Engine,
    rules: Rules,
    path: Path,
    importer: Importer,
    *,
    now: datetime | None = None,
    chunk_size: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    name: str | None = None,
    kinds: Mapping[str, ImporterKind] | None = None,
    first_open: date = date.min,
    today: date | None = None,
) -> ImportReport:
    """Import one file in one transaction and return its accounting; the importer's kind
    (usage events, or one of the registry's ``kinds``) stores it. A kind's ``store`` that
    returns anything but an :class:`ImportReport` is a :class:`PluginError`."""
    kind = _kind_of(path, importer, kinds)
    # the engine's date rules for a kind that keeps them (payments' top-up rows: ledger.topups)
    dated = {"first_open": first_open, "today": today} if today is not None else {}
    if dated and not {"first_open", "today"} <= set(inspect.signature(kind.store).parameters):
        dated = {}
    report = kind.store(
        engine,
        rules,
        path,
        importer,
        now=now or datetime.now(UTC),
        chunk_size=chunk_size,
        progress=progress,
        name=name or str(path),
        **dated,
    )
    if not isinstance(report, ImportReport):
        raise PluginError(
            f"importer kind {kind.name!r} stored {path} but returned {type(report).__name__}, "
            "not an ImportReport"
        )
    return report


def _ingest_events(
    engine: Engine,
    rules: Rules,
    path: Path,
    importer: Importer,
    *,
    now: datetime,
    chunk_size: int,
    progress: Callable[[int], None] | None,
    name: str,
) -> ImportReport:
    from ledger.importers.events import HeaderError, Source

    checks = Checks(rules, now)
    parallel = _parallel(path)

    def work(conn: Connection) -> ImportReport:
        batch = _Batch(conn, checks, file=name, importer=importer.name)
        try:
            if parallel:
                sha = _add_from_parser(batch, path, importer, chunk_size, progress)
            else:
                with open(path, "rb") as file:
                    source = Source(file, progress=progress)
                    for chunk in _chunks(importer.rows(source), chunk_size):
                        batch.add(chunk)
                sha = source.sha.hexdigest()
        except HeaderError as exc:
            raise BadInput(f"{name}: {exc}") from None
        except OSError as exc:
            raise BadInput(f"{name}: cannot read: {exc.strerror or exc}") from None
        return batch.finish(sha)

    with _no_gc():
        return _transaction(engine, work)


# --- parsing in a second process -------------------------------------------------------------


def _parallel(path: Path) -> bool:
    """Whether to read ``path`` in a parser process: big files, where fork is cheap and safe,
    while a core is idle."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        big = path.stat().st_size >= PARALLEL_MIN_BYTES
    except OSError:
        return False
    return big and (PARALLEL_WHEN_BUSY or _spare_core())


def _spare_core() -> bool:
    """Whether a core is idle: at least two cores and a load average (1 minute) below their
    number less one. Measured on a 2-core machine (``python -m ledger.bench ingest --both``):
    with a core idle the parser process makes an import 1.6x faster; with both busy it is
    slower than one process and costs 2 to 4 more CPU seconds per million rows (pipe, marshal)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
        return cores >= 2 and os.getloadavg()[0] < cores - 1
    except (AttributeError, OSError):
        return False


def _add_from_parser(
    batch: _Batch,
    path: Path,
    importer: Importer,
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> str:
    """Store the chunks a forked parser process reads and judges; return the file's sha256.

    Reading, checking and hashing rows (Python) overlaps with inserting them
    (SQLite or PostgreSQL) on a second core. The parser only reads the file and
    writes to a pipe: everything stored still goes through this process's one
    transaction, so a crash or kill of either process leaves nothing behind. A
    parser error comes back as the same exception (a bad header, an unreadable file).
    """
    from ledger.importers.events import HeaderError

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    parser = context.Process(
        target=_parse,
        args=(receiver, sender, path, importer, batch.judge, chunk_size),
        name="meterbook-ingest-parser",
        daemon=True,
    )
    parser.start()
    sender.close()
    try:
        while True:
            try:
                message = receiver.recv_bytes()
            except EOFError:
                raise RuntimeError(
                    f"{path}: the ingest parser process stopped (exit code "
                    f"{parser.exitcode}) before the end of the file"
                ) from None
            tag = message[:1]
            if tag == b"c":
                done = int.from_bytes(message[1:9], "little")
                batch.add(Judged.load(message[9:]))
                if progress is not None and done:
                    progress(done)
            elif tag == b"d":
                return message[1:].decode()
            else:
                kind, detail = marshal.loads(message[1:])
                if kind == "header":
                    raise HeaderError(detail)
                if kind == "os":
                    raise OSError(0, detail)
                raise RuntimeError(f"{path}: the ingest parser process failed:\n{detail}")
    finally:
        receiver.close()
        parser.join(5)
        if parser.is_alive():
            parser.kill()
            parser.join()


def _parse(
    receiver: Any, sender: Any, path: Path, importer: Importer, judge: _Judge, chunk_size: int
) -> None:
    """The parser process: read, judge and send chunks (``c`` + bytes read + :class:`Judged`),
    then ``d`` + the file's sha256, or ``e`` + what went wrong."""
    from ledger.importers.events import HeaderError, Source

    receiver.close()
    # as in _no_gc: short-lived, no reference cycles; and the inherited heap is never scanned
    gc.disable()
    try:
        try:
            with open(path, "rb") as file:
                source = Source(file)
                sent = 0
                for chunk in _chunks(importer.rows(source), chunk_size):
                    judged = judge(chunk)
                    done, sent = source.bytes_read - sent, source.bytes_read
                    sender.send_bytes(b"c" + done.to_bytes(8, "little") + judged.dump())
            sender.send_bytes(b"d" + source.sha.hexdigest().encode())
        except HeaderError as exc:
            sender.send_bytes(b"e" + marshal.dumps(("header", str(exc))))
        except (BrokenPipeError, ConnectionResetError):
            return  # the importing process is gone; its transaction died with it
        except OSError as exc:
            sender.send_bytes(b"e" + marshal.dumps(("os", exc.strerror or str(exc))))
        except BaseException:
            sender.send_bytes(b"e" + marshal.dumps(("error", traceback.format_exc())))
    except OSError:
        return
    finally:
        sender.close()


#: Usage events: meterbook's own kind, stored in ``events`` (the first-party importers of
#: :mod:`ledger.importers.events` yield it); no plugin may register another ``events``.
EVENTS = ImporterKind("events", _ingest_events)


def retry_rejected(
    engine: Engine, rules: Rules, *, now: datetime | None = None, chunk_size: int = CHUNK
) -> ImportReport:
    """Run every unresolved reject that was readable again against the current rules.

    Rows that now get another outcome (accepted, duplicate, conflict) are marked
    resolved by this batch (``rejects.resolved_batch_id``); rows still rejected
    stay as they are and are counted under their current reason.
    """
    from ledger.importers.events import RawEvent

    checks = Checks(rules, now or datetime.now(UTC))

    def work(conn: Connection) -> ImportReport:
        batch = _Batch(conn, checks, file=RETRY_FILE, importer="retry-rejected", keep_rejects=False)
        last = 0
        while True:
            found = conn.execute(
                select(
                    rejects.c.id, rejects.c.file, rejects.c.line, rejects.c.raw, rejects.c.record
                )
                .where(
                    rejects.c.resolved_batch_id.is_(None),
                    rejects.c.record.is_not(None),
                    rejects.c.id > last,
                    rejects.c.batch_id != batch.id,
                )
                .order_by(rejects.c.id)
                .limit(chunk_size)
            ).all()
            if not found:
                break
            last = found[-1].id
            by_file: dict[str, list[tuple[int, RawEvent]]] = {}
            for reject_id, file, line, raw, record in found:
                data = json.loads(record)
                ev = RawEvent(
                    line,
                    raw,
                    data["id"],
                    data["source"],
                    data["customer"],
                    data["type"],
                    data["time"],
                    dict(sorted(data["properties"].items())),
                )
                by_file.setdefault(file, []).append((reject_id, ev))
            resolved: list[int] = []
            for file, items in by_file.items():
                batch.file = file
                outcomes = batch.add([ev for _, ev in items])
                resolved += [
                    rid
                    for (rid, _), o in zip(items, outcomes, strict=True)
                    if o in ("accepted", "duplicate", "conflict")
                ]
            for start in range(0, len(resolved), 500):
                conn.execute(
                    update(rejects)
                    .where(rejects.c.id.in_(resolved[start : start + 500]))
                    .values(resolved_batch_id=batch.id)
                )
        batch.file = RETRY_FILE
        return batch.finish("")

    with _no_gc():
        return _transaction(engine, work)


def ingest_files(
    engine: Engine,
    rules: Rules,
    paths: Sequence[Path],
    importers: Sequence[PluginImporter],
    *,
    importer_name: str | None = None,
    now: datetime | None = None,
    progress: Callable[[Path], Any] | None = None,
    kinds: Mapping[str, ImporterKind] | None = None,
    first_open: date = date.min,
    today: date | None = None,
) -> Iterator[ImportReport]:
    """Check every file first (importer, kind, header, readable), then import each in
    its own transaction, yielding its report. A bad file stops the command
    before anything is written. ``kinds``: the registry's (None: usage events alone);
    ``first_open`` and ``today``: the engine's date rules, for the kinds that keep them
    (:func:`dated_by`)."""
    chosen = []
    for path in paths:
        if not path.is_file():
            raise BadInput(f"{path}: no such file")
        importer = select_importer(path, importers, importer_name)
        check_file(path, importer, kinds)
        chosen.append((path, importer))
    for path, importer in chosen:
        if progress is None:
            yield ingest_file(
                engine,
                rules,
                path,
                importer,
                now=now,
                kinds=kinds,
                first_open=first_open,
                today=today,
            )
            continue
        with progress(path) as advance:
            report = ingest_file(
                engine,
                rules,
                path,
                importer,
                now=now,
                progress=advance,
                kinds=kinds,
                first_open=first_open,
                today=today,
            )
        yield report


class IngestSetup(NamedTuple):
    """What ``meterbook ingest`` works with: the rules, the store, the importers and the kinds
    of record they yield."""

    rules: Rules
    engine: Engine
    importers: Sequence[PluginImporter]
    kinds: Mapping[str, ImporterKind]


def ingest_importer(importer: object) -> Importer:
    """A plugin's importer as ingest reads it (:class:`Importer`: ``kind``, ``name``,
    ``identify``, ``check``, ``rows``); one that lacks any is a one-line
    :class:`PluginError` naming it, not a traceback in the middle of an import."""
    if isinstance(importer, Importer):
        return importer
    absent = [m for m in ("kind", "name", "identify", "check", "rows") if not hasattr(importer, m)]
    raise PluginError(
        f"importer {getattr(importer, 'name', type(importer).__name__)!r} "
        f"({type(importer).__name__}) lacks {', '.join(absent)}, which meterbook ingest reads"
    )


def dated_by(workspace: Workspace) -> tuple[date, date]:
    """``(first_open, today)`` of a workspace: the first day not sealed and today in its time
    zone, the dates a payments file's top-up rows are judged against (:mod:`ledger.topups`)."""
    from ledger.books import sealed_months
    from ledger.period import Month

    sealed = sealed_months(workspace.books_dir)
    first_open = Month.parse(max(sealed)).next().first if sealed else date.min
    return first_open, datetime.now(workspace.tz).date()


def open_for_ingest(workspace: Workspace) -> IngestSetup:
    """A workspace's rules, store, importers and their kinds, from the plugin registry
    (workspace, installed and first-party importers and kinds; the first-party event
    importers when no plugin gives any)."""
    from ledger.registry import load_registry
    from ledger.rules import load_rules
    from ledger.store import open_store

    loaded = load_registry(workspace.plugins_dir)
    importers: Sequence[PluginImporter] = loaded.importers or tuple(default_importers())
    rules = load_rules(
        workspace.rules_dir, loaded.pricing_models, change_policy=workspace.subscription_changes
    )
    return IngestSetup(rules, open_store(workspace.store_url), importers, loaded.importer_kinds)
