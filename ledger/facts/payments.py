"""Payments and cash applications, as the store keeps them.

A payment is a bank line as imported (date, amount, currency, the invoice its
payer named, a unique reference); a cash application moves unapplied cash or a
credit balance onto an invoice, or refunds it. :mod:`ledger.payments` judges and
settles them; :mod:`ledger.journal.payments` posts them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from sqlalchemy import Engine, select

from ledger.events import dumps
from ledger.store import payments as payments_table


@dataclass(frozen=True)
class Payment:
    """One payment received, as stored (amount quantized to the currency's minor unit)."""

    date: date
    amount: Decimal
    currency: str
    invoice: str  # the invoice number it names, or ""
    reference: str  # the bank's / processor's unique reference: the idempotency key
    file: str = ""
    line: int = 0

    def payload(self) -> str:
        """Canonical JSON of what the payment says (not where it was read)."""
        return dumps(
            {
                "amount": str(self.amount),
                "currency": self.currency,
                "date": self.date.isoformat(),
                "invoice": self.invoice,
                "reference": self.reference,
            }
        )

    def payload_hash(self) -> str:
        return hashlib.sha256(self.payload().encode()).hexdigest()


def load_payments(engine: Engine) -> list[Payment]:
    """Every stored payment, in date then reference order."""
    cols = payments_table.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                cols.date,
                cols.amount,
                cols.currency,
                cols.invoice,
                cols.reference,
                cols.file,
                cols.line,
            )
        ).all()
    found = [
        Payment(
            date=date.fromisoformat(d),
            amount=Decimal(a),
            currency=c,
            invoice=i,
            reference=r,
            file=f,
            line=int(n),
        )
        for d, a, c, i, r, f, n in rows
    ]
    return sorted(found, key=lambda p: (p.date, p.reference))


@dataclass(frozen=True)
class CashApplication:
    """Cash already received, applied to an invoice or paid back, later (``meterbook apply`` /
    ``meterbook refund``; see :func:`application_entries` for the postings).

    ``source`` is what it draws on: a payment's reference (its unapplied cash) or a
    credit note's number (its credit balance, the refund liability).
    """

    reference: str
    kind: Literal["apply", "refund"]
    date: date
    source: str
    amount: Decimal
    currency: str
    invoice: str = ""  # apply: the invoice it pays


def load_applications(engine: Engine) -> list[CashApplication]:
    """Every stored application and refund, in date then reference order."""
    from ledger.store import cash_applications

    c = cash_applications.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.reference, c.kind, c.date, c.source, c.amount, c.currency, c.invoice)
        ).all()
    found = [
        CashApplication(
            reference=r,
            kind="refund" if k == "refund" else "apply",
            date=date.fromisoformat(d),
            source=s,
            amount=Decimal(a),
            currency=cur,
            invoice=i,
        )
        for r, k, d, s, a, cur, i in rows
    ]
    return sorted(found, key=lambda a: (a.date, a.reference))
