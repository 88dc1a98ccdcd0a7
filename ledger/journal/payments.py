"""Payments and cash applications.

A payment matched to an invoice: Dr cash / Cr receivable on the payment date;
what it cannot settle (no invoice, an unknown one, another currency, more than is
owed) is unapplied cash, a liability (Cr unapplied cash). A cash application
later moves unapplied cash or a credit balance onto an invoice (Dr unapplied cash
or refund liability / Cr receivable), or pays it back (Cr cash).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from beancount.core import data
from beancount.core.amount import Amount

from ledger.facts.payments import CashApplication, Payment
from ledger.journal.meta import FLAG, entry_meta

if TYPE_CHECKING:
    from ledger.facts.credit_notes import CreditNote
    from ledger.facts.invoices import Invoice
    from ledger.rules import Rules
from ledger.payments import invoice_links, settle


def payment_entries(
    payments: Sequence[Payment],
    invoices: Sequence[Invoice],
    credit_notes: Sequence[CreditNote],
    rules: Rules,
    applications: Sequence[CashApplication] = (),
) -> list[data.Transaction]:
    """One transaction per payment, on its date (see the module docstring)."""
    settled = settle(invoices, payments, credit_notes, applications)
    entries: list[data.Transaction] = []
    for payment in sorted(payments, key=lambda p: (p.date, p.reference)):
        s = settled[("payment", payment.reference)]
        invoice = s.invoice
        currency = payment.currency
        customer = invoice.customer if invoice is not None else None
        # The bank holds the whole amount whatever it settles: cash is debited in full.
        postings = [
            data.Posting(
                rules.account("cash"), Amount(payment.amount, currency), None, None, None, None
            )
        ]
        if s.applied and customer is not None:
            # Matched to an issued invoice: the customer owes that much less.
            postings.append(
                data.Posting(
                    rules.account("receivable", customer=customer),
                    Amount(-s.applied, currency),
                    None,
                    None,
                    None,
                    None,
                )
            )
        if s.rest:
            # No invoice to apply it to (none named, unknown, another currency, or already
            # settled): held in unapplied cash until someone applies or refunds it.
            postings.append(
                data.Posting(
                    rules.account("unapplied_cash"),
                    Amount(-s.rest, currency),
                    None,
                    None,
                    None,
                    None,
                )
            )
        if s.rest and not s.applied:
            narration = f"Payment {payment.reference} (unapplied: {s.reason.replace('_', ' ')})"
        else:
            narration = f"Payment {payment.reference} for {payment.invoice}"
        entries.append(
            data.Transaction(
                entry_meta(
                    customer=customer,
                    invoice=payment.invoice or None,
                    reference=payment.reference,
                    unapplied=s.reason or None,
                ),
                payment.date,
                FLAG,
                customer,
                narration,
                frozenset(),
                invoice_links(invoice) if invoice is not None else frozenset(),
                postings,
            )
        )
    return entries


def application_entries(
    applications: Sequence[CashApplication],
    payments: Sequence[Payment],
    invoices: Sequence[Invoice],
    credit_notes: Sequence[CreditNote],
    rules: Rules,
) -> list[data.Transaction]:
    """One transaction per application or refund, on its date, per DESIGN's accounting table.

    BANK-3 (15.00 USD naming no invoice, unapplied) applied to acme's INV-2026-000002
    (10.00 open) on Nov 3, the 5.00 left refunded on Nov 9 as PAYOUT-1; CN-2026-000001
    (4.00 on a paid invoice, so a refund liability) applied to INV-2026-000003::

        2026-11-03 * "acme" "Unapplied cash BANK-3 applied to INV-2026-000002" ^INV-2026-000002 …
          application: "APPLY-BANK-3-INV-2026-000002"
          source: "BANK-3"
          Liabilities:Unapplied-Cash             10.00 USD
          Assets:Receivables:Invoiced:Acme      -10.00 USD

        2026-11-09 * "Refund PAYOUT-1 of unapplied cash BANK-3"
          application: "PAYOUT-1"
          source: "BANK-3"
          Liabilities:Unapplied-Cash              5.00 USD
          Assets:Bank:Operating                  -5.00 USD

        2026-11-10 * "acme" "Credit balance CN-2026-000001 applied to INV-2026-000003" …
          Liabilities:Refunds:Acme                4.00 USD
          Assets:Receivables:Invoiced:Acme       -4.00 USD

    A credit balance refunded is ``refund_liability`` / ``cash``. An application
    posts what the replay (:func:`settle`) finds it can apply: at most what its
    source still holds and its invoice still owes (checked when it is recorded).
    """
    settled = settle(invoices, payments, credit_notes, applications)
    by_reference = {p.reference: p for p in payments}
    notes = {n.number: n for n in credit_notes}
    by_invoice = {inv.number: inv for inv in invoices}
    entries: list[data.Transaction] = []
    for app in sorted(applications, key=lambda a: (a.date, a.reference)):
        s = settled[("application", app.reference)]
        if not s.applied:
            continue
        note = notes.get(app.source)
        credit = None if app.source in by_reference else by_invoice.get(app.source)
        if note is not None:
            customer: str | None = note.customer
            source_account = rules.account("refund_liability", customer=note.customer)
            what = f"credit balance {app.source}"
        elif credit is not None:  # a negative invoice: its credit sits in the receivable
            customer = credit.customer
            source_account = rules.account("receivable", customer=credit.customer)
            what = f"credit of negative invoice {app.source}"
        else:
            payment = by_reference.get(app.source)
            named = by_invoice.get(payment.invoice) if payment is not None else None
            customer = named.customer if named is not None else None
            source_account = rules.account("unapplied_cash")
            what = f"unapplied cash {app.source}"
        invoice = by_invoice.get(app.invoice) if app.kind == "apply" else None
        if invoice is not None:
            customer = invoice.customer
            # The payer's money already held (as unapplied cash or a refund owed) now settles
            # the invoice: the liability goes down, and so does what the customer owes.
            counter = rules.account("receivable", customer=invoice.customer)
            narration = f"{what[0].upper()}{what[1:]} applied to {invoice.number}"
        else:
            # Paid back to the payer: the liability goes down, and so does the bank.
            counter = rules.account("cash")
            narration = f"Refund {app.reference} of {what}"
        postings = [
            data.Posting(source_account, Amount(s.applied, app.currency), None, None, None, None),
            data.Posting(counter, Amount(-s.applied, app.currency), None, None, None, None),
        ]
        links = set(invoice_links(invoice)) if invoice is not None else set()
        if note is not None:
            links.add(note.number)
        if credit is not None:
            links.add(credit.number)
        entries.append(
            data.Transaction(
                entry_meta(
                    customer=customer,
                    invoice=invoice.number if invoice is not None else None,
                    application=app.reference,
                    source=app.source,
                ),
                app.date,
                FLAG,
                customer,
                narration,
                frozenset(),
                frozenset(links),
                postings,
            )
        )
    return entries
