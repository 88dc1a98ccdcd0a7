"""The contract between rating and pricing plugins: typed, immutable records.

A pricing model turns a cumulative quantity for one charge and one billing cycle
into an unrounded amount with the breakdown behind it::

    graduated tiers  0–10,000 @ 0, 10,000–1,000,000 @ 0.0010, above @ 0.0005
    Usage(quantity=Decimal("25000"), events=25000)
    → Price(amount=Decimal("15.0000"), lines=(
          PriceLine("0 – 10,000", 10000, 0, 0),
          PriceLine("10,001 – 1,000,000", 15000, 0.0010, 15.0000)))

Models never round: the engine rounds the cumulative amount to the currency's
minor unit (half-even) and posts differences of rounded cumulatives.
A model is registered through the ``meterbook_pricing_models`` hook
(``ledger/hookspecs.py``); first-party models in ``plugins/`` use the same door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar, runtime_checkable

from ledger.money import ZERO


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


#: A pricing model's own terms type (what its :meth:`PricingModel.parse` returns).
Terms = TypeVar("Terms")


@runtime_checkable
class PricingModel(Protocol[Terms]):
    """What a pricing plugin provides. See ``ledger/hookspecs.py`` for a full example.

    Generic in the model's own terms type: ``class Flat`` implementing
    ``PricingModel[FlatTerms]`` parses to ``FlatTerms`` and prices from them, and mypy checks
    it so. The engine keeps the terms of many models side by side without looking into them
    (a charge's terms go back only to the model that parsed them), so its registry holds
    ``PricingModel[Any]``: the one place the terms type is erased.

    Optional attribute ``ratable`` (bool, False when absent; not part of the
    protocol's required members, so models written before it are unaffected):
    True says the price is for *access over the cycle*, not for units, like
    ``flat``. The engine then treats :meth:`price` as the amount for a full
    cycle and bills and recognizes it as it does the base fee: prorated by days
    for a cycle cut short by a start, end or plan change, and earned by day at
    each accrual point (cumulative ``round(billed × days elapsed ÷ days in
    cycle)``), so a quarterly 92.00 accrues 31.00, 30.00 and 31.00 over
    October to December instead of 92.00 at the first month end. Breakdown
    lines are prorated the same way (``flat fee per cycle, 61/92 days``).
    """

    #: The name plans use in ``model:``.
    name: str

    def parse(self, params: Mapping[str, Any]) -> Terms:
        """Validate a charge's parameters; return an immutable terms object.

        Raise :class:`PricingError` with a message naming the bad key; the
        engine adds the file, plan, charge and line.
        """
        ...

    def price_is_final(self, terms: Terms) -> bool:
        """True when earlier units' price can never change as more arrive.

        Final prices accrue to *unbilled*; non-final ones (volume tiers) to the
        *contract asset*, cleared by the invoice.
        """
        ...

    def bands(self, terms: Terms) -> tuple[Decimal, ...]:
        """Per-event value thresholds the model needs counted (usually ``()``)."""
        ...

    def price(self, terms: Terms, usage: Usage) -> Price:
        """Price the cumulative usage. Pure, deterministic, unrounded."""
        ...


# --- helpers for model authors -------------------------------------------------------
#
# Public, documented building blocks every pricing plugin may use (the first-party
# models in ``plugins/`` use nothing else): parameter checks with messages that name
# the key, tier tables, and the tier labels shown on invoices and statements.

#: Per-event values carry at most this many decimal places (see ``ledger.money``).
VALUE_PLACES = 9


@dataclass(frozen=True)
class Tier:
    """One row of a tier table: units up to ``up_to`` (inclusive; None = open-ended)."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_price: Decimal = ZERO


def check_keys(
    params: Mapping[str, Any],
    *,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    where: str = "",
) -> None:
    """Refuse unknown keys and report missing ones, naming the key.

    >>> check_keys({"unit_price": "1", "price": "2"}, required=("unit_price",))
    Traceback (most recent call last):
    ...
    ledger.pricing.PricingError: price: unknown key (known: unit_price)
    """
    if not isinstance(params, Mapping):
        raise PricingError(
            f"{where or 'parameters'}: expected a mapping, got {type(params).__name__}"
        )
    known = (*required, *optional)
    for key in params:
        if key not in known:
            raise PricingError(f"{where}{key}: unknown key (known: {', '.join(known)})")
    for key in required:
        if key not in params:
            raise PricingError(f"{where}{key}: required key is missing")


def decimal_param(
    params: Mapping[str, Any],
    key: str,
    *,
    default: Decimal | None = None,
    positive: bool = False,
    where: str = "",
) -> Decimal:
    """A non-negative (or strictly positive) decimal parameter; floats are refused.

    >>> decimal_param({"unit_price": "0.10"}, "unit_price")
    Decimal('0.10')
    >>> decimal_param({"unit_price": 0.1}, "unit_price")
    Traceback (most recent call last):
    ...
    ledger.pricing.PricingError: unit_price: expected a decimal string such as "0.1", got a float
    """
    from ledger.money import DecimalError, parse_decimal

    name = f"{where}{key}"
    if key not in params or params[key] is None:
        if default is None:
            raise PricingError(f"{name}: required key is missing")
        return default
    try:
        value = parse_decimal(params[key], where=name)
    except DecimalError as exc:
        raise PricingError(str(exc)) from None
    if positive and value <= 0:
        raise PricingError(f"{name}: must be greater than 0, got {value}")
    if value < 0:
        raise PricingError(f"{name}: must not be negative, got {value}")
    return value


def parse_tiers(params: Mapping[str, Any], key: str = "tiers") -> tuple[Tier, ...]:
    """Validate a tier table: ``up_to`` strictly increasing, the last tier open-ended.

    >>> tiers = [{"up_to": 10000, "unit_price": "0"}, {"unit_price": "0.001"}]
    >>> parse_tiers({"tiers": tiers})  # doctest: +NORMALIZE_WHITESPACE
    (Tier(up_to=Decimal('10000'), unit_price=Decimal('0'), flat_price=Decimal('0')),
     Tier(up_to=None, unit_price=Decimal('0.001'), flat_price=Decimal('0')))
    """
    rows = params.get(key)
    if rows is None:
        raise PricingError(f"{key}: required key is missing")
    if not isinstance(rows, list | tuple) or not rows:
        raise PricingError(f"{key}: expected a non-empty list of tiers")
    tiers: list[Tier] = []
    previous: Decimal = ZERO
    for i, row in enumerate(rows):
        where = f"{key}[{i}]."
        if not isinstance(row, Mapping):
            raise PricingError(f"{key}[{i}]: expected a mapping with up_to and unit_price")
        check_keys(row, optional=("up_to", "unit_price", "flat_price"), where=where)
        if "unit_price" not in row and "flat_price" not in row:
            raise PricingError(f"{key}[{i}]: needs unit_price or flat_price")
        last = i == len(rows) - 1
        up_to: Decimal | None = None
        if row.get("up_to") is not None:
            up_to = decimal_param(row, "up_to", positive=True, where=where)
            if up_to <= previous:
                raise PricingError(
                    f"{where}up_to: {up_to} must be greater than the previous tier's up_to "
                    f"{previous} (tiers go in increasing order)"
                )
            if last:
                raise PricingError(
                    f"{key}[{i}]: the last tier must be open-ended (no up_to) "
                    f"so that every quantity has a price; add {{unit_price: ...}} after it"
                )
            previous = up_to
        elif not last:
            raise PricingError(
                f"{where}up_to: required key is missing (only the last tier is open-ended)"
            )
        tiers.append(
            Tier(
                up_to=up_to,
                unit_price=decimal_param(row, "unit_price", default=ZERO, where=where),
                flat_price=decimal_param(row, "flat_price", default=ZERO, where=where),
            )
        )
    return tuple(tiers)


def format_quantity(value: Decimal) -> str:
    """Thousands separators, no exponent, no trailing zeros (``1000000`` → ``1,000,000``).

    >>> format_quantity(Decimal("1234567.50"))
    '1,234,567.5'
    """
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    whole, _, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-')):,}"
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def tier_label(lower: Decimal, upper: Decimal | None) -> str:
    """How a tier reads on an invoice: units ``(lower, upper]``.

    Whole-unit bounds read as unit numbers; fractional bounds as "over":

    >>> tier_label(Decimal(0), Decimal(10000))
    '0 – 10,000'
    >>> tier_label(Decimal(10000), Decimal(1000000))
    '10,001 – 1,000,000'
    >>> tier_label(Decimal(1000000), None)
    '1,000,001 and above'
    >>> tier_label(Decimal("2.5"), Decimal(10))
    'over 2.5 – 10'
    """
    if lower == 0:
        start = "0"
    elif lower == lower.to_integral_value():
        start = format_quantity(lower + 1)
    else:
        start = f"over {format_quantity(lower)}"
    if upper is None:
        return f"{start} and above"
    return f"{start} – {format_quantity(upper)}"
