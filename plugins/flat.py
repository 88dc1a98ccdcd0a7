"""Flat fee: a fixed amount per cycle, whatever the usage.

A worked example (``rules/plans.yaml``, plan ``enterprise``)::

    - meter: tokens
      model: flat
      amount: "500.00"

    quantity 0 tokens           → 500.00
    quantity 12,000,000 tokens  → 500.00

A flat fee charges even at zero usage: it is the price of access to the meter
for the cycle, a stand-ready obligation satisfied over time. The model says so
with ``ratable = True``, and the engine bills and recognizes it as it does the
base fee: prorated by days for a cycle cut short (a start or end mid-cycle, a
plan change) and earned by day at each accrual point, to *unbilled* (the price
never changes with usage). A quarterly 92.00 from 2026-10-01::

    through 2026-10-31   31.00    (31 of 92 days)
    through 2026-11-30   61.00    (+30.00)
    through 2026-12-31   92.00    (+31.00; invoiced 2027-01-01: 92.00)

and a monthly 30.00 whose November cycle a plan change on the 11th cuts after
10 days bills ``flat fee per cycle, 10/30 days`` = 10.00.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.hookspecs import hookimpl
from ledger.pricing import Price, PriceLine, PricingModel, Usage, check_keys, decimal_param


@dataclass(frozen=True)
class FlatTerms:
    """A validated ``flat`` charge: the amount per cycle."""

    amount: Decimal


class FlatPricing:
    """``amount`` per full cycle, independent of the quantity (the engine prorates and recognizes
    it by day).

    >>> model = FlatPricing()
    >>> model.price(model.parse({"amount": "500.00"}), Usage(Decimal(0))).amount
    Decimal('500.00')
    """

    name = "flat"
    #: access over the cycle, not units: billed and recognized by day like the base fee
    ratable = True

    def parse(self, params: Mapping[str, Any]) -> FlatTerms:
        check_keys(params, required=("amount",))
        return FlatTerms(amount=decimal_param(params, "amount"))

    def price_is_final(self, terms: FlatTerms) -> bool:
        return True

    def bands(self, terms: FlatTerms) -> tuple[Decimal, ...]:
        return ()

    def price(self, terms: FlatTerms, usage: Usage) -> Price:
        return Price(
            terms.amount, (PriceLine("flat fee per cycle", Decimal(1), terms.amount, terms.amount),)
        )


@hookimpl
def meterbook_pricing_models() -> list[PricingModel[FlatTerms]]:
    """The ``flat`` model, registered through the same hook as any third-party model."""
    return [FlatPricing()]
