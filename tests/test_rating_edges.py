"""Rating edge cases found by mutation testing (README "Mutation testing"), each a worked example.

Prepaid credit movements when usage falls (volume tiers) before and after a grant expires,
over several accrual points and two grants; exhausted grants; grants that start on or after an
accrual point; credit-note reductions in any order, dated on a point or on the rating date;
cut-offs on a cycle's first and second-to-last day; plan versions pinned through ``rate``; a
yen minimum commitment; a percentage charge banded by the metering. Plans:

    u   unit, 0.10 a call, monthly (calendar)
    a   the same price under another name (a plan change from u to a on Oct 1)
    v   volume tokens: up to 100 at 0.02, above at 0.01 (all units at the tier reached)
    w   quarterly volume tokens: up to 100 at 0.05, up to 150 at 0.02, above at 0.005
    vz  unit calls 0.10, minimum commitment 20.00; from Oct 1 on (a version) 30.00
    z   JPY, unit 0.5 a call, minimum commitment 1000
    pay 2.9 % + 0.30 a payment, at least 0.50, at most 25.00
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ledger.errors import PluginError
from ledger.events import Event, parse_time
from ledger.facts.credit_notes import GrantReduction
from ledger.facts.pins import TermsPin
from ledger.pricing import Price, Usage
from ledger.rating import Rating, charge_bands, rate, undrawn_credit
from ledger.registry import load_registry
from ledger.rules import Rules, load_rules
from ledger.store import open_store
from tests.support.rating import cycle_usage, rating_event, rating_rules
from tests.support.workspaces import calls, insert_events

D = Decimal
UTC = ZoneInfo("UTC")
METERS = """\
meters:
  api_calls: {event_type: api.request, aggregation: count}
  tokens: {event_type: llm.completion, aggregation: sum, value: tokens}
  payments: {event_type: payment, aggregation: sum, value: amount}
"""
PLANS = """\
plans:
  u:
    currency: USD
    charges: [{meter: api_calls, model: unit, unit_price: "0.10"}]
  a:
    currency: USD
    charges: [{meter: api_calls, model: unit, unit_price: "0.10"}]
  v:
    currency: USD
    charges:
      - meter: tokens
        model: volume
        tiers: [{up_to: 100, unit_price: "0.02"}, {unit_price: "0.01"}]
  w:
    currency: USD
    cycle: quarterly
    charges:
      - meter: tokens
        model: volume
        tiers:
          - {up_to: 100, unit_price: "0.05"}
          - {up_to: 150, unit_price: "0.02"}
          - {unit_price: "0.005"}
  vz:
    currency: USD
    minimum_commitment: "20.00"
    charges: [{meter: api_calls, model: unit, unit_price: "0.10"}]
    versions:
      - {effective: 2026-10-01, minimum_commitment: "30.00"}
  z:
    currency: JPY
    minimum_commitment: "1000"
    charges: [{meter: api_calls, model: unit, unit_price: "0.5"}]
  pay:
    currency: USD
    charges:
      - {meter: payments, model: percentage, rate: "0.029", fixed_fee: "0.30",
         per_event_min: "0.50", per_event_max: "25.00"}
"""
CUSTOMERS = """\
customers:
  ret:
    currency: USD
    billing_anchor: start
    subscriptions: [{plan: v, start: 2026-09-15}]
    credits: [{amount: "3.00", granted: 2026-09-01}]
  exp:
    currency: USD
    billing_anchor: start
    subscriptions: [{plan: v, start: 2026-09-15}]
    credits: [{amount: "5.00", granted: 2026-09-01, expires: 2026-10-10}]
  q2:
    currency: USD
    subscriptions: [{plan: w, start: 2026-10-01}]
    credits:
      - {amount: "2.00", granted: 2026-09-01, expires: 2027-06-01}
      - {amount: "10.00", granted: 2026-09-01}
  one:
    currency: USD
    subscriptions: [{plan: u, start: 2026-09-01}]
    credits: [{amount: "1.00", granted: 2026-09-01}]
  used:
    currency: USD
    subscriptions: [{plan: u, start: 2026-09-01}]
    credits:
      - {amount: "1.00", granted: 2026-09-01, expires: 2026-10-10}
      - {amount: "1.00", granted: 2026-09-02, expires: 2026-10-10}
  late:
    currency: USD
    subscriptions: [{plan: u, start: 2026-09-01}]
    credits:
      - {amount: "1.00", granted: 2026-09-30}
      - {amount: "5.00", granted: 2026-10-01, expires: 2026-12-31}
  chg:
    currency: USD
    subscriptions: [{plan: u, start: 2026-09-01, end: 2026-10-01}, {plan: a, start: 2026-10-01}]
    credits: [{amount: "1.00", granted: 2026-09-01}]
  vers:
    currency: USD
    subscriptions: [{plan: vz, start: 2026-09-01}]
  jz:
    currency: JPY
    billing_anchor: calendar
    subscriptions: [{plan: z, start: 2026-09-11}]
  pay:
    currency: USD
    subscriptions: [{plan: pay, start: 2026-09-01}]
"""
SEP = [f"2026-09-{d:02d}" for d in range(1, 16)]  # 15 calls: 1.50 at 0.10
OCT = [f"2026-10-{d:02d}" for d in range(1, 6)]  # 5 calls: 0.50


def _tokens(customer: str, items: list[tuple[str, str]]) -> list[Event]:
    return [
        Event.build(
            source="t",
            id=f"{customer}-tok{i}",
            customer=customer,
            type="llm.completion",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={"tokens": n},
        )
        for i, (day, n) in enumerate(items)
    ]


def _payments(customer: str, amounts: list[str]) -> list[Event]:
    return [
        Event.build(
            source="t",
            id=f"{customer}-pay{i}",
            customer=customer,
            type="payment",
            time=parse_time(f"2026-09-{10 + i:02d}T12:00:00Z"),
            properties={"amount": a},
        )
        for i, a in enumerate(amounts)
    ]


@pytest.fixture
def world(tmp_path: Path) -> tuple[object, Rules, dict]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "meters.yaml").write_text(METERS)
    (rules_dir / "plans.yaml").write_text(PLANS)
    (rules_dir / "customers.yaml").write_text(CUSTOMERS)
    models = dict(load_registry(None).pricing_models)
    rules = load_rules(rules_dir, models)
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    insert_events(
        engine,
        [
            *_tokens("ret", [("2026-09-20", "100"), ("2026-10-05", "50"), ("2026-10-20", "100")]),
            *_tokens("exp", [("2026-09-20", "100"), ("2026-10-05", "50")]),
            *_tokens("q2", [("2026-10-10", "100"), ("2026-11-10", "50"), ("2026-12-10", "50")]),
            *calls("one", SEP),
            *calls("one", OCT, "o"),
            *calls("used", SEP),
            *calls("late", SEP),
            *calls("late", OCT, "o"),
            *calls("chg", SEP),
            *calls("chg", OCT, "o"),
            *calls("jz", ["2026-09-15", "2026-09-16", "2026-09-17"]),
            *_payments("pay", ["5.00", "100.00", "1000.00"]),
        ],
    )
    return engine, rules, models


def _rate(
    world: tuple[object, Rules, dict], through: date, *customers: str, **kw: object
) -> Rating:
    engine, rules, models = world
    return rate(engine, rules, models, UTC, through=through, customers=set(customers), **kw)  # type: ignore[arg-type]


def _moves(rating: Rating, customer: str) -> list[tuple[date, int, str, Decimal, date | None]]:
    """(day, grant, kind, amount, start of the cycle drawn for or None) of a customer's
    movements."""
    return [
        (m.day, m.grant, m.kind, m.amount, m.cycle.start if m.cycle else None)
        for m in rating.credits
        if m.customer == customer
    ]


def _applied(rating: Rating, customer: str) -> dict[date, Decimal]:
    return {r.through: r.credit_applied for r in rating.cycles if r.cycle.customer == customer}


def test_a_price_fall_gives_credit_back_to_a_live_grant(world: tuple[object, Rules, dict]) -> None:
    """ret (volume v, cycles from the 15th, grant 3.00): Sep 30 100 tokens = 2.00 drawn (1.00 left);
    Oct 14 150 tokens fall to the 0.01 tier = 1.50: 0.50 back (1.50 left); the next cycle's Oct 31
    100 tokens = 2.00 draws the 1.50 left, 0.50 is billable."""
    rating = _rate(world, date(2026, 10, 31), "ret")
    sep15, oct15 = date(2026, 9, 15), date(2026, 10, 15)
    assert _moves(rating, "ret") == [
        (date(2026, 9, 30), 0, "draw", D("2.00"), sep15),
        (date(2026, 10, 14), 0, "return", D("0.50"), sep15),
        (date(2026, 10, 31), 0, "draw", D("1.50"), oct15),
    ]
    assert _applied(rating, "ret") == {
        date(2026, 9, 30): D("2.00"),
        date(2026, 10, 14): D("1.50"),
        date(2026, 10, 31): D("1.50"),
    }


def test_a_price_fall_after_expiry_is_breakage(world: tuple[object, Rules, dict]) -> None:
    """exp (volume v, grant 5.00 expiring Oct 10): Sep 30 2.00 drawn; Oct 10 the 3.00 left
    expires; Oct 14 the price falls to 1.50: the 0.50 given back belongs to an expired grant,
    so it is breakage on Oct 14 (and the cycle's credit is 1.50)."""
    rating = _rate(world, date(2026, 10, 14), "exp")
    sep15 = date(2026, 9, 15)
    assert _moves(rating, "exp") == [
        (date(2026, 9, 30), 0, "draw", D("2.00"), sep15),
        (date(2026, 10, 10), 0, "breakage", D("3.00"), None),
        (date(2026, 10, 14), 0, "breakage", D("0.50"), None),
        (date(2026, 10, 14), 0, "return", D("0.50"), sep15),
    ]
    assert [m.customer for m in rating.credits] == ["exp"] * 4
    assert _applied(rating, "exp")[date(2026, 10, 14)] == D("1.50")
    _engine, rules, _ = world
    assert undrawn_credit(rating, rules.customers["exp"].credits, "exp", date(2026, 10, 14)) == {
        "2026-09-01#1": D("0.00")
    }


def test_two_price_falls_return_newest_draws_first(world: tuple[object, Rules, dict]) -> None:
    """q2 (quarter [Oct 1, Jan 1), grants 2.00 expiring 2027-06-01, then 10.00 never expiring):
    Oct 31 100 tokens × 0.05 = 5.00: 2.00 from the grant expiring first, 3.00 from the other;
    Nov 30 150 tokens × 0.02 = 3.00: 2.00 back to the newest draw (the 10.00 grant's 3.00 → 1.00);
    Dec 31 200 tokens × 0.005 = 1.00: 2.00 back: the 1.00 left of that draw, then 1.00 of the
    2.00 grant's."""
    rating = _rate(world, date(2026, 12, 31), "q2")
    oct1 = date(2026, 10, 1)
    assert _moves(rating, "q2") == [
        (date(2026, 10, 31), 0, "draw", D("2.00"), oct1),
        (date(2026, 10, 31), 1, "draw", D("3.00"), oct1),
        (date(2026, 11, 30), 1, "return", D("2.00"), oct1),
        (date(2026, 12, 31), 0, "return", D("1.00"), oct1),
        (date(2026, 12, 31), 1, "return", D("1.00"), oct1),
    ]
    assert _applied(rating, "q2") == {
        date(2026, 10, 31): D("5.00"),
        date(2026, 11, 30): D("3.00"),
        date(2026, 12, 31): D("1.00"),
    }


def test_an_exhausted_grant_is_not_drawn_again(world: tuple[object, Rules, dict]) -> None:
    """one (unit 0.10, grant 1.00): September's 15 calls = 1.50, 1.00 drawn (all of it); October's
    0.50 finds nothing left: no movement at all, not a 0.00 draw."""
    rating = _rate(world, date(2026, 10, 31), "one")
    assert _moves(rating, "one") == [(date(2026, 9, 30), 0, "draw", D("1.00"), date(2026, 9, 1))]
    assert _applied(rating, "one") == {date(2026, 9, 30): D("1.00"), date(2026, 10, 31): D(0)}
    september = next(r for r in rating.cycles if r.through == date(2026, 9, 30))
    assert [(c.model, c.quantity, c.events, c.amount) for c in september.charges] == [
        ("unit", D(15), 15, D("1.50"))
    ]
    assert rating.through == date(2026, 10, 31)


def test_breakage_is_only_what_is_left(world: tuple[object, Rules, dict]) -> None:
    """used (two 1.00 grants, both expiring Oct 10, the first granted a day earlier): September's
    1.50 takes 1.00 from the first and 0.50 from the second; on Oct 10 only the second's 0.50
    expires (no 0.00 breakage for the first)."""
    rating = _rate(world, date(2026, 10, 31), "used")
    assert _moves(rating, "used") == [
        (date(2026, 9, 30), 0, "draw", D("1.00"), date(2026, 9, 1)),
        (date(2026, 9, 30), 1, "draw", D("0.50"), date(2026, 9, 1)),
        (date(2026, 10, 10), 1, "breakage", D("0.50"), None),
    ]


def test_a_grant_is_drawable_from_its_grant_day_on(world: tuple[object, Rules, dict]) -> None:
    """late: 1.00 granted Sep 30 (never expires) and 5.00 granted Oct 1 (expires Dec 31, so drawn
    first once granted). Sep 30: the 1.50 draws the 1.00 granted that very day, and nothing of a
    grant not granted yet; Oct 31: October's 0.50 from the Oct 1 grant."""
    rating = _rate(world, date(2026, 10, 31), "late")
    assert _moves(rating, "late") == [
        (date(2026, 9, 30), 0, "draw", D("1.00"), date(2026, 9, 1)),
        (date(2026, 10, 31), 1, "draw", D("0.50"), date(2026, 10, 1)),
    ]


def test_credits_follow_dates_across_a_plan_change(world: tuple[object, Rules, dict]) -> None:
    """chg moves from plan u to plan a on Oct 1, grant 1.00: September (plan u) is drawn first,
    1.00 of its 1.50; October (plan a, whose name sorts first) finds nothing left."""
    rating = _rate(world, date(2026, 10, 31), "chg")
    assert _moves(rating, "chg") == [(date(2026, 9, 30), 0, "draw", D("1.00"), date(2026, 9, 1))]
    assert [(r.cycle.plan, r.cycle.start) for r in rating.latest()] == [
        ("u", date(2026, 9, 1)),
        ("a", date(2026, 10, 1)),
    ]


def test_a_pinned_version_through_rate(world: tuple[object, Rules, dict]) -> None:
    """vers (plan vz, no usage): October's cycle starts under the Oct 1 version: shortfall 30.00;
    pinned to the original terms (an invoice issued before the version) it is 20.00."""
    plain = _rate(world, date(2026, 10, 31), "vers")
    [october] = [r for r in plain.latest() if r.cycle.start == date(2026, 10, 1)]
    assert october.commitment_shortfall == D("30.00")
    pinned = _rate(
        world, date(2026, 10, 31), "vers", pins={october.cycle.link: TermsPin(usage=date.min)}
    )
    [again] = [r for r in pinned.latest() if r.cycle.start == date(2026, 10, 1)]
    assert again.commitment_shortfall == D("20.00")


def test_yen_minimum_commitment_and_charge(world: tuple[object, Rules, dict]) -> None:
    """jz (JPY, minimum 1000, cycle [Sep 11, Oct 1) = 20 of 30 days): 3 calls × 0.5 = 1.5 → 2 yen;
    minimum 1000 × 20/30 = 666.67 → 667; shortfall 667 − 2 = 665. Before the start: nothing."""
    [september] = _rate(world, date(2026, 9, 30), "jz").latest()
    assert (september.usage_amount, september.commitment_shortfall) == (D(2), D(665))
    assert _rate(world, date(2026, 9, 5), "jz").cycles == ()


def test_percentage_charge_banded_by_the_metering(world: tuple[object, Rules, dict]) -> None:
    """pay: payments 5.00 (0.445 → the minimum 0.50), 100.00 (2.90 + 0.30 = 3.20) and 1,000.00
    (29.30 → the maximum 25.00): 28.70, the bands counted in SQL."""
    [september] = _rate(world, date(2026, 9, 30), "pay").latest()
    assert september.charges[0].amount == D("28.70")


def test_cut_offs_on_a_cycles_first_and_second_to_last_day(tmp_path: Path) -> None:
    """k's cycles run from the 15th: rated through Oct 15 the new cycle [Oct 15, Nov 15) is
    there, cut off at its first day; through Oct 13 the cycle [Sep 15, Oct 15) is cut off at
    Oct 13 (its last day is Oct 14). latest() lists cycles by customer and start."""
    rules, models = rating_rules(tmp_path)
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    insert_events(engine, cycle_usage("k"))
    first = rate(engine, rules, models, UTC, through=date(2026, 10, 15), customers={"k"})
    assert [(r.cycle.start, r.through) for r in first.latest()] == [
        (date(2026, 8, 15), date(2026, 9, 14)),
        (date(2026, 9, 15), date(2026, 10, 14)),
        (date(2026, 10, 15), date(2026, 10, 15)),
    ]
    second = rate(engine, rules, models, UTC, through=date(2026, 10, 13), customers={"k"})
    assert second.latest()[-1].through == date(2026, 10, 13)


def _notes_world(tmp_path: Path) -> tuple[object, Rules, dict]:
    rules, models = rating_rules(tmp_path)
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    insert_events(
        engine,
        [
            *cycle_usage("k"),
            rating_event(1, "t", "llm.completion", "2026-09-20T00:00:00Z", tokens="100"),
            rating_event(2, "t", "llm.completion", "2026-10-05T10:00:00Z", tokens="50"),
        ],
    )
    return engine, rules, models


def test_credit_note_reductions_apply_in_date_order(tmp_path: Path) -> None:
    """t's 100.00 grant, two reductions given latest first: Sep 25 98.50 comes before the Sep 30
    draw (1.50 left: 1.50 of the 2.00 drawn), Oct 5 1.00 after it (−1.00 left)."""
    world = _notes_world(tmp_path)
    notes = [
        GrantReduction(
            customer="t",
            granted=date(2026, 9, 1),
            ordinal=1,
            day=date(2026, 10, 5),
            amount=D("1.00"),
            note="CN-2",
        ),
        GrantReduction(
            customer="t",
            granted=date(2026, 9, 1),
            ordinal=1,
            day=date(2026, 9, 25),
            amount=D("98.50"),
            note="CN-1",
        ),
    ]
    rating = _rate(world, date(2026, 10, 14), "t", reductions=notes)
    assert [(d, k, a) for d, _g, k, a, _c in _moves(rating, "t")] == [
        (date(2026, 9, 25), "credit_note", D("98.50")),
        (date(2026, 9, 30), "draw", D("1.50")),
        (date(2026, 10, 5), "credit_note", D("1.00")),
    ]


def test_a_reduction_dated_on_a_point_comes_before_its_draws(tmp_path: Path) -> None:
    """A reduction of 99.00 dated Sep 30 (an accrual point; more than the 98.00 a note could
    take without ``--force`` after that point's 2.00 of usage) comes before that point's draws:
    100.00 − 99.00 leaves 1.00, so Sep 30 draws 1.00 of its 2.00 (the other 1.00 is billed)
    and the grant never goes below 0; Oct 14's fall to 1.50 still needs the 1.00 drawn,
    nothing comes back. (After the draws, the reduction left the grant at −1.00, a debit in
    deferred revenue: seed 84034 of the simulator, where usage of the note's day arrived
    after it.)"""
    world = _notes_world(tmp_path)
    note = GrantReduction(
        customer="t", granted=date(2026, 9, 1), ordinal=1, day=date(2026, 9, 30), amount=D("99.00")
    )
    rating = _rate(world, date(2026, 10, 14), "t", reductions=[note])
    assert [(d, k, a) for d, _g, k, a, _c in _moves(rating, "t")] == [
        (date(2026, 9, 30), "credit_note", D("99.00")),
        (date(2026, 9, 30), "draw", D("1.00")),
    ]


def test_a_reduction_is_the_customers_own_and_counts_on_the_rating_date(tmp_path: Path) -> None:
    """k's note of Oct 5 (grant 2026-09-01#1; t has a grant of the same name): rated through
    Oct 5, Sep 30 draws 1.45 and the Oct 5 cut-off 0.25 more (19 calls: 9 × 0.05 + 1.25 GB =
    1.70), then the note takes 2.00 back (5.00 − 1.70 − 2.00 = 1.30 left); never from t."""
    world = _notes_world(tmp_path)
    note = GrantReduction(
        customer="k",
        granted=date(2026, 9, 1),
        ordinal=1,
        day=date(2026, 10, 5),
        amount=D("2.00"),
        note="CN-1",
    )
    rating = _rate(world, date(2026, 10, 5), "k", "t", reductions=[note])
    assert [(d, k, a) for d, _g, k, a, _c in _moves(rating, "k")] == [
        (date(2026, 9, 30), "draw", D("1.45")),
        (date(2026, 10, 5), "credit_note", D("2.00")),
        (date(2026, 10, 5), "draw", D("0.25")),
    ]
    _engine, rules, _ = world
    assert undrawn_credit(rating, rules.customers["k"].credits, "k", date(2026, 10, 5)) == {
        "2026-09-01#1": D("1.30")
    }
    assert "credit_note" not in {m.kind for m in rating.credits if m.customer == "t"}


@dataclass(frozen=True)
class _FlakyTerms:
    mode: str


class _Flaky:
    """A pricing model that fails in the method its ``mode`` names (1.00 a unit otherwise)."""

    name = "flaky"

    def parse(self, params: Mapping[str, Any]) -> _FlakyTerms:
        return _FlakyTerms(str(params["mode"]))

    def price_is_final(self, terms: _FlakyTerms) -> bool:
        if terms.mode == "final":
            raise ValueError("no idea")
        return terms.mode != "volatile"

    def bands(self, terms: _FlakyTerms) -> tuple[Decimal, ...]:
        if terms.mode == "bands":
            raise ValueError("no bands")
        if terms.mode == "unsorted":  # thresholds measure() cannot count between
            return (Decimal(5), Decimal(1))
        if terms.mode == "float":
            return (0.5,)  # type: ignore[return-value]  # the plugin's bug under test
        return ()

    def price(self, terms: _FlakyTerms, usage: Usage) -> Price:
        return Price(usage.quantity)


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("bands", "failed in bands(): ValueError: no bands"),
        ("final", "failed in price_is_final(): ValueError: no idea"),
        (
            "unsorted",
            "returned (Decimal('5'), Decimal('1')) from bands(), not finite Decimal thresholds "
            "in ascending order",
        ),
        (
            "float",
            "returned (0.5,) from bands(), not finite Decimal thresholds in ascending order",
        ),
        ("volatile", None),
    ],
)
def test_a_plugin_failing_in_bands_or_price_is_final_is_named(
    tmp_path: Path, mode: str, says: str | None
) -> None:
    """A model that raises in bands() or price_is_final(), or whose bands() are not ascending
    Decimal thresholds (rating.charge_bands, the one way every caller asks for bands), is named
    on one line with the cycle, the meter and the method; one that works says whether its price
    is final (here: not)."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "meters.yaml").write_text(METERS)
    (rules_dir / "plans.yaml").write_text(
        "plans:\n  f:\n    currency: USD\n"
        f"    charges: [{{meter: api_calls, model: flaky, mode: {mode}}}]\n"
    )
    (rules_dir / "customers.yaml").write_text(
        "customers:\n  c: {currency: USD, subscriptions: [{plan: f, start: 2026-10-01}]}\n"
    )
    models = {**load_registry(None).pricing_models, "flaky": _Flaky()}
    rules = load_rules(rules_dir, models)
    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    insert_events(engine, calls("c", ["2026-10-05", "2026-10-06"]))
    if says is None:
        [october] = rate(engine, rules, models, UTC, through=date(2026, 10, 31)).latest()
        assert [(c.amount, c.final) for c in october.charges] == [(D("2.00"), False)]
        return
    with pytest.raises(PluginError) as raised:
        rate(engine, rules, models, UTC, through=date(2026, 10, 31))
    assert (
        str(raised.value) == f"pricing model 'flaky' on c 2026-10-01/2026-11-01 (api_calls) {says}"
    )
    assert "\n" not in str(raised.value)


def test_every_caller_asks_for_bands_through_rating() -> None:
    """Statements, forecasts and alerts ask for a charge's bands through
    ``rating.charge_bands`` (checked, one-line errors), never ``model.bands(...)`` directly;
    its checks name the caller's ``where``."""
    package = Path(__file__).parent.parent / "ledger"
    direct = sorted(
        f"{path.relative_to(package)}:{node.lineno}"
        for path in package.rglob("*.py")
        if path.name != "rating.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("bands", "price")
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self")
    )
    assert direct == []
    with pytest.raises(PluginError) as raised:
        charge_bands(_Flaky(), _FlakyCharge(_FlakyTerms("unsorted")), "alerting acme (api_calls)")
    assert str(raised.value).startswith("alerting acme (api_calls) returned (Decimal('5'), ")


@dataclass(frozen=True)
class _FlakyCharge:
    terms: _FlakyTerms


def test_a_reduction_after_expiry_leaves_the_grant_negative(tmp_path: Path) -> None:
    """k's grant expired Oct 10 (3.55 breakage); a reduction of 1.00 dated Oct 12 (a forced
    note) is not capped: 5.00 − 1.45 − 3.55 − 1.00 = −1.00 left, as the books' deferred revenue."""
    world = _notes_world(tmp_path)
    note = GrantReduction(
        customer="k", granted=date(2026, 9, 1), ordinal=1, day=date(2026, 10, 12), amount=D("1.00")
    )
    rating = _rate(world, date(2026, 10, 14), "k", reductions=[note])
    assert [(d, k, a) for d, _g, k, a, _c in _moves(rating, "k")] == [
        (date(2026, 9, 30), "draw", D("1.45")),
        (date(2026, 10, 10), "breakage", D("3.55")),
        (date(2026, 10, 12), "credit_note", D("1.00")),
    ]
    _engine, rules, _ = world
    assert undrawn_credit(rating, rules.customers["k"].credits, "k", date(2026, 10, 14)) == {
        "2026-09-01#1": D("-1.00")
    }
