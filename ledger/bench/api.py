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


def make_workspace(root: Path) -> Path:
    write_rules(root / "rules")
    (root / "meterbook.toml").write_text(CONFIG)
    return root


def make_events(count: int, prefix: str, seed: int = 1) -> list[str]:
    """``count`` events as JSON texts, times spread over the last hour."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    out = []
    for i in range(count):
        when = (start + timedelta(milliseconds=i * 3_600_000 // max(count, 1))).strftime("%Y-%m-%dT%H:%M:%SZ")
        customer = f"cus-{rng.randrange(200):04d}"
        if rng.random() < 0.8:
            event = {"id": f"{prefix}{i}", "source": "bench", "customer": customer, "type": "api.request",
                     "time": when, "properties": {"region": rng.choice(["eu", "us"])}}
        else:
            event = {"id": f"{prefix}{i}", "source": "bench", "customer": customer, "type": "llm.completion",
                     "time": when, "properties": {"tokens": str(rng.randrange(1, 5000))}}
        out.append(json.dumps(event))
    return out


def file_baseline(root: Path, lines: list[str]) -> float:
    """Seconds to import ``lines`` as one JSONL file into a fresh workspace's store."""
    from ledger.ingest import default_importers, ingest_file, select_importer
    from ledger.rules import load_rules
    from ledger.store import open_store

    make_workspace(root)
    path = root / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    engine = open_store(f"sqlite:///{root / 'var' / 'events.sqlite'}")
    rules = load_rules(root / "rules")
    started = time.perf_counter()
    report = ingest_file(engine, rules, path, select_importer(path, default_importers()))
    seconds = time.perf_counter() - started
    assert report.accepted == len(lines), report.text()
    engine.dispose()
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    code = ("import sys; from pathlib import Path; from ledger.api import serve; "
            "from ledger.workspace import Workspace; "
            f"serve(Workspace.load(Path({str(root)!r})), '127.0.0.1', {port}, max_body=64 << 20)")
    server = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"})
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


def p(latencies: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.bench api", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=5000, help="single-event requests (0: skip)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    from ledger.api.keys import create_key
    from ledger.rules import load_rules
    from ledger.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or Path(tmp)
        lines = make_events(args.events, "e-")
        singles = make_events(args.single, "s-", seed=2)
        base = file_baseline(work / "file", lines)
        print(f"baseline: file ingest of the same {args.events:,} events (JSONL, one transaction): "
              f"{base:.2f} s = {args.events / base:,.0f} events/s")

        root = make_workspace(work / "api")
        engine = open_store(f"sqlite:///{root / 'var' / 'events.sqlite'}")
        key = create_key(engine, load_rules(root / "rules"), "ingest").secret
        engine.dispose()
        port = free_port()
        server = start_server(root, port)
        try:
            bodies = [("[" + ",".join(lines[i:i + args.batch]) + "]").encode()
                      for i in range(0, len(lines), args.batch)]
            seconds, latencies, accepted = push(port, key, bodies, args.clients)
            assert accepted == args.events, f"accepted {accepted} of {args.events}"
            rate = args.events / seconds
            print(f"HTTP API, batches of {args.batch:,} ({len(bodies):,} requests, {args.clients} connections): "
                  f"{seconds:.2f} s = {rate:,.0f} events/s ({rate / (args.events / base):.2f}x the file "
                  f"baseline); request latency p50 {p(latencies, 0.5):.1f} ms, p99 {p(latencies, 0.99):.1f} ms")
            if args.single:
                one = [("[" + line + "]").encode() for line in singles]
                seconds, latencies, accepted = push(port, key, one, args.clients)
                assert accepted == args.single, f"accepted {accepted} of {args.single}"
                print(f"HTTP API, single-event requests ({args.single:,}): {seconds:.2f} s = "
                      f"{args.single / seconds:,.0f} events/s; p50 {p(latencies, 0.5):.1f} ms, "
                      f"p99 {p(latencies, 0.99):.1f} ms, mean {statistics.fmean(latencies) * 1000:.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0
