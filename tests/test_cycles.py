"""Billing cycles: worked examples from DESIGN and properties over random subscriptions."""

from __future__ import annotations

import doctest
from datetime import date, timedelta
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledger.cycles
from ledger.cycles import Cycle, cycle_at, cycles_for
from ledger.period import add_months
from ledger.rules import Customer, Plan, Subscription

PLANS = {
    "m": Plan(id="m", currency="USD", cycle="monthly"),
    "q": Plan(id="q", currency="USD", cycle="quarterly"),
    "y": Plan(id="y", currency="USD", cycle="yearly"),
}
D = date


def customer(*subs: Subscription, anchor: str = "start") -> Customer:
    return Customer(id="acme", currency="USD", subscriptions=subs, billing_anchor=anchor)  # type: ignore[arg-type]


def spans(cycles: tuple[Cycle, ...]) -> list[tuple[date, date]]:
    return [(c.start, c.end) for c in cycles]


def test_docstring_examples() -> None:
    result = doctest.testmod(ledger.cycles)
    assert result.attempted > 0
    assert result.failed == 0


# --- add_months -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "months", "expected"),
    [
        (D(2026, 1, 31), 1, D(2026, 2, 28)),
        (D(2026, 1, 31), 2, D(2026, 3, 31)),
        (D(2026, 1, 31), 3, D(2026, 4, 30)),
        (D(2028, 1, 31), 1, D(2028, 2, 29)),
        (D(2026, 8, 15), 5, D(2027, 1, 15)),
        (D(2026, 12, 1), 1, D(2027, 1, 1)),
        (D(2028, 2, 29), 12, D(2029, 2, 28)),
        (D(2028, 2, 29), 48, D(2032, 2, 29)),
    ],
)
def test_add_months(anchor: date, months: int, expected: date) -> None:
    assert add_months(anchor, months) == expected


# --- worked examples ------------------------------------------------------------------


def test_anniversary_monthly_from_aug_15() -> None:
    cycles = cycles_for(
        customer(Subscription(plan="m", start=D(2026, 8, 15))), PLANS, until=D(2026, 11, 1)
    )
    assert spans(cycles) == [
        (D(2026, 8, 15), D(2026, 9, 15)),
        (D(2026, 9, 15), D(2026, 10, 15)),
        (D(2026, 10, 15), D(2026, 11, 15)),
    ]
    first, second, third = cycles
    assert first.first and not second.first and not third.first
    assert not any(c.last for c in cycles)
    assert all(c.proration() == 1 for c in cycles)
    assert third.key == "2026-10-15/2026-11-15"
    assert third.link == "acme-2026-10-15"
    assert (second.days, second.nominal_days) == (30, 30)
    assert [c.subscription for c in cycles] == [0, 0, 0]


@pytest.mark.parametrize(("year", "february_end"), [(2026, D(2026, 2, 28)), (2028, D(2028, 2, 29))])
def test_anchor_31_through_february(year: int, february_end: date) -> None:
    cycles = cycles_for(
        customer(Subscription(plan="m", start=D(year - 1, 12, 31))), PLANS, until=D(year, 5, 1)
    )
    assert spans(cycles) == [
        (D(year - 1, 12, 31), D(year, 1, 31)),
        (D(year, 1, 31), february_end),
        (february_end, D(year, 3, 31)),
        (D(year, 3, 31), D(year, 4, 30)),
        (D(year, 4, 30), D(year, 5, 31)),
    ]
    assert all(c.proration() == 1 for c in cycles)


def test_anchor_31_quarterly() -> None:
    cycles = cycles_for(
        customer(Subscription(plan="q", start=D(2026, 1, 31))), PLANS, until=D(2027, 1, 1)
    )
    assert [c.end for c in cycles] == [
        D(2026, 4, 30),
        D(2026, 7, 31),
        D(2026, 10, 31),
        D(2027, 1, 31),
    ]


def test_calendar_mid_month_start_is_short_and_prorated() -> None:
    cycles = cycles_for(
        customer(Subscription(plan="m", start=D(2026, 8, 15)), anchor="calendar"),
        PLANS,
        until=D(2026, 10, 1),
    )
    assert spans(cycles) == [(D(2026, 8, 15), D(2026, 9, 1)), (D(2026, 9, 1), D(2026, 10, 1))]
    short = cycles[0]
    assert (short.nominal_start, short.nominal_end) == (D(2026, 8, 1), D(2026, 9, 1))
    assert short.proration() == Fraction(17, 31)
    assert short.first and not short.last
    assert cycles[1].proration() == 1


def test_calendar_quarterly() -> None:
    cycles = cycles_for(
        customer(Subscription(plan="q", start=D(2026, 5, 10)), anchor="calendar"),
        PLANS,
        until=D(2027, 1, 2),
    )
    assert spans(cycles) == [
        (D(2026, 5, 10), D(2026, 7, 1)),
        (D(2026, 7, 1), D(2026, 10, 1)),
        (D(2026, 10, 1), D(2027, 1, 1)),
        (D(2027, 1, 1), D(2027, 4, 1)),
    ]
    assert (cycles[0].nominal_start, cycles[0].nominal_end) == (D(2026, 4, 1), D(2026, 7, 1))
    assert cycles[0].proration() == Fraction(52, 91)


def test_yearly_anniversary_and_calendar() -> None:
    anniversary = cycles_for(
        customer(Subscription(plan="y", start=D(2028, 2, 29))), PLANS, until=D(2030, 1, 1)
    )
    assert spans(anniversary) == [
        (D(2028, 2, 29), D(2029, 2, 28)),
        (D(2029, 2, 28), D(2030, 2, 28)),
    ]
    cal = cycles_for(
        customer(Subscription(plan="y", start=D(2026, 7, 1)), anchor="calendar"),
        PLANS,
        until=D(2027, 1, 1),
    )
    assert spans(cal) == [(D(2026, 7, 1), D(2027, 1, 1))]
    assert cal[0].proration() == Fraction(184, 365)


def test_plan_change_mid_cycle() -> None:
    cust = customer(
        Subscription(plan="m", start=D(2026, 8, 15)), Subscription(plan="q", start=D(2026, 10, 20))
    )
    cycles = cycles_for(cust, PLANS, until=D(2027, 2, 1))
    assert [(c.plan, c.start, c.end, c.first, c.last, c.subscription) for c in cycles] == [
        ("m", D(2026, 8, 15), D(2026, 9, 15), True, False, 0),
        ("m", D(2026, 9, 15), D(2026, 10, 15), False, False, 0),
        ("m", D(2026, 10, 15), D(2026, 10, 20), False, True, 0),
        ("q", D(2026, 10, 20), D(2027, 1, 20), True, False, 1),
        ("q", D(2027, 1, 20), D(2027, 4, 20), False, False, 1),
    ]
    cut = cycles[2]
    assert (cut.nominal_start, cut.nominal_end) == (D(2026, 10, 15), D(2026, 11, 15))
    assert cut.proration() == Fraction(5, 31)


def test_end_date_cuts_the_last_cycle() -> None:
    cust = customer(Subscription(plan="m", start=D(2026, 8, 15), end=D(2026, 10, 1)))
    cycles = cycles_for(cust, PLANS, until=D(2027, 1, 1))
    assert spans(cycles) == [(D(2026, 8, 15), D(2026, 9, 15)), (D(2026, 9, 15), D(2026, 10, 1))]
    assert cycles[-1].last and cycles[-1].proration() == Fraction(16, 30)


def test_end_on_a_boundary_is_last_but_not_cut() -> None:
    cust = customer(Subscription(plan="m", start=D(2026, 8, 15), end=D(2026, 10, 15)))
    cycles = cycles_for(cust, PLANS, until=D(2027, 1, 1))
    assert spans(cycles) == [(D(2026, 8, 15), D(2026, 9, 15)), (D(2026, 9, 15), D(2026, 10, 15))]
    assert cycles[-1].last and cycles[-1].proration() == 1


def test_until_is_exclusive_on_cycle_start() -> None:
    cust = customer(Subscription(plan="m", start=D(2026, 8, 15)))
    assert cycles_for(cust, PLANS, until=D(2026, 8, 15)) == ()
    assert len(cycles_for(cust, PLANS, until=D(2026, 9, 15))) == 1
    assert len(cycles_for(cust, PLANS, until=D(2026, 9, 16))) == 2
    assert cycles_for(customer(), PLANS, until=D(2030, 1, 1)) == ()


def test_cycle_at() -> None:
    cust = customer(
        Subscription(plan="m", start=D(2026, 8, 15), end=D(2026, 10, 1)),
        Subscription(plan="m", start=D(2026, 11, 1)),
    )
    assert cycle_at(cust, PLANS, D(2026, 8, 14)) is None
    at = cycle_at(cust, PLANS, D(2026, 9, 30))
    assert at is not None and at.key == "2026-09-15/2026-10-01"
    assert cycle_at(cust, PLANS, D(2026, 10, 15)) is None  # between subscriptions
    at = cycle_at(cust, PLANS, D(2026, 11, 1))
    assert at is not None and at.key == "2026-11-01/2026-12-01" and at.subscription == 1


# --- accrual points -------------------------------------------------------------------


def _cycle(start: date, end: date) -> Cycle:
    return Cycle("acme", "m", start, end, start, end, 0, True, False)


@pytest.mark.parametrize(
    ("start", "end", "points"),
    [
        (D(2026, 9, 15), D(2026, 10, 15), (D(2026, 9, 30), D(2026, 10, 14))),
        (D(2026, 10, 1), D(2026, 11, 1), (D(2026, 10, 31),)),
        (D(2026, 1, 1), D(2026, 4, 1), (D(2026, 1, 31), D(2026, 2, 28), D(2026, 3, 31))),
        (D(2026, 1, 31), D(2026, 2, 28), (D(2026, 1, 31), D(2026, 2, 27))),
        (D(2026, 10, 15), D(2026, 10, 16), (D(2026, 10, 15),)),
        (D(2026, 10, 31), D(2026, 11, 1), (D(2026, 10, 31),)),
        (
            D(2027, 11, 20),
            D(2028, 2, 20),
            (D(2027, 11, 30), D(2027, 12, 31), D(2028, 1, 31), D(2028, 2, 19)),
        ),
    ],
)
def test_accrual_points(start: date, end: date, points: tuple[date, ...]) -> None:
    assert _cycle(start, end).accrual_points() == points


# --- properties -----------------------------------------------------------------------

DAYS = st.integers(min_value=1, max_value=800)


@st.composite
def subscriptions(draw: st.DrawFn) -> Customer:
    """A customer with 1-4 subscriptions in order: plan changes on effective dates
    (no end: the next start closes it), ends before a gap, ends that touch the
    next start, and an optional final end."""
    start = draw(st.dates(min_value=D(2020, 1, 1), max_value=D(2030, 12, 31)))
    count = draw(st.integers(min_value=1, max_value=4))
    subs: list[Subscription] = []
    for i in range(count):
        plan = draw(st.sampled_from(sorted(PLANS)))
        following = start + timedelta(days=draw(DAYS))
        end: date | None = None
        if i + 1 < count:
            kind = draw(st.sampled_from(["change", "touch", "gap"]))
            if kind == "touch":
                end = following
            elif kind == "gap":
                end = start + timedelta(
                    days=draw(st.integers(min_value=1, max_value=(following - start).days))
                )
        elif draw(st.booleans()):
            end = following
        subs.append(Subscription(plan=plan, start=start, end=end))
        start = following
    return customer(*subs, anchor=draw(st.sampled_from(["start", "calendar"])))


@settings(max_examples=300, deadline=None)
@given(subscriptions(), DAYS)
def test_cycles_tile_each_subscription(cust: Customer, horizon: int) -> None:
    subs = cust.subscriptions
    until = subs[0].start + timedelta(days=horizon)
    cycles = cycles_for(cust, PLANS, until=until)

    assert list(cycles) == sorted(cycles, key=lambda c: c.start)
    for a, b in pairwise(cycles):
        assert a.end <= b.start, "cycles overlap"
    for c in cycles:
        assert c.start < c.end, "empty cycle"
        assert c.nominal_start <= c.start < c.end <= c.nominal_end
        assert 0 < c.proration() <= 1
        assert c.start < until
        assert c.plan == subs[c.subscription].plan
        points = c.accrual_points()
        assert points == tuple(sorted(set(points)))
        assert points[-1] == c.end - timedelta(days=1) and points[0] >= c.start

    for i, sub in enumerate(subs):
        end = sub.end
        if i + 1 < len(subs):
            end = subs[i + 1].start if end is None else min(end, subs[i + 1].start)
        mine = [c for c in cycles if c.subscription == i]
        if sub.start >= until:
            assert mine == []
            continue
        assert mine, "a started subscription has cycles"
        assert mine[0].start == sub.start and mine[0].first
        assert not any(c.first for c in mine[1:])
        for a, b in pairwise(mine):
            assert a.end == b.start, "gap inside a subscription"
        covered_to = mine[-1].end
        if end is not None and end <= until:
            assert covered_to == end and mine[-1].last
        else:
            assert covered_to >= until
            assert mine[-1].last == (covered_to == end)
        assert not any(c.last for c in mine[:-1])
        if cust.billing_anchor == "calendar":
            assert all(c.nominal_start.day == 1 and c.nominal_end.day == 1 for c in mine)
            assert all(c.start.day == 1 for c in mine[1:])


@settings(max_examples=200, deadline=None)
@given(subscriptions(), st.integers(min_value=-40, max_value=900))
def test_cycle_at_agrees_with_cycles_for(cust: Customer, offset: int) -> None:
    day = cust.subscriptions[0].start + timedelta(days=offset)
    containing = [
        c for c in cycles_for(cust, PLANS, until=day + timedelta(days=1)) if c.start <= day < c.end
    ]
    assert len(containing) <= 1
    assert cycle_at(cust, PLANS, day) == (containing[0] if containing else None)
