"""The close report ``books/YYYY/YYYY-MM.close.md``: written by close, printed, never rewritten.

The workspace is test_reports' hand-computed one (see its docstring), closed for September:
revenue 3.40 usage (ann 1.40, cal 2.00) + 46.00 base fees; unbilled 0 → 2.00 (cal's usage);
deferred 0 + 65.00 billed − 47.40 recognized = 17.60 (ann: 14.00 of base fee for October,
3.60 of credit expiring 2027-03); receivables 0 + 65.00 − 30.00 collected = 35.00, all of it
ann's INV-2026-000002 of Sep 15, 15 days past due on Sep 30 (1–30).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ledger.books import close_path
from ledger.reports.close import close_report_path
from tests.support.reports import accounting_workspace
from tests.support.workspaces import run_cli

BEAN_CHECK = Path(sys.executable).parent / "bean-check"
# A workspace reconciler: one error finding for September, to be accepted. It names no
# customer, so it holds no invoice (the invoicing gate) but blocks the close.
PLANTED = """\
from decimal import Decimal

from ledger.hookspecs import hookimpl
from ledger.reconcile import Finding


class Planted:
    name = "planted"

    def check(self, context):
        if context.period == "2026-09":
            yield Finding(
                id="planted:cal:2026-09", severity="error", check="planted", customer=None,
                meter="api_calls", period=context.period, expected=Decimal("20"),
                actual=Decimal("19"), explanation="live meter missed one call",
            )


@hookimpl
def meterbook_reconcilers():
    return [Planted()]
"""


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    accounting_workspace(root)
    (root / "plugins").mkdir()
    (root / "plugins" / "planted.py").write_text(PLANTED)
    (root / "meterbook.toml").write_text(
        'store = "sqlite:///var/events.sqlite"\nplugins_dir = "plugins"\n'
    )
    return root


def squeeze(text: str) -> set[str]:
    """Markdown table rows with their padding removed."""
    return {" ".join(line.split()) for line in text.splitlines()}


def test_close_writes_and_prints_the_report_and_a_reclose_leaves_it(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    refused = run_cli(root, "close", "2026-09")
    assert refused.exit_code == 1, refused.output
    assert not close_report_path(root / "books", "2026-09").exists()  # nothing sealed, no report

    result = run_cli(
        root,
        "close",
        "2026-09",
        "--accept",
        "planted:cal:2026-09",
        "--reason",
        "meter reset on Sep 3",
    )
    assert result.exit_code == 0, result.output
    path = close_report_path(root / "books", "2026-09")
    assert path == root / "books" / "2026" / "2026-09.close.md"
    text = path.read_text(encoding="utf-8")
    assert text in result.output  # printed by close, as written

    seal_line = re.search(
        r'custom "meterbook-seal" "2026-09" "0{64}" "([0-9a-f]{64})"',
        close_path(root / "books", "2026-09").read_text(),
    )
    assert seal_line is not None
    seal_hash = seal_line.group(1)
    assert f"Seal: `{seal_hash}`" in text and f"seal {seal_hash}" in result.output

    rows = squeeze(text)
    # revenue by meter and by customer
    assert "| 2026-09 | usage | api_calls | Income:Usage:Api-Calls | USD | 3.40 |" in rows
    assert "| 2026-09 | subscriptions | p | Income:Subscriptions:P | USD | 46.00 |" in rows
    assert "| 2026-09 | ann | USD | 1.40 | 16.00 | 0.00 | 17.40 |" in rows
    assert "| 2026-09 | cal | USD | 2.00 | 30.00 | 0.00 | 32.00 |" in rows
    # unbilled, deferred and receivables roll-forwards: opening, flows, closing
    assert (
        "### Unbilled roll-forward (opening + accrued − invoiced ± adjustments = closing)" in text
    )
    assert "| 2026-09 | USD | 0.00 | 2.00 | 0.00 | 0.00 | 2.00 |" in rows
    assert "| 2026-09 | USD | 0.00 | 65.00 | 47.40 | 0.00 | 17.60 |" in rows
    assert "| 2026-09 | USD | 0.00 | 65.00 | 30.00 | 0.00 | 0.00 | 35.00 |" in rows
    # deferred waterfall and the books' balance it explains
    assert "| ann | USD | 14.00 | 3.60 | 17.60 | 17.60 | 0.00 |" in rows
    assert (
        "| 2026-10 | ann | USD | base fee 2026-09-15/2026-10-15 (INV-2026-000002) | 14.00 |" in rows
    )
    assert (
        "| 2027-03 | ann | USD | prepaid credit granted 2026-09-15, expires 2027-03-15 | 3.60 |"
        in rows
    )
    # aging
    assert "| INV-2026-000002 | ann | 2026-09-15 | 2026-09-15 | 15 | 1–30 | USD | 35.00 |" in rows
    assert "| ann | USD | 0.00 | 35.00 | 0.00 | 0.00 | 0.00 | 35.00 | 35.00 |" in rows
    # findings and acceptances
    assert (
        "| error | planted:cal:2026-09 | | api_calls | 20 | 19 | live meter missed one call "
        "| meter reset on Sep 3 |"
    ) in rows
    assert "## Findings and acceptances" in text and "## Seal" in text

    # deterministic, and an unchanged re-close neither rewrites nor touches it
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    again = run_cli(root, "close", "2026-09")
    assert again.exit_code == 0 and "already closed" in again.output
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before

    # the books still check, with the report next to the sealed files
    env = {**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"}
    checked = subprocess.run(
        [str(BEAN_CHECK), str(root / "books" / "main.beancount")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_next_close_reports_its_own_month(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    assert (
        run_cli(
            root, "close", "2026-09", "--accept", "planted:cal:2026-09", "--reason", "known"
        ).exit_code
        == 0
    )
    september = close_report_path(root / "books", "2026-09").read_bytes()
    result = run_cli(root, "close", "2026-10")
    assert result.exit_code == 0, result.output
    text = close_report_path(root / "books", "2026-10").read_text(encoding="utf-8")
    rows = squeeze(text)
    assert text.startswith("# Close 2026-10\n")
    assert "| 2026-10 | usage | api_calls | Income:Usage:Api-Calls | USD | 2.60 |" in rows
    assert "| 2026-10 | USD | 2.00 | 1.00 | 2.00 | 0.00 | 1.00 |" in rows  # unbilled
    assert "| 2026-10 | USD | 17.60 | 60.00 | 62.05 | 0.00 | 15.55 |" in rows  # deferred
    assert "| 2026-10 | USD | 35.00 | 62.00 | 10.00 | 0.00 | 0.00 | 87.00 |" in rows  # receivables
    assert "| INV-2026-000002 | ann | 2026-09-15 | 2026-09-15 | 46 | 31–60 | USD | 25.00 |" in rows
    assert (
        "## Findings and acceptances" in text and "planted:" not in text
    )  # September's acceptance stays there
    assert close_report_path(root / "books", "2026-09").read_bytes() == september
