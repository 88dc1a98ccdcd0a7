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
(:func:`ledger.journal.sealed.catch_up`) finds it missing from the sealed files and
posts it as a late adjustment on the first open day, with the invoice's links.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, Engine, select

from ledger.errors import BadInput
from ledger.events import parse_day, parse_number
from ledger.facts.payments import CashApplication, Payment
from ledger.ingest import ImportReport, Rejected, ingest_records
from ledger.money import ZERO, minor_units
from ledger.store import payment_conflicts
from ledger.store import payments as payments_table

if TYPE_CHECKING:
    from ledger.facts import IssuedFacts
    from ledger.facts.credit_notes import CreditNote
    from ledger.facts.invoices import Invoice
    from ledger.importers.payments import RawPayment
    from ledger.rules import Rules

#: Reject reasons of a payments row, in the order they are checked (one per row).
REASONS = (
    "bad_encoding",
    "too_long",
    "bad_csv",
    "missing_field",
    "bad_date",
    "future_date",
    "bad_currency",
    "bad_number",
    "nonpositive_amount",
    # a ``topup`` row (ledger.topups)
    "bad_kind",
    "unknown_customer",
    "currency_mismatch",
    "sealed_month",
)
MAX_TEXT = 255
#: Why (part of) a payment went to unapplied cash, as written in its ``unapplied`` metadata.
UNAPPLIED = ("no_invoice", "unknown_invoice", "currency_mismatch", "overpayment")


# --- judging a row ------------------------------------------------------------------------


def payment_of(raw: RawPayment, *, today: date) -> Payment:
    """The payment a readable row says, or :class:`ledger.ingest.Rejected` with one reason.

    >>> from ledger.importers.payments import RawPayment
    >>> payment_of(RawPayment(2, [], "2026-10-20", "60", "USD", "INV-2026-000001", "BANK-1"),
    ...            today=date(2026, 11, 1)).amount
    Decimal('60.00')
    >>> payment_of(RawPayment(3, [], "20/10/2026", "60", "USD", "", "BANK-2"),
    ...            today=date(2026, 11, 1))
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
        day = parse_day(raw.date)  # YYYY-MM-DD, 1970-01-01 or later
    except ValueError as exc:
        raise Rejected("bad_date", f"date {exc}") from None
    if day > today + timedelta(days=1):
        raise Rejected("future_date", f"date {day.isoformat()} is in the future")
    currency = raw.currency.strip()
    if (
        len(currency) != 3
        or not currency.isascii()
        or not currency.isalpha()
        or not currency.isupper()
    ):
        raise Rejected(
            "bad_currency", f"currency {raw.currency!r} is not an ISO 4217 code such as USD"
        )
    try:
        amount = parse_number(raw.amount)  # plain digits, at most 10**15
    except ValueError as exc:
        raise Rejected("bad_number", f"amount: {exc}") from None
    places = minor_units(currency)
    exponent = amount.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and -exponent > places
        and amount != amount.quantize(Decimal(1).scaleb(-places))
    ):
        raise Rejected(
            "bad_number",
            f"amount {raw.amount.strip()} has more than {places} decimal places for {currency}",
        )
    if amount <= 0:
        raise Rejected(
            "nonpositive_amount",
            f"amount {raw.amount.strip()} is not positive "
            "(refunds paid out are not payments received)",
        )
    return Payment(
        date=day,
        amount=amount.quantize(Decimal(1).scaleb(-places)),
        currency=currency,
        invoice=invoice,
        reference=reference,
        line=raw.line,
    )


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
        if conn.execute(
            select(payments_table.c.pk).where(payments_table.c.reference == row["reference"])
        ).first():
            return False
        conn.execute(payments_table.insert().values(**row))
        return True
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT that returns the key
    return conn.execute(stmt.values(**row).returning(payments_table.c.pk)).first() is not None


def store_file(
    engine: Engine,
    rules: Rules | None,
    path: Path,
    importer: Any,
    *,
    now: datetime,
    chunk_size: int = 0,
    progress: Callable[[int], None] | None = None,
    name: str = "",
    first_open: date = date.min,
    today: date | None = None,
) -> ImportReport:
    """Import one payments file in one transaction: every row accepted, duplicate,
    conflict or rejected (``received = accepted + duplicates + conflicts + rejected``).

    This stores the ``payments`` kind (:mod:`ledger.plugins.record_kinds`; ``rules`` are not
    needed for payments: matching to invoices happens when the books are posted). A
    ``topup`` row is a wallet top-up (:mod:`ledger.topups`), judged against ``rules``,
    ``today`` (the workspace's; default ``now``'s date) and ``first_open`` (the first
    day not sealed): one after today or in a sealed month is rejected.
    """
    name = name or str(path)

    def store(conn: Connection, raw: RawPayment, batch_id: int) -> str:
        kind = raw.kind.strip()
        if kind == "topup":
            return _store_topup(
                conn,
                raw,
                rules,
                batch_id=batch_id,
                name=name,
                now=now,
                today=today or now.date(),
                first_open=first_open,
            )
        if kind not in ("", "payment"):
            raise Rejected("bad_kind", f"kind {kind!r} is not payment or topup")
        return _store_payment(
            conn, payment_of(raw, today=now.date()), batch_id=batch_id, name=name, line=raw.line
        )

    return ingest_records(engine, path, importer, store, name=name, progress=progress)


def _store_payment(
    conn: Connection, payment: Payment, *, batch_id: int, name: str, line: int
) -> str:
    """Store one payment; return ``accepted``, ``duplicates`` or ``conflicts``."""
    digest = payment.payload_hash()
    row = {
        "reference": payment.reference,
        "date": payment.date.isoformat(),
        "amount": str(payment.amount),
        "currency": payment.currency,
        "invoice": payment.invoice,
        "payload_hash": digest,
        "batch_id": batch_id,
        "file": name,
        "line": line,
    }
    if _insert(conn, row):
        return "accepted"
    stored = conn.execute(
        select(payments_table.c.payload_hash).where(payments_table.c.reference == payment.reference)
    ).scalar_one()
    if stored == digest:
        return "duplicates"
    # the first payment stored under a reference wins; the other one is kept aside, never lost
    conn.execute(
        payment_conflicts.insert().values(
            reference=payment.reference,
            stored_hash=stored,
            payload_hash=digest,
            payload=payment.payload(),
            batch_id=batch_id,
            file=name,
            line=line,
        )
    )
    return "conflicts"


def ingest_payments(engine: Engine, path: Path, *, now: datetime | None = None) -> ImportReport:
    """Import one payments CSV (``date,amount,currency,invoice,reference``) outside
    ``meterbook ingest``."""
    from ledger.importers.payments import PaymentsCsv

    importer = PaymentsCsv()
    with open(path, "rb") as file:
        from ledger.importers.events import HeaderError, Source

        try:
            importer.check(Source(file))
        except HeaderError as exc:
            raise BadInput(f"{path}: {exc}") from None
    return store_file(engine, None, path, importer, now=now or datetime.now(UTC))


def _store_topup(
    conn: Connection,
    raw: RawPayment,
    rules: Rules | None,
    *,
    batch_id: int,
    name: str,
    now: datetime,
    today: date,
    first_open: date,
) -> str:
    """Judge and store a ``topup`` row: the top-up only (its invoice is billed by
    ``meterbook invoice`` and paid like any other; the row records no cash)."""
    from ledger.facts.topups import TopUp
    from ledger.store import topups
    from ledger.topups import problem, store_topup

    if not raw.customer.strip():
        raise Rejected("missing_field", "customer is missing (a topup row names its customer)")
    if raw.invoice.strip():
        raise Rejected("bad_kind", "a topup row names no invoice (its own is issued for it)")
    # date, amount, currency and reference are read as a payment's
    payment = payment_of(raw, today=today + timedelta(days=1))
    expires = None
    if raw.expires.strip():
        try:
            expires = parse_day(raw.expires)
        except ValueError as exc:
            raise Rejected("bad_date", f"expires {exc}") from None
    topup = TopUp(
        reference=payment.reference,
        customer=raw.customer.strip(),
        date=payment.date,
        amount=payment.amount,
        currency=payment.currency,
        expires=expires,
        source=f"{name}:{raw.line}",
    )
    if rules is None:
        raise Rejected("unknown_customer", "no rules to check the customer against")
    found = problem(rules, topup, today=today, first_open=first_open)
    if found is not None:
        raise Rejected(*found)
    outcome = store_topup(conn, topup, now=now)
    if outcome == "conflicts":  # kept aside, never lost, like a payment's
        conn.execute(
            payment_conflicts.insert().values(
                reference=topup.reference,
                stored_hash=conn.execute(
                    select(topups.c.payload_hash).where(topups.c.reference == topup.reference)
                ).scalar_one(),
                payload_hash=topup.payload_hash(),
                payload=topup.payload(),
                batch_id=batch_id,
                file=name,
                line=raw.line,
            )
        )
    return outcome


# --- reading the store ------------------------------------------------------------------


# --- the settlement timeline ------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """How one payment or credit note meets its invoice.

    For a payment ``applied`` goes to the receivable and ``rest`` to unapplied
    cash (``reason`` says why); for a credit note ``applied`` reduces the
    receivable and ``rest`` (the part already paid) is a refund owed.
    """

    kind: Literal["payment", "credit_note", "application"]
    key: str  # payment reference or credit-note number
    applied: Decimal
    rest: Decimal
    reason: str = ""  # payments: one of UNAPPLIED when rest > 0
    invoice: Invoice | None = None


def settle(
    invoices: Sequence[Invoice],
    payments: Iterable[Payment],
    credit_notes: Iterable[CreditNote],
    applications: Iterable[CashApplication] = (),
) -> dict[tuple[str, str], Settlement]:
    """Replay payments, credit notes and cash applications against the invoices' open amounts.

    Keys are ``("payment", reference)``, ``("credit_note", number)`` and
    ``("application", reference)``; what each source still holds afterwards is
    :func:`outstanding`.
    """
    return _replay(invoices, payments, credit_notes, applications)[0]


def outstanding(
    invoices: Sequence[Invoice],
    payments: Iterable[Payment],
    credit_notes: Iterable[CreditNote],
    applications: Iterable[CashApplication] = (),
) -> dict[str, Decimal]:
    """Per payment reference its unapplied cash, per credit note number its credit balance
    (refund liability), per negative invoice number its customer's credit (in the receivable),
    after every application and refund given; sources holding 0 included."""
    return _replay(invoices, payments, credit_notes, applications)[1]


def _replay(
    invoices: Sequence[Invoice],
    payments: Iterable[Payment],
    credit_notes: Iterable[CreditNote],
    applications: Iterable[CashApplication],
) -> tuple[dict[tuple[str, str], Settlement], dict[str, Decimal]]:
    by_number = {inv.number: inv for inv in invoices}
    open_amount: dict[str, Decimal] = {inv.number: max(inv.total, ZERO) for inv in invoices}
    timeline: list[tuple[date, int, str, Payment | CreditNote | CashApplication]] = []
    for payment in payments:
        timeline.append((payment.date, 0, payment.reference, payment))
    for note in credit_notes:
        timeline.append((note.date, 1, f"{note.seq:012d}", note))
    for application in applications:  # the same day: after the cash and notes it draws on
        timeline.append((application.date, 2, application.reference, application))
    out: dict[tuple[str, str], Settlement] = {}
    left: dict[str, Decimal] = {}  # what each payment / credit note still holds for its payer
    for inv in invoices:  # a negative invoice (a cycle billed less than its threshold invoices)
        if inv.total < 0:  # holds its customer's credit, in the receivable, from its date
            left[inv.number] = -inv.total
    for _day, _order, _key, fact in sorted(timeline, key=lambda t: t[:3]):
        if isinstance(fact, Payment):
            settled = _settle_payment(fact, by_number, open_amount)
            out[("payment", fact.reference)] = settled
            left[fact.reference] = settled.rest
            continue
        if isinstance(fact, CashApplication):
            out[("application", fact.reference)] = _settle_application(
                fact, by_number, open_amount, left
            )
            continue
        # A credit note first cancels what is still owed; the rest was paid already.
        invoice = by_number.get(fact.invoice)
        available = open_amount.get(fact.invoice, ZERO)
        applied = min(fact.amount, available)
        if invoice is not None:
            open_amount[fact.invoice] = available - applied
        out[("credit_note", fact.number)] = Settlement(
            "credit_note", fact.number, applied, fact.amount - applied, invoice=invoice
        )
        left[fact.number] = fact.amount - applied
    return out, left


def _settle_application(
    application: CashApplication,
    invoices: Mapping[str, Invoice],
    open_amount: dict[str, Decimal],
    left: dict[str, Decimal],
) -> Settlement:
    """An application pays at most what its source still holds and its invoice still owes
    (``rest``: what it could not apply, left at the source); a refund is paid out in full."""
    available = left.get(application.source, ZERO)
    if application.kind == "refund":
        left[application.source] = available - application.amount
        return Settlement("application", application.reference, application.amount, ZERO)
    invoice = invoices.get(application.invoice)
    owed = open_amount.get(application.invoice, ZERO) if invoice is not None else ZERO
    applied = max(min(application.amount, available, owed), ZERO)
    if invoice is not None:
        open_amount[application.invoice] = owed - applied
    left[application.source] = available - applied
    return Settlement(
        "application", application.reference, applied, application.amount - applied, invoice=invoice
    )


def _settle_payment(
    payment: Payment, invoices: Mapping[str, Invoice], open_amount: dict[str, Decimal]
) -> Settlement:
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
    return Settlement(
        "payment", payment.reference, applied, rest, "overpayment" if rest else "", invoice
    )


def invoice_links(invoice: Invoice) -> frozenset[str]:
    """The invoice's ``^INV-…`` link and its cycles' links."""
    return frozenset({invoice.number, *invoice.cycles})


def open_amounts(
    invoices: Sequence[Invoice],
    payments: Iterable[Payment],
    credit_notes: Iterable[CreditNote],
    applications: Iterable[CashApplication] = (),
) -> dict[str, Decimal]:
    """Each invoice's amount still open after every payment, credit note and application given."""
    result = {inv.number: max(inv.total, ZERO) for inv in invoices}
    for (_kind, _key), s in settle(invoices, payments, credit_notes, applications).items():
        if s.invoice is not None:
            result[s.invoice.number] -= s.applied
    return result


# --- cash application: unapplied cash and credit balances applied or paid out ----------------


@dataclass(frozen=True)
class Source:
    """What an application draws on, as the store gives it at a date."""

    key: str
    kind: Literal["payment", "credit_note", "invoice"]
    date: date
    currency: str
    #: the credit note's or negative invoice's customer, the customer of the invoice a payment
    #: named
    customer: str | None
    holds: Decimal  # unapplied cash / credit balance left at the date, before this application


def find_source(facts: IssuedFacts, key: str, on: date) -> Source:
    """The payment, credit note or negative invoice ``key`` names in ``facts``, with what it
    holds at the end of ``on`` (:class:`BadInput` when there is none, or it is dated after
    ``on``). A negative invoice (a cycle's invoices billed more than its price: threshold
    invoicing) holds its customer's credit, as a credit note on a paid invoice does."""
    payments = {p.reference: p for p in facts.payments}
    notes = {n.number: n for n in facts.credit_notes}
    negative = {inv.number: inv for inv in facts.invoices if inv.total < 0}
    if key in notes:
        note = notes[key]
        kind: Literal["payment", "credit_note", "invoice"] = "credit_note"
        day, currency, customer = note.date, note.currency, note.customer
    elif key in payments:
        payment = payments[key]
        kind, day, currency = "payment", payment.date, payment.currency
        customer = None
    elif key in negative:
        credit = negative[key]
        kind, day, currency, customer = "invoice", credit.date, credit.currency, credit.customer
    else:
        raise BadInput(
            f"{key}: no payment has this reference, no credit note this number and no negative "
            "invoice this number"
        )
    if day > on:
        raise BadInput(
            f"{key} is dated {day.isoformat()}, after {on.isoformat()}: cash is applied or "
            "refunded on or after the day it was received or credited"
        )
    dated = facts.through(on)
    invoices = list(dated.invoices)
    if kind == "payment":
        named = next((inv for inv in invoices if inv.number == payments[key].invoice), None)
        customer = named.customer if named is not None else None
    left = outstanding(
        invoices, list(dated.payments), list(dated.credit_notes), list(dated.applications)
    )
    return Source(key, kind, day, currency, customer, left.get(key, ZERO))


def record_application(
    engine: Engine,
    facts: IssuedFacts,
    *,
    kind: Literal["apply", "refund"],
    source: str,
    on: date,
    invoice: str = "",
    amount: Decimal | None = None,
    reference: str = "",
) -> tuple[CashApplication, bool]:
    """Check and store one application (``kind="apply"``, to ``invoice``) or refund of what
    ``source`` holds; ``amount`` None: all it can (apply: at most what the invoice owes).

    ``facts`` are the issued facts as the store holds them (the command's snapshot); the
    engine's date rules (no sealed month, not after today) are the caller's:
    :meth:`ledger.session.Session.apply` and :meth:`~ledger.session.Session.refund` keep them.

    Returns the application and whether it was stored now (False: the same one was
    recorded before, so a re-run changes nothing). Every refusal is :class:`BadInput`,
    one line, nothing stored.
    """
    from ledger.store import cash_applications

    found = find_source(facts, source, on)
    target: Invoice | None = None
    if kind == "apply":
        invoices = {inv.number: inv for inv in facts.invoices}
        target = invoices.get(invoice)
        if target is None:
            raise BadInput(f"--invoice {invoice}: no such invoice was issued")
        if target.date > on:
            raise BadInput(
                f"--invoice {invoice} is dated {target.date.isoformat()}, after {on.isoformat()}"
            )
        if target.currency != found.currency:
            raise BadInput(
                f"{source} is in {found.currency}, {invoice} in {target.currency}: cash is applied "
                "in its own currency"
            )
        if found.kind in ("credit_note", "invoice") and found.customer != target.customer:
            raise BadInput(
                f"{source} is {found.customer}'s credit balance; {invoice} is {target.customer}'s"
            )
    reference = (
        reference or (f"APPLY-{source}-{invoice}-{on.isoformat()}" if kind == "apply" else "")
    ).strip()
    if not reference:
        raise BadInput("refund: --reference is required (the payout's bank reference)")
    if len(reference) > MAX_TEXT:
        raise BadInput(f"--reference is {len(reference)} characters (at most {MAX_TEXT})")
    with engine.connect() as conn:
        stored = conn.execute(
            select(cash_applications).where(cash_applications.c.reference == reference)
        ).first()
    if stored is not None:
        same = (
            stored.kind == kind
            and stored.source == source
            and stored.invoice == (invoice if kind == "apply" else "")
            and stored.date == on.isoformat()
            and (amount is None or Decimal(stored.amount) == amount)
        )
        if not same:
            raise BadInput(
                f"--reference {reference} is already recorded for another {stored.kind} "
                f"({stored.source}, {stored.amount} {stored.currency} on {stored.date})"
            )
        return CashApplication(
            reference, kind, on, source, Decimal(stored.amount), stored.currency, stored.invoice
        ), False
    owed: Decimal | None = None
    if target is not None:
        dated = facts.through(on)
        owed = open_amounts(
            list(dated.invoices),
            list(dated.payments),
            list(dated.credit_notes),
            list(dated.applications),
        )[target.number]
    limit = found.holds if owed is None else min(found.holds, owed)
    what = "unapplied cash" if found.kind == "payment" else "credit balance"
    if amount is None:
        amount = limit
        if amount <= 0:
            raise BadInput(
                f"{source} holds no {what} on {on.isoformat()}"
                if found.holds <= 0
                else f"{invoice} owes nothing on {on.isoformat()}"
            )
    places = minor_units(found.currency)
    if amount <= 0 or amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise BadInput(
            f"--amount {amount}: a positive amount in {found.currency} ({places} decimal places)"
        )
    if amount > found.holds:
        raise BadInput(
            f"--amount {amount}: {source} holds {found.holds} {found.currency} of {what} on "
            f"{on.isoformat()}"
        )
    if owed is not None and amount > owed:
        raise BadInput(
            f"--amount {amount}: {invoice} owes {owed} {found.currency} on {on.isoformat()}"
        )
    application = CashApplication(
        reference, kind, on, source, amount, found.currency, invoice if kind == "apply" else ""
    )
    with engine.begin() as conn:
        conn.execute(
            cash_applications.insert().values(
                reference=reference,
                kind=kind,
                date=on.isoformat(),
                source=source,
                invoice=application.invoice,
                amount=str(amount),
                currency=found.currency,
                recorded_at=datetime.now(UTC).isoformat(),
            )
        )
    return application, True
