"""``meterbook report tax``: the taxable base and the tax of the invoices and credit notes
by month, jurisdiction, treatment and rate, tied to the books' tax liabilities.

Three invoices of November 2026 (100.25 EUR at 19 % German VAT, 100.00 EUR reverse-charged to
France, 100.25 USD at 7.25 % + 1.375 % Californian sales tax) give::

    Tax by month, jurisdiction and rate
    month    jurisdiction  treatment       tax                 rate    currency  taxable base  …
    2026-11  DE            standard        VAT                 19%     EUR             100.25  …
    2026-11  FR            reverse charge  VAT                 0%      EUR             100.00  …

with tax amounts 19.05 and 0.00, and each ``Liabilities:Tax`` account's movement in the month
next to the documents' tax. ``--month 2026-10..2026-12`` sums a quarter. The tax itself is
computed in :mod:`ledger.tax`; this module only reads it from the issued documents.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal

from ledger.facts.invoices import REVERSE_CHARGE, Tax, percent
from ledger.money import ZERO, round_money
from ledger.period import month_of, months_between
from ledger.reports.sources import Sources, months_of
from ledger.reports.table import Cell, Report, Table
from ledger.tax import is_tax_account, tax_account


def tax(sources: Sources, month: str | None = None) -> Report:
    """Taxable base and tax by month, jurisdiction and rate, tied to the books
    (:mod:`ledger.tax`); ``month`` may be a period ``2026-10..2026-12`` (a quarter's return)."""
    if month is not None and ".." in month:
        first, _, last = month.partition("..")
        return tax_report(sources, months_between(first, last))
    return tax_report(sources, months_of(sources, month))


def tax_movements(sources: Sources, months: Iterable[str]) -> dict[tuple[str, str, str], Decimal]:
    """``(month, tax account, currency) → tax owed`` by the books' postings dated in each month
    (credit balances shown positive: what the month added to the liability)."""
    wanted = set(months)
    out: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    for entry in sources.transactions:
        month = month_of(entry.date)
        if month not in wanted:
            continue
        for posting in entry.postings:
            if is_tax_account(sources.rules, posting.account) and posting.units is not None:
                number = posting.units.number
                if isinstance(number, Decimal):
                    out[(month, posting.account, posting.units.currency)] -= number
    return dict(out)


def _tax_row(
    jurisdiction: str,
    treatment: str,
    name: str,
    rate: Decimal,
    currency: str,
    base: Decimal,
    amount: Decimal,
    count: Decimal,
) -> tuple[Cell, ...]:
    """One row of the tax report's tables: base and tax rounded to the currency's minor unit."""
    return (
        jurisdiction or "(none)",
        treatment.replace("_", " "),
        name,
        percent(rate),
        currency,
        round_money(base, currency),
        round_money(amount, currency),
        int(count),
    )


def tax_report(sources: Sources, months: Sequence[str]) -> Report:
    """``meterbook report tax``: per month, jurisdiction, treatment and rate the taxable base and
    the tax of the invoices and credit notes dated in the month, and the tie-out to the books."""
    wanted = set(months)
    rows: dict[tuple[str, str, str, str, Decimal, str], list[Decimal]] = defaultdict(
        lambda: [ZERO, ZERO, ZERO]
    )
    expected: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    documents: list[tuple[date, Tax | None, str, int, str]] = [
        (inv.date, inv.tax, inv.currency, 1, inv.customer) for inv in sources.invoices
    ]
    documents += [
        (note.date, note.tax, note.currency, -1, note.customer) for note in sources.credit_notes
    ]
    # reverse-charge supplies per customer tax id: what a recapitulative statement (the EU's
    # EC Sales List) declares, each customer's base under its tax id
    recap: dict[tuple[str, str, str, str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for day, tax, currency, sign, customer in documents:
        month = month_of(day)
        if tax is None or month not in wanted:
            continue
        for line in tax.lines:
            if line.treatment == REVERSE_CHARGE:
                recap_key = (month, tax.customer_tax_id, customer, line.jurisdiction, currency)
                recap[recap_key][0] += sign * line.base
                recap[recap_key][1] += 1
            key = (month, line.jurisdiction, line.treatment, line.name, line.rate, currency)
            rows[key][0] += sign * line.base
            rows[key][1] += sign * line.amount
            rows[key][2] += 1
            if line.amount:
                expected[(month, tax_account(sources.rules, line.jurisdiction), currency)] += (
                    sign * line.amount
                )
    table: list[tuple[Cell, ...]] = [
        (key[0], *_tax_row(*key[1:], *figures)) for key, figures in sorted(rows.items())
    ]
    # the period's figures: what a quarterly (or yearly) return declares
    period: dict[tuple[str, str, str, Decimal, str], list[Decimal]] = defaultdict(
        lambda: [ZERO, ZERO, ZERO]
    )
    for (_month, jurisdiction, treatment, name, rate, currency), figures in rows.items():
        summed = period[(jurisdiction, treatment, name, rate, currency)]
        for i in range(3):
            summed[i] += figures[i]
    totals = [_tax_row(*key, *figures) for key, figures in sorted(period.items())]
    span = f"{min(months)}..{max(months)}" if months else "(none)"
    over = Table(
        f"Tax by jurisdiction and rate over {span}",
        (
            "jurisdiction",
            "treatment",
            "tax",
            "rate",
            "currency",
            "taxable base",
            "tax amount",
            "documents",
        ),
        tuple(totals),
    )

    books = tax_movements(sources, wanted)
    ties: list[tuple[Cell, ...]] = []
    for tie in sorted(set(books) | set(expected)):
        month, account, currency = tie
        have, want = books.get(tie, ZERO), expected.get(tie, ZERO)
        ties.append(
            (
                month,
                account,
                currency,
                round_money(want, currency),
                round_money(have, currency),
                round_money(have - want, currency),
            )
        )
    return Report(
        name="tax",
        title="Tax (invoices and credit notes, tied to the books)",
        method=(
            "Per month of the document's date: the taxable base and the tax of every issued "
            "invoice's tax lines, less the share credit notes reversed, by jurisdiction, "
            "treatment (standard, exempt, reverse charge) and rate, as a VAT return or sales-"
            "tax filing asks, then summed over the period (`--month FIRST..LAST`, e.g. a "
            "quarter). `documents` counts the invoices and credit notes behind a row. "
            "Reverse-charge supplies are listed again per customer tax id, as a "
            "recapitulative statement (the EU's EC Sales List) declares them. "
            "The last table ties the tax to the books: the month's movement of each "
            "Liabilities:Tax account (credits positive) against the documents' tax; a "
            "difference other than 0 means the books were not posted since a document was "
            "issued."
        ),
        tables=(
            Table(
                "Tax by month, jurisdiction and rate",
                (
                    "month",
                    "jurisdiction",
                    "treatment",
                    "tax",
                    "rate",
                    "currency",
                    "taxable base",
                    "tax amount",
                    "documents",
                ),
                tuple(table),
            ),
            *([over] if len(set(months)) > 1 else []),
            *(
                [
                    Table(
                        "Reverse-charge supplies by customer tax id",
                        (
                            "month",
                            "customer tax id",
                            "customer",
                            "jurisdiction",
                            "currency",
                            "taxable base",
                            "documents",
                        ),
                        tuple(
                            (m, tid, cust, j or "(none)", cur, round_money(base, cur), int(n))
                            for (m, tid, cust, j, cur), (base, n) in sorted(recap.items())
                        ),
                    )
                ]
                if recap
                else []
            ),
            Table(
                "Tax liabilities: documents vs books",
                ("month", "account", "currency", "documents", "books", "difference"),
                tuple(ties),
            ),
        ),
    )
