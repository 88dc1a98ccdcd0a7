"""Ingest with a forked parser process (big files): the same outcomes, rows and
atomicity as reading in one process, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledger import ingest
from ledger.errors import BadInput
from ledger.ingest import ImportReport, default_importers, ingest_file, select_importer
from ledger.store import batches, conflicts, events, open_store, rejects
from tests.support.ingest import HEADER, NOW, make_rules, table, write
from tests.support.workspaces import sqlite_url

ROWS = [
    "e1,app,acme,api.request,2026-10-05T08:30:00Z,,,,,",
    "e2,app,acme,llm.completion,2026-10-05T08:31:00+02:00,120,,,,",
    "e3,app,nobody,api.request,2026-10-05T08:32:00Z,,,,,",  # unknown_customer
    "e1,app,acme,api.request,2026-10-05T08:30:00Z,,,,,",  # duplicate inside the file
    "e2,app,acme,llm.completion,2026-10-05T08:31:00Z,120,,,,",  # conflict inside the file
    "e4,app,acme,llm.completion,2026-10-05T08:33:00Z,NaN,,,,",  # bad_number
    "e5,web,globex,storage.snapshot,2026-10-05T08:34:00Z,,,,12.50,",
    "e6,app,acme,login,2026-10-05T08:35:00Z,,,,,bob",
    "e7,app,acme,api.request,2026-10-05,,,,,",  # bad_time
    "e8,app,acme,api.request,2026-10-05T08:36:00Z,,,,,,extra",  # bad_csv
    "x" * 300 + ",app,acme,api.request,2026-10-05T08:37:00Z,,,,,",  # too_long
    "e9,app,globex,llm.completion,2026-10-05T08:38:00Z,7,99,eu,,",
    "old,app,acme,api.request,2026-10-01T00:00:00Z,,,,,",  # stored by the first import: duplicate
    "old2,app,acme,api.request,2026-10-01T00:00:00Z,,,,,",  # stored with another payload: conflict
]
FIRST = (
    HEADER + "old,app,acme,api.request,2026-10-01T00:00:00Z,,,,,\n"
    "old2,app,acme,login,2026-10-01T00:00:00Z,,,,,al\n"
)


def content(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The stored rows without surrogate keys (comparable across stores)."""
    return {
        # without the typed quantity (q_name, q_units, q_nanos), which only PostgreSQL fills
        "events": sorted(tuple(r)[1:10] for r in table(url, events)),
        "rejects": sorted(
            (r.file, r.line, r.reason, r.detail, r.raw, r.record) for r in table(url, rejects)
        ),
        "conflicts": sorted(
            (r.source, r.event_id, r.stored_hash, r.payload_hash, r.payload, r.line)
            for r in table(url, conflicts)
        ),
        "batches": sorted(
            (
                r.file,
                r.sha256,
                r.received,
                r.accepted,
                r.duplicates,
                r.conflicts,
                r.rejected,
                r.reasons,
            )
            for r in table(url, batches)
        ),
    }


def ingest_into(
    url: str, rules_dir: Path, *paths: Path, chunk_size: int = ingest.CHUNK, **kw: Any
) -> list[ImportReport]:
    engine = open_store(url)
    try:
        rules = make_rules(rules_dir)
        return [
            ingest_file(
                engine,
                rules,
                p,
                select_importer(p, default_importers()),
                now=NOW,
                name=p.name,
                chunk_size=chunk_size,
                **kw,
            )
            for p in paths
        ]
    finally:
        engine.dispose()


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file goes through the parser process, however small."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parser process is forked (Linux only)")
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(
        ingest, "PARALLEL_WHEN_BUSY", True
    )  # however busy the machine running the tests


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_parallel_stores_what_serial_stores(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    first = write(tmp_path / "first.csv", FIRST)
    second = write(
        tmp_path / "second.csv",
        (HEADER + "\n".join(ROWS) + "\n").encode() + b"\xff\xfe bad utf-8\n",
    )
    serial_url = f"sqlite:///{tmp_path / 'serial.sqlite'}"
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 1 << 62)
    expected = ingest_into(serial_url, tmp_path / "rules", first, second, chunk_size=chunk_size)
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(ingest, "PARALLEL_WHEN_BUSY", True)
    got = ingest_into(store_url, tmp_path / "rules", first, second, chunk_size=chunk_size)
    assert [r.to_json() for r in got] == [r.to_json() for r in expected]
    assert (
        got[1].received,
        got[1].accepted,
        got[1].duplicates,
        got[1].conflicts,
        got[1].rejected,
    ) == (15, 5, 2, 2, 6)
    assert got[1].reasons == {
        "bad_csv": 1,
        "bad_encoding": 1,
        "bad_number": 1,
        "bad_time": 1,
        "too_long": 1,
        "unknown_customer": 1,
    }
    assert got[1].sha256 == expected[1].sha256 != ""
    assert content(store_url) == content(serial_url)
    # and again: nothing new
    [again] = ingest_into(store_url, tmp_path / "rules", second, chunk_size=chunk_size)
    assert (again.accepted, again.duplicates, again.conflicts) == (0, 7, 2)


def test_parallel_progress_counts_every_byte(parallel: None, tmp_path: Path) -> None:
    lines = [f"e{i},app,acme,api.request,2026-10-05T08:30:00Z,,,,," for i in range(500)]
    path = write(tmp_path / "u.csv", HEADER + "\n".join(lines) + "\n")
    seen: list[int] = []
    [report] = ingest_into(
        sqlite_url(tmp_path), tmp_path / "rules", path, chunk_size=64, progress=seen.append
    )
    assert report.accepted == 500
    assert sum(seen) == path.stat().st_size  # in read blocks of 1 MiB: here one


def test_parallel_bad_header_writes_nothing(parallel: None, store_url: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "u.csv", "id;customer;type;time\ne1;acme;api.request;2026-10-05T08:30:00Z\n"
    )
    with pytest.raises(BadInput, match="delimiter looks like ';'"):
        ingest_into(store_url, tmp_path / "rules", path)
    for t in (events, rejects, batches):
        assert table(store_url, t) == []


def test_parser_death_rolls_back(
    parallel: None, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [f"e{i},app,acme,api.request,2026-10-05T08:30:00Z,,,,," for i in range(100)]
    path = write(tmp_path / "u.csv", HEADER + "\n".join(lines) + "\n")
    original = ingest._Judge.__call__
    calls: list[int] = []

    def dying(self: ingest._Judge, chunk: Any) -> ingest.Judged:  # runs in the forked parser
        calls.append(1)
        if len(calls) == 3:
            os._exit(3)
        return original(self, chunk)

    monkeypatch.setattr(ingest._Judge, "__call__", dying)
    with pytest.raises(RuntimeError, match="parser process stopped"):
        ingest_into(store_url, tmp_path / "rules", path, chunk_size=10)
    for t in (events, rejects, batches):
        assert table(store_url, t) == []


def test_parser_bug_is_reported_and_rolls_back(
    parallel: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "u.csv", HEADER + "e1,app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n")

    def broken(self: ingest._Judge, chunk: Any) -> ingest.Judged:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ingest._Judge, "__call__", broken)
    with pytest.raises(RuntimeError, match="ZeroDivisionError: a bug"):
        ingest_into(sqlite_url(tmp_path), tmp_path / "rules", path)
    assert table(sqlite_url(tmp_path), batches) == []


KILLER = """
import os, signal, sys
from pathlib import Path
from ledger import ingest
from ledger.rules import load_rules
from ledger.store import open_store
ingest.PARALLEL_MIN_BYTES = 0
ingest.PARALLEL_WHEN_BUSY = True
original = ingest._Batch.add
calls = []
def add(self, chunk):
    calls.append(1)
    if len(calls) == 3:
        import multiprocessing
        pids = " ".join(str(p.pid) for p in multiprocessing.active_children())
        Path(sys.argv[4]).write_text(pids)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, chunk)
ingest._Batch.add = add
engine = open_store(sys.argv[1])
path = Path(sys.argv[3])
ingest.ingest_file(engine, load_rules(Path(sys.argv[2])), path,
                   ingest.select_importer(path, ingest.default_importers()), chunk_size=100)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_kill_mid_parallel_import_leaves_nothing(
    parallel: None, store_url: str, tmp_path: Path
) -> None:
    make_rules(tmp_path / "rules")
    lines = [f"e{i},app,acme,api.request,2026-10-05T08:30:00Z,,,,," for i in range(3000)]
    path = write(tmp_path / "u.csv", HEADER + "\n".join(lines) + "\n")
    open_store(store_url).dispose()
    pids = tmp_path / "pids"
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, store_url, str(tmp_path / "rules"), str(path), str(pids)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [parser] = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 30
    while not _gone(parser) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(parser), "the parser process outlived the import"
    for t in (events, rejects, batches):
        assert table(store_url, t) == []
    [report] = ingest_into(store_url, tmp_path / "rules", path)
    assert report.accepted == 3000


def test_small_files_stay_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = write(tmp_path / "u.csv", HEADER)
    big = tmp_path / "big.csv"
    with open(big, "wb") as file:
        file.truncate(ingest.PARALLEL_MIN_BYTES)
    monkeypatch.setattr(ingest, "PARALLEL_WHEN_BUSY", True)
    assert not ingest._parallel(small)
    assert ingest._parallel(big) == sys.platform.startswith("linux")
    assert not ingest._parallel(tmp_path / "missing.csv")


def test_a_big_file_stays_in_one_process_when_no_core_is_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cores, load average 1.5: no core is idle, one process; load 0.5: the parser process."""
    big = tmp_path / "big.csv"
    with open(big, "wb") as file:
        file.truncate(ingest.PARALLEL_MIN_BYTES)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert not ingest._parallel(big)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 1.0, 1.0))
    assert ingest._parallel(big) == sys.platform.startswith("linux")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not ingest._parallel(big)


def test_time_cache_never_accepts_a_malformed_time(tmp_path: Path) -> None:
    """The per-minute time cache only serves ``HH:MM:SS``: a look-alike after a cached minute is
    bad_time."""
    path = write(
        tmp_path / "u.csv",
        HEADER + "e1,app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n"
        "e2,app,acme,api.request,2026-10-05T08:30X12Z,,,,,\n"
        "e3,app,acme,api.request,2026-10-05T08:30:7aZ,,,,,\n"
        "e4,app,acme,api.request,2026-10-05T08:30:60Z,,,,,\n"
        "e5,app,acme,api.request,2026-10-05T08:30:59Z,,,,,\n",
    )
    [report] = ingest_into(sqlite_url(tmp_path), tmp_path / "rules", path)
    assert (report.accepted, report.reasons) == (2, {"bad_time": 3})
    assert [r.time_us % 60_000_000 for r in table(sqlite_url(tmp_path), events)] == [0, 59_000_000]
