"""Graduated tiers: each tier's units at that tier's price (marginal pricing).

A worked example (``rules/plans.yaml``, plan ``pro``)::

    - meter: api_calls
      model: graduated
      tiers:
        - {up_to: 10000, unit_price: "0"}
        - {up_to: 1000000, unit_price: "0.0010"}
        - {unit_price: "0.0005"}

    quantity 1,500,000 calls
      0 – 10,000                10,000 × 0       =   0
      10,001 – 1,000,000       990,000 × 0.0010  = 990.0000
      1,000,001 and above      500,000 × 0.0005  = 250.0000
                                           total   1,240.0000

``up_to`` is inclusive: 10,000 calls cost 0, 10,001 calls cost 0.0010. A tier's
optional ``flat_price`` is charged once as soon as at least one unit falls in
that tier; zero usage reaches no tier and costs nothing. The last tier must be
open-ended. More units never change the price of earlier ones, so accruals go
to *unbilled* and the amount never decreases as usage grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.hookspecs import hookimpl
from ledger.money import ZERO
from ledger.pricing import (
    Price,
    PriceLine,
    PricingModel,
    Tier,
    Usage,
    check_keys,
    parse_tiers,
    tier_label,
)


@dataclass(frozen=True)
class GraduatedTerms:
    """A validated ``graduated`` charge: tiers in increasing order, the last open-ended."""

    tiers: tuple[Tier, ...]


class GraduatedPricing:
    """Sum over tiers of the units inside each tier at its price, plus flat prices of tiers reached.

    >>> model = GraduatedPricing()
    >>> tiers = [{"up_to": 10000, "unit_price": "0"}, {"unit_price": "0.001"}]
    >>> terms = model.parse({"tiers": tiers})
    >>> model.price(terms, Usage(Decimal(10001))).amount
    Decimal('0.001')
    """

    name = "graduated"

    def parse(self, params: Mapping[str, Any]) -> GraduatedTerms:
        check_keys(params, required=("tiers",))
        return GraduatedTerms(tiers=parse_tiers(params))

    def price_is_final(self, terms: GraduatedTerms) -> bool:
        return True

    def bands(self, terms: GraduatedTerms) -> tuple[Decimal, ...]:
        return ()

    def price(self, terms: GraduatedTerms, usage: Usage) -> Price:
        quantity = usage.quantity
        lines: list[PriceLine] = []
        lower = ZERO
        for tier in terms.tiers:
            if quantity <= lower:
                break
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = top - lower
            label = tier_label(lower, tier.up_to)
            lines.append(PriceLine(label, units, tier.unit_price, units * tier.unit_price))
            if tier.flat_price:
                lines.append(
                    PriceLine(f"{label} flat fee", Decimal(1), tier.flat_price, tier.flat_price)
                )
            if tier.up_to is None:
                break
            lower = tier.up_to
        return Price(sum((line.amount for line in lines), ZERO), tuple(lines))


@hookimpl
def meterbook_pricing_models() -> list[PricingModel[GraduatedTerms]]:
    """The ``graduated`` model, registered through the same hook as any third-party model."""
    return [GraduatedPricing()]
