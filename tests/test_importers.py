"""The usage-event importers: reading CSV, JSONL and CloudEvents, streaming and bounded."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ledger.importers.events import (
    CloudEventsJson,
    CloudEventsJsonl,
    CsvEvents,
    HeaderError,
    JsonlEvents,
    RawEvent,
    Source,
    importers,
    meterbook_importers,
    raw_text,
)
from ledger.ingest import default_importers, select_importer


def rows(
    importer: CsvEvents | JsonlEvents | CloudEventsJson, data: bytes, limit: int = 1 << 20
) -> list[RawEvent]:
    return list(importer.rows(Source(io.BytesIO(data), line_limit=limit)))


def test_csv_columns_and_properties() -> None:
    data = (
        b"id,source,customer,type,time,tokens,region,empty\r\n"
        b"e-1,,acme,llm.completion,2026-10-05T08:30:00Z,12,eu,\r\n"
    )
    [row] = rows(CsvEvents(), data)
    assert (row.line, row.id, row.source, row.customer, row.type) == (
        2,
        "e-1",
        "default",
        "acme",
        "llm.completion",
    )
    assert row.properties == {"region": "eu", "tokens": "12"}
    assert list(row.properties) == sorted(row.properties)
    assert row.reason == ""


def test_csv_quoted_field_ends_on_its_line_and_short_and_long_rows() -> None:
    """One line is one record: a quoted field holds commas and ``""`` but not a line
    break, so the two halves of ``"two\\nlines"`` are two rows (the first refused,
    the second judged on its own) and nothing after them is swallowed."""
    data = (
        b'id,customer,type,time,note\n"e-1",acme,t,2026-10-05T08:30:00Z,"two\nlines"\n'
        b'e-2,acme,t,2026-10-05T08:30:00Z,"a, ""b"""\n'
        b"e-3,acme,t,2026-10-05T08:30:00Z\n"
        b"e-4,acme,t,2026-10-05T08:30:00Z,x,extra\n\n"
    )
    opened, rest, quoted, short, long = rows(CsvEvents(), data)
    assert (opened.line, opened.reason) == (2, "bad_csv")
    assert raw_text(opened.raw) == '"e-1",acme,t,2026-10-05T08:30:00Z,"two'
    assert (rest.line, rest.reason, rest.id, rest.customer) == (3, "", 'lines"', "")
    assert quoted.properties == {"note": 'a, "b"'} and quoted.line == 4
    assert short.properties == {} and short.line == 5
    assert long.reason == "bad_csv" and long.line == 6
    assert raw_text(long.raw) == "e-4,acme,t,2026-10-05T08:30:00Z,x,extra"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"id,customer,type,time,id\n", "duplicate column 'id'"),
        (b"id,customer,type\n", "missing column 'time'"),
        (b"id;customer;type;time\n", "delimiter looks like ';'"),
    ],
)
def test_csv_bad_header(header: bytes, message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        rows(CsvEvents(), header + b"e-1,acme,t,2026-10-05T08:30:00Z\n")


def test_csv_empty_and_header_only() -> None:
    assert rows(CsvEvents(), b"") == []
    assert rows(CsvEvents(), b"id,customer,type,time\n") == []
    assert rows(CsvEvents(), b"\xef\xbb\xbfid,customer,type,time\n") == []


def test_invalid_utf8_is_one_row() -> None:
    data = (
        b"id,customer,type,time\ne-1,acme,t,2026-10-05T08:30:00Z\n"
        b"e-2,ac\xffme,t,2026-10-05T08:30:00Z\ne-3,acme,t,2026-10-05T08:30:00Z\n"
    )
    got = rows(CsvEvents(), data)
    assert [(r.line, r.reason) for r in got] == [(2, ""), (3, "bad_encoding"), (4, "")]
    assert "\\xff" in raw_text(got[1].raw)


def test_overlong_line_is_skipped_in_bounded_memory() -> None:
    big = b"x" * 5000
    data = b'{"id":"a"}\n' + big + b"\n" + b'{"id":"b"}\n' + big
    got = rows(JsonlEvents(), data, limit=1000)
    assert [(r.line, r.reason, r.id) for r in got] == [
        (1, "", "a"),
        (2, "too_long", ""),
        (3, "", "b"),
        (4, "too_long", ""),
    ]
    assert len(raw_text(got[1].raw)) < 1100


def test_source_hashes_every_byte() -> None:
    import hashlib

    data = b"\xef\xbb\xbfid,customer,type,time\n" + b"e,acme,t,2026-10-05T08:30:00Z\n" * 1000
    source = Source(io.BytesIO(data))
    list(CsvEvents().rows(source))
    assert source.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert source.bytes_read == len(data)


def test_jsonl_numbers_keep_their_text() -> None:
    data = (
        b'{"id": 7, "customer": "acme", "type": "t", "time": "2026-10-05T08:30:00Z", '
        b'"properties": {"a": 1.50, "b": 1e400, "c": NaN, "d": -2, "e": true, "f": null, '
        b'"g": "x"}}\n'
    )
    [row] = rows(JsonlEvents(), data)
    assert row.id == "7"
    assert row.properties == {
        "a": "1.50",
        "b": "1e400",
        "c": "NaN",
        "d": "-2",
        "e": "true",
        "g": "x",
    }
    assert all(type(v) is not float for v in row.properties.values())


@pytest.mark.parametrize(
    "line",
    [
        b"{not json",
        b"[1, 2]",
        b'{"id": "x", "properties": [1]}',
        b'{"id": "x", "properties": {"a": {"b": 1}}}',
        b'{"id": {"x": 1}}',
    ],
)
def test_jsonl_bad_json(line: bytes) -> None:
    [row] = rows(JsonlEvents(), line + b"\n")
    assert row.reason == "bad_json"
    assert raw_text(row.raw) == line.decode()


def test_cloudevents_jsonl_and_json_array() -> None:
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/meter/eu",
        "type": "api.request",
        "subject": "acme",
        "time": "2026-10-05T08:30:00Z",
        "data": {"tokens": 5},
    }
    [row] = rows(CloudEventsJsonl(), json.dumps(event).encode() + b"\n")
    assert (row.id, row.source, row.customer, row.properties) == (
        "ce-1",
        "/meter/eu",
        "acme",
        {"tokens": "5"},
    )
    many = [dict(event, id=f"ce-{i}") for i in range(50)]
    text = json.dumps(many, indent=2).encode()
    got = rows(CloudEventsJson(), text, limit=4096)
    assert [r.id for r in got] == [f"ce-{i}" for i in range(50)]
    assert got[0].line == 2 and got[1].line > got[0].line
    [single] = rows(CloudEventsJson(), json.dumps(event).encode())
    assert single.id == "ce-1"


def test_cloudevents_json_stops_at_broken_element() -> None:
    text = (
        b'[{"specversion": "1.0", "id": "a", "subject": "acme"},\n'
        b' {"specversion": broken}, {"id": "c"}]'
    )
    got = rows(CloudEventsJson(), text)
    assert [(r.id, r.reason) for r in got] == [("a", ""), ("", "bad_json")]
    assert got[1].line == 2


def test_identify_by_extension_and_first_line(tmp_path: Path) -> None:
    csv_file = tmp_path / "u.csv"
    csv_file.write_text("id,customer,type,time\n")
    jsonl = tmp_path / "u.jsonl"
    jsonl.write_text('{"id": "a"}\n')
    ce_jsonl = tmp_path / "ce.jsonl"
    ce_jsonl.write_text('{"specversion": "1.0", "id": "a"}\n')
    ce_json = tmp_path / "ce.json"
    ce_json.write_text('[{"specversion": "1.0", "id": "a"}]')
    found = {
        p.name: select_importer(p, default_importers()).name
        for p in (csv_file, jsonl, ce_jsonl, ce_json)
    }
    assert found == {
        "u.csv": "events-csv",
        "u.jsonl": "events-jsonl",
        "ce.jsonl": "cloudevents-jsonl",
        "ce.json": "cloudevents-json",
    }


def test_identify_reads_big_files(tmp_path: Path) -> None:
    """beangulp skips files over 8 MiB; meterbook's identify only sniffs the head."""
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("id,customer,type,time\n")
        f.write("e,acme,t,2026-10-05T08:30:00Z\n" * 400_000)
    assert path.stat().st_size > 8 * 1024 * 1024
    assert CsvEvents().identify(str(path))
    assert sum(1 for _ in CsvEvents().read(path)) == 400_000


def test_hook_registers_first_party_importers() -> None:
    assert [i.name for i in meterbook_importers()] == [i.name for i in importers()]
    assert all(i.extract("x", []) == [] for i in importers())
