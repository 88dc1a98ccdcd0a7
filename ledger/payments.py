"""Payments: cash received, matched to issued invoices, posted cash / receivable.

A bank export (``importers/payments.py`` reads it, this module judges and stores it)::

    date,amount,currency,invoice,reference
    2026-10-20,60.00,USD,INV-2026-000001,BANK-1
    2026-10-25,70.00,USD,INV-2026-000001,BANK-2
    2026-10-26,15.00,USD,,BANK-3

With ``INV-2026-000001`` for acme at 100.00 USD, the first payment settles 60.00
of it; the second settles the 40.00 still open and the 30.00 beyond it is an
overpayment; the third names no invoice. DESIGN's accounting table gives::

    2026-10-20 * "acme" "Payment BANK-1 for INV-2026-000001" ^INV-2026-000001 ^acme-2026-09-01
      customer: "acme"
      invoice: "INV-2026-000001"
      reference: "BANK-1"
      Assets:Bank:Operating                   60.00 USD
      Assets:Receivables:Invoiced:Acme       -60.00 USD

    2026-10-25 * "acme" "Payment BANK-2 for INV-2026-000001" ^INV-2026-000001 ^acme-2026-09-01
      customer: "acme"
      invoice: "INV-2026-000001"
      reference: "BANK-2"
      unapplied: "overpayment"
      Assets:Bank:Operating                   70.00 USD
      Assets:Receivables:Invoiced:Acme       -40.00 USD
      Liabilities:Unapplied-Cash             -30.00 USD

    2026-10-26 * "Payment BANK-3 (unapplied: no invoice)"
      reference: "BANK-3"
      unapplied: "no_invoice"
      Assets:Bank:Operating                   15.00 USD
      Liabilities:Unapplied-Cash             -15.00 USD

Cash is always the bank's full amount (the operating account reconciles with
the bank statement); what cannot be applied to a receivable waits in
``unapplied_cash`` (a reconciliation finding until someone applies it).

**The settlement timeline.** How much of an invoice is open when a payment or a
credit note arrives is decided by one deterministic replay of the stored facts
(:func:`settle`), in date order; on the same day payments come before credit
notes (cash received that day is known when the note is written), payments by
reference, credit notes by number. An invoice's open amount is its total −
credit notes applied against the receivable − payments applied. Ingest order,
batch splits and re-runs never change it.

**Idempotent ingest.** A payment's key is its ``reference``: the same reference
with the same payload is a duplicate, with another payload a conflict kept in
``payment_conflicts`` (the first stored wins), exactly like usage events.
Rows that cannot be read are rejected with one reason (:data:`REASONS`).

**Sealed months.** A payment that arrives dated in a month already sealed is
generated there like any other; the session's catch-up
(:func:`ledger.posting.catch_up`) finds it missing from the sealed files and
posts it as a late adjustment on the first open day, with the invoice's links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from beancount.core import data
from beancount.core.amount import Amount
from sqlalchemy import Connection, Engine, select

from ledger.errors import BadInput
from ledger.events import dumps
from ledger.ingest import ImportReport, Rejected, ingest_records
from ledger.money import DecimalError, minor_units, parse_decimal
from ledger.posting import FLAG, _meta
from ledger.store import payment_conflicts
from ledger.store import payments as payments_table

if TYPE_CHECKING:
    from ledger.credit_notes import CreditNote
    from ledger.importers.payments import RawPayment
    from ledger.invoicing import Invoice
    from ledger.rules import Rules

ZERO = Decimal(0)
#: Reject reasons of a payments row, in the order they are checked (one per row).
REASONS = ("bad_encoding", "too_long", "bad_csv", "missing_field", "bad_date", "future_date", "bad_currency",
           "bad_number", "nonpositive_amount")
MAX_TEXT = 255
#: Why (part of) a payment went to unapplied cash, as written in its ``unapplied`` metadata.
UNAPPLIED = ("no_invoice", "unknown_invoice", "currency_mismatch", "overpayment")


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
        return dumps({"amount": str(self.amount), "currency": self.currency, "date": self.date.isoformat(),
                      "invoice": self.invoice, "reference": self.reference})

    def payload_hash(self) -> str:
        return hashlib.sha256(self.payload().encode()).hexdigest()


# --- judging a row ------------------------------------------------------------------------


def payment_of(raw: RawPayment, *, today: date) -> Payment:
    """The payment a readable row says, or :class:`ledger.ingest.Rejected` with one reason.

    >>> from ledger.importers.payments import RawPayment
    >>> payment_of(RawPayment(2, [], "2026-10-20", "60", "USD", "INV-2026-000001", "BANK-1"),
    ...            today=date(2026, 11, 1)).amount
    Decimal('60.00')
    >>> payment_of(RawPayment(3, [], "20/10/2026", "60", "USD", "", "BANK-2"), today=date(2026, 11, 1))
    Traceback (most recent call last):
    ledger.ingest.Rejected: ('bad_date', "date '20/10/2026' is not a date (YYYY-MM-DD)")
    """
    for name in ("date", "amount", "currency", "reference"):
        if not getattr(raw, name).strip():
            raise Rejected("missing_field", f"{name} is missing")
    reference, invoice = raw.reference.strip(), raw.invoice.strip()
    for name, text in (("reference", reference), ("invoice", invoice)):
        if len(text) > MAX_TEXT:
            raise Rejected("too_long", f"{name} is {len(text)} characters (at most {MAX_TEXT})")
    try:
        day = date.fromisoformat(raw.date.strip())
    except ValueError:
        raise Rejected("bad_date", f"date {raw.date!r} is not a date (YYYY-MM-DD)") from None
    if len(raw.date.strip()) != 10:
        raise Rejected("bad_date", f"date {raw.date!r} is not a date (YYYY-MM-DD)")
    if day > today + timedelta(days=1):
        raise Rejected("future_date", f"date {day.isoformat()} is in the future")
    currency = raw.currency.strip()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha() or not currency.isupper():
        raise Rejected("bad_currency", f"currency {raw.currency!r} is not an ISO 4217 code such as USD")
    try:
        amount = parse_decimal(raw.amount.strip(), where="amount")
    except DecimalError as exc:
        raise Rejected("bad_number", str(exc)) from None
    places = minor_units(currency)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise Rejected("bad_number", f"amount {raw.amount.strip()} has more than {places} decimal places "
                                     f"for {currency}")
    if amount <= 0:
        raise Rejected("nonpositive_amount", f"amount {raw.amount.strip()} is not positive "
                                             "(refunds paid out are not payments received)")
    return Payment(date=day, amount=amount.quantize(Decimal(1).scaleb(-places)), currency=currency,
                   invoice=invoice, reference=reference, line=raw.line)


# --- storing a file -----------------------------------------------------------------------


def _insert(conn: Connection, row: Mapping[str, Any]) -> bool:
    """Insert unless the reference is stored; True if this row was inserted."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(payments_table).on_conflict_do_nothing(index_elements=["reference"])
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(payments_table).on_conflict_do_nothing(index_elements=["reference"])
    else:  # any other engine: the whole file is one transaction, checked first
        if conn.execute(select(payments_table.c.pk).where(payments_table.c.reference == row["reference"])).first():
            return False
        conn.execute(payments_table.insert().values(**row))
        return True
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT that returns the key
    return conn.execute(stmt.values(**row).returning(payments_table.c.pk)).first() is not None


def store_file(engine: Engine, rules: Rules | None, path: Path, importer: Any, *, now: datetime,
               chunk_size: int = 0, progress: Callable[[int], None] | None = None,
               name: str = "") -> ImportReport:
    """Import one payments file in one transaction: every row accepted, duplicate,
    conflict or rejected (``received = accepted + duplicates + conflicts + rejected``).

    This is the ``payments`` entry of :data:`ledger.ingest.KINDS` (``rules`` are not
    needed: matching to invoices happens when the books are posted).
    """
    today = now.date()
    name = name or str(path)

    def store(conn: Connection, raw: RawPayment, batch_id: int) -> str:
        return _store_payment(conn, payment_of(raw, today=today), batch_id=batch_id, name=name, line=raw.line)

    return ingest_records(engine, path, importer, store, name=name, progress=progress)


def _store_payment(conn: Connection, payment: Payment, *, batch_id: int, name: str, line: int) -> str:
    """Store one payment; return ``accepted``, ``duplicates`` or ``conflicts``."""
    digest = payment.payload_hash()
    row = {"reference": payment.reference, "date": payment.date.isoformat(), "amount": str(payment.amount),
           "currency": payment.currency, "invoice": payment.invoice, "payload_hash": digest,
           "batch_id": batch_id, "file": name, "line": line}
    if _insert(conn, row):
        return "accepted"
    stored = conn.execute(select(payments_table.c.payload_hash)
                          .where(payments_table.c.reference == payment.reference)).scalar_one()
    if stored == digest:
        return "duplicates"
    # the first payment stored under a reference wins; the other one is kept aside, never lost
    conn.execute(payment_conflicts.insert().values(reference=payment.reference, stored_hash=stored,
                                                   payload_hash=digest, payload=payment.payload(),
                                                   batch_id=batch_id, file=name, line=line))
    return "conflicts"



def ingest_payments(engine: Engine, path: Path, *, now: datetime | None = None) -> ImportReport:
    """Import one payments CSV (``date,amount,currency,invoice,reference``) outside ``meterbook ingest``."""
    from ledger.importers.payments import PaymentsCsv

    importer = PaymentsCsv()
    with open(path, "rb") as file:
        from ledger.importers.events import HeaderError, Source

        try:
            importer.check(Source(file))
        except HeaderError as exc:
            raise BadInput(f"{path}: {exc}") from None
    return store_file(engine, None, path, importer, now=now or datetime.now(UTC))


# --- reading the store ------------------------------------------------------------------


def load_payments(engine: Engine) -> list[Payment]:
    """Every stored payment, in date then reference order."""
    cols = payments_table.c
    with engine.connect() as conn:
        rows = conn.execute(select(cols.date, cols.amount, cols.currency, cols.invoice, cols.reference,
                                   cols.file, cols.line)).all()
    found = [Payment(date=date.fromisoformat(d), amount=Decimal(a), currency=c, invoice=i, reference=r, file=f,
                     line=int(n)) for d, a, c, i, r, f, n in rows]
    return sorted(found, key=lambda p: (p.date, p.reference))


# --- the settlement timeline ------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """How one payment or credit note meets its invoice.

    For a payment ``applied`` goes to the receivable and ``rest`` to unapplied
    cash (``reason`` says why); for a credit note ``applied`` reduces the
    receivable and ``rest`` (the part already paid) is a refund owed.
    """

    kind: Literal["payment", "credit_note"]
    key: str  # payment reference or credit-note number
    applied: Decimal
    rest: Decimal
    reason: str = ""  # payments: one of UNAPPLIED when rest > 0
    invoice: Invoice | None = None


def settle(invoices: Sequence[Invoice], payments: Iterable[Payment],
           credit_notes: Iterable[CreditNote]) -> dict[tuple[str, str], Settlement]:
    """Replay payments and credit notes against the invoices' open amounts.

    Keys are ``("payment", reference)`` and ``("credit_note", number)``.
    """
    by_number = {inv.number: inv for inv in invoices}
    open_amount: dict[str, Decimal] = {inv.number: max(inv.total, ZERO) for inv in invoices}
    timeline: list[tuple[date, int, str, Payment | CreditNote]] = []
    for payment in payments:
        timeline.append((payment.date, 0, payment.reference, payment))
    for note in credit_notes:
        timeline.append((note.date, 1, f"{note.seq:012d}", note))
    out: dict[tuple[str, str], Settlement] = {}
    for _day, _order, _key, fact in sorted(timeline, key=lambda t: t[:3]):
        if isinstance(fact, Payment):
            out[("payment", fact.reference)] = _settle_payment(fact, by_number, open_amount)
            continue
        # A credit note first cancels what is still owed; the rest was paid already.
        invoice = by_number.get(fact.invoice)
        available = open_amount.get(fact.invoice, ZERO)
        applied = min(fact.amount, available)
        if invoice is not None:
            open_amount[fact.invoice] = available - applied
        out[("credit_note", fact.number)] = Settlement("credit_note", fact.number, applied,
                                                       fact.amount - applied, invoice=invoice)
    return out


def _settle_payment(payment: Payment, invoices: Mapping[str, Invoice],
                    open_amount: dict[str, Decimal]) -> Settlement:
    def unapplied(reason: str, invoice: Invoice | None = None) -> Settlement:
        return Settlement("payment", payment.reference, ZERO, payment.amount, reason, invoice)

    if not payment.invoice:
        return unapplied("no_invoice")
    invoice = invoices.get(payment.invoice)
    if invoice is None:
        return unapplied("unknown_invoice")
    if invoice.currency != payment.currency:
        return unapplied("currency_mismatch", invoice)
    available = open_amount[invoice.number]
    applied = min(payment.amount, available)
    open_amount[invoice.number] = available - applied
    rest = payment.amount - applied
    return Settlement("payment", payment.reference, applied, rest, "overpayment" if rest else "", invoice)


def invoice_links(invoice: Invoice) -> frozenset[str]:
    """The invoice's ``^INV-…`` link and its cycles' links."""
    return frozenset({invoice.number, *invoice.cycles})


def payment_entries(payments: Sequence[Payment], invoices: Sequence[Invoice], credit_notes: Sequence[CreditNote],
                    rules: Rules) -> list[data.Transaction]:
    """One transaction per payment, on its date (see the module docstring)."""
    settled = settle(invoices, payments, credit_notes)
    entries: list[data.Transaction] = []
    for payment in sorted(payments, key=lambda p: (p.date, p.reference)):
        s = settled[("payment", payment.reference)]
        invoice = s.invoice
        currency = payment.currency
        customer = invoice.customer if invoice is not None else None
        # The bank holds the whole amount whatever it settles: cash is debited in full.
        postings = [data.Posting(rules.account("cash"), Amount(payment.amount, currency), None, None, None, None)]
        if s.applied and customer is not None:
            # Matched to an issued invoice: the customer owes that much less.
            postings.append(data.Posting(rules.account("receivable", customer=customer),
                                         Amount(-s.applied, currency), None, None, None, None))
        if s.rest:
            # No invoice to apply it to (none named, unknown, another currency, or already
            # settled): held in unapplied cash until someone applies or refunds it.
            postings.append(data.Posting(rules.account("unapplied_cash"), Amount(-s.rest, currency),
                                         None, None, None, None))
        if s.rest and not s.applied:
            narration = f"Payment {payment.reference} (unapplied: {s.reason.replace('_', ' ')})"
        else:
            narration = f"Payment {payment.reference} for {payment.invoice}"
        entries.append(data.Transaction(
            _meta(customer=customer, invoice=payment.invoice or None, reference=payment.reference,
                  unapplied=s.reason or None),
            payment.date, FLAG, customer, narration, frozenset(),
            invoice_links(invoice) if invoice is not None else frozenset(), postings,
        ))
    return entries


def open_amounts(invoices: Sequence[Invoice], payments: Iterable[Payment],
                 credit_notes: Iterable[CreditNote]) -> dict[str, Decimal]:
    """Each invoice's amount still open after every payment and credit note given."""
    result = {inv.number: max(inv.total, ZERO) for inv in invoices}
    for (_kind, _key), s in settle(invoices, payments, credit_notes).items():
        if s.invoice is not None:
            result[s.invoice.number] -= s.applied
    return result

