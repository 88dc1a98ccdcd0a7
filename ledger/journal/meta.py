"""Entry metadata: the one way to write it, and to read usage quantities back.

:func:`entry_meta` builds every generated entry's metadata (a ``<meterbook>``
filename, line 0, the given keys without the ``None`` ones).
``quantities`` metadata lists each meter's figure (``"api_calls=1234,storage_gb=12.5"``):
:func:`format_quantities` writes it, :func:`parse_quantities` and
:func:`entry_quantities` read it back (a hand-edited file gets a one-line error).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from beancount.core import data

from ledger.errors import BadInput

FLAG = "*"


def format_quantities(quantities: Iterable[tuple[str, Decimal]]) -> str:
    """The ``quantities`` metadata: ``meter=quantity`` pairs in the order given, fixed-point.

    >>> format_quantities([("api_calls", Decimal(1234)), ("storage_gb", Decimal("12.5"))])
    'api_calls=1234,storage_gb=12.5'
    """
    return ",".join(f"{meter}={format(quantity, 'f')}" for meter, quantity in quantities)


def parse_quantities(text: str) -> dict[str, Decimal]:
    """The inverse of :func:`format_quantities` (meter ids hold no ``,`` or ``=``).

    >>> parse_quantities("api_calls=1234,storage_gb=12.5")
    {'api_calls': Decimal('1234'), 'storage_gb': Decimal('12.5')}
    """
    out: dict[str, Decimal] = {}
    for item in text.split(","):
        meter, _, value = item.partition("=")
        try:
            number = Decimal(value)
        except ArithmeticError:
            number = Decimal("NaN")
        if not meter or not number.is_finite():
            raise ValueError(f"{item!r} is not meter=quantity")
        out[meter] = number
    return out


def usage_meta(quantities: Sequence[tuple[str, Decimal]]) -> dict[str, object]:
    """``meter`` and ``quantities`` for an entry naming these meters (none: neither key)."""
    if not quantities:
        return {}
    return {
        "meter": ",".join(m for m, _ in quantities),
        "quantities": format_quantities(quantities),
    }


def entry_quantities(entry: data.Transaction) -> dict[str, Decimal | None]:
    """Per meter an entry names: the quantity it records, None when it names the meter without one.

    Read from the transaction's ``quantities`` (every meter of ``meter``) and,
    for entries written before it existed, the revenue postings' ``quantity``.
    Cumulative on an accrual, the change on a late entry (``late: TRUE``).
    """
    meta = entry.meta or {}
    found: dict[str, Decimal | None] = {
        m: None for m in str(meta.get("meter") or "").split(",") if m
    }
    for p in entry.postings:
        meter, quantity = (p.meta or {}).get("meter"), (p.meta or {}).get("quantity")
        if isinstance(meter, str) and meter:
            found[meter] = quantity if isinstance(quantity, Decimal) else found.get(meter)
    listed = meta.get("quantities")
    if isinstance(listed, str):
        try:
            found.update(parse_quantities(listed))
        except ValueError as error:  # a hand-edited file: name the line, as bean-check would
            raise BadInput(
                f"{meta.get('filename', '<books>')}:{meta.get('lineno', 0)}: quantities: {error}"
            ) from None
    return found


def entry_meta(**values: object) -> dict[str, object]:
    return {
        "filename": "<meterbook>",
        "lineno": 0,
        **{k: v for k, v in values.items() if v is not None},
    }
