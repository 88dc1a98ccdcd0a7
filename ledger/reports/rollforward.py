"""``meterbook report rollforward``: the unbilled, contract-asset, deferred-revenue and
receivable balances rolled forward month by month from the books.

The workspace of ``tests/test_reports.py`` in October 2026::

    Receivables roll-forward (opening + invoiced − collected − credited ± adjustments = closing)
    month    currency  opening  invoiced  collected  credited  adjustments  closing
    2026-10  USD         35.00     62.00      10.00      0.00         0.00    87.00

Each posting on a customer's account is classified by the transaction that made it
(:func:`flow_of`) into the balance's flow columns; reductions are shown positive.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal

from beancount.core import data

from ledger.money import ZERO
from ledger.period import month_of, months_between
from ledger.reports.sources import Sources, at_minor_units, months_of
from ledger.reports.table import Cell, Report, Table


def flow_of(entry: data.Transaction) -> str:
    """What a transaction is, for the roll-forwards: accrual, invoice, payment, credit_note or
    adjustment.

    Late adjustments (``late: TRUE``) and rerate's debit adjustments (they name the
    invoice they correct) are adjustments whatever else they carry. A cash application
    (``application``: unapplied cash or a credit balance applied to an invoice) settles the
    invoice with money already received: a payment, although it names the invoice.
    """
    meta = entry.meta or {}
    if meta.get("late") or "debit_adjustment" in meta:
        return "adjustment"
    if "credit_note" in meta:
        return "credit_note"
    if "reference" in meta or "application" in meta:
        return "payment"
    if "invoice" in meta:
        return "invoice"
    return "accrual"


#: Per balance: its title, the flow columns and, per flow kind, (column, sign) into them.
#: Values are in the balance's natural sign (assets positive, deferred revenue positive).
ROLLFORWARDS: dict[str, tuple[str, tuple[str, ...], Mapping[str, tuple[str, int]]]] = {
    "unbilled": (
        "Unbilled roll-forward",
        ("accrued", "invoiced", "adjustments"),
        {"accrual": ("accrued", 1), "invoice": ("invoiced", -1)},
    ),
    "contract_asset": (
        "Contract-asset roll-forward",
        ("accrued", "invoiced", "adjustments"),
        {"accrual": ("accrued", 1), "invoice": ("invoiced", -1)},
    ),
    "deferred": (
        "Deferred-revenue roll-forward",
        ("billed", "recognized", "adjustments"),
        {"invoice": ("billed", 1), "accrual": ("recognized", -1)},
    ),
    "receivable": (
        "Receivables roll-forward",
        ("invoiced", "collected", "credited", "adjustments"),
        {"invoice": ("invoiced", 1), "payment": ("collected", -1), "credit_note": ("credited", -1)},
    ),
}
ROLLFORWARD_IDENTITY = {
    "unbilled": "opening + accrued − invoiced ± adjustments = closing",
    "contract_asset": "opening + accrued − invoiced ± adjustments = closing",
    "deferred": "opening + billed − recognized ± adjustments = closing",
    "receivable": "opening + invoiced − collected − credited ± adjustments = closing",
}


def rollforward_tables(sources: Sources, months: Sequence[str]) -> tuple[Table, ...]:
    """One roll-forward table per balance (all customers, per month and currency)."""
    # (kind, month, currency) → column → amount, in the balance's natural sign
    flows: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    for entry in sources.customer_transactions:  # per-customer accounts (summary: sub-ledger)
        flow = flow_of(entry)
        m = month_of(entry.date)
        for posting in entry.postings:
            found = sources.account_kinds.get(posting.account)
            if found is None or found[0] not in ROLLFORWARDS or posting.units is None:
                continue
            number = posting.units.number
            if not isinstance(number, Decimal):
                continue
            kind = found[0]
            natural = -number if kind == "deferred" else number
            column, sign = ROLLFORWARDS[kind][2].get(flow, ("adjustments", 1))
            flows[(kind, m, posting.units.currency)][column] += sign * natural
    tables = []
    first = min(months)
    for kind, (title, columns, _map) in ROLLFORWARDS.items():
        currencies = sorted({cur for (k, _m, cur) in flows if k == kind})
        rows: list[tuple[Cell, ...]] = []
        for currency in currencies:
            # the opening balance of the first month shown: every flow before it
            opening = sum(
                (
                    _signed(kind, c, v)
                    for (k, m, cur), f in flows.items()
                    if k == kind and cur == currency and m < first
                    for c, v in f.items()
                ),
                ZERO,
            )
            for m in months_between(first, max(months)):
                f = flows.get((kind, m, currency), {})
                change = sum((_signed(kind, c, v) for c, v in f.items()), ZERO)
                closing = opening + change
                if m in months and (opening or closing or any(f.values())):
                    rows.append(
                        (
                            m,
                            currency,
                            *at_minor_units(
                                currency, opening, *(f.get(c, ZERO) for c in columns), closing
                            ),
                        )
                    )
                opening = closing
        tables.append(
            Table(
                f"{title} ({ROLLFORWARD_IDENTITY[kind]})",
                ("month", "currency", "opening", *columns, "closing"),
                tuple(rows),
            )
        )
    return tuple(tables)


def _flow_of_column(kind: str, column: str) -> str:
    for flow, (c, _sign) in ROLLFORWARDS[kind][2].items():
        if c == column:
            return flow
    return "adjustment"


def _signed(kind: str, column: str, value: Decimal) -> Decimal:
    """A flow column's effect on the balance: reductions are shown positive, so subtract
    them."""
    if column == "adjustments":
        return value
    sign = ROLLFORWARDS[kind][2][_flow_of_column(kind, column)][1]
    return value if sign > 0 else -value


def rollforward(sources: Sources, month: str | None = None) -> Report:
    """Unbilled, contract-asset, deferred-revenue and receivable roll-forwards per month."""
    months = months_of(sources, month)
    return Report(
        name="rollforward",
        title="Balance roll-forwards (from the books)",
        method=(
            "Per month and currency, over all customers' accounts in the books: the opening "
            "balance (every posting before the month), the month's postings classified by the "
            "transaction that made them — usage accruals, base-fee recognition, credit draws "
            "and breakage are accrued/recognized; invoices are invoiced/billed; payments "
            "and cash applications (unapplied cash or a credit balance applied to an "
            "invoice) collected; credit notes credited; late adjustments (late: TRUE) and "
            "anything else are adjustments — and the closing balance. Reductions are shown "
            "as positive amounts, deferred revenue (a liability) as a positive balance. Each "
            "row satisfies its identity."
        ),
        tables=rollforward_tables(sources, months),
    )
