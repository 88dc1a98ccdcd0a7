"""Pricing helpers shared by test_pricing_models and test_mutation_kills."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ledger.plugins.percentage import PercentagePricing, PercentageTerms
from ledger.pricing import Band, Usage


def banded(model: PercentagePricing, terms: PercentageTerms, values: Sequence[Decimal]) -> Usage:
    """What the metering does in SQL: count and sum events per band (prev, upper]."""
    uppers: list[Decimal | None] = [*model.bands(terms), None]
    bands = []
    lower: Decimal | None = None
    for upper in uppers:
        inside = [
            v for v in values if (lower is None or v > lower) and (upper is None or v <= upper)
        ]
        bands.append(Band(upper, len(inside), sum(inside, Decimal(0))))
        lower = upper
    return Usage(sum(values, Decimal(0)), len(values), tuple(bands))
