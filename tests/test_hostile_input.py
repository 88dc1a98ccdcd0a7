"""Hostile input (issue 19): each attack on the importers, the exports and the terminal, re-run.

Every file goes through ``meterbook ingest``'s engine (importer by name, header
check, one transaction) into a real SQLite store, and every report is checked by
:func:`ledger.bench.fuzz.check_one`: refused whole with the store unchanged, or
``received = accepted + duplicates + conflicts + rejected`` with one outcome per
physical line. The fuzz test at the end runs the same check on files hypothesis makes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from ledger.bench import fuzz
from ledger.errors import BadInput
from ledger.escaping import SpreadsheetCsv, for_spreadsheet, for_terminal
from ledger.events import TimeError, number_of, parse_day, parse_number, parse_time, to_us
from ledger.importers.events import JsonlEvents, Source, csv_records
from ledger.ingest import ImportReport, select_importer
from ledger.registry import load_registry
from ledger.reports.table import Report, Table
from ledger.rules import Rules
from ledger.statements import write_statement
from ledger.store import events, live_totals, open_store, payments, rejects
from tests.support.reports import accounting_workspace
from tests.support.statements import make_session, statement_event
from tests.support.workspaces import insert_events, run_cli, write_workspace

IMPORTERS = list(load_registry(None).importers)
EVENTS_HEADER = b"id,source,customer,type,time,tokens,gb,region\n"


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[tuple[Engine, Rules]]:
    """A real store, SQLite and (when configured) PostgreSQL, and the fuzz workspace's rules."""
    engine = open_store(store_url)
    yield engine, fuzz.workspace_rules(tmp_path / "rules")
    engine.dispose()


def ingest(store: tuple[Engine, Rules], path: Path, data: bytes, importer: str) -> ImportReport:
    """Import ``data`` (written to ``path``) and check the invariants; the report."""
    path.write_bytes(data)
    outcome = fuzz.check_one(*store, path, importer, IMPORTERS)
    assert outcome.report is not None, outcome.refused
    return outcome.report


def reject_rows(engine: Engine) -> list[tuple[int, str, str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(  # type: ignore[misc]
                sa.select(
                    rejects.c.line, rejects.c.reason, rejects.c.detail, rejects.c.raw
                ).order_by(rejects.c.id)
            )
        ]


def event_row(
    i: int, *, tokens: str = "", gb: str = "", when: str = "2026-10-05T08:30:00Z", type_: str = ""
) -> bytes:
    kind = type_ or ("llm.completion" if tokens else "storage.snapshot" if gb else "api.request")
    return f"e-{i},app,acme,{kind},{when},{tokens},{gb},eu\n".encode()


# --- item 3: a quote cannot swallow rows ----------------------------------------------------------


@pytest.mark.parametrize("tail_kib", [0, 200])
def test_an_unbalanced_quote_costs_its_own_line_only(
    store: tuple[Engine, Rules], tmp_path: Path, tail_kib: int
) -> None:
    """1,000 rows, row 6 (line 7) opens a quote it never closes: before, "received 6" (994
    rows neither accepted nor rejected), and with 128 KiB after it a traceback. Now line 7
    is rejected ``bad_csv`` and the 999 others are accepted; with 200 KiB of rows after it,
    the same (the csv field limit is never reached: a field ends on its line)."""
    rows = [event_row(i) for i in range(1000)]
    rows[5] = b'e-5,app,acme,api.request,2026-10-05T08:30:00Z,,,"eu\n'
    filler = [event_row(10_000 + i) for i in range(tail_kib * 1024 // len(rows[0]))]
    report = ingest(
        store, tmp_path / "quote.csv", EVENTS_HEADER + b"".join(rows + filler), "events-csv"
    )
    assert (report.received, report.accepted, report.rejected) == (
        1000 + len(filler),
        999 + len(filler),
        1,
    )
    [(line, reason, detail, raw)] = reject_rows(store[0])
    assert (line, reason) == (7, "bad_csv") and "does not end on its line" in detail
    assert raw == 'e-5,app,acme,api.request,2026-10-05T08:30:00Z,,,"eu'


def test_text_after_a_closing_quote_and_quotes_inside_fields(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """``"eu"x`` is malformed (bad_csv); a quote inside an unquoted field and ``""`` inside a
    quoted one are text; a quoted comma is a comma."""
    data = (
        EVENTS_HEADER + b'e-1,app,acme,api.request,2026-10-05T08:30:00Z,,,"eu"x\n'
        b'e-2,app,acme,api.request,2026-10-05T08:30:00Z,,,e"u\n'
        b'e-3,app,acme,api.request,2026-10-05T08:30:00Z,,,"e,""u"""\n'
    )
    report = ingest(store, tmp_path / "q.csv", data, "events-csv")
    assert (report.accepted, report.reasons) == (2, {"bad_csv": 1})
    with store[0].connect() as conn:
        assert sorted(conn.execute(sa.select(events.c.properties)).scalars()) == [
            '{"region":"e,\\"u\\""}',
            '{"region":"e\\"u"}',
        ]


@pytest.mark.parametrize(("name", "ending"), [("LF", b"\n"), ("CRLF", b"\r\n"), ("CR", b"\r")])
def test_line_endings(
    store: tuple[Engine, Rules], tmp_path: Path, name: str, ending: bytes
) -> None:
    """LF, CRLF and CR-only files read the same (before, a CR file was refused with csv.Error)."""
    lines = [EVENTS_HEADER.rstrip(b"\n")] + [event_row(i).rstrip(b"\n") for i in range(5)]
    report = ingest(store, tmp_path / f"{name}.csv", ending.join(lines) + ending, "events-csv")
    assert (report.received, report.accepted) == (5, 5)


def test_a_stray_cr_rejects_its_row_not_the_file(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """A CR inside an unquoted field of an LF (or CRLF) file: that row ``bad_csv``, the rest read;
    inside a quoted field it is text (and printed escaped, see the reconcile test)."""
    data = (
        EVENTS_HEADER
        + event_row(1)
        + b"e-2,app,acme,api.request,2026-10-05T08:30:00Z,,,e\ru\n"
        + event_row(3)
        + b'e-4,app,acme,api.request,2026-10-05T08:30:00Z,,,"e\ru"\n'
    )
    report = ingest(store, tmp_path / "cr.csv", data, "events-csv")
    assert (report.received, report.accepted, report.reasons) == (4, 3, {"bad_csv": 1})
    [(line, _, detail, raw)] = reject_rows(store[0])
    assert line == 3 and "carriage return" in detail and raw.endswith("e\ru")


def test_nul_is_rejected_per_row(store: tuple[Engine, Rules], tmp_path: Path) -> None:
    """No store keeps a NUL (PostgreSQL text cannot): the row is ``bad_encoding``, its raw text
    kept with ``\\x00`` written out."""
    data = (
        EVENTS_HEADER
        + event_row(1)
        + b"e-2,app,acme,api.request,2026-10-05T08:30:00Z,,,e\x00u\n"
        + event_row(3)
    )
    report = ingest(store, tmp_path / "nul.csv", data, "events-csv")
    assert (report.accepted, report.reasons) == (2, {"bad_encoding": 1})
    [(line, _, detail, raw)] = reject_rows(store[0])
    assert line == 3 and "NUL" in detail and "\x00" not in raw and "e\\x00u" in raw


# --- JSON: string validity and depth per row ------------------------------------------------------


def test_json_lone_surrogate_nul_and_deep_nesting_are_rows(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """``\\ud800`` (before: UnicodeEncodeError) and ``\\u0000`` are ``bad_json``; a line nested
    100,000 deep (before: RecursionError) is ``bad_json``; the lines around them are read."""
    good = b'{"id":"j-%d","customer":"acme","type":"api.request","time":"2026-10-05T08:30:00Z"}\n'
    data = (
        good
        % 1
        + b'{"id":"j-2","customer":"acme","type":"api.request","time":"2026-10-05T08:30:00Z",'
        b'"properties":{"x":"\\ud800"}}\n'
        + b"[" * 100_000
        + b"\n"
        + b'{"id":"j-\\u0000","customer":"acme","type":"api.request",'
        + b'"time":"2026-10-05T08:30:00Z"}\n'
        + good % 5
    )
    report = ingest(store, tmp_path / "e.jsonl", data, "events-jsonl")
    assert (report.received, report.accepted, report.reasons) == (5, 2, {"bad_json": 3})
    details = [d for _, _, d, _ in reject_rows(store[0])]
    assert "properties.x" in details[0] and "\\ud800" in details[0]
    assert "nested too deeply" in details[1] and "id" in details[2] and "\\u0000" in details[2]


def test_cloudevents_array_skips_a_too_deep_element(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """In a CloudEvents array an element nested 100,000 deep is one ``bad_json`` row and the
    elements after it are read; one that never closes makes the rest of the file one reject."""
    ev = (
        b'{"specversion":"1.0","id":"c-%d","source":"app","subject":"acme","type":"api.request",'
        b'"time":"2026-10-05T08:30:00Z"}'
    )
    deep = b"[" * 100_000 + b"]" * 100_000
    data = (
        b"[" + ev % 1 + b"," + deep + b",\n" + ev % 2 + b"," + b"[" * 100_000 + b"," + ev % 3 + b"]"
    )
    report = ingest(store, tmp_path / "c.json", data, "cloudevents-json")
    assert (report.received, report.accepted, report.reasons) == (4, 2, {"bad_json": 2})
    details = [d for _, _, d, _ in reject_rows(store[0])]
    assert details[0].startswith("nested too deeply") and details[1].endswith(
        "the rest of the file is unreadable"
    )


# --- item 1 and lenient numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("1000000000000000", (10**15, 0)),
        ("-1000000000000000", (-(10**15), 0)),
        ("1.5e3", (1500, 0)),
        ("0.000000001", (0, 1)),
        ("12.50", (12, 500_000_000)),
        ("1000000000000001", None),
        ("1e16", None),
        ("9223372036854775808", None),
        ("1_000", None),
        (" 5", None),
        ("5 ", None),
        ("+5", None),
        (".5", None),
        ("5.", None),
        ("\u0665", None),
        ("NaN", None),
        ("Infinity", None),
        ("0x10", None),
        ("1e-400", None),
        ("0.0000000001", None),
    ],
)
def test_number_grammar_and_bounds(text: str, pair: tuple[int, int] | None) -> None:
    """How a quantity may be written: ``-``, digits, ``.`` digits, exponent; |x| <= 10**15, 9 places
    (Before: Decimal took ``1_000``, `` 5`` and the Arabic-Indic five; 10**16 was stored.)"""
    assert number_of(text) == pair


def test_numbers_over_10_15_are_rejected_in_every_importer(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """A max meter of 10**16 was clamped to 2**63 - 1: now ``bad_number`` per row, in events
    (CSV and JSON numbers), payments and live totals; 10**15 itself is accepted."""
    csv_report = ingest(
        store,
        tmp_path / "n.csv",
        EVENTS_HEADER
        + event_row(1, gb="1000000000000000")
        + event_row(2, gb="10000000000000000")
        + event_row(3, tokens="1_000")
        + event_row(4, tokens=" 5"),
        "events-csv",
    )
    assert (csv_report.accepted, csv_report.reasons) == (1, {"bad_number": 3})
    jsonl = (
        b'{"id":"big","customer":"acme","type":"storage.snapshot","time":"2026-10-05T08:30:00Z",'
        b'"properties":{"gb":10000000000000001}}\n'
    )
    assert ingest(store, tmp_path / "n.jsonl", jsonl, "events-jsonl").reasons == {"bad_number": 1}
    pay = (
        b"date,amount,currency,invoice,reference\n2026-10-20,10000000000000000,USD,,P-1\n"
        b"2026-10-20,1_0.00,USD,,P-2\n2026-10-20, 5.00,USD,,P-3\n"
        b"2026-10-20,1000000000000000,USD,,P-4\n"
    )
    report = ingest(store, tmp_path / "p.csv", pay, "payments-csv")
    assert (report.accepted, report.reasons) == (1, {"bad_number": 3})
    live = (
        b"date,customer,meter,quantity,source\n2026-10-01,acme,peak,1e16,a\n"
        b"2026-10-01,acme,calls,1_0,b\n"
        b"2026-10-01,acme,calls,10,c\n"
    )
    report = ingest(store, tmp_path / "l.csv", live, "live-totals")
    assert (report.accepted, report.reasons) == (1, {"bad_number": 2})
    details = [d for _, r, d, _ in reject_rows(store[0])]
    assert (
        "gb: '10000000000000000' is too large (at most 10**15 in absolute value) (meter peak)"
        in details
    )
    assert "amount: '1_0.00' is not a plain decimal number (such as 12, -0.5 or 1.5e3)" in details
    with store[0].connect() as conn:
        assert conn.execute(sa.select(payments.c.amount)).scalars().all() == ["1000000000000000.00"]
        assert conn.execute(sa.select(live_totals.c.units)).scalars().all() == [10]


# --- item 4 and timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05T10:00Z",
        "20260105T100000Z",
        "2026-01-05 10:00:00Z",
        "2026-W02-1T10:00:00Z",
        "2026-01-05T10:00:00",
        "2026-01-05T10:00:00+0100",
        "2026-01-05T10:00:00+01",
        " 2026-01-05T10:00:00Z",
        "2026-01-05T10:00:60Z",
        "2026-01-05T24:00:00Z",
        "2026-01-05T10:00:00+24:00",
        "2026-01-05T10:00:00,5Z",
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00+01:00",
        "0000-01-01T00:00:00Z",
        "2026-01-05T10:00:00.Z",
        "２026-01-05T10:00:00Z",
    ],
)
def test_times_outside_rfc_3339_or_before_1970_are_refused(text: str) -> None:
    """Before, Python's fromisoformat took the first two forms (and a space, week dates,
    ``+0100``), and stored 0001-01-01T00:00:00+01:00 as year 0."""
    with pytest.raises(TimeError):
        parse_time(text)


def test_lower_case_t_and_z_and_fractions() -> None:
    """RFC 3339 §5.6 allows ``t`` and ``z`` (before: refused); fractions are cut to microseconds."""
    assert parse_time("2026-01-05t10:00:00z") == parse_time("2026-01-05T10:00:00Z")
    assert to_us(parse_time("1970-01-01T00:00:00Z")) == 0
    assert to_us(parse_time("1970-01-01T01:00:00.123456789+01:00")) == 123_456
    assert parse_time("2026-01-05T10:00:00-00:00") == parse_time("2026-01-05T10:00:00Z")


def test_days_before_1970_are_rejected_in_payments_and_live_totals(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """A payment dated 0001-01-01 was posted into books/0001/ and blocked every close after:
    now ``bad_date``, as 1969 and week dates are; events before 1970 are ``bad_time``."""
    pay = (
        b"date,amount,currency,invoice,reference\n0001-01-01,5.00,USD,,P-1\n"
        b"1969-12-31,5.00,USD,,P-2\n"
        b"2026-W42-1,5.00,USD,,P-3\n1970-01-01,5.00,USD,,P-4\n"
    )
    report = ingest(store, tmp_path / "p.csv", pay, "payments-csv")
    assert (report.accepted, report.reasons) == (1, {"bad_date": 3})
    live = b"date,customer,meter,quantity\n1969-12-31,acme,calls,1\n2026-10-01,acme,calls,1\n"
    assert ingest(store, tmp_path / "l.csv", live, "live-totals").reasons == {"bad_date": 1}
    ev = (
        EVENTS_HEADER
        + event_row(1, when="1969-12-31T23:59:59Z")
        + event_row(2, when="0001-01-01T00:00:00+01:00")
        + event_row(3, when="2026-10-05t08:30:00z")
    )
    report = ingest(store, tmp_path / "e.csv", ev, "events-csv")
    assert (report.accepted, report.reasons) == (1, {"bad_time": 2})
    assert parse_day("1970-01-01") == date(1970, 1, 1)
    with pytest.raises(ValueError, match="before 1970-01-01"):
        parse_day("0001-01-01")
    with store[0].connect() as conn:
        assert conn.execute(sa.select(payments.c.date)).scalars().all() == ["1970-01-01"]


def test_parse_number_keeps_every_place() -> None:
    assert parse_number("60.00") == Decimal("60.00")
    with pytest.raises(ValueError, match="too large"):
        parse_number("1e16")


# --- item 11: CSV exports -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.50", "-12.50"),
        ("-3", "-3"),
        ("12", "12"),
        ("e-1", "e-1"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_formula_prefixes_are_neutralised(cell: str, safe: str) -> None:
    """OWASP's list: a leading ``=``, ``+``, ``-``, ``@``, tab or CR gets a ``'``; a plain
    decimal number (a negative amount) stays a number."""
    assert for_spreadsheet(cell) == safe


def test_spreadsheet_csv_quotes_neutralised_cells_and_reads_back() -> None:
    out = io.StringIO()
    SpreadsheetCsv(out).writerows(
        [["a", "b", "c"], ["=1+1", "-12.50", 'x,"y"'], ["plain", "", None]]
    )
    assert out.getvalue() == 'a,b,c\n"\'=1+1",-12.50,"x,""y"""\nplain,,\n'
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["a", "b", "c"],
        ["'=1+1", "-12.50", 'x,"y"'],
        ["plain", "", ""],
    ]


def test_report_csv_neutralises_text_and_keeps_amounts() -> None:
    """``report --csv``: a customer cell ``=cmd`` is written ``'=cmd``; -12.50 stays -12.50."""
    report = Report(
        "aging",
        "Aging",
        "m",
        (
            Table(
                "open",
                ("customer", "amount"),
                [("=cmd|'/C calc'!A0", Decimal("-12.50")), ("acme", Decimal("3"))],
            ),
        ),
    )
    assert (
        report.to_csv()
        == "table,customer,amount\nopen,\"'=cmd|'/C calc'!A0\",-12.50\nopen,acme,3\n"
    )


def test_statement_csv_neutralises_event_cells(tmp_path: Path) -> None:
    """The statement's evidence CSV writes an event id ``=HYPERLINK(...)`` as text; the
    quantities (engine-formatted numbers) are untouched."""
    session = make_session(tmp_path / "ws", f"sqlite:///{tmp_path / 'events.sqlite'}")
    evil = statement_event("acme", '=HYPERLINK("http://evil","pay")', "2026-09-03T10:00:00Z")
    insert_events(session.engine, [evil])
    files = write_statement(
        session, "acme", which="2026-09-15", out=tmp_path / "out", today=date(2026, 10, 20)
    )
    rows = list(csv.reader(io.StringIO(Path(files.csv).read_text())))
    ids = [r[4] for r in rows[1:]]
    assert '\'=HYPERLINK("http://evil","pay")' in ids
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    assert all(r[6] == "1" for r in rows[1:] if r[0] == "api_calls")


# --- item 12: the terminal ------------------------------------------------------------------------


def test_for_terminal_escapes_controls_and_bidi_only() -> None:
    assert (
        for_terminal("a\nb\rc\td\x1b[31m\x7f\x85\u2028\u202e")
        == "a\\nb\\rc\\td\\x1b[31m\\x7f\\x85\\u2028\\u202e"
    )
    assert for_terminal("Café 東京 €") == "Café 東京 €"


def test_reconcile_output_cannot_be_forged_by_a_payment_reference(tmp_path: Path) -> None:
    """A reference holding a CR (quoted CSV field) and an escape sequence: ``reconcile`` prints
    one line per finding, with the control characters written out."""
    root = write_workspace(
        tmp_path / "ws", meters=fuzz.METERS, plans=fuzz.PLANS, customers=fuzz.CUSTOMERS
    )
    bank = tmp_path / "bank.csv"
    bank.write_bytes(
        b"date,amount,currency,invoice,reference\n"
        b'2026-11-20,15.00,USD,,"BANK-1\rerror   forged: ok"\n'
        b"2026-11-21,5.00,USD,,BANK-2\x1b[2J\n"
    )
    assert run_cli(root, "ingest", str(bank)).exit_code == 0
    result = run_cli(root, "reconcile", "2026-11")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 4  # header, two findings, summary
    assert "payment BANK-1\\rerror   forged: ok of 15.00 USD" in lines[1]
    assert "BANK-2\\x1b[2J" in lines[2]
    assert not any(ch in result.output for ch in "\r\x1b")


# --- deliver 7: fuzz ------------------------------------------------------------------------------


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    importer=st.sampled_from(sorted(fuzz.SEEDS)),
    seed=st.integers(0, 2**32 - 1),
    raw=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_fuzz_every_importer(
    store: tuple[Engine, Rules], tmp_path: Path, importer: str, seed: int, raw: bytes | None
) -> None:
    """Random bytes and mutated valid files through every importer: refused whole with the store
    unchanged, or one outcome per row with received = the sum of outcomes; never a traceback."""
    import random

    data = raw if raw is not None else fuzz.mutate(random.Random(seed), fuzz.SEEDS[importer])
    path = tmp_path / f"fuzz.{'json' if 'json' in importer else 'csv'}"
    path.write_bytes(data)
    try:
        fuzz.check_one(*store, path, importer, IMPORTERS)
    except BadInput as exc:  # check_one turns refusals into outcomes; anything else is a failure
        raise AssertionError(f"unexpected refusal escaped: {exc}") from None


def test_every_csv_the_engine_writes_goes_through_the_spreadsheet_writer() -> None:
    """Statement evidence, ``report --csv``, the journal export and the portal's evidence CSV use
    :class:`ledger.escaping.SpreadsheetCsv`; only the demo's and the benchmarks' own input files
    (synthetic usage, never opened by a customer) use :func:`csv.writer` directly."""
    root = Path(__file__).resolve().parent.parent / "ledger"
    direct = sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if "csv.writer(" in p.read_text()
    )
    assert [p for p in direct if not p.startswith("bench/")] == ["demo.py", "escaping.py"]
    for module in ("statements.py", "reports/table.py", "export.py", "api/app.py"):
        assert "SpreadsheetCsv(" in (root / module).read_text(), module


@pytest.mark.parametrize(
    ("name", "data", "importer"),
    [
        (
            "bank.csv",
            b"date,amount,currency,invoice,reference\r2026-10-20,1.00,USD,,R-1\r",
            "payments-csv",
        ),
        ("totals.csv", b"date,customer,meter,quantity\r2026-10-01,acme,calls,3\r", "live-totals"),
        (
            "ce.jsonl",
            b'{"specversion":"1.0","id":"c-1","source":"app","subject":"acme","type":"api.request",'
            b'"time":"2026-10-05T08:30:00Z"}\r',
            "cloudevents-jsonl",
        ),
    ],
)
def test_cr_only_files_are_identified_by_content(
    tmp_path: Path, name: str, data: bytes, importer: str
) -> None:
    """Identification reads the first line with the same line ends as the importers: a CR-only
    payments file is the payments importer's (before: the events importer's, refused whole)."""
    path = tmp_path / name
    path.write_bytes(data)
    assert select_importer(path, IMPORTERS).name == importer


def test_an_exponent_no_decimal_holds_is_a_reject_not_a_traceback(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """``1e99999999999999999999`` has the grammar of a number but no Decimal holds it: the row
    is ``bad_number`` ("out of range") in events, payments and live totals."""
    huge = "1e99999999999999999999"
    events_csv = EVENTS_HEADER + event_row(1, gb=huge) + event_row(2, tokens="-" + huge[:-1])
    report = ingest(store, tmp_path / "e.csv", events_csv, "events-csv")
    assert report.reasons == {"bad_number": 2}
    pay = f"date,amount,currency,invoice,reference\n2026-10-20,{huge},USD,,P-1\n".encode()
    assert ingest(store, tmp_path / "p.csv", pay, "payments-csv").reasons == {"bad_number": 1}
    live = f"date,customer,meter,quantity\n2026-10-01,acme,calls,{huge}\n".encode()
    assert ingest(store, tmp_path / "l.csv", live, "live-totals").reasons == {"bad_number": 1}
    assert all("out of range" in d for _, _, d, _ in reject_rows(store[0]))


def test_a_lone_surrogate_in_a_key_never_reaches_a_stored_detail(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """A property named ``\\ud800tokens`` (found by the fuzz script, seed 11): the reject's
    detail names it escaped; before, the detail itself could not be stored (UnicodeEncodeError)."""
    data = (
        b'[{"specversion":"1.0","id":"a-2","source":"app","subject":"beta","type":"llm.completion",'
        b'"time":"2026-10-05T08:31:00Z","data":{"\\ud800tokens":7}},'
        b'{"specversion":"1.0","id":"a-3","source":"app","subject":"beta","type":"llm.completion",'
        b'"time":"2026-10-05T08:31:00Z","data":{"\\ud800tokens":[7]}}]'
    )
    report = ingest(store, tmp_path / "k.json", data, "cloudevents-json")
    assert report.reasons == {"bad_json": 2}
    assert [d for _, _, d, _ in reject_rows(store[0])] == [
        "'data.\\ud800tokens': holds \\ud800, which is not text (a NUL or a lone surrogate)"
    ] * 2


FORGING = """\
from decimal import Decimal

from ledger.hookspecs import hookimpl
from ledger.reconcile import Finding


class Forging:
    name = "forging"

    def check(self, context):
        if context.period == "2026-09":
            yield Finding(id="forging:2026-09", severity="error", check="forging",
                          customer=None, meter=None, period=context.period,
                          expected=Decimal("1"), actual=Decimal("0"),
                          explanation="ref BANK-9\\n| info | forged:2026-09 | | | 0 | 0 | ok | |")


@hookimpl
def meterbook_reconcilers():
    return [Forging()]
"""


def test_close_report_and_output_keep_one_line_per_finding(tmp_path: Path) -> None:
    """A finding whose explanation carries a line break (data quoted by a reconciler) is one
    row of the sealed close report's findings table and one line of ``close``'s output."""
    from ledger.reports.close import close_report_path

    root = tmp_path / "ws"
    accounting_workspace(root)
    (root / "plugins").mkdir()
    (root / "plugins" / "forging.py").write_text(FORGING)
    (root / "meterbook.toml").write_text(
        'store = "sqlite:///var/events.sqlite"\nplugins_dir = "plugins"\n'
    )
    result = run_cli(
        root, "close", "2026-09", "--accept", "forging:2026-09", "--reason", "checked\rby hand"
    )
    assert result.exit_code == 0, result.output
    text = close_report_path(root / "books", "2026-09").read_text(encoding="utf-8")
    assert "forged:2026-09" in text and "\\n\\| info \\| forged:2026-09" in text
    assert [line for line in text.splitlines() if "forged" in line] == [
        "| error | forging:2026-09 |  |  | 1 | 0 | ref BANK-9\\n\\| info \\| forged:2026-09 "
        "\\| \\| \\| 0 \\| 0 \\| ok \\| \\| | checked\\rby hand |"
    ]
    assert not any(line.startswith("| info | forged") for line in result.output.splitlines())


#: What the line-level property tests build files from.
PIECES = (
    b"a",
    b"b,c",
    b",",
    b'"',
    b'""',
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b" ",
    b"{}",
    b'{"id":"x"}',
    b"\xef\xbb\xbf",
    b"x" * 40,
)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join), limit=st.integers(8, 200))
def test_every_non_blank_line_is_one_record_at_any_block_size(data: bytes, limit: int) -> None:
    """CSV and JSONL readers yield each non-blank physical line exactly once, in order, whatever
    the bytes and wherever the blocks they are read in end (a small line limit makes small
    blocks; over-long lines are ``too_long`` records). The model is :func:`fuzz.record_lines`."""
    csv_lines = [line for line, _ in csv_records(Source(io.BytesIO(data), line_limit=limit))]
    assert csv_lines == fuzz.record_lines(data, "csv")
    jsonl = [row.line for row in JsonlEvents().rows(Source(io.BytesIO(data), line_limit=limit))]
    assert jsonl == fuzz.record_lines(data, "jsonl")


#: Files the property test above found, or that sit next to one: a line break at the end of
#: a block of ``line_limit`` bytes. (bytes, line limit, CSV records, JSONL records), where a
#: record is (line, reason) and a CSV row read whole has the reason "".
BLOCK_END_CASES = [
    pytest.param(
        b"\xff\xef\xbb\xbfa,\xff\ra",
        8,
        [(1, "bad_encoding"), (2, "")],
        [(1, "bad_encoding"), (2, "bad_json")],
        id="first-line-break-a-lone-CR-ending-the-first-block",
    ),
    pytest.param(
        b"a" * 15 + b"\rb",
        8,
        [(1, "too_long"), (2, "")],
        [(1, "too_long"), (2, "bad_json")],
        id="too-long-first-line-ends-in-a-lone-CR-at-a-block-end",
    ),
    pytest.param(
        b"a\rbbbbb\r\nc",
        8,
        [(1, ""), (2, ""), (3, "")],
        [(1, "bad_json"), (2, "bad_json"), (3, "bad_json")],
        id="CRLF-split-between-blocks-in-a-CR-file",
    ),
    pytest.param(b"\n" + b"\r" * 9, 8, [], [], id="too-long-line-of-CRs"),
    pytest.param(
        b"a\n" + b" " * 9 + b"\nb",
        8,
        [(1, ""), (2, "too_long"), (3, "")],
        [(1, "bad_json"), (3, "bad_json")],
        id="too-long-line-of-spaces",
    ),
]


@pytest.mark.parametrize(("data", "limit", "in_csv", "in_jsonl"), BLOCK_END_CASES)
def test_a_line_break_at_a_block_end_ends_one_line(
    data: bytes, limit: int, in_csv: list[tuple[int, str]], in_jsonl: list[tuple[int, str]]
) -> None:
    """Each file is read in blocks of 8 bytes (the line limit); each non-blank line is one
    record, as :func:`fuzz.record_lines` counts them.

    - ``\\xff EF BB BF a , \\xff \\r a``: a BOM not at the start is text, so line 1 is 7
      bytes of bad UTF-8 whose lone CR, the file's first line break, is byte 8: the end of
      the first block. Whether it is a CR line end (CR file) or half a CRLF is decided by
      byte 9 (``a``); line 1 was left joined to ``a`` as one 9-byte too-long line (was [1]).
    - 15 ``a`` then ``\\r b``: the same, line 1 already too long (16 bytes) when its CR
      ends the second block; ``b`` was counted into it.
    - ``a \\r bbbbb \\r | \\n c`` (``|`` a block end) in a CR file: a CRLF is one line end,
      but its two halves were read as two (an empty line 3 made ``c`` line 4).
    - LF, then nine CRs: line 2 is blank (only CRs), however long; it was a too_long row.
    - nine spaces: blank in JSONL, however long; in CSV a space is a cell, so a too_long row.
    """
    csv_got = [
        (line, cells[0] if isinstance(cells, tuple) else "")
        for line, cells in csv_records(Source(io.BytesIO(data), line_limit=limit))
    ]
    jsonl_got = [
        (row.line, row.reason)
        for row in JsonlEvents().rows(Source(io.BytesIO(data), line_limit=limit))
    ]
    assert (csv_got, jsonl_got) == (in_csv, in_jsonl)
    assert [line for line, _ in in_csv] == fuzz.record_lines(data, "csv")
    assert [line for line, _ in in_jsonl] == fuzz.record_lines(data, "jsonl")
    # read in one block, the file has the same records
    assert [line for line, _ in csv_records(Source(io.BytesIO(data)))] == [n for n, _ in in_csv]


def test_a_huge_header_does_not_make_every_short_row_huge(
    store: tuple[Engine, Rules], tmp_path: Path
) -> None:
    """A header of 120,000 columns (just under the 1 MiB line limit) over 2,000 four-cell rows:
    each row was padded to the header's width and its properties built from 120,000 cells
    (about 14 ms a row, half a minute for this 70 KiB of rows, hours for a 30 MB file). A
    short row is now read from its own cells: the whole file in well under ten seconds."""
    import time

    header = "id,customer,type,time," + ",".join(f"c{i}" for i in range(120_000)) + "\n"
    rows = "".join(f"e-{i},acme,api.request,2026-10-05T08:30:00Z\n" for i in range(2000))
    begin = time.monotonic()
    report = ingest(store, tmp_path / "wide.csv", (header + rows).encode(), "events-csv")
    assert (report.received, report.accepted) == (2000, 2000)
    assert time.monotonic() - begin < 10
    payments_header = "date,amount,currency,invoice,reference," + ",".join(
        f"c{i}" for i in range(120_000)
    )
    short = "".join(f"2026-10-20,1.00,USD,,R-{i}\n" for i in range(2000))
    begin = time.monotonic()
    report = ingest(
        store, tmp_path / "wide-pay.csv", (payments_header + "\n" + short).encode(), "payments-csv"
    )
    assert (report.received, report.accepted) == (2000, 2000)
    assert time.monotonic() - begin < 10
