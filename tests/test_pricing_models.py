"""The first-party pricing models: worked examples with hand-computed numbers,
every validation message, and properties checked with hypothesis."""

from __future__ import annotations

import doctest
import importlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.money import round_money
from ledger.plugins.flat import FlatPricing
from ledger.plugins.graduated import GraduatedPricing
from ledger.plugins.package import PackagePricing
from ledger.plugins.percentage import PercentagePricing
from ledger.plugins.unit import UnitPricing
from ledger.plugins.volume import VolumePricing
from ledger.pricing import PricingError, PricingModel, Usage
from tests.support.pricing import banded

D = Decimal
HUGE = D(10**15)
PRO_TIERS = [
    {"up_to": 10000, "unit_price": "0"},
    {"up_to": 1000000, "unit_price": "0.0010"},
    {"unit_price": "0.0005"},
]
AI_TIERS = [
    {"up_to": 1000000, "unit_price": "0.000002"},
    {"up_to": 10000000, "unit_price": "0.0000015"},
    {"unit_price": "0.000001"},
]
PAYMENTS = {"rate": "0.029", "fixed_fee": "0.30", "per_event_min": "0.50", "per_event_max": "25.00"}


def amount(
    model: PricingModel, params: dict[str, Any], quantity: Decimal | int, events: int = 0
) -> Decimal:
    return model.price(model.parse(params), Usage(D(quantity), events)).amount


@pytest.mark.parametrize(
    "name",
    [
        "ledger.pricing",
        "ledger.reconcile",
        "ledger.plugins.unit",
        "ledger.plugins.graduated",
        "ledger.plugins.volume",
        "ledger.plugins.package",
        "ledger.plugins.percentage",
        "ledger.plugins.flat",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0


# --- unit ------------------------------------------------------------------------------


def test_unit() -> None:
    m = UnitPricing()
    assert amount(m, {"unit_price": "0.10"}, D("1234.5")) == D("123.45")
    assert amount(m, {"unit_price": "0.10"}, 0) == 0
    assert m.price(m.parse({"unit_price": "0.10"}), Usage(D(0))).lines == ()
    assert amount(m, {"unit_price": "0.000001"}, HUGE) == D(10**9)
    assert m.price_is_final(m.parse({"unit_price": "1"}))
    assert m.bands(m.parse({"unit_price": "1"})) == ()


def test_unit_sub_cent_prices_round_only_on_the_cumulative() -> None:
    m = UnitPricing()
    params = {"unit_price": "0.0004"}
    assert amount(m, params, 12) == D("0.0048")  # unrounded: the model never rounds
    assert round_money(amount(m, params, 12), "USD") == D("0.00")
    assert round_money(amount(m, params, 13), "USD") == D("0.01")
    # 10,000 calls one at a time would round to 0 each time; cumulatively they are 4.00
    assert round_money(amount(m, params, 10000), "USD") == D("4.00")


def test_unit_jpy_half_even() -> None:
    m = UnitPricing()
    assert round_money(amount(m, {"unit_price": "0.5"}, 3), "JPY") == D("2")  # 1.5 → 2
    assert round_money(amount(m, {"unit_price": "0.5"}, 5), "JPY") == D("2")  # 2.5 → 2
    assert round_money(amount(m, {"unit_price": "0.5"}, 7), "JPY") == D("4")  # 3.5 → 4
    assert round_money(amount(m, {"unit_price": "1.2"}, 1000), "JPY") == D("1200")


# --- graduated -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, D(0)),
        (1, D(0)),
        (10000, D(0)),  # exactly at up_to: still the free tier
        (10001, D("0.0010")),  # one unit above
        (25000, D("15.0000")),
        (1000000, D("990.0000")),  # exactly at the second up_to
        (1000001, D("990.0005")),
        (1500000, D("1240.0000")),
        (10**15, D("500000000490")),  # 990 + (10^15 − 10^6) × 0.0005
    ],
)
def test_graduated(quantity: int, expected: Decimal) -> None:
    assert amount(GraduatedPricing(), {"tiers": PRO_TIERS}, quantity) == expected


def test_graduated_breakdown() -> None:
    m = GraduatedPricing()
    price = m.price(m.parse({"tiers": PRO_TIERS}), Usage(D(1500000)))
    assert [
        (line.description, line.quantity, line.unit_price, line.amount) for line in price.lines
    ] == [
        ("0 – 10,000", D(10000), D("0"), D(0)),
        ("10,001 – 1,000,000", D(990000), D("0.0010"), D("990.0000")),
        ("1,000,001 and above", D(500000), D("0.0005"), D("250.0000")),
    ]
    assert sum(line.amount for line in price.lines) == price.amount
    assert m.price(m.parse({"tiers": PRO_TIERS}), Usage(D(0))).lines == ()
    assert m.price_is_final(m.parse({"tiers": PRO_TIERS}))


def test_graduated_flat_price_when_tier_reached() -> None:
    tiers = [
        {"up_to": 100, "unit_price": "0", "flat_price": "10"},
        {"unit_price": "1", "flat_price": "5"},
    ]
    m = GraduatedPricing()
    assert [amount(m, {"tiers": tiers}, q) for q in (0, 1, 100, 101, 102)] == [
        D(0),
        D(10),
        D(10),
        D(16),
        D(17),
    ]


def test_graduated_fractional_quantities() -> None:
    tiers = [{"up_to": "2.5", "unit_price": "1"}, {"unit_price": "2"}]
    m = GraduatedPricing()
    assert amount(m, {"tiers": tiers}, D("2.5")) == D("2.5")
    assert amount(m, {"tiers": tiers}, D("3")) == D("3.5")
    line = m.price(m.parse({"tiers": tiers}), Usage(D(3))).lines[1]
    assert line.description == "over 2.5 and above"


# --- volume ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, D(0)),
        (1, D("0.000002")),
        (1000000, D("2.000000")),  # exactly at up_to: first tier price
        (1000001, D("1.5000015")),  # one above: every unit at the second price
        (10000000, D("15")),
        (10000001, D("10.000001")),
        (10**15, D(10**9)),
    ],
)
def test_volume(quantity: int, expected: Decimal) -> None:
    assert amount(VolumePricing(), {"tiers": AI_TIERS}, quantity) == expected


def test_volume_is_not_final_and_breakdown() -> None:
    m = VolumePricing()
    terms = m.parse(
        {"tiers": [{"up_to": 100, "unit_price": "2", "flat_price": "3"}, {"unit_price": "1"}]}
    )
    assert not m.price_is_final(terms)
    price = m.price(terms, Usage(D(100)))
    assert price.amount == D(203)
    assert [line.description for line in price.lines] == [
        "all units at tier 0 – 100",
        "tier 0 – 100 flat fee",
    ]
    assert m.price(terms, Usage(D(101))).amount == D(101)
    assert m.price(terms, Usage(D(0))).amount == 0


# --- package ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, D(0)),
        (1, D("0.50")),  # a started package is a whole package
        (1000, D("0.50")),  # exactly one package
        (1001, D("1.00")),  # one unit above: two packages
        (D("0.001"), D("0.50")),
        (10**15, D("500000000000")),
        (10**15 + 1, D("500000000000.50")),
    ],
)
def test_package(quantity: int | Decimal, expected: Decimal) -> None:
    assert (
        amount(PackagePricing(), {"package_size": 1000, "package_price": "0.50"}, quantity)
        == expected
    )


def test_package_included_units() -> None:
    params = {"package_size": 1000, "package_price": "0.50", "included": 500}
    m = PackagePricing()
    assert [amount(m, params, q) for q in (0, 500, 501, 1500, 1501)] == [
        D(0),
        D(0),
        D("0.50"),
        D("0.50"),
        D("1.00"),
    ]
    lines = m.price(m.parse(params), Usage(D(1501))).lines
    assert [(line.description, line.quantity, line.amount) for line in lines] == [
        ("first 500 units included", D(500), D(0)),
        ("1,001 units in 2 packages of 1,000", D(2), D("1.00")),
    ]


# --- percentage ------------------------------------------------------------------------


def test_percentage_worked_example() -> None:
    m = PercentagePricing()
    terms = m.parse(PAYMENTS)
    assert m.bands(terms) == (D("6.896551724"), D("851.724137931"))
    values = [D("5.00"), D("100.00"), D("1000.00")]
    price = m.price(terms, banded(m, terms, values))
    assert price.amount == D("0.50") + D("3.20") + D("25.00")
    assert [line.description for line in price.lines] == [
        "1 events at the per-event minimum",
        "2.9 % of 100",
        "fixed fee × 1 events",
        "1 events at the per-event maximum",
    ]
    assert m.price_is_final(terms)


def test_percentage_exactly_at_thresholds() -> None:
    m = PercentagePricing()
    terms = m.parse(
        {"rate": "0.02", "fixed_fee": "0.30", "per_event_min": "0.50", "per_event_max": "2.30"}
    )
    assert m.bands(terms) == (D(10), D(100))
    for values, expected in [
        ([D(10)], D("0.50")),  # 0.02 × 10 + 0.30 = 0.50: the minimum either way
        ([D("10.01")], D("0.5002")),
        ([D(100)], D("2.30")),  # exactly the maximum
        ([D("100.01")], D("2.30")),
        ([D("99.99")], D("2.2998")),
    ]:
        assert m.price(terms, banded(m, terms, values)).amount == expected


def test_percentage_without_min_max_uses_quantity_and_events() -> None:
    m = PercentagePricing()
    terms = m.parse({"rate": "0.029", "fixed_fee": "0.30"})
    assert m.bands(terms) == ()
    assert m.price(terms, Usage(D("105.00"), 2)).amount == D("3.645")
    assert m.price(terms, Usage(D(0), 0)).amount == 0
    assert round_money(m.price(terms, Usage(D("105.00"), 2)).amount, "USD") == D(
        "3.64"
    )  # half-even
    assert amount(m, {"rate": "0.01"}, HUGE, 10**6) == D(10**13)


def test_percentage_only_min_or_only_max() -> None:
    m = PercentagePricing()
    only_min = m.parse({"rate": "0.1", "per_event_min": "1"})
    assert m.bands(only_min) == (D(10),)
    assert m.price(only_min, banded(m, only_min, [D(5), D(20)])).amount == D(3)
    only_max = m.parse({"rate": "0.1", "per_event_max": "1"})
    assert m.bands(only_max) == (D(10),)
    assert m.price(only_max, banded(m, only_max, [D(5), D(20)])).amount == D("1.5")


def test_percentage_constant_per_event() -> None:
    m = PercentagePricing()
    zero_rate = m.parse({"rate": "0", "fixed_fee": "0.30", "per_event_min": "0.50"})
    assert m.bands(zero_rate) == ()
    assert m.price(zero_rate, Usage(D(100), 3)).amount == D("1.50")
    pinned = m.parse({"rate": "0.03", "per_event_min": "1", "per_event_max": "1"})
    assert m.bands(pinned) == ()
    assert m.price(pinned, Usage(D(100), 4)).amount == D(4)


def test_percentage_bands_missing_is_an_engine_error() -> None:
    m = PercentagePricing()
    terms = m.parse(PAYMENTS)
    assert m.price(terms, Usage(D(0), 0)).amount == 0
    with pytest.raises(PricingError, match="must count events by the model's bands"):
        m.price(terms, Usage(D(100), 1))


# --- flat ------------------------------------------------------------------------------


def test_flat_charges_even_at_zero_usage() -> None:
    m = FlatPricing()
    for quantity in (0, 1, HUGE):
        assert amount(m, {"amount": "500.00"}, quantity) == D("500.00")
    assert m.price_is_final(m.parse({"amount": "1"}))
    assert round_money(amount(m, {"amount": "1000.5"}, 0), "JPY") == D(1000)


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        (UnitPricing(), {}, "unit_price: required key is missing"),
        (
            UnitPricing(),
            {"unit_price": "1", "price": "2"},
            "price: unknown key (known: unit_price)",
        ),
        (
            UnitPricing(),
            {"unit_price": 0.1},
            'unit_price: expected a decimal string such as "0.1", got a float',
        ),
        (UnitPricing(), {"unit_price": "-0.1"}, "unit_price: must not be negative, got -0.1"),
        (UnitPricing(), {"unit_price": "NaN"}, "unit_price: 'NaN' is not a finite number"),
        (UnitPricing(), {"unit_price": "ten"}, "unit_price: 'ten' is not a decimal number"),
        (
            UnitPricing(),
            {"unit_price": True},
            "unit_price: expected a decimal string, got a boolean",
        ),
        (GraduatedPricing(), {}, "tiers: required key is missing"),
        (GraduatedPricing(), {"tiers": []}, "tiers: expected a non-empty list of tiers"),
        (GraduatedPricing(), {"tiers": "0.1"}, "tiers: expected a non-empty list of tiers"),
        (
            GraduatedPricing(),
            {"tiers": ["x"]},
            "tiers[0]: expected a mapping with up_to and unit_price",
        ),
        (
            GraduatedPricing(),
            {
                "tiers": [
                    {"up_to": 100, "unit_price": "1"},
                    {"up_to": 50, "unit_price": "1"},
                    {"unit_price": "1"},
                ]
            },
            "tiers[1].up_to: 50 must be greater than the previous tier's up_to 100 (tiers go in "
            "increasing order)",
        ),
        (
            GraduatedPricing(),
            {
                "tiers": [
                    {"up_to": 100, "unit_price": "1"},
                    {"up_to": 100, "unit_price": "1"},
                    {"unit_price": "1"},
                ]
            },
            "tiers[1].up_to: 100 must be greater than the previous tier's up_to 100",
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"up_to": 100, "unit_price": "1"}]},
            "tiers[0]: the last tier must be open-ended (no up_to)",
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"unit_price": "1"}, {"unit_price": "2"}]},
            "tiers[0].up_to: required key is missing (only the last tier is open-ended)",
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"up_to": 0, "unit_price": "1"}, {"unit_price": "2"}]},
            "tiers[0].up_to: must be greater than 0, got 0",
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"up_to": 10, "unit_price": "-1"}, {"unit_price": "2"}]},
            "tiers[0].unit_price: must not be negative, got -1",
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"up_to": 10, "unit_price": "1"}, {"unit_price": "2", "flat_price": "-5"}]},
            "tiers[1].flat_price: must not be negative, got -5",
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"up_to": 10.5, "unit_price": "1"}, {"unit_price": "2"}]},
            'tiers[0].up_to: expected a decimal string such as "10.5", got a float',
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"up_to": 10, "price": "1"}, {"unit_price": "2"}]},
            "tiers[0].price: unknown key (known: up_to, unit_price, flat_price)",
        ),
        (
            GraduatedPricing(),
            {"tiers": [{"up_to": 10}, {"unit_price": "2"}]},
            "tiers[0]: needs unit_price or flat_price",
        ),
        (
            GraduatedPricing(),
            {"tiers": PRO_TIERS, "unit_price": "1"},
            "unit_price: unknown key (known: tiers)",
        ),
        (
            VolumePricing(),
            {"tiers": [{"up_to": 10, "unit_price": "1"}]},
            "tiers[0]: the last tier must be open-ended",
        ),
        (
            VolumePricing(),
            {"tiers": [{"up_to": 10, "unit_price": 0.5}, {"unit_price": "1"}]},
            'tiers[0].unit_price: expected a decimal string such as "0.5", got a float',
        ),
        (PackagePricing(), {"package_size": 1000}, "package_price: required key is missing"),
        (PackagePricing(), {"package_price": "1"}, "package_size: required key is missing"),
        (
            PackagePricing(),
            {"package_size": 0, "package_price": "1"},
            "package_size: must be greater than 0, got 0",
        ),
        (
            PackagePricing(),
            {"package_size": 10, "package_price": "-1"},
            "package_price: must not be negative",
        ),
        (
            PackagePricing(),
            {"package_size": 10, "package_price": "1", "included": "-1"},
            "included: must not be negative",
        ),
        (PercentagePricing(), {}, "rate: required key is missing"),
        (
            PercentagePricing(),
            {"rate": "2.9"},
            'rate: 2.9 is more than 100 %; write the rate as a fraction ("0.029" = 2.9 %)',
        ),
        (
            PercentagePricing(),
            {"rate": 0.029},
            'rate: expected a decimal string such as "0.029", got a float',
        ),
        (
            PercentagePricing(),
            {"rate": "0.029", "fixed_fee": "-0.30"},
            "fixed_fee: must not be negative",
        ),
        (
            PercentagePricing(),
            {"rate": "0.029", "per_event_min": "5", "per_event_max": "1"},
            "per_event_max: 1 is below per_event_min 5",
        ),
        (PercentagePricing(), {"rate": "0.029", "minimum": "1"}, "minimum: unknown key"),
        (FlatPricing(), {}, "amount: required key is missing"),
        (FlatPricing(), {"amount": "-1"}, "amount: must not be negative"),
        (FlatPricing(), {"amount": "Infinity"}, "amount: 'Infinity' is not a finite number"),
    ],
)
def test_validation_messages(model: PricingModel, params: dict[str, Any], message: str) -> None:
    with pytest.raises(PricingError) as info:
        model.parse(params)
    assert str(info.value).startswith(message)


def test_terms_are_immutable() -> None:
    terms = UnitPricing().parse({"unit_price": "1"})
    with pytest.raises(AttributeError):
        terms.unit_price = D(2)  # type: ignore[misc]


# --- properties ------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=10, places=6, allow_nan=False, allow_infinity=False)


@st.composite
def tier_tables(draw: st.DrawFn) -> list[dict[str, Any]]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 10**9), min_size=0, max_size=5))))
    rows: list[dict[str, Any]] = [
        {"up_to": b, "unit_price": str(draw(prices)), "flat_price": str(draw(prices))}
        for b in bounds
    ]
    rows.append({"unit_price": str(draw(prices)), "flat_price": str(draw(prices))})
    return rows


quantities = st.decimals(
    min_value=0, max_value=10**15, places=3, allow_nan=False, allow_infinity=False
)


@settings(max_examples=300)
@given(tier_tables(), quantities, quantities)
def test_graduated_is_monotone(tiers: list[dict[str, Any]], a: Decimal, b: Decimal) -> None:
    m = GraduatedPricing()
    terms = m.parse({"tiers": tiers})
    low, high = sorted((a, b))
    price_low = m.price(terms, Usage(low))
    assert price_low.amount <= m.price(terms, Usage(high)).amount
    assert sum((line.amount for line in price_low.lines), D(0)) == price_low.amount


money = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)
values = st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(
    rate=st.decimals(min_value=0, max_value=1, places=4, allow_nan=False, allow_infinity=False),
    fee=money,
    low=st.none() | money,
    high=st.none() | money,
    events=st.lists(values | money, max_size=30),
)
def test_percentage_banded_equals_per_event(
    rate: Decimal, fee: Decimal, low: Decimal | None, high: Decimal | None, events: list[Decimal]
) -> None:
    if low is not None and high is not None and low > high:
        low, high = high, low
    params: dict[str, Any] = {"rate": str(rate), "fixed_fee": str(fee)}
    if low is not None:
        params["per_event_min"] = str(low)
    if high is not None:
        params["per_event_max"] = str(high)
    m = PercentagePricing()
    terms = m.parse(params)
    price = m.price(terms, banded(m, terms, events))
    assert price.amount == sum((terms.per_event(v) for v in events), D(0))
    assert sum((line.amount for line in price.lines), D(0)) == price.amount
