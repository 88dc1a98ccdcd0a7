"""Flat fee: a fixed amount per cycle, whatever the usage.

A worked example (``rules/plans.yaml``, plan ``enterprise``)::

    - meter: tokens
      model: flat
      amount: "500.00"

    quantity 0 tokens           → 500.00
    quantity 12,000,000 tokens  → 500.00

A flat fee charges even at zero usage: it is the price of access to the meter
for the cycle, so the whole amount accrues at the cycle's first accrual point
(to *unbilled*: it never changes). For a recurring fee recognized by day, use
the plan's ``base_fee`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.hookspecs import hookimpl
from ledger.pricing import Price, PriceLine, Usage, check_keys, decimal_param


@dataclass(frozen=True)
class FlatTerms:
    """A validated ``flat`` charge: the amount per cycle."""

    amount: Decimal


class FlatPricing:
    """``amount`` per cycle, independent of the quantity.

    >>> model = FlatPricing()
    >>> model.price(model.parse({"amount": "500.00"}), Usage(Decimal(0))).amount
    Decimal('500.00')
    """

    name = "flat"

    def parse(self, params: Mapping[str, Any]) -> FlatTerms:
        check_keys(params, required=("amount",))
        return FlatTerms(amount=decimal_param(params, "amount"))

    def price_is_final(self, terms: FlatTerms) -> bool:
        return True

    def bands(self, terms: FlatTerms) -> tuple[Decimal, ...]:
        return ()

    def price(self, terms: FlatTerms, usage: Usage) -> Price:
        return Price(terms.amount, (PriceLine("flat fee per cycle", Decimal(1), terms.amount, terms.amount),))


@hookimpl
def meterbook_pricing_models() -> list[FlatPricing]:
    """The ``flat`` model, registered through the same hook as any third-party model."""
    return [FlatPricing()]
