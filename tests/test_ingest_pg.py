"""Issue 13's store at scale: PostgreSQL ingest through ``COPY`` into a staging table,
monthly partitions of ``events``, the typed quantity columns, the migrations that bring
existing stores there, and SQLite's metering index.

The PostgreSQL tests need ``METERBOOK_TEST_DATABASE_URL`` (each gets its own schema).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.events import to_us
from ledger.metering import Window, measure
from ledger.rules import Meter
from ledger.store import (
    MIGRATIONS,
    _v_pg_events,
    batches,
    conflicts,
    event_keys,
    events,
    meta,
    month_range_us,
    open_store,
    partitions,
    rejects,
    typed_quantity,
)
from tests.support.ingest import HEADER, check_sum, make_rules, run, table, write

TOKENS = Meter(id="tokens", event_type="llm.completion", aggregation="sum", value="tokens")
CALLS = Meter(id="api_calls", event_type="api.request", aggregation="count")


def _line(
    id: str,
    customer: str = "acme",
    type: str = "api.request",
    time: str = "2026-10-05T08:30:00Z",
    tokens: str = "",
    bytes: str = "",
) -> str:
    # HEADER: id,source,customer,type,time,tokens,bytes,region,gb,user
    return f"{id},app,{customer},{type},{time},{tokens},{bytes},,,\n"


def _scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


# --- COPY ingest: row accounting -----------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 3, 10_000])
def test_copy_ingest_accounts_for_every_row(pg_url: str, tmp_path: Path, chunk_size: int) -> None:
    """Stored first: e1 (a call) and e2 (tokens=5). Then a file of 7 rows::

        line 2  e1 as stored                 duplicate (of a stored row)
        line 3  e2 tokens=6                  conflict  (stored tokens=5 wins)
        line 4  e3 new                       accepted
        line 5  e3 again, same               duplicate (within the file)
        line 6  e4 tokens=1                  accepted
        line 7  e4 tokens=2                  conflict  (within the file: the first row wins)
        line 8  e5 for customer nobody       rejected  (unknown_customer)

    received 7 = accepted 2 + duplicates 2 + conflicts 2 + rejected 1, in any chunk size;
    4 events stored, each key once in ``event_keys``; the conflicts kept in file order.
    The same file again: duplicates 4 (e1, e3, e3, e4 tokens=1), conflicts 2 (e2 tokens=6,
    e4 tokens=2), rejected 1.
    """
    first = write(
        tmp_path / "a.csv", HEADER + _line("e1") + _line("e2", type="llm.completion", tokens="5")
    )
    assert run(pg_url, tmp_path / "rules", first).accepted == 2
    second = write(
        tmp_path / "b.csv",
        HEADER
        + _line("e1")
        + _line("e2", type="llm.completion", tokens="6")
        + _line("e3")
        + _line("e3")
        + _line("e4", type="llm.completion", tokens="1")
        + _line("e4", type="llm.completion", tokens="2")
        + _line("e5", customer="nobody"),
    )
    report = run(pg_url, tmp_path / "rules", second, chunk_size=chunk_size)
    check_sum(report)
    assert (
        report.received,
        report.accepted,
        report.duplicates,
        report.conflicts,
        report.rejected,
    ) == (7, 2, 2, 2, 1)
    assert dict(report.reasons) == {"unknown_customer": 1}
    stored = {e.event_id: e for e in table(pg_url, events)}
    assert sorted(stored) == ["e1", "e2", "e3", "e4"]
    assert sorted((k.event_id, k.payload_hash) for k in table(pg_url, event_keys)) == sorted(
        (e.event_id, e.payload_hash) for e in stored.values()
    )
    assert json.loads(stored["e2"].properties) == {"tokens": "5"}
    assert json.loads(stored["e4"].properties) == {"tokens": "1"}
    # the typed quantity the tokens meter reads; calls have none
    assert (stored["e4"].q_name, stored["e4"].q_units, stored["e4"].q_nanos) == ("tokens", 1, 0)
    assert (stored["e1"].q_name, stored["e1"].q_units) == (None, None)
    quarantined = table(pg_url, conflicts)
    assert [(c.event_id, c.line, c.stored_hash) for c in quarantined] == [
        ("e2", 3, stored["e2"].payload_hash),
        ("e4", 7, stored["e4"].payload_hash),
    ]
    assert [(r.line, r.reason) for r in table(pg_url, rejects)] == [(8, "unknown_customer")]
    again = run(pg_url, tmp_path / "rules", second, chunk_size=chunk_size)
    assert (again.accepted, again.duplicates, again.conflicts, again.rejected) == (0, 4, 2, 1)


def test_typed_quantity_and_json_give_the_same_sums(pg_url: str, tmp_path: Path) -> None:
    """``tokens`` is typed (q_units) for rows ingested under rules that read it; ``bytes`` (the
    eu_bytes meter, filtered) is read from the numbers JSON. Both sum exactly:
    tokens 1.5 + 2.25 = 3.75, bytes 10 + 0.000000001 = 10.000000001."""
    path = write(
        tmp_path / "u.csv",
        HEADER
        + "t1,app,acme,llm.completion,2026-10-05T08:30:00Z,1.5,10,eu,,\n"
        + "t2,app,acme,llm.completion,2026-10-06T08:30:00Z,2.25,0.000000001,eu,,\n",
    )
    assert run(pg_url, tmp_path / "rules", path).accepted == 2
    assert {(e.q_name, e.q_units, e.q_nanos) for e in table(pg_url, events)} == {
        ("tokens", 1, 500_000_000),
        ("tokens", 2, 250_000_000),
    }
    engine = open_store(pg_url)
    try:
        window = Window(
            "acme",
            to_us(datetime(2026, 10, 1, tzinfo=UTC)),
            to_us(datetime(2026, 11, 1, tzinfo=UTC)),
        )
        assert measure(engine, TOKENS, [window])[window].quantity == Decimal("3.75")
        eu_bytes = Meter(
            id="eu_bytes",
            event_type="llm.completion",
            aggregation="sum",
            value="bytes",
            filter={"region": "eu"},
        )
        assert measure(engine, eu_bytes, [window])[window].quantity == Decimal("10.000000001")
    finally:
        engine.dispose()


# --- partitions -----------------------------------------------------------------------------


def test_events_land_in_their_month_and_a_new_month_is_made_on_demand(
    pg_url: str, tmp_path: Path
) -> None:
    """Events of July, August and September 2026 go to events_y2026m07..09; a later file
    with October events makes events_y2026m10 and puts them there; metering reads across
    the partitions (4 calls from July 31 to October 1)."""
    path = write(
        tmp_path / "a.csv",
        HEADER
        + _line("a", time="2026-07-31T23:59:59Z")
        + _line("b", time="2026-08-01T00:00:00Z")
        + _line("c", time="2026-09-30T12:00:00Z"),
    )
    assert run(pg_url, tmp_path / "rules", path).accepted == 3
    engine = open_store(pg_url)
    try:
        with engine.connect() as conn:
            assert partitions(conn) == ["events_y2026m07", "events_y2026m08", "events_y2026m09"]
        later = write(tmp_path / "b.csv", HEADER + _line("d", time="2026-10-01T00:00:00Z"))
        assert run(pg_url, tmp_path / "rules", later).accepted == 1
        with engine.connect() as conn:
            assert partitions(conn) == [
                "events_y2026m07",
                "events_y2026m08",
                "events_y2026m09",
                "events_y2026m10",
            ]
            placed = dict(
                conn.exec_driver_sql("SELECT event_id, tableoid::regclass::text FROM events").all()
            )
        assert placed == {
            "a": "events_y2026m07",
            "b": "events_y2026m08",
            "c": "events_y2026m09",
            "d": "events_y2026m10",
        }
        window = Window(
            "acme",
            to_us(datetime(2026, 7, 1, tzinfo=UTC)),
            to_us(datetime(2026, 11, 1, tzinfo=UTC)),
        )
        assert measure(engine, CALLS, [window])[window].events == 4
    finally:
        engine.dispose()


def test_month_range_us_is_the_utc_month() -> None:
    start, end = month_range_us(2026, 12)
    assert start == to_us(datetime(2026, 12, 1, tzinfo=UTC))
    assert end == to_us(datetime(2027, 1, 1, tzinfo=UTC))


KILLER = """
import os, signal, sys
from pathlib import Path
from ledger import ingest
from ledger.rules import load_rules
from ledger.store import open_store
original = ingest._Batch.add
calls = []
def add(self, chunk):
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, chunk)
ingest._Batch.add = add
engine = open_store(sys.argv[1])
path = Path(sys.argv[3])
ingest.ingest_file(engine, load_rules(Path(sys.argv[2])), path,
                   ingest.select_importer(path, ingest.default_importers()), chunk_size=100)
"""


def test_kill_after_copy_and_new_partitions_leaves_nothing(pg_url: str, tmp_path: Path) -> None:
    """kill -9 after two chunks were copied, claimed and stored (and their months'
    partitions made): no event, key, batch or partition remains; the file imports whole after."""
    make_rules(tmp_path / "rules")
    lines = [_line(f"e{i}", time=f"2026-{8 + i // 200:02d}-05T08:30:00Z") for i in range(400)]
    path = write(tmp_path / "u.csv", HEADER + "".join(lines))
    open_store(pg_url).dispose()
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, pg_url, str(tmp_path / "rules"), str(path)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    for t in (events, event_keys, rejects, batches):
        assert table(pg_url, t) == []
    engine = open_store(pg_url)
    try:
        with engine.connect() as conn:
            assert partitions(conn) == []
    finally:
        engine.dispose()
    assert run(pg_url, tmp_path / "rules", path).accepted == 400


WORKER = """
import sys
from pathlib import Path
from ledger import ingest
from ledger.rules import load_rules
from ledger.store import open_store
engine = open_store(sys.argv[1])
path = Path(sys.argv[3])
importer = ingest.select_importer(path, ingest.default_importers())
report = ingest.ingest_file(engine, load_rules(Path(sys.argv[2])), path, importer, chunk_size=300)
print(report.to_json())
"""


def test_concurrent_overlapping_files_over_new_months_store_each_event_once(
    pg_url: str, tmp_path: Path
) -> None:
    """Three processes import overlapping files (ids 0..1999, 1000..2999, 500..2499) whose
    events fall in August and September, months no partition exists for yet: each event is
    stored once (3,000), accepted 3,000 in total, the other 3,000 rows duplicates; the two
    partitions are made once."""
    make_rules(tmp_path / "rules")
    open_store(pg_url).dispose()
    files = []
    for w, first in enumerate((0, 1000, 500)):
        ids = list(range(first, first + 2000))
        if w == 1:
            ids.reverse()
        body = "".join(_line(f"e{i}", time=f"2026-{8 + i % 2:02d}-05T08:30:00Z") for i in ids)
        files.append(write(tmp_path / f"w{w}.csv", HEADER + body))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, pg_url, str(tmp_path / "rules"), str(f)],
            cwd=Path(__file__).parent.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for f in files
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    stored = table(pg_url, events)
    assert len(stored) == len({(e.source, e.event_id) for e in stored}) == 3000
    assert len(table(pg_url, event_keys)) == 3000
    assert sum(r["accepted"] for r in reports) == 3000
    assert sum(r["duplicates"] for r in reports) == 3000
    assert all(r["conflicts"] == r["rejected"] == 0 for r in reports)
    engine = open_store(pg_url)
    try:
        with engine.connect() as conn:
            assert partitions(conn) == ["events_y2026m08", "events_y2026m09"]
    finally:
        engine.dispose()


# --- migrations -----------------------------------------------------------------------------

#: ``events`` as every store before issue 13 had it (``_v1`` and ``_v6``).
OLD_EVENTS = {
    "postgresql": [
        "CREATE TABLE events (pk BIGSERIAL PRIMARY KEY, source VARCHAR(255) NOT NULL, "
        "event_id VARCHAR(255) NOT NULL, customer VARCHAR(255) NOT NULL, "
        "type VARCHAR(255) NOT NULL, "
        "time_us BIGINT NOT NULL, properties TEXT NOT NULL, numbers TEXT NOT NULL, "
        "payload_hash VARCHAR(64) NOT NULL, batch_id INTEGER NOT NULL REFERENCES batches (id), "
        "CONSTRAINT uq_events_source_id UNIQUE (source, event_id))",
        "CREATE INDEX ix_events_type_customer_time ON events (type, customer, time_us)",
    ],
    "sqlite": [
        "CREATE TABLE events (pk INTEGER PRIMARY KEY AUTOINCREMENT, source VARCHAR(255) NOT NULL, "
        "event_id VARCHAR(255) NOT NULL, customer VARCHAR(255) NOT NULL, "
        "type VARCHAR(255) NOT NULL, "
        "time_us BIGINT NOT NULL, properties TEXT NOT NULL, numbers TEXT NOT NULL, "
        "payload_hash VARCHAR(64) NOT NULL, batch_id INTEGER NOT NULL REFERENCES batches (id), "
        "CONSTRAINT uq_events_source_id UNIQUE (source, event_id))",
        "CREATE INDEX ix_events_type_customer_time ON events (type, customer, time_us)",
        "CREATE INDEX ix_events_metering ON events (type, customer, time_us, numbers)",
    ],
}


def _old_store(url: str, tmp_path: Path) -> None:
    """A store as it was before issue 13 (schema version of the migration before
    ``_v_pg_events``), holding the events of a.csv ingested by that version's rules:
    e1 (September), e2 tokens=2.5 (October), e3 tokens=7 bytes=3 (October)."""
    before = MIGRATIONS.index(_v_pg_events)
    engine = sa.create_engine(url)
    rows = [
        ("e1", "api.request", "2026-09-30T10:00:00Z", {}),
        ("e2", "llm.completion", "2026-10-05T10:00:00Z", {"tokens": "2.5"}),
        ("e3", "llm.completion", "2026-10-06T10:00:00Z", {"bytes": "3", "tokens": "7"}),
    ]
    from ledger.events import Event, parse_time

    with engine.begin() as conn:
        for migration in MIGRATIONS[:before]:
            migration(conn)
        conn.exec_driver_sql("DROP TABLE events")
        for ddl in OLD_EVENTS[conn.dialect.name]:
            conn.exec_driver_sql(ddl)
        conn.execute(meta.insert().values(key="schema_version", value=str(before)))
        batch = conn.execute(
            batches.insert().values(
                file="a.csv", sha256="", importer="events-csv", started_at="2026-10-07"
            )
        ).inserted_primary_key[0]
        for id_, type_, when, props in rows:
            row = Event.build(
                source="app",
                id=id_,
                customer="acme",
                type=type_,
                time=parse_time(when),
                properties=props,
            ).row(batch)
            conn.exec_driver_sql(
                "INSERT INTO events (source, event_id, customer, type, time_us, properties, "
                "numbers, payload_hash, batch_id) VALUES (%(source)s, %(event_id)s, "
                "%(customer)s, %(type)s, "
                "%(time_us)s, %(properties)s, %(numbers)s, %(payload_hash)s, %(batch_id)s)"
                if conn.dialect.name == "postgresql"
                else "INSERT INTO events (source, event_id, customer, type, time_us, properties, "
                "numbers, payload_hash, batch_id) VALUES (:source, :event_id, :customer, :type, "
                ":time_us, "
                ":properties, :numbers, :payload_hash, :batch_id)",
                row,
            )
    engine.dispose()
    make_rules(tmp_path / "rules")


def test_an_old_postgresql_store_is_upgraded_in_place(pg_url: str, tmp_path: Path) -> None:
    """The three stored events move to their months' partitions with their pk, keys and
    hashes; the typed quantity is filled from numbers (e2: tokens 2.5; e3: bytes 3, the first
    numeric property by name); metering gives what it gave; a re-import of e2 is a duplicate,
    e4 is accepted with the next pk."""
    _old_store(pg_url, tmp_path)
    window = Window(
        "acme", to_us(datetime(2026, 9, 1, tzinfo=UTC)), to_us(datetime(2026, 11, 1, tzinfo=UTC))
    )
    before = {
        (e.pk, e.event_id, e.payload_hash, e.time_us, e.numbers)
        for e in table(
            pg_url,
            sa.table(
                "events",
                *(sa.column(c) for c in ("pk", "event_id", "payload_hash", "time_us", "numbers")),
            ),
        )
    }
    engine = open_store(pg_url)  # upgrades
    try:
        with engine.connect() as conn:
            assert conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar_one() == str(len(MIGRATIONS))
            assert partitions(conn) == ["events_y2026m09", "events_y2026m10"]
            assert (
                conn.exec_driver_sql("SELECT to_regclass('events_unpartitioned')").scalar() is None
            )
            assert (
                conn.exec_driver_sql(
                    "SELECT relkind FROM pg_class WHERE oid = to_regclass('events')"
                ).scalar()
                == "p"
            )
        stored = table(pg_url, events)
        assert {(e.pk, e.event_id, e.payload_hash, e.time_us, e.numbers) for e in stored} == before
        assert {e.event_id: (e.q_name, e.q_units, e.q_nanos) for e in stored} == {
            "e1": (None, None, None),
            "e2": ("tokens", 2, 500_000_000),
            "e3": ("bytes", 3, 0),
        }
        assert {(k.event_id, k.payload_hash) for k in table(pg_url, event_keys)} == {
            (e.event_id, e.payload_hash) for e in stored
        }
        assert measure(engine, TOKENS, [window])[window].quantity == Decimal(
            "9.5"
        )  # 2.5 + 7 (e3 from JSON)
        path = write(
            tmp_path / "b.csv",
            HEADER
            + _line("e2", type="llm.completion", time="2026-10-05T10:00:00Z", tokens="2.5")
            + _line("e4"),
        )
        report = run(pg_url, tmp_path / "rules", path)
        assert (report.accepted, report.duplicates, report.conflicts) == (1, 1, 0)
        e4 = [e for e in table(pg_url, events) if e.event_id == "e4"]
        assert e4[0].pk > max(pk for pk, *_ in before)
    finally:
        engine.dispose()


def test_an_old_sqlite_store_loses_the_redundant_index_and_metering_uses_the_covering_one(
    tmp_path: Path,
) -> None:
    """SQLite: the upgrade drops ix_events_type_customer_time (a prefix of ix_events_metering);
    EXPLAIN QUERY PLAN of each metering statement reads events through the covering index
    ix_events_metering only; results are what they were (9.5 tokens, 1 call)."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    _old_store(url, tmp_path)
    window = Window(
        "acme", to_us(datetime(2026, 9, 1, tzinfo=UTC)), to_us(datetime(2026, 11, 1, tzinfo=UTC))
    )
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            indexes = {
                name
                for (name,) in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
                    "AND sql IS NOT NULL"
                )
            }
        assert indexes == {"ix_events_metering"}
        statements: list[tuple[str, Any]] = []

        def capture(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> None:
            if statement.lstrip().startswith("SELECT") and "events" in statement:
                statements.append((statement, parameters))

        sa.event.listen(engine, "before_cursor_execute", capture)
        assert measure(engine, TOKENS, [window])[window].quantity == Decimal("9.5")
        assert measure(engine, CALLS, [window])[window].events == 1
        sa.event.remove(engine, "before_cursor_execute", capture)
        assert len(statements) == 2
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "CREATE TEMPORARY TABLE IF NOT EXISTS meterbook_windows (sid INTEGER PRIMARY KEY, "
                "customer VARCHAR(255), start_us BIGINT, end_us BIGINT)"
            )
            for statement, parameters in statements:
                plan = [
                    row[-1]
                    for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                ]
                on_events = [step for step in plan if " events " in f" {step} "]
                assert on_events and all(
                    "USING COVERING INDEX ix_events_metering" in step for step in on_events
                ), plan
    finally:
        engine.dispose()


def test_postgresql_metering_reads_the_covering_index(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: the metering statement of a sum meter reads the month's events through
    ix_events_metering (each partition's copy of it), never by a scan of the whole table
    when the index can serve."""
    path = write(
        tmp_path / "u.csv",
        HEADER
        + "".join(
            _line(
                f"t{i}",
                type="llm.completion",
                time=f"2026-10-{1 + i % 28:02d}T08:30:00Z",
                tokens=str(i),
            )
            for i in range(200)
        ),
    )
    assert run(pg_url, tmp_path / "rules", path).accepted == 200
    engine = open_store(pg_url)
    try:
        raw = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with raw.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE events")
        raw.dispose()
        statements: list[tuple[str, Any]] = []

        def capture(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> None:
            if statement.lstrip().startswith("SELECT") and "events" in statement:
                statements.append((statement, parameters))

        window = Window(
            "acme",
            to_us(datetime(2026, 10, 1, tzinfo=UTC)),
            to_us(datetime(2026, 11, 1, tzinfo=UTC)),
        )
        sa.event.listen(engine, "before_cursor_execute", capture)
        assert measure(engine, TOKENS, [window])[window].quantity == Decimal(sum(range(200)))
        sa.event.remove(engine, "before_cursor_execute", capture)
        [(statement, parameters)] = statements
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        assert (
            "Index Scan on events_y2026m10_type_customer_time_us" in plan
            or "Scan using events_y2026m10_type_customer_time_us" in plan
        ), plan
    finally:
        engine.dispose()


def test_typed_quantity_of_stored_numbers() -> None:
    assert typed_quantity("{}") == {"q_name": None, "q_units": None, "q_nanos": None}
    assert typed_quantity('{"tokens":[-3,-500000000]}') == {
        "q_name": "tokens",
        "q_units": -3,
        "q_nanos": -500000000,
    }


def test_looking_up_stored_keys_reads_the_key_index_not_the_history(
    pg_url: str, tmp_path: Path
) -> None:
    """The former lookup, ``(source, event_id) IN (500 pairs)``, ran as an index scan on
    ``source`` alone: each chunk re-read the source's whole history. With 20,000 events of
    one source stored, the lookup of a chunk's repeated keys is an index scan of
    event_keys' primary key on both columns, one probe per key (never a scan of the table)."""
    path = write(tmp_path / "u.csv", HEADER + "".join(_line(f"e{i}") for i in range(20_000)))
    assert run(pg_url, tmp_path / "rules", path).accepted == 20_000
    from ledger.ingest import _STORED_HASHES as statement

    maintenance = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with maintenance.connect() as conn:
        conn.exec_driver_sql("ANALYZE event_keys")
        plan = "\n".join(
            r[0]
            for r in conn.exec_driver_sql(
                "EXPLAIN " + statement,
                {"sources": ["app"] * 10, "ids": [f"e{i}" for i in range(10)]},
            )
        )
    maintenance.dispose()
    assert "Index Scan using event_keys_pkey on event_keys k" in plan, plan
    both = (
        "Index Cond: (((source)::text = (u.source)::text) "
        "AND ((event_id)::text = (u.event_id)::text))"
    )
    assert both in plan, plan
    assert "Seq Scan on event_keys" not in plan, plan
