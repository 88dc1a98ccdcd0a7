"""Fuzz every importer with random bytes and mutated valid files, through ``meterbook ingest``.

    $ python -m ledger.bench fuzz --seconds 60 --seed 1
    fuzz: 2,403 files in 60.0 s (cloudevents-json 401, cloudevents-jsonl 400, events-csv 401, ...)
    every file: refused whole with the store unchanged, or each row one outcome; no traceback

Each file goes through :func:`ledger.ingest.ingest_files` (the path ``meterbook
ingest`` takes: importer by name, header check, one transaction) into one
SQLite store, and :func:`check_one` asserts:

- the file is refused as a whole (:class:`ledger.errors.BadInput`, one line)
  and no table changed; or
- ``received = accepted + duplicates + conflicts + rejected``, the store gained
  exactly ``rejected`` rejects and one batch; and for a line-based file (CSV,
  JSONL) ``received`` is the number of non-blank lines after the header
  (:func:`expected_rows`, computed from the bytes by the rules the manual states):
  every physical line has exactly one outcome;
- nothing else is raised (a traceback is a failure), by the import or by
  identifying the file's importer by its content.

A failing file is written to ``--keep DIR`` (default: the working directory)
and the run exits 1. ``tests/test_hostile_input.py`` runs the same check on a
bounded number of hypothesis-made files in the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from ledger.errors import BadInput
from ledger.hookspecs import ImporterKind
from ledger.ingest import ImportReport, ingest_files, select_importer
from ledger.rules import Rules, load_rules
from ledger.store import (
    batches,
    conflicts,
    events,
    live_total_conflicts,
    live_totals,
    open_store,
    payment_conflicts,
    payments,
    rejects,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
METERS = """meters:
  calls: {event_type: api.request, aggregation: count}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens}
  peak: {event_type: storage.snapshot, aggregation: max, value: gb}
"""
PLANS = "plans:\n  basic: {currency: USD, charges: []}\n"
CUSTOMERS = "customers:\n  acme: {currency: USD}\n  beta: {currency: USD}\n"
TABLES = (
    batches,
    events,
    conflicts,
    rejects,
    payments,
    payment_conflicts,
    live_totals,
    live_total_conflicts,
)

#: A small valid file per importer: what mutations start from.
SEEDS: dict[str, bytes] = {
    "events-csv": (
        b"id,source,customer,type,time,tokens,gb,region\n"
        b"e-1,app,acme,api.request,2026-10-05T08:30:00Z,,,eu\n"
        b"e-2,app,acme,llm.completion,2026-10-05T08:31:00+02:00,1200,,eu\n"
        b'e-3,app,beta,storage.snapshot,2026-10-06t09:00:00.5z,,"12.5",us\n'
        b"e-4,app,beta,api.request,2026-10-07T10:00:00Z,,,\n"
    ),
    "events-jsonl": (
        b'{"id":"j-1","customer":"acme","type":"api.request","time":"2026-10-05T08:30:00Z"}\n'
        b'{"id":"j-2","customer":"acme","type":"llm.completion","time":"2026-10-05T08:31:00Z",'
        b'"properties":{"tokens":1200}}\n'
        b'{"id":"j-3","source":"x","customer":"beta","type":"storage.snapshot",'
        b'"time":"2026-10-06T09:00:00Z","properties":{"gb":"12.5"}}\n'
    ),
    "cloudevents-jsonl": (
        b'{"specversion":"1.0","id":"c-1","source":"app","subject":"acme","type":"api.request",'
        b'"time":"2026-10-05T08:30:00Z"}\n'
        b'{"specversion":"1.0","id":"c-2","source":"app","subject":"beta",'
        b'"type":"llm.completion","time":"2026-10-05T08:31:00Z","data":{"tokens":"7"}}\n'
    ),
    "cloudevents-json": (
        b'[{"specversion":"1.0","id":"a-1","source":"app","subject":"acme","type":"api.request",'
        b'"time":"2026-10-05T08:30:00Z"},\n'
        b' {"specversion":"1.0","id":"a-2","source":"app","subject":"beta",'
        b'"type":"llm.completion","time":"2026-10-05T08:31:00Z","data":{"tokens":7}}]\n'
    ),
    "payments-csv": (
        b"date,amount,currency,invoice,reference\n"
        b"2026-10-20,60.00,USD,INV-2026-000001,BANK-1\n"
        b"2026-10-21,15.00,USD,,BANK-2\n"
        b"2026-10-22,7,EUR,,BANK-3\n"
    ),
    "live-totals": (
        b"date,customer,meter,quantity,source\n"
        b"2026-10-01,acme,calls,812,gw-eu\n"
        b"2026-10-01,beta,tokens,12.5,gw-us\n"
        b"2026-10-02,acme,peak,3,\n"
    ),
}
#: Importers whose files are read line by line: one outcome per non-blank line.
LINE_BASED = {
    "events-csv": "csv",
    "payments-csv": "csv",
    "live-totals": "csv",
    "events-jsonl": "jsonl",
    "cloudevents-jsonl": "jsonl",
}
#: Bytes and fragments that hostile files are made of.
TOKENS: tuple[bytes, ...] = (
    b'"',
    b'""',
    b"\r",
    b"\r\n",
    b"\n",
    b"\x00",
    b",",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"{",
    b"[",
    b"]",
    b"}",
    b"\\ud800",
    b"\\u0000",
    b"\\",
    b"1e16",
    b"10000000000000000",
    b"1_000",
    b" 5",
    b"-0",
    b"NaN",
    b"1e-400",
    b"1e99999999999999999999",
    b"-1e-99999999999999999999",
    b"0001-01-01",
    b"1969-12-31",
    b"1969-12-31T23:59:59Z",
    b"2026-01-05T10:00Z",
    b"20260105T100000Z",
    b"0001-01-01T00:00:00+01:00",
    b'=HYPERLINK("x")',
    b"\x1b[2J",
    b"\xe2\x80\xae",
    b"[" * 3000,
    b"\t",
    b";",
    b"a" * 300,
)


@dataclass(frozen=True)
class Outcome:
    """What one fuzzed file did: refused whole (``refused``) or imported (``report``)."""

    importer: str
    refused: str = ""
    report: ImportReport | None = None


def workspace_rules(directory: Path) -> Rules:
    """The rules every fuzzed file is judged against."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meters.yaml").write_text(METERS)
    (directory / "plans.yaml").write_text(PLANS)
    (directory / "customers.yaml").write_text(CUSTOMERS)
    return load_rules(directory)


def stored_rejects(engine: Engine, file: str, batch: int | None = None) -> set[tuple[int, str]]:
    """(line, raw) of the unresolved rejects of ``file`` (of one batch when ``batch`` is given)."""
    query = select(rejects.c.line, rejects.c.raw).where(
        rejects.c.file == file, rejects.c.resolved_batch_id.is_(None)
    )
    if batch is not None:
        query = query.where(rejects.c.batch_id == batch)
    with engine.connect() as conn:
        return {(int(line), raw) for line, raw in conn.execute(query)}


def counts(engine: Engine) -> tuple[int, ...]:
    """Rows in every table an import writes."""
    with engine.connect() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in TABLES
        )


def record_lines(data: bytes, kind: str) -> list[int]:
    """The numbers of a line-based file's non-blank lines, from its bytes, by the rules
    the manual states: each is exactly one record (a CSV's first is its header).

    Lines end in LF or CRLF, or in CR throughout when the first line break is a
    lone CR; a UTF-8 BOM is skipped; a line is blank when it holds nothing but
    CRs (CSV), or only whitespace (JSONL; a line that is not UTF-8 or holds a
    NUL is never blank).

    >>> record_lines(b"h\\r\\na\\r\\n\\r\\n\\r\\r\\nb", "csv")
    [1, 2, 5]
    >>> record_lines(b"h\\ra\\r\\rb\\r", "csv")
    [1, 2, 4]
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    cr, lf = data.find(b"\r"), data.find(b"\n")
    if cr >= 0 and (lf < 0 or cr < lf) and data[cr + 1 : cr + 2] != b"\n":
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    found = []
    for number, line in enumerate(lines, 1):
        if kind == "csv":
            blank = line.strip(b"\r") == b""
        else:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                text = "x"
            blank = "\x00" not in text and not text.strip()
        if not blank:
            found.append(number)
    return found


def expected_rows(data: bytes, kind: str) -> int:
    """How many rows :func:`record_lines` finds (not counting a CSV's header)."""
    lines = record_lines(data, kind)
    return len(lines) - (1 if kind == "csv" and lines else 0)


def check_one(
    engine: Engine,
    rules: Rules,
    path: Path,
    importer: str,
    importers: Sequence[Any],
    kinds: Mapping[str, ImporterKind] | None = None,
) -> Outcome:
    """Import ``path`` with ``importer``; assert the invariants (AssertionError names which).
    ``kinds``: the kinds of record beside usage events (default: the registry's)."""
    if kinds is None:
        from ledger.registry import load_registry

        kinds = load_registry(None).importer_kinds
    with contextlib.suppress(BadInput):  # identification by content never raises anything else
        select_importer(path, importers)
    before = counts(engine)
    held = stored_rejects(engine, str(path))
    try:
        [report] = list(
            ingest_files(
                engine, rules, [path], importers, importer_name=importer, now=NOW, kinds=kinds
            )
        )
    except BadInput as exc:
        message = str(exc)
        assert "\n" not in message.strip(), f"a refusal is one line: {message!r}"
        assert counts(engine) == before, "a refused file changed the store"
        return Outcome(importer, refused=message)
    after = counts(engine)
    total = report.accepted + report.duplicates + report.conflicts + report.rejected
    assert report.received == total, f"received {report.received} != sum of outcomes {total}"
    assert report.rejected == sum(report.reasons.values()), "rejected != sum of reasons"
    assert after[0] == before[0] + 1, "one batch per file"
    # every reject kept with its row, once: a row rejected before at the same line of a file of
    # the same name, with the same raw text, is not stored again (the manual "Rejected rows")
    new = stored_rejects(engine, str(path), batch=report.batch_id)
    assert after[3] - before[3] == len(new) <= report.rejected, "rejects stored once each"
    assert new.isdisjoint(held), "a reject the store held was stored again"
    assert len(new) + len(held) >= report.rejected, "every reject kept with its row"
    kind = LINE_BASED.get(importer)
    if kind is not None:
        expected = expected_rows(path.read_bytes(), kind)
        assert report.received == expected, (
            f"received {report.received}, the file has {expected} rows"
        )
    return Outcome(importer, report=report)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four random edits: a token inserted or put in, a byte changed, a span cut/doubled."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        how = rng.randrange(5)
        if how == 0:
            out[at:at] = rng.choice(TOKENS)
        elif how == 1 and out:
            end = min(len(out), at + rng.randint(1, 8))
            out[at:end] = rng.choice(TOKENS)
        elif how == 2 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif how == 3:
            del out[at : at + rng.randint(1, 16)]
        else:
            out[at:at] = out[at : at + rng.randint(1, 64)]
    return bytes(out)


def random_file(rng: random.Random, importer: str) -> bytes:
    """Random bytes (a third of the time) or a mutated seed file."""
    if rng.random() < 1 / 3:
        return bytes(
            rng.choice((rng.randrange(256), *b'",\r\n{}[]\\')) for _ in range(rng.randint(0, 200))
        )
    return mutate(rng, SEEDS[importer])


def run(
    seconds: float, seed: int, keep: Path, store: str = "", say: Callable[[str], None] = print
) -> int:
    """Fuzz for ``seconds``: 0 if every file held, 1 (the file kept) at the first that did not."""
    from ledger.ingest import default_importers
    from ledger.registry import load_registry

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="meterbook-fuzz-") as tmp:
        root = Path(tmp)
        rules = workspace_rules(root / "rules")
        registry = load_registry(None)
        importers = list(registry.importers or default_importers())
        engine = open_store(store or f"sqlite:///{root / 'fuzz.sqlite'}")
        done: Counter[str] = Counter()
        refused = 0
        begin = time.monotonic()
        try:
            while time.monotonic() - begin < seconds:
                importer = rng.choice(sorted(SEEDS))
                data = random_file(rng, importer)
                path = root / f"fuzz-{sum(done.values())}.{'json' if 'json' in importer else 'csv'}"
                path.write_bytes(data)
                try:
                    outcome = check_one(
                        engine, rules, path, importer, importers, registry.importer_kinds
                    )
                except BaseException as exc:  # an invariant or a traceback: keep the file
                    kept = keep / f"fuzz-failure-{importer}-{seed}-{sum(done.values())}.bin"
                    kept.write_bytes(data)
                    say(f"fuzz: FAILED on {kept} ({importer}): {type(exc).__name__}: {exc}")
                    return 1
                finally:
                    path.unlink(missing_ok=True)
                done[importer] += 1
                refused += bool(outcome.refused)
        finally:
            engine.dispose()
    total = sum(done.values())
    say(
        f"fuzz: {total:,} files in {time.monotonic() - begin:.1f} s, {refused:,} refused whole ("
        + ", ".join(f"{name} {n:,}" for name, n in sorted(done.items()))
        + ")"
    )
    say("every file: refused whole with the store unchanged, or each row one outcome; no traceback")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.bench fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same files)")
    parser.add_argument(
        "--keep", type=Path, default=Path.cwd(), help="where a failing file is written"
    )
    parser.add_argument(
        "--store",
        default="",
        help="store URL (default: a new SQLite file); a PostgreSQL store should be an empty "
        "schema nothing else writes to",
    )
    args = parser.parse_args(argv)
    return run(args.seconds, args.seed, args.keep, args.store)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
