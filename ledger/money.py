"""Exact decimals: parsing amounts and quantities, rounding money, scaled storage.

No float ever stands between an input file and the books::

    >>> parse_decimal("0.10", where="plans.yaml: pro.charges[0].unit_price")
    Decimal('0.10')
    >>> round_money(Decimal("2.675"), "USD")      # half-even, on cumulative amounts only
    Decimal('2.68')
    >>> round_money(Decimal("1234.5"), "JPY")
    Decimal('1234')
    >>> to_units_nanos(Decimal("12.5"))           # how the store keeps a number exactly
    (12, 500000000)
    >>> from_units_nanos(12, 500000000)
    Decimal('12.5')

Quantities are stored as two integers, whole units and nanounits (``0 <= nanos <
10**9``), so SQL ``SUM`` on both columns is exact on every engine (SQLite has no
decimal type) and the range reaches far beyond 10**15 units.

**Magnitude.** Every number read from a rules file, a flag or an input row is at
most ``MAX_MAGNITUDE`` = 10**15 (one quadrillion) in absolute value: more than
any invoice amount needs, and far enough inside the store's 64-bit whole-unit
column (9.2 × 10**18) that thousands of such quantities still sum exactly.
A larger value is a :class:`DecimalError` naming where it came from::

    >>> where = "plans.yaml: pro.base_fee.amount"
    >>> parse_decimal("1e400", where=where)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ledger.money.DecimalError: plans.yaml: pro.base_fee.amount: '1e400' is too large
        (at most 10**15 in absolute value)
"""

from __future__ import annotations

import decimal
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

import iso4217

#: The one zero of money and quantities (``Decimal(0)``), imported everywhere.
ZERO = Decimal(0)

NANO = 10**9
#: The largest absolute value an amount, price or quantity read from input may have.
MAX_MAGNITUDE = Decimal(10) ** 15
#: Quantities carry at most this many decimal places.
QUANTITY_PLACES = 9
#: Minor units of every active ISO 4217 currency, from the ISO 4217 maintenance agency's
#: published table (List One) as shipped by the ``iso4217`` package: ``MINOR_UNITS["BHD"] == 3``,
#: ``MINOR_UNITS["CLF"] == 4``, ``MINOR_UNITS["XPF"] == 0``. Codes ISO gives no minor unit
#: ("N.A.": gold XAU, SDR XDR, XXX …) and codes that are not ISO 4217 are not in the table:
#: :func:`minor_units` gives them 2.
MINOR_UNITS: dict[str, int] = {
    c.code: c.exponent for c in iso4217.Currency if c.exponent is not None
}
#: The minor unit of a currency ISO 4217 does not give one for.
DEFAULT_MINOR_UNITS = 2

# Wide enough that no product or sum of quantities and prices is ever rounded by
# the context itself: rounding happens only in round_money().
CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_EVEN, Emax=999999, Emin=-999999)
decimal.setcontext(CONTEXT)
decimal.DefaultContext.prec = CONTEXT.prec


class DecimalError(ValueError):
    """A value is not an exact decimal (float, NaN, infinity, garbage)."""


def parse_decimal(value: object, *, where: str = "value") -> Decimal:
    """Parse a decimal from a string, int or Decimal; refuse floats, NaN and infinity."""
    if isinstance(value, bool):
        raise DecimalError(f"{where}: expected a decimal string, got a boolean")
    if isinstance(value, float):
        raise DecimalError(f'{where}: expected a decimal string such as "{value}", got a float')
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise DecimalError(f"{where}: {value!r} is not a decimal number") from None
    else:
        raise DecimalError(f"{where}: expected a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise DecimalError(f"{where}: {value!r} is not a finite number")
    if not within_magnitude(result):
        raise DecimalError(f"{where}: {value!r} is too large (at most 10**15 in absolute value)")
    return result


def within_magnitude(value: Decimal) -> bool:
    """True when ``|value| <= MAX_MAGNITUDE`` (checked on the exponent first: ``1e999999`` is
    cheap)."""
    if value.adjusted() > 15:
        return False
    return abs(value) <= MAX_MAGNITUDE


def minor_units(currency: str) -> int:
    """Decimal places of a currency's minor unit, as ISO 4217 lists it.

    >>> minor_units("USD"), minor_units("JPY"), minor_units("KWD"), minor_units("CLF")
    (2, 0, 3, 4)
    >>> minor_units("XAU"), minor_units("CREDITS")   # no ISO minor unit: 2
    (2, 2)
    """
    return MINOR_UNITS.get(currency, DEFAULT_MINOR_UNITS)


def quantum(currency: str) -> Decimal:
    """The smallest amount of a currency as a Decimal exponent (USD → 0.01)."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor unit. Use on cumulative amounts only."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_EVEN)


def to_units_nanos(value: Decimal) -> tuple[int, int]:
    """Split a decimal with at most 9 places into (floor units, nanos in [0, 1e9))."""
    units = int(value.to_integral_value(rounding=ROUND_FLOOR))
    nanos_dec = (value - units) * NANO
    nanos = int(nanos_dec)
    if nanos != nanos_dec:
        raise DecimalError(f"{value} has more than {QUANTITY_PLACES} decimal places")
    return units, nanos


def from_units_nanos(units: int | Decimal | None, nanos: int | Decimal | None) -> Decimal:
    """Join SQL sums of the two columns back into one exact Decimal."""
    total = Decimal(int(units or 0)) + Decimal(int(nanos or 0)).scaleb(-QUANTITY_PLACES)
    return normalize(total)


def normalize(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to an exponent (``12.500`` → ``12.5``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()
