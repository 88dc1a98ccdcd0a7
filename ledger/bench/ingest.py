"""Ingest throughput: meterbook's CSV ingest against a plain ``csv`` + ``sqlite3`` baseline.

    $ python -m ledger.bench ingest --events 1000000
    generated 1,000,000 events (74.1 MB) in 3.1 s
    meterbook ingest: 1,000,000 events in 3.52 s = 284,000 events/s, peak RSS 61 MB
    baseline (csv + sqlite3 executemany): 2.71 s = 369,000 events/s
    ratio meterbook / baseline: 1.30x

The baseline reads the same file with :mod:`csv` and inserts the rows with
``executemany`` into a table with the same columns, keys and indexes, in one
transaction, with the same pragmas — what any ingest must at least cost.
Peak RSS is ``ru_maxrss`` measured right after meterbook's ingest.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine

from ledger.ingest import default_importers, ingest_file, select_importer
from ledger.rules import load_rules
from ledger.store import events, metadata, open_store

CUSTOMERS = 200
METERS = """meters:
  api_calls: {event_type: api.request, aggregation: count}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens}
"""
PLANS = "plans:\n  basic: {currency: USD, charges: []}\n"


def write_rules(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meters.yaml").write_text(METERS)
    (directory / "plans.yaml").write_text(PLANS)
    customers = "customers:\n" + "".join(f"  cus-{i:04d}: {{currency: USD}}\n" for i in range(CUSTOMERS))
    (directory / "customers.yaml").write_text(customers)


def generate(path: Path, count: int, seed: int = 1) -> None:
    """A month of realistic events: ids, a few sources, 200 customers, two types."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    step = 30 * 86400 / max(count, 1)
    with open(path, "w", newline="", encoding="utf-8") as file:
        out = csv.writer(file)
        out.writerow(["id", "source", "customer", "type", "time", "tokens", "region"])
        for i in range(count):
            when = (start + timedelta(seconds=int(i * step))).strftime("%Y-%m-%dT%H:%M:%SZ")
            customer = f"cus-{rng.randrange(CUSTOMERS):04d}"
            if rng.random() < 0.5:
                out.writerow([f"evt-{i:09d}", "api", customer, "api.request", when, "", rng.choice(("eu", "us"))])
            else:
                out.writerow([f"evt-{i:09d}", "llm", customer, "llm.completion", when, rng.randrange(1, 5000),
                              rng.choice(("eu", "us"))])


def baseline(path: Path, db: Path, chunk: int = 25_000) -> float:
    """Plain csv + sqlite3 executemany into an equivalent table; seconds taken."""
    engine = create_engine(f"sqlite:///{db}")
    metadata.create_all(engine, tables=[events])
    engine.dispose()
    begin = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    sql = ("INSERT INTO events (source, event_id, customer, type, time_us, properties, numbers, payload_hash, "
           "batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)")
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        rows = []
        for r in reader:
            rows.append((r[1], r[0], r[2], r[3], r[4], r[5], r[6], r[0]))
            if len(rows) >= chunk:
                conn.executemany(sql, rows)
                rows = []
        conn.executemany(sql, rows)
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - begin


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.bench ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meterbook-bench-") as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        write_rules(work / "rules")
        rules = load_rules(work / "rules")
        csv_path = work / "events.csv"
        begin = time.perf_counter()
        generate(csv_path, args.events)
        size = csv_path.stat().st_size
        print(f"generated {args.events:,} events ({size / 1e6:.1f} MB) in {time.perf_counter() - begin:.1f} s")

        for name in ("meterbook.sqlite", "baseline.sqlite"):
            for suffix in ("", "-wal", "-shm"):
                (work / (name + suffix)).unlink(missing_ok=True)
        engine = open_store(f"sqlite:///{work / 'meterbook.sqlite'}")
        importer = select_importer(csv_path, default_importers())
        now = datetime(2030, 1, 1, tzinfo=UTC)
        begin = time.perf_counter()
        report = ingest_file(engine, rules, csv_path, importer, now=now)
        ours = time.perf_counter() - begin
        engine.dispose()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert report.accepted == args.events, report
        print(f"meterbook ingest: {report.accepted:,} events in {ours:.2f} s = {args.events / ours:,.0f} events/s, "
              f"peak RSS {rss_mb:.0f} MB")
        if not args.no_baseline:
            base = baseline(csv_path, work / "baseline.sqlite")
            print(f"baseline (csv + sqlite3 executemany): {base:.2f} s = {args.events / base:,.0f} events/s")
            print(f"ratio meterbook / baseline: {ours / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
