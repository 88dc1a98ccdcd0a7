"""Wallet top-ups, as the store keeps them (:mod:`ledger.topups` judges and records them).

A top-up is prepaid credit bought on a day: ``BANK-7`` tops acme up by 50.00 USD on
2026-10-05, expiring 2027-10-05. It is a grant like the ``credits`` of customers.yaml,
named ``topup:BANK-7`` (:func:`ledger.rating.grant_key`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, select

from ledger.events import dumps
from ledger.store import topups as topups_table

Day = date  # the field ``TopUp.date`` shadows the type inside the class


@dataclass(frozen=True)
class TopUp:
    """One stored top-up (amount quantized to the currency's minor unit)."""

    reference: str  # the idempotency key: a payments row's reference or ``--reference``
    customer: str
    date: date
    amount: Decimal
    currency: str
    expires: Day | None = None
    source: str = ""  # ``file:line`` or ``command``

    @property
    def key(self) -> str:
        """The grant's name: ``topup:BANK-7``."""
        return f"topup:{self.reference}"

    def payload(self) -> str:
        """Canonical JSON of what the top-up says (not where it was read)."""
        return dumps(
            {
                "amount": str(self.amount),
                "currency": self.currency,
                "customer": self.customer,
                "date": self.date.isoformat(),
                "expires": self.expires.isoformat() if self.expires else "",
                "reference": self.reference,
            }
        )

    def payload_hash(self) -> str:
        return hashlib.sha256(self.payload().encode()).hexdigest()


def load_topups(engine: Engine) -> list[TopUp]:
    """Every stored top-up, in date then reference order."""
    c = topups_table.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.reference, c.customer, c.date, c.amount, c.currency, c.expires, c.source)
        ).all()
    found = [
        TopUp(
            reference=r,
            customer=cust,
            date=date.fromisoformat(d),
            amount=Decimal(a),
            currency=cur,
            expires=date.fromisoformat(e) if e else None,
            source=src,
        )
        for r, cust, d, a, cur, e, src in rows
    ]
    return sorted(found, key=lambda t: (t.date, t.reference))
