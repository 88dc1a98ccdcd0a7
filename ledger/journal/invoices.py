"""Invoices and prepaid-credit breakage.

An invoice moves what the cycle accrued into the receivable: Dr receivable /
Cr unbilled, contract asset and deferred revenue (an advance fee, credit drawn),
plus Cr ``Liabilities:Tax:{jurisdiction}`` for its tax, on the invoice date (with
tax-inclusive prices, what the accruals booked net of the tax, and the difference
from the invoice's tax to ``Income:Tax-Included``, :func:`ledger.tax.included_difference`); its
``evidence`` is :func:`invoice_evidence` over the accruals it froze. A prepaid
credit grant still undrawn at expiry is breakage: Dr deferred / Cr breakage revenue
on the expiry day.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from beancount.core import data
from beancount.core.amount import Amount

from ledger.journal.meta import FLAG, entry_meta
from ledger.money import ZERO
from ledger.rating import CreditMovement, grant_key
from ledger.rules import CreditGrant, Rules
from ledger.tax import included_difference, tax_postings

if TYPE_CHECKING:
    from ledger.facts.invoices import Invoice


def invoice_evidence(invoice: Invoice) -> str:
    r"""The evidence of everything an invoice billed from metered usage: sha256 over one
    ``<cycle link>\t<accrual date>\t<evidence>\n`` line per accrual snapshot it froze, in
    (link, date) order, first 16 hex digits; "" when it froze none or one has no evidence.

    The snapshots are the ``accruals`` of its JSON document, so anyone can recompute it::

        jq -r '.accruals | sort_by(.link, .through)[] | "\(.link)\t\(.through)\t\(.evidence)"' \
            books/documents/INV-2026-000007.json | sha256sum | cut -c1-16

    Late-usage lines are not in it: their evidence is on the late entries they bill. A
    threshold invoice's accrual (``progress``) is (jq: ``(.accruals + (.progress // []))``).
    """
    # a threshold invoice's frozen accrual counts like a cycle-end invoice's
    accruals = sorted((*invoice.accruals, *invoice.progress), key=lambda a: (a.link, a.through))
    if not accruals or not all(a.evidence for a in accruals):
        return ""
    lines = "".join(f"{a.link}\t{a.through.isoformat()}\t{a.evidence}\n" for a in accruals)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def invoice_entries(
    invoices: Sequence[Invoice], rules: Rules, documents_dir: str = "../documents"
) -> list[data.Directive]:
    """Receivable / what each invoice settles, plus a document directive for Fava.

    Document paths are relative to the month file (``books/YYYY/``) that holds them.
    """
    entries: list[data.Directive] = []
    for inv in invoices:
        receivable = rules.account("receivable", customer=inv.customer)
        postings = [
            data.Posting(receivable, Amount(inv.total, inv.currency), None, None, None, None)
        ]
        for key in ("unbilled", "contract_asset", "deferred"):
            amount = inv.settles(key)
            if amount:
                postings.append(
                    data.Posting(
                        rules.account(key, customer=inv.customer),
                        Amount(-amount, inv.currency),
                        None,
                        None,
                        None,
                        None,
                    )
                )
        # Prices that include the tax: what the accruals took out of them differs from the
        # invoice's tax (rounding, a plugin's other answer): the difference corrects revenue
        difference = included_difference(inv)  # (ledger.tax)
        if difference:
            accrued = inv.subtotal - sum((line.booked for line in inv.lines), ZERO)
            charged = inv.tax.amount if inv.tax is not None else ZERO
            meta = {"invoice_tax": charged, "accrued_tax": accrued}
            postings.append(
                data.Posting(
                    rules.account("tax_included"),
                    Amount(difference, inv.currency),
                    None,
                    None,
                    None,
                    meta,
                )
            )
        # Tax is owed to the jurisdiction, never revenue: Cr Liabilities:Tax:{jurisdiction}
        for account, amount in tax_postings(inv.tax, rules, inv.currency):  # (ledger.tax)
            tax = Amount(amount, inv.currency)
            postings.append(data.Posting(account, tax, None, None, None, None))
        links = frozenset({inv.number, *inv.cycles})
        entries.append(
            data.Transaction(
                entry_meta(
                    customer=inv.customer,
                    invoice=inv.number,
                    due=inv.due,
                    rules=inv.rules,
                    cycle=",".join(sorted({ln.cycle for ln in inv.lines if ln.cycle})) or None,
                    evidence=invoice_evidence(inv) or None,
                    # a wallet top-up's invoice names the grant it sold (ledger.topups)
                    grant=",".join(ln.grant for ln in inv.lines if ln.grant) or None,
                ),
                inv.date,
                FLAG,
                inv.customer,
                f"Invoice {inv.number}",
                frozenset(),
                links,
                postings,
            )
        )
        entries.append(
            data.Document(
                entry_meta(),
                inv.date,
                receivable,
                f"{documents_dir}/{inv.number}.html",
                frozenset(),
                frozenset({inv.number}),
            )
        )
    return entries


def grant_invoices(invoices: Iterable[Invoice]) -> dict[tuple[str, str], str]:
    """``(customer, grant key) → number`` of the issued invoice that billed each prepaid grant.

    A grant is billed on the customer's invoice dated its grant date, one
    ``credit_grant`` line per grant of that day in rules order, so the n-th such
    line bills grant ``"<date>#n"`` (:func:`ledger.rating.grant_key`; credit
    notes name grants the same way). A wallet top-up's line names its grant (``grant``).
    """
    found: dict[tuple[str, str], str] = {}
    for inv in invoices:
        grants = [ln for ln in inv.lines if ln.kind == "credit_grant" and not ln.grant]
        for n in range(1, len(grants) + 1):
            found[(inv.customer, f"{inv.date.isoformat()}#{n}")] = inv.number
        for ln in inv.lines:
            if ln.grant:
                found[(inv.customer, ln.grant)] = inv.number
    return found


def breakage_entries(
    movements: Sequence[CreditMovement],
    rules: Rules,
    invoices: Sequence[Invoice] = (),
    grants_by_customer: Mapping[str, Sequence[CreditGrant]] | None = None,
) -> list[data.Transaction]:
    """Credit left at expiry: deferred revenue → breakage revenue, one entry per grant and day.

    Dated the expiry date (or the accrual point where usage that fell hands back
    credit drawn from an expired grant). The entry names the grant (``grant``,
    its key ``"<granted>#<n>"``, and ``expires``) and the invoice that sold it
    (``grant_invoice`` and its link), so ``^INV-…`` shows the grant's whole life.
    The key is ``grant_invoice``, not ``invoice``: ``invoice`` marks an invoice's
    own transaction for the reports, Fava and ``trace``. No invoice issued for the
    grant yet (posting ahead of ``invoice``): no link, nothing invented::

        2026-10-15 * "cr" "Prepaid credit expired (breakage)" ^INV-2026-000003
          customer: "cr"
          grant: "2026-09-01#1"
          expires: 2026-10-15
          grant_invoice: "INV-2026-000003"
          rules: "…"
          Liabilities:Deferred-Revenue:Cr   4.00 USD
          Income:Credit-Breakage           -4.00 USD

    ``grants_by_customer``: the grants ``movements`` index (:attr:`ledger.rating.Rating.grants`,
    wallet top-ups included); None: the rules' ``credits``.
    """
    totals: dict[tuple[str, date, int], Decimal] = defaultdict(lambda: ZERO)
    for m in movements:
        if m.kind == "breakage":
            totals[(m.customer, m.day, m.grant)] += m.amount
    billed = grant_invoices(invoices)
    entries = []
    for (customer, day, index), amount in sorted(totals.items()):
        grants = (grants_by_customer or {}).get(customer, rules.customers[customer].credits)
        currency = rules.customers[customer].currency
        key = grant_key(grants, index)
        number = billed.get((customer, key))
        entries.append(
            data.Transaction(
                entry_meta(
                    customer=customer,
                    grant=key,
                    expires=grants[index].expires,
                    grant_invoice=number,
                    rules=rules.hash,
                ),
                day,
                FLAG,
                customer,
                "Prepaid credit expired (breakage)",
                frozenset(),
                frozenset({number} if number else ()),
                [
                    data.Posting(
                        rules.account("deferred", customer=customer),
                        Amount(amount, currency),
                        None,
                        None,
                        None,
                        None,
                    ),
                    data.Posting(
                        rules.account("breakage_revenue"),
                        Amount(-amount, currency),
                        None,
                        None,
                        None,
                        None,
                    ),
                ],
            )
        )
    return entries
