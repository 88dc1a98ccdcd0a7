"""Debit adjustments: the increases a rerate recorded on issued invoice lines.

A rerate that finds a line now worth more records the difference in the store's
``rerates`` table; the next invoice bills it (:func:`ledger.invoicing.bill_debit_adjustments`)
and the journal posts it (:mod:`ledger.journal.adjustments`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, select

from ledger.facts.invoices import Day
from ledger.store import rerates


@dataclass(frozen=True)
class Adjustment:
    """One invoice line changed by a rerate run, as stored, with the document carrying it."""

    run: int
    document: str  # CN-… (a decrease) or DA-… (an increase)
    customer: str
    invoice: str
    line: int
    line_key: str
    kind: str
    meter: str
    link: str
    cycle: str
    currency: str
    invoiced: Decimal
    rerated: Decimal
    amount: Decimal
    date: date
    since: Day
    rules: str

    @property
    def label(self) -> str:
        return _label(self.line_key)


def load_adjustments(engine: Engine) -> list[Adjustment]:
    """Every stored rerate line, in the order they were recorded."""
    c = rerates.c
    with engine.connect() as conn:
        rows = conn.execute(select(rerates).order_by(c.id)).all()
    return [
        Adjustment(
            run=r.run,
            document=r.document,
            customer=r.customer,
            invoice=r.invoice,
            line=r.line,
            line_key=r.line_key,
            kind=r.kind,
            meter=r.meter,
            link=r.link,
            cycle=r.cycle,
            currency=r.currency,
            invoiced=Decimal(r.invoiced),
            rerated=Decimal(r.rerated),
            amount=Decimal(r.amount),
            date=date.fromisoformat(r.date),
            since=date.fromisoformat(r.since),
            rules=r.rules,
        )
        for r in rows
    ]


def _label(line_key: str) -> str:
    kind, _, rest = line_key.partition(":")
    if kind == "usage":
        return rest
    if kind == "commitment":
        return "minimum commitment"
    return f"base fee ({rest or 'arrears'})"


def by_document(adjustments: Iterable[Adjustment], prefix: str) -> dict[str, list[Adjustment]]:
    groups: dict[str, list[Adjustment]] = defaultdict(list)
    for adj in adjustments:
        if adj.document.startswith(prefix):
            groups[adj.document].append(adj)
    return groups
