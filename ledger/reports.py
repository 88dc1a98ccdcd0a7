"""Reports over the rating and the books, as text lines or JSON lines.

``meterbook rate`` prints, per customer, cycle and charge::

    acme  2026-09-15/2026-10-15  api_calls  graduated  25000  15.00 USD
        0 – 10000: 10000 × 0 = 0
        10000 – 1000000: 15000 × 0.0010 = 15.0000
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from ledger.rating import Rating


def rated_lines(rating: Rating, *, as_json: bool = False) -> Iterator[str]:
    """The cycle-to-date rating of every cycle, one charge per line."""
    for rated in rating.latest():
        cycle = rated.cycle
        for charge in rated.charges:
            if as_json:
                yield json.dumps({
                    "customer": cycle.customer, "cycle": cycle.key, "plan": cycle.plan, "through": str(rated.through),
                    "charge": charge.index, "meter": charge.meter, "model": charge.model,
                    "quantity": str(charge.quantity), "amount": str(charge.amount), "currency": rated.currency,
                    "final": charge.final,
                    "tiers": [{"description": t.description, "quantity": str(t.quantity),
                               "unit_price": None if t.unit_price is None else str(t.unit_price),
                               "amount": str(t.amount)} for t in charge.lines],
                }, sort_keys=True)
            else:
                yield (f"{cycle.customer}  {cycle.key}  {charge.meter}  {charge.model}  "
                       f"{charge.quantity}  {charge.amount} {rated.currency}")
                for tier in charge.lines:
                    price = f" × {tier.unit_price}" if tier.unit_price is not None else ""
                    yield f"    {tier.description}: {tier.quantity}{price} = {tier.amount}"
        extras = []
        if rated.base_fee is not None:
            extras.append(f"base fee {rated.base_fee.recognized}/{rated.base_fee.billed} recognized")
        if rated.commitment_shortfall:
            extras.append(f"commitment shortfall {rated.commitment_shortfall}")
        if rated.credit_applied:
            extras.append(f"credit applied {rated.credit_applied}")
        if extras and not as_json:
            yield f"    {cycle.customer} {cycle.key}: " + "; ".join(extras) + f" {rated.currency}"
