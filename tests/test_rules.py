"""Rules load into typed records; every error names file, key and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.errors import RulesError
from ledger.rules import load_rules

REPO = Path(__file__).resolve().parent.parent


def test_demo_rules_load_with_derived_accounts() -> None:
    rules = load_rules(REPO / "rules")
    assert rules.account("unbilled", customer="acme") == "Assets:Receivables:Unbilled:Acme"
    assert rules.account("usage_revenue", meter="api_calls") == "Income:Usage:Api-Calls"
    assert (
        rules.account("subscription_revenue", plan="hybrid_eu") == "Income:Subscriptions:Hybrid-Eu"
    )
    assert rules.plans["pro"].base_fee is not None
    assert rules.plans["pro"].base_fee.amount == Decimal("49.00")
    assert rules.plans["pro"].minimum_commitment == Decimal("100.00")
    assert len(rules.hash) == 16


def _write(tmp_path: Path, **files: str) -> Path:
    base = {
        "meters.yaml": "meters:\n  api_calls:\n    event_type: api.request\n"
        "    aggregation: count\n",
        "plans.yaml": "plans:\n  p:\n    currency: USD\n    charges:\n      - meter: api_calls\n"
        '        model: unit\n        unit_price: "0.1"\n',
        "customers.yaml": "customers:\n  c1:\n    currency: USD\n    subscriptions:\n"
        "      - {plan: p, start: 2026-01-01}\n",
    }
    base.update({k.replace("_yaml", ".yaml"): v for k, v in files.items()})
    for name, text in base.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_float_money_is_an_error_naming_file_key_and_line(tmp_path: Path) -> None:
    rules_dir = _write(
        tmp_path, plans_yaml="plans:\n  p:\n    currency: USD\n    base_fee: {amount: 49.5}\n"
    )
    with pytest.raises(RulesError) as err:
        load_rules(rules_dir)
    assert str(err.value) == (
        f"{tmp_path.name}/plans.yaml:4: plans.p.base_fee.amount: "
        'expected a decimal string such as "49.5", got a float'
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(
            {
                "customers_yaml": "customers:\n  c1:\n    currency: USD\n    subscriptions:\n"
                "      - {plan: nope, start: 2026-01-01}\n"
            },
            r"customers.yaml:5: customers.c1.subscriptions\[0\].plan: unknown plan 'nope'",
            id="unknown-plan",
        ),
        pytest.param(
            {
                "customers_yaml": "customers:\n  cus_1:\n    currency: USD\n  cus-1:\n"
                "    currency: USD\n"
            },
            r"customers.yaml:4: customers.cus-1: account component 'Cus-1' is also used by "
            r"customer 'cus_1'",
            id="account-component-collision",
        ),
        pytest.param(
            {"meters_yaml": "meters:\n  api_calls:\n    event_type: x\n    aggregation: sum\n"},
            r"meters.yaml:2: meters.api_calls: aggregation 'sum' needs 'value'",
            id="sum-meter-needs-value",
        ),
        pytest.param(
            {"meters_yaml": "meters:\n  a: [unclosed\n"},
            r"meters.yaml:\d+: invalid YAML",
            id="invalid-yaml",
        ),
        pytest.param(
            {"accounts_yaml": "accounts:\n  cash: Bank:Operating\n"},
            r"accounts.yaml:2: accounts.cash: 'Bank:Operating' must start with",
            id="bad-account-template",
        ),
    ],
)
def test_an_error_names_file_line_and_key(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(RulesError, match=message):
        load_rules(_write(tmp_path, **files))


def test_missing_accounts_file_means_defaults(tmp_path: Path) -> None:
    rules = load_rules(_write(tmp_path))
    assert rules.account("receivable", customer="c1") == "Assets:Receivables:Invoiced:C1"
    # money received but not applied is owed to the payer: a liability (README: unapplied cash)
    assert rules.account("unapplied_cash") == "Liabilities:Unapplied-Cash"
    assert rules.account("cash") == "Assets:Bank:Operating"


def test_unapplied_cash_account_can_be_overridden(tmp_path: Path) -> None:
    rules_dir = _write(
        tmp_path, accounts_yaml="accounts:\n  unapplied_cash: Liabilities:Customer-Deposits\n"
    )
    assert load_rules(rules_dir).account("unapplied_cash") == "Liabilities:Customer-Deposits"
    bad = _write(tmp_path, accounts_yaml="accounts:\n  unapplied_cash: Customer-Deposits\n")
    with pytest.raises(
        RulesError,
        match=r"accounts.yaml:2: accounts.unapplied_cash: 'Customer-Deposits' must start",
    ):
        load_rules(bad)


def test_alert_thresholds_are_fractions_and_may_be_written_as_in_design(tmp_path: Path) -> None:
    """DESIGN writes ``alert_thresholds: [0.8, 1.0]``: fractions, not money, so YAML floats read as
    written."""
    rules_dir = _write(
        tmp_path,
        customers_yaml=(
            'customers:\n  c1:\n    currency: USD\n    alert_thresholds: [0.8, 1.0, "0.95"]\n'
            "    subscriptions:\n      - {plan: p, start: 2026-01-01}\n"
        ),
    )
    assert load_rules(rules_dir).customers["c1"].alert_thresholds == (
        Decimal("0.8"),
        Decimal("1.0"),
        Decimal("0.95"),
    )
    spend = _write(
        tmp_path, customers_yaml="customers:\n  c1:\n    currency: USD\n    spend_cap: 100.5\n"
    )
    with pytest.raises(RulesError, match="spend_cap: expected a decimal string"):
        load_rules(spend)


# --- money amounts finer than the currency's minor unit (issue 14) -------------------------------

_FLAT_PLAN = (
    "plans:\n  p:\n    currency: USD\n    charges:\n      - meter: api_calls\n"
    "        model: {model}\n        {key}\n"
)


_PLAN = "plans:\n  p:\n    currency: {currency}\n    {key}\n"
_FINER = "has more decimal places than"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(
            {"plans_yaml": _PLAN.format(currency="USD", key='base_fee: {amount: "49.005"}')},
            f"plans.yaml:4: plans.p.base_fee.amount: 49.005 {_FINER} USD (2)",
            id="base-fee",
        ),
        pytest.param(
            {"plans_yaml": _PLAN.format(currency="USD", key='minimum_commitment: "100.001"')},
            f"plans.yaml:4: plans.p.minimum_commitment: 100.001 {_FINER} USD (2)",
            id="minimum-commitment",
        ),
        pytest.param(
            {
                "plans_yaml": _PLAN.format(currency="JPY", key='base_fee: {amount: "4900.5"}'),
                "customers_yaml": "customers:\n  c1:\n    currency: JPY\n",
            },
            f"plans.yaml:4: plans.p.base_fee.amount: 4900.5 {_FINER} JPY (0)",
            id="jpy-has-no-minor-unit",
        ),
        pytest.param(
            {
                "plans_yaml": 'plans:\n  p:\n    currency: USD\n    base_fee: {amount: "49.00"}\n'
                "    versions:\n      - effective: 2026-10-01\n"
                '        base_fee: {amount: "59.999"}\n'
            },
            f"plans.yaml:7: plans.p.versions[0].base_fee.amount: 59.999 {_FINER}",
            id="version-base-fee",
        ),
        pytest.param(
            {"plans_yaml": _FLAT_PLAN.format(model="flat", key='amount: "500.005"')},
            f"plans.yaml:7: plans.p.charges[0].amount: 500.005 {_FINER} USD",
            id="flat-fee",
        ),
        pytest.param(
            {
                "plans_yaml": _FLAT_PLAN.format(
                    model="graduated",
                    key='tiers: [{up_to: 10, unit_price: "0", flat_price: "9.999"}, '
                    '{unit_price: "0.1"}]',
                )
            },
            f"plans.yaml:7: plans.p.charges[0].tiers[0].flat_price: 9.999 {_FINER}",
            id="tier-flat-fee",
        ),
        pytest.param(
            {
                "customers_yaml": "customers:\n  c1:\n    currency: USD\n    credits:\n"
                '      - {amount: "10.005", granted: 2026-01-01}\n'
            },
            "customers.yaml:5: customers.c1.credits[0].amount: 10.005 has more decimal places",
            id="credit-grant",
        ),
    ],
)
def test_money_amount_finer_than_the_minor_unit_is_an_error(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    """``"49.005"`` USD would be billed as 49.00 (half-even): refused, naming file, line and key."""
    with pytest.raises(RulesError) as err:
        load_rules(_write(tmp_path, **files))
    assert message in str(err.value)


def test_unit_prices_and_trailing_zeros_may_be_finer_than_the_minor_unit(tmp_path: Path) -> None:
    """A unit price of 0.0001 USD is a price, not an amount (1,000 calls = 0.10 USD); "49.000" is
    49 USD exactly; "4900" JPY is whole yen."""
    rules = load_rules(
        _write(
            tmp_path,
            plans_yaml='plans:\n  p:\n    currency: USD\n    base_fee: {amount: "49.000"}\n'
            '    minimum_commitment: "100"\n    charges:\n      - meter: api_calls\n'
            '        model: unit\n        unit_price: "0.0001"\n',
        )
    )
    assert rules.plans["p"].base_fee is not None
    assert rules.plans["p"].base_fee.amount == Decimal("49")
    assert rules.plans["p"].minimum_commitment == Decimal("100")


def test_a_sub_cent_base_fee_is_refused_by_the_cli_with_exit_2(tmp_path: Path) -> None:
    """Through ``meterbook check``-style loading: one error line, exit 2, no traceback."""
    from tests.support.workspaces import run_cli, write_workspace

    root = write_workspace(
        tmp_path / "ws",
        meters="meters:\n  api_calls: {event_type: api.request, aggregation: count}\n",
        plans='plans:\n  p:\n    currency: USD\n    base_fee: {amount: "49.005"}\n',
        customers="customers:\n  c1:\n    currency: USD\n",
    )
    result = run_cli(root, "ingest", str(tmp_path / "none.csv"))
    assert result.exit_code == 2, result.output
    assert (
        "plans.yaml:4: plans.p.base_fee.amount: 49.005 has more decimal places than USD (2)"
        in result.output
    )
    assert "Traceback" not in result.output
