"""The journal: every entry of the books, built from the rating and the issued facts.

One module per kind of fact, each builder next to the accounting reason it
implements (the manual's accounting table, row by row):

- :mod:`ledger.journal.accruals`: usage, flat fees, base fees and commitments
  accrued at each accrual point; late usage for an invoiced cycle;
- :mod:`ledger.journal.invoices`: invoices (unbilled, contract asset and deferred
  revenue into the receivable, tax) and prepaid-credit breakage at expiry;
- :mod:`ledger.journal.payments`: payments and cash applications (receivable,
  unapplied cash, refunds);
- :mod:`ledger.journal.credit_notes`: credit notes and the fee reductions they cause;
- :mod:`ledger.journal.adjustments`: debit adjustments from a rerate, and the marks
  on the credit notes a rerate issued;
- :mod:`ledger.journal.sealed`: what changed behind a sealed month, posted as late
  adjustments on the first open day.

:mod:`ledger.journal.meta` is the one way to write an entry's metadata. Builders take
data (a :class:`~ledger.rating.Rating`, the issued facts, the rules) and return
entries; they read nothing from the store or the disk.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING

from beancount.core import data

from ledger.accruals import Inclusion, plan_points
from ledger.journal.accruals import accrual_entries, late_entries
from ledger.journal.invoices import breakage_entries, invoice_entries
from ledger.rating import Rating
from ledger.rules import Rules

if TYPE_CHECKING:
    from ledger.facts.invoices import Invoice


def post(
    rating: Rating,
    rules: Rules,
    invoices: Sequence[Invoice],
    *,
    first_open: date,
    evidence: Mapping[tuple[str, date], str] | None = None,
    included: Mapping[str, Inclusion] | None = None,
    leave_out: Collection[str] = frozenset(),
) -> list[data.Directive]:
    """Every generated entry through the rating's date (``included``: per cycle link, the
    tax its tax-inclusive prices hold, :func:`ledger.accruals.plan_points`); ``leave_out``:
    cycle links whose accruals are not generated (settled cycles of the sealed months, whose
    sealed entries are left out of the comparison too: :meth:`ledger.session.Session.generate`)."""
    points, late = plan_points(
        rating, invoices, first_open=first_open, evidence=evidence, included=included
    )
    if leave_out:
        points = [p for p in points if p.link not in leave_out]
        late = [d for d in late if d[0].link not in leave_out]
    entries: list[data.Directive] = []
    entries.extend(accrual_entries(points, rules))
    entries.extend(late_entries(late, rules))
    entries.extend(invoice_entries(invoices, rules))
    entries.extend(breakage_entries(rating.credits, rules, invoices, rating.grants))
    return entries
