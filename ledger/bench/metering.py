"""Metering (and rating) throughput on SQLite: 10,000 customers × 3 meters over 10M events.

    $ python -m ledger.bench metering --db /tmp/metering-10m.sqlite      # 2 cores
    store: 10,000,000 events, 10,000 customers (generated in 134.2 s, 2980 MB)
    metering calls    (count) 30,000 windows in 1.43 s
    metering tokens   (sum  ) 30,000 windows in 3.53 s
    metering storage  (max  ) 30,000 windows in 8.17 s
    metering total: 13.13 s = 761,773 events/s, peak RSS 104 MB
    rating through 2026-10-31: 10,000 cycle points in 12.97 s
    metering + rating: 26.09 s, peak RSS 261 MB

Per customer and meter, metering measures one monthly cycle ``[Oct 1, Nov 1)``
and two accrual-point windows ``[Oct 1, Oct 11)`` and ``[Oct 1, Oct 21)`` —
the cumulative windows rating asks for. Rating then prices the October cycle of
every customer (graduated calls, unit-priced tokens and storage) through the
real :func:`ledger.rating.rate` with the first-party pricing plugins.

The store is generated in a child process (raw ``sqlite3`` executemany of rows
built like :meth:`ledger.events.Event.row`, index built afterwards), so peak
RSS is the metering process's own. ``--db`` keeps the store for the next run.

PostgreSQL (``--database-url URL``): the store is schema ``meterbook_bench_metering``,
filled with ``COPY`` as ingest leaves it (keys, typed quantity, the month's
partition), ``--keep`` keeps it. Each meter is measured through :func:`measure` and,
in the same run, as a plain ``GROUP BY customer`` over the same rows (the month's
events of the meter's type, native integer columns, no windows); the time metering
spends in the database is printed apart from its Python (windows, segments, Decimal)::

    $ python -m ledger.bench metering --database-url postgresql+psycopg://… \\
        --events 3000000 --customers 3000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ledger.events import to_us
from ledger.metering import Window, cut_off_us, measure
from ledger.rules import Meter
from ledger.store import open_store

CUSTOMERS = 10_000
MONTH_START = date(2026, 10, 1)
MONTH_END = date(2026, 11, 1)
METERS = (
    Meter(id="calls", event_type="api.request", aggregation="count"),
    Meter(id="tokens", event_type="llm.completion", aggregation="sum", value="tokens"),
    Meter(id="storage", event_type="storage.snapshot", aggregation="max", value="gb"),
)


def _rows(count: int, customers: int, seed: int) -> Iterator[tuple[object, ...]]:
    """Events in time order over October, random customers, the three types in turn."""
    rng = random.Random(seed)
    start = to_us(datetime(2026, 10, 1, tzinfo=UTC))
    step = (to_us(datetime(2026, 11, 1, tzinfo=UTC)) - start) // max(count, 1)
    for i in range(count):
        customer = f"cus-{rng.randrange(customers):05d}"
        time_us = start + i * step
        kind = i % 3
        if kind == 0:
            type_, props, numbers = "api.request", '{"endpoint":"/v1/items"}', "{}"
            payload_props = props
        elif kind == 1:
            tokens = rng.randrange(1, 5000)
            type_ = "llm.completion"
            props = f'{{"region":"eu","tokens":"{tokens}"}}'
            numbers = f'{{"tokens":[{tokens},0]}}'
            payload_props = props
        else:
            gb = f"{rng.randrange(0, 100_000)}.{rng.randrange(0, 100):02d}"
            units, _, frac = gb.partition(".")
            type_ = "storage.snapshot"
            props = f'{{"gb":"{gb}"}}'
            numbers = f'{{"gb":[{units},{int(frac) * 10_000_000}]}}'
            payload_props = props
        event_id = f"evt-{i:010d}"
        payload = (
            f'{{"customer":"{customer}","id":"{event_id}","properties":{payload_props},'
            f'"source":"bench","time_us":{time_us},"type":"{type_}"}}'
        )
        yield (
            "bench",
            event_id,
            customer,
            type_,
            time_us,
            props,
            numbers,
            hashlib.sha256(payload.encode()).hexdigest(),
        )


def generate(path: Path, count: int, customers: int, seed: int = 1) -> None:
    """Create the store (schema from :func:`ledger.store.open_store`) and fill it fast."""
    open_store(f"sqlite:///{path}").dispose()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(
        "INSERT INTO batches (file, sha256, importer, started_at, received, accepted, duplicates, "
        "conflicts, rejected, reasons) "
        "VALUES ('bench', '', 'bench', '2026-11-01T00:00:00Z', ?, ?, 0, 0, 0, '{}')",
        (count, count),
    )
    # building the secondary indexes once at the end is much faster than maintaining them
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
        "AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        db.execute(f'DROP INDEX "{name}"')
    rows = _rows(count, customers, seed)
    batch = 200_000
    while True:
        chunk = [(*row, 1) for _, row in zip(range(batch), rows, strict=False)]
        if not chunk:
            break
        db.executemany(
            "INSERT INTO events (source, event_id, customer, type, time_us, properties, numbers, "
            "payload_hash, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            chunk,
        )
        db.commit()
    for _name, sql in indexes:
        db.execute(sql)
    db.execute("ANALYZE")
    db.commit()
    db.close()


#: PostgreSQL mode: the plain ``GROUP BY`` each meter is compared with: the same rows
#: (the month's events of the meter's type), native integer columns, no windows.
BASELINE = {
    "count": "SELECT customer, count(*) FROM events WHERE type = %(type)s AND time_us >= %(start)s "
    "AND time_us < %(end)s GROUP BY customer",
    "sum": "SELECT customer, count(*), sum(q_units), sum(q_nanos) FROM events "
    "WHERE type = %(type)s AND time_us >= %(start)s AND time_us < %(end)s GROUP BY customer",
    "max": "SELECT customer, count(*), max(ARRAY[q_units, q_nanos]) FROM events "
    "WHERE type = %(type)s AND time_us >= %(start)s AND time_us < %(end)s GROUP BY customer",
}


def generate_pg(url: str, count: int, customers: int, seed: int = 1) -> None:
    """Fill a PostgreSQL store as ingest would leave it (keys, typed quantity, October's
    partition) with ``COPY``, then ``VACUUM ANALYZE``."""
    from sqlalchemy import create_engine

    from ledger.store import ensure_partitions, typed_quantity

    engine = open_store(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE events, event_keys")
        batch = conn.exec_driver_sql(
            "INSERT INTO batches (file, sha256, importer, started_at, received, accepted, "
            "duplicates, conflicts, rejected, reasons) "
            "VALUES ('bench', '', 'bench', '2026-11-01T00:00:00Z', %(n)s, %(n)s, 0, 0, 0, '{}') "
            "RETURNING id",
            {"n": count},
        ).scalar_one()
        ensure_partitions(conn, [(2026, 10)])
        cursor = conn.connection.cursor()
        with cursor.copy(  # type: ignore[attr-defined]
            "COPY events (source, event_id, customer, type, time_us, properties, numbers, "
            "payload_hash, batch_id, q_name, q_units, q_nanos) FROM STDIN"
        ) as copy:
            for row in _rows(count, customers, seed):
                q = typed_quantity(str(row[6]))
                copy.write_row((*row, batch, q["q_name"], q["q_units"], q["q_nanos"]))
        conn.exec_driver_sql(
            "INSERT INTO event_keys (source, event_id, payload_hash, batch_id, time_us) "
            "SELECT source, event_id, payload_hash, batch_id, time_us FROM events"
        )
        cursor.close()
    engine.dispose()
    maintenance = create_engine(url, isolation_level="AUTOCOMMIT")
    with maintenance.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE events")
        conn.exec_driver_sql("VACUUM ANALYZE event_keys")
    maintenance.dispose()


def postgres(args: argparse.Namespace) -> int:
    """PostgreSQL mode: each meter through :func:`measure` and as a plain ``GROUP BY`` over
    the same rows, alternating, the best of ``--repeat`` each."""
    from sqlalchemy import create_engine

    schema = "meterbook_bench_metering"
    admin = create_engine(args.database_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    admin.dispose()
    url = (
        f"{args.database_url}{'&' if '?' in args.database_url else '?'}"
        f"options=-csearch_path%3D{schema}"
    )
    engine = open_store(url)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    made = "reused"
    if stored != args.events:
        begin = time.perf_counter()
        generate_pg(url, args.events, args.customers)
        made = f"generated in {time.perf_counter() - begin:.1f} s"
        stored = args.events
    print(f"PostgreSQL store: {stored:,} events, {args.customers:,} customers ({made})")
    tz = ZoneInfo("UTC")
    start, end = cut_off_us(MONTH_START, tz), cut_off_us(MONTH_END, tz)
    windows = [
        Window(f"cus-{i:05d}", start, cut_off_us(day, tz))
        for i in range(args.customers)
        for day in (date(2026, 10, 11), date(2026, 10, 21), MONTH_END)
    ]
    from sqlalchemy import event

    ours: dict[str, float] = {}
    ours_sql: dict[str, float] = {}
    plain: dict[str, float] = {}
    in_sql = [
        0.0,
        0.0,
    ]  # seconds spent in the database (execute + fetch), start of the current statement

    def before(*_: object) -> None:
        in_sql[1] = time.perf_counter()

    def after(*_: object) -> None:
        in_sql[0] += time.perf_counter() - in_sql[1]

    for _ in range(args.repeat):
        for meter in METERS:
            in_sql[0] = 0.0
            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            begin = time.perf_counter()
            result = measure(engine, meter, windows)
            seconds = time.perf_counter() - begin
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
            ours[meter.id] = min(ours.get(meter.id, seconds), seconds)
            ours_sql[meter.id] = min(ours_sql.get(meter.id, in_sql[0]), in_sql[0])
            assert len(result) == len(windows)
            begin = time.perf_counter()
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    BASELINE[meter.aggregation],
                    {"type": meter.event_type, "start": start, "end": end},
                ).all()
            base = time.perf_counter() - begin
            plain[meter.id] = min(plain.get(meter.id, base), base)
            total = sum(r[1] for r in rows)
            assert total == sum(
                result[Window(c, start, end)].events for c in {w.customer for w in windows}
            )
            print(
                f"metering {meter.id:<8} ({meter.aggregation:<5}) "
                f"{len(windows):,} windows in {seconds:.2f} s (its SQL {in_sql[0]:.2f} s); "
                f"plain GROUP BY of the same {total:,} rows {base:.2f} s"
            )
    a, b, q = sum(ours.values()), sum(plain.values()), sum(ours_sql.values())
    print(
        f"best of {args.repeat}: metering {a:.2f} s = {stored / a:,.0f} events/s "
        f"(its SQL {q:.2f} s), plain GROUP BY {b:.2f} s"
    )
    print(f"ratio metering / GROUP BY: {a / b:.2f}x (SQL alone: {q / b:.2f}x)")
    if not args.keep:
        engine.dispose()
        admin = create_engine(args.database_url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
    return 0


def _rules_dir(directory: Path, customers: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meters.yaml").write_text(
        "meters:\n"
        "  calls: {event_type: api.request, aggregation: count}\n"
        "  tokens: {event_type: llm.completion, aggregation: sum, value: tokens}\n"
        "  storage: {event_type: storage.snapshot, aggregation: max, value: gb}\n"
    )
    (directory / "plans.yaml").write_text(
        "plans:\n"
        "  pro:\n"
        "    currency: USD\n"
        "    charges:\n"
        "      - meter: calls\n"
        "        model: graduated\n"
        "        tiers: [{up_to: 100, unit_price: '0'}, {unit_price: '0.0010'}]\n"
        "      - {meter: tokens, model: unit, unit_price: '0.000002'}\n"
        "      - {meter: storage, model: unit, unit_price: '0.10'}\n"
    )
    (directory / "customers.yaml").write_text(
        "customers:\n"
        + "".join(
            f"  cus-{i:05d}: "
            "{currency: USD, billing_anchor: calendar, "
            "subscriptions: [{plan: pro, start: 2026-10-01}]}\n"
            for i in range(customers)
        )
    )
    return directory


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench metering", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument(
        "--db", type=Path, help="store file to reuse or create (default: a temporary one)"
    )
    parser.add_argument("--no-rating", action="store_true", help="time metering only")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--database-url",
        help="PostgreSQL mode: a SQLAlchemy URL (postgresql+psycopg://…); "
        "the store is schema meterbook_bench_metering",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="PostgreSQL mode: alternating runs, the best counts"
    )
    parser.add_argument(
        "--keep", action="store_true", help="PostgreSQL mode: keep the store for the next run"
    )
    args = parser.parse_args(argv)
    if args.database_url:
        return postgres(args)

    with tempfile.TemporaryDirectory(prefix="meterbook-bench-") as tmp:
        path = args.db or Path(tmp) / "events.sqlite"
        if args.generate_only:
            generate(path, args.events, args.customers)
            return 0
        if not path.exists():
            begin = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ledger.bench",
                    "metering",
                    "--generate-only",
                    "--db",
                    str(path),
                    "--events",
                    str(args.events),
                    "--customers",
                    str(args.customers),
                ],
                check=True,
            )
            made = f"generated in {time.perf_counter() - begin:.1f} s, "
        else:
            made = "reused, "
        engine = open_store(f"sqlite:///{path}")
        with sqlite3.connect(path) as db:
            stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
        print(
            f"store: {stored:,} events, {args.customers:,} customers "
            f"({made}{os.path.getsize(path) / 2**20:.0f} MB)"
        )

        tz = ZoneInfo("UTC")
        start = cut_off_us(MONTH_START, tz)
        windows = [
            Window(f"cus-{i:05d}", start, cut_off_us(end, tz))
            for i in range(args.customers)
            for end in (date(2026, 10, 11), date(2026, 10, 21), MONTH_END)
        ]
        total = 0.0
        for meter in METERS:
            begin = time.perf_counter()
            result = measure(engine, meter, windows)
            seconds = time.perf_counter() - begin
            total += seconds
            assert len(result) == len(windows)
            print(
                f"metering {meter.id:<8} ({meter.aggregation:<5}) "
                f"{len(windows):,} windows in {seconds:.2f} s"
            )
        print(
            f"metering total: {total:.2f} s = {stored / total:,.0f} events/s, "
            f"peak RSS {_rss_mb():.0f} MB"
        )

        if not args.no_rating:
            from ledger.rating import rate
            from ledger.registry import load_registry
            from ledger.rules import load_rules

            rules = load_rules(
                _rules_dir(Path(tmp) / "rules", args.customers), load_registry().pricing_models
            )
            models = load_registry().pricing_models
            begin = time.perf_counter()
            rating = rate(engine, rules, models, tz, through=date(2026, 10, 31))
            seconds = time.perf_counter() - begin
            print(
                f"rating through 2026-10-31: {len(rating.cycles):,} cycle points in {seconds:.2f} s"
            )
            total += seconds
            print(f"metering + rating: {total:.2f} s, peak RSS {_rss_mb():.0f} MB")
        engine.dispose()
    return 0
