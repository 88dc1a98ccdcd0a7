"""meterbook's importers inside beangulp's own CLI: identify, extract and archive on a folder of
mixed downloads, run as a user runs it (an ``import.py`` calling ``beangulp.Ingest``).

The folder holds one file per importer and two that are nobody's. Worked example of the dates
``archive`` files them on (the latest date in each file):

* ``usage.csv``: events at 2026-10-05T08:30+02:00 and 2026-10-31T23:30-02:00, which is
  2026-11-01T01:30 UTC: filed on **2026-11-01**.
* ``usage.jsonl``: 2026-10-02T10:00Z and 2026-10-03T09:00Z: **2026-10-03**.
* ``ce.json`` (a CloudEvents array, extension ``.txt`` on purpose: content decides): **2026-10-07**.
* ``ce.jsonl``: one CloudEvent at 2026-10-08T12:00Z: **2026-10-08**.
* ``meter.csv`` (live totals): 2026-10-01 and 2026-10-02: **2026-10-02**.
* ``bank.csv`` (payments; it also has a ``customer`` column): 2026-10-20 and 2026-10-26:
  **2026-10-26**.

``extract`` against a ledger that opens only ``Assets:Bank:Operating`` emits one
``open Income:Usage`` dated on the earliest usage date (2026-10-01, the first live total in
``meter.csv``); the other usage files' opens are printed commented out as duplicates. That ledger,
the extracted file and ``option "documents"`` over the archive load in Beancount without an error,
with one ``document`` per filed file.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.importers.events import CloudEventsJson, CloudEventsJsonl, CsvEvents, JsonlEvents
from ledger.importers.live_totals import LiveTotalsCsv
from ledger.importers.payments import PaymentsCsv
from ledger.ingest import select_importer
from ledger.registry import load_registry
from tests.support.readme import readme_block

IMPORT_PY = readme_block("<!-- beangulp-import-py")  # the README's import.py, run as written

FILES = {
    "usage.csv": "id,customer,type,time,tokens\n"
    "e-1,acme,llm.completion,2026-10-05T08:30:00+02:00,1200\n"
    "e-2,acme,llm.completion,2026-10-31T23:30:00-02:00,300\n",
    "usage.jsonl": '{"id": "j-1", "customer": "acme", "type": "api.request", "time": '
    '"2026-10-02T10:00:00Z"}\n'
    '{"id": "j-2", "customer": "acme", "type": "api.request", "time": "2026-10-03T09:00:00Z"}\n',
    "ce.txt": '[\n {"specversion": "1.0", "id": "c-1", "source": "app", "type": "api.request",\n'
    '  "subject": "acme", "time": "2026-10-07T00:00:00Z"}\n]\n',
    "ce.jsonl": '{"specversion": "1.0", "id": "c-2", "source": "app", "type": "api.request", '
    '"subject": "acme", "time": "2026-10-08T12:00:00Z"}\n',
    "meter.csv": "date,customer,meter,quantity,source\n2026-10-01,acme,api_calls,812,gw\n"
    "2026-10-02,acme,api_calls,388,gw\n",
    "bank.csv": "date,amount,currency,invoice,reference,customer\n"
    "2026-10-20,60.00,USD,INV-1,B-1,acme\n"
    "2026-10-26,15.00,USD,,B-3,acme\n",
    "contacts.csv": "name,email,customer,time\nAda,ada@example.com,acme,2026-10-01T00:00:00Z\n",
    "notes.txt": "id,customer,type,time are the columns of a usage export\n",
}
EXPECTED = {  # file -> (importer, filed path under the archive)
    "usage.csv": ("events-csv", "Income/Usage/2026-11-01.events-csv.usage.csv"),
    "usage.jsonl": ("events-jsonl", "Income/Usage/2026-10-03.events-jsonl.usage.jsonl"),
    "ce.txt": ("cloudevents-json", "Income/Usage/2026-10-07.cloudevents-json.ce.txt"),
    "ce.jsonl": ("cloudevents-jsonl", "Income/Usage/2026-10-08.cloudevents-jsonl.ce.jsonl"),
    "meter.csv": ("live-totals", "Income/Usage/2026-10-02.live-totals.meter.csv"),
    "bank.csv": ("payments-csv", "Assets/Bank/Operating/2026-10-26.payments-csv.bank.csv"),
}


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    (tmp_path / "import.py").write_text(IMPORT_PY)
    return folder


def beangulp_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "import.py"), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def identified(output: str) -> dict[str, str]:
    """beangulp's identify output (``* path ... OK`` then the importer's name) as file ->
    importer."""
    found: dict[str, str] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("* ") and line.endswith(" ... OK"):
            found[Path(line[2 : -len(" ... OK")]).name] = lines[i + 1].strip()
    return found


def test_identify_extract_archive_with_beangulps_cli(downloads: Path, tmp_path: Path) -> None:
    root = tmp_path
    result = beangulp_cli(root, "identify", str(downloads))
    assert result.returncode == 0, result.stdout + result.stderr
    assert identified(result.stdout) == {name: importer for name, (importer, _) in EXPECTED.items()}

    existing = root / "books.beancount"
    existing.write_text("2026-01-01 open Assets:Bank:Operating USD\n")
    extracted = root / "extracted.beancount"
    result = beangulp_cli(
        root, "extract", "-e", str(existing), "-o", str(extracted), str(downloads)
    )
    assert result.returncode == 0, result.stderr
    text = extracted.read_text()
    live = [line for line in text.splitlines() if line.startswith("2026-")]
    assert live == ["2026-10-01 open Income:Usage"]
    assert text.count("; 2026-") == 4  # the other usage files' opens, commented out as duplicates

    archive = root / "documents"
    archive.mkdir()
    result = beangulp_cli(root, "archive", "-o", str(archive), str(downloads))
    assert result.returncode == 0, result.stderr
    filed = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
    assert filed == sorted(path for _, path in EXPECTED.values())
    assert sorted(p.name for p in downloads.iterdir()) == ["contacts.csv", "notes.txt"]

    main = root / "main.beancount"
    main.write_text(
        f'option "documents" "{archive}"\ninclude "{existing}"\ninclude "{extracted}"\n'
    )
    entries, errors, _ = loader.load_file(str(main))
    assert errors == []
    documents = sorted(
        (e.date, e.account, Path(e.filename).name) for e in entries if isinstance(e, data.Document)
    )
    assert documents == sorted(
        (date.fromisoformat(Path(path).name[:10]), account, Path(path).name)
        for _, path in EXPECTED.values()
        for account in ["Assets:Bank:Operating" if path.startswith("Assets") else "Income:Usage"]
    )


def test_each_file_has_exactly_one_importer_and_meterbook_ingest_agrees(downloads: Path) -> None:
    """In-process, through beangulp's click group too: the same answers as ``meterbook ingest``'s
    selection (the registry's importers, fallback last)."""
    import beangulp

    importers = [
        CsvEvents(),
        JsonlEvents(),
        CloudEventsJsonl(),
        CloudEventsJson(),
        LiveTotalsCsv(),
        PaymentsCsv(),
    ]
    for name, (expected, _) in EXPECTED.items():
        path = str(downloads / name)
        assert [i.name for i in importers if i.identify(path)] == [expected], name
    for name in ("contacts.csv", "notes.txt"):
        assert not [i.name for i in importers if i.identify(str(downloads / name))]

    registered = load_registry().importers
    assert {name: select_importer(downloads / name, registered).name for name in EXPECTED} == {
        name: importer for name, (importer, _) in EXPECTED.items()
    }

    result = CliRunner().invoke(beangulp.Ingest(importers).cli, ["identify", str(downloads)])
    assert result.exit_code == 0, result.output
    assert identified(result.output) == {name: importer for name, (importer, _) in EXPECTED.items()}


def test_dates_and_filenames(downloads: Path) -> None:
    assert CsvEvents().date(str(downloads / "usage.csv")) == date(2026, 11, 1)
    assert PaymentsCsv().date(str(downloads / "bank.csv")) == date(2026, 10, 26)
    assert LiveTotalsCsv().date(str(downloads / "meter.csv")) == date(2026, 10, 2)
    assert (
        CsvEvents().filename(str(downloads / "2026-11-01.events-csv.usage.csv"))
        == "events-csv.usage.csv"
    )
    assert (
        CsvEvents(account="Assets:Receivables:Unbilled").account("x")
        == "Assets:Receivables:Unbilled"
    )
    bad = downloads / "bad.csv"
    bad.write_text("id,customer,type,time\ne-1,acme,t,yesterday\n")
    assert CsvEvents().date(str(bad)) is None  # beangulp then uses the file's mtime
    assert CsvEvents().extract(str(bad), []) == []


HEADERS = {  # importer -> the columns its files have
    "events-csv": ("id", "source", "customer", "type", "time"),
    "payments-csv": ("date", "amount", "currency", "invoice", "reference"),
    "live-totals": ("date", "customer", "meter", "quantity", "source"),
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(HEADERS)),
    data=st.data(),
    extra=st.lists(
        st.sampled_from(["region", "tokens", "payer", "note", "customer", "source"]), unique=True
    ),
)
def test_any_column_order_is_identified_by_exactly_one_importer(
    tmp_path: Path, kind: str, data: st.DataObject, extra: list[str]
) -> None:
    """Whatever the column order and extra columns, a file is claimed by its importer alone."""
    columns = list(dict.fromkeys([*data.draw(st.permutations(HEADERS[kind])), *extra]))
    path = tmp_path / f"{kind}.{data.draw(st.sampled_from(['csv', 'txt', 'export']))}"
    path.write_text(",".join(columns) + "\n" + ",".join("x" for _ in columns) + "\n")
    importers = [
        CsvEvents(),
        JsonlEvents(),
        CloudEventsJsonl(),
        CloudEventsJson(),
        LiveTotalsCsv(),
        PaymentsCsv(),
    ]
    assert [i.name for i in importers if i.identify(str(path))] == [kind]
