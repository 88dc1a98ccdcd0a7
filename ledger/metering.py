"""Metering: a meter's aggregate per customer and time window, computed in SQL.

A meter ``tokens`` (``llm.completion``, sum of ``tokens``, filter ``{region: eu}``)
over acme's events::

    10:00  tokens=1.5   region=eu
    11:00  tokens=2     region=us      (filtered out)
    12:00  tokens=0.25  region=eu
    12:30  tokens=abc   region=eu      (not a number: counted in events, not in the sum)

    measure(engine, tokens, [Window("acme", 10:00, 12:00), Window("acme", 10:00, 13:00)])
    → {Window("acme", 10:00, 12:00): Usage(quantity=Decimal("1.5"), events=1),
       Window("acme", 10:00, 13:00): Usage(quantity=Decimal("1.75"), events=3)}

Windows are half-open ``[start_us, end_us)`` in UTC microseconds; the cut-off
of an accrual dated D is :func:`cut_off_us` of D+1 in the workspace timezone.

How it runs (DESIGN: aggregate where the data lives):

- All windows of one meter go to the database together, as a temporary table
  joined to ``events`` on customer and time range (the ``(type, customer,
  time_us)`` index): one aggregate statement per meter (two with bands).
- Overlapping windows of a customer (the cumulative windows of one cycle share
  a start) are cut into disjoint *segments* first, so each event is read once;
  SQL returns one partial aggregate per segment (count, sum, max, latest, band
  counts) and Python adds up the few partials of each window. ``unique_count``
  cannot be added up, so it joins the windows themselves.
- Quantities are exact: ``numbers`` holds ``[units, nanos]`` pairs, summed as two
  integer columns and joined with :func:`ledger.money.from_units_nanos`. On
  SQLite a sum whose units overflow 64 bits is re-run with the units split into
  ``units / 10**9`` and ``units % 10**9``. Max and latest never multiply units
  out: SQLite compares a fixed-width text key, PostgreSQL ``ARRAY[units,
  nanos]``; latest orders by ``(time_us, source, event_id)`` in byte order
  (``COLLATE "C"`` on PostgreSQL), never by insert order.
- Daily usage buckets events by local day with integer arithmetic in SQL: the
  timezone's UTC offsets over the range are turned into a short ``CASE`` (one
  branch per run of regular days, one per 23/25-hour DST day), so any IANA zone
  is exact and UTC is a single division.

Property names are bound as parameters (PostgreSQL) or inside a quoted JSON path
(SQLite, which cannot quote ``"`` in a path: such names are refused with
:class:`MeteringError`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import OperationalError

from ledger.errors import BadInput
from ledger.events import to_us
from ledger.money import NANO, ZERO, from_units_nanos, to_units_nanos
from ledger.pricing import Band, Usage
from ledger.rules import Meter
from ledger.store import events

#: Rows per executemany into the windows table, and customers per ``IN`` list
#: (well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters).
CHUNK = 5000
DAY_US = 86_400_000_000
_EPOCH_DAY = date(1970, 1, 1)
_INT64_MAX = 9_223_372_036_854_775_807


class MeteringError(BadInput):
    """A meter cannot be measured as written (for example a property name SQLite cannot address)."""


@dataclass(frozen=True, order=True)
class Window:
    """One customer's events with ``start_us <= time_us < end_us`` (UTC microseconds)."""

    customer: str
    start_us: int
    end_us: int


@dataclass(frozen=True)
class DailyUsage:
    """A meter's aggregate for one customer on one local day of the workspace timezone."""

    customer: str
    day: date
    usage: Usage


@dataclass(frozen=True)
class Evidence:
    """What an audit trace recomputes: the events behind a window and a digest over them.

    ``digest`` is sha256 (hex) over the lines ``f"{source}\\t{event_id}\\t{payload_hash}\\n"``
    of the matching events sorted by ``(source, event_id)``, so it does not
    depend on ingest order or batch splits.
    """

    events: int
    first_us: int | None
    last_us: int | None
    digest: str


def cut_off_us(day: date, tz: ZoneInfo) -> int:
    """UTC microseconds of ``day`` 00:00 in ``tz``.

    An accrual dated D covers events with ``time_us < cut_off_us(D + 1 day, tz)``.

    >>> cut_off_us(date(2026, 10, 1), ZoneInfo("UTC"))
    1790812800000000
    >>> cut_off_us(date(2026, 10, 1), ZoneInfo("Europe/Berlin"))   # 00:00+02:00
    1790805600000000
    """
    return to_us(datetime(day.year, day.month, day.day, tzinfo=tz))


# --- partial aggregates ----------------------------------------------------------------


@dataclass(frozen=True)
class _Partial:
    """What SQL returns per group: enough to add segments up into a window."""

    events: int = 0
    units: int = 0
    nanos: int = 0
    #: max: the largest (units, nanos); latest: the value of the group's latest valued event
    top: tuple[int, int] | None = None
    distinct: int = 0


def _usage(
    meter: Meter,
    parts: Sequence[_Partial],
    bands: tuple[Decimal, ...],
    band_parts: Sequence[dict[int, tuple[int, int, int]]],
) -> Usage:
    """Add up the partials of consecutive, disjoint segments (in time order)."""
    events_ = sum(p.events for p in parts)
    agg = meter.aggregation
    quantity: Decimal
    if agg == "count":
        quantity = Decimal(events_)
    elif agg == "sum":
        quantity = from_units_nanos(sum(p.units for p in parts), sum(p.nanos for p in parts))
    elif agg == "max":
        tops = [p.top for p in parts if p.top is not None]
        quantity = from_units_nanos(*max(tops)) if tops else ZERO
    elif agg == "latest":
        tops = [p.top for p in parts if p.top is not None]
        quantity = from_units_nanos(*tops[-1]) if tops else ZERO
    else:
        quantity = Decimal(sum(p.distinct for p in parts))
    usage_bands: tuple[Band, ...] = ()
    if bands:
        out = []
        for i, upper in enumerate((*bands, None)):
            count = units = nanos = 0
            for part in band_parts:
                c, u, n = part.get(i, (0, 0, 0))
                count, units, nanos = count + c, units + u, nanos + n
            out.append(Band(upper=upper, count=count, total=from_units_nanos(units, nanos)))
        usage_bands = tuple(out)
    return Usage(quantity=quantity, events=events_, bands=usage_bands)


# --- SQL building blocks ---------------------------------------------------------------


def _json_path(name: str, suffix: str = "") -> str:
    if '"' in name or "\\" in name:
        raise MeteringError(
            f"property name {name!r}: quotes and backslashes are not supported in meter "
            "values and filters"
        )
    return f'$."{name}"{suffix}'


class _Dialect:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, name: str):
        self.pg = name == "postgresql"

    def text(self, prop: str) -> ColumnElement[Any]:
        """A property's text (all property values are strings)."""
        path = _json_path(prop)  # refuses the same names on every engine: rules stay portable
        if self.pg:
            return sa.cast(events.c.properties, postgresql.JSONB).op("->>", return_type=sa.Text)(
                sa.literal(prop, sa.Text)
            )
        return sa.func.json_extract(events.c.properties, path, type_=sa.Text)

    def pair(self, prop: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """``(units, nanos)`` of a numeric property, NULL when it is not a number."""
        _json_path(prop)
        if self.pg:
            # the typed columns when they hold this property (ingest fills them with the
            # property the event type's meters read), else the numbers JSON (exact, slower)
            value = sa.cast(events.c.numbers, postgresql.JSONB).op(
                "->", return_type=postgresql.JSONB
            )(sa.literal(prop, sa.Text))
            typed = events.c.q_name == sa.literal(prop, sa.Text)
            units = sa.case(
                (typed, sa.cast(events.c.q_units, sa.Numeric)),
                else_=sa.cast(
                    value.op("->>", return_type=sa.Text)(sa.literal_column("0")), sa.Numeric
                ),
            )
            nanos = sa.case(
                (typed, events.c.q_nanos),
                else_=sa.cast(
                    value.op("->>", return_type=sa.Text)(sa.literal_column("1")), sa.BigInteger
                ),
            )
            return units, nanos
        return (
            sa.func.json_extract(events.c.numbers, _json_path(prop, "[0]"), type_=sa.BigInteger),
            sa.func.json_extract(events.c.numbers, _json_path(prop, "[1]"), type_=sa.BigInteger),
        )

    def byte_order(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """Compare text by code point, as Python does (PostgreSQL's default collation may not)."""
        return column.collate("C") if self.pg else column

    def max_key(self, u: ColumnElement[Any], n: ColumnElement[Any]) -> ColumnElement[Any]:
        """An aggregate whose MAX is the largest (units, nanos), never multiplied out."""
        if self.pg:
            return sa.func.max(sa.case((u.is_not(None), postgresql.array([u, n]))))
        # '1' + 19 digits for units >= 0, '0' + (units + 2**63 - 1) for negatives, then 9 digits
        # of nanos
        shifted = sa.case((u >= 0, u), else_=u + _INT64_MAX)
        return sa.func.max(
            sa.case((u.is_not(None), sa.func.printf("%d%019d%09d", u >= 0, shifted, n)))
        )

    @staticmethod
    def read_max(value: Any) -> tuple[int, int] | None:
        if value is None:
            return None
        if isinstance(value, str):
            units = int(value[1:20])
            return (units if value[0] == "1" else units - _INT64_MAX), int(value[20:])
        return int(value[0]), int(value[1])


def _filters(dialect: _Dialect, meter: Meter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [events.c.type == meter.event_type]
    for prop, text in sorted(meter.filter.items()):
        where.append(dialect.text(prop) == sa.literal(text, sa.Text))
    return where


def _div(a: ColumnElement[Any], b: int) -> ColumnElement[Any]:
    """Integer division truncating toward zero (SQLite and PostgreSQL integers)."""
    return a.op("/", precedence=8, return_type=sa.BigInteger)(sa.literal_column(str(b)))


def _mod(a: ColumnElement[Any], b: int) -> ColumnElement[Any]:
    return a.op("%", precedence=8, return_type=sa.BigInteger)(sa.literal_column(str(b)))


def _partials_select(
    dialect: _Dialect,
    meter: Meter,
    source: sa.FromClause,
    keys: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    *,
    split: bool,
) -> sa.Select[Any]:
    """``SELECT keys, events, <aggregate columns> ... GROUP BY keys``."""
    agg = meter.aggregation
    cols: list[ColumnElement[Any]] = [k.label(f"k{i}") for i, k in enumerate(keys)]
    if agg in ("sum", "max", "latest") and meter.value:
        u, n = dialect.pair(meter.value)
        cols += [u.label("u"), n.label("n")]
        if agg == "latest":
            order = [
                u.is_(None),
                events.c.time_us.desc(),
                dialect.byte_order(events.c.source).desc(),
                dialect.byte_order(events.c.event_id).desc(),
            ]
            cols.append(
                sa.func.row_number().over(partition_by=list(keys), order_by=order).label("rn")
            )
    elif agg == "unique_count" and meter.value:
        cols.append(dialect.text(meter.value).label("t"))
    m = sa.select(*cols).select_from(source).where(*where).subquery("m")
    group = [m.c[f"k{i}"] for i in range(len(keys))]
    out: list[ColumnElement[Any]] = [*group, sa.func.count().label("events")]
    if "u" in m.c and agg == "sum":
        if split:
            out += [
                sa.func.sum(_div(m.c.u, NANO)).label("hi"),
                sa.func.sum(_mod(m.c.u, NANO)).label("lo"),
            ]
        else:
            out.append(sa.func.sum(m.c.u).label("lo"))
        out.append(sa.func.sum(m.c.n).label("nanos"))
    elif "u" in m.c and agg == "max":
        out.append(dialect.max_key(m.c.u, m.c.n).label("top"))
    elif "u" in m.c and agg == "latest":
        out += [
            sa.func.max(sa.case((m.c.rn == 1, m.c.u))).label("tu"),
            sa.func.max(sa.case((m.c.rn == 1, m.c.n))).label("tn"),
        ]
    elif "t" in m.c:
        out.append(sa.func.count(sa.distinct(m.c.t)).label("distinct"))
    return sa.select(*out).group_by(*group)


def _reader(dialect: _Dialect, columns: Sequence[str]) -> Any:
    """A function from a result row of :func:`_partials_select` to its :class:`_Partial`."""
    at = {name: i for i, name in enumerate(columns)}
    events_, hi, lo, nanos = at["events"], at.get("hi"), at.get("lo"), at.get("nanos")
    top, tu, tn, distinct = at.get("top"), at.get("tu"), at.get("tn"), at.get("distinct")

    def read(row: Any) -> _Partial:
        units = (int(row[hi] or 0) * NANO if hi is not None else 0) + (
            int(row[lo] or 0) if lo is not None else 0
        )
        pair: tuple[int, int] | None = None
        if top is not None:
            pair = dialect.read_max(row[top])
        elif tu is not None and tn is not None and row[tu] is not None:
            pair = (int(row[tu]), int(row[tn]))
        return _Partial(
            events=int(row[events_]),
            units=units,
            nanos=int(row[nanos] or 0) if nanos is not None else 0,
            top=pair,
            distinct=int(row[distinct]) if distinct is not None else 0,
        )

    return read


def _partials(
    conn: sa.Connection, dialect: _Dialect, build: Any
) -> list[tuple[tuple[Any, ...], _Partial]]:
    """Run a partials statement (see :func:`_run`): ``(group key, partial)`` per row."""
    names, rows = _run(conn, build)
    read = _reader(dialect, names)
    width = sum(1 for name in names if name == "band" or (name[0] == "k" and name[1:].isdigit()))
    return [(tuple(row[:width]), read(row)) for row in rows]


def _bands_select(
    dialect: _Dialect,
    meter: Meter,
    source: sa.FromClause,
    keys: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    bands: tuple[Decimal, ...],
    *,
    split: bool,
) -> sa.Select[Any]:
    """Per group and band: count and exact total of the values in ``(previous, upper]``."""
    assert meter.value
    u, n = dialect.pair(meter.value)
    whens = []
    for i, upper in enumerate(bands):
        # a value has at most 9 places, so v <= t exactly when v <= t floored to 9 places
        tu, tn = to_units_nanos(upper.quantize(Decimal(1).scaleb(-9), rounding=ROUND_FLOOR))
        whens.append((sa.or_(u < tu, sa.and_(u == tu, n <= tn)), sa.literal(i)))
    band = sa.case(*whens, else_=sa.literal(len(bands)))
    cols = [k.label(f"k{i}") for i, k in enumerate(keys)]
    m = (
        sa.select(*cols, band.label("band"), u.label("u"), n.label("n"))
        .select_from(source)
        .where(*where, u.is_not(None))
        .subquery("m")
    )
    group = [*(m.c[f"k{i}"] for i in range(len(keys))), m.c.band]
    out: list[ColumnElement[Any]] = [*group, sa.func.count().label("events")]
    if split:
        out += [
            sa.func.sum(_div(m.c.u, NANO)).label("hi"),
            sa.func.sum(_mod(m.c.u, NANO)).label("lo"),
        ]
    else:
        out.append(sa.func.sum(m.c.u).label("lo"))
    out.append(sa.func.sum(m.c.n).label("nanos"))
    return sa.select(*out).group_by(*group)


def _run(conn: sa.Connection, build: Any) -> tuple[list[str], Sequence[Any]]:
    """Execute ``build(split)``; on a SQLite 64-bit overflow of a units sum, again with split
    units."""
    # PostgreSQL sums units as numeric: exact, never overflows. A failed SELECT
    # leaves a SQLite transaction usable, so no savepoint is needed for the retry.
    try:
        # fetch inside the try: SQLite may raise the overflow on any later step
        result = conn.execute(build(False))
        return list(result.keys()), result.all()
    except OperationalError as exc:
        if "integer overflow" not in str(exc.orig):
            raise
    result = conn.execute(build(True))
    return list(result.keys()), result.all()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# The windows (or segments) of one measure() call: a temporary table on the call's
# connection, filled with one executemany and joined once. (A VALUES list would do
# too, but compiling thousands of bound rows per statement costs more than the query.)
_temporary = sa.MetaData()
_windows = sa.Table(
    "meterbook_windows",
    _temporary,
    sa.Column("sid", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer", sa.String(255), nullable=False),
    sa.Column("start_us", sa.BigInteger, nullable=False),
    sa.Column("end_us", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)


@contextmanager
def _window_table(
    conn: sa.Connection, dialect: _Dialect, rows: Sequence[tuple[int, str, int, int]]
) -> Iterator[sa.Table]:
    drop = f"DROP TABLE IF EXISTS {'pg_temp' if dialect.pg else 'temp'}.meterbook_windows"
    conn.exec_driver_sql(drop)
    _windows.create(conn)
    try:
        for chunk in _chunks(rows, CHUNK):
            conn.execute(
                _windows.insert(),
                [
                    {"sid": sid, "customer": customer, "start_us": start, "end_us": end}
                    for sid, customer, start, end in chunk
                ],
            )
        if dialect.pg:
            conn.exec_driver_sql(
                "ANALYZE pg_temp.meterbook_windows"
            )  # temp tables are never auto-analyzed
        yield _windows
    finally:
        conn.exec_driver_sql(drop)


def _join_windows(w: sa.Table) -> sa.FromClause:
    return w.join(
        events,
        sa.and_(
            events.c.customer == w.c.customer,
            events.c.time_us >= w.c.start_us,
            events.c.time_us < w.c.end_us,
        ),
    )


# --- public API ------------------------------------------------------------------------


def _order(window: Window) -> tuple[str, int, int]:
    return (
        window.customer,
        window.start_us,
        window.end_us,
    )  # faster than the dataclass's own ordering


def _segments(
    windows: Sequence[Window],
) -> tuple[list[tuple[int, str, int, int]], dict[Window, list[int]]]:
    """Cut each customer's windows into disjoint segments; map each window to its segments in
    time order."""
    by_customer: dict[str, list[Window]] = defaultdict(list)
    for window in windows:
        by_customer[window.customer].append(window)
    segments: list[tuple[int, str, int, int]] = []
    members: dict[Window, list[int]] = {}
    for customer, group in sorted(by_customer.items()):
        bounds = sorted({b for w in group for b in (w.start_us, w.end_us)})
        index = {b: i for i, b in enumerate(bounds)}
        ids: dict[int, int] = {}
        for window in sorted(group, key=_order):
            members[window] = []
            for i in range(index[window.start_us], index[window.end_us]):
                if i not in ids:
                    ids[i] = len(segments)
                    segments.append((len(segments), customer, bounds[i], bounds[i + 1]))
                members[window].append(ids[i])
    return segments, members


def measure(
    engine: Engine, meter: Meter, windows: Sequence[Window], bands: tuple[Decimal, ...] = ()
) -> dict[Window, Usage]:
    """The meter's aggregate per window; every requested window is in the result.

    ``bands`` (sorted thresholds ``t1 < t2 < ...``) add ``Usage.bands``: per band
    ``(previous, upper]`` (the last one open) the count and exact total of the
    events' values. Events lacking the value property (or whose value is not a
    number, for sum, max and latest) count in ``events`` but not in the quantity.
    """
    wanted = sorted({w for w in windows if w.end_us > w.start_us}, key=_order)
    dialect = _Dialect(engine.dialect.name)
    where = _filters(dialect, meter)
    result: dict[Window, Usage] = {}
    with engine.connect() as conn:
        if meter.aggregation == "unique_count":
            # distinct counts do not add up across segments: join the windows themselves
            rows = [(i, w.customer, w.start_us, w.end_us) for i, w in enumerate(wanted)]
            parts = _measure_groups(conn, dialect, meter, rows, where, bands)
            for i, window in enumerate(wanted):
                result[window] = _usage(
                    meter, [parts[0].get(i, _Partial())], bands, [parts[1].get(i, {})]
                )
        else:
            segments, members = _segments(wanted)
            parts = _measure_groups(conn, dialect, meter, segments, where, bands)
            for window in wanted:
                ids = members[window]
                result[window] = _usage(
                    meter,
                    [parts[0].get(s, _Partial()) for s in ids],
                    bands,
                    [parts[1].get(s, {}) for s in ids],
                )
    empty = _usage(meter, [], bands, [])
    return {w: result.get(w, empty) for w in windows}


def _measure_groups(
    conn: sa.Connection,
    dialect: _Dialect,
    meter: Meter,
    rows: Sequence[tuple[int, str, int, int]],
    where: Sequence[ColumnElement[bool]],
    bands: tuple[Decimal, ...],
) -> tuple[dict[int, _Partial], dict[int, dict[int, tuple[int, int, int]]]]:
    """One aggregate statement (and one for bands) over all groups
    ``(sid, customer, start_us, end_us)``."""
    partials: dict[int, _Partial] = {}
    band_parts: dict[int, dict[int, tuple[int, int, int]]] = defaultdict(dict)
    if not rows:
        return partials, band_parts
    groups = _bound_groups(rows) if dialect.pg and meter.aggregation != "unique_count" else None
    if groups is not None:
        for bounds, customers, sid_of in groups:
            edges = sa.literal(list(bounds), postgresql.ARRAY(sa.BigInteger))
            bucket = sa.func.width_bucket(events.c.time_us, edges, type_=sa.Integer)
            keys = [events.c.customer, bucket]
            names = sa.literal(customers, postgresql.ARRAY(sa.String))
            scope = [
                *where,
                events.c.customer == sa.any_(names),
                events.c.time_us >= bounds[0],
                events.c.time_us < bounds[-1],
            ]
            if meter.aggregation in ("count", "sum", "max"):
                found = _bucket_partials(conn, dialect, meter, bucket, len(bounds) - 1, scope)
                for (customer, number), part in found:
                    if (sid := sid_of.get((customer, number))) is not None:
                        partials[sid] = part
            else:
                for key, part in _partials(
                    conn,
                    dialect,
                    lambda split, keys=keys, scope=scope: _partials_select(
                        dialect, meter, events, keys, scope, split=split
                    ),
                ):
                    if (sid := sid_of.get((key[0], int(key[1])))) is not None:
                        partials[sid] = part
            if bands and meter.value:
                for key, part in _partials(
                    conn,
                    dialect,
                    lambda split, keys=keys, scope=scope: _bands_select(
                        dialect, meter, events, keys, scope, bands, split=split
                    ),
                ):
                    if (sid := sid_of.get((key[0], int(key[1])))) is not None:
                        band_parts[sid][int(key[2])] = (part.events, part.units, part.nanos)
        return partials, band_parts
    with _window_table(conn, dialect, rows) as w:
        source = _join_windows(w)
        for key, part in _partials(
            conn,
            dialect,
            lambda split: _partials_select(dialect, meter, source, [w.c.sid], where, split=split),
        ):
            partials[int(key[0])] = part
        if bands and meter.value:
            for key, part in _partials(
                conn,
                dialect,
                lambda split: _bands_select(
                    dialect, meter, source, [w.c.sid], where, bands, split=split
                ),
            ):
                band_parts[int(key[0])][int(key[1])] = (part.events, part.units, part.nanos)
    return partials, band_parts


#: PostgreSQL: at most this many distinct sets of segment bounds are measured by time bucket.
_BOUND_GROUPS = 8


def _bound_groups(
    rows: Sequence[tuple[int, str, int, int]],
) -> list[tuple[tuple[int, ...], list[str], dict[tuple[str, int], int]]] | None:
    """Customers whose segments share their bounds (the usual case: one billing calendar),
    as ``(bounds, customers, {(customer, bucket): sid})``; None when there are too many sets.

    Such a group is measured without the windows table: one scan of the events in
    ``[bounds[0], bounds[-1])`` of those customers, grouped by customer and
    ``width_bucket(time_us, bounds)`` (bucket ``i``: ``bounds[i-1] <= time_us < bounds[i]``),
    the shape of a plain ``GROUP BY``. (A join to thousands of windows costs PostgreSQL
    three to four times as much.)

    >>> _bound_groups([(0, "a", 10, 20), (1, "a", 20, 30), (2, "b", 10, 20), (3, "b", 20, 30)])
    [((10, 20, 30), ['a', 'b'], {('a', 1): 0, ('a', 2): 1, ('b', 1): 2, ('b', 2): 3})]
    """
    by_customer: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for sid, customer, start, end in rows:
        by_customer[customer].append((start, end, sid))
    groups: dict[tuple[int, ...], tuple[list[str], dict[tuple[str, int], int]]] = {}
    for customer, segments in by_customer.items():
        bounds = tuple(sorted({b for start, end, _ in segments for b in (start, end)}))
        if bounds not in groups:
            if len(groups) == _BOUND_GROUPS:
                return None
            groups[bounds] = ([], {})
        customers, sid_of = groups[bounds]
        customers.append(customer)
        index = {b: i for i, b in enumerate(bounds)}
        for start, _, sid in segments:
            sid_of[(customer, index[start] + 1)] = sid
    return [(bounds, customers, sid_of) for bounds, (customers, sid_of) in groups.items()]


def _bucket_partials(
    conn: sa.Connection,
    dialect: _Dialect,
    meter: Meter,
    bucket: ColumnElement[Any],
    buckets: int,
    where: Sequence[ColumnElement[bool]],
) -> list[tuple[tuple[str, int], _Partial]]:
    """count, sum and max per customer and time bucket (PostgreSQL), grouped by customer
    alone with one ``FILTER`` per bucket: the plan of a plain ``GROUP BY customer``
    (a hash aggregate over the customers), where grouping by the bucket too makes
    PostgreSQL sort."""
    cols: list[ColumnElement[Any]] = [events.c.customer.label("c"), bucket.label("b")]
    agg = meter.aggregation
    if agg == "sum" and meter.value:
        # the typed units summed as bigint (PostgreSQL adds them in 128 bits, exactly), the
        # others (read from the numbers JSON) as numeric: per row no cast to numeric
        u, n = dialect.pair(meter.value)
        typed = events.c.q_name == sa.literal(meter.value, sa.Text)
        cols += [
            sa.case((typed, events.c.q_units)).label("t"),
            sa.case((typed, None), else_=u).label("u"),
            n.label("n"),
        ]
    elif agg == "max" and meter.value:
        u, n = dialect.pair(meter.value)
        cols += [u.label("u"), n.label("n")]
    m = sa.select(*cols).where(*where).subquery("m")
    out: list[ColumnElement[Any]] = [m.c.c]
    for i in range(1, buckets + 1):
        inside = m.c.b == i
        out.append(sa.func.count().filter(inside))
        if agg == "sum" and "u" in m.c:
            out += [
                (
                    sa.func.coalesce(sa.func.sum(m.c.t).filter(inside), 0)
                    + sa.func.coalesce(sa.func.sum(m.c.u).filter(inside), 0)
                ),
                sa.func.sum(m.c.n).filter(inside),
            ]
        elif "u" in m.c:
            out.append(dialect.max_key(m.c.u, m.c.n).filter(inside))
    width = (len(out) - 1) // buckets
    found: list[tuple[tuple[str, int], _Partial]] = []
    for row in conn.execute(sa.select(*out).group_by(m.c.c)):
        for i in range(buckets):
            at = 1 + i * width
            if not row[at]:
                continue
            if width == 3:
                part = _Partial(
                    events=int(row[at]), units=int(row[at + 1] or 0), nanos=int(row[at + 2] or 0)
                )
            elif width == 2:
                part = _Partial(events=int(row[at]), top=dialect.read_max(row[at + 1]))
            else:
                part = _Partial(events=int(row[at]))
            found.append(((row[0], i + 1), part))
    return found


def _day_expression(start: date, end: date, tz: ZoneInfo) -> ColumnElement[Any]:
    """Local day number (days since 1970-01-01) of ``time_us``, for events in ``[start, end)``.

    Runs of 24-hour days share one UTC offset, so their day is ``(time_us +
    offset) / DAY``; a 23- or 25-hour day (a DST change) is a constant.
    """
    branches: list[tuple[int, int | None, int]] = []  # (until_us, offset or None, constant day)
    day = start
    lower = cut_off_us(day, tz)
    while day < end:
        upper = cut_off_us(day + timedelta(days=1), tz)
        number = (day - _EPOCH_DAY).days
        if upper - lower == DAY_US:
            offset = number * DAY_US - lower
            if branches and branches[-1][1] == offset:
                branches[-1] = (upper, offset, 0)
            else:
                branches.append((upper, offset, 0))
        else:
            branches.append((upper, None, number))
        day, lower = day + timedelta(days=1), upper

    def value(offset: int | None, constant: int) -> ColumnElement[Any]:
        if offset is None:
            return sa.literal(constant, sa.BigInteger)
        shifted = events.c.time_us + sa.literal(offset, sa.BigInteger)
        # floor division, exact for times before 1970 too (SQL '/' truncates toward zero)
        floor = shifted - _mod(_mod(shifted, DAY_US) + sa.literal_column(str(DAY_US)), DAY_US)
        return _div(floor, DAY_US)

    if len(branches) == 1:
        return value(branches[0][1], branches[0][2])
    return sa.case(
        *(
            (events.c.time_us < until, value(offset, constant))
            for until, offset, constant in branches[:-1]
        ),
        else_=value(branches[-1][1], branches[-1][2]),
    )


def daily_usage(
    engine: Engine,
    meter: Meter,
    *,
    start: date,
    end: date,
    tz: ZoneInfo,
    customers: Collection[str] | None = None,
) -> list[DailyUsage]:
    """Per customer per local day in ``[start, end)``: the meter's aggregate, days with events only.

    Sorted by ``(customer, day)``. Days are the workspace timezone's: a day is
    ``[cut_off_us(day), cut_off_us(day + 1))``, 23 or 25 hours on DST changes.
    """
    if end <= start:
        return []
    dialect = _Dialect(engine.dialect.name)
    lo, hi = cut_off_us(start, tz), cut_off_us(end, tz)
    day = _day_expression(start, end, tz)
    base = [*_filters(dialect, meter), events.c.time_us >= lo, events.c.time_us < hi]
    groups: list[list[str] | None] = [None]
    wanted: set[str] | None = None
    if customers is not None:
        names = sorted(set(customers))
        if len(names) <= CHUNK:
            groups = [names] if names else []
        else:
            # one pass over the window, the other customers' rows dropped here: a query per
            # chunk of names reads the window's events once per chunk (100,000 customers, 20
            # chunks a meter: the invoice gate's gaps and spikes took most of an hour on
            # PostgreSQL)
            wanted = set(names)
    out: list[DailyUsage] = []
    with engine.connect() as conn:
        for names_chunk in groups:
            where = base if names_chunk is None else [*base, events.c.customer.in_(names_chunk)]
            for key, part in _partials(
                conn,
                dialect,
                lambda split, where=where: _partials_select(
                    dialect, meter, events, [events.c.customer, day], where, split=split
                ),
            ):
                if wanted is not None and key[0] not in wanted:
                    continue
                out.append(
                    DailyUsage(
                        customer=key[0],
                        day=_EPOCH_DAY + timedelta(days=int(key[1])),
                        usage=_usage(meter, [part], (), []),
                    )
                )
    out.sort(key=lambda d: (d.customer, d.day))
    return out


def accrual_window(customer: str, start: date, through: date, tz: ZoneInfo) -> Window:
    """The events of a cycle that started on ``start``, through the accrual point ``through``
    (inclusive): what an accrual's ``evidence`` digest covers."""
    return Window(customer, cut_off_us(start, tz), cut_off_us(through + timedelta(days=1), tz))


def evidence_digest(by_meter: Iterable[tuple[str, Evidence]]) -> str:
    """The ``evidence`` metadata of an accrual point: sha256 (16 hex digits) over the lines
    ``f"{meter}\t{events}\t{digest}\n"`` of its meters in name order, each meter's
    :class:`Evidence` over :func:`accrual_window`. The one definition the books and
    ``meterbook trace`` share."""
    digest = hashlib.sha256()
    for meter, ev in sorted(by_meter, key=lambda pair: pair[0]):
        digest.update(f"{meter}\t{ev.events}\t{ev.digest}\n".encode())
    return digest.hexdigest()[:16]


def evidence(engine: Engine, meter: Meter, window: Window) -> Evidence:
    """The matching events' count, first and last time, and digest (see :class:`Evidence`).

    Streams ids and payload hashes in ``(source, event_id)`` byte order; nothing is aggregated here.
    """
    dialect = _Dialect(engine.dialect.name)
    query = (
        sa.select(events.c.source, events.c.event_id, events.c.payload_hash, events.c.time_us)
        .where(
            *_filters(dialect, meter),
            events.c.customer == window.customer,
            events.c.time_us >= window.start_us,
            events.c.time_us < window.end_us,
        )
        .order_by(dialect.byte_order(events.c.source), dialect.byte_order(events.c.event_id))
    )
    digest = hashlib.sha256()
    count = 0
    first: int | None = None
    last: int | None = None
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
        for source, event_id, payload_hash, time_us in result:
            digest.update(f"{source}\t{event_id}\t{payload_hash}\n".encode())
            count += 1
            first = time_us if first is None else min(first, time_us)
            last = time_us if last is None else max(last, time_us)
    return Evidence(events=count, first_us=first, last_us=last, digest=digest.hexdigest())
