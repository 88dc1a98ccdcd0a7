"""Discounts and coupons: what a customer's ``discounts`` take off each cycle, line by line.

acme pays 0.10 per API call and a 49.00 base fee in advance, with ``launch: 20 % off
api_calls`` for 3 cycles and ``loyalty: 5.00 off`` the whole invoice, forever. Its cycle
``[2026-09-01, 2026-10-01)`` with 1,000 calls::

    base fee 49.00 (in advance, invoiced Sep 1)   loyalty: 5.00 off   −5.00   deferred
    api_calls 100.00 (invoiced Oct 1)             launch: 20% off    −20.00   unbilled

Rules (a cycle's *parts* are its advance base fee, its usage charges in plan order, its
commitment shortfall and its arrears base fee, in that order):

- a discount applies to the cycles that start on or after its ``start``, the first
  ``cycles`` of them (all: forever), counted over the customer's cycles in start order;
- ``percent``: per part, ``round(percent × part)`` half-even to the minor unit, on the
  cumulative amount at each accrual point, so the cycle's accruals sum to its invoice;
- ``amount``: taken from the parts in order, each at most what is left of it, so it never
  exceeds what it discounts; what a cycle cannot use is lost (a coupon per cycle, not a
  balance);
- several discounts apply in the order listed, each on what the earlier ones left;
- an advance fee's discount is billed with the fee and, like it, recognized by day,
  ``round(discount × days elapsed ÷ days in cycle)`` (:func:`ledger.rating.recognize`): a
  contra schedule beside the fee's, so deferred revenue holds the fee net of its discount
  and ends the cycle at 0.

    >>> from datetime import date
    >>> from ledger.rules import Discount
    >>> launch = Discount(id="launch", percent=Decimal("20"), charges=("api_calls",),
    ...                   start=date(2026, 9, 1))
    >>> loyalty = Discount(id="loyalty", amount=Decimal("5.00"), start=date(2026, 9, 1))
    >>> parts = [Part("base_fee", "deferred", Decimal("49.00"), Fraction(15, 30)),
    ...          Part("usage:api_calls", "unbilled", Decimal("100.00"))]
    >>> for d in discount_parts((launch, loyalty), parts, "USD"):
    ...     print(d.label, d.part, d.account, d.amount, d.recognized)
    launch: 20% off usage:api_calls unbilled 20.00 20.00
    loyalty: 5.00 off base_fee deferred 5.00 2.50
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from ledger.cycles import Cycle, cycles_for
from ledger.money import ZERO, round_money
from ledger.rules import Customer, Discount, Plan

#: a discount's ``charges`` name → the part it discounts
_NAMED = {"base_fee": "base_fee", "minimum_commitment": "commitment"}


@dataclass(frozen=True)
class Part:
    """One discountable part of a cycle at an accrual point: ``billed`` is what its invoice
    line bills (cumulative so far for usage); ``earned`` the share of the cycle's days elapsed,
    for an advance fee (recognized by day); None: earned in full as billed."""

    name: str  # "usage:<meter>" | "commitment" | "base_fee"
    account: str  # the account its invoice line settles: unbilled | contract_asset | deferred
    billed: Decimal
    earned: Fraction | None = None


@dataclass(frozen=True)
class DiscountRating:
    """One discount on one part of a cycle, cumulative through an accrual point: ``amount``
    is the (negated) invoice line, ``recognized`` what is contra-revenue so far."""

    label: str
    part: str
    account: str
    amount: Decimal
    recognized: Decimal


def applies(discount: Discount, part: str) -> bool:
    """Whether ``discount`` takes something off ``part``.

    >>> from datetime import date
    >>> d = Discount(id="x", percent=Decimal(10), charges=("api_calls", "base_fee"),
    ...              start=date(2026, 1, 1))
    >>> applies(d, "usage:api_calls"), applies(d, "base_fee"), applies(d, "commitment")
    (True, True, False)
    """
    if not discount.charges:
        return True
    kind, _, meter = part.partition(":")
    return any(_NAMED.get(name, f"usage:{name}") == part for name in discount.charges) or (
        kind == "usage" and meter in discount.charges
    )


def cycle_discounts(customer: Customer, cycles: Iterable[Cycle]) -> dict[str, tuple[Discount, ...]]:
    """Per cycle link, the customer's discounts that apply to it: those whose ``start`` is on
    or before the cycle's start, while it is among the first ``cycles`` cycles starting on or
    after it, counted per subscription (a main plan and an add-on each get ``cycles`` of
    them). ``cycles``: every cycle of the customer from its first (the count is over them)."""
    if not customer.discounts:
        return {}
    ordered = sorted(cycles, key=lambda c: (c.start, c.series, c.plan))
    out: dict[str, list[Discount]] = {c.link: [] for c in ordered}
    for discount in customer.discounts:
        counted: dict[str, int] = {}
        for cycle in ordered:
            if cycle.start < discount.start:
                continue
            counted[cycle.series] = counted.get(cycle.series, 0) + 1
            if discount.cycles is None or counted[cycle.series] <= discount.cycles:
                out[cycle.link].append(discount)
    return {link: tuple(found) for link, found in out.items() if found}


def discounts_on(
    customer: Customer, plans: Mapping[str, Plan], cycle: Cycle
) -> tuple[Discount, ...]:
    """The customer's discounts that apply to ``cycle`` (:func:`cycle_discounts`)."""
    if not customer.discounts:
        return ()
    cycles = cycles_for(customer, plans, until=cycle.start + timedelta(days=1))
    return cycle_discounts(customer, cycles).get(cycle.link, ())


def discount_parts(
    discounts: Sequence[Discount], parts: Sequence[Part], currency: str
) -> tuple[DiscountRating, ...]:
    """The discounts of a cycle at an accrual point, in the order given, one per discount and
    part it takes something off (see the module's rules)."""
    left = {p.name: p.billed for p in parts}
    out = []
    for discount in discounts:
        fixed = discount.amount
        for part in parts:
            if not applies(discount, part.name) or left[part.name] <= 0:
                continue
            if discount.percent is not None:
                off = round_money(left[part.name] * discount.percent / 100, currency)
            else:
                off = min(fixed or ZERO, left[part.name])
                fixed = (fixed or ZERO) - off
            if not off:
                continue
            left[part.name] -= off
            share = part.earned
            earned = (
                off
                if share is None
                else round_money(off * share.numerator / Decimal(share.denominator), currency)
            )
            out.append(DiscountRating(discount.label, part.name, part.account, off, earned))
    return tuple(out)
