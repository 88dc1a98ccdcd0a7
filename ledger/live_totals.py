"""Live meter totals: what the product's own meter reported per customer, meter and day.

The second record of usage behind the dual-track check (``plugins/reconcile_dual_track.py``):
the batch events are one record, the live meter (a counter in the API gateway, a
metering service's daily export) another, and the two must agree. A file::

    date,customer,meter,quantity,source
    2026-10-01,acme,api_calls,812,gateway-eu
    2026-10-01,acme,api_calls,388,gateway-us
    2026-10-02,acme,tokens,1250000.5,gateway-eu

``importers/live_totals.py`` reads it; this module judges each row, stores it
idempotently and reads the totals back:

- the key is ``(source, date, customer, meter)``: the same key with the same
  quantity is a *duplicate*, with another quantity a *conflict*, kept in
  ``live_total_conflicts`` (the first stored wins, never overwritten);
- a row is *rejected* with one reason (:data:`REASONS`, checked in that order):
  the customer and meter must be in the rules, the date a day not in the
  future, the quantity an exact, non-negative decimal with at most 9 places;
- an empty ``source`` is ``default`` (as for usage events).

Sources are partitions of the live meter (regions, gateways): their totals for
one customer, meter and day add up (:func:`daily_live_totals`).

    >>> from ledger.importers.live_totals import RawLiveTotal
    >>> row = RawLiveTotal(2, [], "2026-10-01", "acme", "api_calls", "812", "gateway-eu")
    >>> live_total_of(row, customers={"acme"}, meters={"api_calls"},
    ...               today=date(2026, 11, 1))  # doctest: +NORMALIZE_WHITESPACE
    LiveTotal(source='gateway-eu', date=datetime.date(2026, 10, 1), customer='acme',
              meter='api_calls', quantity=Decimal('812'), line=2)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select

from ledger.events import number_of, number_problem, parse_day
from ledger.ingest import ImportReport, Rejected, ingest_records
from ledger.money import from_units_nanos, normalize
from ledger.store import live_total_conflicts
from ledger.store import live_totals as live_totals_table

if TYPE_CHECKING:
    from ledger.importers.live_totals import RawLiveTotal
    from ledger.rules import Rules

#: Reject reasons of a live-totals row, in the order they are checked (one per row).
REASONS = (
    "bad_encoding",
    "too_long",
    "bad_csv",
    "missing_field",
    "bad_date",
    "future_date",
    "unknown_meter",
    "unknown_customer",
    "bad_number",
    "negative_quantity",
)
MAX_TEXT = 255
DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class LiveTotal:
    """One day's total of one meter for one customer, as one source reported it."""

    source: str
    date: date
    customer: str
    meter: str
    quantity: Decimal
    line: int = 0


def live_total_of(
    raw: RawLiveTotal, *, customers: Collection[str], meters: Collection[str], today: date
) -> LiveTotal:
    """The total a readable row says, or :class:`ledger.ingest.Rejected` with one reason.

    >>> from ledger.importers.live_totals import RawLiveTotal
    >>> live_total_of(RawLiveTotal(3, [], "2026-10-01", "acme", "api_calls", "-4", ""),
    ...               customers={"acme"}, meters={"api_calls"}, today=date(2026, 11, 1))
    Traceback (most recent call last):
    ledger.ingest.Rejected: ('negative_quantity', "quantity '-4' is negative")
    """
    for name in ("date", "customer", "meter", "quantity"):
        if not getattr(raw, name).strip():
            raise Rejected("missing_field", f"{name} is missing")
    source = raw.source.strip() or DEFAULT_SOURCE
    customer, meter, text = raw.customer.strip(), raw.meter.strip(), raw.quantity
    for name, value in (("source", source), ("customer", customer), ("meter", meter)):
        if len(value) > MAX_TEXT:
            raise Rejected("too_long", f"{name} is {len(value)} characters (at most {MAX_TEXT})")
    try:
        day = parse_day(raw.date)  # YYYY-MM-DD, 1970-01-01 or later
    except ValueError as exc:
        raise Rejected("bad_date", f"date {exc}") from None
    if day > today:
        raise Rejected(
            "future_date",
            f"date {day.isoformat()} is in the future (a day's total is known "
            "once the day has begun)",
        )
    if meter not in meters:
        raise Rejected("unknown_meter", f"meter {meter!r} is not in the rules")
    if customer not in customers:
        raise Rejected("unknown_customer", f"customer {customer!r} is not in the rules")
    pair = number_of(
        text
    )  # plain digits, |x| <= 10**15, 9 places: the store's columns sum it exactly
    if pair is None:
        raise Rejected("bad_number", f"quantity: {number_problem(text)}")
    if pair[0] < 0:
        raise Rejected("negative_quantity", f"quantity {raw.quantity!r} is negative")
    return LiveTotal(
        source=source,
        date=day,
        customer=customer,
        meter=meter,
        quantity=from_units_nanos(*pair),
        line=raw.line,
    )


# --- storing a file -----------------------------------------------------------------------


def store_file(
    engine: Engine,
    rules: Rules,
    path: Path,
    importer: Any,
    *,
    now: datetime,
    chunk_size: int = 0,
    progress: Callable[[int], None] | None = None,
    name: str = "",
) -> ImportReport:
    """Import one live-totals file in one transaction (``received = accepted +
    duplicates + conflicts + rejected``): how the ``live_totals`` kind is stored
    (:mod:`ledger.plugins.record_kinds`). A deadlock or a locked SQLite database re-runs the
    file."""
    name = name or str(path)
    # "today" in the workspace's sense is not known here: a day ahead of UTC is allowed
    today = (now + timedelta(days=1)).date()
    customers, meters = frozenset(rules.customers), frozenset(rules.meters)

    def store(conn: Connection, raw: RawLiveTotal, batch_id: int) -> str:
        total = live_total_of(raw, customers=customers, meters=meters, today=today)
        return _store(conn, total, batch_id=batch_id, name=name)

    return ingest_records(engine, path, importer, store, name=name, progress=progress)


def _store(conn: Connection, total: LiveTotal, *, batch_id: int, name: str) -> str:
    """Store one total; return ``accepted``, ``duplicates`` or ``conflicts``."""
    from ledger.money import to_units_nanos

    units, nanos = to_units_nanos(total.quantity)
    row = {
        "source": total.source,
        "date": total.date.isoformat(),
        "customer": total.customer,
        "meter": total.meter,
        "units": units,
        "nanos": nanos,
        "batch_id": batch_id,
        "file": name,
        "line": total.line,
    }
    keys = ["source", "date", "customer", "meter"]
    stmt: Any
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(live_totals_table).on_conflict_do_nothing(index_elements=keys)
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(live_totals_table).on_conflict_do_nothing(index_elements=keys)
    else:  # any other engine: the whole file is one transaction
        stmt = None
    c = live_totals_table.c
    where = (
        c.source == total.source,
        c.date == row["date"],
        c.customer == total.customer,
        c.meter == total.meter,
    )
    if stmt is not None:
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT that returns the key
        if conn.execute(stmt.values(**row).returning(live_totals_table.c.pk)).first() is not None:
            return "accepted"
    elif conn.execute(select(c.pk).where(*where)).first() is None:
        conn.execute(live_totals_table.insert().values(**row))
        return "accepted"
    stored_units, stored_nanos = conn.execute(select(c.units, c.nanos).where(*where)).one()
    if (int(stored_units), int(stored_nanos)) == (units, nanos):
        return "duplicates"
    # the first total stored under a key wins; the other one is kept aside, never lost
    conn.execute(
        live_total_conflicts.insert().values(
            source=total.source,
            date=row["date"],
            customer=total.customer,
            meter=total.meter,
            stored_quantity=str(from_units_nanos(stored_units, stored_nanos)),
            quantity=str(normalize(total.quantity)),
            batch_id=batch_id,
            file=name,
            line=total.line,
        )
    )
    return "conflicts"


# --- reading the store ------------------------------------------------------------------


def daily_live_totals(
    engine: Engine, *, start: date, end: date, meters: Collection[str] | None = None
) -> dict[tuple[str, str], dict[date, Decimal]]:
    """Per ``(meter, customer)``: each day's live total in ``[start, end)``, summed over sources
    in SQL.

    The HTTP API's own counters (``api_counters``, :mod:`ledger.api.counters`) are one
    more source. Days without a stored total are absent (not zero).
    """
    from ledger.store import api_counters

    result: dict[tuple[str, str], dict[date, Decimal]] = defaultdict(dict)
    with engine.connect() as conn:
        for table in (live_totals_table, api_counters):
            c = table.c
            query = (
                select(c.meter, c.customer, c.date, func.sum(c.units), func.sum(c.nanos))
                .where(c.date >= start.isoformat(), c.date < end.isoformat())
                .group_by(c.meter, c.customer, c.date)
            )
            if meters is not None:
                query = query.where(c.meter.in_(sorted(meters)))
            for meter, customer, text, units, nanos in conn.execute(query):
                days, day = result[(meter, customer)], date.fromisoformat(text)
                days[day] = normalize(days.get(day, Decimal(0)) + from_units_nanos(units, nanos))
    return dict(result)
