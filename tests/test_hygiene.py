"""The test suite's own rules, read from its source with ``ast``: no test module imports another
test module (function-level imports included), and shared data comes from ``tests.support``.

Worked example: in a module holding ::

    from tests.support.close import PLANTED      # line 1: shared data, from its home
    from test_close import CUSTOMERS             # line 2: another test module
    import support.workspaces                    # line 3: the support package by another name

    def test_gate():
        from tests.test_close import PLANS       # line 6: inside a function, found too

lines 2 and 6 import test modules and line 3 the support package by another name, so the
checks report ``test_close`` (line 2), ``tests.test_close`` (line 6) and ``support.workspaces``
(line 3); line 1 is the one accepted way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent

EXAMPLE = """\
from tests.support.close import PLANTED
from test_close import CUSTOMERS
import support.workspaces

def test_gate():
    from tests.test_close import PLANS
"""


def imports(source: str) -> Iterator[tuple[int, str, bool]]:
    """Every module an import statement names, anywhere in ``source``: (line, dotted name, whether
    it is a ``from ... import``). ``from tests import test_close`` names ``tests.test_close``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, False
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            yield node.lineno, module, True
            for alias in node.names:
                dot = "." if node.module else ""
                yield node.lineno, f"{module}{dot}{alias.name}", True


def is_test_module(name: str) -> bool:
    """``test_x``, ``tests.test_x`` (and anything inside them), ``conftest``, ``tests.conftest``."""
    parts = name.split(".")
    if parts[0] == "tests":
        parts = parts[1:]
    return bool(parts) and (parts[0].startswith("test_") or parts[0] == "conftest")


def outermost(found: set[tuple[int, str]]) -> list[tuple[int, str]]:
    """One finding per module a line names: ``test_close``, not also ``test_close.PLANS``."""
    return sorted(
        (line, name)
        for line, name in found
        if not any(at == line and name.startswith(f"{other}.") for at, other in found)
    )


def imports_of_test_modules(source: str) -> list[tuple[int, str]]:
    return outermost({(line, name) for line, name, _ in imports(source) if is_test_module(name)})


def support_imports_in_another_style(source: str) -> list[tuple[int, str]]:
    """Imports of the support package other than ``from tests.support.<module> import name``,
    and relative imports (the one way is absolute)."""
    found = set()
    for line, name, from_import in imports(source):
        parts = name.split(".")
        whole_package = parts[:2] == ["tests", "support"] and (not from_import or len(parts) < 3)
        if name.startswith(".") or parts[0] == "support" or whole_package:
            found.add((line, name))
    return outermost(found)


def sources() -> Iterator[tuple[str, str]]:
    for path in sorted(TESTS.rglob("*.py")):
        yield path.relative_to(TESTS).as_posix(), path.read_text(encoding="utf-8")


def test_the_checks_find_the_worked_example() -> None:
    assert imports_of_test_modules(EXAMPLE) == [(2, "test_close"), (6, "tests.test_close")]
    assert support_imports_in_another_style(EXAMPLE) == [(3, "support.workspaces")]


def test_no_test_module_imports_another() -> None:
    found = [
        f"tests/{path}:{line} imports {name}"
        for path, source in sources()
        for line, name in imports_of_test_modules(source)
    ]
    assert found == [], "shared helpers and data belong in tests/support:\n" + "\n".join(found)


def test_support_is_imported_one_way() -> None:
    found = [
        f"tests/{path}:{line} imports {name}"
        for path, source in sources()
        for line, name in support_imports_in_another_style(source)
    ]
    assert found == [], "write `from tests.support.<module> import name`:\n" + "\n".join(found)
