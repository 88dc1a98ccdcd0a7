"""Scale: a customer base's month-ends, run as the commands run them, phase by phase.

    $ python -m ledger.bench scale --customers 10000 --months 2 --database sqlite
    scale: 10,000 customers, 2 months from 2025-01, 9 events per customer and month, summary books, sqlite
    month    phase      wall s    CPU s  peak MB  what
    2025-01  generate     1.1      1.1       -   90,000 events → events-2025-01.csv
    2025-01  ingest       4.2      4.0     180   90,000 accepted
    2025-01  base:ingest  1.9      1.8      60   executemany of the same rows into the same table
    …

N customers (``--customers``) use three meters (``api_calls`` counts ``api.request``,
``tokens`` sums ``llm.completion``, ``storage_gb`` takes the max of ``storage.snapshot``) on
a mix of four plans: ``starter`` (unit prices, a base fee billed in advance), ``growth``
(graduated calls, a minimum commitment), ``volume`` (volume-tiered tokens: contract assets,
a base fee in arrears) and ``quarterly`` (a quarterly cycle); a third of the customers bill
on the anniversary of a start on the 15th. Each month gets ``--events`` events per customer
(a third per meter), written as a CSV file, and then, month after month, exactly what the
commands run:

- ``ingest``: :func:`ledger.ingest.open_for_ingest` and :func:`ledger.ingest.ingest_files`
  (``meterbook ingest FILE``);
- ``post``: :meth:`ledger.session.Session.post` through the month's last day
  (``meterbook post --through``);
- ``invoice``: :func:`ledger.closing.invoice_gated` through the 1st of the next month
  (``meterbook invoice --through``, reconciler gate included);
- ``close``: :func:`ledger.closing.close_month` (``meterbook close YYYY-MM``);
- ``check`` (last month only, ``--check-every`` each month):
  :func:`ledger.audit.check_books` (``meterbook check``);
- ``load``: the books loaded by Beancount (what ``bean-check`` and Fava do), their
  transactions and directives counted.

Each phase runs in a forked child process: wall time, CPU (user + system of that process;
the PostgreSQL server's own CPU is not in it) and peak RSS (``ru_maxrss`` of the child) are
its own. Same-run baselines, on the same rows: ``base:ingest`` (SQLite: ``executemany`` of
the CSV's cells into an empty store's events table; PostgreSQL: psql ``\\copy`` of the same
CSV into a table of its columns with the same unique key and a metering index) and
``base:group-by`` (one plain ``GROUP BY customer, type`` with count, sum and max over the
month's stored rows: the floor of the aggregation inside ``post``).

``--json FILE`` saves the run; ``--report FILE...`` prints growth tables over saved runs (by
customers at each month, and by month within each run).
"""  # noqa: E501

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from ledger.bench.ingest import fresh_schema, pg_env

START = date(2025, 1, 1)
METERS = """\
meters:
  api_calls: {event_type: api.request, aggregation: count, unit: call}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens, unit: token}
  storage_gb: {event_type: storage.snapshot, aggregation: max, value: gb, unit: GB}
"""
PLANS = """\
plans:
  starter:
    currency: USD
    base_fee: {amount: "10.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.001"}
      - {meter: storage_gb, model: unit, unit_price: "0.10"}
  growth:
    currency: USD
    minimum_commitment: "50.00"
    charges:
      - meter: api_calls
        model: graduated
        tiers:
          - {up_to: 1000, unit_price: "0"}
          - {unit_price: "0.002"}
      - {meter: tokens, model: unit, unit_price: "0.00002"}
      - {meter: storage_gb, model: unit, unit_price: "0.08"}
  volume:
    currency: USD
    base_fee: {amount: "20.00", timing: arrears}
    charges:
      - meter: tokens
        model: volume
        tiers:
          - {up_to: 100000, unit_price: "0.00003"}
          - {unit_price: "0.00002"}
      - {meter: api_calls, model: unit, unit_price: "0.0005"}
  quarterly:
    currency: USD
    cycle: quarterly
    base_fee: {amount: "90.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.0008"}
      - {meter: tokens, model: unit, unit_price: "0.00001"}
"""
MIX = ("starter", "growth", "volume", "starter", "growth", "quarterly")
COLUMNS = ["id", "source", "customer", "type", "time", "tokens", "gb"]
COPY_TABLE = """
DROP TABLE IF EXISTS scale_copy;
CREATE TABLE scale_copy (id text NOT NULL, source text NOT NULL, customer text NOT NULL,
  type text NOT NULL, time timestamptz NOT NULL, tokens bigint, gb numeric,
  UNIQUE (source, id));
CREATE INDEX ON scale_copy (type, customer, time);
"""


def add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    return date(day.year + index // 12, index % 12 + 1, 1)


def month_name(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def customer_id(i: int) -> str:
    return f"c{i:06d}"


def customers_yaml(count: int) -> str:
    lines = ["customers:"]
    for i in range(count):
        plan = MIX[i % len(MIX)]
        anniversary = i % 3 == 2 and plan != "quarterly"
        start = START.replace(day=15) if anniversary else START
        anchor = "start" if anniversary else "calendar"
        lines.append(
            f"  {customer_id(i)}: {{currency: USD, billing_anchor: {anchor}, "
            f"subscriptions: [{{plan: {plan}, start: {start.isoformat()}}}]}}"
        )
    return "\n".join(lines) + "\n"


def make_workspace(root: Path, customers: int, store: str, books_detail: str) -> None:
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "meters.yaml").write_text(METERS)
    (root / "rules" / "plans.yaml").write_text(PLANS)
    (root / "rules" / "customers.yaml").write_text(customers_yaml(customers))
    (root / "meterbook.toml").write_text(
        f'store = "{store}"\ntitle = "scale"\nbooks_detail = "{books_detail}"\n'
    )


def write_month(path: Path, customers: int, month: date, per_customer: int, seed: int) -> int:
    """``per_customer`` events per customer in ``month`` (a third per meter), as CSV."""
    rng = random.Random(f"{seed}-{month}")
    days = (add_months(month, 1) - month).days
    begin = datetime(month.year, month.month, 1, tzinfo=UTC)
    kinds = ("api.request", "llm.completion", "storage.snapshot")
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as file:
        out = csv.writer(file)
        out.writerow(COLUMNS)
        for i in range(customers):
            who = customer_id(i)
            for n in range(per_customer):
                kind = kinds[n % 3]
                when = begin + timedelta(seconds=rng.randrange(days * 86400))
                tokens = str(rng.randint(500, 40000)) if kind == "llm.completion" else ""
                gb = str(rng.randint(1, 500)) if kind == "storage.snapshot" else ""
                out.writerow(
                    [
                        f"{who}-{month_name(month)}-{n}",
                        "scale",
                        who,
                        kind,
                        when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        tokens,
                        gb,
                    ]
                )
                count += 1
    return count


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Phase:
    """One phase of one month: its own process's wall and CPU seconds and peak RSS."""

    month: str
    name: str
    wall: float
    cpu: float
    rss_mb: float
    what: str = ""
    result: dict[str, Any] = field(default_factory=dict)


def measured(month: str, name: str, work: Callable[[], dict[str, Any]]) -> Phase:
    """Run ``work`` in a forked child; its wall, CPU and peak RSS, and what it returned."""
    read, write = os.pipe()
    begin = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: run, report, leave without the parent's cleanup
        os.close(read)
        try:
            payload = {"ok": True, **work()}
        except BaseException as exc:  # reported by the parent, never swallowed
            payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(payload, default=str))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _pid, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - begin
    result = json.loads(text) if text else {"ok": False, "error": f"child exit status {status}"}
    if not result.get("ok"):
        raise SystemExit(f"scale: {month} {name} failed: {result.get('error')}")
    return Phase(
        month,
        name,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        str(result.get("what", "")),
        result,
    )


# --- the phases (what the commands call) -------------------------------------------------


def ingest_phase(root: Path, path: Path) -> dict[str, Any]:
    from ledger.ingest import ingest_files, open_for_ingest
    from ledger.workspace import Workspace

    rules, engine, importers, kinds = open_for_ingest(Workspace.load(root))
    reports = list(ingest_files(engine, rules, [path], importers, kinds=kinds))
    accepted = sum(r.accepted for r in reports)
    rejected = sum(r.rejected for r in reports)
    return {"what": f"{accepted:,} accepted, {rejected:,} rejected", "accepted": accepted}


def post_phase(root: Path, through: date) -> dict[str, Any]:
    from ledger.session import Session
    from ledger.workspace import Workspace

    report = Session.open(Workspace.load(root)).post(through)
    return {"what": f"{report.entries:,} entries through {through}", "entries": report.entries}


def invoice_phase(root: Path, through: date) -> dict[str, Any]:
    from ledger.closing import invoice_gated
    from ledger.session import Session
    from ledger.workspace import Workspace

    issued, gate = invoice_gated(Session.open(Workspace.load(root)), through)
    held = len(gate.held)
    return {"what": f"{len(issued):,} invoices issued, {held} held", "invoices": len(issued)}


def close_phase(root: Path, month: str) -> dict[str, Any]:
    from ledger.closing import close_month
    from ledger.session import Session
    from ledger.workspace import Workspace

    report = close_month(Session.open(Workspace.load(root)), month, {})
    if report.refused:
        raise RuntimeError(f"close {month} refused: {report.refused}")
    return {"what": f"sealed, {report.assertions} balance assertions"}


def check_phase(root: Path) -> dict[str, Any]:
    from ledger.audit import check_books
    from ledger.workspace import Workspace

    results = check_books(Workspace.load(root))
    failed = [r.name for r in results if not r.ok]
    return {"what": "all checks passed" if not failed else f"FAILED: {', '.join(failed)}"}


def load_phase(root: Path) -> dict[str, Any]:
    from beancount.core import data

    from ledger.books import load_books

    entries, errors, _options = load_books(root / "books" / "main.beancount")
    transactions = sum(1 for e in entries if isinstance(e, data.Transaction))
    return {
        "what": f"{transactions:,} transactions, {len(entries):,} directives, {len(errors)} errors",
        "transactions": transactions,
        "directives": len(entries),
    }


# --- baselines ---------------------------------------------------------------------------


def sqlite_baseline(path: Path, scratch: Path) -> dict[str, Any]:
    """``executemany`` of the CSV's cells into an empty store's events table, one transaction."""
    import sqlite3

    from ledger.store import SQLITE_PRAGMAS, open_store

    db = scratch / "baseline.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    open_store(f"sqlite:///{db}").dispose()
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    conn.execute(
        "INSERT INTO batches (id, file, sha256, importer, started_at, received, accepted, "
        "duplicates, conflicts, rejected, reasons) VALUES (1, 'b', '', 'b', '', 0, 0, 0, 0, 0, "
        "'{}')"
    )
    columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    conn.execute("BEGIN IMMEDIATE")
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        rows = []
        for r in reader:
            props = json.dumps({k: v for k, v in (("tokens", r[5]), ("gb", r[6])) if v})
            time_us = int(datetime.fromisoformat(r[4]).timestamp()) * 1_000_000
            row = {
                "source": r[1],
                "event_id": r[0],
                "customer": r[2],
                "type": r[3],
                "time_us": time_us,
                "properties": props,
                "numbers": props,
                "payload_hash": r[0],
                "batch_id": 1,
            }
            rows.append(tuple(row.get(c) for c in columns if c != "id"))
            if len(rows) >= 25_000:
                _insert(conn, columns, rows)
                rows = []
        _insert(conn, columns, rows)
    conn.execute("COMMIT")
    conn.close()
    return {"what": "executemany of the same rows into an empty store's events table"}


def _insert(conn: Any, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    names = [c for c in columns if c != "id"]
    marks = ", ".join("?" for _ in names)
    conn.executemany(
        f"INSERT INTO events ({', '.join(names)}) VALUES ({marks}) "
        "ON CONFLICT (source, event_id) DO NOTHING",
        rows,
    )


def psql_copy(url: str, path: Path, schema: str) -> dict[str, Any]:
    """psql ``\\copy`` of the same CSV into a fresh table of its columns, one transaction."""
    fresh_schema(url, schema)
    env = pg_env(url, schema)
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", COPY_TABLE], env=env, check=True)
    copy = f"\\copy scale_copy FROM '{path}' WITH (FORMAT csv, HEADER true)"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-c", copy], env=env, check=True)
    return {"what": "psql \\copy of the same CSV into a table of its columns (COPY ingest floor)"}


def group_by(store: str, month: date) -> dict[str, Any]:
    """One plain GROUP BY over the month's stored rows: count, sum(tokens), max(gb)."""
    from sqlalchemy import create_engine, text

    begin = int(datetime(month.year, month.month, 1, tzinfo=UTC).timestamp()) * 1_000_000
    nxt = add_months(month, 1)
    end = int(datetime(nxt.year, nxt.month, 1, tzinfo=UTC).timestamp()) * 1_000_000
    engine = create_engine(store)
    if engine.dialect.name == "postgresql":
        value = "(properties::jsonb ->> '{0}')::numeric"
    else:
        value = "CAST(json_extract(properties, '$.{0}') AS NUMERIC)"
    query = text(
        f"SELECT customer, type, count(*), sum({value.format('tokens')}), "
        f"max({value.format('gb')}) FROM events WHERE time_us >= :b AND time_us < :e "
        "GROUP BY customer, type"
    )
    with engine.connect() as conn:
        groups = len(conn.execute(query, {"b": begin, "e": end}).fetchall())
    engine.dispose()
    return {"what": f"plain GROUP BY customer, type over the month's rows: {groups:,} groups"}


# --- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace, customers: int) -> dict[str, Any]:
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="meterbook-scale-"))
    root = scratch / f"ws-{customers}"
    if root.exists():
        shutil.rmtree(root)
    pg = args.database == "postgresql"
    if pg:
        url = args.database_url or os.environ.get("METERBOOK_TEST_DATABASE_URL", "")
        if not url:
            raise SystemExit(
                "scale: --database postgresql needs --database-url or METERBOOK_TEST_DATABASE_URL"
            )
        schema = f"scale_{customers}"
        fresh_schema(url, schema)
        store = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    else:
        url, store = "", f"sqlite:///{root / 'events.sqlite'}"
    make_workspace(root, customers, store, args.books)
    header = (
        f"scale: {customers:,} customers, {args.months} months from {month_name(START)}, "
        f"{args.events} events per customer and month, {args.books} books, {args.database}"
    )
    print(header)
    print(f"{'month':<8} {'phase':<13} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}  what")
    phases: list[Phase] = []
    summary = {
        "customers": customers,
        "months": args.months,
        "events": args.events,
        "books": args.books,
        "database": args.database,
    }

    def show(phase: Phase) -> None:
        phases.append(phase)
        if args.json:  # after every phase: a run stopped early keeps what it measured
            done = {**summary, "phases": [asdict(p) for p in phases]}
            Path(args.json).write_text(json.dumps([*args.saved, done], indent=1))
        print(
            f"{phase.month:<8} {phase.name:<13} {phase.wall:>8.1f} {phase.cpu:>8.1f} "
            f"{phase.rss_mb:>8.0f}  {phase.what}",
            flush=True,
        )

    for m in range(args.months):
        month = add_months(START, m)
        name = month_name(month)
        csv_path = scratch / f"events-{customers}-{name}.csv"
        begin = time.perf_counter()
        rows = write_month(csv_path, customers, month, args.events, args.seed)
        print(
            f"{name:<8} {'(generate)':<13} {time.perf_counter() - begin:>8.1f} "
            f"{'':>8} {'':>8}  {rows:,} events → {csv_path.name}",
            flush=True,
        )
        show(measured(name, "ingest", partial(ingest_phase, root, csv_path)))
        if args.baselines:
            if pg:
                show(
                    measured(
                        name,
                        "base:ingest",
                        partial(psql_copy, url, csv_path, f"scale_copy_{customers}"),
                    )
                )
            else:
                show(measured(name, "base:ingest", partial(sqlite_baseline, csv_path, scratch)))
            show(measured(name, "base:group-by", partial(group_by, store, month)))
        last = add_months(month, 1) - timedelta(days=1)
        show(measured(name, "post", partial(post_phase, root, last)))
        show(measured(name, "invoice", partial(invoice_phase, root, add_months(month, 1))))
        show(measured(name, "close", partial(close_phase, root, name)))
        show(measured(name, "load", partial(load_phase, root)))
        if args.check_every or m == args.months - 1:
            show(measured(name, "check", partial(check_phase, root)))
        csv_path.unlink()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
        if pg:
            from sqlalchemy import create_engine

            engine = create_engine(url)
            with engine.begin() as conn:
                for schema in (f"scale_{customers}", f"scale_copy_{customers}"):
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            engine.dispose()
    return {**summary, "phases": [asdict(p) for p in phases]}


# --- growth tables -----------------------------------------------------------------------


def report(runs: Sequence[dict[str, Any]]) -> str:
    """Growth by customers (month 1 of each run) and by month (within each run)."""
    out = []
    keys = ("ingest", "post", "invoice", "close", "check", "load")
    by_db: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_db.setdefault(f"{r['database']}, {r['books']} books", []).append(r)
    for label, group in sorted(by_db.items()):
        group.sort(key=lambda r: r["customers"])
        out.append(f"growth by customers, first month ({label}): wall s (peak MB)")
        out.append(f"{'customers':>10} " + " ".join(f"{k:>15}" for k in keys) + "  transactions")
        for r in group:
            first = [p for p in r["phases"] if p["month"] == r["phases"][0]["month"]]
            cells = []
            for k in keys:
                found = [p for p in first if p["name"] == k]
                if not found and k == "check":  # a run of several months checks at its end
                    found = [p for p in r["phases"] if p["name"] == k][:1]
                cells.append(
                    f"{found[0]['wall']:>8.1f} ({found[0]['rss_mb']:>4.0f})" if found else "-"
                )
            loads = [p for p in first if p["name"] == "load"]
            count = loads[0]["result"].get("transactions", "-") if loads else "-"
            out.append(
                f"{r['customers']:>10,} " + " ".join(f"{c:>15}" for c in cells) + f"  {count}"
            )
        out.append("")
        for r in group:
            if r["months"] < 2:
                continue
            out.append(f"growth by month, {r['customers']:,} customers ({label}): wall s (CPU s)")
            out.append(f"{'month':>8} " + " ".join(f"{k:>14}" for k in keys) + "  transactions")
            months = sorted({p["month"] for p in r["phases"] if p["name"] == "close"})
            for month in months:
                row = {p["name"]: p for p in r["phases"] if p["month"] == month}
                cells = [
                    f"{row[k]['wall']:>6.1f} ({row[k]['cpu']:>5.1f})" if k in row else f"{'-':>14}"
                    for k in keys
                ]
                count = row["load"]["result"].get("transactions", "-") if "load" in row else "-"
                out.append(f"{month:>8} " + " ".join(cells) + f"  {count}")
            first, last = months[0], months[-1]
            for k in ("invoice", "close"):
                a = [p for p in r["phases"] if p["month"] == first and p["name"] == k]
                b = [p for p in r["phases"] if p["month"] == last and p["name"] == k]
                if a and b and a[0]["wall"] and a[0]["cpu"]:
                    wall = b[0]["wall"] / a[0]["wall"]
                    cpu = b[0]["cpu"] / a[0]["cpu"]
                    out.append(
                        f"  {k}: month {len(months)} / month 1 = {wall:.2f}x wall, {cpu:.2f}x CPU"
                    )
            out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customers", default="1000", help="comma-separated counts (1000,10000)")
    parser.add_argument("--months", type=int, default=1, help="months of history (1-12)")
    parser.add_argument("--events", type=int, default=9, help="events per customer and month")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL URL (default: METERBOOK_TEST_DATABASE_URL)"
    )
    parser.add_argument("--books", choices=("summary", "customer"), default="summary")
    parser.add_argument(
        "--dir", default="", help="scratch directory (default: a new temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the workspace and schema")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument("--check-every", action="store_true", help="run check every month")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default="", help="save the run(s) to this JSON file")
    parser.add_argument("--report", nargs="+", default=[], help="growth tables of saved runs")
    args = parser.parse_args(argv)
    if args.report:
        runs = [r for path in args.report for r in json.loads(Path(path).read_text())]
        print(report(runs))
        return 0
    if not 1 <= args.months <= 12:
        parser.error("--months must be 1 to 12")
    args.saved = []
    for n in args.customers.split(","):
        args.saved.append(run(args, int(n)))
    runs = args.saved
    print()
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
