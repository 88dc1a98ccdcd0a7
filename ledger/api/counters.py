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
            day = self.cache[bucket] = datetime.fromtimestamp(bucket * _BUCKET_US / 1e6, UTC).astimezone(
                self.tz).date()
        return day


def contributions(rules: Rules, tz: ZoneInfo, rows: Iterable[tuple[str, str, int, str, str]],
                  ) -> dict[tuple[str, str, date], list[Any]]:
    """Per ``(customer, meter, day)``: ``[value nanos, events, latest time]`` of stored event
    rows ``(customer, type, time_us, properties JSON, numbers JSON)``.

    >>> from ledger.rules import Customer
    >>> rules = Rules.model_construct(meters={
    ...     "calls": Meter(id="calls", event_type="api.request", aggregation="count"),
    ...     "tokens": Meter(id="tokens", event_type="llm", aggregation="sum", value="tokens")})
    >>> rows = [("acme", "api.request", 1_796_374_800_000_000, "{}", "{}"),
    ...         ("acme", "llm", 1_796_374_900_000_000, '{"tokens":"1.5"}', '{"tokens":[1,500000000]}')]
    >>> sorted(contributions(rules, ZoneInfo("UTC"), rows).items())
    [(('acme', 'calls', datetime.date(2026, 12, 4)), [1000000000, 1, 1796374800000000]), (('acme', 'tokens', datetime.date(2026, 12, 4)), [1500000000, 1, 1796374900000000])]
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


def _upsert(conn: Connection, rules: Rules, key: tuple[str, str, date], figures: list[Any]) -> None:
    customer, meter, day = key
    value, count, latest = figures
    units, nanos = divmod(value, NANO)
    c = api_counters.c
    where = (c.customer == customer, c.meter == meter, c.date == day.isoformat())
    row = conn.execute(sa.select(c.units, c.nanos, c.events, c.latest_us).where(*where)).first()
    if row is None:
        conn.execute(api_counters.insert().values(customer=customer, meter=meter, date=day.isoformat(),
                                                  units=units, nanos=nanos, events=count, latest_us=latest))
        return
    stored = int(row.units) * NANO + int(row.nanos)
    aggregation = rules.meters[meter].aggregation
    if aggregation in ("count", "sum"):
        stored += value
    elif aggregation == "max":
        stored = max(stored, value)
    elif latest >= int(row.latest_us):
        stored = value
    units, nanos = divmod(stored, NANO)
    conn.execute(sa.update(api_counters).where(*where).values(
        units=units, nanos=nanos, events=int(row.events) + count, latest_us=max(latest, int(row.latest_us))))


def count_batch(engine: Engine, rules: Rules, tz: ZoneInfo, batch_id: int, key_id: str) -> bool:
    """Add a stored batch's accepted events to the counters, once; False if it was counted before.

    One transaction: the ``api_batches`` row and the counters commit together. On
    SQLite the write lock is taken first; on PostgreSQL rows are locked as read
    (``FOR UPDATE``) in key order, so concurrent counting never loses an update.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        done = conn.execute(sa.select(api_batches.c.batch_id).where(api_batches.c.batch_id == batch_id)).first()
        if done is not None:
            conn.rollback()
            return False
        conn.execute(api_batches.insert().values(batch_id=batch_id, key_id=key_id,
                                                 counted_at=datetime.now(UTC).isoformat(timespec="seconds")))
        e = events.c
        rows = conn.execute(sa.select(e.customer, e.type, e.time_us, e.properties, e.numbers)
                            .where(e.batch_id == batch_id)).all()
        found = contributions(rules, tz, rows)  # type: ignore[arg-type]
        if not sqlite and found:
            c = api_counters.c
            for customer, meter, day in sorted(found):
                conn.execute(sa.select(c.units).where(c.customer == customer, c.meter == meter,
                                                      c.date == day.isoformat()).with_for_update())
        for key in sorted(found):
            _upsert(conn, rules, key, found[key])
        conn.commit()
    return True


def count_uncounted(engine: Engine, rules: Rules, tz: ZoneInfo) -> int:
    """Count every API batch that was stored but not counted (its process died in between)."""
    b = batches.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(b.id, b.file).where(
            b.file.like("api:%"), b.finished_at.is_not(None),
            b.id.not_in(sa.select(api_batches.c.batch_id)))).all()
    counted = 0
    for batch_id, name in rows:
        key_id = key_of_batch(name)
        if key_id is not None and count_batch(engine, rules, tz, batch_id, key_id):
            counted += 1
    return counted


def daily_counters(engine: Engine, customer: str, start: date, end: date) -> dict[tuple[str, date], int]:
    """Events counted per ``(meter, day)`` for a customer in ``[start, end)`` (the portal's freshness)."""
    c = api_counters.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(c.meter, c.date, c.events).where(
            c.customer == customer, c.date >= start.isoformat(), c.date < end.isoformat())).all()
    return {(meter, date.fromisoformat(day)): int(n) for meter, day, n in rows}
