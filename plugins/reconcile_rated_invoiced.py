"""Rated vs invoiced: every usage line of the month's invoices against its cycle rated again now.

An issued invoice is a fact kept in the store; the rating is recomputed from the
events and the rules. For each invoice dated in the month, each ``usage`` line
(meter, quantity, amount) is compared with the same charge of its cycle at the
cycle's last day in :attr:`ReconcileContext.rating`::

    INV-2026-000003 acme  api_calls  25000 calls  15.00      rated now: 25000 calls  15.00   silent
    INV-2026-000003 acme  api_calls  25000 calls  15.00      rated now: 25000 calls  17.50   error
    INV-2026-000003 acme  api_calls  25000 calls  15.00      rated now: 25012 calls  15.60   warning

- same quantity, another amount: the invoice does not say what the rules price
  (rules edited since it was issued, or the stored invoice altered) — an
  **error**: fix the rules, or ``meterbook rerate`` and accept the finding;
- another quantity: events for the cycle arrived or changed after the invoice
  was issued. DESIGN books that as late usage (unbilled / revenue in the first
  open month, billed on the next invoice), so it is a **warning** that names
  the difference, not a block;
- a usage line whose cycle or charge the rating no longer has: an **error**.

A threshold invoice (dated inside its cycle, :mod:`ledger.invoicing`) billed the cycle's
usage through the day before its date: its lines are compared with the cycle rated then.

Finding ids: ``rated-vs-invoiced:<customer>:<meter>:<invoice number>:<YYYY-MM>``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from ledger.hookspecs import hookimpl
from ledger.reconcile import (
    Finding,
    InvoiceLineView,
    InvoiceView,
    RatedCharge,
    ReconcileContext,
    Severity,
    finding_id,
)


class RatedVsInvoiced:
    """Invoiced usage lines vs the rating recomputed now (see the module docstring)."""

    name = "rated-vs-invoiced"

    def check(self, context: ReconcileContext) -> Iterator[Finding]:
        invoices = [inv for inv in context.invoices if context.start <= inv.date <= context.end]
        if not invoices:
            return
        # the last rating point of each cycle that has ended: what its invoice should say
        rated = {r.cycle.link: r for r in context.rating.cycles if r.is_cycle_end}
        # and every day of each cycle rated, for threshold invoices (billed through the day before)
        days = {(r.cycle.link, r.through): r for r in context.rating.cycles}
        for invoice in invoices:
            seen: dict[tuple[str, str], int] = defaultdict(int)
            for line in invoice.lines:
                if line.kind != "usage":
                    continue
                nth = seen[(line.link, line.meter)]
                seen[(line.link, line.meter)] += 1
                cycle = rated.get(line.link)
                if line.cycle and invoice.date < date.fromisoformat(line.cycle.split("/")[-1]):
                    # a threshold invoice: dated before its cycle's end
                    cycle = days.get((line.link, invoice.date - timedelta(days=1)))
                charges = (
                    [c for c in cycle.charges if c.meter == line.meter] if cycle is not None else []
                )
                yield from self._compare(
                    context, invoice, line, charges[nth] if nth < len(charges) else None
                )

    def _compare(
        self,
        context: ReconcileContext,
        invoice: InvoiceView,
        line: InvoiceLineView,
        charge: RatedCharge | None,
    ) -> Iterator[Finding]:
        where = f"{invoice.number} ({invoice.date}) {line.meter} for {line.cycle}"
        quantity = line.quantity if line.quantity is not None else Decimal(0)
        if charge is None:
            yield self._finding(
                context,
                invoice,
                line,
                "error",
                None,
                line.amount,
                f"{where}: the rating has no such cycle or charge now (rules or subscriptions "
                "changed since the invoice was issued)",
            )
            return
        if charge.quantity == quantity and charge.amount == line.amount:
            return
        if charge.quantity == quantity:
            yield self._finding(
                context,
                invoice,
                line,
                "error",
                charge.amount,
                line.amount,
                f"{where}: invoiced {line.amount} {invoice.currency} for a quantity of {quantity}, "
                f"the rules price the same quantity at {charge.amount} now "
                f"(rules {invoice.rules[:12]} when issued, {context.rules.hash[:12]} now): "
                "fix the rules or rerate",
            )
            return
        yield self._finding(
            context,
            invoice,
            line,
            "warning",
            charge.amount,
            line.amount,
            f"{where}: invoiced a quantity of {quantity} for {line.amount} {invoice.currency}, "
            f"rated now {charge.quantity} for {charge.amount}: usage changed after the invoice; "
            f"the difference {charge.amount - line.amount} is booked as late usage",
        )

    def _finding(
        self,
        context: ReconcileContext,
        invoice: InvoiceView,
        line: InvoiceLineView,
        severity: Severity,
        expected: Decimal | None,
        actual: Decimal | None,
        explanation: str,
    ) -> Finding:
        # a second charge on the same meter in one cycle gets its own id (``…:INV-…#2:…``)
        nth = sum(
            1
            for other in invoice.lines[: invoice.lines.index(line)]
            if other.kind == "usage" and other.link == line.link and other.meter == line.meter
        )
        number = invoice.number + (f"#{nth + 1}" if nth else "")
        return Finding(
            id=finding_id(self.name, context.period, invoice.customer, line.meter, number),
            severity=severity,
            check=self.name,
            customer=invoice.customer,
            meter=line.meter,
            period=context.period,
            expected=expected,
            actual=actual,
            explanation=explanation,
        )


@hookimpl
def meterbook_reconcilers() -> list[RatedVsInvoiced]:
    """The first-party rated-vs-invoiced check, registered through the same hook as third-party
    ones."""
    return [RatedVsInvoiced()]
