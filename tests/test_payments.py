"""Payments worked examples: a payments CSV through ingest, posted, books loaded with Beancount.

acme uses 100 calls at 1.00 and 1,000 tokens at 0.01 in September: its Oct 1
invoice is 100.00 + 10.00 = 110.00 USD. beta uses 50 calls: 50.00 USD.
The workspace: tests/support/payments.py. Every number below is computed by hand in the
comments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data

from ledger import ingest
from ledger.facts.invoices import Invoice
from ledger.facts.payments import Payment, load_payments
from ledger.importers.payments import PaymentsCsv
from ledger.journal.payments import payment_entries
from ledger.payments import ingest_payments
from ledger.registry import load_registry
from ledger.session import Session
from ledger.store import payment_conflicts, rejects
from tests.support.payments import NOW, books_of, import_payments, payments_workspace
from tests.support.workspaces import balance


def snapshot(session: Session) -> dict[Path, bytes]:
    books_dir = session.workspace.books_dir
    return {
        p.relative_to(books_dir): p.read_bytes()
        for p in sorted(books_dir.rglob("*"))
        if p.is_file()
    }


PAYMENTS = """\
date,amount,currency,invoice,reference
2026-10-10,110.00,USD,INV-2026-000001,BANK-1
2026-10-12,20,USD,INV-2026-000002,BANK-2
2026-10-15,7.50,USD,,BANK-3
2026-10-16,5.00,USD,INV-2026-999999,BANK-4
2026-10-20,40.00,USD,INV-2026-000002,BANK-5
2026-10-21,9.00,EUR,INV-2026-000001,BANK-6
2026-13-01,1.00,USD,INV-2026-000001,BAD-1
2026-10-22,abc,USD,INV-2026-000001,BAD-2
2026-10-22,1.00,USD,INV-2026-000001,
2026-10-22,-5.00,USD,INV-2026-000001,BAD-4
2026-10-22,1.001,USD,INV-2026-000001,BAD-5
"""


@pytest.fixture
def paid(tmp_path: Path) -> tuple[Session, Path, ingest.ImportReport]:
    session = payments_workspace(tmp_path)
    path = tmp_path / "bank.csv"
    path.write_text(PAYMENTS)
    return session, path, import_payments(session, path)


def test_every_row_is_accounted_for(paid: tuple[Session, Path, ingest.ImportReport]) -> None:
    session, _path, report = paid
    assert report.importer == "payments-csv"
    assert (
        report.received,
        report.accepted,
        report.duplicates,
        report.conflicts,
        report.rejected,
    ) == (11, 6, 0, 0, 5)
    assert report.reasons == {
        "bad_date": 1,
        "bad_number": 2,
        "missing_field": 1,
        "nonpositive_amount": 1,
    }
    with session.engine.connect() as conn:
        stored = conn.execute(rejects.select().order_by(rejects.c.line)).all()
    assert [(r.line, r.reason) for r in stored] == [
        (8, "bad_date"),
        (9, "bad_number"),
        (10, "missing_field"),
        (11, "nonpositive_amount"),
        (12, "bad_number"),
    ]
    assert stored[0].raw == "2026-13-01,1.00,USD,INV-2026-000001,BAD-1"
    # amounts are kept in the currency's minor unit: "20" is 20.00
    assert [(p.reference, p.amount) for p in load_payments(session.engine)][1] == (
        "BANK-2",
        Decimal("20.00"),
    )


def test_full_partial_unmatched_overpaid(paid: tuple[Session, Path, ingest.ImportReport]) -> None:
    session, _path, _report = paid
    entries = books_of(session)
    # acme: 110.00 invoiced Oct 1, paid in full Oct 10
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 10, 10)) == Decimal(
        "110.00"
    )
    assert balance(entries, "Assets:Receivables:Invoiced:Acme", date(2026, 10, 11)) == 0
    # beta: 50.00 invoiced; 20.00 paid Oct 12 leaves 30.00 open
    assert balance(entries, "Assets:Receivables:Invoiced:Beta", date(2026, 10, 13)) == Decimal(
        "30.00"
    )
    # Oct 20: 40.00 received, 30.00 settles beta, 10.00 is an overpayment
    assert balance(entries, "Assets:Receivables:Invoiced:Beta", date(2026, 10, 21)) == 0
    # unapplied: 7.50 (no invoice) + 5.00 (unknown invoice) + 10.00 (overpayment) = 22.50
    assert balance(entries, "Liabilities:Unapplied-Cash", date(2026, 10, 16), "USD") == Decimal(
        "-7.50"
    )
    assert balance(entries, "Liabilities:Unapplied-Cash", date(2026, 11, 1), "USD") == Decimal(
        "-22.50"
    )
    # 9.00 EUR against a USD invoice cannot settle it: unapplied, in EUR
    assert balance(entries, "Liabilities:Unapplied-Cash", date(2026, 11, 1), "EUR") == Decimal(
        "-9.00"
    )
    # the bank holds everything received: 110 + 20 + 7.50 + 5 + 40 = 182.50 USD and 9.00 EUR
    assert balance(entries, "Assets:Bank:Operating", date(2026, 11, 1), "USD") == Decimal("182.50")
    assert balance(entries, "Assets:Bank:Operating", date(2026, 11, 1), "EUR") == Decimal("9.00")

    txns = {
        e.meta["reference"]: e
        for e in entries
        if isinstance(e, data.Transaction) and "reference" in e.meta
    }
    assert set(txns) == {"BANK-1", "BANK-2", "BANK-3", "BANK-4", "BANK-5", "BANK-6"}
    assert txns["BANK-1"].links == {"INV-2026-000001", "acme-2026-09-01"}
    assert txns["BANK-1"].meta["customer"] == "acme" and "unapplied" not in txns["BANK-1"].meta
    assert txns["BANK-5"].meta["unapplied"] == "overpayment"
    assert txns["BANK-3"].meta["unapplied"] == "no_invoice" and not txns["BANK-3"].links
    assert txns["BANK-4"].meta["unapplied"] == "unknown_invoice"
    assert txns["BANK-6"].meta["unapplied"] == "currency_mismatch"


def test_reimporting_changes_nothing(paid: tuple[Session, Path, ingest.ImportReport]) -> None:
    session, path, _report = paid
    books_of(session)
    before = snapshot(session)
    again = import_payments(session, path)
    assert (again.received, again.accepted, again.duplicates, again.conflicts) == (11, 0, 6, 0)
    # the same file once more, through the stand-alone entry point
    assert ingest_payments(session.engine, path, now=NOW).duplicates == 6
    books_of(session)
    assert snapshot(session) == before


def test_same_reference_other_payload_is_a_conflict_kept_aside(
    paid: tuple[Session, Path, ingest.ImportReport], tmp_path: Path
) -> None:
    session, _path, _report = paid
    books_of(session)
    before = snapshot(session)
    other = tmp_path / "bank2.csv"
    other.write_text(
        "reference,date,amount,currency,invoice,payer\nBANK-1,2026-10-10,99.00,USD,INV-2026-000001,x\n"
    )
    report = import_payments(session, other)
    assert (report.accepted, report.conflicts) == (0, 1)
    with session.engine.connect() as conn:
        [kept] = conn.execute(payment_conflicts.select()).all()
    assert kept.reference == "BANK-1" and '"amount":"99.00"' in kept.payload
    books_of(session)
    assert snapshot(session) == before  # the first payment stored wins


def test_payments_file_is_identified_and_a_bad_header_refused(tmp_path: Path) -> None:
    good = tmp_path / "p.csv"
    good.write_text(PAYMENTS)
    assert PaymentsCsv().identify(str(good))
    usage = tmp_path / "u.csv"
    usage.write_text("id,customer,type,time\n")
    assert not PaymentsCsv().identify(str(usage))
    importers = [PaymentsCsv(), *ingest.default_importers()]
    assert ingest.select_importer(good, importers).name == "payments-csv"
    assert ingest.select_importer(usage, importers).name == "events-csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("date,amount,currency,reference\n2026-10-10,1.00,USD,R\n")
    kinds = load_registry().importer_kinds
    with pytest.raises(Exception, match="missing column 'invoice'"):
        ingest.check_file(bad, PaymentsCsv(), kinds)
    with pytest.raises(Exception, match="yields 'payments' records, which this meterbook cannot"):
        ingest.check_file(bad, PaymentsCsv())  # no registry: usage events alone


def test_settlement_is_deterministic_whatever_the_order() -> None:
    from ledger.facts.invoices import InvoiceLine
    from ledger.rules import Rules

    inv = Invoice(
        customer="acme",
        date=date(2026, 10, 1),
        currency="USD",
        number="INV-2026-000001",
        rules="r",
        lines=(
            InvoiceLine(
                kind="usage",
                description="x",
                account="unbilled",
                amount=Decimal("100.00"),
                link="acme-2026-09-01",
            ),
        ),
    )
    pays = [
        Payment(date(2026, 10, 5), Decimal("60.00"), "USD", inv.number, "B"),
        Payment(date(2026, 10, 5), Decimal("60.00"), "USD", inv.number, "A"),
    ]

    class FakeRules:
        def account(self, key: str, **ids: str) -> str:
            return {
                "cash": "Assets:Bank:Operating",
                "unapplied_cash": "Liabilities:Unapplied-Cash",
                "receivable": "Assets:Receivables:Invoiced:Acme",
            }[key]

    rules: Rules = FakeRules()  # type: ignore[assignment]
    one = payment_entries(pays, [inv], [], rules)
    two = payment_entries(list(reversed(pays)), [inv], [], rules)
    assert one == two
    # same day: by reference, so A settles 60.00 and B the remaining 40.00 (+ 20.00 unapplied)
    a, b = one
    assert a.meta["reference"] == "A" and [p.units.number for p in a.postings] == [
        Decimal("60.00"),
        Decimal("-60.00"),
    ]
    assert [p.units.number for p in b.postings] == [
        Decimal("60.00"),
        Decimal("-40.00"),
        Decimal("-20.00"),
    ]


def test_duplicates_and_conflicts_are_counted_on_every_store(
    store_url: str, tmp_path: Path
) -> None:
    """Same reference and figures: duplicate; same reference, other figures: conflict (SQLite and
    PostgreSQL)."""
    from ledger.store import open_store

    engine = open_store(store_url)
    path = tmp_path / "p.csv"
    path.write_text(
        "date,amount,currency,invoice,reference\n2026-10-02,10.00,USD,,r1\n"
        "2026-10-02,10.00,USD,,r1\n2026-10-02,11.00,USD,,r1\n"
    )
    now = datetime(2026, 11, 25, tzinfo=UTC)
    kinds = load_registry().importer_kinds

    def once() -> ingest.ImportReport:
        return ingest.ingest_file(
            engine,
            None,  # type: ignore[arg-type]  # no rules: payments are matched when posted
            path,
            PaymentsCsv(),
            now=now,
            kinds=kinds,
        )

    first = once()
    assert (first.received, first.accepted, first.duplicates, first.conflicts) == (3, 1, 1, 1)
    again = once()
    assert (again.received, again.accepted, again.duplicates, again.conflicts) == (3, 0, 2, 1)


def _invoice(number: str, amount: str, currency: str = "USD") -> Invoice:
    from ledger.facts.invoices import InvoiceLine

    line = InvoiceLine("usage", "calls", "unbilled", Decimal(amount), link=f"acme-{number}")
    return Invoice("acme", date(2026, 10, 1), currency, (line,), "r", number=number)


def test_the_settlement_timeline_of_payments_notes_and_applications() -> None:
    """One replay (:func:`ledger.payments.settle`, :func:`outstanding`), every field read.

    Invoices: INV-1 100.00, INV-2 50.00, INV-3 20.00 (USD), INV-4 30.00 EUR.

    - Oct 20, P1 60.00 for INV-1: applied 60.00 (INV-1 open 40.00). The same day CN-1
      (seq 1) takes 50.00 off INV-1: payments before notes, so it cancels the 40.00 still
      owed and 10.00 was paid already, a refund owed (INV-1 open 0).
    - Oct 21, CN-2 takes 20.00 off INV-2: applied 20.00 (INV-2 open 30.00).
    - Oct 25, P2 70.00 for INV-1: open 0, so all 70.00 is an overpayment.
    - Oct 26, P3 15.00 naming no invoice, P4 5.00 naming INV-9 (unknown), P5 30.00 USD for
      INV-4 (EUR): all unapplied, with the invoice kept only for the currency mismatch.
    - Oct 27, A1 applies 25.00 of P2's 70.00 to INV-2 (owes 30.00): 25.00 (P2 holds 45.00,
      INV-2 owes 5.00). Oct 28, A2 applies 10.00 of P3's 15.00 to INV-2: only the 5.00 owed
      (rest 5.00 left at P3, which holds 10.00; INV-2 open 0).
    - Oct 20 still, refund #R-3 pays CN-1's 10.00 out in full (CN-1 holds 0): the day's
      applications come after its notes, even under a payout reference that sorts before
      the note's number.
    - Oct 29, A4 applies 8.00 from P1 (holds 0) to INV-3: nothing (rest 8.00); A5 applies
      8.00 from P2 to INV-9 (unknown): nothing; A7 applies 5.00 from P9, which holds nothing
      (no such payment): nothing, rest 5.00. CN-3 takes 5.00 off INV-9, not among the
      invoices replayed: nothing applied, all 5.00 owed back.
    - Oct 30, P6 20.00 naming no invoice and, the same day, A6 applying it to INV-3 (owes
      20.00): applications come after the day's cash, so all 20.00.

    Left at each source: P1 0, P2 45.00, P3 10.00, P4 5.00, P5 30.00, P6 0, P9 0, CN-1 0,
    CN-2 0, CN-3 5.00.
    """
    from ledger.facts.credit_notes import CreditNote
    from ledger.facts.payments import CashApplication
    from ledger.payments import Settlement, outstanding, settle

    d = Decimal
    invoices = [
        _invoice("INV-1", "100.00"),
        _invoice("INV-2", "50.00"),
        _invoice("INV-3", "20.00"),
        _invoice("INV-4", "30.00", "EUR"),
    ]
    inv = {i.number: i for i in invoices}

    def pay(day: int, amount: str, invoice: str, ref: str) -> Payment:
        return Payment(date(2026, 10, day), d(amount), "USD", invoice, ref)

    def note(number: str, seq: int, invoice: str, day: int, amount: str) -> CreditNote:
        return CreditNote(number, seq, invoice, "acme", date(2026, 10, day), "USD", d(amount), "x")

    def app(ref: str, day: int, source: str, amount: str, invoice: str = "") -> CashApplication:
        kind = "apply" if invoice else "refund"
        return CashApplication(ref, kind, date(2026, 10, day), source, d(amount), "USD", invoice)

    payments = [
        pay(20, "60.00", "INV-1", "P1"),
        pay(25, "70.00", "INV-1", "P2"),
        pay(26, "15.00", "", "P3"),
        pay(26, "5.00", "INV-9", "P4"),
        pay(26, "30.00", "INV-4", "P5"),
        pay(30, "20.00", "", "P6"),
    ]
    notes = [
        note("CN-1", 1, "INV-1", 20, "50.00"),
        note("CN-2", 2, "INV-2", 21, "20.00"),
        note("CN-3", 3, "INV-9", 29, "5.00"),
    ]
    applications = [
        app("A1", 27, "P2", "25.00", "INV-2"),
        app("A2", 28, "P3", "10.00", "INV-2"),
        app("#R-3", 20, "CN-1", "10.00"),
        app("A4", 29, "P1", "8.00", "INV-3"),
        app("A5", 29, "P2", "8.00", "INV-9"),
        app("A6", 30, "P6", "20.00", "INV-3"),
        app("A7", 29, "P9", "5.00", "INV-3"),
    ]
    expected = {
        ("payment", "P1"): Settlement("payment", "P1", d("60.00"), d("0.00"), "", inv["INV-1"]),
        ("payment", "P2"): Settlement(
            "payment", "P2", d("0.00"), d("70.00"), "overpayment", inv["INV-1"]
        ),
        ("payment", "P3"): Settlement("payment", "P3", d(0), d("15.00"), "no_invoice"),
        ("payment", "P4"): Settlement("payment", "P4", d(0), d("5.00"), "unknown_invoice"),
        ("payment", "P5"): Settlement(
            "payment", "P5", d(0), d("30.00"), "currency_mismatch", inv["INV-4"]
        ),
        ("payment", "P6"): Settlement("payment", "P6", d(0), d("20.00"), "no_invoice"),
        ("credit_note", "CN-1"): Settlement(
            "credit_note", "CN-1", d("40.00"), d("10.00"), invoice=inv["INV-1"]
        ),
        ("credit_note", "CN-2"): Settlement(
            "credit_note", "CN-2", d("20.00"), d("0.00"), invoice=inv["INV-2"]
        ),
        ("application", "A1"): Settlement(
            "application", "A1", d("25.00"), d("0.00"), invoice=inv["INV-2"]
        ),
        ("application", "A2"): Settlement(
            "application", "A2", d("5.00"), d("5.00"), invoice=inv["INV-2"]
        ),
        ("application", "#R-3"): Settlement("application", "#R-3", d("10.00"), d(0)),
        ("application", "A4"): Settlement(
            "application", "A4", d("0.00"), d("8.00"), invoice=inv["INV-3"]
        ),
        ("application", "A5"): Settlement("application", "A5", d(0), d("8.00")),
        ("application", "A6"): Settlement(
            "application", "A6", d("20.00"), d("0.00"), invoice=inv["INV-3"]
        ),
        ("application", "A7"): Settlement(
            "application", "A7", d(0), d("5.00"), invoice=inv["INV-3"]
        ),
        ("credit_note", "CN-3"): Settlement("credit_note", "CN-3", d(0), d("5.00")),
    }
    for order in (1, -1):  # the replay's order is the facts', not the lists'
        settled = settle(invoices, payments[::order], notes[::order], applications[::order])
        assert settled == expected
        left = outstanding(invoices, payments[::order], notes[::order], applications[::order])
        assert left == {
            "P1": d(0),
            "P2": d("45.00"),
            "P3": d("10.00"),
            "P4": d("5.00"),
            "P5": d("30.00"),
            "P6": d(0),
            "P9": d(0),
            "CN-1": d(0),
            "CN-2": d(0),
            "CN-3": d("5.00"),
        }


def test_each_bank_row_is_accepted_or_rejected_with_its_one_reason() -> None:
    """``payment_of`` on rows read as of 2026-11-01 (a row may be dated a day ahead, the bank's
    time zone): every reason and message, and the bounds of each check.

    Accepted: 0.50 (positive), 60.000 USD (three places, all zero: 60.00), 60 yen, dated Nov 2
    (today + 1), a reference of exactly 255 characters; the row's line number kept. Rejected:
    a 256-character reference or invoice (``too_long``), Nov 3 (``future_date``), ``usd``,
    ``US1``, ``ÄBC`` and ``USDX`` (``bad_currency``), 60.005 USD and 60.5 JPY (``bad_number``:
    more decimal places than the currency has), 0 (``nonpositive_amount``).
    """
    from ledger.importers.payments import RawPayment
    from ledger.ingest import Rejected
    from ledger.payments import payment_of

    today = date(2026, 11, 1)

    def row(
        amount: str = "60", currency: str = "USD", day: str = "2026-10-20", **kw: str
    ) -> RawPayment:
        ref, invoice = kw.get("reference", "BANK-1"), kw.get("invoice", "INV-2026-000001")
        return RawPayment(7, [], day, amount, currency, invoice, ref)

    def accepted(raw: RawPayment) -> tuple[str, str, int]:
        paid = payment_of(raw, today=today)
        return str(paid.amount), paid.date.isoformat(), paid.line

    assert accepted(row("0.50")) == ("0.50", "2026-10-20", 7)
    assert accepted(row("60.000")) == ("60.00", "2026-10-20", 7)
    assert accepted(row("60", "JPY")) == ("60", "2026-10-20", 7)
    assert accepted(row(day="2026-11-02")) == ("60.00", "2026-11-02", 7)
    assert accepted(row(reference="R" * 255)) == ("60.00", "2026-10-20", 7)
    long = "X" * 256
    for raw, reason, message in [
        (row(reference=long), "too_long", "reference is 256 characters (at most 255)"),
        (row(invoice=long), "too_long", "invoice is 256 characters (at most 255)"),
        (row(day="2026-11-03"), "future_date", "date 2026-11-03 is in the future"),
        *(
            (row(currency=c), "bad_currency", f"currency {c!r} is not an ISO 4217 code such as USD")
            for c in ("usd", "US1", "ÄBC", "USDX")
        ),
        (row("60.005"), "bad_number", "amount 60.005 has more than 2 decimal places for USD"),
        (row("60.5", "JPY"), "bad_number", "amount 60.5 has more than 0 decimal places for JPY"),
        (
            row("0"),
            "nonpositive_amount",
            "amount 0 is not positive (refunds paid out are not payments received)",
        ),
    ]:
        with pytest.raises(Rejected) as refused:
            payment_of(raw, today=today)
        assert refused.value.args == (reason, message)
