"""Currency minor units follow ISO 4217 (List One, published 2026-01-01) for every active currency.

The expected exponents are written out here from the ISO table, apart from the
package that supplies them, so a data update that moves one is caught. Worked
examples: 1000.5 BIF rounds half-even to 1000 (no minor unit); 0.12345 CLF to
0.1234 (four places, the 5 goes to the even 4); 1.0005 KWD to 1.000 (the 5 goes
to the even 0); 2.675 USD to 2.68.
"""

from __future__ import annotations

from decimal import Decimal

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.money import MINOR_UNITS, minor_units, round_money

#: ISO 4217 List One: the currencies whose minor unit is not 2.
ISO_ZERO = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
ISO_THREE = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
ISO_FOUR = {"CLF", "UYW"}
#: Codes ISO lists with minor unit "N.A." (precious metals, funds, test and no-currency codes).
ISO_NONE = {
    "XAG",
    "XAU",
    "XBA",
    "XBB",
    "XBC",
    "XBD",
    "XDR",
    "XPD",
    "XPT",
    "XSU",
    "XTS",
    "XUA",
    "XXX",
}


def test_every_active_iso_currency_has_its_iso_exponent() -> None:
    active = {c.code for c in iso4217.Currency}
    assert len(active) >= 170
    assert active >= ISO_ZERO | ISO_THREE | ISO_FOUR | ISO_NONE
    expected = {
        code: 0 if code in ISO_ZERO else 3 if code in ISO_THREE else 4 if code in ISO_FOUR else 2
        for code in active
    }
    assert {code: minor_units(code) for code in active} == expected
    assert set(MINOR_UNITS) == active - ISO_NONE


@pytest.mark.parametrize(
    ("code", "places"),
    [
        *[(c, 0) for c in ("BIF", "DJF", "GNF", "KMF", "RWF", "VUV", "XPF", "UYI", "JPY")],
        ("CLF", 4),
        ("UYW", 4),
        *[(c, 3) for c in ("BHD", "KWD", "OMR", "JOD", "IQD", "LYD", "TND")],
        ("USD", 2),
        ("EUR", 2),
        ("XAU", 2),
        ("CREDITS", 2),
    ],
)
def test_named_currencies(code: str, places: int) -> None:
    assert minor_units(code) == places


def test_worked_examples() -> None:
    assert round_money(Decimal("1000.5"), "BIF") == Decimal("1000")
    assert round_money(Decimal("0.12345"), "CLF") == Decimal("0.1234")
    assert round_money(Decimal("1.0005"), "KWD") == Decimal("1.000")
    assert round_money(Decimal("2.675"), "USD") == Decimal("2.68")


@given(
    st.sampled_from(sorted(MINOR_UNITS)),
    st.decimals(
        min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=6
    ),
)
def test_rounding_lands_on_the_minor_unit(code: str, amount: Decimal) -> None:
    rounded = round_money(amount, code)
    assert rounded.as_tuple().exponent == -MINOR_UNITS[code]
    assert abs(rounded - amount) <= Decimal(1).scaleb(-MINOR_UNITS[code]) / 2
