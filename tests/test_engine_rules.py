"""The engine's own rules hold from Python, not only behind the CLI, and ``check`` audits a range
the store gives, so books emptied or cut short behind its back fail it.

The workspace is ``meterbook init``'s (one customer ``example`` on plan ``starter``: 19.00 a
month in advance, 1,000 API calls free, 0.25 per GB stored, USD, UTC) with its sample events
of January (3 calls, a 12.5 GB snapshot)::

    meterbook ingest samples/events.csv
    meterbook close 2026-01                     issues INV-2026-000001 (2026-01-01, 19.00)
    meterbook invoice --through 2026-02-01      issues INV-2026-000002 (2026-02-01): January's
                                                12.5 GB × 0.25 = 3.125 → 3.12 (half-even)
                                                + February's fee 19.00 = 22.12

January is sealed; February is open and its file ``books/2026/2026-02.beancount`` holds
INV-2026-000002. Posting "through 2026-01-15" from Python used to write February's file
empty (the invoice gone from the books) and record the store as posted through Jan 15.
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import pytest

from ledger.audit import audit_through
from ledger.errors import AfterTodayError, SealedMonthError
from ledger.rerate import rerate
from ledger.session import Session
from tests.support.workspaces import open_session, run_cli

FEBRUARY = Path("books") / "2026" / "2026-02.beancount"
#: the session's "today" in these tests: February is open, March has not begun
TODAY = date(2026, 2, 10)


def closed(workspace: Path) -> Path:
    """January sealed, INV-2026-000002 issued on Feb 1 into the open February."""
    for args in (
        ("ingest", "--allow-rejects", str(workspace / "samples" / "events.csv")),
        ("close", "2026-01"),
        ("invoice", "--through", "2026-02-01"),
    ):
        result = run_cli(workspace, *args)
        assert result.exit_code == 0, result.output
    assert "INV-2026-000002" in (workspace / FEBRUARY).read_text()
    return workspace


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the books by path, their bytes' digests, and the store's content.

    The store is compared by its SQL dump, not its bytes: it runs in WAL mode, and the last
    connection to close (a CLI command's, whenever it is collected, or the test's session)
    checkpoints the log into the file, changing its bytes but not what it holds."""
    files = sorted((root / "books").rglob("*"))
    digests = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file()
    }
    with closing(sqlite3.connect(root / "var" / "events.sqlite")) as store:
        dump = "\n".join(store.iterdump()).encode()
    digests["var/events.sqlite (content)"] = hashlib.sha256(dump).hexdigest()
    return digests


@pytest.fixture
def ws(workspace: Path) -> Path:
    return closed(workspace)


def session_of(root: Path) -> Session:
    return open_session(root, today=TODAY)


def test_posting_into_the_sealed_months_is_refused_from_python(ws: Path) -> None:
    before = snapshot(ws)
    session = session_of(ws)
    with pytest.raises(SealedMonthError) as refused:
        session.post(date(2026, 1, 15))
    assert str(refused.value) == (
        "--through: 2026-01-15 is inside the sealed months (sealed through 2026-01-31); "
        "post through 2026-01-31 or later"
    )
    with pytest.raises(SealedMonthError, match="invoice through 2026-01-31 or later"):
        session.invoice(date(2026, 1, 15))
    assert session.posted_through() == date(2026, 2, 1)
    session.engine.dispose()
    assert snapshot(ws) == before  # February's file, its invoice and the store untouched
    assert run_cli(ws, "check").exit_code == 0


def test_the_last_sealed_day_is_still_postable(ws: Path) -> None:
    """Through Jan 31 (the sealed months' end) is allowed: it writes what is open (nothing
    dated in February yet) and records the store as posted through Jan 31."""
    session = session_of(ws)
    report = session.post(date(2026, 1, 31))
    assert report.through == date(2026, 1, 31)
    assert session.posted_through() == date(2026, 1, 31)
    session.engine.dispose()


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda s, day: s.post(day),
            "--through: 2026-02-11 is after today (2026-02-10, UTC); the books are posted "
            "only through today",
        ),
        (
            lambda s, day: s.invoice(day),
            "--through: 2026-02-11 is after today (2026-02-10, UTC); an invoice number is "
            "never taken back, so none is issued before its date",
        ),
        (
            lambda s, day: s.credit("INV-2026-000002", amount="1", reason="r", on=day),
            "--date: 2026-02-11 is after today (2026-02-10, UTC); a credit note is dated the "
            "day it is issued or earlier",
        ),
        (
            lambda s, day: rerate(s, date(2026, 1, 1), on=day),
            "--date: 2026-02-11 is after today (2026-02-10, UTC); credit notes and debit "
            "adjustments are dated the day they are issued or earlier",
        ),
    ],
    ids=["post", "invoice", "credit note", "rerate"],
)
def test_writes_dated_after_today_are_refused_from_python(
    ws: Path, write: object, message: str
) -> None:
    before = snapshot(ws)
    session = session_of(ws)
    with pytest.raises(AfterTodayError) as refused:
        write(session, TODAY + timedelta(days=1))  # type: ignore[operator]
    assert str(refused.value) == message
    session.engine.dispose()
    assert snapshot(ws) == before


def test_a_dry_rerate_may_look_at_a_later_day(ws: Path) -> None:
    session = session_of(ws)
    report = rerate(session, date(2026, 1, 1), on=TODAY + timedelta(days=30), dry_run=True)
    assert report.dry_run and report.lines == ()
    session.engine.dispose()


def check_output(root: Path) -> list[str]:
    """``meterbook check``'s lines; it must fail (exit 1)."""
    result = run_cli(root, "check")
    assert result.exit_code == 1, result.output
    return result.output.splitlines()


def failed_with(lines: list[str], name: str) -> str:
    """The first detail line under ``FAILED  <name>``."""
    at = lines.index(f"FAILED  {name}")
    return lines[at + 1].strip()


def test_an_emptied_open_month_fails_check(ws: Path) -> None:
    """February's file written empty (its header kept): the store issued INV-2026-000002 on
    Feb 1 and recorded the books posted through Feb 1, so check audits through Feb 1 and
    finds the invoice missing, the file not as posted, the receivable short by the invoice
    (store 19.00 + 22.12 = 41.12, books 19.00) and January's 3.12 still unbilled."""
    february = ws / FEBRUARY
    header = february.read_text().split("\n\n", 1)[0]
    february.write_text(header + "\n")
    lines = check_output(ws)
    assert lines[-1] == (
        "check failed: issued invoices in the books, books as posted, store-to-ledger tie-out"
    )
    assert failed_with(lines, "issued invoices in the books") == (
        "1 of the 2 invoices the store issued through 2026-02-01 are not in the books (books "
        "truncated or not re-posted since; `meterbook post` rewrites them from the store)"
    )
    assert lines[lines.index("FAILED  issued invoices in the books") + 2].strip() == (
        "INV-2026-000002"
    )
    assert "2026/2026-02.beancount" in failed_with(lines, "books as posted")
    at = lines.index("FAILED  store-to-ledger tie-out")
    assert [line.strip() for line in lines[at + 1 : at + 4]] == [
        "2 balances through 2026-02-01",
        "example receivable Assets:Receivables:Invoiced:Example: store 41.12 USD, books 19.00 "
        "USD (difference -22.12)",
        "example unbilled Assets:Receivables:Unbilled:Example: store 0.00 USD, books 3.12 USD "
        "(difference 3.12)",
    ]


def test_a_zero_byte_open_month_fails_check(ws: Path) -> None:
    (ws / FEBRUARY).write_bytes(b"")
    lines = check_output(ws)
    assert "FAILED  issued invoices in the books" in lines
    assert "FAILED  store-to-ledger tie-out" in lines


def test_a_truncated_open_month_fails_check(ws: Path) -> None:
    """February's file cut in the middle of its invoice's transaction."""
    february = ws / FEBRUARY
    text = february.read_text()
    february.write_text(text[: text.index("INV-2026-000002") + 5])
    lines = check_output(ws)
    assert "FAILED  books as posted" in lines
    assert "FAILED  issued invoices in the books" in lines
    assert "FAILED  store-to-ledger tie-out" in lines


def test_the_audited_range_comes_from_the_store(ws: Path) -> None:
    """The same day whatever is left of the books: Feb 1, the latest of the store's posted-through
    day (Feb 1), its latest invoice (Feb 1) and its last seal's end (Jan 31)."""
    session = session_of(ws)
    assert audit_through(session) == date(2026, 2, 1)
    for path in (ws / "books" / "2026").glob("*.beancount"):
        path.write_text("")
    assert audit_through(session) == date(2026, 2, 1)
    session.engine.dispose()


def test_books_that_the_store_never_posted_fail_the_tie_out(workspace: Path) -> None:
    """Books with 3 transactions (INV-2026-000001, January's accrual, INV-2026-000002; nothing
    sealed) beside a new, empty store: it records no post, no seal and no invoice, and the
    tie-out does not pass the books for want of a range."""
    for args in (
        ("ingest", "--allow-rejects", str(workspace / "samples" / "events.csv")),
        ("invoice", "--through", "2026-02-01"),
    ):
        assert run_cli(workspace, *args).exit_code == 0
    (workspace / "var" / "events.sqlite").unlink()
    lines = check_output(workspace)
    assert failed_with(lines, "store-to-ledger tie-out") == (
        "the books hold 3 transactions, but the store records no post, no seal and no invoice: "
        "they were not posted from this store (`meterbook post` writes them from it)"
    )
