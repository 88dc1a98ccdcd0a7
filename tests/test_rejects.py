"""Rejected rows are visible and stored once: ``meterbook rejects``, the first reasons
``ingest`` prints, and re-ingest not duplicating rejects (issue 14).

The ``workspace`` fixture is ``meterbook init``'s: ``samples/events.csv`` holds six rows;
line 7 (``e-0005``) names customer ``nobody``, who is not in the rules, so one import
stores 4 events, 1 duplicate and 1 reject.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.ingest import retry_rejected
from ledger.rejects import list_rejects
from ledger.store import open_store, rejects
from tests.support.ingest import HEADER, NOW, make_rules, run, table, write
from tests.support.workspaces import run_cli

NOBODY = "samples/events.csv:7  unknown_customer  customer 'nobody' is not in the rules"


def test_reingest_stores_each_reject_once_and_retry_counts_it_once(
    store_url: str, tmp_path: Path
) -> None:
    """``u.csv``: line 2 ``initech`` (unknown), line 3 ``acme`` (ok), line 4 a date without a time.
    Imported twice: each report counts 2 rejects (received 3 = 1 + 0 dup + 2 / 0 + 1 dup + 2),
    the store holds 2, not 4. With ``initech`` added, ``--retry-rejected`` runs 2 rows
    (1 accepted, 1 still ``bad_time``), not 4 (it used to report received 4, accepted 1,
    duplicates 1)."""
    path = write(
        tmp_path / "u.csv",
        HEADER
        + "e1,app,initech,api.request,2026-10-05T08:30:00Z,,,,,\n"
        + "e2,app,acme,api.request,2026-10-05T08:30:00Z,,,,,\n"
        + "e3,app,initech,api.request,2026-10-05,,,,,\n",
    )
    first = run(store_url, tmp_path / "rules", path)
    second = run(store_url, tmp_path / "rules", path)
    assert (first.received, first.accepted, first.rejected) == (3, 1, 2)
    assert (second.received, second.duplicates, second.rejected) == (3, 1, 2)
    stored = sorted((r.line, r.reason) for r in table(store_url, rejects))
    assert stored == [(2, "unknown_customer"), (4, "bad_time")]
    rules = make_rules(
        tmp_path / "rules", "customers:\n  acme: {currency: USD}\n  initech: {currency: USD}\n"
    )
    engine = open_store(store_url)
    try:
        report = retry_rejected(engine, rules, now=NOW)
        counts = (report.received, report.accepted, report.duplicates, report.rejected)
        assert counts == (2, 1, 0, 1)
        listed = list_rejects(engine)
        assert [(r.file, r.line, r.reason) for r in listed] == [(str(path), 4, "bad_time")]
        assert len(list_rejects(engine, include_resolved=True)) == 2
    finally:
        engine.dispose()


def test_an_edited_row_is_a_new_reject(store_url: str, tmp_path: Path) -> None:
    """Line 2 rejected for ``initech``, then the file is edited to name ``hooli`` (also unknown):
    both rows are kept (different raw rows), the first is not lost."""
    path = write(
        tmp_path / "u.csv", HEADER + "e1,app,initech,api.request,2026-10-05T08:30:00Z,,,,,\n"
    )
    run(store_url, tmp_path / "rules", path)
    write(path, HEADER + "e1,app,hooli,api.request,2026-10-05T08:30:00Z,,,,,\n")
    run(store_url, tmp_path / "rules", path)
    assert sorted(r.detail for r in table(store_url, rejects)) == [
        "customer 'hooli' is not in the rules",
        "customer 'initech' is not in the rules",
    ]


def test_rejects_command_lists_file_line_reason_and_detail(workspace: Path) -> None:
    """Two imports of the sample: ``rejects`` lists line 7 once; the ``ingest`` output shows it
    under the counts; the exit code is 1 (a row was rejected; every other row is stored), or
    0 with ``--allow-rejects``."""
    sample = workspace / "samples" / "events.csv"
    for flags in ((), ("--allow-rejects",)):
        result = run_cli(workspace, "ingest", *flags, str(sample))
        assert result.exit_code == (0 if flags else 1), result.output
        assert (
            f"  {sample}:7  unknown_customer  customer 'nobody' is not in the rules"
            in result.output
        )
    listed = run_cli(workspace, "rejects")
    assert listed.exit_code == 0, listed.output
    assert listed.output == f"{sample}:7  unknown_customer  customer 'nobody' is not in the rules\n"


def test_rejects_filters_json_and_csv(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second file ``=evil.csv`` (a name a spreadsheet would run as a formula) with two rows
    rejected: ``missing_field`` (no time) at line 2, ``unknown_customer`` at line 3. Filters pick
    1, 2 or 3 of the 3 rejects; ``--csv`` quotes the file name behind a ``'``."""
    monkeypatch.chdir(workspace)
    write(
        workspace / "=evil.csv",
        "id,source,customer,type,time\n"
        "x1,app,example,api.request,\nx2,app,ghost,api.request,2026-01-03T10:00:00Z\n",
    )
    assert run_cli(workspace, "ingest", "samples/events.csv", "=evil.csv").exit_code == 1

    def lines(*args: str) -> list[str]:
        result = run_cli(workspace, "rejects", *args)
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    assert lines() == [
        "=evil.csv:2  missing_field  time is missing",
        "=evil.csv:3  unknown_customer  customer 'ghost' is not in the rules",
        NOBODY,
    ]
    assert lines("--reason", "unknown_customer")[1] == NOBODY
    assert len(lines("--reason", "unknown_customer")) == 2
    assert lines("--file", "events.csv") == [NOBODY]  # the base name
    assert lines("--file", "samples/events.csv") == [NOBODY]  # the name given to ingest
    today = datetime.now(UTC).date()
    assert len(lines("--since", today.isoformat(), "--until", today.isoformat())) == 3
    assert lines("--until", (today - timedelta(days=1)).isoformat()) == []
    assert lines("--since", (today + timedelta(days=1)).isoformat()) == []

    rows = [json.loads(line) for line in lines("--json", "--file", "=evil.csv")]
    assert rows[1] == {
        "file": "=evil.csv",
        "line": 3,
        "reason": "unknown_customer",
        "detail": "customer 'ghost' is not in the rules",
        "ingested": today.isoformat(),
        "importer": "events-csv",
        "resolved": False,
    }
    text = run_cli(workspace, "rejects", "--csv", "--reason", "missing_field").output
    assert text == (
        "file,line,reason,detail,ingested,importer,resolved\n"
        f'"\'=evil.csv",2,missing_field,time is missing,{today},events-csv,false\n'
    )
    assert list(csv.reader(io.StringIO(text)))[1][0] == "'=evil.csv"


def test_ingest_shows_the_first_three_rejects_then_points_to_the_command(workspace: Path) -> None:
    """Five rows of unknown customers c1..c5 at lines 2..6: three shown, then the pointer."""
    path = write(
        workspace / "many.csv",
        "id,source,customer,type,time\n"
        + "".join(f"m{i},app,c{i},api.request,2026-01-03T10:00:00Z\n" for i in range(1, 6)),
    )
    result = run_cli(workspace, "ingest", str(path))
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[1:] == [
        f"  {path}:2  unknown_customer  customer 'c1' is not in the rules",
        f"  {path}:3  unknown_customer  customer 'c2' is not in the rules",
        f"  {path}:4  unknown_customer  customer 'c3' is not in the rules",
        f"  … all of them: meterbook rejects --file {path}",
    ]
    as_json = run_cli(workspace, "ingest", "--json", str(path))
    assert len(as_json.output.splitlines()) == 1  # --json stays one object per file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-13-01"], "--since: '2026-13-01' is not a date"),
        (
            ["--since", "2026-12-02", "--until", "2026-12-01"],
            "--until: 2026-12-01 is before --since",
        ),
        (["--json", "--csv"], "give --json or --csv, not both"),
    ],
)
def test_rejects_bad_usage_is_one_line_exit_2(
    workspace: Path, args: list[str], message: str
) -> None:
    result = run_cli(workspace, "rejects", *args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_a_payments_file_imported_twice_keeps_its_reject_once(workspace: Path) -> None:
    """payments.csv line 2 ``12,5O`` (a letter O) is ``bad_number``; importing the file again
    counts it again (rejected 1) but stores nothing new: one row listed."""
    path = write(
        workspace / "payments.csv",
        'date,amount,currency,invoice,reference\n2026-01-10,"12,5O",USD,,BANK-1\n',
    )
    for _ in range(2):
        result = run_cli(workspace, "ingest", str(path))
        assert result.exit_code == 1, result.output
        assert "rejected 1 (bad_number 1)" in result.output
    listed = run_cli(workspace, "rejects", "--json").output.splitlines()
    assert [(json.loads(r)["line"], json.loads(r)["reason"]) for r in listed] == [(2, "bad_number")]


def test_ingest_shows_this_imports_rejects_and_conflicts_not_earlier_ones(workspace: Path) -> None:
    """The sample file imported, then its line 7 corrected (``nobody`` → ``example``) and one
    stored row (line 3, ``e-0002``) re-sent with another endpoint, imported again under the same
    name: the second import rejects nothing (received 6: 1 accepted, 4 duplicates, 1 conflict,
    0 rejected), so it shows no reject (the stored one of the first import, still listed by
    ``meterbook rejects``, was shown before this fix) and names its one conflict.

    A payments file re-sending reference BANK-1 with 12.00 instead of 10.00 shows that conflict
    by its reference."""
    sample = workspace / "samples" / "events.csv"
    first = run_cli(workspace, "ingest", str(sample))
    assert "customer 'nobody' is not in the rules" in first.output.splitlines()[1]
    text = sample.read_text(encoding="utf-8")
    text = text.replace("e-0005,app,nobody", "e-0005,app,example")
    text = text.replace("10:00:01Z,,/v1/search", "10:00:01Z,,/v1/items")
    sample.write_text(text, encoding="utf-8")
    again = run_cli(workspace, "ingest", str(sample))
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == [
        f"{sample}: received 6, accepted 1, duplicates 4, conflicts 1, rejected 0",
        f"  {sample}:3  conflict  app/e-0002 is already stored with other figures;"
        " the stored one stands",
    ]
    listed = run_cli(workspace, "rejects", "--json").output.splitlines()
    assert [json.loads(row)["line"] for row in listed] == [7]  # kept: the file was corrected

    path = workspace / "bank.csv"
    path.write_text("date,amount,currency,invoice,reference\n2026-01-10,10.00,USD,,BANK-1\n")
    assert run_cli(workspace, "ingest", str(path)).output.count("\n") == 1
    path.write_text("date,amount,currency,invoice,reference\n2026-01-10,12.00,USD,,BANK-1\n")
    assert run_cli(workspace, "ingest", str(path)).output.splitlines()[1:] == [
        f"  {path}:2  conflict  BANK-1 is already stored with other figures; the stored one stands"
    ]
