"""A pricing plugin that raises or returns nonsense while rating is named in one line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from tests.support.workspaces import (
    METERS_CALLS,
    calls,
    insert_events,
    open_session,
    write_workspace,
)

BROKEN = """
from dataclasses import dataclass

from ledger.hookspecs import hookimpl
from ledger.pricing import Price, check_keys


@dataclass(frozen=True)
class Terms:
    mode: str


class Broken:
    name = "broken"

    def parse(self, params):
        check_keys(params, required=("mode",))
        return Terms(str(params["mode"]))

    def price_is_final(self, terms):
        return True

    def bands(self, terms):
        return ()

    def price(self, terms, usage):
        if terms.mode == "raise":
            return usage.quantity / 0
        if terms.mode == "none":
            return None
        return Price(float(usage.quantity))  # a float amount: nonsense


@hookimpl
def meterbook_pricing_models():
    return [Broken()]
"""
CUSTOMERS = (
    "customers:\n  c: {currency: USD, billing_anchor: calendar, subscriptions: "
    "[{plan: p, start: 2026-10-01}]}\n"
)


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("raise", "failed in price(): DivisionByZero"),
        ("none", "returned None, not a Price with a finite Decimal amount"),
        ("float", "not a Price with a finite Decimal amount"),
    ],
)
def test_a_failing_pricing_plugin_is_named(tmp_path: Path, mode: str, says: str) -> None:
    plans = (
        "plans:\n  p:\n    currency: USD\n    charges:\n"
        f"      - {{meter: api_calls, model: broken, mode: {mode}}}\n"
    )
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=plans,
        customers=CUSTOMERS,
        plugins={"broken": BROKEN},
    )
    insert_events(open_session(root).engine, calls("c", ["2026-10-05", "2026-10-06"]))
    for command in (("rate", "--through", "2026-10-31"), ("post", "--through", "2026-10-31")):
        result = CliRunner().invoke(cli, ["--workspace", str(root), *command])
        assert result.exit_code == 2, result.output
        [line] = result.output.strip().splitlines()
        assert line.startswith(
            "meterbook: error: pricing model 'broken' on c 2026-10-01/2026-11-01 (api_calls) "
        )
        assert says in line
    assert not (root / "books" / "2026").exists()
