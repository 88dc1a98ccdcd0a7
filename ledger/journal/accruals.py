"""Accruals and late usage: what a cycle's rating books while it is delivered.

An accrual point books the change in a cycle's cumulative *targets*. With
acme's cycle ``[2026-09-15, 2026-10-15)`` rated 4.00 of API calls through
Sep 30 and 15.00 through Oct 14, plus a 49.00 base fee billed in advance::

    2026-09-30 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-09-30" ^acme-2026-09-15
      Assets:Receivables:Unbilled:Acme          4.00 USD
      Income:Usage:Api-Calls                   -4.00 USD
        meter: "api_calls"
        quantity: 14000
      Liabilities:Deferred-Revenue:Acme        26.13 USD
      Income:Subscriptions:Pro                -26.13 USD

    2026-10-14 * "acme" "Usage accrual … through 2026-10-14" ^acme-2026-09-15
      Assets:Receivables:Unbilled:Acme         11.00 USD
      Income:Usage:Api-Calls                  -11.00 USD
      …

A cycle's targets (cumulative, rounded) are, per DESIGN:

- ``usage_revenue:<meter>``: usage charges of the meter (credit side);
- ``unbilled``: final-price usage − credit applied to it + commitment
  shortfall + base fee recognized in arrears;
- ``contract_asset``: non-final usage (volume tiers) − credit applied to it;
- ``deferred``: base fee recognized in advance + credit drawn (both reduce
  the deferred-revenue liability, hence a debit);
- ``subscription_revenue:<plan>``, ``commitment_revenue``: their revenue;
- ``discount:``: the discounts recognized (contra-revenue, a debit), taken off
  unbilled, the contract asset or deferred revenue as the line they discount
  (:mod:`ledger.discounts`).

Once a cycle is invoiced its targets are frozen in the invoice (a snapshot per
accrual point), so regenerating the books never moves an invoiced accrual.
Usage that arrives afterwards is a *late* adjustment: the difference between
the targets now and the frozen ones, posted on its own in the first open
month (metadata ``late: TRUE``, ``usage_date``) and billed on the customer's
next invoice.

Sealed months are never regenerated: :func:`ledger.journal.sealed.catch_up` compares what would now
be posted before the first open day with the sealed files and posts the
difference as late adjustments on that day.

Every usage entry names its meters and their quantities (DESIGN "Every posting
is traceable"): ``meter`` lists the cycle's meters, ``quantities`` gives each
one's figure (``"api_calls=1234,storage_gb=12.5"``, in ``meter`` order) — the
cumulative cycle-to-date quantity on an accrual, the change on a late entry —
so a free-tier meter whose amount did not move is still on record; a revenue
posting repeats its meter's figure as ``quantity``. ``evidence`` is the digest
of the events behind the accrual point (:meth:`ledger.session.Session.evidence`);
an invoice's ``evidence`` is :func:`ledger.journal.invoices.invoice_evidence`
over the accruals it froze.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

from beancount.core import data
from beancount.core.amount import Amount

from ledger.accruals import late_targets
from ledger.facts.invoices import Snapshot
from ledger.journal.meta import FLAG, entry_meta, usage_meta
from ledger.money import ZERO
from ledger.rules import Rules


def _signed_postings(
    rules: Rules,
    customer: str,
    currency: str,
    deltas: Mapping[str, Decimal],
    quantities: Mapping[str, Decimal],
    plan: str = "",
) -> list[data.Posting]:
    """Postings for target deltas: debit-natured keys positive, revenue negative."""
    postings = []
    for key in sorted(deltas):
        amount = deltas[key]
        if not amount:
            continue
        kind, _, ref = key.partition(":")
        meta: dict[str, object] | None = None
        if kind == "usage_revenue":
            account = rules.account(kind, meter=ref)
            meta = {"meter": ref}
            if ref in quantities:
                meta["quantity"] = quantities[ref]
            number = -amount
        elif kind == "subscription_revenue":
            account, number = rules.account(kind, plan=ref), -amount
        elif kind == "commitment_revenue":
            account, number = rules.account(kind), -amount
        elif kind == "discount":  # contra-revenue: a debit (ledger.discounts)
            account, number = rules.account("discounts", plan=plan), amount
        else:  # unbilled, contract_asset, deferred: asset up / liability down = debit
            account, number = rules.account(kind, customer=customer), amount
        postings.append(data.Posting(account, Amount(number, currency), None, None, None, meta))
    return postings


def accrual_entries(points: Sequence[Snapshot], rules: Rules) -> list[data.Transaction]:
    """One transaction per cycle and accrual point: the change in its targets."""
    entries: list[data.Transaction] = []
    previous: dict[str, Snapshot] = {}
    for snap in sorted(points, key=lambda s: (s.link, s.through)):
        before = previous.get(snap.link)
        now = snap.booked  # net of the tax in tax-inclusive prices (ledger.accruals)
        then = before.booked if before else {}
        deltas = {k: now.get(k, ZERO) - then.get(k, ZERO) for k in set(now) | set(then)}
        previous[snap.link] = snap
        postings = _signed_postings(
            rules, snap.customer, snap.currency, deltas, dict(snap.quantities), snap.plan
        )
        if not postings:
            continue
        # every meter the cycle charges, priced or not: a free tier posts no revenue but
        # its quantity is still what the customer used (and what the evidence covers)
        entries.append(
            data.Transaction(
                entry_meta(
                    customer=snap.customer,
                    cycle=snap.cycle,
                    **usage_meta(snap.quantities),
                    rules=rules.hash,
                    evidence=snap.evidence or None,
                ),
                snap.through,
                FLAG,
                snap.customer,
                f"Usage accrual {snap.cycle} through {snap.through.isoformat()}",
                frozenset(),
                frozenset({snap.link}),
                postings,
            )
        )
    return entries


def late_entries(
    late: Sequence[tuple[Snapshot, Snapshot, date]], rules: Rules
) -> list[data.Transaction]:
    """Late usage: targets now − targets frozen by the invoice, dated in the first open month."""
    entries = []
    for now, frozen, day in late:
        a, b = late_targets(now, frozen)
        deltas = {k: a.get(k, ZERO) - b.get(k, ZERO) for k in set(a) | set(b)}
        was = dict(frozen.quantities)
        quantities = {
            m: q - was.get(m, ZERO) for m, q in now.quantities
        }  # the change, as the amounts
        postings = _signed_postings(rules, now.customer, now.currency, deltas, quantities, now.plan)
        if postings:
            entries.append(
                data.Transaction(
                    entry_meta(
                        customer=now.customer,
                        cycle=now.cycle,
                        **usage_meta(sorted(quantities.items())),
                        rules=rules.hash,
                        evidence=now.evidence or None,
                        usage_date=now.through,
                        late=True,
                    ),
                    day,
                    FLAG,
                    now.customer,
                    f"Late usage for invoiced cycle {now.cycle}",
                    frozenset(),
                    frozenset({now.link}),
                    postings,
                )
            )
    return entries
