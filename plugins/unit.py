"""Unit pricing: every unit at one price.

A worked example (``rules/plans.yaml``)::

    - meter: storage_gb
      model: unit
      unit_price: "0.10"

    quantity 1,234.5 GB  →  1,234.5 × 0.10 = 123.450   (the engine rounds: 123.45 USD)

Zero usage costs nothing and has no breakdown lines. The price of earlier units
never changes, so accruals go to *unbilled*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.hookspecs import hookimpl
from ledger.pricing import (
    Price,
    PriceLine,
    PricingModel,
    Usage,
    check_keys,
    decimal_param,
    format_quantity,
)


@dataclass(frozen=True)
class UnitTerms:
    """A validated ``unit`` charge: the price of one unit."""

    unit_price: Decimal


class UnitPricing:
    """``quantity × unit_price``.

    >>> model = UnitPricing()
    >>> model.price(model.parse({"unit_price": "0.10"}), Usage(Decimal("1234.5"))).amount
    Decimal('123.450')
    """

    name = "unit"

    def parse(self, params: Mapping[str, Any]) -> UnitTerms:
        check_keys(params, required=("unit_price",))
        return UnitTerms(unit_price=decimal_param(params, "unit_price"))

    def price_is_final(self, terms: UnitTerms) -> bool:
        return True

    def bands(self, terms: UnitTerms) -> tuple[Decimal, ...]:
        return ()

    def price(self, terms: UnitTerms, usage: Usage) -> Price:
        if usage.quantity == 0:
            return Price(Decimal(0))
        amount = usage.quantity * terms.unit_price
        line = PriceLine(
            f"{format_quantity(usage.quantity)} units", usage.quantity, terms.unit_price, amount
        )
        return Price(amount, (line,))


@hookimpl
def meterbook_pricing_models() -> list[PricingModel[UnitTerms]]:
    """The ``unit`` model, registered through the same hook as any third-party model."""
    return [UnitPricing()]
