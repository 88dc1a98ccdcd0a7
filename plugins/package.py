"""Package pricing: units sold in packages; a started package is a whole package.

A worked example (``rules/plans.yaml``, plan ``hybrid_eu``)::

    - meter: api_calls
      model: package
      package_size: 1000
      package_price: "0.50"
      included: 500          # optional: free units before the first package

    quantity 2,501 calls → 2,001 billable → ceil(2,001 / 1,000) = 3 packages × 0.50 = 1.50

Exactly 1,000 billable units are one package; 1,001 are two. Zero usage (or
usage within ``included``) costs nothing. A package's price never changes once
started, so accruals go to *unbilled*.
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
    Usage,
    check_keys,
    decimal_param,
    format_quantity,
)


@dataclass(frozen=True)
class PackageTerms:
    """A validated ``package`` charge."""

    package_size: Decimal
    package_price: Decimal
    included: Decimal = ZERO


class PackagePricing:
    """``ceil((quantity − included) / package_size) × package_price``.

    >>> model = PackagePricing()
    >>> terms = model.parse({"package_size": 1000, "package_price": "0.50"})
    >>> [model.price(terms, Usage(Decimal(q))).amount for q in (0, 1, 1000, 1001)]
    [Decimal('0'), Decimal('0.50'), Decimal('0.50'), Decimal('1.00')]
    """

    name = "package"

    def parse(self, params: Mapping[str, Any]) -> PackageTerms:
        check_keys(params, required=("package_size", "package_price"), optional=("included",))
        return PackageTerms(
            package_size=decimal_param(params, "package_size", positive=True),
            package_price=decimal_param(params, "package_price"),
            included=decimal_param(params, "included", default=ZERO),
        )

    def price_is_final(self, terms: PackageTerms) -> bool:
        return True

    def bands(self, terms: PackageTerms) -> tuple[Decimal, ...]:
        return ()

    def price(self, terms: PackageTerms, usage: Usage) -> Price:
        if usage.quantity <= 0:
            return Price(ZERO)
        lines: list[PriceLine] = []
        free = min(usage.quantity, terms.included)
        if free:
            lines.append(
                PriceLine(
                    f"first {format_quantity(terms.included)} units included", free, ZERO, ZERO
                )
            )
        billable = usage.quantity - free
        if billable > 0:
            # exact integer division: no rounding of a quotient can lose a package
            packages = billable // terms.package_size
            if billable % terms.package_size:
                packages += 1
            amount = packages * terms.package_price
            lines.append(
                PriceLine(
                    f"{format_quantity(billable)} units in {format_quantity(packages)} packages of "
                    f"{format_quantity(terms.package_size)}",
                    packages,
                    terms.package_price,
                    amount,
                )
            )
        return Price(sum((line.amount for line in lines), ZERO), tuple(lines))


@hookimpl
def meterbook_pricing_models() -> list[PricingModel[PackageTerms]]:
    """The ``package`` model, registered through the same hook as any third-party model."""
    return [PackagePricing()]
