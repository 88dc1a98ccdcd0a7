"""Rating worked examples, hand-computed, on a real store (SQLite and PostgreSQL).

The workspace's rules and events: tests/support/rating.py.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from ledger.events import Event, parse_time
from ledger.facts.credit_notes import GrantReduction
from ledger.rating import Rating, rate, undrawn_credit
from ledger.store import open_store
from tests.support.rating import cycle_usage, rating_event, rating_rules
from tests.support.workspaces import insert_events

UTC = ZoneInfo("UTC")


def _store(url: str, rows: list[Event]) -> Engine:
    engine = open_store(url)
    insert_events(engine, rows)
    return engine


def _cycle_ratings(rating: Rating, customer: str, start: date) -> dict[date, object]:
    return {
        r.through: r
        for r in rating.cycles
        if r.cycle.customer == customer and r.cycle.start == start
    }


def test_anniversary_cycle_graduated_base_fee_and_commitment(
    tmp_path: Path, store_url: str
) -> None:
    rules, models = rating_rules(tmp_path)
    engine = _store(store_url, cycle_usage("c"))
    rating = rate(engine, rules, models, UTC, through=date(2026, 10, 14), customers={"c"})
    points = _cycle_ratings(rating, "c", date(2026, 9, 15))
    assert sorted(points) == [date(2026, 9, 30), date(2026, 10, 14)]
    sep, octo = points[date(2026, 9, 30)], points[date(2026, 10, 14)]
    # 14 calls: 10 free + 4 × 0.05 = 0.20; 12.5 GB max × 0.10 = 1.25
    assert [(c.quantity, c.amount) for c in sep.charges] == [
        (14, Decimal("0.20")),
        (Decimal("12.5"), Decimal("1.25")),
    ]
    # base fee 30.00 over a 30-day cycle, 16 days elapsed (Sep 15–30): 16.00
    assert sep.base_fee.billed == Decimal("30.00") and sep.base_fee.recognized == Decimal("16.00")
    assert sep.commitment_shortfall == 0
    # 25 calls: 15 × 0.05 = 0.75; max stays 12.5 GB
    assert [(c.quantity, c.amount) for c in octo.charges] == [
        (25, Decimal("0.75")),
        (Decimal("12.5"), Decimal("1.25")),
    ]
    assert octo.base_fee.recognized == Decimal("30.00")
    # minimum 20.00 − gross usage 2.00 = 18.00 shortfall on the cycle's last day
    assert octo.commitment_shortfall == Decimal("18.00")
    assert octo.charges[0].lines[1].quantity == 15


def test_credits_drawn_then_breakage_at_expiry(tmp_path: Path) -> None:
    rules, models = rating_rules(tmp_path)
    engine = _store(f"sqlite:///{tmp_path / 'e.sqlite'}", cycle_usage("k"))
    rating = rate(engine, rules, models, UTC, through=date(2026, 10, 14), customers={"k"})
    points = _cycle_ratings(rating, "k", date(2026, 9, 15))
    # usage 0.20 + 1.25 = 1.45 by Sep 30, all drawn from the 5.00 grant
    assert points[date(2026, 9, 30)].credit_applied == Decimal("1.45")
    # the grant expired on Oct 10: usage since then is billable; 3.55 is breakage dated Oct 10
    assert points[date(2026, 10, 14)].credit_applied == Decimal("1.45")
    breakage = [m for m in rating.credits if m.kind == "breakage"]
    assert [(m.day, m.amount) for m in breakage] == [(date(2026, 10, 10), Decimal("3.55"))]


def test_volume_price_fall_returns_credit(tmp_path: Path) -> None:
    """A volume price that falls between accrual points gives part of the drawn credit back."""
    rules, models = rating_rules(tmp_path)
    rows = [
        rating_event(1, "t", "llm.completion", "2026-09-20T00:00:00Z", tokens="100"),
        rating_event(2, "t", "llm.completion", "2026-10-05T10:00:00Z", tokens="50"),
    ]
    engine = _store(f"sqlite:///{tmp_path / 'e.sqlite'}", rows)
    rating = rate(engine, rules, models, UTC, through=date(2026, 10, 14), customers={"t"})
    points = _cycle_ratings(rating, "t", date(2026, 9, 15))
    # Sep 30: 100 tokens in the first volume tier, 100 × 0.02 = 2.00, all drawn from the grant
    assert points[date(2026, 9, 30)].credit_applied == Decimal("2.00")
    # Oct 14: 150 tokens fall into the second tier, 150 × 0.01 = 1.50; 0.50 goes back to the grant
    last = points[date(2026, 10, 14)]
    assert last.usage_amount == Decimal("1.50") and last.credit_applied == Decimal("1.50")
    assert [(m.day, m.kind, m.amount) for m in rating.credits] == [
        (date(2026, 9, 30), "draw", Decimal("2.00")),
        (date(2026, 10, 14), "return", Decimal("0.50")),
    ]
    assert not last.charges[0].final


def _graduated_by_hand(calls: int) -> Decimal:
    """Plan p's api_calls tiers: 10 free, then 0.05 up to 100, then 0.01; half-even to the cent."""
    exact = Decimal("0.05") * min(max(calls - 10, 0), 90) + Decimal("0.01") * max(calls - 100, 0)
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.sets(st.integers(min_value=0, max_value=28), max_size=6),
    seconds=st.lists(st.integers(min_value=0, max_value=30 * 24 * 3600 - 1), max_size=150),
)
def test_cumulative_rating_at_any_cut_offs_adds_up_to_rating_once(
    tmp_path_factory: pytest.TempPathFactory, cuts: set[int], seconds: list[int]
) -> None:
    """c's cycle [Sep 15, Oct 15) rated through any set of cut-off days: each cumulative
    api_calls amount is the graduated price, computed here by hand, of the calls up to the end
    of that day; the differences posted from one cut-off to the next are never negative (the
    price is final) and add up to the amount of rating the cycle once at its last day."""
    tmp = tmp_path_factory.mktemp("r")
    rules, models = rating_rules(tmp)
    base = parse_time("2026-09-15T00:00:00Z")
    rows = [
        Event.build(
            source="t",
            id=f"x{i}",
            customer="c",
            type="api.request",
            time=base + timedelta(seconds=s),
            properties={},
        )
        for i, s in enumerate(seconds)
    ]
    engine = _store(f"sqlite:///{tmp / 'e.sqlite'}", rows)

    def rated_calls(through: date) -> tuple[Decimal, Decimal]:
        [cycle] = [
            r
            for r in rate(engine, rules, models, UTC, through=through, customers={"c"}).latest()
            if r.cycle.start == date(2026, 9, 15)
        ]
        [calls] = [ch for ch in cycle.charges if ch.meter == "api_calls"]
        return calls.quantity, calls.amount

    posted: list[Decimal] = []
    for day in sorted(cuts):
        through = date(2026, 9, 15) + timedelta(days=day)
        quantity, amount = rated_calls(through)
        calls = sum(1 for s in seconds if s < (day + 1) * 86400)
        assert (quantity, amount) == (calls, _graduated_by_hand(calls))
        posted.append(amount - sum(posted))
    once = rated_calls(date(2026, 10, 14))
    assert once == (len(seconds), _graduated_by_hand(len(seconds)))
    posted.append(once[1] - sum(posted))
    assert all(step >= 0 for step in posted)
    assert sum(posted) == once[1]


def test_credit_note_reduction_shrinks_breakage(tmp_path: Path) -> None:
    """k's 5.00 grant (expires Oct 10) has 1.45 drawn on Sep 30; a credit note on Oct 5 takes
    2.00 of it back, so 3.55 − 2.00 = 1.55 expires instead of 3.55, and the draws are unchanged."""
    rules, models = rating_rules(tmp_path)
    engine = _store(f"sqlite:///{tmp_path / 'e.sqlite'}", cycle_usage("k"))
    note = GrantReduction(
        customer="k",
        granted=date(2026, 9, 1),
        ordinal=1,
        day=date(2026, 10, 5),
        amount=Decimal("2.00"),
        note="CN-2026-000001",
    )
    rating = rate(
        engine, rules, models, UTC, through=date(2026, 10, 14), customers={"k"}, reductions=[note]
    )
    points = _cycle_ratings(rating, "k", date(2026, 9, 15))
    assert points[date(2026, 9, 30)].credit_applied == Decimal("1.45")
    assert points[date(2026, 10, 14)].credit_applied == Decimal("1.45")
    assert [(m.day, m.kind, m.amount) for m in rating.credits] == [
        (date(2026, 9, 30), "draw", Decimal("1.45")),
        (date(2026, 10, 5), "credit_note", Decimal("2.00")),
        (date(2026, 10, 10), "breakage", Decimal("1.55")),
    ]
    grants = rules.customers["k"].credits
    assert undrawn_credit(rating, grants, "k", date(2026, 10, 9)) == {
        "2026-09-01#1": Decimal("1.55")
    }
    assert undrawn_credit(rating, grants, "k", date(2026, 10, 10)) == {"2026-09-01#1": Decimal("0")}
    # a reduction dated after the rating's date is not applied yet
    later = rate(
        engine, rules, models, UTC, through=date(2026, 10, 4), customers={"k"}, reductions=[note]
    )
    assert "credit_note" not in {m.kind for m in later.credits}


def test_credit_note_reduction_leaves_less_to_draw(tmp_path: Path) -> None:
    """t's 100.00 grant is reduced by 98.50 on Sep 25, before the Sep 30 draw: of the 2.00 of
    tokens only 1.50 is covered; Oct 14's 1.50 (volume price fell) is still all covered."""
    rules, models = rating_rules(tmp_path)
    rows = [
        rating_event(1, "t", "llm.completion", "2026-09-20T00:00:00Z", tokens="100"),
        rating_event(2, "t", "llm.completion", "2026-10-05T10:00:00Z", tokens="50"),
    ]
    engine = _store(f"sqlite:///{tmp_path / 'e.sqlite'}", rows)
    note = GrantReduction(
        customer="t",
        granted=date(2026, 9, 1),
        ordinal=1,
        day=date(2026, 9, 25),
        amount=Decimal("98.50"),
    )
    rating = rate(
        engine, rules, models, UTC, through=date(2026, 10, 14), customers={"t"}, reductions=[note]
    )
    points = _cycle_ratings(rating, "t", date(2026, 9, 15))
    assert points[date(2026, 9, 30)].credit_applied == Decimal("1.50")
    assert points[date(2026, 10, 14)].credit_applied == Decimal("1.50")
    assert undrawn_credit(rating, rules.customers["t"].credits, "t", date(2026, 10, 14)) == {
        "2026-09-01#1": Decimal("0.00")
    }
    # without a reduction argument the store's credit notes are read: none here, all 2.00 drawn
    plain = rate(engine, rules, models, UTC, through=date(2026, 10, 14), customers={"t"})
    assert _cycle_ratings(plain, "t", date(2026, 9, 15))[
        date(2026, 9, 30)
    ].credit_applied == Decimal("2.00")
