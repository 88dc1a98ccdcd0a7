"""Store vs ledger: each customer's balances recomputed from the event store against the books.

The subledger (events, issued invoices, payments, credit notes in the store,
rated again now) and the general ledger (``books/``, loaded by Beancount) must
agree on every customer's unbilled, contract-asset and receivable balance. This
is the tie-out of ``meterbook check`` (:meth:`ledger.reconcile.ReconcileContext.tie_out`)
taken at the end of the month, or at the last day the books are posted through
when that is earlier (an open month posted to the 14th is compared on the 14th)::

    store-vs-ledger:acme:unbilled:2026-10  error  expected 15.00  actual 11.50
      Assets:Receivables:Unbilled:Acme through 2026-10-31: the store gives 15.00 USD,
      the books 11.50 USD (difference -3.50): run `meterbook post`, or find the edit

Every difference is an **error**: the books must be exactly what the store says.
A sealed month is not compared here: its close file asserts these balances and
``bean-check`` verifies them on every load; what arrives late for it is adjusted
in the first open month, which this check covers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from beancount.core import data

from ledger.hookspecs import hookimpl
from ledger.reconcile import Finding, ReconcileContext, finding_id


class StoreVsLedger:
    """Per-customer balances, store vs books (see the module docstring)."""

    name = "store-vs-ledger"

    def check(self, context: ReconcileContext) -> Iterator[Finding]:
        first_open = context.first_open
        if context.end < first_open:  # sealed: asserted by its close file
            return
        if context.workspace.summary_books:  # no per-customer account: control-accounts ties
            return
        entries = context.entries
        dates = [e.date for e in entries if isinstance(e, data.Transaction)]
        if first_open > date.min:
            dates.append(first_open - timedelta(days=1))
        if not dates:
            return
        through = min(context.end, max(dates))
        for b in context.tie_out(through):
            if b.store == b.books:
                continue
            customer_currency = context.rules.customers[b.customer].currency
            parts = (
                (b.customer, b.kind)
                if b.currency == customer_currency
                else (b.customer, b.kind, b.currency)
            )
            yield Finding(
                id=finding_id(self.name, context.period, *parts),
                severity="error",
                check=self.name,
                customer=b.customer,
                meter=None,
                period=context.period,
                expected=b.store,
                actual=b.books,
                explanation=(
                    f"{b.account} through {b.through}: "
                    f"the store gives {b.store} {b.currency}, the books {b.books} {b.currency} "
                    f"(difference {b.books - b.store}): "
                    "run `meterbook post`, or find what edited the books"
                ),
            )


@hookimpl
def meterbook_reconcilers() -> list[StoreVsLedger]:
    """The first-party store-vs-ledger check, registered through the same hook as third-party
    ones."""
    return [StoreVsLedger()]
