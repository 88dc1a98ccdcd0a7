"""The worked examples in module docstrings are tests too."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["ledger.money", "ledger.events", "ledger.accounts"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
