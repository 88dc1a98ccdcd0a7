"""Attacks re-run against the faults/tamper/concurrency half of issue 19, each one that failed kept
here as a deterministic regression test: the real CLI in subprocesses on test_reliability's
workspace (``cal`` and ``ann``; September closed, invoiced and posted through 2026-11-30: INV-…1
(cal, Oct 1, 1.00 USD), INV-…2 (ann, Oct 15, 0.75 USD), INV-…3 (cal, Nov 1, 0.25 USD)).
"""

from __future__ import annotations

import os
from pathlib import Path

from ledger.lock import LOCK_FILE, workspace_lock
from tests.test_reliability import meterbook, one_line, posted_template, ws

__all__ = ["posted_template", "ws"]  # the fixtures, shared with test_reliability


# --- the workspace lock ----------------------------------------------------------------------


def test_a_lock_label_linked_to_a_file_elsewhere_is_never_emptied(ws: Path, tmp_path: Path) -> None:
    """The attack: ``.meterbook.lock`` planted as a symbolic link (then a hard link) to a file outside
    the workspace; every writer emptied the file it points to (``ftruncate`` through the link). Now
    the label is written through no link and the lock is the workspace folder's: the command runs,
    the file keeps its 14 bytes."""
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
        result = meterbook(ws, "post", "--through", "2026-11-30", env={"METERBOOK_LOCK_TIMEOUT": "0.3"})
    one_line(result, f"the workspace {ws} is locked by", "gave up after 0.3 s")
