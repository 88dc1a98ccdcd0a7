"""Worked examples that kill the mutants mutmut found surviving (README "Mutation testing").

Each test states, by hand, the figure the engine must produce and, in its docstring, the
mutant it catches (``python3 tasks.py mutation MODULE`` names them). Grouped by module.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from ledger.money import (
    MAX_MAGNITUDE,
    DecimalError,
    from_units_nanos,
    parse_decimal,
    round_money,
    to_units_nanos,
    within_magnitude,
)

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
    with pytest.raises(DecimalError, match=r'^value: expected a decimal string such as "1\.5", got a float$'):
        parse_decimal(1.5)
