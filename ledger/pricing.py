"""The contract between rating and pricing plugins: typed, immutable records.

A pricing model turns a cumulative quantity for one charge and one billing cycle
into an unrounded amount with the breakdown behind it::

    graduated tiers  0–10,000 @ 0, 10,000–1,000,000 @ 0.0010, above @ 0.0005
    Usage(quantity=Decimal("25000"), events=25000)
    → Price(amount=Decimal("15.0000"), lines=(
          PriceLine("0 – 10000", 10000, 0, 0),
          PriceLine("10000 – 1000000", 15000, 0.0010, 15.0000)))

Models never round: the engine rounds the cumulative amount to the currency's
minor unit (half-even) and posts differences of rounded cumulatives.
A model is registered through the ``meterbook_pricing_models`` hook
(``ledger/hookspecs.py``); first-party models in ``plugins/`` use the same door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable


class PricingError(ValueError):
    """A charge's parameters are invalid. The engine prefixes plan, charge and line."""


@dataclass(frozen=True)
class Band:
    """Events whose per-event value lies in ``(previous upper, upper]``.

    ``upper`` is None for the last, open band. Only models that declare
    thresholds through :meth:`PricingModel.bands` receive bands.
    """

    upper: Decimal | None
    count: int
    total: Decimal


@dataclass(frozen=True)
class Usage:
    """A charge's cumulative usage in one cycle up to a cut-off.

    ``quantity`` is the meter's aggregate (count, sum, max, unique count or
    latest value); ``events`` the number of events behind it.
    """

    quantity: Decimal
    events: int = 0
    bands: tuple[Band, ...] = ()


@dataclass(frozen=True)
class PriceLine:
    """One line of the breakdown behind an amount (a tier, a package count, a band)."""

    description: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal


@dataclass(frozen=True)
class Price:
    """An unrounded amount and the lines that add up to it."""

    amount: Decimal
    lines: tuple[PriceLine, ...] = field(default=())


@runtime_checkable
class PricingModel(Protocol):
    """What a pricing plugin provides. See ``ledger/hookspecs.py`` for a full example."""

    #: The name plans use in ``model:``.
    name: str

    def parse(self, params: Mapping[str, Any]) -> Any:
        """Validate a charge's parameters; return an immutable terms object.

        Raise :class:`PricingError` with a message naming the bad key; the
        engine adds the file, plan, charge and line.
        """
        ...

    def price_is_final(self, terms: Any) -> bool:
        """True when earlier units' price can never change as more arrive.

        Final prices accrue to *unbilled*; non-final ones (volume tiers) to the
        *contract asset*, cleared by the invoice.
        """
        ...

    def bands(self, terms: Any) -> tuple[Decimal, ...]:
        """Per-event value thresholds the model needs counted (usually ``()``)."""
        ...

    def price(self, terms: Any, usage: Usage) -> Price:
        """Price the cumulative usage. Pure, deterministic, unrounded."""
        ...
