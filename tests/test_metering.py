"""Metering in SQL equals a plain-Python computation over the same events, on SQLite and
PostgreSQL."""

from __future__ import annotations

import doctest
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger.metering
from ledger.events import Event, from_us, number_of, to_us
from ledger.metering import (
    MeteringError,
    Window,
    cut_off_us,
    daily_usage,
    evidence,
    measure,
)
from ledger.money import from_units_nanos
from ledger.pricing import Band, Usage
from ledger.rules import Meter
from ledger.store import batches, events, insert_events, open_store

T0 = to_us(datetime(2026, 10, 1, tzinfo=UTC))
HOUR = 3_600_000_000


# --- helpers ---------------------------------------------------------------------------


def ev(
    customer: str,
    time_us: int,
    props: dict[str, str] | None = None,
    *,
    id: str = "",
    source: str = "app",
    type: str = "t",
) -> Event:
    return Event(
        source=source,
        id=id or f"{customer}-{time_us}-{sorted((props or {}).items())}",
        customer=customer,
        type=type,
        time_us=time_us,
        properties=dict(props or {}),
    )


def load(engine: sa.Engine, rows: Iterable[Event], *, clear: bool = True) -> None:
    """Insert events directly (ingest is tested elsewhere): one batch row, then the events."""
    with engine.begin() as conn:
        if clear:
            conn.execute(events.delete())
        batch = conn.execute(
            batches.insert().values(
                file="test", sha256="0" * 64, importer="test", started_at="2026-10-01T00:00:00Z"
            )
        ).inserted_primary_key[0]
        data = [e.row(batch) for e in rows]
        if data:
            insert_events(conn, data)


def meter(aggregation: str, value: str | None = "v", **filter: str) -> Meter:
    return Meter(
        id="m",
        event_type="t",
        aggregation=aggregation,  # type: ignore[arg-type]
        value=value if aggregation != "count" else None,
        filter=filter,
    )


def reference(
    rows: Sequence[Event], m: Meter, window: Window, bands: tuple[Decimal, ...] = ()
) -> Usage:
    """The same aggregate, computed the obvious way in Python."""
    matched = [
        e
        for e in rows
        if e.type == m.event_type
        and e.customer == window.customer
        and window.start_us <= e.time_us < window.end_us
        and all(e.properties.get(k) == v for k, v in m.filter.items())
    ]
    valued: list[tuple[Event, Decimal]] = []
    for e in matched:
        pair = number_of(e.properties[m.value]) if m.value and m.value in e.properties else None
        if pair is not None:
            valued.append((e, from_units_nanos(*pair)))
    quantity = Decimal(0)
    if m.aggregation == "count":
        quantity = Decimal(len(matched))
    elif m.aggregation == "sum":
        quantity = sum((v for _, v in valued), Decimal(0))
    elif m.aggregation == "max":
        quantity = max((v for _, v in valued), default=Decimal(0))
    elif m.aggregation == "latest" and valued:
        quantity = max(valued, key=lambda p: (p[0].time_us, p[0].source, p[0].id))[1]
    elif m.aggregation == "unique_count":
        quantity = Decimal(len({e.properties[m.value] for e in matched if m.value in e.properties}))
    out_bands: tuple[Band, ...] = ()
    if bands:
        counts = [0] * (len(bands) + 1)
        totals = [Decimal(0)] * (len(bands) + 1)
        for _, v in valued:
            i = next((i for i, t in enumerate(bands) if v <= t), len(bands))
            counts[i] += 1
            totals[i] += v
        out_bands = tuple(
            Band(upper=u, count=c, total=t)
            for u, c, t in zip((*bands, None), counts, totals, strict=True)
        )
    return Usage(quantity=quantity, events=len(matched), bands=out_bands)


@pytest.fixture
def engine(store_url: str) -> Iterable[sa.Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


# --- properties: every aggregation equals Python ----------------------------------------

values = st.one_of(
    st.decimals(
        min_value=-(10**15), max_value=10**15, places=9, allow_nan=False, allow_infinity=False
    ).map(str),
    st.integers(min_value=0, max_value=10**15).map(str),
    st.sampled_from(
        ["10", "0.1", "0.000000001", "999999999.999999999", "1000000000000000", "abc", ""]
    ),
)
event_rows = st.lists(
    st.tuples(
        st.sampled_from(["acme", "globex", "initech"]),
        st.integers(min_value=0, max_value=40),  # hours after T0: many ties
        st.sampled_from(["app", "batch", "z"]),
        st.text(alphabet="abcXY_-9é", min_size=1, max_size=4),
        st.sampled_from(["t", "t", "t", "other"]),
        st.one_of(st.none(), values),
        st.sampled_from([None, "eu", "us"]),
    ),
    max_size=60,
)
window_rows = st.lists(
    st.tuples(
        st.sampled_from(["acme", "globex", "initech", "nobody"]),
        st.integers(min_value=-2, max_value=42),
        st.integers(min_value=0, max_value=45),
    ),
    min_size=1,
    max_size=8,
)


def build(rows: Sequence[tuple[str, int, str, str, str, str | None, str | None]]) -> list[Event]:
    seen: set[tuple[str, str]] = set()
    out = []
    for customer, hour, source, id, type, value, region in rows:
        if (source, id) in seen:
            continue
        seen.add((source, id))
        props = {}
        if value is not None:
            props["v"] = value
        if region is not None:
            props["region"] = region
        out.append(
            Event(
                source=source,
                id=id,
                customer=customer,
                type=type,
                time_us=T0 + hour * HOUR,
                properties=props,
            )
        )
    return out


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=event_rows,
    spans=window_rows,
    aggregation=st.sampled_from(["count", "sum", "max", "unique_count", "latest"]),
    region=st.sampled_from([None, "eu"]),
    bands=st.sampled_from(
        [
            (),
            (Decimal("10"),),
            (Decimal("0.1"), Decimal("10"), Decimal("1000000000000000")),
            (Decimal("-5.5"), Decimal("0.0000000005")),
        ]
    ),
)
def test_measure_equals_python(
    engine: sa.Engine,
    rows: list,
    spans: list,
    aggregation: str,
    region: str | None,
    bands: tuple[Decimal, ...],
) -> None:
    stored = build(rows)
    load(engine, stored)
    m = meter(aggregation, **({"region": region} if region else {}))
    windows = [Window(c, T0 + a * HOUR, T0 + (a + length) * HOUR) for c, a, length in spans]
    got = measure(engine, m, windows, bands)
    assert set(got) == set(windows)
    for window in windows:
        assert got[window] == reference(stored, m, window, bands), window


# --- worked examples -------------------------------------------------------------------


def test_module_docstring_examples() -> None:
    result = doctest.testmod(ledger.metering)
    assert result.attempted > 0 and result.failed == 0


def test_windows_are_half_open(engine: sa.Engine) -> None:
    load(
        engine,
        [
            ev("acme", T0, {"v": "1"}),
            ev("acme", T0 + HOUR, {"v": "2"}),
            ev("acme", T0 + 2 * HOUR, {"v": "4"}),
        ],
    )
    w = Window("acme", T0, T0 + 2 * HOUR)
    got = measure(engine, meter("sum"), [w, Window("acme", T0 + 1, T0 + 2 * HOUR + 1)])
    assert got[w] == Usage(quantity=Decimal(3), events=2)
    assert got[Window("acme", T0 + 1, T0 + 2 * HOUR + 1)] == Usage(quantity=Decimal(6), events=2)


def test_empty_windows_have_zero_usage_and_zero_bands(engine: sa.Engine) -> None:
    w = Window("nobody", T0, T0 + HOUR)
    got = measure(engine, meter("max"), [w, w], (Decimal(5),))
    assert got == {
        w: Usage(
            quantity=Decimal(0),
            events=0,
            bands=(Band(Decimal(5), 0, Decimal(0)), Band(None, 0, Decimal(0))),
        )
    }


def test_filter_and_worked_example(engine: sa.Engine) -> None:
    load(
        engine,
        [
            ev("acme", T0 + 10 * HOUR, {"tokens": "1.5", "region": "eu"}),
            ev("acme", T0 + 11 * HOUR, {"tokens": "2", "region": "us"}),
            ev("acme", T0 + 12 * HOUR, {"tokens": "0.25", "region": "eu"}),
            ev("acme", T0 + 12 * HOUR + 1, {"tokens": "abc", "region": "eu"}),
        ],
    )
    tokens = Meter(
        id="tokens", event_type="t", aggregation="sum", value="tokens", filter={"region": "eu"}
    )
    a, b = (
        Window("acme", T0 + 10 * HOUR, T0 + 12 * HOUR),
        Window("acme", T0 + 10 * HOUR, T0 + 13 * HOUR),
    )
    assert measure(engine, tokens, [a, b]) == {
        a: Usage(Decimal("1.5"), 1),
        b: Usage(Decimal("1.75"), 3),
    }


def test_latest_is_independent_of_insert_order(engine: sa.Engine) -> None:
    rows = [
        ev("acme", T0 + HOUR, {"v": "1"}, id="b", source="s1"),
        ev("acme", T0 + HOUR, {"v": "2"}, id="a", source="s2"),  # same time, greater source: latest
        ev("acme", T0 + HOUR, {"v": "3"}, id="c", source="s1"),
        ev("acme", T0 + 2 * HOUR, {"v": "x"}, id="d", source="s1"),  # later, but not a number
        ev("acme", T0, {"v": "9"}, id="e", source="s9"),
    ]
    w = Window("acme", T0, T0 + 3 * HOUR)
    results = set()
    for order in (rows, rows[::-1], rows[2:] + rows[:2]):
        load(engine, order)
        results.add(measure(engine, meter("latest"), [w])[w])
    assert results == {Usage(quantity=Decimal(2), events=5)}


def test_bands_compare_exactly(engine: sa.Engine) -> None:
    load(
        engine,
        [
            ev("acme", T0 + i, {"v": v})
            for i, v in enumerate(
                ["0.999999999", "1", "1.000000001", "10", "10.5", "1000000000000000", "x"]
            )
        ],
    )
    w = Window("acme", T0, T0 + HOUR)
    got = measure(engine, meter("sum"), [w], (Decimal(1), Decimal(10)))[w]
    assert got.bands == (
        Band(Decimal(1), 2, Decimal("1.999999999")),
        Band(Decimal(10), 2, Decimal("11.000000001")),
        Band(None, 2, Decimal("1000000000000010.5")),
    )
    assert got.events == 7


def test_unique_count_counts_text(engine: sa.Engine) -> None:
    load(
        engine,
        [ev("acme", T0 + i, {"v": v}) for i, v in enumerate(["u1", "u2", "u1", "1.0", "1", ""])]
        + [ev("acme", T0 + 99, {})],
    )
    w = Window("acme", T0, T0 + HOUR)
    assert measure(engine, meter("unique_count"), [w])[w] == Usage(quantity=Decimal(5), events=7)


def test_big_sums_stay_exact(engine: sa.Engine) -> None:
    """10,000 × (10**15 − 10**-9), the largest value an input row may hold, overflows 64-bit units
    on SQLite (and the nanos carry): the split re-run keeps it exact. (A value above 10**15 is
    rejected as ``bad_number`` and never stored: tests/test_hostile_input.py.)"""
    load(engine, [ev("acme", T0 + i, {"v": "999999999999999.999999999"}) for i in range(10_000)])
    w = Window("acme", T0, T0 + HOUR)
    half = Window("acme", T0 + 5_000, T0 + HOUR)
    got = measure(engine, meter("sum"), [w, half], (Decimal(10**14),))
    assert got[w].quantity == Decimal("9999999999999999999.99999")
    assert got[half].quantity == Decimal("4999999999999999999.999995")
    assert got[w].bands[1] == Band(None, 10_000, Decimal("9999999999999999999.99999"))
    # the same day's daily usage re-runs split too (kills the re-run without the split)
    [day] = daily_usage(
        engine, meter("sum"), start=date(2026, 10, 1), end=date(2026, 10, 2), tz=ZoneInfo("UTC")
    )
    assert (day.day, day.usage) == (
        date(2026, 10, 1),
        Usage(quantity=Decimal("9999999999999999999.99999"), events=10_000),
    )


def test_odd_property_names(engine: sa.Engine) -> None:
    load(engine, [ev("acme", T0, {"a.b c'": "2", "r-1": "x"})])
    w = Window("acme", T0, T0 + 1)
    m = Meter(id="m", event_type="t", aggregation="sum", value="a.b c'", filter={"r-1": "x"})
    assert measure(engine, m, [w])[w] == Usage(Decimal(2), 1)
    with pytest.raises(MeteringError):
        measure(engine, Meter(id="m", event_type="t", aggregation="sum", value='a"b'), [w])


def test_many_windows_are_chunked(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger.metering, "CHUNK", 7)
    load(engine, [ev(f"c{i % 13}", T0 + i * 1000, {"v": str(i)}) for i in range(200)])
    stored = [ev(f"c{i % 13}", T0 + i * 1000, {"v": str(i)}) for i in range(200)]
    windows = [Window(f"c{c}", T0 + s * 10_000, T0 + 200_000) for c in range(13) for s in range(3)]
    for aggregation in ("sum", "max", "unique_count"):
        got = measure(engine, meter(aggregation), windows)
        assert got == {w: reference(stored, meter(aggregation), w) for w in windows}


# --- daily usage -----------------------------------------------------------------------


def local_day(time_us: int, tz: ZoneInfo) -> date:
    return from_us(time_us).astimezone(tz).date()


def test_daily_usage_across_dst_in_berlin(engine: sa.Engine) -> None:
    berlin = ZoneInfo("Europe/Berlin")

    def at(text: str) -> int:
        return to_us(datetime.fromisoformat(text))

    rows = [
        ev("acme", at("2026-03-28T23:30:00+01:00"), {"v": "1"}),  # Mar 28
        ev("acme", at("2026-03-29T00:00:00+01:00"), {"v": "2"}),  # Mar 29 (23-hour day) starts
        ev("acme", at("2026-03-29T23:59:59+02:00"), {"v": "4"}),  # still Mar 29
        ev("acme", at("2026-03-30T00:00:00+02:00"), {"v": "8"}),  # Mar 30
        ev("acme", at("2026-10-25T02:30:00+02:00"), {"v": "16"}),  # Oct 25, first 02:30
        ev(
            "acme", at("2026-10-25T02:30:00+01:00"), {"v": "32"}
        ),  # Oct 25, second 02:30 (25-hour day)
        ev("acme", at("2026-10-25T23:59:59+01:00"), {"v": "64"}),  # Oct 25
        ev("acme", at("2026-10-26T00:00:00+01:00"), {"v": "128"}),  # Oct 26
        ev("globex", at("2026-10-25T00:00:00+02:00"), {"v": "256"}),  # Oct 25 starts
    ]
    load(engine, rows)
    got = daily_usage(
        engine, meter("sum"), start=date(2026, 3, 1), end=date(2026, 11, 1), tz=berlin
    )
    assert [(d.customer, d.day.isoformat(), d.usage.quantity, d.usage.events) for d in got] == [
        ("acme", "2026-03-28", 1, 1),
        ("acme", "2026-03-29", 6, 2),
        ("acme", "2026-03-30", 8, 1),
        ("acme", "2026-10-25", 112, 3),
        ("acme", "2026-10-26", 128, 1),
        ("globex", "2026-10-25", 256, 1),
    ]
    only = daily_usage(
        engine,
        meter("count"),
        start=date(2026, 10, 25),
        end=date(2026, 10, 26),
        tz=berlin,
        customers=["globex"],
    )
    assert [(d.customer, d.day, d.usage) for d in only] == [
        ("globex", date(2026, 10, 25), Usage(Decimal(1), 1))
    ]


def test_daily_usage_through_a_window_that_ends_on_a_dst_day(engine: sa.Engine) -> None:
    """Berlin, Mar 28 to Oct 26 (exclusive): its days are Mar 28 (UTC+1), Mar 29 (23 hours),
    Mar 30 to Oct 24 (UTC+2) and Oct 25 (25 hours), the last. The max of ``v`` per day over
    region ``eu`` events: Mar 28 1; Mar 29 4 (2 events); Mar 30 8 (the ``us`` event of 1000 is
    filtered out); Oct 25 64 (3 events, both 02:30s among them). The event at Oct 26 00:00+01:00
    is the window's end, outside it (else Oct 25 would read 128 over 4 events). Kills the last
    day's number taken from another day or none, the filter or the dialect dropped, and ``<=``
    for the window's end."""
    berlin = ZoneInfo("Europe/Berlin")

    def at(text: str, v: str, region: str = "eu") -> Event:
        return ev("acme", to_us(datetime.fromisoformat(text)), {"v": v, "region": region})

    rows = [
        at("2026-03-28T23:30:00+01:00", "1"),
        at("2026-03-29T00:00:00+01:00", "2"),
        at("2026-03-29T23:59:59+02:00", "4"),
        at("2026-03-30T00:00:00+02:00", "8"),
        at("2026-03-30T12:00:00+02:00", "1000", region="us"),
        at("2026-10-25T02:30:00+02:00", "16"),
        at("2026-10-25T02:30:00+01:00", "32"),
        at("2026-10-25T23:59:59+01:00", "64"),
        at("2026-10-26T00:00:00+01:00", "128"),
    ]
    load(engine, rows)
    got = daily_usage(
        engine,
        meter("max", region="eu"),
        start=date(2026, 3, 28),
        end=date(2026, 10, 26),
        tz=berlin,
    )
    assert [(d.customer, d.day.isoformat(), d.usage.quantity, d.usage.events) for d in got] == [
        ("acme", "2026-03-28", 1, 1),
        ("acme", "2026-03-29", 4, 2),
        ("acme", "2026-03-30", 8, 1),
        ("acme", "2026-10-25", 64, 3),
    ]


def test_daily_usage_of_no_days_is_empty(engine: sa.Engine) -> None:
    """``[Oct 1, Oct 1)`` holds no day: no rows, even with an event at Oct 1 00:00, and no query
    built over zero days (kills ``end < start`` for ``end <= start``, which builds one and fails
    on its missing last day)."""
    load(engine, [ev("acme", T0, {"v": "1"})])
    day, utc = date(2026, 10, 1), ZoneInfo("UTC")
    assert daily_usage(engine, meter("sum"), start=day, end=day, tz=utc) == []
    assert daily_usage(engine, meter("sum"), start=day, end=day - timedelta(days=1), tz=utc) == []


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    times=st.lists(
        st.tuples(
            st.sampled_from(["acme", "globex"]), st.integers(min_value=0, max_value=400 * 24 * 3600)
        ),
        max_size=40,
    ),
    zone=st.sampled_from(ZONES),
    aggregation=st.sampled_from(["count", "sum", "max", "unique_count", "latest"]),
    first=st.integers(min_value=0, max_value=200),
    length=st.integers(min_value=1, max_value=300),
)
def test_daily_usage_equals_python(
    engine: sa.Engine, times: list, zone: str, aggregation: str, first: int, length: int
) -> None:
    tz = ZoneInfo(zone)
    base = to_us(datetime(2026, 1, 1, tzinfo=UTC))
    rows = [
        ev(c, base + s * 1_000_000 + i, {"v": str(s % 7)}, id=f"e{i}")
        for i, (c, s) in enumerate(times)
    ]
    load(engine, rows)
    start = date(2026, 1, 1) + timedelta(days=first)
    end = start + timedelta(days=length)
    m = meter(aggregation)
    got = daily_usage(engine, m, start=start, end=end, tz=tz)
    expected = []
    for customer in sorted({e.customer for e in rows}):
        days = sorted({local_day(e.time_us, tz) for e in rows if e.customer == customer})
        for day in days:
            if start <= day < end:
                window = Window(
                    customer, cut_off_us(day, tz), cut_off_us(day + timedelta(days=1), tz)
                )
                expected.append((customer, day, reference(rows, m, window)))
    assert [(d.customer, d.day, d.usage) for d in got] == expected


def test_cut_off_us() -> None:
    assert cut_off_us(date(2026, 3, 29), ZoneInfo("Europe/Berlin")) == to_us(
        datetime(2026, 3, 28, 23, tzinfo=UTC)
    )
    assert cut_off_us(date(2026, 3, 30), ZoneInfo("Europe/Berlin")) == to_us(
        datetime(2026, 3, 29, 22, tzinfo=UTC)
    )


# --- evidence --------------------------------------------------------------------------


def test_evidence_is_independent_of_insert_order(engine: sa.Engine) -> None:
    rows = [
        ev(
            "acme",
            T0 + i * 7,
            {"region": "eu" if i % 3 else "us", "v": str(i)},
            id=f"id-{i}",
            source=["b", "a", "é", "Z"][i % 4],
        )
        for i in range(50)
    ]
    rows.append(ev("globex", T0, {"region": "eu"}))
    m = meter("sum", region="eu")
    w = Window("acme", T0 + 7, T0 + 300)
    matched = sorted(
        (
            e
            for e in rows
            if e.customer == "acme"
            and w.start_us <= e.time_us < w.end_us
            and e.properties["region"] == "eu"
        ),
        key=lambda e: (e.source, e.id),
    )
    digest = hashlib.sha256(
        "".join(f"{e.source}\t{e.id}\t{e.payload_hash}\n" for e in matched).encode()
    ).hexdigest()
    expected = ledger.metering.Evidence(
        events=len(matched),
        first_us=min(e.time_us for e in matched),
        last_us=max(e.time_us for e in matched),
        digest=digest,
    )
    for order in (rows, rows[::-1]):
        load(engine, order)
        assert evidence(engine, m, w) == expected
    assert evidence(engine, m, Window("nobody", T0, T0 + 1)) == ledger.metering.Evidence(
        0, None, None, hashlib.sha256(b"").hexdigest()
    )


def test_evidence_covers_the_accrual_window_and_nothing_outside_it(engine: sa.Engine) -> None:
    """The evidence of an accrual point dated Oct 3 for a cycle started Oct 1 (Berlin, UTC+2)
    covers [Oct 1 00:00, Oct 4 00:00) local time, i.e. [Sep 30 22:00 UTC, Oct 3 22:00 UTC).

    Four events of acme: Sep 30 21:59:59.999999 UTC (one microsecond before the window), Sep 30
    22:00 UTC (its first instant), Oct 3 21:59:59.999999 UTC (its last) and Oct 3 22:00 UTC
    (the next day's first). The evidence holds the middle two: 2 events, first at the window's
    start, last one microsecond before its end, digest over ``a``/``inside-1`` and
    ``a``/``inside-2`` (kills the lower bound dropped and ``<=`` for the upper one).
    """
    berlin = ZoneInfo("Europe/Berlin")
    w = ledger.metering.accrual_window("acme", date(2026, 10, 1), date(2026, 10, 3), berlin)
    start = to_us(datetime(2026, 9, 30, 22, tzinfo=UTC))
    end = to_us(datetime(2026, 10, 3, 22, tzinfo=UTC))
    assert (w.start_us, w.end_us) == (start, end)
    rows = [
        ev("acme", start - 1, {"v": "1"}, id="before", source="a"),
        ev("acme", start, {"v": "2"}, id="inside-1", source="a"),
        ev("acme", end - 1, {"v": "4"}, id="inside-2", source="a"),
        ev("acme", end, {"v": "8"}, id="after", source="a"),
    ]
    load(engine, rows)
    inside = [e for e in rows if e.id.startswith("inside")]
    digest = hashlib.sha256(
        "".join(f"a\t{e.id}\t{e.payload_hash}\n" for e in inside).encode()
    ).hexdigest()
    assert evidence(engine, meter("sum"), w) == ledger.metering.Evidence(
        events=2, first_us=start, last_us=end - 1, digest=digest
    )


# --- exactness at scale ----------------------------------------------------------------


@pytest.mark.slow
def test_summing_a_tenth_a_million_times_gives_exactly_100000(engine: sa.Engine) -> None:
    """The foundation issue's property: 0.1 summed a million times is exactly 100000.0,
    through :func:`measure` on every store (SQLite and PostgreSQL), never 99999.99999….

    One event with ``v = 0.1`` is stored like any other (``Event.row``), then copied in SQL
    to a million, the n-th one n microseconds later.
    """
    load(engine, [ev("acme", T0, {"v": "0.1"}, id="0")])
    columns = (
        "source, event_id, customer, type, time_us, properties, numbers, payload_hash, batch_id"
    )
    copies = (
        "source, CAST(i AS TEXT), customer, type, time_us + i, properties, numbers, payload_hash, "
        "batch_id"
    )
    with engine.begin() as conn:
        assert conn.execute(sa.select(events.c.numbers)).scalar_one() == '{"v":[0,100000000]}'
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 999999) "
                f"INSERT INTO events ({columns}) SELECT {copies} FROM events, n"
            )
        else:
            conn.exec_driver_sql(
                f"INSERT INTO events ({columns}) SELECT {copies} FROM events, generate_series(1, "
                "999999) AS i"
            )
    whole, half = Window("acme", T0, T0 + 10**6), Window("acme", T0, T0 + 500_000)
    got = measure(engine, meter("sum"), [whole, half])
    assert got[whole] == Usage(quantity=Decimal("100000"), events=1_000_000)
    assert str(got[whole].quantity) == "100000"
    assert got[half] == Usage(quantity=Decimal("50000"), events=500_000)


def test_daily_usage_of_more_customers_than_a_chunk_reads_the_window_once(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More customers than ``CHUNK`` (1 here) are read in one pass over the window, the
    others' rows left out: acme's 1 + 2 on Oct 5 and globex's 4 on Oct 6 are what two customers
    of three ask for; initech's 8 on Oct 5 is not theirs. (A query per chunk read the month's
    events once per chunk: 20 a meter at 100,000 customers.) No customer asked: no rows."""
    import ledger.metering

    utc = ZoneInfo("UTC")
    load(
        engine,
        [
            ev("acme", to_us(datetime(2026, 10, 5, 9, tzinfo=UTC)), {"v": "1"}),
            ev("acme", to_us(datetime(2026, 10, 5, 10, tzinfo=UTC)), {"v": "2"}),
            ev("globex", to_us(datetime(2026, 10, 6, 9, tzinfo=UTC)), {"v": "4"}),
            ev("initech", to_us(datetime(2026, 10, 5, 9, tzinfo=UTC)), {"v": "8"}),
        ],
    )
    monkeypatch.setattr(ledger.metering, "CHUNK", 1)
    calls: list[object] = []
    real = ledger.metering._partials
    monkeypatch.setattr(
        ledger.metering, "_partials", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    got = daily_usage(
        engine,
        meter("sum"),
        start=date(2026, 10, 1),
        end=date(2026, 11, 1),
        tz=utc,
        customers=["globex", "acme"],
    )
    assert [(d.customer, d.day.isoformat(), d.usage.quantity) for d in got] == [
        ("acme", "2026-10-05", 3),
        ("globex", "2026-10-06", 4),
    ]
    assert len(calls) == 1
    none = daily_usage(
        engine, meter("sum"), start=date(2026, 10, 1), end=date(2026, 11, 1), tz=utc, customers=[]
    )
    assert none == []
