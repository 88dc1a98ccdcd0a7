"""Faults, tamper and concurrency (issue 19): the real CLI in subprocesses, killed at named points
(``METERBOOK_FAULT``, :mod:`ledger.faults`), racing each other, on a full or read-only disk.

The workspace (tests/support/faults.py) is the close workspace: ``cal`` (calendar cycles) and
``ann`` (anniversary from Sep 15) on a graduated plan, 10 calls free then 0.05. Events::

    cal  30 calls Sep 1-30, 15 calls Oct 1-15, 12 calls Nov 1-12
    ann  14 calls Sep 16-29, 11 calls Oct 1-11, 6 calls Nov 1-6

so the books posted through 2026-11-30 hold invoices INV-…1 (cal, Oct 1: 20 × 0.05 = 1.00),
INV-…2 (ann, Oct 15: 25 calls → 15 × 0.05 = 0.75) and INV-…3 (cal, Nov 1: 5 × 0.05 = 0.25;
ann's cycle to Nov 15 stays in the free tier and bills nothing), and November's month file holds
INV-…3 and cal's November accrual (12 calls: 2 × 0.05 = 0.10 on Nov 30). Closing October must
leave November posted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from beancount import loader
from sqlalchemy import select

from ledger import faults
from ledger.books import close_path, format_entry, load_books, month_path, sealed_months
from ledger.lock import workspace_lock
from ledger.seal import GUARD_ACCOUNT
from ledger.store import meta
from tests.support.close import CUSTOMERS, PLANS
from tests.support.faults import BIN, ENV, build, check_lines, invoices, meterbook, one_line, start
from tests.support.workspaces import (
    METERS_CALLS,
    book_hashes,
    calls,
    insert_events,
    open_session,
    write_workspace,
)


def copy(root: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(root, target)
    return target


def recorded_seals(root: Path) -> dict[str, str]:
    session = open_session(root)
    try:
        with session.engine.connect() as conn:
            return {
                row.key: row.value
                for row in conn.execute(select(meta.c.key, meta.c.value))
                if row.key.startswith("seal:")
            }
    finally:
        session.engine.dispose()


def hashes(root: Path) -> dict[str, str]:
    """The books' files, without the demo-independent lock file (it lives in the workspace root)."""
    return book_hashes(root / "books")


def test_fault_points_are_named_and_unknown_ones_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault point"):
        faults.point("close:nowhere")
    assert faults.point("close:sealed") is None  # unset: nothing happens


# --- item 2: a refused or interrupted close keeps the later months -------------------------------


def test_a_refused_close_keeps_the_months_posted_after_it(ws: Path) -> None:
    """The planted finding refuses October's close; November's file is as it was, `check` passes."""
    november = month_path(ws / "books", "2026-11")
    before = november.read_text()
    assert "2026-11-30" in before and "Invoice INV-2026-000003" in before
    (ws / "planted").write_text("cal\n")
    refused = meterbook(ws, "close", "2026-10")
    assert refused.returncode == 1 and "refused to close 2026-10" in refused.stdout
    assert november.read_text() == before
    (ws / "planted").unlink()
    code, out = check_lines(ws)
    assert code == 0, out


@pytest.mark.parametrize("point", ["close:inner-post", "close:body", "close:recorded"])
def test_a_close_killed_before_its_seal_is_closed_by_the_rerun(
    ws: Path, tmp_path: Path, point: str
) -> None:
    """Killed at each point before the seal is in the books: the month is not sealed, November is
    still posted, and the re-run gives books byte-identical to a close that was never
    interrupted."""
    clean = copy(ws, tmp_path, "clean")
    assert meterbook(clean, "close", "2026-10").returncode == 0
    killed = meterbook(ws, "close", "2026-10", env={"METERBOOK_FAULT": point})
    assert killed.returncode == faults.EXIT_STATUS, killed.stderr
    assert "2026-10" not in sealed_months(ws / "books")
    assert "Invoice INV-2026-000003" in month_path(ws / "books", "2026-11").read_text()
    if point in ("close:body", "close:recorded"):
        code, out = check_lines(ws)  # the half-way close is named, not passed
        assert code == 1
        assert (
            "2026-10: a close file without a seal" in out
            or "the close of 2026-10 stopped half-way" in out
        )
        if point == "close:recorded":
            assert "2026-10: the store recorded seal" in out and "the books have no seal" in out
    rerun = meterbook(ws, "close", "2026-10")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "closed 2026-10" in rerun.stdout
    assert hashes(ws) == hashes(clean)
    assert recorded_seals(ws) == recorded_seals(clean)
    assert check_lines(ws)[0] == 0


def test_a_close_killed_after_its_seal_is_complete(ws: Path, tmp_path: Path) -> None:
    """Killed right after the seal is written: seal, store record, close report and documents are
    all there already (they were written first), `check` passes, a re-run says it is closed."""
    clean = copy(ws, tmp_path, "clean")
    assert meterbook(clean, "close", "2026-10").returncode == 0
    killed = meterbook(ws, "close", "2026-10", env={"METERBOOK_FAULT": "close:sealed"})
    assert killed.returncode == faults.EXIT_STATUS
    assert hashes(ws) == hashes(clean)
    assert recorded_seals(ws) == recorded_seals(clean)
    assert check_lines(ws)[0] == 0
    again = meterbook(ws, "close", "2026-10")
    assert again.returncode == 0 and "2026-10 is already closed; nothing changed" in again.stdout


def test_a_seal_the_store_never_recorded_is_finished_by_the_rerun(ws: Path) -> None:
    """A close that stopped after its seal and before the store recorded it (as closes before this
    version could): `check` names it; `close` finishes it instead of saying "already closed"."""
    assert meterbook(ws, "close", "2026-10").returncode == 0
    report = ws / "books" / "2026" / "2026-10.close.md"
    text = report.read_text()
    session = open_session(ws)
    with session.engine.begin() as conn:
        conn.execute(meta.delete().where(meta.c.key == "seal:2026-10"))
    session.engine.dispose()
    report.unlink()
    code, out = check_lines(ws)
    assert (
        code == 1
        and "2026-10: sealed in the books, but the store has no record of that seal" in out
    )
    assert "close report 2026/2026-10.close.md cannot be read" in out or "2026-10.close.md" in out
    finished = meterbook(ws, "close", "2026-10")
    assert finished.returncode == 0
    assert "finished the close of 2026-10" in finished.stdout
    assert (
        "recorded its seal in the store" in finished.stdout
        and "wrote its close report" in finished.stdout
    )
    assert report.read_text() == text
    assert check_lines(ws)[0] == 0


def test_a_seal_deleted_from_the_books_fails_check(ws: Path) -> None:
    """The seal is recorded in the store before it is written: deleting it from the books is
    seen."""
    assert meterbook(ws, "close", "2026-10").returncode == 0
    close_file = close_path(ws / "books", "2026-10")
    kept = [
        line
        for line in close_file.read_text().splitlines(keepends=True)
        if 'custom "meterbook-seal"' not in line
    ]
    close_file.write_text("".join(kept))
    code, out = check_lines(ws)
    assert code == 1
    assert "2026-10: the store recorded seal" in out and "the books have no seal" in out
    assert "a close file without a seal: the close of 2026-10 stopped half-way" in out


def test_an_emptied_open_month_fails_check(ws: Path) -> None:
    """Books truncated behind the store's back: November's file emptied to its header. The store
    recorded the books posted through 2026-11-30, so check audits through that day."""
    november = month_path(ws / "books", "2026-11")
    november.write_text(november.read_text().split("\n", 1)[0] + "\n")
    code, out = check_lines(ws)
    assert code == 1
    assert "FAILED  issued invoices in the books" in out
    assert "1 of the 3 invoices the store issued through 2026-11-30 are not in the books" in out
    assert "INV-2026-000003" in out
    assert "FAILED  store-to-ledger tie-out" in out


# --- item 5: invoice all or nothing ---------------------------------------------------------------


def test_an_invoice_killed_after_numbering_is_completed_by_the_next_run(tmp_path: Path) -> None:
    """Killed after the store committed the invoices, before the books were renamed into place:
    `check` fails (the store is ahead of the books), the next `invoice` writes them, and the books
    are byte-identical to an uninterrupted run."""
    root = build(tmp_path / "ws")
    clean = copy(root, tmp_path, "clean")
    assert meterbook(clean, "invoice", "--through", "2026-11-30").returncode == 0
    killed = meterbook(
        root, "invoice", "--through", "2026-11-30", env={"METERBOOK_FAULT": "invoice:numbered"}
    )
    assert killed.returncode == faults.EXIT_STATUS
    assert invoices(root) == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
    assert not (root / "books" / "documents" / "INV-2026-000001.json").exists()
    assert check_lines(root)[0] == 1
    again = meterbook(root, "invoice", "--through", "2026-11-30")
    assert again.returncode == 0 and "issued 0 invoices" in again.stdout
    assert hashes(root) == hashes(clean)
    assert check_lines(root)[0] == 0


def test_an_invoice_killed_before_the_store_commits_issues_nothing(tmp_path: Path) -> None:
    """Killed with the books staged as temporary files: nothing issued, nothing in place; the next
    run removes the temporary files and issues the same numbers."""
    root = build(tmp_path / "ws")
    clean = copy(root, tmp_path, "clean")
    assert meterbook(clean, "invoice", "--through", "2026-11-30").returncode == 0
    killed = meterbook(
        root, "invoice", "--through", "2026-11-30", env={"METERBOOK_FAULT": "invoice:staged"}
    )
    assert killed.returncode == faults.EXIT_STATUS
    assert invoices(root) == []
    assert list((root / "books").rglob(".*.tmp"))  # what a kill -9 leaves
    assert not (root / "books" / "documents" / "INV-2026-000001.json").exists()
    assert meterbook(root, "invoice", "--through", "2026-11-30").returncode == 0
    assert not list((root / "books").rglob(".*.tmp"))
    assert hashes(root) == hashes(clean)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real small filesystem (tmpfs) at ``path``; the test is skipped where it cannot be
    mounted."""
    path.mkdir(parents=True)
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        != 0
    ):
        pytest.skip(
            "cannot mount a tmpfs here (needs root): the full-disk test needs a real small disk"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Fill the filesystem of ``folder`` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def test_invoice_on_a_full_disk_issues_nothing(tmp_path: Path) -> None:
    """The books on a full disk (the store elsewhere): exit 2, one line, no invoice numbered or
    stored, the books unchanged; after space is freed, the same numbers are issued."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        root = build(disk / "ws")
        (root / "meterbook.toml").write_text(
            (root / "meterbook.toml")
            .read_text()
            .replace(
                'store = "sqlite:///var/events.sqlite"',
                f'store = "sqlite:///{tmp_path}/events.sqlite"',
            )
        )
        shutil.move(str(root / "var" / "events.sqlite"), tmp_path / "events.sqlite")
        assert meterbook(root, "post", "--through", "2026-09-30").returncode == 0
        before = hashes(root)
        fill(disk)
        full = meterbook(root, "invoice", "--through", "2026-11-30")
        one_line(full, "No space left on device")
        assert invoices(root) == []
        assert hashes(root) == before
        (disk / "filler").unlink()
        assert meterbook(root, "invoice", "--through", "2026-11-30").returncode == 0
        assert invoices(root) == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
        assert check_lines(root)[0] == 0


def test_ingest_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    """The store on a full disk: `ingest` stops with one line (exit 2), no traceback."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        root = write_workspace(disk / "ws", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)
        rows = "".join(
            f"e{i},app,cal,api.request,2026-09-{1 + i % 28:02d}T10:00:00Z,,,,,\n"
            for i in range(20000)
        )
        header = "event_id,source,customer,type,time,tokens,input_tokens,region,gb,user\n"
        (tmp_path / "events.csv").write_text(header + rows)
        assert (
            meterbook(root, "post", "--through", "2026-09-30").returncode == 0
        )  # creates the store
        fill(disk)
        result = meterbook(root, "ingest", str(tmp_path / "events.csv"))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert (
            result.stderr.startswith("meterbook: error:") and len(result.stderr.splitlines()) == 1
        ), result.stderr


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` immutable (``chattr +i``): no process may write it, root included (root ignores the
    file modes a ``chmod 444`` attack relies on)."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.mark.parametrize(
    "command",
    [
        ["invoice", "--through", "2026-11-30"],
        ["close", "2026-09"],
        ["alerts", "--through", "2026-11-30"],
    ],
)
def test_a_read_only_store_is_one_line_and_unchanged(tmp_path: Path, command: list[str]) -> None:
    root = build(tmp_path / "ws")
    if (
        command[0] == "alerts"
    ):  # a cap of 20 calls: cal's 30 September calls cross it, an alert to store
        customers = root / "rules" / "customers.yaml"
        customers.write_text(
            customers.read_text().replace(
                "start: 2026-09-01}]}", "start: 2026-09-01}], caps: {api_calls: 20}}"
            )
        )
    assert meterbook(root, "post", "--through", "2026-09-30").returncode == 0
    store = root / "var" / "events.sqlite"
    before = store.read_bytes()
    books_before = hashes(root)
    with read_only(store):
        result = meterbook(root, *command)
    one_line(result, "refused a write", "readonly database")
    assert store.read_bytes() == before
    if command[0] == "invoice":
        assert hashes(root) == books_before  # staged, never put in place


# --- item 7: one writer at a time -----------------------------------------------------------------


def test_a_locked_workspace_is_one_line_naming_the_holder(ws: Path) -> None:
    with workspace_lock(ws, "close 2026-10"):
        result = meterbook(
            ws, "post", "--through", "2026-11-30", env={"METERBOOK_LOCK_TIMEOUT": "0.3"}
        )
    one_line(
        result,
        f"the workspace {ws} is locked by `meterbook close 2026-10` (pid {os.getpid()}",
        "gave up after 0.3 s (METERBOOK_LOCK_TIMEOUT sets the wait)",
    )
    assert "meterbook: waiting: the workspace" in result.stderr


def test_check_shares_the_lock_with_readers_but_waits_for_writers(ws: Path) -> None:
    with workspace_lock(ws, "check", shared=True):
        assert meterbook(ws, "check", env={"METERBOOK_LOCK_TIMEOUT": "0"}).returncode == 0
    with workspace_lock(ws, "post"):
        one_line(
            meterbook(ws, "check", env={"METERBOOK_LOCK_TIMEOUT": "0.2"}),
            "is locked by `meterbook post`",
        )


def test_a_post_that_read_the_store_before_an_invoice_cannot_overwrite_its_books(
    tmp_path: Path,
) -> None:
    """The attack: `post` reads the store, `invoice` issues and writes its books, then `post` writes
    books without the invoices. With the lock, `invoice` waits for `post`; the books are those of
    `post` then `invoice` run one after the other."""
    root = build(tmp_path / "ws")
    sequential = copy(root, tmp_path, "sequential")
    assert meterbook(sequential, "post", "--through", "2026-11-30").returncode == 0
    assert meterbook(sequential, "invoice", "--through", "2026-11-30").returncode == 0

    release = tmp_path / "release"
    post = start(
        root, "post", "--through", "2026-11-30", env={"METERBOOK_PAUSE": f"post:rated:{release}"}
    )
    reached = Path(f"{release}.reached")
    while not reached.exists():
        assert post.poll() is None, post.communicate()
    invoice = start(root, "invoice", "--through", "2026-11-30")
    waiting = invoice.stderr.readline() if invoice.stderr else ""  # blocks until it has to wait
    assert waiting.startswith("meterbook: waiting: the workspace") and "`meterbook post`" in waiting
    release.write_text("go")
    assert post.wait(timeout=300) == 0
    _out, err = invoice.communicate(timeout=300)
    assert invoice.returncode == 0, err
    assert "Traceback" not in err
    assert hashes(root) == hashes(sequential)
    assert check_lines(root)[0] == 0


def test_two_invoices_at_once_issue_each_invoice_once(tmp_path: Path) -> None:
    """Started together (no pause): one waits for the other; no IntegrityError, each invoice issued
    once, the books those of one run."""
    root = build(tmp_path / "ws")
    sequential = copy(root, tmp_path, "sequential")
    assert meterbook(sequential, "invoice", "--through", "2026-11-30").returncode == 0
    runs = [start(root, "invoice", "--through", "2026-11-30") for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert all("Traceback" not in err and "IntegrityError" not in err for _out, err in results)
    assert sorted(out.splitlines()[-1] for out, _err in results) == [
        "issued 0 invoices",
        "issued 3 invoices",
    ]
    assert invoices(root) == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
    assert hashes(root) == hashes(sequential)


def test_a_postgresql_store_is_locked_across_workspaces(pg_url: str, tmp_path: Path) -> None:
    """Two workspaces (two checkouts) on one PostgreSQL store: the advisory lock serialises them."""
    from ledger.lock import _store_lock

    config = f'store = "{pg_url}"\n'
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS, config=config
    )
    with _store_lock(pg_url, "invoice (elsewhere)", 1, None):
        result = meterbook(
            root, "post", "--through", "2026-09-30", env={"METERBOOK_LOCK_TIMEOUT": "0.3"}
        )
    one_line(result, "is locked by `meterbook invoice (elsewhere)", "gave up after 0.3 s")
    assert meterbook(root, "post", "--through", "2026-09-30").returncode == 0


def test_two_invoices_at_once_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """The IntegrityError race on PostgreSQL, from two workspaces sharing the store: the advisory
    lock makes one wait; each invoice is issued once."""
    config = f'store = "{pg_url}"\n'
    first = write_workspace(
        tmp_path / "a", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS, config=config
    )
    second = copy(first, tmp_path, "b")
    session = open_session(first)
    insert_events(session.engine, calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]))
    session.engine.dispose()
    runs = [start(root, "invoice", "--through", "2026-10-31") for root in (first, second)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert all("Traceback" not in err for _out, err in results)
    assert sorted(out.splitlines()[-1] for out, _err in results) == [
        "issued 0 invoices",
        "issued 1 invoices",
    ]
    assert invoices(first) == ["INV-2026-000001"]  # cal's September: 20 × 0.05 = 1.00, issued once


# --- items 8, 9, 10: sealed means everything ------------------------------------------------------


def bean_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bean-check"), str(root / "books" / "main.beancount")],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )


def test_the_seal_covers_documents_and_the_close_report(closed: Path) -> None:
    close_text = close_path(closed / "books", "2026-10").read_text()
    assert 'custom "meterbook-seal-documents" "2026-10" 4' in close_text
    for name in (
        "documents/INV-2026-000001.html",
        "documents/INV-2026-000001.json",
        "documents/INV-2026-000002.html",
        "documents/INV-2026-000002.json",
        "2026/2026-10.close.md",
    ):
        assert f'"{name} ' in close_text
    code, out = check_lines(closed)
    assert code == 0 and "2026-10 " in out and "ok, 4 documents and the close report" in out


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("documents/INV-2026-000002.json", '"total":"0.75"', '"total":"0.07"'),
        (
            "documents/INV-2026-000002.html",
            "0.75 USD</td></tr></tfoot>",
            "0.07 USD</td></tr></tfoot>",
        ),
        ("2026/2026-10.close.md", "0.75", "0.07"),
    ],
)
def test_a_changed_sealed_document_fails_check_and_bean_check(
    closed: Path, path: str, old: str, new: str
) -> None:
    target = closed / "books" / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    checked = bean_check(closed)
    assert checked.returncode == 1
    what = "close report" if path.endswith(".md") else "document"
    assert (
        f"month 2026-10 is sealed but its {what} {path} was changed"
        in checked.stdout + checked.stderr
    )
    code, out = check_lines(closed)
    assert code == 1 and f"FAILED: month 2026-10 is sealed but its {what} {path} was changed" in out


def test_removing_the_seal_plugin_fails_bean_check_and_check_names_it(closed: Path) -> None:
    main = closed / "books" / "main.beancount"
    main.write_text(main.read_text().replace('plugin "ledger.seal"\n', ""))
    checked = bean_check(closed)
    assert checked.returncode == 1
    assert (
        f"Balance failed for '{GUARD_ACCOUNT}': expected 2 SEAL != accumulated 0 SEAL"
        in checked.stderr + checked.stdout
    )
    code, out = check_lines(closed)
    assert code == 1 and 'plugin "ledger.seal" is not declared' in out


def test_with_the_plugin_the_guard_balances_and_books_load_cleanly(closed: Path) -> None:
    entries, errors, _options = load_books(closed / "books" / "main.beancount")
    assert errors == []
    guard = sum(
        p.units.number
        for e in entries
        if hasattr(e, "postings")
        for p in e.postings
        if p.account == GUARD_ACCOUNT
    )
    assert guard == 2  # September and October
    assert GUARD_ACCOUNT not in (closed / "books" / "accounts.beancount").read_text()


def test_check_cannot_be_fooled_by_the_pickle_cache(closed: Path) -> None:
    """An edit of the same size with the old mtime: a cached load would not see it; check (always
    with the cache off) does, and so does bean-check with BEANCOUNT_DISABLE_LOAD_CACHE=1."""
    october = month_path(closed / "books", "2026-10")
    stat = october.stat()
    loader.initialize(True, str(closed / "books" / ".cache.picklecache"))
    try:
        loader.load_file(str(closed / "books" / "main.beancount"))  # fills the cache
    finally:
        loader.initialize(False)
    text = october.read_text()
    assert "quantity: 25" in text
    october.write_text(text.replace("quantity: 25", "quantity: 26", 1))
    os.utime(october, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert october.stat().st_size == stat.st_size
    code, out = check_lines(closed)
    assert code == 1 and "month 2026-10 is sealed but an entry was changed" in out
    assert bean_check(closed).returncode == 1


def test_serve_binds_a_bracketed_ipv6_loopback(ws: Path) -> None:
    import socket
    import urllib.request

    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
        port = probe.getsockname()[1]
    server = start(ws, "serve", "--host", "[::1]", "--port", str(port))
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith(f"Fava on http://[::1]:{port}/"), (
            line,
            server.stderr.read() if server.stderr else "",
        )
        with urllib.request.urlopen(f"http://[::1]:{port}/", timeout=30) as response:
            assert response.status == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: Fava still starting its reload
            server.kill()
            server.wait(timeout=30)


def test_posted_through_is_recorded(ws: Path) -> None:
    session = open_session(ws)
    try:
        assert session.posted_through() == date(2026, 11, 30)
    finally:
        session.engine.dispose()


def test_seals_made_before_documents_were_covered_still_verify(ws: Path) -> None:
    """A close file as earlier versions wrote it (assertions, manifest, seal; no documents
    directive, no guard): bean-check and check still pass it, and check says what it does not
    cover."""
    from ledger.seal import GENESIS, build_seal, read_seals

    close_file = close_path(ws / "books", "2026-09")
    text = close_file.read_text()
    close_file.write_text(text[: text.index('2026-10-01 custom "meterbook-seal-documents"')])
    entries, errors, _options = load_books(ws / "books" / "main.beancount")
    assert errors == []
    sealing = build_seal("2026-09", entries, GENESIS)
    close_file.write_text(close_file.read_text() + "".join("\n" + format_entry(d) for d in sealing))
    old_hash = read_seals(sealing)[0][0].hash
    session = open_session(ws)
    with session.engine.begin() as conn:
        conn.execute(meta.update().where(meta.c.key == "seal:2026-09").values(value=old_hash))
    session.engine.dispose()
    assert bean_check(ws).returncode == 0
    code, out = check_lines(ws)
    assert code == 0, out
    assert (
        "ok (sealed before seals covered documents: its documents and close report are not "
        "verified)" in out
    )


def test_a_bad_lock_timeout_is_one_line(ws: Path) -> None:
    one_line(
        meterbook(ws, "post", "--through", "2026-11-30", env={"METERBOOK_LOCK_TIMEOUT": "soon"}),
        "METERBOOK_LOCK_TIMEOUT='soon': expected a number of seconds from 0 to 86400",
    )
