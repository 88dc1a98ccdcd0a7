"""The month-end close report, ``books/YYYY/YYYY-MM.close.md``: the finance reports of the
closed month in Markdown, with the findings, their acceptances and the seal hash.

``meterbook close`` writes it next to the month's ``.close.beancount`` (balance assertions and
seal); its sections are the revenue report, the unbilled, deferred-revenue and receivable
roll-forwards, the deferred-revenue waterfall, the aging and the findings table. It holds no
wall-clock time, so closing the same books twice writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from beancount.core import data

from ledger import books
from ledger.escaping import for_terminal
from ledger.period import month_end
from ledger.reports.aging import aging
from ledger.reports.deferred import deferred
from ledger.reports.revenue import revenue
from ledger.reports.rollforward import rollforward_tables
from ledger.reports.sources import Sources
from ledger.reports.table import Report, Table, cell_text

if TYPE_CHECKING:
    from ledger.reconcile import Finding
    from ledger.session import Session


def close_report_path(books_dir: Path, month: str) -> Path:
    """``books/2026/2026-10.close.md``."""
    return books_dir / month[:4] / f"{month}.close.md"


def close_report_text(
    session: Session,
    month: str,
    *,
    findings: Iterable[Finding],
    accepted: Mapping[str, str],
    seal_hash: str,
    entries: Iterable[data.Directive] | None = None,
) -> str:
    """The Markdown close report of a sealed ``month`` (deterministic: no wall-clock time).

    ``entries``: the books as loaded (default: load ``main.beancount``).
    """
    sources = Sources(session, entries)
    day = month_end(month)
    sections = [
        f"# Close {month}",
        "",
        f"Sealed by `meterbook close`. Figures are read from the books through {day} (as "
        "Beancount loads them, seal plugin included) and the event store; the balance assertions "
        f"and the seal are in `{month}.close.beancount`.",
        "",
        f"Seal: `{seal_hash}`",
    ]

    def section(
        title: str, report: Report, tables: Iterable[Table] | None = None, note: str = ""
    ) -> None:
        sections.extend(["", f"## {title}", ""])
        if note:
            sections.extend([note, ""])
        for n, table in enumerate(tables if tables is not None else report.tables):
            if n:
                sections.append("")
            sections.extend([f"### {table.title}", "", table.markdown()])

    rev = revenue(sources, month)
    section("Revenue", rev, note=rev.method)
    roll = rollforward_tables(sources, [month])
    section("Unbilled roll-forward", rev, roll[:2])
    dfr = deferred(sources, month, booked_later=False)
    section("Deferred revenue", dfr, (roll[2], *dfr.tables), note=dfr.method)
    age = aging(sources, month)
    section("Receivables", age, (roll[3], *age.tables), note=age.method)
    sections.extend(["", "## Findings and acceptances", ""])
    found = list(findings)
    if found:
        sections.extend(
            [
                "| severity | id | customer | meter | expected | actual | explanation | accepted |",
                "|---|---|---|---|---:|---:|---|---|",
            ]
        )
        for f in found:
            cells = [
                f.severity,
                f.id,
                f.customer or "",
                f.meter or "",
                cell_text(f.expected),
                cell_text(f.actual),
                f.explanation,
                accepted.get(f.id, ""),
            ]
            row = (for_terminal(str(c)).replace("|", "\\|") for c in cells)  # one finding, one line
            sections.append("| " + " | ".join(row) + " |")
    else:
        sections.append("No findings.")
    sections.extend(["", "## Seal", "", f"`{month}` sealed with hash `{seal_hash}`."])
    return "\n".join(sections) + "\n"


def write_close_report(
    session: Session,
    month: str,
    *,
    findings: Iterable[Finding],
    accepted: Mapping[str, str],
    seal_hash: str,
    entries: Iterable[data.Directive] | None = None,
) -> Path:
    """Write ``books/YYYY/YYYY-MM.close.md`` atomically (untouched when unchanged); return its
    path."""
    path = close_report_path(session.workspace.books_dir, month)
    books.write_atomic(
        path,
        close_report_text(
            session,
            month,
            findings=findings,
            accepted=accepted,
            seal_hash=seal_hash,
            entries=entries,
        ),
    )
    return path
