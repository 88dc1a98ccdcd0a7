"""Issued facts: what the engine has issued or recorded, kept in the store, never recomputed.

Invoices, payments and cash applications, credit notes, debit adjustments, the plan
versions each invoiced cycle is pinned to, and the prepaid-credit grants reduced by
credit notes. Each module holds one kind of fact and its loader; :func:`load_facts`
reads all of them once, as a frozen :class:`IssuedFacts` that every later stage
(rating, accruals, drafting, the journal, documents) takes as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import Engine

from ledger.facts.adjustments import Adjustment, load_adjustments
from ledger.facts.credit_notes import (
    CreditNote,
    GrantReduction,
    grant_reductions,
    load_credit_notes,
)
from ledger.facts.invoices import Invoice, load_invoices
from ledger.facts.payments import CashApplication, Payment, load_applications, load_payments
from ledger.facts.pins import TermsPin, load_pins


@dataclass(frozen=True)
class IssuedFacts:
    """Everything issued or recorded, as the store held it when :func:`load_facts` read it."""

    invoices: tuple[Invoice, ...]
    payments: tuple[Payment, ...]
    applications: tuple[CashApplication, ...]
    credit_notes: tuple[CreditNote, ...]
    adjustments: tuple[Adjustment, ...]
    #: the plan version each invoiced cycle is pinned to, by cycle link
    pins: Mapping[str, TermsPin]

    @property
    def grant_reductions(self) -> list[GrantReduction]:
        """The prepaid-credit grants the credit notes reduced (rating draws what is left)."""
        return grant_reductions(self.credit_notes)

    @property
    def progress(self) -> dict[str, tuple[date, ...]]:
        """By cycle link, the days threshold invoices froze its accruals through
        (:attr:`Invoice.progress`): rating rates the cycle at them."""
        days: dict[str, set[date]] = {}
        for inv in self.invoices:
            for snap in inv.progress:
                days.setdefault(snap.link, set()).add(snap.through)
        return {link: tuple(sorted(d)) for link, d in days.items()}

    def through(self, day: date) -> IssuedFacts:
        """The facts dated on or before ``day`` (the pins stay: they name plan versions)."""
        return replace(
            self,
            invoices=tuple(i for i in self.invoices if i.date <= day),
            payments=tuple(p for p in self.payments if p.date <= day),
            applications=tuple(a for a in self.applications if a.date <= day),
            credit_notes=tuple(n for n in self.credit_notes if n.date <= day),
            adjustments=tuple(a for a in self.adjustments if a.date <= day),
        )


def load_facts(engine: Engine, *, issuing: tuple[Invoice, ...] = ()) -> IssuedFacts:
    """Every issued fact in the store, read once (with ``issuing``: invoices numbered but not
    yet committed, after the stored ones)."""
    return IssuedFacts(
        invoices=(*load_invoices(engine), *issuing),
        payments=tuple(load_payments(engine)),
        applications=tuple(load_applications(engine)),
        credit_notes=tuple(load_credit_notes(engine)),
        adjustments=tuple(load_adjustments(engine)),
        pins=load_pins(engine),
    )
