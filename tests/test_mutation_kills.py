"""Worked examples that kill the mutants mutmut found surviving (README "Mutation testing").

Each test states, by hand, the figure the engine must produce and, in its docstring, the
mutant it catches (``python3 tasks.py mutation MODULE`` names them). Grouped by module.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from beancount.core import data

from ledger.cycles import Cycle, _cycle_months, cycles_for
from ledger.discounts import DiscountRating, Part
from ledger.errors import BadInput
from ledger.facts.credit_notes import GrantReduction
from ledger.facts.pins import TermsPin
from ledger.facts.topups import TopUp
from ledger.journal.meta import entry_quantities
from ledger.money import (
    MAX_MAGNITUDE,
    ZERO,
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
    _apply_credits,
    _Gross,
    _parts,
    credit_at_start,
    cycle_plan,
    grant_key,
    rate,
    rated_lines,
    threshold_points,
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
    Wallet,
    WalletGrant,
    load_rules,
)
from ledger.store import open_store
from tests.support.pricing import banded
from tests.support.rating import rating_event, rating_rules
from tests.support.workspaces import METERS_CALLS, calls, insert_events

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


def _cycle(customer: str, start: date, end: date, plan: str = "p", series: str = "") -> Cycle:
    return Cycle(customer, plan, start, end, start, end, 0, True, False, series=series)


def _gross(amount: str, *discounts: DiscountRating) -> _Gross:
    usage = ChargeRating(0, "api_calls", "unit", D(1), 1, D(amount), (), True)
    return _Gross((usage,), discounts=discounts)


OCT1, OCT31, NOV1, NOV30 = (
    date(2026, 10, 1),
    date(2026, 10, 31),
    date(2026, 11, 1),
    date(2026, 11, 30),
)


def test_an_automatic_topup_after_the_last_draw_of_an_accrual_point() -> None:
    """w's wallet tops up 50.00 when an accrual point's draws leave it under 10.00. Its grants:
    g0 40.00 (the rules' credit, Oct 1), g1 12.00 bought on Oct 31 (``topup:BANK-7``), g2 30.00
    recurring on Nov 20; none expires, so they are drawn in grant order. Rated through Nov 30:

    - Oct 15 (a threshold day, no accrual point): 32.00 from g0, 8.00 left: under 10.00, but a
      threshold day's draws trigger nothing;
    - Oct 31, the main cycle first: 36.00, 4.00 more from g0; g0 4.00 + g1 12.00 = 16.00;
      then the add-on ``seats``: 9.00, g0's last 4.00 and 5.00 of g1: 7.00 left (g2 is not
      granted yet), under 10.00 after the point's last row: ``auto:2026-11-01``, 50.00, drawn
      after g1 (granted Nov 1) and before g2 (Nov 20);
    - a credit note takes 10.00 of the automatic top-up back on Nov 5 (another names a top-up
      this rating never made: ignored, the next still taken): 40.00 left of it;
    - Nov 30: 50.00: g1's 7.00, the top-up's 40.00, 3.00 of g2; no top-up on Dec 1, after the
      rating.

    Kills the automatic top-up's mutants (no wallet, its day, its balance counting a grant not
    granted yet or a non-accrual point's draws, checked after the first row of a point, the
    top-up's amount, key and place in the draw order) and the given grants ignored."""
    g0 = CreditGrant(amount=D("40.00"), granted=OCT1)
    g1 = WalletGrant(amount=D("12.00"), granted=OCT31, key="topup:BANK-7")
    g2 = WalletGrant(amount=D("30.00"), granted=date(2026, 11, 20), key="recurring:2026-11-20")
    w = Customer(
        id="w",
        currency="USD",
        credits=(g0,),
        wallet=Wallet(below=D("10.00"), top_up=D("50.00")),
    )
    oct_, seats, nov = (
        _cycle("w", OCT1, NOV1),
        _cycle("w", OCT1, NOV1, "s", "seats"),
        _cycle("w", NOV1, date(2026, 12, 1)),
    )
    rows = [
        (oct_, date(2026, 10, 15), _gross("32.00")),
        (oct_, OCT31, _gross("36.00")),
        (seats, OCT31, _gross("9.00")),
        (nov, NOV30, _gross("50.00")),
    ]
    notes = [
        GrantReduction("w", NOV1, 0, date(2026, 11, 5), D("5.00"), "CN-0", "auto:2026-10-16"),
        GrantReduction("w", NOV1, 0, date(2026, 11, 5), D("10.00"), "CN-1", "auto:2026-11-01"),
    ]
    applied, moves, grants = _apply_credits(w, rows, NOV30, notes, [g0, g1, g2])
    auto = WalletGrant(amount=D("50.00"), granted=NOV1, key="auto:2026-11-01")
    assert grants == (g0, g1, g2, auto)
    assert applied == {
        (oct_.link, "p", date(2026, 10, 15)): D("32.00"),
        (oct_.link, "p", OCT31): D("36.00"),
        (seats.link, "s", OCT31): D("9.00"),
        (nov.link, "p", NOV30): D("50.00"),
    }
    assert moves == [
        CreditMovement("w", 0, date(2026, 10, 15), "draw", D("32.00"), oct_),
        CreditMovement("w", 0, OCT31, "draw", D("4.00"), oct_),
        CreditMovement("w", 0, OCT31, "draw", D("4.00"), seats),
        CreditMovement("w", 1, OCT31, "draw", D("5.00"), seats),
        CreditMovement("w", 3, date(2026, 11, 5), "credit_note", D("10.00")),
        CreditMovement("w", 1, NOV30, "draw", D("7.00"), nov),
        CreditMovement("w", 3, NOV30, "draw", D("40.00"), nov),
        CreditMovement("w", 2, NOV30, "draw", D("3.00"), nov),
    ]


def test_no_automatic_topup_for_an_idle_point_or_a_balance_at_the_level() -> None:
    """b's wallet tops up 25.00 under 10.00; its credits: h0 20.00 expiring Oct 20, h1 6.00 and
    h2 6.00 granted on Oct 31, rated through Nov 1 (so a top-up on Nov 1 would count):

    - Oct 10 (a threshold day): 12.00 from h0 (expiring first), 8.00 left;
    - Oct 20: h0 expires, 8.00 of breakage, nothing drawn: h1's 6.00 is all there is, but an
      idle point tops up nothing;
    - Oct 31: 14.00, 2.00 more from h1: h1 4.00 + h2 6.00 (granted that day) = 10.00, the
      level itself, not under it: no top-up.

    c (25.00 under 10.00, one 10.00 grant) draws 3.00 for its main cycle and 2.00 for an add-on
    on Oct 31: 5.00 left, one top-up on Nov 1 (the rating's last day), none when rated
    through Oct 31. Kills ``drew = True`` after a point, the expired grant counted instead of
    the others, the point's own grant left out, ``balance <= below``, ``day >= through``, a
    check after each row (two top-ups) and the customer's credits not read by default."""
    h0 = CreditGrant(amount=D("20.00"), granted=OCT1, expires=date(2026, 10, 20))
    h1 = CreditGrant(amount=D("6.00"), granted=OCT1)
    h2 = CreditGrant(amount=D("6.00"), granted=OCT31)
    b = Customer(
        id="b",
        currency="USD",
        credits=(h0, h1, h2),
        wallet=Wallet(below=D("10.00"), top_up=D("25.00")),
    )
    oct_ = _cycle("b", OCT1, NOV1)
    rows = [
        (oct_, date(2026, 10, 10), _gross("12.00")),
        (oct_, date(2026, 10, 20), _gross("12.00")),
        (oct_, OCT31, _gross("14.00")),
    ]
    applied, moves, grants = _apply_credits(b, rows, NOV1)
    assert grants == (h0, h1, h2)
    assert list(applied.values()) == [D("12.00"), D("12.00"), D("14.00")]
    assert moves == [
        CreditMovement("b", 0, date(2026, 10, 10), "draw", D("12.00"), oct_),
        CreditMovement("b", 0, date(2026, 10, 20), "breakage", D("8.00")),
        CreditMovement("b", 1, OCT31, "draw", D("2.00"), oct_),
    ]

    m0 = CreditGrant(amount=D("10.00"), granted=OCT1)
    c = Customer(
        id="c", currency="USD", credits=(m0,), wallet=Wallet(below=D("10.00"), top_up=D("25.00"))
    )
    main, seats = _cycle("c", OCT1, NOV1), _cycle("c", OCT1, NOV1, "s", "seats")
    rows = [(main, OCT31, _gross("3.00")), (seats, OCT31, _gross("2.00"))]
    auto = WalletGrant(amount=D("25.00"), granted=NOV1, key="auto:2026-11-01")
    assert _apply_credits(c, rows, NOV1)[2] == (m0, auto)
    assert _apply_credits(c, rows, OCT31)[2] == (m0,)


def test_after_a_threshold_invoice_credit_grows_only_with_the_usage_since() -> None:
    """t's cycle [Sep 1, Oct 1), billed by threshold invoices through Sep 5 and Sep 20; its only
    credit, a 20.00 top-up, is bought on Sep 7. Rated through Oct 31:

    - Sep 5 (billed): 5.00 of usage, no credit yet: 0.00 credited, frozen at (5.00, 0.00);
    - Sep 20 (billed): 7.00: at most 0.00 + (7.00 − 5.00) = 2.00, drawn; frozen at (7.00, 2.00);
    - Sep 30: usage falls to 6.00: min(6.00, 2.00 + max(0, 6.00 − 7.00)) = 2.00, nothing back;
    - October's cycle, billed by no threshold invoice: 8.00, all drawn (10.00 left).

    Without the bound Sep 20 drew 7.00 (the 5.00 billed paid twice) and Sep 30 gave 1.00 back.
    Kills the bound's mutants (``frozen`` read or written on the wrong days, its ``min``, its
    sum, a cycle without threshold days looked up as ``None``)."""
    sep_, oct_ = _cycle("t", date(2026, 9, 1), OCT1), _cycle("t", OCT1, NOV1)
    topup = WalletGrant(amount=D("20.00"), granted=date(2026, 9, 7), key="topup:BANK-1")
    t = Customer(id="t", currency="USD")
    rows = [
        (sep_, date(2026, 9, 5), _gross("5.00")),
        (sep_, date(2026, 9, 20), _gross("7.00")),
        (sep_, date(2026, 9, 30), _gross("6.00")),
        (oct_, OCT31, _gross("8.00")),
    ]
    billed_at = {sep_.link: {date(2026, 9, 5), date(2026, 9, 20)}}
    applied, moves, _grants = _apply_credits(t, rows, OCT31, (), [topup], billed_at)
    assert list(applied.values()) == [D("0.00"), D("2.00"), D("2.00"), D("8.00")]
    assert moves == [
        CreditMovement("t", 0, date(2026, 9, 20), "draw", D("2.00"), sep_),
        CreditMovement("t", 0, OCT31, "draw", D("8.00"), oct_),
    ]


def test_a_credit_note_after_the_last_point_is_taken_at_the_end() -> None:
    """r's 10.00 grant of Sep 1; its September cycle uses 5.00 by Sep 30. A credit note takes
    4.00 of the grant back on Sep 30, before that point's draws: 6.00 left, 5.00 drawn, 1.00
    left; another takes that 1.00 on Oct 5, after the last point and on the rating's last
    day, so it is taken after the rows: 0.00 left. Kills the last reductions taken through
    ``through − 1`` (Oct 5's note left out) or through ``None`` (a TypeError)."""
    sep_ = _cycle("r", date(2026, 9, 1), OCT1)
    grant = CreditGrant(amount=D("10.00"), granted=date(2026, 9, 1))
    r = Customer(id="r", currency="USD", credits=(grant,))
    notes = [
        GrantReduction("r", date(2026, 9, 1), 1, date(2026, 10, 5), D("1.00"), "CN-2"),
        GrantReduction("r", date(2026, 9, 1), 1, date(2026, 9, 30), D("4.00"), "CN-1"),
    ]
    rows = [(sep_, date(2026, 9, 30), _gross("5.00"))]
    applied, moves, _grants = _apply_credits(r, rows, date(2026, 10, 5), notes)
    assert list(applied.values()) == [D("5.00")]
    assert moves == [
        CreditMovement("r", 0, date(2026, 9, 30), "credit_note", D("4.00")),
        CreditMovement("r", 0, date(2026, 9, 30), "draw", D("5.00"), sep_),
        CreditMovement("r", 0, date(2026, 10, 5), "credit_note", D("1.00")),
    ]


SETTLED_RULES = {
    "meters.yaml": METERS_CALLS,
    "plans.yaml": """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
  y:
    currency: JPY
    charges:
      - {meter: api_calls, model: unit, unit_price: "105"}
  f:
    currency: USD
    base_fee: {amount: "31.00", timing: advance}
    minimum_commitment: "10.00"
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
""",
    "customers.yaml": """\
customers:
  plain: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-10-01}]}
  granted:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: f, start: 2026-10-01}]
    credits: [{amount: "5.00", granted: 2026-10-01}]
    discounts: [{id: launch, percent: "10", start: 2026-10-01}]
  wallet:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-10-01}]
    wallet: {below: "1.00", top_up: "5.00"}
  bought: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-10-01}]}
  yen:
    currency: JPY
    billing_anchor: calendar
    subscriptions: [{plan: y, start: 2026-10-01}]
    discounts: [{id: launch, percent: "10", start: 2026-10-01}]
""",
}


def test_settled_cycles_threshold_days_topups_and_discounts_in_the_rating(tmp_path: Path) -> None:
    """Plan u: 1.00 a call; plan f the same with a 31.00 fee in advance and a 10.00 minimum.
    Four customers from Oct 1, each with 3 calls in October (Oct 2–4) and 2 in November (Nov
    2, Nov 12), rated through Nov 30 with every October cycle settled (its invoice's accruals
    stand) and plain's November cycle frozen by a threshold invoice through Nov 10:

    - plain (no prepaid credit): October left out; November rated on Nov 10 (1.00) and Nov 30
      (2.00);
    - granted (plan f, a 5.00 grant, ``launch`` 10 % off every part): a customer with prepaid
      credit is rated through every cycle. October: 3.10 off the fee, 0.30 off the 3.00 of
      usage, 0.70 off the 7.00 shortfall; the usage net of its discount, 2.70, drawn.
      November: 3.10, 0.20 and 0.80 off; 1.80 drawn (0.50 left);
    - wallet (wallet settings, no grant): rated through October too, nothing to draw;
    - bought (a stored 5.00 top-up ``BANK-1`` of Oct 5): October 3.00 and November 2.00 drawn
      from it;
    - yen (plan y, 105 yen a call, ``launch`` 10 % off; not settled): October 315 yen, 31.5
      off rounded to the yen, 32 (not 31.50); November 210, 21 off.

    Kills the settled filter's mutants (credit by grants, wallet or top-up; ``break`` for
    ``continue``), the threshold days dropped, the stored top-ups lost and the discounts not
    looked up or not applied to each part (the fee, the usage, the shortfall) in the plan's
    currency."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in SETTLED_RULES.items():
        (rules_dir / name).write_text(text)
    models = dict(load_registry(None).pricing_models)
    rules = load_rules(rules_dir, models)
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    days = ["2026-10-02", "2026-10-03", "2026-10-04", "2026-11-02", "2026-11-12"]
    insert_events(engine, [e for c in rules.customers for e in calls(c, days)])
    topup = TopUp("BANK-1", "bought", date(2026, 10, 5), D("5.00"), "USD")
    rating = rate(
        engine,
        rules,
        models,
        UTC,
        through=NOV30,
        reductions=[],
        topups=[topup],
        settled={f"{c}-2026-10-01" for c in ("plain", "granted", "wallet", "bought")},
        progress={"plain-2026-11-01": [date(2026, 11, 10)]},
    )
    assert [
        (
            r.cycle.customer,
            r.through,
            r.usage_amount,
            tuple(d.amount for d in r.discounts),
            r.credit_applied,
        )
        for r in rating.cycles
    ] == [
        ("bought", OCT31, D("3.00"), (), D("3.00")),
        ("bought", NOV30, D("2.00"), (), D("2.00")),
        ("granted", OCT31, D("3.00"), (D("3.10"), D("0.30"), D("0.70")), D("2.70")),
        ("granted", NOV30, D("2.00"), (D("3.10"), D("0.20"), D("0.80")), D("1.80")),
        ("plain", date(2026, 11, 10), D("1.00"), (), D(0)),
        ("plain", NOV30, D("2.00"), (), D(0)),
        ("wallet", OCT31, D("3.00"), (), D(0)),
        ("wallet", NOV30, D("2.00"), (), D(0)),
        ("yen", OCT31, D(315), (D(32),), D(0)),
        ("yen", NOV30, D(210), (D(21),), D(0)),
    ]
    bought = WalletGrant(amount=D("5.00"), granted=date(2026, 10, 5), key="topup:BANK-1")
    assert rating.grants_of(rules.customers["bought"]) == (bought,)
    assert rating.grants_of(rules.customers["granted"]) == rules.customers["granted"].credits


def test_the_rating_bounds_credit_bought_after_a_threshold_invoice(tmp_path: Path) -> None:
    """``bought`` (plan u, 1.00 a call, calendar months) makes 3 calls on Oct 2–4, 1 on Nov 2
    and 1 on Nov 12; a threshold invoice billed its November cycle through Nov 10 (1.00, no
    credit then); it buys a 5.00 top-up on Nov 11. Rated through Nov 30: October 3.00, no
    credit yet; Nov 10 1.00, none; Nov 30 2.00, of which the credit pays only the 1.00 used
    since Nov 10 (2.00 paid the threshold invoice's 1.00 again). Kills ``rate``'s threshold
    days not given to the credit (``billed_at`` None, left out, read for the cycles without
    progress or from the progress of no cycle)."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in SETTLED_RULES.items():
        (rules_dir / name).write_text(text)
    models = dict(load_registry(None).pricing_models)
    rules = load_rules(rules_dir, models)
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    days = ["2026-10-02", "2026-10-03", "2026-10-04", "2026-11-02", "2026-11-12"]
    insert_events(engine, calls("bought", days))
    topup = TopUp("BANK-2", "bought", date(2026, 11, 11), D("5.00"), "USD")
    rating = rate(
        engine,
        rules,
        models,
        UTC,
        through=NOV30,
        customers={"bought"},
        reductions=[],
        topups=[topup],
        progress={"bought-2026-11-01": [date(2026, 11, 10)]},
    )
    assert [(r.through, r.usage_amount, r.credit_applied) for r in rating.cycles] == [
        (OCT31, D("3.00"), D(0)),
        (date(2026, 11, 10), D("1.00"), D(0)),
        (NOV30, D("2.00"), D("1.00")),
    ]


def test_threshold_days_up_to_the_rating_and_never_the_cycles_last() -> None:
    """September [Sep 1, Oct 1): threshold invoices froze it through Sep 4, Sep 29 and Sep 30,
    and another cycle through Oct 5. Rated through Sep 30: Sep 4 and Sep 29 (Sep 30 is the
    cycle's last day, the cycle-end invoice's; Oct 5 is not in the cycle). Rated through Sep
    29: the same two, the day itself included."""
    september = _cycle("acme", date(2026, 9, 1), OCT1)
    frozen = [date(2026, 9, 30), date(2026, 9, 29), date(2026, 10, 5), date(2026, 9, 4)]
    expected = (date(2026, 9, 4), date(2026, 9, 29))
    assert threshold_points(september, date(2026, 9, 30), frozen) == expected
    assert threshold_points(september, date(2026, 9, 29), frozen) == expected


def test_a_ratings_grants_of_a_customer() -> None:
    """A rating that drew w's 40.00 grant and an automatic top-up gives both; for k, which it
    did not rate, k's own credits (kills the lookup by None and the missing default)."""
    g0 = CreditGrant(amount=D("40.00"), granted=OCT1)
    auto = WalletGrant(amount=D("50.00"), granted=NOV1, key="auto:2026-11-01")
    k_grant = CreditGrant(amount=D("5.00"), granted=OCT1)
    w = Customer(id="w", currency="USD", credits=(g0,))
    k = Customer(id="k", currency="USD", credits=(k_grant,))
    rating = Rating(through=NOV30, cycles=(), grants={"w": (g0, auto)})
    assert rating.grants_of(w) == (g0, auto)
    assert rating.grants_of(k) == (k_grant,)


def test_discountable_parts_of_a_cycle_in_the_order_a_fixed_discount_takes_them() -> None:
    """October [Oct 1, Nov 1), 31 days, through Oct 15: 15 days elapsed. With a 31.00 fee in
    advance (15.00 recognized), api_calls 12.00 (final), storage_gb 3.00 (not final) and a
    5.00 shortfall: the fee first (deferred, 15/31 earned), then the usage (unbilled, then
    contract asset), then the commitment. The fee in arrears comes last, at what is recognized
    (15.00, unbilled), and no shortfall, no part for it. No fee, charge or shortfall: none."""
    october = _cycle("acme", OCT1, NOV1)
    point = date(2026, 10, 15)
    charges = (
        ChargeRating(0, "api_calls", "unit", D(120), 120, D("12.00"), (), True),
        ChargeRating(1, "storage_gb", "unit", D(30), 2, D("3.00"), (), False),
    )
    usage = [
        Part("usage:api_calls", "unbilled", D("12.00")),
        Part("usage:storage_gb", "contract_asset", D("3.00")),
    ]
    advance = BaseFeeRating("advance", D("31.00"), D("15.00"))
    assert _parts(charges, advance, D("5.00"), october, point) == [
        Part("base_fee", "deferred", D("31.00"), Fraction(15, 31)),
        *usage,
        Part("commitment", "unbilled", D("5.00")),
    ]
    arrears = BaseFeeRating("arrears", D("31.00"), D("15.00"))
    assert _parts(charges, arrears, ZERO, october, point) == [
        *usage,
        Part("base_fee", "unbilled", D("15.00")),
    ]
    assert _parts((), None, ZERO, october, point) == []


def test_discounted_sums_the_discounts_of_a_part_and_account() -> None:
    """A cycle with 0.30 off api_calls (unbilled), 0.50 off storage_gb (contract asset) and
    1.00 off the advance fee (deferred): usage on unbilled 0.30, on the contract asset 0.50,
    the fee on deferred 1.00 (kills ``or`` for ``and``, ``!=`` and the prefix dropped)."""
    discounts = (
        DiscountRating("launch: 10% off", "usage:api_calls", "unbilled", D("0.30"), D("0.30")),
        DiscountRating(
            "launch: 10% off", "usage:storage_gb", "contract_asset", D("0.50"), D("0.50")
        ),
        DiscountRating("loyalty: 1.00 off", "base_fee", "deferred", D("1.00"), D("0.48")),
    )
    rated = CycleRating(_cycle("acme", OCT1, NOV1), OCT31, "USD", (), None, ZERO, ZERO, discounts)
    assert rated.discounted("usage:", "unbilled") == D("0.30")
    assert rated.discounted("usage:", "contract_asset") == D("0.50")
    assert rated.discounted("base_fee", "deferred") == D("1.00")


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
