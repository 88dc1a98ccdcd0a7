"""The worked examples in docstrings are tests too: every module of the engine,
the first-party plugins and importers that has one is run here."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest


def modules_with_examples() -> list[str]:
    found = set()
    # plugins/ and importers/ are mapped into ledger by package-dir: walk each package's own path
    for package in ("ledger", "ledger.plugins", "ledger.importers"):
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, f"{package}."):
            spec = importlib.util.find_spec(info.name)
            origin = spec.origin if spec else None
            if (
                origin
                and origin.endswith(".py")
                and ">>> " in Path(origin).read_text(encoding="utf-8")
            ):
                found.add(info.name)
    return sorted(found)


MODULES = modules_with_examples()


def test_the_examples_are_found() -> None:
    assert {
        "ledger.money",
        "ledger.cycles",
        "ledger.plugins.graduated",
        "ledger.importers.payments",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
