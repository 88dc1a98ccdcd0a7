"""Credit notes: an issued invoice reduced after the fact, numbered, documented, posted.

``meterbook credit INV-2026-000001 --amount 30.00 --reason "outage 2026-10-03"``
on a 100.00 USD invoice of which 80.00 is already paid leaves 20.00 unpaid, so
the credit note first cancels what is still owed and the rest becomes a refund
the vendor owes the customer (DESIGN's accounting table)::

    2026-10-28 * "acme" "Credit note CN-2026-000001 for INV-2026-000001" ^CN-2026-000001 ^INV-2026-000001 ^acme-2026-09-01
      customer: "acme"
      invoice: "INV-2026-000001"
      credit_note: "CN-2026-000001"
      reason: "outage 2026-10-03"
      Income:Credit-Notes                     30.00 USD
      Assets:Receivables:Invoiced:Acme       -20.00 USD
      Liabilities:Refunds:Acme               -10.00 USD
    2026-10-28 document Assets:Receivables:Invoiced:Acme "../documents/CN-2026-000001.html" ^CN-2026-000001

Numbers ``CN-YYYY-NNNNNN`` are sequential per workspace and never reused; the
note is a fact in the store's ``credit_notes`` table and its documents (HTML
for people, JSON for machines) live in ``books/documents/`` next to the
invoices'. Which part is unpaid is decided by :func:`ledger.payments.settle`
from the stored payments and notes, in date order, so the books come out the
same however often they are regenerated.

A note never credits more than the invoice's *creditable* amount (total −
earlier credit notes), nor with ``--line N`` more than that line's amount −
earlier notes on that line, unless ``--force`` (the excess is then a refund).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from beancount.core import data
from beancount.core.amount import Amount
from sqlalchemy import Engine, func, select

from ledger.errors import BadInput
from ledger.events import dumps
from ledger.invoicing import Invoice
from ledger.money import DecimalError, minor_units, parse_decimal
from ledger.payments import ZERO, invoice_links, settle
from ledger.posting import FLAG, _meta
from ledger.store import credit_notes as credit_notes_table
from ledger.store import invoices as invoices_table

if TYPE_CHECKING:
    from ledger.payments import Payment
    from ledger.rules import Rules

_Date = date  # the field named ``date`` shadows the type inside the class


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
    forced: bool = False  # issued with --force beyond the creditable amount
    invoice_date: _Date | None = None
    invoice_total: Decimal = ZERO
    credited_before: Decimal = ZERO  # earlier credit notes on the invoice

    def to_json(self) -> str:
        out = {k: _text(v) for k, v in asdict(self).items()}
        return dumps(out)

    @classmethod
    def from_json(cls, text: str) -> CreditNote:
        d = json.loads(text)
        return cls(number=d["number"], seq=int(d["seq"]), invoice=d["invoice"], customer=d["customer"],
                   date=date.fromisoformat(d["date"]), currency=d["currency"], amount=Decimal(d["amount"]),
                   reason=d["reason"], line=d["line"], line_description=d["line_description"],
                   forced=d["forced"],
                   invoice_date=date.fromisoformat(d["invoice_date"]) if d["invoice_date"] else None,
                   invoice_total=Decimal(d["invoice_total"]), credited_before=Decimal(d["credited_before"]))


def _text(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_credit_notes(engine: Engine) -> list[CreditNote]:
    """Every issued credit note, in number order."""
    with engine.connect() as conn:
        docs = conn.execute(select(credit_notes_table.c.document).order_by(credit_notes_table.c.seq)).scalars()
        return [CreditNote.from_json(doc) for doc in docs]


def parse_amount(text: str, currency: str) -> Decimal:
    """A positive amount in ``currency``'s minor units, from a decimal string.

    >>> parse_amount("30", "USD")
    Decimal('30.00')
    >>> parse_amount("0.001", "USD")
    Traceback (most recent call last):
    ledger.errors.BadInput: --amount: '0.001' has more than 2 decimal places for USD
    """
    try:
        amount = parse_decimal(text, where="--amount")
    except DecimalError as exc:
        raise BadInput(str(exc)) from None
    step = Decimal(1).scaleb(-minor_units(currency))
    if amount != amount.quantize(step):
        raise BadInput(f"--amount: {text!r} has more than {minor_units(currency)} decimal places for {currency}")
    if amount <= 0:
        raise BadInput(f"--amount: {text!r} must be positive")
    return amount.quantize(step)


def creditable(invoice: Invoice, earlier: Sequence[CreditNote], line: int | None = None) -> Decimal:
    """What may still be credited: total (or the line's amount) − earlier notes on it."""
    total = invoice.total - sum((n.amount for n in earlier if n.invoice == invoice.number), ZERO)
    if line is None:
        return total
    on_line = invoice.lines[line - 1].amount - sum(
        (n.amount for n in earlier if n.invoice == invoice.number and n.line == line), ZERO)
    return min(total, on_line)


def issue_credit_note(engine: Engine, invoice_number: str, *, amount: str, reason: str, on: date,
                      line: int | None = None, force: bool = False, first_open: date = date.min) -> CreditNote:
    """Check, number and store a credit note in one transaction; return it.

    Bad input (unknown invoice, bad amount, empty reason, a date before the
    invoice or in a sealed month, more than the creditable amount without
    ``force``) raises :class:`BadInput` and stores nothing.
    """
    reason = reason.strip()
    if not reason:
        raise BadInput("--reason: give the reason for the credit note (it is printed on it)")
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE credit_notes IN EXCLUSIVE MODE")
        doc = conn.execute(select(invoices_table.c.document)
                           .where(invoices_table.c.number == invoice_number)).scalar()
        if doc is None:
            raise BadInput(f"credit: {invoice_number!r} is not an issued invoice")
        invoice = Invoice.from_json(doc)
        value = parse_amount(amount, invoice.currency)
        if on < invoice.date:
            raise BadInput(f"--date: {on.isoformat()} is before {invoice.number}'s date {invoice.date.isoformat()}")
        if on < first_open:
            raise BadInput(f"--date: {on.isoformat()} is in a sealed month; corrections go in an open month "
                           f"(from {first_open.isoformat()})")
        if line is not None and not 1 <= line <= len(invoice.lines):
            raise BadInput(f"--line: {invoice.number} has lines 1 to {len(invoice.lines)}, not {line}")
        earlier = [CreditNote.from_json(d) for d in conn.execute(
            select(credit_notes_table.c.document).where(credit_notes_table.c.invoice == invoice.number)
            .order_by(credit_notes_table.c.seq)).scalars()]
        limit = creditable(invoice, earlier, line)
        if value > limit and not force:
            what = f"line {line} of {invoice.number}" if line is not None else invoice.number
            raise BadInput(f"credit: {value} {invoice.currency} is more than {what} can still be credited "
                           f"({max(limit, ZERO)} {invoice.currency}); use --force to credit it anyway")
        seq = (conn.execute(select(func.max(credit_notes_table.c.seq))).scalar() or 0) + 1
        note = CreditNote(
            number=f"CN-{on.year}-{seq:06d}", seq=seq, invoice=invoice.number, customer=invoice.customer, date=on,
            currency=invoice.currency, amount=value, reason=reason, line=line,
            line_description=invoice.lines[line - 1].description if line is not None else "",
            forced=value > limit, invoice_date=invoice.date, invoice_total=invoice.total,
            credited_before=sum((n.amount for n in earlier), ZERO))
        conn.execute(credit_notes_table.insert().values(
            number=note.number, seq=seq, invoice=note.invoice, customer=note.customer, date=on.isoformat(),
            currency=note.currency, amount=str(value), reason=reason, document=note.to_json()))
    return note


def credit_note_entries(notes: Sequence[CreditNote], invoices: Sequence[Invoice], payments: Sequence[Payment],
                        rules: Rules, documents_dir: str = "../documents") -> list[data.Directive]:
    """Per note: credit_notes / receivable (unpaid part) and refund_liability (paid part),
    dated the issue date, plus a ``document`` directive on the customer's receivable."""
    settled = settle(invoices, payments, notes)
    by_number = {inv.number: inv for inv in invoices}
    entries: list[data.Directive] = []
    for note in sorted(notes, key=lambda n: n.seq):
        s = settled[("credit_note", note.number)]
        invoice = by_number.get(note.invoice)
        receivable = rules.account("receivable", customer=note.customer)
        # A credit note is revenue given back: debit the contra-revenue account in full.
        postings = [data.Posting(rules.account("credit_notes"), Amount(note.amount, note.currency),
                                 None, None, None, None)]
        if s.applied:
            # The invoice is (partly) unpaid: the customer simply owes less.
            postings.append(data.Posting(receivable, Amount(-s.applied, note.currency), None, None, None, None))
        if s.rest:
            # The credited part was already paid (or exceeds the invoice, --force):
            # the vendor now owes it back to the customer, a refund liability.
            postings.append(data.Posting(rules.account("refund_liability", customer=note.customer),
                                         Amount(-s.rest, note.currency), None, None, None, None))
        links = frozenset({note.number, *(invoice_links(invoice) if invoice is not None else {note.invoice})})
        entries.append(data.Transaction(
            _meta(customer=note.customer, invoice=note.invoice, credit_note=note.number, reason=note.reason,
                  invoice_line=Decimal(note.line) if note.line is not None else None,
                  forced=True if note.forced else None),
            note.date, FLAG, note.customer, f"Credit note {note.number} for {note.invoice}", frozenset(), links,
            postings,
        ))
        entries.append(data.Document(_meta(), note.date, receivable, f"{documents_dir}/{note.number}.html",
                                     frozenset(), frozenset({note.number})))
    return entries


def credit_note_html(note: CreditNote, rules: Rules) -> str:
    """A self-contained HTML credit note."""
    from ledger.documents import _STYLE

    customer = rules.customers.get(note.customer)
    name = customer.name if customer and customer.name else note.customer
    what = f"line {note.line}: {note.line_description}" if note.line is not None else "invoice total"
    invoice_date = note.invoice_date.isoformat() if note.invoice_date else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(note.number)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Credit note {escape(note.number)}</h1>"
        f"<p class='meta'>{escape(name)} ({escape(note.customer)}) · dated {note.date.isoformat()}"
        f" · for invoice {escape(note.invoice)} of {invoice_date}</p>"
        "<table><thead><tr><th>Credited</th><th>Reason</th><th class='num'>Amount</th></tr></thead><tbody>"
        f"<tr><td>{escape(what)}</td><td>{escape(note.reason)}</td>"
        f"<td class='num'>{note.amount:,} {escape(note.currency)}</td></tr></tbody>"
        f"<tfoot><tr><td colspan='2'>Invoice total {note.invoice_total:,} · credited before "
        f"{note.credited_before:,} · this note</td><td class='num'>{note.amount:,} {escape(note.currency)}</td>"
        "</tr></tfoot></table></body></html>\n"
    )


def credit_note_documents(note: CreditNote, rules: Rules) -> dict[str, str]:
    """``{relative path under books/: content}`` for one credit note."""
    return {
        f"documents/{note.number}.html": credit_note_html(note, rules),
        f"documents/{note.number}.json": note.to_json() + "\n",
    }


def write_documents(books_dir: Path, note: CreditNote, rules: Rules) -> None:
    """Write a note's documents now (``post`` rewrites them identically)."""
    from ledger.books import write_atomic

    for relative, content in sorted(credit_note_documents(note, rules).items()):
        write_atomic(books_dir / relative, content)
