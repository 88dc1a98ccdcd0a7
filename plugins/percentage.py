"""Percentage pricing: a rate of a money-valued property, with per-event fee, minimum and maximum.

A worked example (``rules/plans.yaml``, plan ``payments``; the meter sums the
``amount`` property of ``payment.processed`` events)::

    - meter: payment_volume
      model: percentage
      rate: "0.029"            # 2.9 % (a fraction, not a percent)
      fixed_fee: "0.30"        # optional, per event
      per_event_min: "0.50"    # optional
      per_event_max: "25.00"   # optional

    per event: clamp(0.029 × amount + 0.30, 0.50, 25.00)
      payment    5.00 → 0.029 ×    5.00 + 0.30 =  0.445 → 0.50  (minimum)
      payment  100.00 → 0.029 ×  100.00 + 0.30 =  3.20
      payment 1000.00 → 0.029 × 1000.00 + 0.30 = 29.30  → 25.00 (maximum)
                                                  total   28.70

The minimum and maximum apply per event, so the model cannot work from the sum
alone. It declares two thresholds on the per-event value (:meth:`bands`):
``(min − fee) ÷ rate`` and ``(max − fee) ÷ rate`` (6.896551724 and
851.724137931 here, floored to 9 decimal places, which is exact for values
with at most 9 places, as the store keeps them). The metering counts and sums
events per band in SQL, and::

    events at or below the first threshold   count × min
    events between the thresholds            rate × total + fee × count
    events above the last threshold          count × max

Without minimum and maximum no bands are needed: ``rate × quantity + fee ×
events``. Zero usage costs nothing. Per-event amounts never change once the
event is in, so accruals go to *unbilled*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ledger.hookspecs import hookimpl
from ledger.money import ZERO
from ledger.pricing import (
    VALUE_PLACES,
    Band,
    Price,
    PriceLine,
    PricingError,
    PricingModel,
    Usage,
    check_keys,
    decimal_param,
    format_quantity,
)

_PLACES = Decimal(1).scaleb(-VALUE_PLACES)


@dataclass(frozen=True)
class PercentageTerms:
    """A validated ``percentage`` charge."""

    rate: Decimal
    fixed_fee: Decimal = ZERO
    per_event_min: Decimal | None = None
    per_event_max: Decimal | None = None

    def per_event(self, value: Decimal) -> Decimal:
        """The amount for one event of ``value`` (the definition the bands reproduce)."""
        amount = self.rate * value + self.fixed_fee
        if self.per_event_min is not None:
            amount = max(amount, self.per_event_min)
        if self.per_event_max is not None:
            amount = min(amount, self.per_event_max)
        return amount

    @property
    def constant(self) -> Decimal | None:
        """The per-event amount when it does not depend on the value (rate 0, or min = max)."""
        if self.rate == 0:
            return self.per_event(ZERO)
        if self.per_event_min is not None and self.per_event_min == self.per_event_max:
            return self.per_event_min
        return None


class PercentagePricing:
    """``Σ clamp(rate × value + fixed_fee, per_event_min, per_event_max)`` over events.

    >>> model = PercentagePricing()
    >>> terms = model.parse({"rate": "0.029", "fixed_fee": "0.30"})
    >>> model.price(terms, Usage(Decimal("105.00"), events=2)).amount
    Decimal('3.64500')
    """

    name = "percentage"

    def parse(self, params: Mapping[str, Any]) -> PercentageTerms:
        check_keys(
            params, required=("rate",), optional=("fixed_fee", "per_event_min", "per_event_max")
        )
        rate = decimal_param(params, "rate")
        if rate > 1:
            raise PricingError(
                f'rate: {rate} is more than 100 %; write the rate as a fraction ("0.029" = 2.9 %)'
            )
        low = (
            decimal_param(params, "per_event_min")
            if params.get("per_event_min") is not None
            else None
        )
        high = (
            decimal_param(params, "per_event_max")
            if params.get("per_event_max") is not None
            else None
        )
        if low is not None and high is not None and low > high:
            raise PricingError(f"per_event_max: {high} is below per_event_min {low}")
        return PercentageTerms(
            rate=rate,
            fixed_fee=decimal_param(params, "fixed_fee", default=ZERO),
            per_event_min=low,
            per_event_max=high,
        )

    def price_is_final(self, terms: PercentageTerms) -> bool:
        return True

    def bands(self, terms: PercentageTerms) -> tuple[Decimal, ...]:
        if terms.constant is not None:
            return ()
        limits = [x for x in (terms.per_event_min, terms.per_event_max) if x is not None]
        # Floor to the store's 9 places: no 9-place value lies between the floored and
        # the exact threshold, so the banding is exact (an event exactly at a threshold
        # gets the same amount from either side).
        return tuple(
            ((limit - terms.fixed_fee) / terms.rate).quantize(_PLACES, rounding=ROUND_FLOOR)
            for limit in limits
        )

    def price(self, terms: PercentageTerms, usage: Usage) -> Price:
        if usage.events == 0 and usage.quantity == 0:
            return Price(ZERO)
        constant = terms.constant
        if constant is not None:
            events = Decimal(usage.events)
            return self._total(
                (
                    PriceLine(
                        f"{usage.events:,} events at {constant} each",
                        events,
                        constant,
                        events * constant,
                    ),
                )
            )
        thresholds = self.bands(terms)
        if not thresholds:
            return self._total(self._linear(terms, usage.quantity, usage.events))
        bands = usage.bands
        if tuple(b.upper for b in bands) != (*thresholds, None):
            if usage.events == 0:
                return Price(ZERO)
            raise PricingError(
                f"percentage: usage has bands {tuple(b.upper for b in bands)} but the terms need "
                f"{(*thresholds, None)} (the engine must count events by the model's bands)"
            )
        lines: list[PriceLine] = []
        rest: list[Band] = list(bands)
        if terms.per_event_min is not None:
            low = rest.pop(0)
            if low.count:
                lines.append(
                    PriceLine(
                        f"{low.count:,} events at the per-event minimum",
                        Decimal(low.count),
                        terms.per_event_min,
                        low.count * terms.per_event_min,
                    )
                )
        high = rest.pop() if terms.per_event_max is not None else None
        (middle,) = rest
        lines.extend(self._linear(terms, middle.total, middle.count))
        if high is not None and high.count and terms.per_event_max is not None:
            lines.append(
                PriceLine(
                    f"{high.count:,} events at the per-event maximum",
                    Decimal(high.count),
                    terms.per_event_max,
                    high.count * terms.per_event_max,
                )
            )
        return self._total(tuple(lines))

    @staticmethod
    def _linear(terms: PercentageTerms, total: Decimal, count: int) -> tuple[PriceLine, ...]:
        if count == 0 and total == 0:
            return ()
        lines = [
            PriceLine(
                f"{format_quantity(terms.rate * 100)} % of {format_quantity(total)}",
                total,
                terms.rate,
                terms.rate * total,
            )
        ]
        if terms.fixed_fee:
            lines.append(
                PriceLine(
                    f"fixed fee × {count:,} events",
                    Decimal(count),
                    terms.fixed_fee,
                    count * terms.fixed_fee,
                )
            )
        return tuple(lines)

    @staticmethod
    def _total(lines: tuple[PriceLine, ...]) -> Price:
        return Price(sum((line.amount for line in lines), ZERO), lines)


@hookimpl
def meterbook_pricing_models() -> list[PricingModel[PercentageTerms]]:
    """The ``percentage`` model, registered through the same hook as any third-party model."""
    return [PercentagePricing()]
