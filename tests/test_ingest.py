"""Idempotent ingest on real stores (SQLite, and PostgreSQL when configured).

The rules and the import run: tests/support/ingest.py.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import ingest
from ledger.events import Event, parse_time
from ledger.importers.events import RawEvent
from ledger.ingest import Checks, retry_rejected
from ledger.rules import Rules
from ledger.store import batches, conflicts, event_keys, events, open_store, rejects
from tests.support.ingest import HEADER, NOW, check_sum, make_rules, run, table, write

CASES = [
    ("ok", "e,app,acme,api.request,2026-10-05T08:30:00Z,,,,,", None),
    ("no id", ",app,acme,api.request,2026-10-05T08:30:00Z,,,,,", "missing_field"),
    ("no customer", "e,app,,api.request,2026-10-05T08:30:00Z,,,,,", "missing_field"),
    ("no time", "e,app,acme,api.request,,,,,,", "missing_field"),
    ("long id", "x" * 256 + ",app,acme,api.request,2026-10-05T08:30:00Z,,,,,", "too_long"),
    ("no offset", "e,app,acme,api.request,2026-10-05T08:30:00,,,,,", "bad_time"),
    ("date only", "e,app,acme,api.request,2026-10-05,,,,,", "bad_time"),
    ("garbage time", "e,app,acme,api.request,yesterday,,,,,", "bad_time"),
    ("bad second", "e,app,acme,api.request,2026-10-05T08:30:61Z,,,,,", "bad_time"),
    ("unknown type", "e,app,acme,nope,2026-10-05T08:30:00Z,,,,,", "unknown_type"),
    ("unknown customer", "e,app,nobody,api.request,2026-10-05T08:30:00Z,,,,,", "unknown_customer"),
    ("future", "e,app,acme,api.request,2026-11-01T00:05:01Z,,,,,", "future_time"),
    ("just in time", "e,app,acme,api.request,2026-11-01T00:05:00Z,,,,,", None),
    ("no quantity", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,,,,,", "missing_field"),
    ("NaN", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,NaN,,,,", "bad_number"),
    ("Infinity", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,Infinity,,,,", "bad_number"),
    ("1e400", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,1e400,,,,", "bad_number"),
    ("10 places", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,0.0000000001,,,,", "bad_number"),
    ("garbage", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,12kg,,,,", "bad_number"),
    ("negative", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,-1,,,,", "negative_quantity"),
    (
        "negative max",
        "e,app,acme,storage.snapshot,2026-10-05T08:30:00Z,,,,-0.5,",
        "negative_quantity",
    ),
    ("filter applies", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,5,,eu,,", "missing_field"),
    ("filter skips", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,5,,us,,", None),
    ("bytes garbage eu", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,5,x,eu,,", "bad_number"),
    ("unique needs value", "e,app,acme,login,2026-10-05T08:30:00Z,,,,,", "missing_field"),
    ("unique any text", "e,app,acme,login,2026-10-05T08:30:00Z,,,,,bob", None),
    ("1e3 ok", "e,app,acme,llm.completion,2026-10-05T08:30:00Z,1e3,,,,", None),
    ("too many cells", "e,app,acme,api.request,2026-10-05T08:30:00Z,,,,,,extra", "bad_csv"),
]


@pytest.mark.parametrize(("name", "line", "reason"), CASES, ids=[c[0] for c in CASES])
def test_each_reason(
    store_url: str, tmp_path: Path, name: str, line: str, reason: str | None
) -> None:
    report = run(store_url, tmp_path / "rules", write(tmp_path / "u.csv", HEADER + line + "\n"))
    check_sum(report)
    assert report.received == 1
    if reason is None:
        assert report.accepted == 1, report
    else:
        assert report.reasons == {reason: 1}, report
        [reject] = table(store_url, rejects)
        assert (reject.reason, reject.file, reject.line) == (reason, str(tmp_path / "u.csv"), 2)
        assert reject.raw.startswith(line.split(",")[0][:10])


def test_json_reasons(store_url: str, tmp_path: Path) -> None:
    lines = [
        b'{"id": "a", "customer": "acme", "type": "llm.completion", "time": '
        b'"2026-10-05T08:30:00Z", "properties": {"tokens": 1.5}}',
        b'{"id": "b", "customer": "acme", "type": "llm.completion", "time": '
        b'"2026-10-05T08:30:00Z", "properties": {"tokens": NaN}}',
        b'{"id": "c", "customer": "acme", "type": "llm.completion", "time": '
        b'"2026-10-05T08:30:00Z", "properties": {"tokens": Infinity}}',
        b'{"id": "d", "customer": "acme", "type": "llm.completion", "time": '
        b'"2026-10-05T08:30:00Z", "properties": {"tokens": 1e400}}',
        b'{"id": "e", "customer": "acme", "type": "llm.completion", "time": '
        b'"2026-10-05T08:30:00Z", "properties": {"tokens": -3}}',
        b'{"id": "f", "customer": "acme", "type": "llm.completion", "time": '
        b'"2026-10-05T08:30:00Z", "properties": {"tokens": "7"}}',
        b'{"id": "g", "customer": "ac\xffme"}',
        b"{broken",
        b"",
    ]
    report = run(
        store_url, tmp_path / "rules", write(tmp_path / "u.jsonl", b"\n".join(lines) + b"\n")
    )
    check_sum(report)
    assert report.accepted == 2
    assert report.reasons == {
        "bad_number": 3,
        "negative_quantity": 1,
        "bad_encoding": 1,
        "bad_json": 1,
    }
    stored = {r.event_id: r for r in table(store_url, events)}
    assert (
        stored["a"].properties == '{"tokens":"1.5"}'
        and stored["a"].numbers == '{"tokens":[1,500000000]}'
    )


def test_cloudevents(store_url: str, tmp_path: Path) -> None:
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/eu",
        "type": "llm.completion",
        "subject": "acme",
        "time": "2026-10-05T08:30:00+02:00",
        "data": {"tokens": 12},
    }
    path = write(
        tmp_path / "ce.json", json.dumps([event, dict(event, id="ce-2", subject="nobody")])
    )
    report = run(store_url, tmp_path / "rules", path)
    assert (report.accepted, report.reasons) == (1, {"unknown_customer": 1})
    [row] = table(store_url, events)
    assert (row.source, row.event_id, row.customer) == ("/eu", "ce-1", "acme")


def test_hash_is_the_canonical_event_hash() -> None:
    rules = make_rules_tmp()
    checks = Checks(rules, NOW)
    ev = RawEvent(
        1,
        "",
        'e"1\\',
        "src\u2028",
        "acme",
        "llm.completion",
        "2026-10-05T08:30:00.250+02:00",
        dict(sorted({"région": 'é\n"x"', "tokens": "0012.500", "z": "1e3", "a": "-0"}.items())),
    )
    row = checks.row(ev, 1)
    canonical = Event.build(
        source=ev.source,
        id=ev.id,
        customer=ev.customer,
        type=ev.type,
        time=parse_time(ev.time),
        properties=ev.properties,
    )
    assert canonical.row(1) == dict(
        zip(
            [
                "source",
                "event_id",
                "customer",
                "type",
                "time_us",
                "properties",
                "numbers",
                "payload_hash",
                "batch_id",
            ],
            row,
            strict=True,
        )
    )


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    props=st.dictionaries(
        _text.filter(bool),
        st.one_of(_text, st.decimals(allow_nan=True).map(str), st.integers().map(str)),
    ),
    ident=_text.filter(bool),
    source=_text.filter(bool),
    when=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2026, 10, 1),
        timezones=st.sampled_from([UTC, parse_time("2026-01-01T00:00:00+05:30").tzinfo]),
    ),
)
def test_hash_matches_events_module(
    props: dict[str, str], ident: str, source: str, when: datetime
) -> None:
    checks = Checks(RULES, NOW)
    props = dict(sorted(props.items()))
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        text = when.strftime(fmt)
        text = text[:-2] + ":" + text[-2:]
        ev = RawEvent(1, "", ident, source, "acme", "api.request", text, props)
        row = checks.row(ev, 1)
        event = Event.build(
            source=source,
            id=ident,
            customer="acme",
            type="api.request",
            time=parse_time(text),
            properties=props,
        )
        assert row[4:8] == (
            event.time_us,
            event.properties_json,
            event.numbers_json,
            event.payload_hash,
        )


def make_rules_tmp() -> Rules:
    import tempfile

    return make_rules(Path(tempfile.mkdtemp()) / "rules")


RULES = make_rules_tmp()


def test_reingest_accepts_nothing_and_conflicts_are_quarantined(
    store_url: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "u.csv",
        HEADER
        + "e1,app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n"
        + "e2,app,acme,api.request,2026-10-05T08:31:00Z,,,,,\n"
        + "e2,app,acme,api.request,2026-10-05T08:31:00Z,,,,,\n"  # duplicate within the file
        + "e1,app,acme,api.request,2026-10-05T09:00:00Z,,,,,\n"  # conflict within the file
        + "e1,other,acme,api.request,2026-10-05T09:00:00Z,,,,,\n",
    )  # another source: another event
    first = run(store_url, tmp_path / "rules", path)
    assert (first.received, first.accepted, first.duplicates, first.conflicts) == (5, 3, 1, 1)
    again = run(store_url, tmp_path / "rules", path)
    assert (again.received, again.accepted, again.duplicates, again.conflicts) == (5, 0, 4, 1)
    stored = {(r.source, r.event_id): r for r in table(store_url, events)}
    assert stored[("app", "e1")].time_us == 1791189000000000  # the first one stored wins
    found = table(store_url, conflicts)
    assert len(found) == 2 and {c.line for c in found} == {5}
    assert all(c.stored_hash == stored[("app", "e1")].payload_hash != c.payload_hash for c in found)
    assert json.loads(found[0].payload)["time_us"] == 1791190800000000
    rows = table(store_url, batches)
    assert [(b.received, b.accepted, b.duplicates, b.conflicts) for b in rows] == [
        (5, 3, 1, 1),
        (5, 0, 4, 1),
    ]
    assert rows[0].sha256 == rows[1].sha256 and len(rows[0].sha256) == 64


def test_duplicates_across_chunks(store_url: str, tmp_path: Path) -> None:
    lines = [f"e{i % 7},app,acme,api.request,2026-10-05T08:3{i % 3}:00Z,,,,," for i in range(40)]
    report = run(
        store_url,
        tmp_path / "rules",
        write(tmp_path / "u.csv", HEADER + "\n".join(lines) + "\n"),
        chunk_size=4,
    )
    check_sum(report)
    assert report.accepted == 7
    assert report.conflicts + report.duplicates == 33
    assert len(table(store_url, events)) == 7


def test_unknown_columns_become_properties(store_url: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "u.csv",
        "time,customer,type,id,Zone,plan tier,empty\n"
        '2026-10-05T08:30:00Z,acme,api.request,e1,eu-1,"gold, ""new""",\n',
    )
    assert run(store_url, tmp_path / "rules", path).accepted == 1
    [row] = table(store_url, events)
    assert json.loads(row.properties) == {"Zone": "eu-1", "plan tier": 'gold, "new"'}
    assert row.source == "default"


def test_empty_file_and_header_only(store_url: str, tmp_path: Path) -> None:
    for name, text in (("empty.csv", ""), ("header.csv", HEADER), ("empty.jsonl", "\n\n")):
        report = run(store_url, tmp_path / "rules", write(tmp_path / name, text))
        assert (report.received, report.accepted, report.rejected) == (0, 0, 0)
    assert len(table(store_url, batches)) == 3


def test_hundred_megabyte_line(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        f.write(HEADER.encode())
        f.write(b"e1,app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n")
        f.write(b"e2,app,acme,api.request,2026-10-05T08:30:00Z,,,,,")
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write(b"\ne3,app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n")
    report = run(store_url, tmp_path / "rules", path)
    assert (report.received, report.accepted, report.reasons) == (3, 2, {"too_long": 1})
    [reject] = table(store_url, rejects)
    assert reject.line == 3 and len(reject.raw) < 2000


def test_crash_inside_leaves_nothing(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        f"e{i},app,{'acme' if i % 2 else 'nobody'},api.request,2026-10-05T08:30:00Z,,,,,"
        for i in range(100)
    ]
    path = write(tmp_path / "u.csv", HEADER + "\n".join(lines) + "\n")
    original = ingest._Batch.add
    calls = []

    def failing(self: ingest._Batch, chunk: list[RawEvent]) -> list[str]:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return original(self, chunk)

    monkeypatch.setattr(ingest._Batch, "add", failing)
    with pytest.raises(RuntimeError):
        run(store_url, tmp_path / "rules", path, chunk_size=10)
    for t in (events, rejects, batches, conflicts):
        assert table(store_url, t) == []


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


def test_kill_mid_import_leaves_nothing(store_url: str, tmp_path: Path) -> None:
    make_rules(tmp_path / "rules")
    lines = [f"e{i},app,acme,api.request,2026-10-05T08:30:00Z,,,,," for i in range(1000)]
    path = write(tmp_path / "u.csv", HEADER + "\n".join(lines) + "\n")
    open_store(store_url).dispose()
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, store_url, str(tmp_path / "rules"), str(path)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    for t in (events, rejects, batches):
        assert table(store_url, t) == []
    assert run(store_url, tmp_path / "rules", path).accepted == 1000


def test_retry_rejected_after_customer_added(store_url: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "u.csv",
        HEADER
        + "e1,app,initech,api.request,2026-10-05T08:30:00Z,,,,,\n"
        + "e2,app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n"
        + "e3,app,initech,api.request,2026-10-05,,,,,\n",
    )
    first = run(store_url, tmp_path / "rules", path)
    assert first.reasons == {"unknown_customer": 1, "bad_time": 1}
    rules = make_rules(
        tmp_path / "rules", "customers:\n  acme: {currency: USD}\n  initech: {currency: USD}\n"
    )
    engine = open_store(store_url)
    try:
        report = retry_rejected(engine, rules, now=NOW)
        assert (report.received, report.accepted, report.reasons) == (2, 1, {"bad_time": 1})
        again = retry_rejected(engine, rules, now=NOW)
        assert (again.received, again.accepted) == (1, 0)
    finally:
        engine.dispose()
    found = {r.reason: r.resolved_batch_id for r in table(store_url, rejects)}
    assert found["unknown_customer"] == report.batch_id and found["bad_time"] is None
    assert {r.event_id for r in table(store_url, events)} == {"e1", "e2"}


# --- the command -------------------------------------------------------------------------


def cli(workspace: Path, *args: str) -> tuple[int, str, str]:
    from ledger.cli import cli as command

    result = CliRunner().invoke(command, ["--workspace", str(workspace), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_lines(workspace: Path) -> None:
    sample = workspace / "samples" / "events.csv"
    code, out, _ = cli(workspace, "ingest", "--json", str(sample), str(sample))
    assert code == 1  # line 7 rejected (each time): exit 1, the other rows stored
    first, second = (json.loads(line) for line in out.splitlines())
    assert list(first) == [
        "file",
        "received",
        "accepted",
        "duplicates",
        "conflicts",
        "rejected",
        "reasons",
    ]
    assert first["received"] == second["received"] == 6
    assert (first["accepted"], second["accepted"], second["duplicates"]) == (4, 0, 5)
    code, out, _ = cli(workspace, "ingest", str(sample))
    assert (
        code == 1
        and "received 6, accepted 0, duplicates 5, conflicts 0, rejected 1 (unknown_customer 1)"
        in out
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "id;customer;type;time\ne;acme;api.request;2026-01-03T10:00:00Z\n",
            "delimiter looks like ';'",
        ),
        ("id,customer,type,time,id\n", "duplicate column 'id'"),
    ],
)
def test_cli_bad_header_refuses_every_file(workspace: Path, content: str, message: str) -> None:
    good = workspace / "samples" / "events.csv"
    bad = write(workspace / "bad.csv", content)
    code, out, err = cli(workspace, "ingest", str(good), str(bad))
    assert code == 2 and out == ""
    assert message in err and str(bad) in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    engine = open_store(f"sqlite:///{workspace / 'var' / 'events.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(batches)).scalar() == 0
    engine.dispose()


def test_cli_bad_usage(workspace: Path) -> None:
    assert cli(workspace, "ingest")[0] == 2
    code, _, err = cli(workspace, "ingest", str(workspace / "missing.csv"))
    assert code == 2 and "no such file" in err
    code, _, err = cli(
        workspace, "ingest", "--importer", "nope", str(workspace / "samples" / "events.csv")
    )
    assert code == 2 and "unknown importer 'nope'" in err
    weird = write(workspace / "data.bin", b"\x00\x01")
    code, _, err = cli(workspace, "ingest", str(weird))
    assert code == 2 and "no importer recognises" in err
    code, out, _ = cli(
        workspace, "ingest", "--importer", "events-csv", str(workspace / "samples" / "events.csv")
    )
    assert code == 1 and "accepted 4" in out


def test_cli_retry_rejected(workspace: Path) -> None:
    assert cli(workspace, "ingest", str(workspace / "samples" / "events.csv"))[0] == 1
    customers = workspace / "rules" / "customers.yaml"
    customers.write_text(customers.read_text() + "  nobody:\n    currency: USD\n")
    code, out, _ = cli(workspace, "ingest", "--retry-rejected", "--json")
    assert code == 0
    assert json.loads(out) == {
        "file": "<retry-rejected>",
        "received": 1,
        "accepted": 1,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
        "reasons": {},
    }


# --- invariants --------------------------------------------------------------------------


#: A row of the property below: (source, id, kind, customer, minute). ``ok`` rows are events
#: (payload = customer and minute); the other kinds are rows rejected for that reason.
_row = st.tuples(
    st.sampled_from(["a", "b"]),
    st.integers(0, 9),
    st.sampled_from(
        [
            "ok",
            "ok",
            "ok",
            "ok",
            "bad_number",
            "bad_time",
            "missing_field",
            "unknown_customer",
            "negative_quantity",
        ]
    ),
    st.sampled_from(["acme", "globex"]),
    st.integers(0, 2),
)
Row = tuple[str, int, str, str, int]


def _line(row: Row) -> str:
    source, ident, kind, customer, minute = row
    cells = {
        "id": f"e{ident}",
        "source": source,
        "customer": customer,
        "type": "llm.completion",
        "time": f"2026-10-05T08:3{minute}:00Z",
        "tokens": str(minute + 1),
    }
    cells.update(
        {
            "bad_number": {"tokens": "12kg"},
            "bad_time": {"time": "yesterday"},
            "missing_field": {"id": ""},
            "unknown_customer": {"customer": "nobody"},
            "negative_quantity": {"tokens": "-1"},
            "ok": {},
        }[kind]
    )
    return ",".join(
        [
            cells["id"],
            cells["source"],
            cells["customer"],
            cells["type"],
            cells["time"],
            cells["tokens"],
            "",
            "",
            "",
            "",
        ]
    )


def _payload_hash(row: Row) -> str:
    source, ident, _kind, customer, minute = row
    return Event.build(
        source=source,
        id=f"e{ident}",
        customer=customer,
        type="llm.completion",
        time=parse_time(f"2026-10-05T08:3{minute}:00Z"),
        properties={"tokens": str(minute + 1)},
    ).payload_hash


class _Model:
    """What the store must say, row by row: the first payload of a key wins; the same payload
    again is a duplicate, another one a conflict; a bad row is rejected with its one reason."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], str] = {}

    def ingest(self, part: list[Row]) -> tuple[int, int, int, int, dict[str, int]]:
        accepted = duplicates = found = 0
        reasons: dict[str, int] = {}
        for row in part:
            source, ident, kind, _customer, _minute = row
            if kind != "ok":
                reasons[kind] = reasons.get(kind, 0) + 1
                continue
            key, digest = (source, f"e{ident}"), _payload_hash(row)
            if key not in self.stored:
                self.stored[key] = digest
                accepted += 1
            elif self.stored[key] == digest:
                duplicates += 1
            else:
                found += 1
        return len(part), accepted, duplicates, found, reasons


def _clear(url: str) -> None:
    """Empty what ingest writes, so each hypothesis example starts from an empty store."""
    engine = open_store(url)
    try:
        with engine.begin() as conn:
            for t in (events, conflicts, rejects, batches):
                conn.execute(t.delete())
            if conn.dialect.name == "postgresql":
                conn.execute(event_keys.delete())  # the keys of the events (PostgreSQL)
    finally:
        engine.dispose()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_row, max_size=30), data=st.data())
def test_order_and_chunks_do_not_change_the_store(
    store_url: str, tmp_path_factory: pytest.TempPathFactory, rows: list[Row], data: st.DataObject
) -> None:
    """The same rows, in file order as one file, then shuffled and cut into files imported in
    any chunk size, leave the store :class:`_Model` predicts; each report adds up (received =
    accepted + duplicates + conflicts + rejected, per file and in total) and re-importing
    every file accepts nothing and changes no stored event."""
    shuffled = data.draw(st.permutations(rows))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=3)))
    stores = []
    for order, pieces in ((rows, []), (shuffled, cuts)):
        _clear(store_url)
        tmp = tmp_path_factory.mktemp("run")
        bounds = [0, *pieces, len(order)]
        parts = [list(order[a:b]) for a, b in itertools.pairwise(bounds)]
        paths = [
            write(tmp / f"part{i}.csv", HEADER + "".join(_line(r) + "\n" for r in part))
            for i, part in enumerate(parts)
        ]
        model = _Model()
        reports = []
        for part, path in zip(parts, paths, strict=True):
            report = run(store_url, tmp / "rules", path, chunk_size=data.draw(st.integers(1, 8)))
            check_sum(report)
            assert (
                report.received,
                report.accepted,
                report.duplicates,
                report.conflicts,
                dict(report.reasons),
            ) == model.ingest(part)
            reports.append(report)
        assert (
            sum(r.received for r in reports)
            == len(rows)
            == sum(r.accepted + r.duplicates + r.conflicts + r.rejected for r in reports)
        )
        stored = table(store_url, events)
        assert {(e.source, e.event_id): e.payload_hash for e in stored} == model.stored
        assert len(table(store_url, conflicts)) == sum(r.conflicts for r in reports)
        assert len(table(store_url, rejects)) == sum(r.rejected for r in reports)
        for part, path in zip(parts, paths, strict=True):  # re-ingest is a no-op
            again = run(store_url, tmp / "rules", path, chunk_size=data.draw(st.integers(1, 8)))
            check_sum(again)
            assert (
                again.received,
                again.accepted,
                again.duplicates,
                again.conflicts,
                dict(again.reasons),
            ) == model.ingest(part)
            assert again.accepted == 0
        assert table(store_url, events) == stored
        stores.append(model.stored)
    # a key that never had two payloads holds the same payload whatever the order
    first, second = stores
    assert set(first) == set(second)
    payloads: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        if row[2] == "ok":
            payloads.setdefault((row[0], f"e{row[1]}"), set()).add(_payload_hash(row))
    assert all(first[key] == second[key] for key, found in payloads.items() if len(found) == 1)


# --- concurrency (PostgreSQL) ------------------------------------------------------------

WORKER = """
import sys
from pathlib import Path
from ledger import ingest
from ledger.rules import load_rules
from ledger.store import open_store
engine = open_store(sys.argv[1])
path = Path(sys.argv[3])
report = ingest.ingest_file(
    engine, load_rules(Path(sys.argv[2])), path,
    ingest.select_importer(path, ingest.default_importers()), chunk_size=500,
)
print(report.to_json())
"""


def test_four_processes_store_each_event_once(pg_url: str, tmp_path: Path) -> None:
    make_rules(tmp_path / "rules")
    open_store(pg_url).dispose()
    files = []
    for w in range(4):
        # overlapping ranges, each file in its own order; ids 0..4999 overall
        ids = list(range(w * 1000, w * 1000 + 2000))
        if w % 2:
            ids.reverse()
        body = "".join(f"e{i},app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n" for i in ids)
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
    assert len(stored) == len({(e.source, e.event_id) for e in stored}) == 5000
    assert sum(r["accepted"] for r in reports) == 5000
    assert sum(r["duplicates"] for r in reports) == 8000 - 5000
    assert all(
        r["received"] == r["accepted"] + r["duplicates"] + r["conflicts"] + r["rejected"]
        for r in reports
    )
