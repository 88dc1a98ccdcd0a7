"""The API's live totals: counters per customer, meter and local day, kept as events arrive.

Every batch the API stores is counted once, right after it commits: its accepted
events, per meter that selects them (event type and filter), go into
``api_counters`` for the workspace's local day of their time. With a ``count``
meter ``api_calls`` and a ``sum`` meter ``tokens`` (value ``tokens``), a request
whose accepted events are::

    acme  api.request     2026-12-04T09:00:00Z
    acme  api.request     2026-12-04T09:01:00Z
    acme  llm.completion  2026-12-04T09:02:00Z  tokens=1200.5

adds ``acme api_calls 2026-12-04 +2`` and ``acme tokens 2026-12-04 +1200.5``.
``max`` meters keep the day's largest value, ``latest`` the value of the day's
latest event; ``unique_count`` meters have no counter (a distinct count cannot
be kept by adding).

These counters are a live-totals source for the dual-track reconciler
(:func:`ledger.live_totals.daily_live_totals`): before a month closes, the batch
metering of the stored events is compared with them per customer, meter and
day. Counting is exactly once: ``api_batches`` (batch id as primary key) is
written in the same transaction as the counters; a batch committed by a process
that died before counting it is counted when the API starts again
(:func:`count_uncounted`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from ledger.rules import Meter, Rules
from ledger.store import api_batches, api_counters, batches, events

#: Aggregations with a live counter.
COUNTED = frozenset({"count", "sum", "max", "latest"})
NANO = 10**9
_BUCKET_US = 900_000_000  # every UTC offset is a multiple of 15 minutes


def batch_name(key_id: str, request_id: str) -> str:
    """The ``batches.file`` of an API request: the key that made it and the request id.

    >>> batch_name("k0123456789ab", "r1"), key_of_batch("api:k0123456789ab:r1")
    ('api:k0123456789ab:r1', 'k0123456789ab')
    """
    return f"api:{key_id}:{request_id}"


def key_of_batch(name: str) -> str | None:
    """The key id in an API batch's name, None for a file's batch."""
    parts = name.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == "api" else None


class _Days:
    """Local day of a microsecond timestamp, cached per 15 minutes."""

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self.cache: dict[int, date] = {}

    def __call__(self, time_us: int) -> date:
        bucket = time_us // _BUCKET_US
        day = self.cache.get(bucket)
        if day is None:
            day = self.cache[bucket] = (
                datetime.fromtimestamp(bucket * _BUCKET_US / 1e6, UTC).astimezone(self.tz).date()
            )
        return day


def contributions(
    rules: Rules,
    tz: ZoneInfo,
    rows: Iterable[tuple[str, str, int, str, str]],
) -> dict[tuple[str, str, date], list[Any]]:
    """Per ``(customer, meter, day)``: ``[value nanos, events, latest time]`` of stored event
    rows ``(customer, type, time_us, properties JSON, numbers JSON)``.

    >>> from ledger.rules import Customer
    >>> rules = Rules.model_construct(meters={
    ...     "calls": Meter(id="calls", event_type="api.request", aggregation="count"),
    ...     "tokens": Meter(id="tokens", event_type="llm", aggregation="sum", value="tokens")})
    >>> rows = [("acme", "api.request", 1_796_374_800_000_000, "{}", "{}"),
    ...         ("acme", "llm", 1_796_374_900_000_000, '{"tokens":"1.5"}',
    ...          '{"tokens":[1,500000000]}')]
    >>> for key, figures in sorted(contributions(rules, ZoneInfo("UTC"), rows).items()):
    ...     print(key, figures)
    ('acme', 'calls', datetime.date(2026, 12, 4)) [1000000000, 1, 1796374800000000]
    ('acme', 'tokens', datetime.date(2026, 12, 4)) [1500000000, 1, 1796374900000000]
    """
    by_type: dict[str, list[Meter]] = {}
    for meter in rules.meters.values():
        if meter.aggregation in COUNTED:
            by_type.setdefault(meter.event_type, []).append(meter)
    day_of = _Days(tz)
    out: dict[tuple[str, str, date], list[Any]] = {}
    for customer, type_, time_us, props_json, numbers_json in rows:
        meters = by_type.get(type_)
        if not meters:
            continue
        props: dict[str, str] | None = None
        numbers: dict[str, list[int]] | None = None
        day = day_of(time_us)
        for meter in meters:
            if meter.filter:
                props = props if props is not None else json.loads(props_json)
                if any(props.get(k) != v for k, v in meter.filter.items()):
                    continue
            if meter.aggregation == "count":
                value = NANO
            else:
                numbers = numbers if numbers is not None else json.loads(numbers_json)
                pair = numbers.get(meter.value or "")
                if pair is None:
                    continue
                value = pair[0] * NANO + pair[1]
            key = (customer, meter.id, day)
            found = out.get(key)
            if found is None:
                out[key] = [value, 1, time_us]
                continue
            if meter.aggregation in ("count", "sum"):
                found[0] += value
            elif meter.aggregation == "max":
                found[0] = max(found[0], value)
            elif time_us >= found[2]:  # latest: the value of the day's latest event
                found[0] = value
            found[1] += 1
            found[2] = max(found[2], time_us)
    return out


#: How a stored counter takes a batch's figure, per aggregation (``t``: the stored row).
_TAKE = {
    "add": "units = t.units + excluded.units, nanos = t.nanos + excluded.nanos",
    "max": (
        "units = CASE WHEN {bigger} THEN excluded.units ELSE t.units END, "
        "nanos = CASE WHEN {bigger} THEN excluded.nanos ELSE t.nanos END"
    ),
    "latest": (
        "units = CASE WHEN excluded.latest_us >= t.latest_us THEN excluded.units ELSE t.units END, "
        "nanos = CASE WHEN excluded.latest_us >= t.latest_us THEN excluded.nanos ELSE t.nanos END"
    ),
}
_BIGGER = "excluded.units > t.units OR (excluded.units = t.units AND excluded.nanos > t.nanos)"


def _upsert_sql(take: str, placeholder: str) -> str:
    """One ``INSERT … ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL) adding a batch's figures."""
    values = ", ".join([placeholder] * 7)
    return (
        "INSERT INTO api_counters AS t (customer, meter, date, units, nanos, events, latest_us) "
        f"VALUES ({values}) ON CONFLICT (customer, meter, date) DO UPDATE SET "
        + _TAKE[take].format(bigger=_BIGGER)
        + ", events = t.events + excluded.events, "
        "latest_us = CASE WHEN excluded.latest_us > t.latest_us "
        "THEN excluded.latest_us ELSE t.latest_us END"
    )


def _store(conn: Connection, rules: Rules, found: dict[tuple[str, str, date], list[Any]]) -> None:
    """Add the figures to the stored counters: one statement per kind of aggregation, in key
    order."""
    placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for key in sorted(found):
        customer, meter, day = key
        value, count, latest = found[key]
        units, nanos = divmod(value, NANO)
        aggregation = rules.meters[meter].aggregation
        take = "add" if aggregation in ("count", "sum") else str(aggregation)
        groups.setdefault(take, []).append(
            (customer, meter, day.isoformat(), units, nanos, count, latest)
        )
    for take, rows in sorted(groups.items()):
        conn.exec_driver_sql(_upsert_sql(take, placeholder), rows)  # type: ignore[arg-type]


def event_floor(engine: Engine) -> int:
    """The largest event ``pk`` now: a batch stored after this holds only larger ones."""
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.pk), 0))).scalar_one()
        )


def count_batch(
    engine: Engine, rules: Rules, tz: ZoneInfo, batch_id: int, key_id: str, floor: int = 0
) -> bool:
    """Add a stored batch's accepted events to the counters, once; False if it was counted before.

    ``floor`` (:func:`event_floor` read before the batch was stored) lets the batch's
    rows be found by a range of the primary key instead of a scan of every event.

    One transaction: the ``api_batches`` row and the counters commit together. Each
    counter is changed by one ``INSERT … ON CONFLICT DO UPDATE`` computing the new
    figure from the stored one in the database (in key order), so concurrent
    counting never loses an update and never deadlocks.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        claimed = conn.exec_driver_sql(
            "INSERT INTO api_batches (batch_id, key_id, counted_at) VALUES "
            f"({placeholder}, {placeholder}, {placeholder}) "
            "ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id",
            (batch_id, key_id, datetime.now(UTC).isoformat(timespec="seconds")),
        ).first()
        if claimed is None:  # counted before (another worker, an earlier start)
            conn.rollback()
            return False
        e = events.c
        rows = conn.execute(
            sa.select(e.customer, e.type, e.time_us, e.properties, e.numbers).where(
                e.pk > floor, e.batch_id == batch_id
            )
        ).all()
        _store(conn, rules, contributions(rules, tz, rows))  # type: ignore[arg-type]
        conn.commit()
    return True


def count_uncounted(engine: Engine, rules: Rules, tz: ZoneInfo) -> int:
    """Count every API batch that was stored but not counted (its process died in between)."""
    b = batches.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(b.id, b.file).where(
                b.file.like("api:%"),
                b.finished_at.is_not(None),
                b.id.not_in(sa.select(api_batches.c.batch_id)),
            )
        ).all()
    counted = 0
    for batch_id, name in rows:
        key_id = key_of_batch(name)
        if key_id is not None and count_batch(engine, rules, tz, batch_id, key_id):
            counted += 1
    return counted


def daily_counters(
    engine: Engine, customer: str, start: date, end: date
) -> dict[tuple[str, date], int]:
    """Events counted per ``(meter, day)`` for a customer in ``[start, end)`` (the portal's
    freshness)."""
    c = api_counters.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.meter, c.date, c.events).where(
                c.customer == customer, c.date >= start.isoformat(), c.date < end.isoformat()
            )
        ).all()
    return {(meter, date.fromisoformat(day)): int(n) for meter, day, n in rows}
