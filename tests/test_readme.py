"""The README's worked examples run as written."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from ledger.cli import cli
from tests.support.readme import hookspec_example, readme_block
from tests.support.workspaces import (
    METERS_CALLS,
    calls,
    insert_events,
    open_session,
    write_workspace,
)

PLANS = """\
plans:
  capped:
    currency: USD
    charges:
      - {meter: api_calls, model: capped_unit, unit_price: "0.01", cap: "25.00"}
"""
CUSTOMERS = """\
customers:
  example:
    {currency: USD, billing_anchor: calendar, subscriptions: [{plan: capped, start: 2026-01-01}]}
  small:
    {currency: USD, billing_anchor: calendar, subscriptions: [{plan: capped, start: 2026-01-01}]}
"""


def test_engineers_tour_pricing_plugin_rates_as_documented(tmp_path: Path) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
        plugins={"capped": readme_block("<!-- plugin-example")},
    )
    session = open_session(root)
    jan = [f"2026-01-{1 + i % 31:02d}" for i in range(3000)]
    insert_events(session.engine, [*calls("example", jan), *calls("small", jan[:700])])
    result = CliRunner().invoke(
        cli, ["--workspace", str(root), "rate", "--through", "2026-01-31", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {row["customer"]: row for row in map(json.loads, result.output.splitlines())}
    # 3,000 calls × 0.01 = 30.00, capped at 25.00; 700 calls × 0.01 = 7.00, under the cap
    assert (rows["example"]["model"], Decimal(rows["example"]["amount"])) == (
        "capped_unit",
        Decimal("25.00"),
    )
    assert [line["description"] for line in rows["example"]["tiers"]] == ["per unit", "cycle cap"]
    assert Decimal(rows["small"]["amount"]) == Decimal("7.00")

    listed = CliRunner().invoke(cli, ["--workspace", str(root), "plugins"])
    assert "pricing models: capped_unit" in listed.output


def test_engineers_tour_plugin_error_names_plan_and_charge(tmp_path: Path) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS.replace('cap: "25.00"', 'cap: "0"'),
        customers=CUSTOMERS,
        plugins={"capped": readme_block("<!-- plugin-example")},
    )
    result = CliRunner().invoke(cli, ["--workspace", str(root), "rate"])
    assert result.exit_code == 2
    assert "plans.yaml" in result.output and "capped" in result.output and "cap" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_hookspec_reconciler_example_runs(tmp_path: Path) -> None:
    plans = PLANS.replace(
        'capped_unit, unit_price: "0.01", cap: "25.00"', 'unit, unit_price: "0.01"'
    )
    source = "from ledger.hookspecs import hookimpl\n" + hookspec_example("meterbook_reconcilers")
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=plans,
        customers=CUSTOMERS,
        plugins={"zero_usage": source},
    )
    session = open_session(root)
    insert_events(session.engine, calls("example", ["2026-01-05"]))
    result = CliRunner().invoke(cli, ["--workspace", str(root), "reconcile", "2026-01", "--json"])
    found = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    zero = [f for f in found if f["check"] == "zero-usage"]
    assert [(f["customer"], f["severity"]) for f in zero] == [("small", "warning")], result.output


def test_hookspec_importer_kind_example_runs(tmp_path: Path) -> None:
    """The ``meterbook_importer_kinds`` example with an importer of its kind: ``meterbook ingest``
    stores a file of 2 refunds through it."""
    importer = (
        "from ledger.importers.payments import PaymentsCsv\n\n"
        "class RefundsCsv(PaymentsCsv):\n"
        "    kind = 'processor_refunds'\n"
        "    importer_name = 'refunds-csv'\n\n"
        "@hookimpl\ndef meterbook_importers():\n    return [RefundsCsv()]\n"
    )
    source = (
        "from ledger.hookspecs import hookimpl\n"
        + hookspec_example("meterbook_importer_kinds")
        + "\n\n"
        + importer
    )
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS.replace('capped_unit, unit_price: "0.01", cap: "25.00"', "unit, unit_price: 1"),
        customers=CUSTOMERS,
        plugins={"refunds": source},
    )
    refunds = tmp_path / "refunds.csv"
    refunds.write_text(
        "date,amount,currency,invoice,reference\n2026-10-02,10.00,USD,,R-1\n"
        "2026-10-03,2.50,USD,,R-2\n"
    )
    result = CliRunner().invoke(
        cli, ["--workspace", str(root), "ingest", "--importer", "refunds-csv", str(refunds)]
    )
    assert result.exit_code == 0, result.output
    assert f"{refunds}: received 2, accepted 2, duplicates 0" in result.output
