"""Text that came from input files, made safe for where it is shown: a terminal, a spreadsheet.

A payment reference, an event id or a property value is whatever the file
said. Printed as it is, ``"BANK-1\\nerror   forged finding"`` forges a line of
``meterbook reconcile`` and an escape sequence repaints the screen; written
into a CSV as it is, ``=HYPERLINK(…)`` runs as a formula in the spreadsheet
that opens it.

**Terminal.** :func:`for_terminal` writes every control character (C0, DEL,
C1), the Unicode line and paragraph separators and the bidirectional
overrides (Trojan Source) as a visible escape, the way Python's ``repr`` does;
everything else, accents and CJK included, is left alone::

    >>> print(for_terminal("BANK-1\\nerror   forged"))
    BANK-1\\nerror   forged
    >>> for_terminal("\\x1b[2Jcafé\\u202e")
    '\\\\x1b[2Jcafé\\\\u202e'

**Spreadsheet** (OWASP, "CSV Injection"). :func:`for_spreadsheet` puts a
single quote before a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return, so no spreadsheet evaluates it, unless the whole cell is
a plain decimal number (``-12.50`` stays a number a spreadsheet and a script can
read). :class:`SpreadsheetCsv` writes rows with it, and quotes a neutralised
cell (double quotes doubled)::

    >>> for_spreadsheet("=HYPERLINK(\\"http://x\\")"), for_spreadsheet("-12.50")
    ('\\'=HYPERLINK("http://x")', '-12.50')
    >>> for_spreadsheet("-1+2")
    "'-1+2"
    >>> import io
    >>> out = io.StringIO()
    >>> SpreadsheetCsv(out).writerow(["e-1", "@SUM(A1:A9)", "-3", "a,b"])
    >>> out.getvalue()
    'e-1,"\\'@SUM(A1:A9)",-3,"a,b"\\n'
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

#: Code points written as escapes on a terminal.
_CONTROL = [
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x200E,
    0x200F,
    0x061C,
]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_TERMINAL = {c: _NAMED.get(c) or (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROL}
#: What a spreadsheet reads as the start of a formula (OWASP).
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def for_terminal(text: str) -> str:
    """``text`` with control characters written as visible escapes (one line stays one line)."""
    return text.translate(_TERMINAL)


def for_spreadsheet(cell: str) -> str:
    """``cell`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    if cell.startswith(_TRIGGERS) and _PLAIN_NUMBER.fullmatch(cell) is None:
        return "'" + cell
    return cell


class SpreadsheetCsv:
    """A :func:`csv.writer` (comma, minimal quoting) whose cells no spreadsheet evaluates:
    each cell goes through :func:`for_spreadsheet`, and a neutralised cell is quoted."""

    def __init__(self, out: TextIO, *, lineterminator: str = "\n"):
        self._out = out
        self._writer = csv.writer(out, lineterminator=lineterminator)
        self._terminator = lineterminator

    def writerow(self, row: Iterable[Any]) -> None:
        cells = ["" if c is None else str(c) for c in row]
        if not any(c.startswith(_TRIGGERS) for c in cells):
            self._writer.writerow(cells)
            return
        parts = []
        for cell in cells:
            safe = for_spreadsheet(cell)
            if safe is not cell or any(ch in cell for ch in ',"\r\n'):
                parts.append('"' + safe.replace('"', '""') + '"')
            else:
                parts.append(cell)
        self._out.write(",".join(parts) + self._terminator)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
