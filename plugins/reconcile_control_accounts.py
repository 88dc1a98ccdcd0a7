"""Control accounts: summary books tied to the per-customer sub-ledger.

With ``books_detail = "summary"`` the books hold control accounts
(:mod:`ledger.journal.summary`), not one account per customer. The sub-ledger — every
customer's unbilled, contract-asset, receivable, deferred-revenue and refund balances and
the revenue they earned, derived again from the event store and the issued invoices,
payments and credit notes — is added up per control account and compared with the books at
the end of the month (or the last day the books are posted through when earlier)::

    control-accounts:Assets:Receivables:Unbilled:2026-10  error  expected 15.20  actual 16.20
      Assets:Receivables:Unbilled through 2026-10-31: the customers' sub-ledger adds up to
      15.20 USD, the books hold 16.20 USD (difference 1.00): run `meterbook post`, or find
      what edited the books

Every difference is an **error**, blocking close and invoicing. The close then asserts the
same control balances in its close file. Per-customer books (the default) are tied out by
``store-vs-ledger`` instead; this check yields nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from beancount.core import data

from ledger.hookspecs import hookimpl
from ledger.reconcile import Finding, ReconcileContext, finding_id


class ControlAccounts:
    """Control accounts vs the sum of the per-customer sub-ledger (module docstring)."""

    name = "control-accounts"

    def check(self, context: ReconcileContext) -> Iterator[Finding]:
        if not context.workspace.summary_books or context.end < context.first_open:
            return
        entries = context.entries
        dates = [e.date for e in entries if isinstance(e, data.Transaction)]
        if context.first_open > date.min:
            dates.append(context.first_open - timedelta(days=1))
        if not dates:
            return
        through = min(context.end, max(dates))
        for b in context.tie_out(through):
            if b.store == b.books:
                continue
            parts = (
                (b.account,)
                if b.currency == context.workspace.operating_currency
                else (
                    b.account,
                    b.currency,
                )
            )
            yield Finding(
                id=finding_id(self.name, context.period, *parts),
                severity="error",
                check=self.name,
                customer=None,
                meter=None,
                period=context.period,
                expected=b.store,
                actual=b.books,
                explanation=(
                    f"{b.account} through {b.through}: the customers' sub-ledger adds up to "
                    f"{b.store} {b.currency}, the books hold {b.books} {b.currency} "
                    f"(difference {b.books - b.store}): run `meterbook post`, or find what "
                    "edited the books"
                ),
            )


@hookimpl
def meterbook_reconcilers() -> list[ControlAccounts]:
    """The first-party control-accounts check (summary books only)."""
    return [ControlAccounts()]
