"""Volume tiers: all units at the price of the tier the cycle's total falls into.

A worked example (``rules/plans.yaml``, plan ``ai``)::

    - meter: tokens
      model: volume
      tiers:
        - {up_to: 1000000, unit_price: "0.000002"}
        - {up_to: 10000000, unit_price: "0.0000015"}
        - {unit_price: "0.000001"}

    quantity   1,000,000 tokens → 1,000,000 × 0.000002  = 2.000000
    quantity   1,000,001 tokens → 1,000,001 × 0.0000015 = 1.5000015   (cheaper!)
    quantity  12,000,000 tokens → 12,000,000 × 0.000001 = 12.000000

``up_to`` is inclusive. The tier's optional ``flat_price`` is added once when
there is any usage; zero usage costs nothing. Because more units can lower the
price of the earlier ones, the price is *not final* until the cycle ends:
accruals go to the *contract asset*, cleared by the invoice, and the cumulative
re-rating posts the (possibly negative) difference.
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
class VolumeTerms:
    """A validated ``volume`` charge: tiers in increasing order, the last open-ended."""

    tiers: tuple[Tier, ...]


class VolumePricing:
    """Every unit at the price of the tier holding the total, plus that tier's flat price.

    >>> model = VolumePricing()
    >>> terms = model.parse({"tiers": [{"up_to": 100, "unit_price": "2"}, {"unit_price": "1"}]})
    >>> [model.price(terms, Usage(Decimal(q))).amount for q in (100, 101)]
    [Decimal('200'), Decimal('101')]
    """

    name = "volume"

    def parse(self, params: Mapping[str, Any]) -> VolumeTerms:
        check_keys(params, required=("tiers",))
        return VolumeTerms(tiers=parse_tiers(params))

    def price_is_final(self, terms: VolumeTerms) -> bool:
        return False

    def bands(self, terms: VolumeTerms) -> tuple[Decimal, ...]:
        return ()

    def price(self, terms: VolumeTerms, usage: Usage) -> Price:
        quantity = usage.quantity
        if quantity <= 0:
            return Price(ZERO)
        lower = ZERO
        for tier in terms.tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                label = tier_label(lower, tier.up_to)
                lines = [
                    PriceLine(
                        f"all units at tier {label}",
                        quantity,
                        tier.unit_price,
                        quantity * tier.unit_price,
                    )
                ]
                if tier.flat_price:
                    lines.append(
                        PriceLine(
                            f"tier {label} flat fee", Decimal(1), tier.flat_price, tier.flat_price
                        )
                    )
                return Price(sum((line.amount for line in lines), ZERO), tuple(lines))
            lower = tier.up_to
        raise AssertionError("parse_tiers guarantees an open-ended last tier")


@hookimpl
def meterbook_pricing_models() -> list[PricingModel[VolumeTerms]]:
    """The ``volume`` model, registered through the same hook as any third-party model."""
    return [VolumePricing()]
