"""Code blocks of the documentation, for the tests that run them as written: the README's
``python`` blocks (found by an HTML-comment marker) and the examples in ledger/hookspecs.py.
"""

from __future__ import annotations

import inspect
import re
import textwrap

from ledger import hookspecs
from tests.support.workspaces import REPO


def readme_block(marker: str) -> str:
    """The first ``python`` code block after ``marker`` in the manual."""
    text = manual_text()
    after = text[text.index(marker) :]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match, f"no python block after {marker}"
    return match.group(1)


def hookspec_example(hook: str) -> str:
    """The ``Example::`` block of a hook's docstring in ledger/hookspecs.py, dedented."""
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    block = doc.split("Example::", 1)[1].split("\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def manual_text() -> str:
    """The whole manual: README.md and every page of docs/ (the examples live in docs/)."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)
