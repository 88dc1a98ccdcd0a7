"""Text made HTML for the meterbook pages: document numbers linked, the close report rendered.

An invoice number on a page links to the invoice itself: :func:`segments` cuts a text around
the words that ``link`` knows (the pages pass the numbers of the documents in the books) and
the templates write each piece escaped, a link where there is one::

    >>> docs = {"INV-2026-000002": "/l/document/?filename=/b/documents/INV-2026-000002.html"}
    >>> segments("base fee (INV-2026-000002).", docs.get)  # doctest: +NORMALIZE_WHITESPACE
    [('base fee (', None),
     ('INV-2026-000002', '/l/document/?filename=/b/documents/INV-2026-000002.html'),
     (').', None)]

:func:`close_report_html` renders ``books/YYYY/YYYY-MM.close.md`` with markdown-it-py, the
Markdown library Fava itself renders its help pages with (CommonMark and GitHub's tables).
Raw HTML in the file is escaped, not passed through, and images are off, so a hand-edited
report can put no markup, script or remote content in the page. On top of plain Markdown, a
table row whose first cell is ``(total)``, and the cells of a column headed ``total``, get the
class ``meterbook-total`` (the pages print them bold), and document numbers are linked::

    >>> print(close_report_html('''# Close 2026-09
    ... | customer | currency | total |
    ... |---|---|---:|
    ... | acme | USD | 110.00 |
    ... | (total) | USD | 110.00 |
    ...
    ... Paid: INV-2026-000002 <script>alert(1)</script>''', docs.get))
    <h1>Close 2026-09</h1>
    <table>
    <thead>
    <tr>
    <th>customer</th>
    <th>currency</th>
    <th style="text-align:right">total</th>
    </tr>
    </thead>
    <tbody>
    <tr>
    <td>acme</td>
    <td>USD</td>
    <td style="text-align:right" class="meterbook-total">110.00</td>
    </tr>
    <tr class="meterbook-total">
    <td>(total)</td>
    <td>USD</td>
    <td style="text-align:right" class="meterbook-total">110.00</td>
    </tr>
    </tbody>
    </table>
    <p>Paid: <a href="/l/document/?filename=/b/documents/INV-2026-000002.html" data-remote="" \
target="_blank" rel="noopener">INV-2026-000002</a> &lt;script&gt;alert(1)&lt;/script&gt;</p>
    <BLANKLINE>
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

#: The class of a total row and of a total column's cells.
TOTAL = "meterbook-total"
#: What a document number can be: an id of letters, digits, ``.``, ``_`` and ``-`` (as in
#: ledger links), not ending in punctuation ("INV-2026-000002." is the number and a full stop).
_WORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")

Link = Callable[[str], "str | None"]


def segments(text: str, link: Link) -> list[tuple[str, str | None]]:
    """``text`` as ``(piece, href or None)`` in order: each word ``link`` gives an address for
    is a piece of its own; the rest is kept whole between them."""
    pieces: list[tuple[str, str | None]] = []
    start = 0
    for match in _WORD.finditer(text):
        href = link(match.group())
        if href is None:
            continue
        if match.start() > start:
            pieces.append((text[start : match.start()], None))
        pieces.append((match.group(), href))
        start = match.end()
    if start < len(text) or not pieces:
        pieces.append((text[start:], None))
    return pieces


def close_report_html(text: str, link: Link) -> str:
    """The close report's Markdown as HTML (escaped, totals marked, documents linked)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")
    tokens = md.parse(text)
    _mark_totals(tokens)
    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _linked(token.children, link)
    return str(md.renderer.render(tokens, md.options, {}))


def _mark_totals(tokens: Sequence[Token]) -> None:
    total_columns: set[int] = set()
    row: Token | None = None
    column = -1
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            total_columns = set()
        elif token.type == "tr_open":
            row, column = token, -1
        elif token.type in ("th_open", "td_open"):
            column += 1
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            content = following.content.strip() if following and following.type == "inline" else ""
            if token.type == "th_open" and content == "total":
                total_columns.add(column)
            elif token.type == "td_open":
                if column == 0 and content == "(total)" and row is not None:
                    row.attrSet("class", TOTAL)
                if column in total_columns:
                    token.attrSet("class", TOTAL)


def _anchor(href: str, inner: list[Token]) -> list[Token]:
    attrs: dict[str, str | int | float] = {
        "href": href,
        "data-remote": "",
        "target": "_blank",
        "rel": "noopener",
    }
    return [Token("link_open", "a", 1, attrs=attrs), *inner, Token("link_close", "a", -1)]


def _linked(children: list[Token], link: Link) -> list[Token]:
    """Inline tokens with each known word of their text (or a whole code span) in a link;
    nothing inside an existing link is touched."""
    out: list[Token] = []
    depth = 0
    for child in children:
        if child.type == "link_open":
            depth += 1
        elif child.type == "link_close":
            depth -= 1
        if depth or child.type not in ("text", "code_inline"):
            out.append(child)
            continue
        if child.type == "code_inline":
            href = link(child.content)
            out.extend(_anchor(href, [child]) if href else [child])
            continue
        for piece, href in segments(child.content, link):
            text = Token("text", "", 0, content=piece)
            out.extend(_anchor(href, [text]) if href else [text])
    return out
