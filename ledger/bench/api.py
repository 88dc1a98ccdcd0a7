"""HTTP ingest throughput: ``meterbook api`` on loopback against a file ingest of the same events.

    $ nice python -m ledger.bench api --events 200000 --single 5000

The server runs in its own process (uvicorn, as ``meterbook api`` runs it) over a
fresh SQLite workspace; this process is the load generator: ``--clients``
threads, each on one keep-alive connection, post JSON arrays of ``--batch``
events (the events of ``ledger.bench.ingest``: 200 customers, calls and tokens).
Every request is timed from send to the whole answer; the report gives events
per second over the run and p50/p99 request latency, then the same for
``--single`` requests of one event each. The baseline is the same events as one
JSONL file imported by :func:`ledger.ingest.ingest_file` into another fresh store
in the same run. Every response must be 200 with every event accepted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger.bench.ingest import write_rules

CONFIG = 'store = "sqlite:///var/events.sqlite"\ntimezone = "UTC"\n'


def make_workspace(root: Path, store: str = "") -> Path:
    write_rules(root / "rules")
    config = (
        CONFIG if not store else CONFIG.replace('"sqlite:///var/events.sqlite"', json.dumps(store))
    )
    (root / "meterbook.toml").write_text(config)
    return root


def store_of(root: Path) -> str:
    from ledger.workspace import Workspace

    return Workspace.load(root).store_url


def pg_schema(base: str, name: str) -> str:
    """A fresh PostgreSQL schema ``name`` (dropped first if there) and a URL searching it."""
    import sqlalchemy as sa

    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    engine.dispose()
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{name}"


def drop_schema(base: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    engine.dispose()


def make_events(count: int, prefix: str, seed: int = 1) -> list[str]:
    """``count`` events as JSON texts, times spread over the last hour."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    out = []
    for i in range(count):
        when = (start + timedelta(milliseconds=i * 3_600_000 // max(count, 1))).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        customer = f"cus-{rng.randrange(200):04d}"
        if rng.random() < 0.8:
            event = {
                "id": f"{prefix}{i}",
                "source": "bench",
                "customer": customer,
                "type": "api.request",
                "time": when,
                "properties": {"region": rng.choice(["eu", "us"])},
            }
        else:
            event = {
                "id": f"{prefix}{i}",
                "source": "bench",
                "customer": customer,
                "type": "llm.completion",
                "time": when,
                "properties": {"tokens": str(rng.randrange(1, 5000))},
            }
        out.append(json.dumps(event))
    return out


def _cpu_self_and_children() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def file_baseline(root: Path, lines: list[str], store: str = "") -> tuple[float, float]:
    """Wall and CPU seconds (with the parser process) to import ``lines`` as one JSONL file
    into a fresh workspace's store."""
    from ledger.ingest import default_importers, ingest_file, select_importer
    from ledger.rules import load_rules
    from ledger.store import open_store

    make_workspace(root, store)
    path = root / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    engine = open_store(store_of(root))
    rules = load_rules(root / "rules")
    cpu = _cpu_self_and_children()
    started = time.perf_counter()
    report = ingest_file(engine, rules, path, select_importer(path, default_importers()))
    seconds = time.perf_counter() - started
    cpu = _cpu_self_and_children() - cpu
    assert report.accepted == len(lines), report.text()
    engine.dispose()
    return seconds, cpu


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; from ledger.api import serve; "
        "from ledger.workspace import Workspace; "
        f"serve(Workspace.load(Path({str(root)!r})), '127.0.0.1', {port}, max_body=64 << 20, "
        f"workers={workers})"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"}
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the API server did not start")


def push(port: int, key: str, bodies: list[bytes], clients: int) -> tuple[float, list[float], int]:
    """Post every body from ``clients`` threads; (seconds, latencies, events accepted)."""
    latencies: list[float] = []
    accepted = [0]
    lock = threading.Lock()
    queue = list(reversed(bodies))
    failures: list[str] = []

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            sent = time.perf_counter()
            conn.request("POST", "/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            took = time.perf_counter() - sent
            if response.status != 200:
                failures.append(f"HTTP {response.status}: {answer[:200]!r}")
                break
            with lock:
                latencies.append(took)
                accepted[0] += json.loads(answer)["accepted"]
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(failures[0])
    return seconds, latencies, accepted[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process and its waited-for children (Linux
    ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def p(latencies: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench api", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=5000, help="single-event requests (0: skip)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default="",
        help="use fresh schemas of this PostgreSQL database instead of SQLite files",
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    schemas = [f"bench_api_file_{os.getpid()}", f"bench_api_http_{os.getpid()}"]
    stores = [pg_schema(args.postgres, name) for name in schemas] if args.postgres else ["", ""]
    from ledger.api.keys import create_key
    from ledger.rules import load_rules
    from ledger.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or Path(tmp)
        lines = make_events(args.events, "e-")
        singles = make_events(args.single, "s-", seed=2)
        base, base_cpu = file_baseline(work / "file", lines, stores[0])
        print(
            f"baseline: file ingest of the same {args.events:,} events (JSONL, one transaction): "
            f"{base:.2f} s = {args.events / base:,.0f} events/s; CPU {base_cpu:.2f} s = "
            f"{base_cpu * 1e6 / args.events:.0f} µs per event"
        )

        root = make_workspace(work / "api", stores[1])
        engine = open_store(store_of(root))
        key = create_key(engine, load_rules(root / "rules"), "ingest").secret
        engine.dispose()
        port = free_port()
        server = start_server(root, port, args.workers)
        print(
            f"store: {'PostgreSQL' if args.postgres else 'SQLite'}; "
            f"server processes: {args.workers}"
        )
        try:
            bodies = [
                ("[" + ",".join(lines[i : i + args.batch]) + "]").encode()
                for i in range(0, len(lines), args.batch)
            ]
            cpu = cpu_seconds(server.pid)
            seconds, latencies, accepted = push(port, key, bodies, args.clients)
            cpu = cpu_seconds(server.pid) - cpu
            assert accepted == args.events, f"accepted {accepted} of {args.events}"
            rate = args.events / seconds
            print(
                f"HTTP API, batches of {args.batch:,} "
                f"({len(bodies):,} requests, {args.clients} connections): "
                f"{seconds:.2f} s = {rate:,.0f} events/s "
                f"({rate / (args.events / base):.2f}x the file baseline); "
                f"request latency p50 {p(latencies, 0.5):.1f} ms, "
                f"p99 {p(latencies, 0.99):.1f} ms; "
                f"server CPU {cpu:.2f} s = {cpu * 1e6 / args.events:.0f} µs per event"
                + (" (one worker)" if args.workers == 1 else " (parent only)")
            )
            if args.single:
                one = [("[" + line + "]").encode() for line in singles]
                seconds, latencies, accepted = push(port, key, one, args.clients)
                assert accepted == args.single, f"accepted {accepted} of {args.single}"
                print(
                    f"HTTP API, single-event requests ({args.single:,}): {seconds:.2f} s = "
                    f"{args.single / seconds:,.0f} events/s; p50 {p(latencies, 0.5):.1f} ms, "
                    f"p99 {p(latencies, 0.99):.1f} ms, "
                    f"mean {statistics.fmean(latencies) * 1000:.1f} ms"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
            for name in schemas if args.postgres else []:
                drop_schema(args.postgres, name)
    return 0
