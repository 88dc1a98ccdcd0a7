"""Unapplied cash: payments (or parts of them) that settle no invoice, held in the
``unapplied_cash`` account (default ``Liabilities:Unapplied-Cash``: owed to the payer until
applied or refunded).

DESIGN: a payment not matched to an invoice is "a reconciliation finding until
applied". The settlement of every payment and credit note through the month's
last day is replayed (:func:`ledger.payments.settle`, the same replay that posts
them), and each payment with an unapplied rest is a finding::

    unapplied-cash:BANK-3:2026-10  error  expected 0  actual 15.00
      payment BANK-3 of 15.00 USD on 2026-10-26 names no invoice: 15.00 USD held in
      Liabilities:Unapplied-Cash until it is applied or refunded

Severity: unapplied cash is a suspense balance, and a month-end close does not
leave suspense unexplained. A payment received *in the month* with an unapplied
rest is an **error**: close refuses until it is applied (the rest disappears once
the invoice it should settle is issued or the payment is re-matched) or accepted
with a reason (``close --accept unapplied-cash:BANK-3:2026-10 --reason "refund
sent 11-02"``), recorded in the books. A payment of an earlier month still
unapplied was explained at that month's close, so it is reported as a **warning**
each later month until it is applied.

Cash applied to an invoice later (``meterbook apply BANK-3 --invoice INV-…``) or
paid back (``meterbook refund BANK-3 --reference PAYOUT-1``) leaves the payment's
rest, so the finding shrinks or goes once it is dated within the month.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

from ledger.facts.credit_notes import load_credit_notes
from ledger.facts.invoices import load_invoices
from ledger.facts.payments import load_applications, load_payments
from ledger.hookspecs import hookimpl
from ledger.payments import outstanding, settle
from ledger.reconcile import Finding, ReconcileContext, finding_id

#: What each ``unapplied`` reason means, for the explanation.
WHY = {
    "no_invoice": "names no invoice",
    "unknown_invoice": "names invoice {invoice}, which was never issued",
    "currency_mismatch": "is in {currency}, its invoice {invoice} in another currency",
    "overpayment": "is more than invoice {invoice} still owed",
}


class UnappliedCash:
    """Payments with an unapplied rest at the month's end (see the module docstring)."""

    name = "unapplied-cash"

    def check(self, context: ReconcileContext) -> Iterator[Finding]:
        end = context.end
        payments = [p for p in load_payments(context.engine) if p.date <= end]
        if not payments:
            return
        notes = [n for n in load_credit_notes(context.engine) if n.date <= end]
        applications = [a for a in load_applications(context.engine) if a.date <= end]
        invoices = [inv for inv in load_invoices(context.engine) if inv.date <= end]
        settled = settle(invoices, payments, notes, applications)
        left = outstanding(invoices, payments, notes, applications)
        account = context.rules.account("unapplied_cash")
        for payment in payments:
            s = settled[("payment", payment.reference)]
            if left[payment.reference] <= 0:
                # applied or refunded since (``meterbook apply`` / ``refund``), if not at once
                continue
            s = replace(s, rest=left[payment.reference])
            current = payment.date >= context.start
            why = WHY.get(s.reason, s.reason).format(
                invoice=payment.invoice, currency=payment.currency
            )
            text = (
                f"payment {payment.reference} of {payment.amount} {payment.currency} "
                f"on {payment.date} {why}: "
                f"{s.rest} {payment.currency} held in {account} until it is applied or refunded"
            )
            if not current:
                text += f" (received in {payment.date.isoformat()[:7]}, still unapplied)"
            yield Finding(
                id=finding_id(self.name, context.period, None, payment.reference),
                severity="error" if current else "warning",
                check=self.name,
                customer=s.invoice.customer if s.invoice is not None else None,
                meter=None,
                period=context.period,
                expected=Decimal(0),
                actual=s.rest,
                explanation=text,
            )


@hookimpl
def meterbook_reconcilers() -> list[UnappliedCash]:
    """The first-party unapplied-cash check, registered through the same hook as third-party
    ones."""
    return [UnappliedCash()]
