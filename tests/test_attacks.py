"""Attacks re-run against the faults/tamper/concurrency half of issue 19, each one that failed kept
here as a deterministic regression test: the real CLI in subprocesses on the faults workspace
(:mod:`tests.support.faults`; conftest.py's fixtures ``ws`` and ``closed``): ``cal`` and ``ann``,
September closed, invoiced and posted through 2026-11-30: INV-…1 (cal, Oct 1, 1.00 USD),
INV-…2 (ann, Oct 15, 0.75 USD), INV-…3 (cal, Nov 1, 0.25 USD).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from ledger import session as session_module
from ledger.lock import LOCK_FILE, workspace_lock
from tests.support.faults import check_lines, invoices, meterbook, one_line, start
from tests.support.workspaces import open_session

# --- the workspace lock ----------------------------------------------------------------------


def test_a_lock_label_linked_to_a_file_elsewhere_is_never_emptied(ws: Path, tmp_path: Path) -> None:
    """The attack: ``.meterbook.lock`` planted as a symbolic link (then a hard link) to a file
    outside the workspace; every writer emptied the file it points to (``ftruncate`` through the
    link). Now the label is written through no link and the lock is the workspace folder's: the
    command runs, the file keeps its 14 bytes."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data\n")
    (ws / LOCK_FILE).unlink(missing_ok=True)
    (ws / LOCK_FILE).symlink_to(victim)
    assert meterbook(ws, "post", "--through", "2026-11-30").returncode == 0
    assert victim.read_text() == "precious data\n"
    (ws / LOCK_FILE).unlink()
    os.link(victim, ws / LOCK_FILE)
    assert meterbook(ws, "post", "--through", "2026-11-30").returncode == 0
    assert victim.read_text() == "precious data\n"


def test_deleting_the_lock_file_while_it_is_held_admits_no_second_writer(ws: Path) -> None:
    """The attack: the label deleted while a command holds the lock; the next command created a new
    file, locked it and wrote beside the holder. The lock is the workspace folder's, which cannot
    be deleted under a holder: the second command waits, then gives up with one line."""
    with workspace_lock(ws, "close 2026-10"):
        (ws / LOCK_FILE).unlink()
        result = meterbook(
            ws, "post", "--through", "2026-11-30", env={"METERBOOK_LOCK_TIMEOUT": "0.3"}
        )
    one_line(result, f"the workspace {ws} is locked by", "gave up after 0.3 s")


# --- documents outside the seals -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tamper", "found"),
    [
        (
            "INV-2026-000003.html",
            lambda p: p.write_text(p.read_text().replace("0.25 USD", "0.02 USD")),
            "documents/INV-2026-000003.html: differs from the document the store issued",
        ),
        (
            "INV-2026-000003.json",
            lambda p: p.write_text(p.read_text().replace('"total":"0.25"', '"total":"0.02"')),
            "documents/INV-2026-000003.json: differs from the document the store issued",
        ),
        (
            "INV-2026-000003.html",
            lambda p: (p.unlink(), p.mkdir()),
            "documents/INV-2026-000003.html: cannot be read: Is a directory",
        ),
        (
            "INV-2026-000099.html",
            lambda p: p.write_text("<h1>Invoice INV-2026-000099</h1> 999.00 USD"),
            "documents/INV-2026-000099.html: not a document the store issued",
        ),
    ],
)
def test_a_document_of_an_open_month_edited_replaced_or_forged_fails_check(
    ws: Path, name: str, tamper: object, found: str
) -> None:
    """The attack: INV-2026-000003 (cal, Nov 1, 0.25 USD) is in November, which is open, so no seal
    covers its documents; a changed total in the HTML the customer reads, or in the JSON, passed
    ``check``; so did the HTML replaced by a folder and a forged invoice beside the real ones. Now
    ``check`` compares every document outside the seals with what the store issued."""
    assert check_lines(ws)[0] == 0
    target = ws / "books" / "documents" / name
    assert callable(tamper)
    tamper(target)
    code, out = check_lines(ws)
    assert code == 1, out
    assert "FAILED  documents as issued" in out and found in out
    if target.is_dir():
        target.rmdir()
    if "INV-2026-000099" in name:
        target.unlink()
    assert meterbook(ws, "post", "--through", "2026-11-30").returncode == 0  # writes them again
    assert check_lines(ws)[0] == 0


def test_post_never_rewrites_a_sealed_document_but_puts_back_its_sealed_bytes(
    closed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """October is sealed with INV-2026-000001's documents. A meterbook upgrade that renders invoices
    differently made ``post`` rewrite them, breaking the seal it had just been told to keep; now a
    sealed document is written only to restore its sealed bytes (deleted or edited), and an open
    month's (INV-2026-000003, November) takes the new rendering."""
    from ledger.documents import invoice_documents

    sealed_html = closed / "books" / "documents" / "INV-2026-000001.html"
    open_html = closed / "books" / "documents" / "INV-2026-000003.html"
    before = sealed_html.read_bytes()
    sealed_html.write_text("edited")

    def upgraded(
        invoice: object, rules: object, templates: object, prepaid: object = ()
    ) -> dict[str, str]:
        documents = invoice_documents(invoice, rules, templates, prepaid)  # type: ignore[arg-type]
        return {
            path: text.replace("</body>", "<footer>v2</footer></body>")
            for path, text in documents.items()
        }

    session = open_session(closed)
    try:
        session.post(date(2026, 11, 30))  # the same rendering: the edited sealed file is put back
        assert sealed_html.read_bytes() == before
        monkeypatch.setattr(session_module, "invoice_documents", upgraded)
        session.post(date(2026, 11, 30))
    finally:
        session.engine.dispose()
    assert sealed_html.read_bytes() == before
    assert "<footer>v2</footer>" in open_html.read_text()
    code, out = check_lines(closed)
    assert "ok, 4 documents and the close report" in out  # the seal holds
    assert code == 1
    assert "documents/INV-2026-000003.html: differs from the document the store issued" in out


# --- the books as post writes them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "edit", "named"),
    [
        (
            "2026/2026-11.beancount",
            lambda text: (
                text + '\n2026-11-20 * "cal" "Usage accrual"\n  Income:Usage:Api-Calls  5.00 USD\n'
                "  Income:Usage:Api-Calls  -5.00 USD\n"
            ),
            "2026/2026-11.beancount",
        ),
        (
            "main.beancount",
            lambda text: text.replace(
                'option "title"', 'option "inferred_tolerance_default" "USD:1000"\noption "title"'
            ),
            "main.beancount",
        ),
    ],
)
def test_an_entry_or_option_forged_into_the_open_books_fails_check(
    ws: Path, path: str, edit: object, named: str
) -> None:
    """The attack: a balanced entry forged into November (open, so no seal covers it) on accounts
    the tie-out does not compare, or an ``option`` slipped into main.beancount (a tolerance of 1,000
    USD that would hide any balance difference): bean-check and ``check`` passed. Now ``check``
    regenerates what ``post --through 2026-11-30`` writes and compares file by file; ``post`` puts
    them back."""
    target = ws / "books" / path
    assert callable(edit)
    text = target.read_text()
    target.write_text(edit(text))
    assert target.read_text() != text
    code, out = check_lines(ws)
    assert code == 1, out
    assert "FAILED  books as posted" in out
    assert (
        f"writes from the store (edited by hand, or events stored since the last post): {named}"
    ) in out
    assert meterbook(ws, "post", "--through", "2026-11-30").returncode == 0
    assert target.read_text() == text
    code, out = check_lines(ws)
    assert code == 0 and "ok      books as posted" in out


def test_a_sealed_invoice_edited_in_the_store_is_named_against_its_sealed_copy(
    closed: Path,
) -> None:
    """INV-2026-000002 (ann, Oct 15: 15 calls × 0.05 = 0.75 USD) is sealed with October. Its line
    edited in the store to 0.07 contradicts the sealed JSON, which ``check`` names (besides the
    tie-out the changed figure breaks)."""
    import sqlite3

    store = next((closed / "var").glob("*.sqlite"))
    with sqlite3.connect(store) as conn:
        changed = conn.execute(
            'UPDATE invoices SET document = replace(document, \'"amount":"0.75"\', '
            "'\"amount\":\"0.07\"') WHERE number = 'INV-2026-000002'"
        ).rowcount
    assert changed == 1
    code, out = check_lines(closed)
    assert code == 1
    assert (
        "documents/INV-2026-000002.json: the store's record differs from the sealed document "
        "(the store was edited after the close)"
    ) in out


# --- close ------------------------------------------------------------------------------------


def test_a_close_stopped_by_a_folder_at_its_report_path_leaves_books_that_load(ws: Path) -> None:
    """The attack: a folder where October's close report goes. The close stops with one line, but
    its roll-back stopped too (unlinking the folder failed) before writing main.beancount again,
    which kept including the close file it had just removed: bean-check and every later load failed.
    Now each roll-back step runs whatever the one before did; the folder is left as it was."""
    report = ws / "books" / "2026" / "2026-10.close.md"
    report.mkdir(parents=True)
    one_line(meterbook(ws, "close", "2026-10"), f"{report}: Is a directory")
    assert report.is_dir()
    assert "2026-10.close.beancount" not in (ws / "books" / "main.beancount").read_text()
    code, out = check_lines(ws)
    assert code == 0, out
    report.rmdir()
    assert meterbook(ws, "close", "2026-10").returncode == 0
    assert check_lines(ws)[0] == 0


def test_a_reader_waits_for_a_writer_half_way(ws: Path, tmp_path: Path) -> None:
    """The attack: ``trace`` run while ``invoice`` had committed cal's Dec 1 invoice (November: 12
    calls, 2 × 0.05 = 0.10 USD) to the store but not yet put its books and documents in place
    (``invoice:numbered``) reported its document as missing (DIFFERS), exit 0. The commands that
    read the books with the store hold the lock shared: the trace waits, saying so, then traces the
    invoice as issued."""
    release = tmp_path / "release"
    invoice = start(
        ws,
        "invoice",
        "--through",
        "2026-12-01",
        env={"METERBOOK_PAUSE": f"invoice:numbered:{release}"},
    )
    reached = Path(f"{release}.reached")
    while not reached.exists():
        assert invoice.poll() is None, invoice.communicate()
    number = invoices(ws)[-1]
    assert number == "INV-2026-000004"
    assert not (ws / "books" / "documents" / f"{number}.json").exists()  # half-way
    trace = start(ws, "trace", number)
    waiting = trace.stderr.readline() if trace.stderr else ""
    assert waiting.startswith("meterbook: waiting: the workspace")
    assert "`meterbook invoice`" in waiting
    release.write_text("go")
    assert invoice.wait(timeout=300) == 0
    out, err = trace.communicate(timeout=300)
    assert trace.returncode == 0, err
    assert f"trace {number}: invoice of cal dated 2026-12-01, total 0.10 USD" in out
    assert "DIFFERS" not in out and "missing" not in out
