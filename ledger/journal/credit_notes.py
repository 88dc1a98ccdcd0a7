"""Credit notes and the fee reductions they cause.

A credit note reverses revenue on its issue date: Dr credit notes (contra-revenue),
or deferred revenue for undrawn prepaid credit and an advance fee's days not yet
recognized, and its share of the invoice's tax; Cr receivable while the invoice
is unpaid, refund liability once it is paid. :func:`fee_reduction_entries` then
takes the credited part of an advance fee out of the rest of the cycle's
recognition (Dr subscription revenue / Cr deferred), so deferred revenue ends at 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from beancount.core import data
from beancount.core.amount import Amount

from ledger.cycles import Cycle, cycle_at, link_series
from ledger.facts.credit_notes import CreditNote
from ledger.facts.invoices import Invoice, InvoiceLine
from ledger.journal.meta import FLAG, entry_meta
from ledger.money import ZERO
from ledger.payments import invoice_links, settle
from ledger.tax import tax_postings

if TYPE_CHECKING:
    from ledger.facts.adjustments import Adjustment
    from ledger.facts.payments import CashApplication, Payment
    from ledger.rules import Rules
from ledger.credit_notes import cycle_bounds, fee_reduction, recut_cycles


def credit_note_entries(
    notes: Sequence[CreditNote],
    invoices: Sequence[Invoice],
    payments: Sequence[Payment],
    rules: Rules,
    documents_dir: str = "../documents",
    *,
    through: date | None = None,
    applications: Sequence[CashApplication] = (),
    adjustments: Sequence[Adjustment] = (),
    recut: Mapping[tuple[str, int], str] | None = None,
) -> list[data.Directive]:
    """Per note, dated its issue date: contra-revenue (``credit_notes``) for the revenue it
    gives back and ``deferred`` for what it reverses before recognition, against the
    receivable (unpaid part) and ``refund_liability`` (paid part); a ``document``
    directive on the customer's receivable; and the recognition it takes out of an
    advance fee's cycle (:func:`fee_reduction_entries`, through ``through``; ``adjustments``:
    the debit adjustments dated by then, :func:`recut_cycles`). ``recut``: the cycles as every
    stored correction gives them, also those dated after ``through`` (default: from ``notes``
    and ``adjustments``), so the entries through a day are those of the books posted later."""
    settled = settle(invoices, payments, notes, applications)
    by_number = {inv.number: inv for inv in invoices}
    recut = recut_cycles(notes, adjustments) if recut is None else recut
    entries: list[data.Directive] = []
    for note in sorted(notes, key=lambda n: n.seq):
        s = settled[("credit_note", note.number)]
        invoice = by_number.get(note.invoice)
        receivable = rules.account("receivable", customer=note.customer)
        postings = []
        deferred = note.deferred
        revenue = note.amount - deferred - note.tax_amount
        if revenue + note.discount:
            # Revenue already recognized (usage, a fee's elapsed days, credit beyond a grant's
            # balance) is given back: contra-revenue, gross of the discounts reversed below.
            postings.append(
                data.Posting(
                    rules.account("credit_notes"),
                    Amount(revenue + note.discount, note.currency),
                    None,
                    None,
                    None,
                    None,
                )
            )
        for account, amount in _discounts_reversed(note, invoice, rules):
            # A discounted line is credited net: its discount goes back in proportion
            # (contra-revenue credited), so gross and discount are both reversed.
            postings.append(
                data.Posting(account, Amount(-amount, note.currency), None, None, None, None)
            )
        # The tax charged on what is credited is no longer owed to the jurisdiction (ledger.tax).
        for account, amount in tax_postings(note.tax, rules, note.currency, sign=-1):
            tax = Amount(amount, note.currency)
            postings.append(data.Posting(account, tax, None, None, None, None))
        if deferred:
            # Billed but not yet earned (prepaid credit undrawn, fee days to come): never revenue,
            # so the note reduces the deferred-revenue liability instead.
            postings.append(
                data.Posting(
                    rules.account("deferred", customer=note.customer),
                    Amount(deferred, note.currency),
                    None,
                    None,
                    None,
                    None,
                )
            )
        if s.applied:
            # The invoice is (partly) unpaid: the customer simply owes less.
            postings.append(
                data.Posting(receivable, Amount(-s.applied, note.currency), None, None, None, None)
            )
        if s.rest:
            # The credited part was already paid (or exceeds the invoice, --force):
            # the vendor now owes it back to the customer, a refund liability.
            postings.append(
                data.Posting(
                    rules.account("refund_liability", customer=note.customer),
                    Amount(-s.rest, note.currency),
                    None,
                    None,
                    None,
                    None,
                )
            )
        links = frozenset(
            {note.number, *(invoice_links(invoice) if invoice is not None else {note.invoice})}
        )
        entries.append(
            data.Transaction(
                entry_meta(
                    customer=note.customer,
                    invoice=note.invoice,
                    credit_note=note.number,
                    reason=note.reason,
                    invoice_line=Decimal(note.line) if note.line is not None else None,
                    forced=True if note.forced else None,
                ),
                note.date,
                FLAG,
                note.customer,
                f"Credit note {note.number} for {note.invoice}",
                frozenset(),
                links,
                postings,
            )
        )
        entries.append(
            data.Document(
                entry_meta(),
                note.date,
                receivable,
                f"{documents_dir}/{note.number}.html",
                frozenset(),
                frozenset({note.number}),
            )
        )
        if invoice is not None:
            entries.extend(
                fee_reduction_entries(note, invoice, rules, through=through, recut=recut)
            )
    return entries


def _discounts_reversed(
    note: CreditNote, invoice: Invoice | None, rules: Rules
) -> list[tuple[str, Decimal]]:
    """Per discounts account (``Income:Discounts``, or per plan), the discount ``note`` gives
    back (:attr:`ledger.facts.credit_notes.CreditPart.discount`)."""
    out: dict[str, Decimal] = {}
    for part in note.parts:
        if not part.discount or invoice is None or not 1 <= part.line <= len(invoice.lines):
            continue
        plan = _fee_plan(note.customer, invoice.lines[part.line - 1], rules)
        account = rules.account("discounts", plan=plan if plan in rules.plans else "")
        out[account] = out.get(account, ZERO) + part.discount
    return sorted(out.items())


def _fee_plan(customer: str, line: InvoiceLine, rules: Rules) -> str:
    """The plan whose subscription revenue an advance fee line was recognized to."""
    known = rules.customers.get(customer)
    start, _ = cycle_bounds(line.cycle)
    series = link_series(line.link or "")
    cycle = cycle_at(known, rules.plans, start, series) if known is not None else None
    if cycle is not None and cycle.key == line.cycle:
        return cycle.plan
    return line.description.split(" base fee ", 1)[0]  # "<plan> base fee <cycle> (in advance)"


def running_cycle(customer: str, cycle: str, rules: Rules, series: str = "") -> str:
    """The cycle ``cycle`` is now, as the subscriptions give it: cut by a change entered after
    a note was scheduled over it and corrected by no credit note of its own (``proration:
    none`` bills the cut cycle in full), a note's deferred part is taken out of the fee's
    recognition over the rest of the cycle as it now runs, so deferred revenue is 0 when it
    ends. Unchanged (or outside every subscription now): ``cycle``."""
    known = rules.customers.get(customer)
    start, _ = cycle_bounds(cycle)
    now = cycle_at(known, rules.plans, start, series) if known is not None else None
    return now.key if now is not None and now.start == start else cycle


def fee_reduction_entries(
    note: CreditNote,
    invoice: Invoice,
    rules: Rules,
    *,
    through: date | None = None,
    recut: Mapping[tuple[str, int], str] | None = None,
) -> list[data.Transaction]:
    """The recognition a note's deferred part on an advance fee takes out of the rest of the cycle.

    The accrual points keep recognizing the fee as billed (they are frozen with the
    cycle's invoice); at each of the cycle's accrual points from the note's date on,
    this books the change in :func:`fee_reduction` the other way, so the cycle
    recognizes ``fee − deferred part`` in all and its deferred revenue ends at 0.
    A cycle cut since without a correction note of its own (``proration: none``) is
    scheduled as it now runs (:func:`running_cycle`); one that ended before the note's date
    takes the note's part at once, on that date. A note of 2026-10-26 taking 30.00 out of
    ``[2026-10-15, 2026-11-15)``::

        2026-10-31 * "acme" "Base fee recognition reduced by CN-2026-000001 through 2026-10-31" ^CN-2026-000001 ^acme-2026-10-15
          customer: "acme"
          credit_note: "CN-2026-000001"
          cycle: "2026-10-15/2026-11-15"
          Income:Subscriptions:Pro             9.00 USD
          Liabilities:Deferred-Revenue:Acme   -9.00 USD
        2026-11-14 * … 21.00 USD (the rest: 30.00 in all)
    """  # noqa: E501
    entries = []
    for part in note.parts:
        if not (part.cycle and part.deferred) or not 1 <= part.line <= len(invoice.lines):
            continue
        now = (recut or {}).get((invoice.number, part.line))
        if now is not None and now != part.cycle:
            continue  # scheduled over a cycle a subscription change has since re-cut: taken at once
        fee = invoice.lines[part.line - 1]
        plan = _fee_plan(note.customer, fee, rules)
        series = link_series(fee.link or "")
        cycle = (
            running_cycle(note.customer, part.cycle, rules, series) if now is None else part.cycle
        )
        start, end = cycle_bounds(cycle)
        points = Cycle(
            note.customer, plan, start, end, start, end, 0, False, False
        ).accrual_points()
        if points[-1] < note.date:
            points = (note.date,)  # the cycle as it runs now ended before the note: at once
        done = ZERO
        for point in points:
            if point < note.date or (through is not None and point > through):
                continue
            cumulative = fee_reduction(part.deferred, cycle, note.date, point, note.currency)
            delta, done = cumulative - done, cumulative
            if not delta:
                continue
            entries.append(
                data.Transaction(
                    entry_meta(customer=note.customer, credit_note=note.number, cycle=cycle),
                    point,
                    FLAG,
                    note.customer,
                    f"Base fee recognition reduced by {note.number} through {point.isoformat()}",
                    frozenset(),
                    frozenset({note.number, *({fee.link} if fee.link else set())}),
                    [
                        data.Posting(
                            rules.account("subscription_revenue", plan=plan),
                            Amount(delta, note.currency),
                            None,
                            None,
                            None,
                            None,
                        ),
                        data.Posting(
                            rules.account("deferred", customer=note.customer),
                            Amount(-delta, note.currency),
                            None,
                            None,
                            None,
                            None,
                        ),
                    ],
                )
            )
    return entries
