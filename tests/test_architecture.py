"""The engine's rooms and the one direction data flows between them.

Every module of the ``ledger`` package (with the first-party ``ledger.plugins`` and
``ledger.importers``) belongs to one stage of :data:`STAGES`, listed from the bottom
up. A module may import from its own stage and the stages below it, never from a
later one, and no set of modules may import each other in a loop. Imports inside
functions and under ``if TYPE_CHECKING:`` count: a loop hidden in a function is
still a loop a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The stage order, bottom up: each stage's modules (a package name covers its modules).
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "ledger.errors",
            "ledger.money",
            "ledger.period",
            "ledger.accounts",
            "ledger.escaping",
            "ledger.faults",
            "ledger.events",
            "ledger.seal",
            "ledger.books",
        ),
    ),
    (
        "rules",
        (
            "ledger.pricing",
            "ledger.reconcile",
            "ledger.hookspecs",
            "ledger.registry",
            "ledger.rules",
            "ledger.workspace",
            "ledger.cycles",
        ),
    ),
    (
        "store",
        (
            "ledger.store",
            "ledger.lock",
            "ledger.importers",
            "ledger.ingest",
            "ledger.rejects",
            "ledger.live_totals",
        ),
    ),
    ("metering", ("ledger.metering",)),
    ("facts", ("ledger.facts", "ledger.topups")),
    ("rating", ("ledger.rating", "ledger.discounts", "ledger.accruals")),
    ("tax", ("ledger.tax",)),
    (
        "drafting",
        (
            "ledger.opened",
            "ledger.invoicing",
            "ledger.payments",
            "ledger.pins",
            "ledger.credit_notes",
            "ledger.subscriptions",
        ),
    ),
    ("journal", ("ledger.journal",)),
    ("documents", ("ledger.documents",)),
    ("session", ("ledger.session",)),
    ("corrections", ("ledger.rerate",)),
    (
        "reports",
        (
            "ledger.reports",
            "ledger.statements",
            "ledger.alerts",
            "ledger.summary_trace",
            "ledger.trace",
            "ledger.export",
        ),
    ),
    ("close", ("ledger.closing", "ledger.audit")),
    ("views", ("ledger.fava_ext", "ledger.serve", "ledger.api", "ledger.plugins")),
    ("commands", ("ledger.cli", "ledger.demo", "ledger.bench", "ledger")),
)


def _modules() -> dict[str, Path]:
    """Every module of the installed ``ledger`` package, by dotted name."""
    found: dict[str, Path] = {}
    for folder, package in (
        ("ledger", "ledger"),
        ("plugins", "ledger.plugins"),
        ("importers", "ledger.importers"),
    ):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _stage_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the entry, stage index)
    for index, (_name, entries) in enumerate(STAGES):
        for entry in entries:
            inside = module.startswith(entry + ".") and entry != "ledger"
            if (module == entry or inside) and (best is None or len(entry) > best[0]):
                best = (len(entry), index)
    return None if best is None else best[1]


def _resolve(name: str) -> str | None:
    """The module an import names: itself, or its longest known parent package."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """The ``ledger`` modules ``module`` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # ``from ledger.x import y``: the module ledger.x.y when there is one, else ledger.x
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("ledger") else None
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_stage() -> None:
    assert [m for m in sorted(MODULES) if _stage_of(m) is None] == []


def test_no_import_goes_against_the_stage_order() -> None:
    against = [
        f"{module} ({STAGES[_stage_of(module) or 0][0]}) imports {target} "
        f"({STAGES[_stage_of(target) or 0][0]})"
        for module, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if (_stage_of(target) or 0) > (_stage_of(module) or 0)
    ]
    assert against == []


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_the_checks_can_fail() -> None:
    """A planted loop and a planted upward import are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _stage_of("ledger.cli") > _stage_of("ledger.rating")  # type: ignore[operator]
    assert _stage_of("ledger.journal.accruals") == _stage_of("ledger.journal")
    assert _stage_of("ledger.nowhere") is None
