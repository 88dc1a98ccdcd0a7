"""Finance reports over the books and the store, and the month-end close report.

``meterbook report revenue --month 2026-10`` on a workspace with two customers
on plan ``p`` (base fee 30.00 in advance, 0.10 per API call) prints::

    Revenue (recognized, from the books)

    method: Recognized revenue is minus the sum of the books' Income postings (Beancount signs: income
    is negative), by the month of the entry's date; …

    Revenue by month and line
    month    group          line       account                 currency  revenue
    2026-10  usage          api_calls  Income:Usage:Api-Calls  USD          2.60
    2026-10  subscriptions  p          Income:Subscriptions:P  USD         60.45

Every report is a :class:`Report`: a name, a title, the method (one paragraph
saying how it is computed) and :class:`Table` s of plain cells (str, Decimal,
int, date or None), printable as text, JSON or CSV. Accounting figures (revenue,
balances, roll-forwards) are read from the books as Beancount loads them, so
they are what Fava shows and what the seal protects; usage quantities are
measured in the event store by SQL metering (:func:`ledger.metering.measure`);
the deferred-revenue schedule and the receivables' open amounts are recomputed
from the issued invoices, payments and credit notes in the store, and each is
shown next to the books' balance it must explain.

The close report (``books/YYYY/YYYY-MM.close.md``) is these reports for the
closed month in Markdown, with the findings, acceptances and the seal hash:
:func:`close_report_text`.
"""

from __future__ import annotations

import io
import json
import statistics
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beancount.core import data

from ledger import books, seal
from ledger.errors import BadInput
from ledger.escaping import SpreadsheetCsv, for_terminal
from ledger.metering import Window, cut_off_us, measure
from ledger.money import ZERO, normalize, round_money
from ledger.pricing import PricingError, PricingModel, Usage
from ledger.rating import Rating

if TYPE_CHECKING:
    from ledger.facts.credit_notes import CreditNote
    from ledger.facts.invoices import Invoice
    from ledger.facts.payments import Payment
    from ledger.reconcile import Finding
    from ledger.rules import Plan, Rules
    from ledger.session import Session

Cell = str | Decimal | int | date | None

#: Aging buckets by days past the due date (the due date itself is "current").
BUCKETS = ("current", "1–30", "31–60", "61–90", "over 90")
#: Forecast: months of history the trend is fitted on, and months forecast.
TREND_MONTHS = 6
FORECAST_MONTHS = 3
#: Risk: months in the trailing median, and the thresholds on latest ÷ median.
RISK_BASELINE_MONTHS = 3
CHURN_BELOW = Decimal("0.5")
SHOCK_ABOVE = Decimal("2")
#: Significant digits of revenue per unit; places of forecast quantities.
PER_UNIT_DIGITS = 6
QUANTITY = Decimal("0.01")


# --- records --------------------------------------------------------------------------


def _cell_text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, date):
        return cell.isoformat()
    if isinstance(cell, Decimal):
        return format(cell, "f")  # never exponent notation (1E-7)
    return str(cell)


def _cell_json(cell: Cell) -> str | int | None:
    if cell is None or isinstance(cell, int):
        return cell
    return _cell_text(cell)


@dataclass(frozen=True)
class Table:
    """One table of a report: a title, column names and rows of plain cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def to_json(self) -> dict[str, Any]:
        """``{"title", "columns", "rows": [{column: value}]}``, Decimals and dates as strings."""
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [
                {c: _cell_json(v) for c, v in zip(self.columns, row, strict=True)}
                for row in self.rows
            ],
        }

    def render(self) -> str:
        """A plain text table: text left-aligned, numbers right-aligned."""
        texts = [
            list(self.columns),
            *([for_terminal(_cell_text(c)) for c in row] for row in self.rows),
        ]
        widths = [max(len(r[i]) for r in texts) for i in range(len(self.columns))]
        numeric = [
            all(isinstance(row[i], Decimal | int) or row[i] is None for row in self.rows)
            and self.rows
            for i in range(len(self.columns))
        ]
        lines = [self.title]
        for n, row_text in enumerate(texts):
            cells = [
                t.rjust(w) if numeric[i] and n else t.ljust(w)
                for i, (t, w) in enumerate(zip(row_text, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        if not self.rows:
            lines.append("(none)")
        return "\n".join(lines)

    def markdown(self) -> str:
        """A GitHub-flavoured Markdown table (numbers right-aligned)."""
        if not self.rows:
            return "(none)"
        numeric = [
            all(isinstance(row[i], Decimal | int) or row[i] is None for row in self.rows)
            for i in range(len(self.columns))
        ]
        lines = [
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
        ]
        for row in self.rows:
            cells = (for_terminal(_cell_text(c)).replace("|", "\\|") for c in row)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


@dataclass(frozen=True)
class Report:
    """A finance report: what it is, how it is computed, and its tables."""

    name: str
    title: str
    method: str
    tables: tuple[Table, ...]

    def table(self, title: str) -> Table:
        """The table titled ``title`` (KeyError if none)."""
        for table in self.tables:
            if table.title == title:
                return table
        raise KeyError(title)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: ``{"report", "title", "method", "tables": [...]}``."""
        return {
            "report": self.name,
            "title": self.title,
            "method": self.method,
            "tables": [t.to_json() for t in self.tables],
        }

    def to_csv(self) -> str:
        """Each table as a CSV block: a header row starting with ``table``, then its rows
        (first cell the table's title); blocks are separated by an empty line."""
        out = io.StringIO()
        writer = SpreadsheetCsv(out)  # a text cell never runs as a formula; amounts stay numbers
        for n, table in enumerate(self.tables):
            if n:
                out.write("\n")
            writer.writerow(["table", *table.columns])
            for row in table.rows:
                writer.writerow([table.title, *(_cell_text(c) for c in row)])
        return out.getvalue()

    def render(self) -> str:
        """Plain text: title, method, then each table."""
        parts = [
            self.title,
            textwrap.fill(f"method: {self.method}", width=100, break_on_hyphens=False),
        ]
        parts.extend(t.render() for t in self.tables)
        return "\n\n".join(parts) + "\n"


# --- what reports read ------------------------------------------------------------------


class Sources:
    """The books (loaded once, as Beancount loads them) and the store's facts for one run."""

    def __init__(self, session: Session, entries: Iterable[data.Directive] | None = None):
        self.session = session
        if entries is not None:  # the books already loaded by the caller (close has them)
            self.transactions = [e for e in entries if isinstance(e, data.Transaction)]

    @property
    def rules(self) -> Rules:
        return self.session.rules

    @cached_property
    def transactions(self) -> list[data.Transaction]:
        main = self.session.workspace.main_file
        if not main.exists():
            return []
        entries = books.load_books(main)[0]
        return [e for e in entries if isinstance(e, data.Transaction)]

    @cached_property
    def invoices(self) -> list[Invoice]:
        from ledger.facts.invoices import load_invoices

        return load_invoices(self.session.engine)

    @cached_property
    def payments(self) -> list[Payment]:
        from ledger.facts.payments import load_payments

        return load_payments(self.session.engine)

    @cached_property
    def credit_notes(self) -> list[CreditNote]:
        from ledger.facts.credit_notes import load_credit_notes

        return load_credit_notes(self.session.engine)

    @cached_property
    def account_kinds(self) -> dict[str, tuple[str, str]]:
        """Per-customer account → (kind, customer) for unbilled, contract asset, receivable, deferred."""
        kinds: dict[str, tuple[str, str]] = {}
        for customer in sorted(self.rules.customers):
            for kind in (
                "unbilled",
                "contract_asset",
                "receivable",
                "deferred",
                "refund_liability",
            ):
                kinds.setdefault(self.rules.account(kind, customer=customer), (kind, customer))
        return kinds

    def books_months(self) -> list[str]:
        """Every month from the books' first transaction to their last."""
        if not self.transactions:
            raise BadInput("the books have no transactions yet; run `meterbook post` first")
        first = min(e.date for e in self.transactions)
        last = max(e.date for e in self.transactions)
        return month_range(seal.month_of(first), seal.month_of(last))

    def balances(self, on: date) -> dict[tuple[str, str, str], Decimal]:
        """(kind, customer, currency) → balance of the customer accounts at the end of ``on``."""
        totals: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
        for entry in self.transactions:
            if entry.date <= on:
                for posting in entry.postings:
                    found = self.account_kinds.get(posting.account)
                    if (
                        found is not None
                        and posting.units is not None
                        and isinstance(posting.units.number, Decimal)
                    ):
                        totals[(found[0], found[1], posting.units.currency)] += posting.units.number
        return totals


def _amount(value: Decimal, currency: str) -> Decimal:
    """An amount at the currency's minor unit (``0`` → ``0.00``); amounts in the books already are."""
    return round_money(value, currency)


def _amounts(currency: str, *values: Decimal) -> tuple[Decimal, ...]:
    return tuple(_amount(v, currency) for v in values)


# --- months -----------------------------------------------------------------------------


def month_end(month: str) -> date:
    """The last day of ``month``.

    >>> month_end("2026-02")
    datetime.date(2026, 2, 28)
    """
    return seal.month_start(seal.next_month(month)) - timedelta(days=1)


def month_range(first: str, last: str) -> list[str]:
    """``["2026-11", "2026-12", "2027-01"]`` for ``("2026-11", "2027-01")``.

    >>> month_range("2026-11", "2027-01")
    ['2026-11', '2026-12', '2027-01']
    """
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = seal.next_month(month)
    return months


def shift_month(month: str, by: int) -> str:
    """``month`` moved ``by`` months (negative: back).

    >>> shift_month("2026-01", -2), shift_month("2026-11", 3)
    ('2025-11', '2027-02')
    """
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _as_of(sources: Sources, month: str | None) -> str:
    """The month a balance report is taken at: ``--month``, else the books' last month."""
    return month if month is not None else sources.books_months()[-1]


def _usage_month(sources: Sources, month: str | None) -> str:
    """The last month of usage history: ``--month``, else the last complete month (before today's)."""
    if month is not None:
        return month
    return shift_month(seal.month_of(sources.session.today()), -1)


def _months_of(sources: Sources, month: str | None) -> list[str]:
    return [month] if month is not None else sources.books_months()


# --- revenue ------------------------------------------------------------------------------

REVENUE_GROUPS = ("usage", "subscriptions", "other")


def income_lines(rules: Rules) -> dict[str, tuple[str, str]]:
    """Income account → (group, line): usage per meter id, subscriptions per plan id, other by name."""
    lines: dict[str, tuple[str, str]] = {}
    for meter in sorted(rules.meters):
        lines.setdefault(rules.account("usage_revenue", meter=meter), ("usage", meter))
    for plan in sorted(rules.plans):
        lines.setdefault(rules.account("subscription_revenue", plan=plan), ("subscriptions", plan))
    lines.setdefault(rules.account("commitment_revenue"), ("other", "commitment shortfall"))
    lines.setdefault(rules.account("breakage_revenue"), ("other", "credit breakage"))
    lines.setdefault(rules.account("credit_notes"), ("other", "credit notes"))
    return lines


def _revenue_postings(sources: Sources) -> Iterator[tuple[str, str, str, str, str, str, Decimal]]:
    """(month, customer, group, line, account, currency, revenue) per Income posting (revenue = −amount)."""
    lines = income_lines(sources.rules)
    for entry in sources.transactions:
        customer = str((entry.meta or {}).get("customer") or entry.payee or "")
        for posting in entry.postings:
            if not posting.account.startswith("Income:") or posting.units is None:
                continue
            number = posting.units.number
            if not isinstance(number, Decimal):
                continue
            group, line = lines.get(posting.account, ("other", posting.account))
            yield (
                seal.month_of(entry.date),
                customer,
                group,
                line,
                posting.account,
                posting.units.currency,
                -number,
            )


def revenue(sources: Sources, month: str | None = None) -> Report:
    """Recognized revenue by month × line (meter, plan, other) and by month × customer."""
    months = set(_months_of(sources, month))
    by_line: dict[tuple[str, int, str, str, str], Decimal] = defaultdict(lambda: ZERO)
    by_customer: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    for m, customer, group, line, account, currency, amount in _revenue_postings(sources):
        if m not in months:
            continue
        by_line[(m, REVENUE_GROUPS.index(group), line, account, currency)] += amount
        by_customer[(m, customer, currency)][group] += amount
    line_rows = tuple(
        (m, REVENUE_GROUPS[g], line, account, currency, amount)
        for (m, g, line, account, currency), amount in sorted(by_line.items())
    )
    customer_rows: tuple[tuple[Cell, ...], ...] = tuple(
        (
            m,
            customer or "(none)",
            currency,
            *(_amount(groups[g], currency) for g in REVENUE_GROUPS),
            _amount(sum(groups.values(), ZERO), currency),
        )
        for (m, customer, currency), groups in sorted(by_customer.items())
    )
    return Report(
        name="revenue",
        title="Revenue (recognized, from the books)",
        method=(
            "Recognized revenue is minus the sum of the books' Income postings (Beancount signs: income is "
            "negative), by the month of the entry's date; late adjustments count in the open month they are "
            "posted in, as the books hold them. Usage revenue is per meter (its Income:Usage account), base "
            "fees under subscriptions per plan; commitment shortfall, credit breakage and credit notes "
            "(contra-revenue, negative) under other. The customer is the transaction's `customer` metadata."
        ),
        tables=(
            Table(
                "Revenue by month and line",
                ("month", "group", "line", "account", "currency", "revenue"),
                line_rows,
            ),
            Table(
                "Revenue by month and customer",
                ("month", "customer", "currency", "usage", "subscriptions", "other", "total"),
                customer_rows,
            ),
        ),
    )


# --- unbilled -------------------------------------------------------------------------------


def unbilled(sources: Sources, month: str | None = None) -> Report:
    """Per customer: unbilled and contract-asset balances at the end of the month."""
    as_of = _as_of(sources, month)
    day = month_end(as_of)
    balances = sources.balances(day)
    keys = sorted({(c, cur) for (k, c, cur) in balances if k in ("unbilled", "contract_asset")})
    rows: list[tuple[Cell, ...]] = []
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for customer, currency in keys:
        u, ca = (
            balances.get(("unbilled", customer, currency), ZERO),
            balances.get(("contract_asset", customer, currency), ZERO),
        )
        rows.append((customer, currency, *_amounts(currency, u, ca, u + ca)))
        totals[currency][0] += u
        totals[currency][1] += ca
    for currency, (u, ca) in sorted(totals.items()):
        rows.append(("(total)", currency, *_amounts(currency, u, ca, u + ca)))
    return Report(
        name="unbilled",
        title=f"Unbilled revenue at {day}",
        method=(
            f"Balances of each customer's unbilled and contract-asset accounts in the books after every "
            f"entry dated on or before {day}: usage, commitment shortfalls and arrears base fees accrued and "
            "not invoiced yet (contract assets: volume-tier usage whose price depends on the cycle-end total)."
        ),
        tables=(
            Table(
                f"Unbilled at {day}",
                ("customer", "currency", "unbilled", "contract asset", "total"),
                tuple(rows),
            ),
        ),
    )


# --- deferred revenue ---------------------------------------------------------------------


@dataclass(frozen=True)
class Deferral:
    """Deferred revenue still to be recognized at a date: one advance base fee or one credit grant."""

    customer: str
    currency: str
    source: str
    remaining: Decimal
    #: month ("YYYY-MM", or "no expiry") → amount scheduled to be recognized in it
    schedule: tuple[tuple[str, Decimal], ...]


def deferrals(sources: Sources, day: date, rating: Rating | None = None) -> list[Deferral]:
    """What the deferred-revenue balances at the end of ``day`` consist of, and when it is recognized.

    Advance base fees on invoices dated on or before ``day`` are recognized by day
    to their cycle's end (month by month, as the accrual points post it); prepaid
    credits granted on invoices on or before ``day`` are drawn by usage, so their
    remainder is scheduled in the month they expire (breakage at the latest).
    """
    from ledger.credit_notes import fee_deferred_left

    out: list[Deferral] = []
    invoices = [inv for inv in sources.invoices if inv.date <= day]
    notes = [
        n for n in sources.credit_notes if n.date <= day
    ]  # a note's deferred part is off the fee
    for inv in invoices:
        for index, line in enumerate(inv.lines, start=1):
            if line.kind != "base_fee" or line.account != "deferred" or not line.cycle:
                continue
            end = date.fromisoformat(line.cycle.partition("/")[2])
            fee_left = fee_deferred_left(inv, index, notes, day)
            if not fee_left:
                continue
            schedule = []
            previous = fee_left
            for m in month_range(
                shift_month(seal.month_of(day), 1), seal.month_of(end - timedelta(days=1))
            ):
                remaining = fee_deferred_left(inv, index, notes, month_end(m))
                schedule.append((m, previous - remaining))
                previous = remaining
            out.append(
                Deferral(
                    inv.customer,
                    inv.currency,
                    f"base fee {line.cycle} ({inv.number})",
                    fee_left,
                    tuple(schedule),
                )
            )
    invoiced_grants = {
        (inv.customer, inv.date)
        for inv in invoices
        if any(line.kind == "credit_grant" for line in inv.lines)
    }
    needs_rating = any(
        (cid, g.granted) in invoiced_grants
        for cid, customer in sources.rules.customers.items()
        for g in customer.credits
    )
    if needs_rating:
        rating = rating or sources.session.rate(day)
        left: dict[tuple[str, int], Decimal] = defaultdict(lambda: ZERO)
        for move in rating.credits:
            if move.day <= day:
                left[(move.customer, move.grant)] += (
                    move.amount if move.kind == "return" else -move.amount
                )
        for cid, customer in sorted(sources.rules.customers.items()):
            for g, grant in enumerate(customer.credits):
                if (cid, grant.granted) not in invoiced_grants:
                    continue
                remaining = grant.amount + left[(cid, g)]
                if remaining <= 0:
                    continue
                when = seal.month_of(grant.expires) if grant.expires else "no expiry"
                expiry = f", expires {grant.expires}" if grant.expires else ""
                out.append(
                    Deferral(
                        cid,
                        customer.currency,
                        f"prepaid credit granted {grant.granted}{expiry}",
                        remaining,
                        ((when, remaining),),
                    )
                )
    return sorted(out, key=lambda d: (d.customer, d.source))


def deferred(sources: Sources, month: str | None = None) -> Report:
    """Deferred-revenue balances per customer and the waterfall of their future recognition."""
    as_of = _as_of(sources, month)
    day = month_end(as_of)
    items = deferrals(sources, day)
    balances = sources.balances(day)
    parts: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for item in items:
        parts[(item.customer, item.currency)][0 if item.source.startswith("base fee") else 1] += (
            item.remaining
        )
    for (kind, customer, currency), value in balances.items():
        if kind == "deferred" and value:
            parts.setdefault((customer, currency), [ZERO, ZERO])
    rows: list[tuple[Cell, ...]] = []
    for (customer, currency), (fees, credits) in sorted(parts.items()):
        in_books = -balances.get(
            ("deferred", customer, currency), ZERO
        )  # a liability: credit balance
        rows.append(
            (
                customer,
                currency,
                *_amounts(
                    currency, fees, credits, fees + credits, in_books, in_books - fees - credits
                ),
            )
        )
    waterfall = tuple(
        (m, item.customer, item.currency, item.source, amount)
        for item in items
        for m, amount in item.schedule
    )
    by_month: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for m, _customer, currency, _source, amount in waterfall:
        by_month[(m, currency)] += amount
    return Report(
        name="deferred",
        title=f"Deferred revenue at {day}",
        method=(
            f"Deferred revenue at {day} is recomputed from the issued invoices and compared with the books "
            "(a liability, shown positive). Advance base fees are recognized by day over their cycle, "
            "round(fee × days elapsed ÷ days in cycle) cumulative, exactly as the accrual points post them, so "
            "the waterfall gives each later month's share until the cycle ends. Prepaid credits are recognized "
            "as usage draws them, which cannot be scheduled: the remainder of each grant is placed in the month "
            "it expires (as breakage, at the latest), or under 'no expiry'. 'difference' is books − schedule "
            "and is 0 when the books hold exactly these deferrals. A credit note on an advance fee takes its "
            "deferred part out of the fee's remaining recognition, and one on prepaid credit out of the grant."
        ),
        tables=(
            Table(
                f"Deferred revenue at {day}",
                (
                    "customer",
                    "currency",
                    "base fees",
                    "prepaid credits",
                    "scheduled",
                    "books",
                    "difference",
                ),
                tuple(rows),
            ),
            Table(
                "Waterfall of future recognition",
                ("month", "customer", "currency", "source", "amount"),
                tuple(sorted(waterfall, key=lambda r: (r[0], r[1], r[3]))),
            ),
            Table(
                "Waterfall by month",
                ("month", "currency", "amount"),
                tuple((m, c, a) for (m, c), a in sorted(by_month.items())),
            ),
        ),
    )


# --- aging --------------------------------------------------------------------------------


def aging_bucket(days_past_due: int) -> str:
    """The aging bucket of an open amount ``days_past_due`` days after its due date.

    >>> [aging_bucket(d) for d in (-3, 0, 1, 30, 31, 60, 61, 90, 91)]
    ['current', 'current', '1–30', '1–30', '31–60', '31–60', '61–90', '61–90', 'over 90']
    """
    if days_past_due <= 0:
        return BUCKETS[0]
    if days_past_due <= 30:
        return BUCKETS[1]
    if days_past_due <= 60:
        return BUCKETS[2]
    if days_past_due <= 90:
        return BUCKETS[3]
    return BUCKETS[4]


@dataclass(frozen=True)
class OpenItem:
    """An invoice with an amount still open at a date; ``days_past_due`` is 0 until its due
    date (an invoice due 2026-11-14 is 0 days past due, 'current', at 2026-10-31, not -14)."""

    invoice: str
    customer: str
    invoice_date: date
    due: date
    days_past_due: int
    currency: str
    open: Decimal

    @property
    def bucket(self) -> str:
        return aging_bucket(self.days_past_due)


def open_items(sources: Sources, day: date) -> list[OpenItem]:
    """Invoices dated on or before ``day`` still open after the payments and credit notes
    dated on or before ``day`` (the settlement replay of :func:`ledger.payments.open_amounts`)."""
    from ledger.payments import open_amounts

    invoices = [inv for inv in sources.invoices if inv.date <= day]
    from ledger.facts.payments import load_applications

    amounts = open_amounts(
        invoices,
        [p for p in sources.payments if p.date <= day],
        [n for n in sources.credit_notes if n.date <= day],
        [a for a in load_applications(sources.session.engine) if a.date <= day],
    )
    items = []
    for inv in invoices:
        left = amounts.get(inv.number, ZERO)
        if left > 0:
            due = inv.due_date
            past_due = max(0, (day - due).days)  # not due yet: 0 days past due, 'current'
            items.append(
                OpenItem(inv.number, inv.customer, inv.date, due, past_due, inv.currency, left)
            )
    return sorted(items, key=lambda i: (i.customer, i.invoice_date, i.invoice))


def aging(sources: Sources, month: str | None = None) -> Report:
    """Open receivables per invoice at the month's end, bucketed by days past due."""
    as_of = _as_of(sources, month)
    day = month_end(as_of)
    items = open_items(sources, day)
    balances = sources.balances(day)
    per_customer: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
        lambda: {b: ZERO for b in BUCKETS}
    )
    for item in items:
        per_customer[(item.customer, item.currency)][item.bucket] += item.open
    for (kind, customer, currency), value in balances.items():
        if kind == "receivable" and value:
            per_customer.setdefault((customer, currency), {b: ZERO for b in BUCKETS})
    summary: list[tuple[Cell, ...]] = []
    totals: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {b: ZERO for b in (*BUCKETS, "books")}
    )
    for (customer, currency), buckets in sorted(per_customer.items()):
        in_books = balances.get(("receivable", customer, currency), ZERO)
        summary.append(
            (
                customer,
                currency,
                *_amounts(
                    currency, *(buckets[b] for b in BUCKETS), sum(buckets.values(), ZERO), in_books
                ),
            )
        )
        for b in BUCKETS:
            totals[currency][b] += buckets[b]
        totals[currency]["books"] += in_books
    for currency, t in sorted(totals.items()):
        summary.append(
            (
                "(total)",
                currency,
                *_amounts(
                    currency,
                    *(t[b] for b in BUCKETS),
                    sum((t[b] for b in BUCKETS), ZERO),
                    t["books"],
                ),
            )
        )
    return Report(
        name="aging",
        title=f"Receivables aging at {day}",
        method=(
            f"Open amount of each invoice dated on or before {day} after the payments and credit notes dated "
            f"on or before {day}, replayed in date order as the books settle them. The due date is the one stated "
            "on the invoice: its date plus the customer's payment_terms_days (0, due on receipt, unless the "
            "rules say otherwise); an invoice is 'current' (0 days past due) until its due "
            "date; days past due = the report date − the due date, bucketed current, 1–30, 31–60, "
            "61–90 and over 90. 'books' is the customer's receivable balance in the books at the same date, "
            "which the open amounts add up to when nothing was credited beyond an invoice."
        ),
        tables=(
            Table(
                f"Open invoices at {day}",
                (
                    "invoice",
                    "customer",
                    "invoice date",
                    "due date",
                    "days past due",
                    "bucket",
                    "currency",
                    "open",
                ),
                tuple(
                    (
                        i.invoice,
                        i.customer,
                        i.invoice_date,
                        i.due,
                        i.days_past_due,
                        i.bucket,
                        i.currency,
                        i.open,
                    )
                    for i in items
                ),
            ),
            Table(
                "Aging by customer",
                ("customer", "currency", *BUCKETS, "total", "books"),
                tuple(summary),
            ),
        ),
    )


# --- roll-forward ---------------------------------------------------------------------------


def flow_of(entry: data.Transaction) -> str:
    """What a transaction is, for the roll-forwards: accrual, invoice, payment, credit_note or adjustment.

    Late adjustments (``late: TRUE``) and rerate's debit adjustments (they name the
    invoice they correct) are adjustments whatever else they carry.
    """
    meta = entry.meta or {}
    if meta.get("late") or "debit_adjustment" in meta:
        return "adjustment"
    if "credit_note" in meta:
        return "credit_note"
    if "reference" in meta:
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
    for entry in sources.transactions:
        flow = flow_of(entry)
        m = seal.month_of(entry.date)
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
            for m in month_range(first, max(months)):
                f = flows.get((kind, m, currency), {})
                change = sum((_signed(kind, c, v) for c, v in f.items()), ZERO)
                closing = opening + change
                if m in months and (opening or closing or any(f.values())):
                    rows.append(
                        (
                            m,
                            currency,
                            *_amounts(
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
    """A flow column's effect on the balance: reductions are shown positive, so subtract them."""
    if column == "adjustments":
        return value
    sign = ROLLFORWARDS[kind][2][_flow_of_column(kind, column)][1]
    return value if sign > 0 else -value


def rollforward(sources: Sources, month: str | None = None) -> Report:
    """Unbilled, contract-asset, deferred-revenue and receivable roll-forwards per month."""
    months = _months_of(sources, month)
    return Report(
        name="rollforward",
        title="Balance roll-forwards (from the books)",
        method=(
            "Per month and currency, over all customers' accounts in the books: the opening balance (every "
            "posting before the month), the month's postings classified by the transaction that made them — "
            "usage accruals, base-fee recognition, credit draws and breakage are accrued/recognized; invoices "
            "are invoiced/billed; payments collected; credit notes credited; late adjustments (late: TRUE) and "
            "anything else are adjustments — and the closing balance. Reductions are shown as positive "
            "amounts, deferred revenue (a liability) as a positive balance. Each row satisfies its identity."
        ),
        tables=rollforward_tables(sources, months),
    )


# --- usage from the store -------------------------------------------------------------------


def monthly_usage(sources: Sources, months: Sequence[str]) -> dict[tuple[str, str, str], Usage]:
    """(customer, meter, month) → the meter's aggregate over the calendar month (workspace
    timezone), measured in SQL; only customer/meter pairs with events in some month."""
    session = sources.session
    tz = session.workspace.tz
    windows = {
        (cid, m): Window(
            cid,
            cut_off_us(seal.month_start(m), tz),
            cut_off_us(seal.month_start(seal.next_month(m)), tz),
        )
        for cid in sorted(sources.rules.customers)
        for m in months
    }
    result: dict[tuple[str, str, str], Usage] = {}
    for meter_id, meter in sorted(sources.rules.meters.items()):
        measured = measure(session.engine, meter, list(windows.values()))
        for (cid, m), window in windows.items():
            usage = measured[window]
            if usage.events or usage.quantity:
                result[(cid, meter_id, m)] = usage
    for cid, meter_id, _m in list(result):
        for m in months:
            result.setdefault((cid, meter_id, m), Usage(ZERO, 0))
    return result


def _per_unit(amount: Decimal, quantity: Decimal) -> Decimal:
    """``amount ÷ quantity`` to :data:`PER_UNIT_DIGITS` significant digits (tokens cost millionths).

    >>> _per_unit(Decimal("2.60"), Decimal(26)), _per_unit(Decimal("10.59"), Decimal(5296513))
    (Decimal('0.10'), Decimal('0.00000199943'))
    """
    with localcontext() as context:
        context.prec = PER_UNIT_DIGITS
        context.rounding = ROUND_HALF_EVEN
        return amount / quantity


def arpu(sources: Sources, month: str | None = None) -> Report:
    """Average revenue per unit: usage revenue (books) ÷ quantity (store), per meter and month."""
    months = _months_of(sources, month)
    revenue_by: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    for m, _customer, group, line, _account, currency, amount in _revenue_postings(sources):
        if group == "usage" and m in months:
            revenue_by[(m, line, currency)] += amount
    quantity_by: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    customers: dict[tuple[str, str, str], set[str]] = {}
    for (cid, meter, m), usage in monthly_usage(sources, months).items():
        currency = sources.rules.customers[cid].currency
        quantity_by[(m, meter, currency)] += usage.quantity
        if usage.quantity:
            customers.setdefault((m, meter, currency), set()).add(cid)
    rows = []
    for key in sorted(set(revenue_by) | {k for k, q in quantity_by.items() if q}):
        m, meter, currency = key
        quantity, amount = quantity_by.get(key, ZERO), revenue_by.get(key, ZERO)
        per_unit = _per_unit(amount, quantity) if quantity else None
        unit = sources.rules.meters[meter].unit if meter in sources.rules.meters else ""
        rows.append(
            (
                m,
                meter,
                unit,
                currency,
                len(customers.get(key, ())),
                quantity,
                _amount(amount, currency),
                per_unit,
            )
        )
    return Report(
        name="arpu",
        title="Average revenue per unit",
        method=(
            "Per meter and calendar month: the usage revenue recognized in the books (its Income:Usage "
            "account, entries dated in the month) divided by the quantity the meter measured in the event "
            "store over the same month (SQL metering, workspace timezone, summed over the customers billing "
            "in that currency). Accruals at month ends make the two cover the same usage; late adjustments "
            "land in the month they are posted. Shown to 6 significant digits; empty when nothing was measured."
        ),
        tables=(
            Table(
                "Revenue per unit by month and meter",
                (
                    "month",
                    "meter",
                    "unit",
                    "currency",
                    "customers",
                    "quantity",
                    "revenue",
                    "revenue per unit",
                ),
                tuple(rows),
            ),
        ),
    )


# --- forecast -------------------------------------------------------------------------------


def linear_trend(values: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Least-squares line ``(intercept, slope)`` through ``(0, v0), (1, v1), …``.

    >>> linear_trend([Decimal(100), Decimal(200), Decimal(300)])
    (Decimal('100'), Decimal('100'))
    >>> linear_trend([Decimal(7)])
    (Decimal('7'), Decimal('0'))
    """
    n = len(values)
    if n < 2:
        return (values[0] if values else ZERO), ZERO
    mean_x = Decimal(n - 1) / 2
    mean_y = sum(values, ZERO) / n
    sxx = sum(((Decimal(x) - mean_x) ** 2 for x in range(n)), ZERO)
    sxy = sum(((Decimal(x) - mean_x) * (y - mean_y) for x, y in enumerate(values)), ZERO)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    return normalize(intercept), normalize(slope)


def plan_on(rules: Rules, customer: str, day: date) -> Plan | None:
    """The plan of the customer's subscription running on ``day`` (None: no subscription).

    Subscriptions are in start order and a later start ends the earlier one (a plan change).
    """
    running = None
    for sub in rules.customers[customer].subscriptions:
        if sub.start > day:
            break
        running = sub if sub.end is None or day < sub.end else None
    return rules.plans[running.plan] if running is not None else None


CYCLE_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


def _last_month_rate(
    sources: Sources,
    customer: str,
    meter: str,
    month: str,
    model: PricingModel,
    terms: Any,
    bands: tuple[Decimal, ...],
) -> Decimal:
    """Amount per unit of quantity in ``month``, priced with the events counted by the model's bands
    (a per-event minimum or maximum cannot be priced from a forecast total alone); 0 without usage."""
    tz = sources.session.workspace.tz
    window = Window(
        customer,
        cut_off_us(seal.month_start(month), tz),
        cut_off_us(seal.month_start(seal.next_month(month)), tz),
    )
    usage = measure(sources.session.engine, sources.rules.meters[meter], [window], bands)[window]
    if not usage.quantity:
        return ZERO
    return model.price(terms, usage).amount / usage.quantity


def forecast(sources: Sources, month: str | None = None) -> Report:
    """The next three months per customer from the trailing usage trend, priced with the plan."""
    last = _usage_month(sources, month)
    history = month_range(shift_month(last, 1 - TREND_MONTHS), last)
    future = [shift_month(last, k) for k in range(1, FORECAST_MONTHS + 1)]
    usage = monthly_usage(sources, history)
    models = sources.session.registry.pricing_models
    trends: dict[tuple[str, str], tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal], int]] = {}
    history_rows = []
    for cid, meter in sorted({(c, mt) for c, mt, _m in usage}):
        series = [usage[(cid, meter, m)] for m in history]
        start = next(i for i, u in enumerate(series) if u.events or u.quantity)
        series = series[start:]
        q = linear_trend([u.quantity for u in series])
        e = linear_trend([Decimal(u.events) for u in series])
        trends[(cid, meter)] = (q, e, len(series))
        history_rows.append(
            (
                cid,
                meter,
                history[start],
                len(series),
                series[-1].quantity,
                q[1].quantize(QUANTITY, rounding=ROUND_HALF_EVEN),
            )
        )
    meter_rows: list[tuple[Cell, ...]] = []
    customer_rows: list[tuple[Cell, ...]] = []
    for cid in sorted(sources.rules.customers):
        currency = sources.rules.customers[cid].currency
        totals: list[Cell] = []
        plans = []
        for k, m in enumerate(future, start=1):
            plan = plan_on(sources.rules, cid, seal.month_start(m))
            if plan is None:
                totals.append(None)
                continue
            plans.append(plan.id)
            total: Decimal | None = ZERO
            usage_total = ZERO
            per_month = CYCLE_MONTHS[plan.cycle]
            for charge in plan.charges:
                trend = trends.get((cid, charge.meter))
                quantity, events = ZERO, 0
                if trend is not None:
                    (qa, qb), (ea, eb), n = trend
                    quantity = max(ZERO, qa + qb * (n - 1 + k)).quantize(
                        QUANTITY, rounding=ROUND_HALF_EVEN
                    )
                    events = max(
                        0, int((ea + eb * (n - 1 + k)).to_integral_value(rounding=ROUND_HALF_EVEN))
                    )
                try:
                    model = models[charge.model]
                    bands = model.bands(charge.terms)
                    if bands:  # per-event bands (a minimum or maximum per event): last month's effective rate
                        amount: Decimal | None = round_money(
                            _last_month_rate(
                                sources, cid, charge.meter, last, model, charge.terms, bands
                            )
                            * quantity,
                            currency,
                        )
                    else:  # a month's share of a cycle used at this monthly rate
                        scale = (
                            per_month
                            if sources.rules.meters[charge.meter].aggregation in ("count", "sum")
                            else 1
                        )
                        cycle_usage = Usage(quantity * scale, events * scale)
                        amount = round_money(
                            model.price(charge.terms, cycle_usage).amount / per_month, currency
                        )
                except (PricingError, ArithmeticError, KeyError):
                    amount = None
                meter_rows.append((cid, m, plan.id, charge.meter, quantity, amount, currency))
                if amount is None or total is None:
                    total = None
                else:
                    total += amount
                    usage_total += amount
            if total is not None and plan.base_fee is not None:
                fee = round_money(plan.base_fee.amount / per_month, currency)
                meter_rows.append((cid, m, plan.id, "(base fee)", None, fee, currency))
                total += fee
            if total is not None and plan.minimum_commitment is not None and per_month == 1:
                shortfall = max(ZERO, plan.minimum_commitment - usage_total)
                if shortfall:
                    meter_rows.append(
                        (cid, m, plan.id, "(commitment shortfall)", None, shortfall, currency)
                    )
                    total += shortfall
            totals.append(total)
        if plans:
            customer_rows.append((cid, currency, ",".join(sorted(set(plans))), *totals))
    return Report(
        name="forecast",
        title=f"Forecast for {future[0]} to {future[-1]} (trend through {last})",
        method=(
            f"Per customer and meter, the monthly quantity (and event count) measured in the store over the "
            f"trailing {TREND_MONTHS} calendar months through {last} — from the first month with usage, if "
            f"later — is fitted with a least-squares line y = a + b·x (x = 0, 1, … per month); the next "
            f"{FORECAST_MONTHS} months are the line's values at the following x, never below 0. Each month's "
            "quantity is priced with the customer's plan on that month's first day as if the month were one "
            "billing cycle — for a quarterly or yearly plan, a cycle used at that monthly rate (count and sum "
            "meters times the cycle's months; max, latest and unique counts as they are) divided by its "
            "months — (the plan's pricing plugin, rounded half-even; a model with per-event bands, "
            "such as a percentage with a per-event minimum or maximum, at the amount per unit it gave in "
            f"{last}), plus the base fee (a quarterly or "
            "yearly fee spread evenly by month) and, for monthly plans, any minimum-commitment shortfall. "
            "Prepaid credits and taxes are not deducted."
        ),
        tables=(
            Table(
                "Forecast by customer",
                ("customer", "currency", "plan", *future),
                tuple(customer_rows),
            ),
            Table(
                "Forecast by customer and meter",
                ("customer", "month", "plan", "meter", "quantity", "amount", "currency"),
                tuple(meter_rows),
            ),
            Table(
                "Usage trend",
                ("customer", "meter", "from", "months", "last month quantity", "slope per month"),
                tuple(history_rows),
            ),
        ),
    )


# --- risk -----------------------------------------------------------------------------------


def risk_status(latest: Decimal, median: Decimal) -> str:
    """``churn risk`` when the latest month is at most half the trailing median, ``bill-shock
    risk`` when it is at least twice, ``no baseline`` when the median is 0, else ``ok``.

    >>> [risk_status(Decimal(a), Decimal(100)) for a in (10, 50, 51, 199, 200)]
    ['churn risk', 'churn risk', 'ok', 'ok', 'bill-shock risk']
    """
    if median <= 0:
        return "no baseline"
    ratio = latest / median
    if ratio <= CHURN_BELOW:
        return "churn risk"
    if ratio >= SHOCK_ABOVE:
        return "bill-shock risk"
    return "ok"


def risk(sources: Sources, month: str | None = None) -> Report:
    """Customers whose latest month's usage dropped or spiked against their trailing median."""
    last = _usage_month(sources, month)
    baseline = month_range(shift_month(last, -RISK_BASELINE_MONTHS), shift_month(last, -1))
    usage = monthly_usage(sources, [*baseline, last])
    order = {"churn risk": 0, "bill-shock risk": 1, "no baseline": 2, "ok": 3}
    rows = []
    for cid, meter in sorted({(c, mt) for c, mt, _m in usage}):
        median = Decimal(statistics.median([usage[(cid, meter, m)].quantity for m in baseline]))
        latest = usage[(cid, meter, last)].quantity
        status = risk_status(latest, median)
        change = (
            ((latest / median - 1) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
            if median
            else None
        )
        rows.append((cid, meter, median, latest, change, status))
    rows.sort(key=lambda r: (order[str(r[5])], r[0], r[1]))
    return Report(
        name="risk",
        title=f"Usage risk in {last}",
        method=(
            f"Per customer and meter, the quantity measured in the store in {last} (calendar month, workspace "
            f"timezone) against the median of the {RISK_BASELINE_MONTHS} months before it "
            f"({baseline[0]} to {baseline[-1]}). At most {CHURN_BELOW * 100:.0f} % of the median is a churn "
            f"risk (usage collapsing), at least {SHOCK_ABOVE * 100:.0f} % a bill-shock risk "
            "(usage spiking, so will the invoice); a median of 0 has no baseline. Flagged rows first."
        ),
        tables=(
            Table(
                f"Usage against the trailing median, {last}",
                ("customer", "meter", "trailing median", "latest", "change %", "status"),
                tuple(rows),
            ),
        ),
    )


# --- tax -----------------------------------------------------------------------------------


def tax(sources: Sources, month: str | None = None) -> Report:
    """Taxable base and tax by month, jurisdiction and rate, tied to the books
    (:mod:`ledger.tax`); ``month`` may be a period ``2026-10..2026-12`` (a quarter's return)."""
    from ledger.tax import tax_report

    if month is not None and ".." in month:
        first, _, last = month.partition("..")
        return tax_report(sources, month_range(first, last))
    return tax_report(sources, _months_of(sources, month))


#: reports whose ``--month`` may be a period ``FIRST..LAST``
PERIOD_REPORTS = frozenset({"tax"})


# --- the registry of reports ----------------------------------------------------------------

ReportFunction = Callable[[Sources, "str | None"], Report]

REPORTS: dict[str, ReportFunction] = {
    "revenue": revenue,
    "unbilled": unbilled,
    "deferred": deferred,
    "aging": aging,
    "rollforward": rollforward,
    "arpu": arpu,
    "forecast": forecast,
    "risk": risk,
    "tax": tax,
}


def build_report(session: Session, name: str, *, month: str | None = None) -> Report:
    """The report ``name`` (see :data:`REPORTS`) for ``month`` (``YYYY-MM``; default per report).

    Unknown names and malformed months are :class:`BadInput`.
    """
    function = REPORTS.get(name)
    if function is None:
        raise BadInput(f"unknown report {name!r} (known: {', '.join(REPORTS)})")
    if month is not None and not seal.is_month(month):
        first, period, last = month.partition("..")  # a period: reports that sum over months (tax)
        if not (
            name in PERIOD_REPORTS
            and period
            and seal.is_month(first)
            and seal.is_month(last)
            and first <= last
        ):
            also = " or FIRST..LAST" if name in PERIOD_REPORTS else ""
            raise BadInput(f"--month: {month!r} is not YYYY-MM{also}")
    return function(Sources(session), month)


# --- the close report -----------------------------------------------------------------------


def close_report_path(books_dir: Path, month: str) -> Path:
    """``books/2026/2026-10.close.md``."""
    return books_dir / month[:4] / f"{month}.close.md"


def close_report_text(
    session: Session,
    month: str,
    *,
    findings: Iterable[Finding],
    accepted: Mapping[str, str],
    seal_hash: str,
    entries: Iterable[data.Directive] | None = None,
) -> str:
    """The Markdown close report of a sealed ``month`` (deterministic: no wall-clock time).

    ``entries``: the books as loaded (default: load ``main.beancount``).
    """
    sources = Sources(session, entries)
    day = month_end(month)
    sections = [
        f"# Close {month}",
        "",
        f"Sealed by `meterbook close`. Figures are read from the books through {day} (as Beancount "
        "loads them, seal plugin included) and the event store; the balance assertions and the seal are "
        f"in `{month}.close.beancount`.",
        "",
        f"Seal: `{seal_hash}`",
    ]

    def section(
        title: str, report: Report, tables: Iterable[Table] | None = None, note: str = ""
    ) -> None:
        sections.extend(["", f"## {title}", ""])
        if note:
            sections.extend([note, ""])
        for n, table in enumerate(tables if tables is not None else report.tables):
            if n:
                sections.append("")
            sections.extend([f"### {table.title}", "", table.markdown()])

    rev = revenue(sources, month)
    section("Revenue", rev, note=rev.method)
    roll = rollforward_tables(sources, [month])
    section("Unbilled roll-forward", rev, roll[:2])
    dfr = deferred(sources, month)
    section("Deferred revenue", dfr, (roll[2], *dfr.tables), note=dfr.method)
    age = aging(sources, month)
    section("Receivables", age, (roll[3], *age.tables), note=age.method)
    sections.extend(["", "## Findings and acceptances", ""])
    found = list(findings)
    if found:
        sections.extend(
            [
                "| severity | id | customer | meter | expected | actual | explanation | accepted |",
                "|---|---|---|---|---:|---:|---|---|",
            ]
        )
        for f in found:
            cells = [
                f.severity,
                f.id,
                f.customer or "",
                f.meter or "",
                _cell_text(f.expected),
                _cell_text(f.actual),
                f.explanation,
                accepted.get(f.id, ""),
            ]
            row = (for_terminal(str(c)).replace("|", "\\|") for c in cells)  # one finding, one line
            sections.append("| " + " | ".join(row) + " |")
    else:
        sections.append("No findings.")
    sections.extend(["", "## Seal", "", f"`{month}` sealed with hash `{seal_hash}`."])
    return "\n".join(sections) + "\n"


def write_close_report(
    session: Session,
    month: str,
    *,
    findings: Iterable[Finding],
    accepted: Mapping[str, str],
    seal_hash: str,
    entries: Iterable[data.Directive] | None = None,
) -> Path:
    """Write ``books/YYYY/YYYY-MM.close.md`` atomically (untouched when unchanged); return its path."""
    path = close_report_path(session.workspace.books_dir, month)
    books.write_atomic(
        path,
        close_report_text(
            session,
            month,
            findings=findings,
            accepted=accepted,
            seal_hash=seal_hash,
            entries=entries,
        ),
    )
    return path


# --- rated lines (meterbook rate) --------------------------------------------------------------


def rated_lines(rating: Rating, *, as_json: bool = False) -> Iterator[str]:
    """The cycle-to-date rating of every cycle, one charge per line."""
    for rated in rating.latest():
        cycle = rated.cycle
        for charge in rated.charges:
            if as_json:
                yield json.dumps(
                    {
                        "customer": cycle.customer,
                        "cycle": cycle.key,
                        "plan": cycle.plan,
                        "through": str(rated.through),
                        "charge": charge.index,
                        "meter": charge.meter,
                        "model": charge.model,
                        "quantity": str(charge.quantity),
                        "amount": str(charge.amount),
                        "currency": rated.currency,
                        "final": charge.final,
                        "tiers": [
                            {
                                "description": t.description,
                                "quantity": str(t.quantity),
                                "unit_price": None if t.unit_price is None else str(t.unit_price),
                                "amount": str(t.amount),
                            }
                            for t in charge.lines
                        ],
                    },
                    sort_keys=True,
                )
            else:
                yield (
                    f"{cycle.customer}  {cycle.key}  {charge.meter}  {charge.model}  "
                    f"{charge.quantity}  {charge.amount} {rated.currency}"
                )
                for tier in charge.lines:
                    price = f" × {tier.unit_price}" if tier.unit_price is not None else ""
                    yield f"    {tier.description}: {tier.quantity}{price} = {tier.amount}"
        extras = []
        if rated.base_fee is not None:
            extras.append(
                f"base fee {rated.base_fee.recognized}/{rated.base_fee.billed} recognized"
            )
        if rated.commitment_shortfall:
            extras.append(f"commitment shortfall {rated.commitment_shortfall}")
        if rated.credit_applied:
            extras.append(f"credit applied {rated.credit_applied}")
        if extras and not as_json:
            yield f"    {cycle.customer} {cycle.key}: " + "; ".join(extras) + f" {rated.currency}"
