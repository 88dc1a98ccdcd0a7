"""Debit adjustments from a rerate, and the marks on the credit notes it issued.

A rerate that finds an invoiced line now worth more posts the difference on the
rerate's date: Dr unbilled / Cr the line's revenue account (usage, subscription
or commitment revenue), billed on the customer's next invoice. One that finds it
worth less issues a credit note, which :func:`mark_credit_notes` tags with the
rerate's reason so the books show why it exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING

from beancount.core import data
from beancount.core.amount import Amount

from ledger.cycles import cycle_at, link_series
from ledger.facts.adjustments import Adjustment, by_document
from ledger.journal.meta import FLAG, entry_meta
from ledger.money import ZERO

if TYPE_CHECKING:
    from ledger.rules import Rules


def _revenue_account(
    adj: Adjustment, rules: Rules, plans: Mapping[str, str]
) -> tuple[str, dict[str, object] | None]:
    if adj.kind == "usage":
        return rules.account("usage_revenue", meter=adj.meter), {"meter": adj.meter}
    if adj.kind == "commitment":
        return rules.account("commitment_revenue"), None
    if (
        adj.kind == "subscription"
    ):  # more of a fee billed in advance (ledger.subscriptions): deferred
        return rules.account("deferred", customer=adj.customer), None
    return rules.account("subscription_revenue", plan=plans[adj.link]), None


def _plans(adjustments: Iterable[Adjustment], rules: Rules) -> dict[str, str]:
    """Each adjusted cycle's plan (base-fee adjustments credit its subscription revenue)."""
    found: dict[str, str] = {}
    for adj in adjustments:
        customer = rules.customers.get(adj.customer)
        cycle = (
            cycle_at(
                customer, rules.plans, date.fromisoformat(adj.cycle[:10]), link_series(adj.link)
            )
            if customer
            else None
        )
        if cycle is not None:
            found[adj.link] = cycle.plan
    return found


def debit_entries(
    adjustments: Sequence[Adjustment], rules: Rules, documents_dir: str = "../documents"
) -> list[data.Directive]:
    """Per debit adjustment: unbilled / the revenue re-rated up, dated its day, with a document.

    Revenue is earned when the rerate establishes it; it waits in unbilled for the
    customer's next invoice, as late usage does (DESIGN's accounting table).
    """
    plans = _plans(adjustments, rules)
    entries: list[data.Directive] = []
    for number, group in sorted(by_document(adjustments, "DA-").items()):
        first = group[0]
        unbilled = rules.account("unbilled", customer=first.customer)
        total = sum((adj.amount for adj in group), ZERO)
        postings = [data.Posting(unbilled, Amount(total, first.currency), None, None, None, None)]
        for adj in sorted(group, key=lambda a: a.line_key):
            account, meta = _revenue_account(adj, rules, plans)
            postings.append(
                data.Posting(account, Amount(-adj.amount, adj.currency), None, None, None, meta)
            )
        cycles = ",".join(sorted({adj.cycle for adj in group}))
        entries.append(
            data.Transaction(
                entry_meta(
                    customer=first.customer,
                    invoice=first.invoice,
                    debit_adjustment=number,
                    cycle=cycles,
                    rerate=True,
                    rules=first.rules,
                ),
                first.date,
                FLAG,
                first.customer,
                f"Debit adjustment {number} for {first.invoice}",
                frozenset(),
                frozenset({number, first.invoice, *(adj.link for adj in group)}),
                postings,
            )
        )
        entries.append(
            data.Document(
                entry_meta(),
                first.date,
                unbilled,
                f"{documents_dir}/{number}.html",
                frozenset(),
                frozenset({number}),
            )
        )
    return entries


def mark_credit_notes(
    entries: Sequence[data.Directive], adjustments: Iterable[Adjustment]
) -> list[data.Directive]:
    """Credit notes a rerate issued carry ``rerate: TRUE``, the rules hash and the cycles."""
    notes = by_document(adjustments, "CN-")
    marked: list[data.Directive] = []
    for entry in entries:
        number = entry.meta.get("credit_note") if isinstance(entry, data.Transaction) else None
        if isinstance(entry, data.Transaction) and number in notes:
            group = notes[str(number)]
            cycles = ",".join(sorted({adj.cycle for adj in group}))
            entry = entry._replace(
                meta={**entry.meta, "rerate": True, "rules": group[0].rules, "cycle": cycles}
            )
        marked.append(entry)
    return marked
