"""Credit notes and the prepaid-credit grants they reduce.

A credit note is issued once against an invoice (:meth:`ledger.session.Session.credit`)
and kept in the store with its parts (which lines, how much of it was deferred
revenue) and the tax it gives back; :func:`grant_reductions` turns the notes that
credit a prepaid grant into the reductions rating draws credit after.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, select

from ledger.events import dumps
from ledger.facts.invoices import Day, Tax
from ledger.money import ZERO
from ledger.store import credit_notes as credit_notes_table


@dataclass(frozen=True)
class GrantReduction:
    """Part of a prepaid credit grant a credit note took back, effective before ``day``'s draws.

    The grant is named as its invoice line names it: its ``granted`` date and its
    1-based ``ordinal`` among the customer's grants of that date (rules order),
    which is :func:`grant_key` ``"2026-09-01#1"``. The books debit the same
    ``amount`` to deferred revenue (:mod:`ledger.credit_notes`). A wallet top-up is named
    by its own key instead (``topup``: ``"topup:BANK-7"``, :mod:`ledger.topups`).
    """

    customer: str
    granted: date
    ordinal: int
    day: date
    amount: Decimal
    note: str = ""
    topup: str = ""

    @property
    def key(self) -> str:
        return self.topup or f"{self.granted.isoformat()}#{self.ordinal}"


@dataclass(frozen=True)
class CreditPart:
    """What a credit note credits on one invoice line, and where it is debited.

    ``deferred`` reverses revenue not yet recognized (debit deferred revenue);
    the rest, :attr:`revenue`, gives recognized revenue back (debit contra-revenue).
    ``line`` 0 is a forced amount beyond every line of the invoice.
    """

    line: int
    kind: str  # the invoice line's kind: usage, base_fee, credit_grant, …
    description: str
    amount: Decimal
    deferred: Decimal = ZERO
    grant: str = (
        ""  # credit_grant: the grant it takes back, ``"2026-09-01#1"`` (ledger.rating.grant_key)
    )
    cycle: str = ""  # advance base_fee: the cycle ``start/end`` whose recognition it reduces
    #: a discounted line (:mod:`ledger.discounts`): the discount the note's revenue part gives
    #: back with the gross, in proportion (credit contra-revenue ``discounts``, and debit
    #: ``credit_notes`` this much more); 0 on a line without discounts (absent from the JSON)
    discount: Decimal = ZERO

    @property
    def revenue(self) -> Decimal:
        return self.amount - self.deferred


@dataclass(frozen=True)
class CreditNote:
    """An issued credit note against one invoice (or one of its lines)."""

    number: str
    seq: int
    invoice: str
    customer: str
    date: date
    currency: str
    amount: Decimal
    reason: str
    line: int | None = None  # 1-based invoice line, or None for the invoice as a whole
    line_description: str = ""
    forced: bool = False  # issued with --force beyond the creditable amount or a grant's balance
    invoice_date: Day | None = None
    invoice_total: Decimal = ZERO
    credited_before: Decimal = ZERO  # earlier credit notes on the invoice
    #: the split over the invoice's lines; empty for notes issued before the split existed
    #: and for rerate's notes, which are contra-revenue in full
    parts: tuple[CreditPart, ...] = ()
    #: the share of the invoice's tax this note reverses (:func:`ledger.tax.credited_tax`);
    #: None on an untaxed invoice (absent from the JSON). ``parts`` split the rest.
    tax: Tax | None = None

    @property
    def tax_amount(self) -> Decimal:
        """The tax this note gives back (debited to the tax liability)."""
        return self.tax.amount if self.tax is not None else ZERO

    @property
    def deferred(self) -> Decimal:
        """The part debited to deferred revenue (the rest is contra-revenue)."""
        return sum((p.deferred for p in self.parts), ZERO)

    @property
    def discount(self) -> Decimal:
        """The discounts it reverses with the gross of the lines they discount."""
        return sum((p.discount for p in self.parts), ZERO)

    def to_json(self) -> str:
        data = asdict(self)
        for part in data["parts"]:  # a note on lines without discounts keeps its document
            if not part["discount"]:
                del part["discount"]
        out = {k: _text(v) for k, v in data.items()}
        if not self.parts:  # a note without a split keeps the document it always had
            del out["parts"]
        if self.tax is None:  # an untaxed invoice's note keeps the document it always had
            del out["tax"]
        else:
            out["tax"] = self.tax.to_dict()
        return dumps(out)

    @classmethod
    def from_json(cls, text: str) -> CreditNote:
        d = json.loads(text)
        parts = tuple(
            CreditPart(
                line=int(p["line"]),
                kind=p["kind"],
                description=p["description"],
                amount=Decimal(p["amount"]),
                deferred=Decimal(p["deferred"]),
                grant=p["grant"],
                cycle=p["cycle"],
                discount=Decimal(p.get("discount", "0")),
            )
            for p in d.get("parts", ())
        )
        return cls(
            number=d["number"],
            seq=int(d["seq"]),
            invoice=d["invoice"],
            customer=d["customer"],
            date=date.fromisoformat(d["date"]),
            currency=d["currency"],
            amount=Decimal(d["amount"]),
            reason=d["reason"],
            line=d["line"],
            line_description=d["line_description"],
            forced=d["forced"],
            invoice_date=date.fromisoformat(d["invoice_date"]) if d["invoice_date"] else None,
            invoice_total=Decimal(d["invoice_total"]),
            credited_before=Decimal(d["credited_before"]),
            parts=parts,
            tax=Tax.from_dict(d["tax"]) if d.get("tax") else None,
        )


def _text(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    return value


def load_credit_notes(engine: Engine) -> list[CreditNote]:
    """Every issued credit note, in number order."""
    with engine.connect() as conn:
        docs = conn.execute(
            select(credit_notes_table.c.document).order_by(credit_notes_table.c.seq)
        ).scalars()
        return [CreditNote.from_json(doc) for doc in docs]


def grant_reductions(notes: Sequence[CreditNote]) -> list[GrantReduction]:
    """What each note took back from a prepaid credit grant: its deferred part on a
    ``credit_grant`` line, from the note's date (what :func:`ledger.rating.rate` draws less)."""
    out = []
    for note in notes:
        for part in note.parts:
            if part.grant and part.deferred and ":" in part.grant:  # a wallet top-up
                out.append(
                    GrantReduction(
                        customer=note.customer,
                        granted=note.date,
                        ordinal=0,
                        day=note.date,
                        amount=part.deferred,
                        note=note.number,
                        topup=part.grant,
                    )
                )
            elif part.grant and part.deferred:
                granted, _, ordinal = part.grant.partition("#")
                out.append(
                    GrantReduction(
                        customer=note.customer,
                        granted=date.fromisoformat(granted),
                        ordinal=int(ordinal),
                        day=note.date,
                        amount=part.deferred,
                        note=note.number,
                    )
                )
    return out


def load_grant_reductions(engine: Engine) -> list[GrantReduction]:
    """:func:`grant_reductions` of every stored credit note."""
    return grant_reductions(load_credit_notes(engine))
