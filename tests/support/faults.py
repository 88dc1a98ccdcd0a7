"""The faults workspace of test_reliability and test_attacks, and the real CLI in subprocesses.

The workspace is the close workspace (:mod:`tests.support.close`) with events through
November (test_reliability's module docstring works its invoices); the fixtures
``posted_template``, ``ws`` and ``closed`` in conftest.py post, invoice and close it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledger.facts.invoices import load_invoices
from tests.support.close import CUSTOMERS, PLANS, PLANTED
from tests.support.workspaces import (
    METERS_CALLS,
    calls,
    insert_events,
    open_session,
    write_workspace,
)

BIN = Path(sys.executable).parent
ENV = {**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1", "METERBOOK_LOCK_TIMEOUT": "120"}


def meterbook(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess."""
    return subprocess.run(
        [str(BIN / "meterbook"), "--workspace", str(root), *args],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=timeout,
        check=False,
    )


def start(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "meterbook"), "--workspace", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, **(env or {})},
    )


def one_line(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    """Exit 2, one ``meterbook: error:`` line on stderr holding every part, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("meterbook: error:")]
    assert len(lines) == 1, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def build(root: Path) -> Path:
    write_workspace(
        root, meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS, plugins={"planted": PLANTED}
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *calls("cal", [f"2026-09-{d:02d}" for d in range(1, 31)]),
            *calls("ann", [f"2026-09-{16 + i:02d}" for i in range(14)]),
            *calls("ann", [f"2026-10-{1 + i:02d}" for i in range(11)], "oct"),
            *calls("cal", [f"2026-10-{1 + i:02d}" for i in range(15)], "oct"),
            *calls("cal", [f"2026-11-{1 + i:02d}" for i in range(12)], "nov"),
            *calls("ann", [f"2026-11-{1 + i:02d}" for i in range(6)], "nov"),
        ],
    )
    session.engine.dispose()
    return root


def invoices(root: Path) -> list[str]:
    session = open_session(root)
    try:
        return [inv.number for inv in load_invoices(session.engine)]
    finally:
        session.engine.dispose()


def check_lines(root: Path) -> tuple[int, str]:
    result = meterbook(root, "check")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout
