"""Ingest throughput: meterbook's CSV ingest vs. what the database alone does with the same file.

    $ python -m ledger.bench ingest --events 1000000 --repeat 3 --both        # SQLite
    ...
    ratio meterbook (in one process) / executemany baseline: 2.14x wall, 2.06x CPU; speed relative
    to SQLite's own INSERT ... SELECT: 0.29 wall, 0.30 CPU
    $ python -m ledger.bench ingest --events 1000000 --repeat 3 \\
        --database-url postgresql+psycopg://…
    ...
    ratio meterbook / psql \\copy: 3.39x wall, 4.82x CPU (all processes, backends included)

(2 cores busy with other work, load average 6 to 9: see the manual's Benchmarks.)

SQLite: each run imports the file into an empty store, then (same run, alternating)
the **baseline** reads the same file with :mod:`csv` and inserts the raw cells with
``executemany`` into an empty store made by :func:`ledger.store.open_store` (same
table, unique key, every index, same ``ON CONFLICT`` clause, the store's pragmas, a
``batches`` row for the foreign key) in one transaction: what any ingest of this file
into this table must at least cost. It stores the cells as they are (shorter than
meterbook's canonical JSON and hash), so it is if anything optimistic. **SQLite
alone** copies meterbook's stored rows into another empty store with one ``INSERT
... SELECT``: the floor Python cannot go below. ``--both`` alternates the parser
process and one process; ``--serial`` runs one process only.

PostgreSQL (``--database-url``): meterbook's ingest into a fresh store (schema
``meterbook_bench_ingest``), alternating with psql's ``\\copy`` of the same CSV into
a table of the file's columns with a unique key on ``(source, id)`` and an index on
``(type, customer, time)`` (schema ``meterbook_bench_copy``), in one transaction.

Each run prints wall and CPU seconds: this process (inserting), the parser process
(reading and judging), and on PostgreSQL the server backend's CPU (read from
``/proc`` when the server runs on this machine), for psql too; on a shared machine
the CPU ratios move much less than the wall ones. Peak RSS is ``ru_maxrss`` of each
process (the parser's includes the pages it shares with its parent). The best of
``--repeat`` runs counts.
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

from ledger import ingest
from ledger.ingest import default_importers, ingest_file, select_importer
from ledger.rules import load_rules
from ledger.store import SQLITE_PRAGMAS, open_store

CUSTOMERS = 200
METERS = """meters:
  api_calls: {event_type: api.request, aggregation: count}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens}
"""
PLANS = "plans:\n  basic: {currency: USD, charges: []}\n"
INSERT = (
    "INSERT INTO events (source, event_id, customer, type, time_us, properties, numbers, "
    "payload_hash, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (source, event_id) DO NOTHING"
)


def write_rules(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meters.yaml").write_text(METERS)
    (directory / "plans.yaml").write_text(PLANS)
    customers = "customers:\n" + "".join(
        f"  cus-{i:04d}: {{currency: USD}}\n" for i in range(CUSTOMERS)
    )
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
                out.writerow(
                    [
                        f"evt-{i:09d}",
                        "api",
                        customer,
                        "api.request",
                        when,
                        "",
                        rng.choice(("eu", "us")),
                    ]
                )
            else:
                out.writerow(
                    [
                        f"evt-{i:09d}",
                        "llm",
                        customer,
                        "llm.completion",
                        when,
                        rng.randrange(1, 5000),
                        rng.choice(("eu", "us")),
                    ]
                )


def _fresh(db: Path) -> None:
    """An empty store at ``db``: meterbook's schema, every migration and index."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    open_store(f"sqlite:///{db}").dispose()


def _connect(db: Path) -> sqlite3.Connection:
    """A plain ``sqlite3`` connection with the store's pragmas and a ``batches`` row 1."""
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    conn.execute(
        "INSERT INTO batches (id, file, sha256, importer, started_at, received, accepted, "
        "duplicates, conflicts, rejected, reasons) "
        "VALUES (1, 'bench', '', 'bench', '', 0, 0, 0, 0, 0, '{}')"
    )
    return conn


def baseline(path: Path, db: Path, chunk: int = 25_000) -> float:
    """Plain csv + sqlite3 executemany into the same table (same indexes, pragmas); seconds
    taken."""
    _fresh(db)
    begin = time.perf_counter()
    conn = _connect(db)
    conn.execute("BEGIN IMMEDIATE")
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        rows = []
        for r in reader:
            rows.append((r[1], r[0], r[2], r[3], r[4], r[5], r[6], r[0]))
            if len(rows) >= chunk:
                conn.executemany(INSERT, rows)
                rows = []
        conn.executemany(INSERT, rows)
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - begin


def floor(source: Path, db: Path) -> float:
    """SQLite alone: copy meterbook's stored rows into an empty store with one
    ``INSERT ... SELECT`` (no Python per row); seconds taken."""
    _fresh(db)
    begin = time.perf_counter()
    conn = _connect(db)
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO main.events (source, event_id, customer, type, time_us, properties, numbers, "
        "payload_hash, batch_id) "
        "SELECT source, event_id, customer, type, time_us, properties, numbers, payload_hash, 1 "
        "FROM src.events ORDER BY pk ON CONFLICT (source, event_id) DO NOTHING"
    )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - begin


#: The table psql's ``\\copy`` loads in PostgreSQL mode: the file's own columns (as text), with
#: what ingest's tables keep per event besides: a unique key on (source, id) and the metering
#: index (type, customer, time); one table (not partitioned: the file spans one month).
COPY_TABLE = """
CREATE TABLE bench_copy (id TEXT NOT NULL, source TEXT NOT NULL, customer TEXT NOT NULL,
                         type TEXT NOT NULL, time TIMESTAMPTZ NOT NULL, tokens TEXT, region TEXT);
ALTER TABLE bench_copy ADD PRIMARY KEY (source, id);
CREATE INDEX bench_copy_metering ON bench_copy (type, customer, time);
"""


def _schema_url(url: str, schema: str) -> str:
    """``url`` with its search_path set to ``schema`` (as the tests do)."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def pg_env(url: str, schema: str) -> dict[str, str]:
    """The environment for ``psql`` on the database of ``url``, its search path ``schema``."""
    import os

    from sqlalchemy import make_url

    u = make_url(url)
    env = {
        **os.environ,
        "PGOPTIONS": f"-csearch_path={schema}",
        "PGHOST": u.host or "localhost",
        "PGPORT": str(u.port or 5432),
        "PGUSER": u.username or "postgres",
        "PGDATABASE": u.database or "",
    }
    if u.password:
        env["PGPASSWORD"] = u.password
    return env


def fresh_schema(url: str, schema: str) -> None:
    """Drop ``schema`` with all it holds and create it again, empty."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()


def backend_cpu(pid: int) -> float | None:
    """CPU seconds a PostgreSQL backend (a server process on this machine) has used, or None."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def psql_copy(url: str, path: Path, schema: str) -> tuple[float, float | None]:
    """psql's ``\\copy`` of the file into :data:`COPY_TABLE` (fresh) in one transaction:
    seconds, and CPU seconds of psql and its backend (None when the server is not local)."""
    import subprocess

    fresh_schema(url, schema)
    env = pg_env(url, schema)
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", COPY_TABLE], env=env, check=True)
    script = path.parent / "bench_copy.psql"
    used = path.parent / "bench_copy.cpu"
    used.unlink(missing_ok=True)
    script.write_text(
        "SELECT pg_backend_pid() AS pid \\gset\n\\setenv BACKEND_PID :pid\n"
        f"\\copy bench_copy FROM '{path}' WITH (FORMAT csv, HEADER true)\n"
        f"\\! cut -d' ' -f14,15 /proc/$BACKEND_PID/stat > {used} 2>/dev/null\n"
    )
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    begin = time.perf_counter()
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", str(script)], env=env, check=True
    )
    seconds = time.perf_counter() - begin
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu
    try:
        import os

        ticks = sum(int(t) for t in used.read_text().split())
        return seconds, cpu + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return seconds, None


def postgres(
    args: argparse.Namespace,
    csv_path: Path,
    rules: object,
    importer: object,
    now: datetime,
    parsed: str,
) -> None:
    """PostgreSQL mode: meterbook ingest and psql ``\\copy`` of the same file, alternating."""
    ours_schema, copy_schema = "meterbook_bench_ingest", "meterbook_bench_copy"
    runs: list[float] = []
    copies: list[float] = []
    our_cpu: list[float] = []
    copy_cpu: list[float] = []
    for _ in range(args.repeat):
        fresh_schema(args.database_url, ours_schema)
        engine = open_store(_schema_url(args.database_url, ours_schema))
        with engine.connect() as conn:  # the pooled connection ingest will use
            pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        server = backend_cpu(pid)
        cpu_self, cpu_children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        begin = time.perf_counter()
        report = ingest_file(engine, rules, csv_path, importer, now=now)  # type: ignore[arg-type]
        runs.append(time.perf_counter() - begin)
        cpu_self = _cpu(resource.RUSAGE_SELF) - cpu_self
        cpu_children = _cpu(resource.RUSAGE_CHILDREN) - cpu_children
        after = backend_cpu(pid)
        engine.dispose()
        assert report.accepted == args.events, report
        used = (
            f"{after - server:.1f} s" if after is not None and server is not None else "not local"
        )
        if after is not None and server is not None:
            our_cpu.append(cpu_self + cpu_children + after - server)
        print(
            f"meterbook ingest into PostgreSQL ({parsed}): "
            f"{report.accepted:,} events in {runs[-1]:.2f} s = "
            f"{args.events / runs[-1]:,.0f} events/s; "
            f"CPU {cpu_self:.1f} s inserting + {cpu_children:.1f} s parsing "
            f"+ PostgreSQL backend {used}"
        )
        if not args.no_baseline:
            seconds, cpu = psql_copy(args.database_url, csv_path, copy_schema)
            copies.append(seconds)
            if cpu is not None:
                copy_cpu.append(cpu)
            print(
                f"psql \\copy of the same file (unique key, metering index): {seconds:.2f} s = "
                f"{args.events / seconds:,.0f} events/s; CPU (psql + its backend) "
                + (f"{cpu:.1f} s" if cpu is not None else "not local")
            )
    ours = min(runs)
    print(
        f"meterbook ingest, best of {args.repeat}: {ours:.2f} s = "
        f"{args.events / ours:,.0f} events/s"
    )
    if copies:
        base = min(copies)
        print(
            f"psql \\copy, best of {args.repeat}: {base:.2f} s = {args.events / base:,.0f} events/s"
        )
        print(
            f"ratio meterbook / psql \\copy: {ours / base:.2f}x wall"
            + (
                f", {min(our_cpu) / min(copy_cpu):.2f}x CPU (all processes, backends included)"
                if our_cpu and copy_cpu
                else ""
            )
        )
    if not args.keep:
        for schema in (ours_schema, copy_schema):
            from sqlalchemy import create_engine

            engine = create_engine(args.database_url)
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            engine.dispose()


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench ingest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--serial", action="store_true", help="read and insert in one process")
    parser.add_argument(
        "--both",
        action="store_true",
        help="SQLite: alternate the parser process and one process in the same run",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each (alternating); the best counts"
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL mode: a SQLAlchemy URL (postgresql+psycopg://…); "
        "schemas meterbook_bench_ingest and meterbook_bench_copy are made",
    )
    parser.add_argument("--keep", action="store_true", help="PostgreSQL mode: keep the two schemas")
    args = parser.parse_args(argv)
    if args.serial:
        ingest.PARALLEL_MIN_BYTES = 1 << 62
    else:
        ingest.PARALLEL_WHEN_BUSY = True  # the parser process for a big file, busy machine or not
    with tempfile.TemporaryDirectory(prefix="meterbook-bench-") as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        write_rules(work / "rules")
        rules = load_rules(work / "rules")
        csv_path = work / f"events-{args.events}.csv"
        begin = time.perf_counter()
        if not csv_path.exists():
            generate(csv_path, args.events)
        size = csv_path.stat().st_size
        print(
            f"file: {args.events:,} events "
            f"({size / 1e6:.1f} MB, ready in {time.perf_counter() - begin:.1f} s)"
        )

        ours_db = work / "meterbook.sqlite"
        importer = select_importer(csv_path, default_importers())
        now = datetime(2030, 1, 1, tzinfo=UTC)
        parsed = (
            "in one process"
            if args.serial or size < ingest.PARALLEL_MIN_BYTES
            else "parser process"
        )
        if args.database_url:
            postgres(args, csv_path, rules, importer, now, parsed)
            return 0
        modes = ["parser process", "in one process"] if args.both else [parsed]
        runs: dict[str, list[float]] = {mode: [] for mode in modes}
        cpus: dict[str, list[float]] = {mode: [] for mode in modes}
        bases: list[float] = []
        floors: list[float] = []
        base_cpu: list[float] = []
        floor_cpu: list[float] = []
        for _ in range(args.repeat):
            for mode in modes:
                ingest.PARALLEL_MIN_BYTES = 1 << 62 if mode == "in one process" else 0
                ingest.PARALLEL_WHEN_BUSY = (
                    mode == "parser process"
                )  # measure it however busy the machine
                _fresh(ours_db)
                engine = open_store(f"sqlite:///{ours_db}")
                cpu_self, cpu_children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
                begin = time.perf_counter()
                report = ingest_file(engine, rules, csv_path, importer, now=now)
                runs[mode].append(time.perf_counter() - begin)
                cpu_self = _cpu(resource.RUSAGE_SELF) - cpu_self
                cpu_children = _cpu(resource.RUSAGE_CHILDREN) - cpu_children
                cpus[mode].append(cpu_self + cpu_children)
                engine.dispose()
                assert report.accepted == args.events, report
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                print(
                    f"meterbook ingest ({mode}): "
                    f"{report.accepted:,} events in {runs[mode][-1]:.2f} s = "
                    f"{args.events / runs[mode][-1]:,.0f} events/s; "
                    f"CPU {cpu_self:.1f} s inserting + {cpu_children:.1f} s parsing; "
                    f"peak RSS {rss:.0f} MB"
                    + (f" + parser {child_rss:.0f} MB" if cpu_children else "")
                )
            if not args.no_baseline:
                cpu = _cpu(resource.RUSAGE_SELF)
                bases.append(baseline(csv_path, work / "baseline.sqlite"))
                base_cpu.append(_cpu(resource.RUSAGE_SELF) - cpu)
                print(
                    "baseline (csv + sqlite3 executemany, same table, indexes and pragmas): "
                    f"{bases[-1]:.2f} s = {args.events / bases[-1]:,.0f} events/s; "
                    f"CPU {base_cpu[-1]:.1f} s"
                )
                cpu = _cpu(resource.RUSAGE_SELF)
                floors.append(floor(ours_db, work / "floor.sqlite"))
                floor_cpu.append(_cpu(resource.RUSAGE_SELF) - cpu)
                print(
                    "SQLite alone (INSERT ... SELECT of the same rows, no Python): "
                    f"{floors[-1]:.2f} s = {args.events / floors[-1]:,.0f} events/s; "
                    f"CPU {floor_cpu[-1]:.1f} s"
                )
        for mode in modes:
            ours = min(runs[mode])
            print(
                f"meterbook ingest ({mode}), best of {args.repeat}: {ours:.2f} s = "
                f"{args.events / ours:,.0f} events/s"
            )
        if bases:
            base, alone = min(bases), min(floors)
            print(
                f"baseline, best of {args.repeat}: {base:.2f} s = "
                f"{args.events / base:,.0f} events/s"
            )
            print(
                f"SQLite alone, best of {args.repeat}: {alone:.2f} s = "
                f"{args.events / alone:,.0f} events/s"
            )
            for mode in modes:
                ours = min(runs[mode])
                print(
                    f"ratio meterbook ({mode}) / executemany baseline: {ours / base:.2f}x wall, "
                    f"{min(cpus[mode]) / min(base_cpu):.2f}x CPU; speed relative to SQLite's own "
                    f"INSERT ... SELECT: {alone / ours:.2f} wall, "
                    f"{min(floor_cpu) / min(cpus[mode]):.2f} CPU"
                )
            for name in ("baseline.sqlite", "floor.sqlite"):
                _fresh(work / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
