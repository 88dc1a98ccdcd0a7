"""What every report is: a :class:`Report` of :class:`Table` s of plain cells, and how it prints.

A table of two rows renders as text with text left-aligned and numbers right-aligned, and as
Markdown for the close report::

    >>> table = Table(
    ...     "Unbilled at 2026-10-31",
    ...     ("customer", "currency", "unbilled"),
    ...     (("ann", "USD", Decimal("2.60")), ("cal", "USD", Decimal("12.00"))),
    ... )
    >>> print(table.render())
    Unbilled at 2026-10-31
    customer  currency  unbilled
    ann       USD           2.60
    cal       USD          12.00
    >>> print(table.markdown())
    | customer | currency | unbilled |
    |---|---|---:|
    | ann | USD | 2.60 |
    | cal | USD | 12.00 |

A cell is a str, Decimal, int, date or None (:data:`Cell`); JSON carries Decimals and dates
as strings, CSV goes through :class:`ledger.escaping.SpreadsheetCsv` (a text cell never runs
as a formula).
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ledger.escaping import SpreadsheetCsv, for_terminal

Cell = str | Decimal | int | date | None


def cell_text(cell: Cell) -> str:
    """A cell as text: "" for None, ISO dates, Decimals never in exponent notation.

    >>> cell_text(Decimal("1E-7")), cell_text(date(2026, 10, 31)), cell_text(None)
    ('0.0000001', '2026-10-31', '')
    """
    if cell is None:
        return ""
    if isinstance(cell, date):
        return cell.isoformat()
    if isinstance(cell, Decimal):
        return format(cell, "f")  # never exponent notation (1E-7)
    return str(cell)


def _cell_json(cell: Cell) -> str | int | None:
    if cell is None or isinstance(cell, int):
        return cell
    return cell_text(cell)


@dataclass(frozen=True)
class Table:
    """One table of a report: a title, column names and rows of plain cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def to_json(self) -> dict[str, Any]:
        """``{"title", "columns", "rows": [{column: value}]}``, Decimals and dates as strings."""
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [
                {c: _cell_json(v) for c, v in zip(self.columns, row, strict=True)}
                for row in self.rows
            ],
        }

    def render(self) -> str:
        """A plain text table: text left-aligned, numbers right-aligned."""
        texts = [
            list(self.columns),
            *([for_terminal(cell_text(c)) for c in row] for row in self.rows),
        ]
        widths = [max(len(r[i]) for r in texts) for i in range(len(self.columns))]
        numeric = [
            all(isinstance(row[i], Decimal | int) or row[i] is None for row in self.rows)
            and self.rows
            for i in range(len(self.columns))
        ]
        lines = [self.title]
        for n, row_text in enumerate(texts):
            cells = [
                t.rjust(w) if numeric[i] and n else t.ljust(w)
                for i, (t, w) in enumerate(zip(row_text, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        if not self.rows:
            lines.append("(none)")
        return "\n".join(lines)

    def markdown(self) -> str:
        """A GitHub-flavoured Markdown table (numbers right-aligned)."""
        if not self.rows:
            return "(none)"
        numeric = [
            all(isinstance(row[i], Decimal | int) or row[i] is None for row in self.rows)
            for i in range(len(self.columns))
        ]
        lines = [
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
        ]
        for row in self.rows:
            cells = (for_terminal(cell_text(c)).replace("|", "\\|") for c in row)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


@dataclass(frozen=True)
class Report:
    """A finance report: what it is, how it is computed, and its tables."""

    name: str
    title: str
    method: str
    tables: tuple[Table, ...]

    def table(self, title: str) -> Table:
        """The table titled ``title`` (KeyError if none)."""
        for table in self.tables:
            if table.title == title:
                return table
        raise KeyError(title)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: ``{"report", "title", "method", "tables": [...]}``."""
        return {
            "report": self.name,
            "title": self.title,
            "method": self.method,
            "tables": [t.to_json() for t in self.tables],
        }

    def to_csv(self) -> str:
        """Each table as a CSV block: a header row starting with ``table``, then its rows
        (first cell the table's title); blocks are separated by an empty line."""
        out = io.StringIO()
        writer = SpreadsheetCsv(out)  # a text cell never runs as a formula; amounts stay numbers
        for n, table in enumerate(self.tables):
            if n:
                out.write("\n")
            writer.writerow(["table", *table.columns])
            for row in table.rows:
                writer.writerow([table.title, *(cell_text(c) for c in row)])
        return out.getvalue()

    def render(self) -> str:
        """Plain text: title, method, then each table."""
        parts = [
            self.title,
            textwrap.fill(f"method: {self.method}", width=100, break_on_hyphens=False),
        ]
        parts.extend(t.render() for t in self.tables)
        return "\n\n".join(parts) + "\n"
