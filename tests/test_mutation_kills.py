"""Worked examples that kill the mutants mutmut found surviving (README "Mutation testing").

Each test states, by hand, the figure the engine must produce and, in its docstring, the
mutant it catches (``python3 tasks.py mutation MODULE`` names them). Grouped by module.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from beancount.core import data

from ledger.cycles import Cycle, _cycle_months, cycles_for
from ledger.errors import BadInput
from ledger.facts.pins import TermsPin
from ledger.journal.meta import entry_quantities
from ledger.money import (
    MAX_MAGNITUDE,
    DecimalError,
    from_units_nanos,
    parse_decimal,
    round_money,
    to_units_nanos,
    within_magnitude,
)
from ledger.period import (
    Month,
    first_of_month,
    is_month,
    last_of_month,
    month_end,
    month_of,
    month_start,
    months_between,
    next_month,
    previous_month,
)
from ledger.plugins.graduated import GraduatedPricing
from ledger.plugins.package import PackagePricing
from ledger.plugins.percentage import PercentagePricing
from ledger.plugins.unit import UnitPricing
from ledger.plugins.volume import VolumePricing
from ledger.pricing import (
    Price,
    PriceLine,
    PricingError,
    Tier,
    Usage,
    check_keys,
    decimal_param,
    format_quantity,
    parse_tiers,
)
from ledger.rating import (
    BaseFeeRating,
    ChargeRating,
    CreditMovement,
    CycleRating,
    Rating,
    credit_at_start,
    cycle_plan,
    grant_key,
    rate,
    rated_lines,
    undrawn_credit,
)
from ledger.registry import load_registry
from ledger.rules import (
    BaseFee,
    ChangePolicy,
    CreditGrant,
    Customer,
    Plan,
    PlanVersion,
    Subscription,
    load_rules,
)
from ledger.store import open_store
from tests.support.pricing import banded
from tests.support.rating import rating_event, rating_rules
from tests.support.workspaces import insert_events

UTC = ZoneInfo("UTC")

# --- ledger/money.py ---------------------------------------------------------------------------


def test_round_money_is_half_even_whatever_the_ambient_context() -> None:
    """2.675 → 2.68 and 0.125 → 0.12 (half to even) even where a caller (a plugin) made the
    thread's decimal context round half-up, which would give 0.13 (kills ``rounding=None`` and
    the dropped ``rounding`` argument)."""
    with localcontext() as context:
        context.rounding = ROUND_HALF_UP
        assert round_money(Decimal("0.125"), "USD") == Decimal("0.12")
        assert round_money(Decimal("0.135"), "USD") == Decimal("0.14")
        assert round_money(Decimal("2.5"), "JPY") == Decimal("2")


def test_units_nanos_split_floors_and_joins_back() -> None:
    """12.7 = 12 units + 700,000,000 nanos (the floor, not the nearest 13 − 0.3); −0.5 = −1 +
    500,000,000; joining sums back: NULL sums (no rows) are 0, whole numbers carry no nano, and
    0 units + 0.5 is 0.5 (kills ``rounding=None`` in the split and ``or 1`` in the join)."""
    assert to_units_nanos(Decimal("12.7")) == (12, 700_000_000)
    assert to_units_nanos(Decimal("-0.5")) == (-1, 500_000_000)
    assert from_units_nanos(None, None) == 0
    assert from_units_nanos(5, 0) == 5
    assert from_units_nanos(0, 500_000_000) == Decimal("0.5")
    assert str(from_units_nanos(7, None)) == "7"


def test_too_many_places_names_the_value() -> None:
    with pytest.raises(DecimalError, match=r"^1\.0000000001 has more than 9 decimal places$"):
        to_units_nanos(Decimal("1.0000000001"))


def test_magnitude_limit_is_inclusive() -> None:
    """10**15 itself is allowed, 10**15 + 1 is not (kills ``>=`` on the exponent and ``<``)."""
    assert within_magnitude(MAX_MAGNITUDE) and within_magnitude(-MAX_MAGNITUDE)
    assert not within_magnitude(MAX_MAGNITUDE + 1)
    assert parse_decimal("1000000000000000") == MAX_MAGNITUDE


def test_parse_decimal_accepts_decimals_and_names_what_it_refuses() -> None:
    """A Decimal passes through unchanged; the default ``where`` is "value"; a list is named by
    its type (kills ``result = None``, the altered default and the message replaced by None)."""
    assert parse_decimal(Decimal("0.10")) == Decimal("0.10")
    assert str(parse_decimal(Decimal("0.10"))) == "0.10"
    with pytest.raises(DecimalError, match=r"^value: expected a decimal string, got list$"):
        parse_decimal([1])
    with pytest.raises(
        DecimalError, match=r'^value: expected a decimal string such as "1\.5", got a float$'
    ):
        parse_decimal(1.5)


# --- ledger/pricing.py and the pricing plugins -------------------------------------------------
# The breakdown lines are what invoices and statements print: quantity and unit price included.

D = Decimal


def test_unit_breakdown_line() -> None:
    """1,234.5 GB × 0.10 = 123.450, one line carrying the unit price (kills a None unit price
    and a Price built without its lines)."""
    model = UnitPricing()
    assert model.price(model.parse({"unit_price": "0.10"}), Usage(D("1234.5"))) == Price(
        D("123.450"), (PriceLine("1,234.5 units", D("1234.5"), D("0.10"), D("123.450")),)
    )


def test_graduated_lines_with_flat_prices() -> None:
    """12 units, tiers (0, 10] at 0.50 + flat 2.00 and above at 0.10 + flat 1.00:
    10 × 0.50 = 5.00, flat 2.00, 2 × 0.10 = 0.20, flat 1.00; total 8.20. Zero units: a Decimal 0
    (the engine refuses an int amount), no line."""
    model = GraduatedPricing()
    terms = model.parse(
        {
            "tiers": [
                {"up_to": 10, "unit_price": "0.50", "flat_price": "2.00"},
                {"unit_price": "0.10", "flat_price": "1.00"},
            ]
        }
    )
    assert model.price(terms, Usage(D(12))) == Price(
        D("8.20"),
        (
            PriceLine("0 – 10", D(10), D("0.50"), D("5.00")),
            PriceLine("0 – 10 flat fee", D(1), D("2.00"), D("2.00")),
            PriceLine("11 and above", D(2), D("0.10"), D("0.20")),
            PriceLine("11 and above flat fee", D(1), D("1.00"), D("1.00")),
        ),
    )
    zero = model.price(terms, Usage(D(0)))
    assert isinstance(zero.amount, Decimal) and zero == Price(D(0), ())


def test_volume_lines_with_flat_price() -> None:
    """150 units fall in the open tier: all 150 × 0.01 = 1.50, plus its flat 0.50: 2.00."""
    model = VolumePricing()
    terms = model.parse(
        {
            "tiers": [
                {"up_to": 100, "unit_price": "0.02", "flat_price": "1.00"},
                {"unit_price": "0.01", "flat_price": "0.50"},
            ]
        }
    )
    assert model.price(terms, Usage(D(150))) == Price(
        D("2.00"),
        (
            PriceLine("all units at tier 101 and above", D(150), D("0.01"), D("1.50")),
            PriceLine("tier 101 and above flat fee", D(1), D("0.50"), D("0.50")),
        ),
    )


def test_package_lines_included_and_packages() -> None:
    """500 included, packages of 1,000 at 0.50: 2,700 units → 500 free + 2,200 billable =
    3 packages (the last one partly used) = 1.50; 300 units are all included: one line, 0;
    a net-negative quantity costs nothing and prints nothing. The price is final."""
    model = PackagePricing()
    terms = model.parse({"package_size": 1000, "package_price": "0.50", "included": 500})
    assert model.price(terms, Usage(D(2700))) == Price(
        D("1.50"),
        (
            PriceLine("first 500 units included", D(500), D(0), D(0)),
            PriceLine("2,200 units in 3 packages of 1,000", D(3), D("0.50"), D("1.50")),
        ),
    )
    assert model.price(terms, Usage(D(300))) == Price(
        D(0), (PriceLine("first 500 units included", D(300), D(0), D(0)),)
    )
    plain = model.parse({"package_size": 1000, "package_price": "0.50"})
    assert model.price(plain, Usage(D(-5))) == Price(D(0), ())
    assert model.price_is_final(terms) is True


PAYMENTS = {"rate": "0.029", "fixed_fee": "0.30", "per_event_min": "0.50", "per_event_max": "25.00"}


def test_percentage_lines_minimum_linear_maximum() -> None:
    """2.9 % + 0.30 per payment, clamped to [0.50, 25.00]: 5.00 → 0.445 → the minimum 0.50;
    100.00 → 2.90 + 0.30 = 3.20; 1,000.00 → 29.30 → the maximum 25.00. Total 28.70.
    Two payments of 5.00 and 3.00 are both at the minimum: one line, 1.00, and no empty
    linear or maximum line."""
    model = PercentagePricing()
    terms = model.parse(PAYMENTS)
    assert model.price(
        terms, banded(model, terms, [D("5.00"), D("100.00"), D("1000.00")])
    ) == Price(
        D("28.70000"),
        (
            PriceLine("1 events at the per-event minimum", D(1), D("0.50"), D("0.50")),
            PriceLine("2.9 % of 100", D("100.00"), D("0.029"), D("2.90000")),
            PriceLine("fixed fee × 1 events", D(1), D("0.30"), D("0.30")),
            PriceLine("1 events at the per-event maximum", D(1), D("25.00"), D("25.00")),
        ),
    )
    assert model.price(terms, banded(model, terms, [D("5.00"), D("3.00")])) == Price(
        D("1.00"), (PriceLine("2 events at the per-event minimum", D(2), D("0.50"), D("1.00")),)
    )


def test_percentage_fixed_fee_on_zero_value_events() -> None:
    """Payments of 0.00 still pay the fixed fee: 2 events → 0 + 2 × 0.30 = 0.60; 1 event → 0.30
    (kills ``or`` and ``!= 0``/``== 1`` in the no-usage test)."""
    model = PercentagePricing()
    terms = model.parse({"rate": "0.029", "fixed_fee": "0.30"})
    assert model.price(terms, Usage(D(0), events=2)) == Price(
        D("0.60"),
        (
            PriceLine("2.9 % of 0", D(0), D("0.029"), D("0.000")),
            PriceLine("fixed fee × 2 events", D(2), D("0.30"), D("0.60")),
        ),
    )
    assert model.price(terms, Usage(D(0), events=1)).amount == D("0.30")


def test_percentage_constant_per_event() -> None:
    """Rate 0 and a fixed fee 0.25: each event costs 0.25 whatever its value: 3 events → 0.75,
    one line; no events → nothing, no line."""
    model = PercentagePricing()
    terms = model.parse({"rate": "0", "fixed_fee": "0.25"})
    assert model.price(terms, Usage(D("40.00"), events=3)) == Price(
        D("0.75"), (PriceLine("3 events at 0.25 each", D(3), D("0.25"), D("0.75")),)
    )
    assert model.price(terms, Usage(D(0), events=0)) == Price(D(0), ())


def test_percentage_bands_floor_to_nine_places() -> None:
    """Minimum 0.50 at 3 % + 0.30: the threshold value is 0.20 / 0.03 = 6.666…, floored to
    6.666666666 (half-even would give …667 and put an event of 6.666666667 in the wrong band)."""
    model = PercentagePricing()
    terms = model.parse({"rate": "0.03", "fixed_fee": "0.30", "per_event_min": "0.50"})
    assert model.bands(terms) == (D("6.666666666"),)


def test_percentage_rate_above_one_is_refused() -> None:
    with pytest.raises(PricingError, match=r"^rate: 1\.5 is more than 100 %"):
        PercentagePricing().parse({"rate": "1.5"})


def test_percentage_rate_of_exactly_one_is_a_pass_through() -> None:
    """A rate of 1 is 100 %, not more: accepted, and 105.00 of value over 2 events is priced
    105.00 (a charge passed through at cost; kills ``rate >= 1`` refusing it)."""
    model = PercentagePricing()
    terms = model.parse({"rate": "1"})
    assert model.price(terms, Usage(D("105.00"), events=2)).amount == D("105.00")


def test_format_quantity_negative_and_trailing_zeros() -> None:
    """−1,234,567.50 → "-1,234,567.5" (a correction's negative quantity keeps one sign);
    10.0 → "10"."""
    assert format_quantity(D("-1234567.50")) == "-1,234,567.5"
    assert format_quantity(D("-7")) == "-7"
    assert format_quantity(D("10.0")) == "10"


def test_tier_with_only_a_flat_price() -> None:
    """A tier may have a flat price and no unit price: unit price 0."""
    assert parse_tiers({"tiers": [{"flat_price": "5"}]}) == (
        Tier(up_to=None, unit_price=D(0), flat_price=D(5)),
    )


def test_pricing_parameter_messages() -> None:
    with pytest.raises(PricingError, match=r"^parameters: expected a mapping, got list$"):
        check_keys([1])  # type: ignore[arg-type]
    with pytest.raises(PricingError, match=r"^unit_price: required key is missing$"):
        decimal_param({}, "unit_price")
    with pytest.raises(PricingError, match=r"^tiers: required key is missing$"):
        parse_tiers({})


# --- ledger/rating.py ---------------------------------------------------------------------------

JPY_RULES = {
    "meters.yaml": "meters:\n  api_calls: {event_type: api.request, aggregation: count}\n",
    "plans.yaml": """\
plans:
  y:
    currency: JPY
    base_fee: {amount: "1000", timing: advance}
    charges:
      - {meter: api_calls, model: flat, amount: "1000"}
""",
    "customers.yaml": """\
customers:
  jp: {currency: JPY, billing_anchor: calendar, subscriptions: [{plan: y, start: 2026-09-11}]}
""",
}


def test_short_cycle_in_yen_prorates_and_recognizes_to_whole_yen(tmp_path: Path) -> None:
    """Plan y (JPY, no minor unit): base fee 1000 in advance and a flat 1000 per month; the first
    cycle [Sep 11, Oct 1) is 20 of 30 days: billed 1000 × 20/30 = 666.67 → 667 yen (not 666.67).
    Through Sep 20, 10 of its 20 days: 667 × 10/20 = 333.5 → 334 (half-even). The flat fee's
    line says both, and on the last day carries the prorated unit price 667 (kills the currency
    dropped from prorate/recognize, and the ratable line's description and unit price mutants)."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in JPY_RULES.items():
        (rules_dir / name).write_text(text)
    models = dict(load_registry(None).pricing_models)
    rules = load_rules(rules_dir, models)
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    mid = rate(engine, rules, models, UTC, through=date(2026, 9, 20)).latest()[0]
    assert mid.base_fee == BaseFeeRating(timing="advance", billed=D(667), recognized=D(334))
    assert mid.charges[0].amount == D(334)
    assert mid.charges[0].lines == (
        PriceLine("flat fee per cycle, 20/30 days, 10 of 20 days to date", D(1), None, D(334)),
    )
    end = rate(engine, rules, models, UTC, through=date(2026, 9, 30)).latest()[0]
    assert end.base_fee == BaseFeeRating(timing="advance", billed=D(667), recognized=D(667))
    assert end.charges[0].lines == (
        PriceLine("flat fee per cycle, 20/30 days", D(1), D(667), D(667)),
    )


def test_cycle_plan_versions_and_pins() -> None:
    """Plan p: base fee 10.00, minimum 50; a version effective Oct 1 makes them 12.00 and 60.
    The cycle starting Oct 1 is rated with 12.00/60; pinned to the original terms (date.min)
    with 10.00/50; its usage terms unpinned but its advance fee pinned to the original: 60 with
    a 10.00 fee. A plan without versions is rated as it is."""
    plan = Plan(
        id="p",
        currency="USD",
        base_fee=BaseFee(amount=D("10.00")),
        minimum_commitment=D(50),
        versions=(
            PlanVersion(
                effective=date(2026, 10, 1),
                base_fee=BaseFee(amount=D("12.00")),
                minimum_commitment=D(60),
            ),
        ),
    )
    october = Cycle(
        "c",
        "p",
        date(2026, 10, 1),
        date(2026, 11, 1),
        date(2026, 10, 1),
        date(2026, 11, 1),
        0,
        False,
        False,
    )

    def terms(pin: TermsPin | None) -> tuple[Decimal | None, Decimal | None]:
        rated = cycle_plan(plan, october, pin)
        return (rated.base_fee.amount if rated.base_fee else None), rated.minimum_commitment

    assert terms(None) == (D("12.00"), D(60))
    assert terms(TermsPin()) == (D("12.00"), D(60))
    assert terms(TermsPin(usage=date.min)) == (D("10.00"), D(50))
    assert terms(TermsPin(fee=date.min)) == (D("10.00"), D(60))
    plain = Plan(id="q", currency="USD", minimum_commitment=D(5))
    assert cycle_plan(plain, october, TermsPin(usage=date(2026, 10, 1))) is plain


def test_grant_key_counts_only_earlier_grants_of_the_day() -> None:
    """Two grants dated Sep 1: the first is "#1", the second "#2" (the count stops at the grant)."""
    grants = [
        CreditGrant(amount=D(5), granted=date(2026, 9, 1)),
        CreditGrant(amount=D(9), granted=date(2026, 9, 1)),
    ]
    assert [grant_key(grants, i) for i in range(2)] == ["2026-09-01#1", "2026-09-01#2"]


def test_undrawn_credit_counts_returns_and_the_grant_day(tmp_path: Path) -> None:
    """t's 100.00 grant (granted Sep 1): Sep 30 draws 2.00 of tokens, Oct 14 gives 0.50 back
    (the volume price fell to 1.50): 100.00 − 2.00 + 0.50 = 98.50 left. On its grant day, before
    any draw, all 100.00 is there."""
    rules, models = rating_rules(tmp_path)
    rows = [
        rating_event(1, "t", "llm.completion", "2026-09-20T00:00:00Z", tokens="100"),
        rating_event(2, "t", "llm.completion", "2026-10-05T10:00:00Z", tokens="50"),
    ]
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    insert_events(engine, rows)
    rating = rate(engine, rules, models, UTC, through=date(2026, 10, 14), customers={"t"})
    grants = rules.customers["t"].credits
    assert undrawn_credit(rating, grants, "t", date(2026, 10, 14)) == {"2026-09-01#1": D("98.50")}
    assert undrawn_credit(rating, grants, "t", date(2026, 9, 1)) == {"2026-09-01#1": D("100.00")}
    assert undrawn_credit(rating, grants, "t", date(2026, 8, 31)) == {}


def test_credit_at_start_of_an_invoice_day() -> None:
    """acme's grants: 5.00 and 9.00 granted Sep 1, 20.00 granted Sep 15, 100.00 granted Oct 1.
    What is left at the start of Sep 15 (an invoice date):

    - the first 5.00: 1.45 drawn Sep 10, 0.45 given back Sep 12, 0.30 expired (breakage) on
      Sep 15 itself: 5.00 − 1.45 + 0.45 − 0.30 = 3.70 (the 2.00 drawn on Sep 15 is that day's
      usage, not yet drawn at its start; globex's 4.00 draw is another customer's);
    - the 9.00: 1.00 taken back by a credit note on Sep 15 counts, the 0.50 returned on Sep 15
      and the 3.00 drawn on Sep 16 do not: 8.00;
    - the 20.00 granted on the day is there in full; the 100.00 of Oct 1 is not yet granted."""
    grants = [
        CreditGrant(amount=D("5.00"), granted=date(2026, 9, 1)),
        CreditGrant(amount=D("9.00"), granted=date(2026, 9, 1)),
        CreditGrant(amount=D("100.00"), granted=date(2026, 10, 1)),
        CreditGrant(amount=D("20.00"), granted=date(2026, 9, 15)),
    ]

    def move(customer: str, grant: int, day: int, kind: str, amount: str) -> CreditMovement:
        month = 9 if day > 1 else 10
        return CreditMovement(customer, grant, date(2026, month, day), kind, D(amount))

    moves = (
        move("acme", 0, 10, "draw", "1.45"),
        move("globex", 0, 10, "draw", "4.00"),
        move("acme", 0, 12, "return", "0.45"),
        move("acme", 0, 15, "draw", "2.00"),
        move("acme", 0, 15, "breakage", "0.30"),
        move("acme", 1, 15, "credit_note", "1.00"),
        move("acme", 1, 15, "return", "0.50"),
        move("acme", 1, 16, "draw", "3.00"),
        move("acme", 2, 1, "draw", "7.00"),
    )
    rating = Rating(through=date(2026, 10, 1), cycles=(), credits=moves)
    assert credit_at_start(rating, grants, "acme", date(2026, 9, 15)) == {
        "2026-09-01#1": D("3.70"),
        "2026-09-01#2": D("8.00"),
        "2026-09-15#1": D("20.00"),
    }


def test_rated_lines_as_text_and_json() -> None:
    """``meterbook rate`` for acme's cycle [Aug 15, Sep 15), rated through Aug 31 and then Sep
    14 (only the latest is shown): 128.8 GB of storage at 0.10 = 12.88 USD with its tier line,
    a flat 5.00 platform fee on api_calls (a line with no unit price), then the cycle's line:
    base fee 49.00 of 49.00 recognized, a 2.12 commitment shortfall, 3.00 of credit applied.
    globex's cycle has no fee, shortfall or credit: no cycle line. As JSON one object per
    charge, and no cycle line."""

    def cycle(customer: str) -> Cycle:
        return Cycle(
            customer, "pro", date(2026, 8, 15), date(2026, 9, 15), date(2026, 8, 15),
            date(2026, 9, 15), 0, True, False,
        )  # fmt: skip

    storage = ChargeRating(
        0, "storage_gb", "unit", D("128.8"), 3, D("12.88"),
        (PriceLine("128.8 units", D("128.8"), D("0.10"), D("12.880")),), False,
    )  # fmt: skip
    fee = ChargeRating(
        1, "api_calls", "flat", D(1), 1, D("5.00"),
        (PriceLine("platform fee", D(1), None, D("5.00")),), True,
    )  # fmt: skip
    early = CycleRating(cycle("acme"), date(2026, 8, 31), "USD", (), None, D(0), D(0))
    acme = CycleRating(
        cycle("acme"), date(2026, 9, 14), "USD", (storage, fee),
        BaseFeeRating("advance", D("49.00"), D("49.00")), D("2.12"), D("3.00"),
    )  # fmt: skip
    globex = CycleRating(cycle("globex"), date(2026, 9, 14), "USD", (storage,), None, D(0), D(0))
    rating = Rating(through=date(2026, 9, 14), cycles=(early, acme, globex))
    key = "2026-08-15/2026-09-15"
    assert list(rated_lines(rating)) == [
        f"acme  {key}  storage_gb  unit  128.8  12.88 USD",
        "    128.8 units: 128.8 × 0.10 = 12.880",
        f"acme  {key}  api_calls  flat  1  5.00 USD",
        "    platform fee: 1 = 5.00",
        f"    acme {key}: base fee 49.00/49.00 recognized; commitment shortfall 2.12; "
        "credit applied 3.00 USD",
        f"globex  {key}  storage_gb  unit  128.8  12.88 USD",
        "    128.8 units: 128.8 × 0.10 = 12.880",
    ]
    lines = list(rated_lines(rating, as_json=True))
    assert len(lines) == 3
    assert lines[1] == (
        '{"amount": "5.00", "charge": 1, "currency": "USD", "customer": "acme", "cycle": '
        f'"{key}", "final": true, "meter": "api_calls", "model": "flat", "plan": "pro", '
        '"quantity": "1", "through": "2026-09-14", "tiers": [{"amount": "5.00", "description": '
        '"platform fee", "quantity": "1", "unit_price": null}]}'
    )
    assert json.loads(lines[0])["tiers"] == [
        {
            "amount": "12.880",
            "description": "128.8 units",
            "quantity": "128.8",
            "unit_price": "0.10",
        }
    ]
    assert json.loads(lines[2])["customer"] == "globex"


# --- ledger/journal (the journal builders; more in tests/test_journal.py) --------------


def _accrual(meta: dict[str, object], postings: list[dict[str, object]]) -> data.Transaction:
    return data.Transaction(
        {"filename": "<test>", "lineno": 0, **meta} if "filename" in meta else dict(meta),
        date(2026, 9, 30),
        "*",
        "c",
        "Usage accrual",
        frozenset(),
        frozenset(),
        [data.Posting("Income:Usage:Api-Calls", None, None, None, None, dict(m)) for m in postings],
    )


def test_entry_quantities_read_back_from_the_books() -> None:
    """An accrual naming api_calls and tokens whose api_calls posting says quantity 14 and whose
    second api_calls posting (a split) says none: api_calls 14, tokens unknown (None); an empty
    meter name is no meter; an entry naming no meter has none."""
    entry = _accrual(
        {"meter": "api_calls,tokens"},
        [{"meter": "api_calls", "quantity": D(14)}, {"meter": "api_calls"}, {"meter": ""}],
    )
    assert entry_quantities(entry) == {"api_calls": D(14), "tokens": None}
    assert entry_quantities(_accrual({}, [])) == {}


def test_a_hand_edited_quantities_line_is_named() -> None:
    """A ``quantities`` value that does not parse is bad input naming the file and line
    (``<books>:0`` when the entry carries neither)."""
    bad = "api_calls=many"
    with pytest.raises(BadInput, match=r"^books/2026-09\.beancount:12: quantities: "):
        entry_quantities(
            _accrual(
                {
                    "meter": "api_calls",
                    "quantities": bad,
                    "filename": "books/2026-09.beancount",
                    "lineno": 12,
                },
                [],
            )
        )
    with pytest.raises(BadInput, match=r"^<books>:0: quantities: "):
        entry_quantities(_accrual({"meter": "api_calls", "quantities": bad}, []))


def test_month_end_of_a_short_february() -> None:
    """The month ending a non-leap February is Feb 28 (day 29 does not exist that month)."""
    assert [
        last_of_month(date(y, m, 1)) for y, m in ((2027, 2), (2028, 2), (2026, 12), (2026, 4))
    ] == [date(2027, 2, 28), date(2028, 2, 29), date(2026, 12, 31), date(2026, 4, 30)]


# --- ledger/cycles.py and ledger/period.py -----------------------------------------------------


def test_a_next_cycle_change_inside_the_first_cycle_waits_for_its_end() -> None:
    """acme on pro from Aug 15 (anniversary), ent from Sep 1, ``effective: next_cycle``: the
    change falls inside the first cycle [Aug 15, Sep 15), so pro runs to Sep 15 (the first
    boundary on or after Sep 1, not the second, Oct 15) and ent's cycles start there."""
    plans = {"pro": Plan(id="pro", currency="USD"), "ent": Plan(id="ent", currency="USD")}
    acme = Customer(
        id="acme",
        currency="USD",
        subscriptions=(
            Subscription(plan="pro", start=date(2026, 8, 15)),
            Subscription(plan="ent", start=date(2026, 9, 1)),
        ),
        subscription_changes=ChangePolicy(effective="next_cycle"),
    )
    assert [(c.plan, c.key) for c in cycles_for(acme, plans, until=date(2026, 11, 1))] == [
        ("pro", "2026-08-15/2026-09-15"),
        ("ent", "2026-09-15/2026-10-15"),
        ("ent", "2026-10-15/2026-11-15"),
    ]


def test_month_arithmetic() -> None:
    """The month helpers on ordinary and edge months: October 2026 is "2026-10", Oct 1 to Oct 31;
    after December comes January of the next year, before January December of the one before;
    a day's month starts on the 1st and February 2028 (leap) ends on the 29th. A malformed month
    is refused with the text quoted."""
    assert month_of(date(2026, 10, 31)) == "2026-10"
    assert (month_start("2026-10"), month_end("2026-10")) == (date(2026, 10, 1), date(2026, 10, 31))
    assert (next_month("2026-12"), previous_month("2027-01")) == ("2027-01", "2026-12")
    assert (previous_month("2026-10"), next_month("2026-10")) == ("2026-09", "2026-11")
    assert first_of_month(date(2026, 10, 17)) == date(2026, 10, 1)
    assert last_of_month(date(2028, 2, 3)) == date(2028, 2, 29)
    assert months_between("2026-12", "2026-12") == ["2026-12"]
    for text in ("2026-13", "2026-1", "26-10", "2026-10-01"):
        with pytest.raises(ValueError, match=f"^month '{text}' is not YYYY-MM$"):
            Month.parse(text)
    assert not is_month(202610)


PRO_ENT = {
    "pro": Plan(id="pro", currency="USD"),
    "ent": Plan(id="ent", currency="USD", cycle="quarterly"),
}


def _calendar(*subscriptions: Subscription, **policy: str) -> Customer:
    return Customer(
        id="acme",
        currency="USD",
        billing_anchor="calendar",
        subscriptions=subscriptions,
        subscription_changes=ChangePolicy(**policy),
    )


def _cycles(customer: Customer) -> list[tuple[str, str, str, bool]]:
    return [
        (c.plan, c.key, str(c.proration()), c.full_when_cut)
        for c in cycles_for(customer, PRO_ENT, until=date(2026, 11, 1))
    ]


def test_a_next_cycle_change_to_a_quarterly_plan_starts_at_the_month_boundary() -> None:
    """Calendar billing, ``effective: next_cycle``: pro (monthly) from Aug 1, ent (quarterly)
    from Aug 20. pro runs to its boundary, Sep 1; ent starts there, inside its calendar quarter
    [Jul 1, Oct 1): a short first cycle [Sep 1, Oct 1), 30 of 92 days, then [Oct 1, Jan 1).

    With a third subscription, ent from Aug 20 to Sep 1 and pro again from Oct 1: ent's turn
    would start on Sep 1, the day it ends: it has no cycle at all (not a quarter-long one to
    Oct 1, nor an empty one), and pro's Oct 1 subscription still comes."""
    assert _cycles(
        _calendar(
            Subscription(plan="pro", start=date(2026, 8, 1)),
            Subscription(plan="ent", start=date(2026, 8, 20)),
            effective="next_cycle",
        )
    ) == [
        ("pro", "2026-08-01/2026-09-01", "1", False),
        ("ent", "2026-09-01/2026-10-01", "15/46", False),
        ("ent", "2026-10-01/2027-01-01", "1", False),
    ]
    assert _cycles(
        _calendar(
            Subscription(plan="pro", start=date(2026, 8, 1)),
            Subscription(plan="ent", start=date(2026, 8, 20), end=date(2026, 9, 1)),
            Subscription(plan="pro", start=date(2026, 10, 1)),
            effective="next_cycle",
        )
    ) == [
        ("pro", "2026-08-01/2026-09-01", "1", False),
        ("pro", "2026-10-01/2026-11-01", "1", False),
    ]


def test_proration_none_bills_a_cut_cycle_to_its_nominal_end() -> None:
    """Calendar billing, ``proration: none``: pro from Aug 11 (a short first cycle in the month
    [Aug 1, Sep 1)), ent from Aug 20. pro's cycle is cut at Aug 20 but billed as if it ran to
    Sep 1: 21 of 31 days (Aug 11 to Sep 1), not the 9 it ran. ent's first cycle [Aug 20, Oct 1)
    ends at its nominal end: its 42 of 92 days. Every cycle is marked full_when_cut."""
    assert _cycles(
        _calendar(
            Subscription(plan="pro", start=date(2026, 8, 11)),
            Subscription(plan="ent", start=date(2026, 8, 20)),
            proration="none",
        )
    ) == [
        ("pro", "2026-08-11/2026-08-20", "21/31", True),
        ("ent", "2026-08-20/2026-10-01", "21/46", True),
        ("ent", "2026-10-01/2027-01-01", "1", True),
    ]


def test_an_unknown_cycle_kind_is_named_with_the_known_ones() -> None:
    """The rules accept only these three (a Literal); the engine's own guard says so too."""
    with pytest.raises(ValueError) as raised:
        _cycle_months("weekly")
    assert str(raised.value) == "unknown cycle 'weekly' (known: monthly, quarterly, yearly)"
