"""PDF prints of the documents, next to their HTML, with WeasyPrint.

With ``[documents] pdf = true`` in ``meterbook.toml``, ``post`` (and ``invoice``, ``close``,
which post) writes ``books/documents/INV-2026-000007.pdf`` beside ``INV-2026-000007.html``
for every document, and ``meterbook statement`` a PDF beside the statement's HTML. The PDF
is a print of the HTML, made from its exact bytes: it is rendered again only when the HTML
changes (an open month's document) or the PDF is missing, never for a sealed document whose
HTML is the record. The HTML and the JSON are what the seals hash and ``check`` compares;
the PDF is not a record (fonts differ between machines, so its bytes may too).

WeasyPrint is optional (``pip install 'meterbook[pdf]'``) and needs the system's Pango
(``apt-get install libpango-1.0-0 libpangoft2-1.0-0``); without them a workspace that asks
for PDFs stops when it is opened, as one line saying what to install.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import WorkspaceError

if TYPE_CHECKING:
    from ledger.books import Staging

INSTALL = (
    "pip install 'meterbook[pdf]' (WeasyPrint), and the system's Pango "
    "(apt-get install libpango-1.0-0 libpangoft2-1.0-0)"
)


def _weasyprint() -> Any:
    """The ``weasyprint`` module, or the reason it cannot be used (ImportError, OSError)."""
    import weasyprint  # raises OSError when Pango's libraries cannot be loaded

    return weasyprint


def require_pdf(config: Path) -> None:
    """Refuse (exit 2) a workspace with ``[documents] pdf = true`` that cannot print PDFs."""
    try:
        _weasyprint()
    except (ImportError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise WorkspaceError(
            f"{config}: documents.pdf: PDFs need WeasyPrint: {INSTALL} ({reason})"
        ) from None


def render_pdf(html: str) -> bytes:
    """The PDF of a self-contained HTML document (A4 unless its CSS says otherwise)."""
    weasyprint = _weasyprint()
    quiet = logging.getLogger("weasyprint")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # CSS it does not support is not the reader's business
    try:
        return bytes(weasyprint.HTML(string=html).write_pdf())
    finally:
        quiet.setLevel(level)


def write_pdfs(books_dir: Path, prints: Mapping[str, str], staged: Staging) -> None:
    """Stage the PDF of each HTML document in ``prints`` (path under ``books_dir``: its
    content, or "" when it did not change: then printed from the file only if its PDF is
    missing)."""
    for relative, content in sorted(prints.items()):
        target = books_dir / (relative.removesuffix(".html") + ".pdf")
        if not content:
            source = books_dir / relative
            if target.exists() or not source.exists():
                continue
            content = source.read_text(encoding="utf-8")
        staged.add(target, render_pdf(content))
