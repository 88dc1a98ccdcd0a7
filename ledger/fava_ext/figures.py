"""The figures behind the meterbook pages, computed from the books as loaded.

Every amount here is summed from the entries Beancount (or Fava) loaded; the
rules only say which account is whose (``audit.account_kinds``). With beta's
60.00 prepaid credit invoiced on Sep 1, September's usage accrued (acme 110.00,
beta 50.00 drawn from the credit) and acme invoiced on Oct 1::

    2026-09-01 * "beta" "Invoice …"        Invoiced:Beta 60.00          Deferred-Revenue:Beta -60.00
    2026-09-30 * "acme" "Usage accrual …"  Unbilled:Acme 110.00         Income:Usage:… -110.00
    2026-09-30 * "beta" "Usage accrual …"  Deferred-Revenue:Beta 50.00  Income:Usage:… -50.00
    2026-10-01 * "acme" "Invoice …"        Invoiced:Acme 110.00         Unbilled:Acme -110.00

:func:`revenue_by_month` gives for 2026-09 (USD): recognized 160.00 (the
Income accounts' credits), invoiced 60.00 (receivable debits of invoice
transactions), and at the month's end unbilled 110.00, deferred 10.00 and
receivable 60.00; for 2026-10 (nothing else happening) recognized 0.00,
invoiced 110.00, unbilled 0.00, deferred 10.00, receivable 170.00.

Signs are the finance team's: revenue and deferred revenue are shown positive
(Beancount keeps them as credits, negative).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from beancount.core import data

from ledger import seal
from ledger.audit import account_kinds
from ledger.journal.close import ACCEPT
from ledger.money import ZERO
from ledger.period import month_of, months_between

if TYPE_CHECKING:
    from ledger.rating import CreditMovement, Rating
    from ledger.reconcile import Finding
    from ledger.rules import CreditGrant, Customer, Rules

#: Account kinds summed into "unbilled": earned, not invoiced yet (final and non-final usage).
UNBILLED_KINDS = ("unbilled", "contract_asset")


def is_invoice(entry: data.Directive) -> bool:
    """An invoice's transaction (``meta: invoice``), not a payment or a credit note for it."""
    meta = entry.meta or {}
    return (
        isinstance(entry, data.Transaction)
        and "invoice" in meta
        and "reference" not in meta
        and "credit_note" not in meta
    )


def _transactions(entries: Iterable[data.Directive]) -> list[data.Transaction]:
    return [e for e in entries if isinstance(e, data.Transaction)]


def _units(posting: data.Posting) -> tuple[Decimal, str] | None:
    units = posting.units
    if units is None or not isinstance(units.number, Decimal):
        return None
    return units.number, units.currency


# --- revenue by month ---------------------------------------------------------------------


@dataclass(frozen=True)
class MonthFigures:
    """One month in one currency: flows during the month, balances at its end."""

    month: str
    currency: str
    recognized: Decimal
    invoiced: Decimal
    unbilled: Decimal
    deferred: Decimal
    receivable: Decimal


def revenue_by_month(entries: Sequence[data.Directive], rules: Rules) -> tuple[MonthFigures, ...]:
    """Recognized and invoiced per month, unbilled, deferred and receivable at each month end.

    Months run from the first to the last month with a transaction, none skipped;
    rows are sorted by month, then currency.
    """
    kinds = {account: kind for account, (kind, _customer) in account_kinds(rules).items()}
    txns = _transactions(entries)
    if not txns:
        return ()
    flows: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    currencies: set[str] = set()
    for txn in txns:
        month = month_of(txn.date)
        invoice = is_invoice(txn)
        for posting in txn.postings:
            units = _units(posting)
            if units is None:
                continue
            number, currency = units
            kind = kinds.get(posting.account)
            if (
                posting.account.startswith("Income:")
                or kind in UNBILLED_KINDS
                or kind in ("deferred", "receivable")
            ):
                currencies.add(
                    currency
                )  # only the currencies of these figures (not an equity guard's)
            if posting.account.startswith("Income:"):
                flows[(month, currency, "recognized")] -= number
            elif kind in UNBILLED_KINDS:
                flows[(month, currency, "unbilled")] += number
            elif kind == "deferred":
                flows[(month, currency, "deferred")] -= number
            elif kind == "receivable":
                flows[(month, currency, "receivable")] += number
                if invoice and number > 0:
                    flows[(month, currency, "invoiced")] += number
    months = months_between(
        month_of(min(t.date for t in txns)), month_of(max(t.date for t in txns))
    )
    rows: list[MonthFigures] = []
    for currency in sorted(currencies):
        balance = {"unbilled": ZERO, "deferred": ZERO, "receivable": ZERO}
        for month in months:
            for key in balance:
                balance[key] += flows.get((month, currency, key), ZERO)
            rows.append(
                MonthFigures(
                    month,
                    currency,
                    flows.get((month, currency, "recognized"), ZERO),
                    flows.get((month, currency, "invoiced"), ZERO),
                    balance["unbilled"],
                    balance["deferred"],
                    balance["receivable"],
                )
            )
    return tuple(sorted(rows, key=lambda r: (r.month, r.currency)))


def period_total(rows: Sequence[MonthFigures]) -> MonthFigures:
    """One currency's months added up, the Revenue page's total row: recognized and invoiced
    summed over the months, the balances at the end of the last one.

    With the two USD months of the module docstring (2026-09 recognized 160.00, invoiced 60.00;
    2026-10 recognized 0.00, invoiced 110.00; at Oct 31 unbilled 0.00, deferred 10.00,
    receivable 170.00)::

        >>> from decimal import Decimal as D
        >>> total = period_total([
        ...     MonthFigures("2026-09", "USD", D("160.00"), D("60.00"), D("110.00"), D("10.00"),
        ...                  D("60.00")),
        ...     MonthFigures("2026-10", "USD", D("0.00"), D("110.00"), D("0.00"), D("10.00"),
        ...                  D("170.00"))])
        >>> total.month, total.recognized, total.invoiced
        ('2026-09 to 2026-10', Decimal('160.00'), Decimal('170.00'))
        >>> total.unbilled, total.deferred, total.receivable
        (Decimal('0.00'), Decimal('10.00'), Decimal('170.00'))
    """
    if not rows or len({r.currency for r in rows}) != 1:
        raise ValueError("period_total adds up the months of one currency")
    ordered = sorted(rows, key=lambda r: r.month)
    first, last = ordered[0], ordered[-1]
    return MonthFigures(
        first.month if first is last else f"{first.month} to {last.month}",
        last.currency,
        sum((r.recognized for r in ordered), ZERO),
        sum((r.invoiced for r in ordered), ZERO),
        last.unbilled,
        last.deferred,
        last.receivable,
    )


# --- customers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterUsage:
    """Cycle-to-date usage of one meter, against the customer's cap if any."""

    meter: str
    unit: str
    quantity: Decimal
    cap: Decimal | None

    @property
    def percent(self) -> Decimal | None:
        """Share of the cap used, in percent (one decimal), or None without a cap."""
        if not self.cap:
            return None
        return (self.quantity * 100 / self.cap).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class CustomerFigures:
    """One customer: books balances and revenue, current-cycle usage, credits and caps."""

    customer: str
    name: str
    currency: str
    revenue: Decimal
    receivable: Decimal
    unbilled: Decimal
    deferred: Decimal
    credits_left: Decimal | None
    cycle: str
    usage: tuple[MeterUsage, ...]
    spend: Decimal
    spend_cap: Decimal | None

    @property
    def spend_percent(self) -> Decimal | None:
        if not self.spend_cap:
            return None
        return (self.spend * 100 / self.spend_cap).quantize(Decimal("0.1"))


def credits_left(
    customer: Customer,
    movements: Iterable[CreditMovement],
    as_of: date,
    grants: Sequence[CreditGrant] | None = None,
) -> Decimal | None:
    """Prepaid credit still available on ``as_of``: granted − drawn + returned − expired − credited.

    ``grants``: the customer's, wallet top-ups included (:attr:`ledger.rating.Rating.grants`;
    None: its ``credits``). None when the customer has no credit grants.
    """
    grants = customer.credits if grants is None else grants
    if not grants:
        return None
    left = sum((g.amount for g in grants if g.granted <= as_of), ZERO)
    sign = {"draw": -1, "return": 1, "breakage": -1, "credit_note": -1}
    for movement in movements:
        if movement.customer == customer.id and movement.day <= as_of:
            left += sign.get(movement.kind, 0) * movement.amount
    return left


def customer_figures(
    entries: Sequence[data.Directive], rules: Rules, rating: Rating
) -> tuple[CustomerFigures, ...]:
    """Every customer of the rules, sorted by id; usage and spend are the current cycle's
    (the cycle holding ``rating.through``), before credits."""
    kinds = account_kinds(rules)
    balances: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    revenue: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for txn in _transactions(entries):
        customer = (txn.meta or {}).get("customer")
        for posting in txn.postings:
            units = _units(posting)
            if units is None:
                continue
            number, _currency = units
            owner = kinds.get(posting.account)
            if owner is not None:
                kind, whose = owner
                balances[(whose, "unbilled" if kind in UNBILLED_KINDS else kind)] += number
            if posting.account.startswith("Income:") and isinstance(customer, str):
                revenue[customer] -= number
    as_of = rating.through
    current = [
        r for r in rating.latest() if r.cycle.start <= as_of < r.cycle.end and r.through == as_of
    ]
    rows: list[CustomerFigures] = []
    for cid in sorted(rules.customers):
        customer = rules.customers[cid]
        cycles = [r for r in current if r.cycle.customer == cid]
        quantities: dict[str, Decimal] = defaultdict(lambda: ZERO)
        spend = ZERO
        for rated in cycles:
            for charge in rated.charges:
                quantities[charge.meter] += charge.quantity
            spend += rated.usage_amount + rated.commitment_shortfall
            if rated.base_fee is not None:
                spend += rated.base_fee.billed
        meters = sorted(set(quantities) | set(customer.caps))
        usage = tuple(
            MeterUsage(
                m,
                rules.meters[m].unit if m in rules.meters else "",
                quantities.get(m, ZERO),
                customer.caps.get(m),
            )
            for m in meters
        )
        rows.append(
            CustomerFigures(
                customer=cid,
                name=customer.name or cid,
                currency=customer.currency,
                revenue=revenue.get(cid, ZERO),
                receivable=balances.get((cid, "receivable"), ZERO),
                unbilled=balances.get((cid, "unbilled"), ZERO),
                deferred=-balances.get((cid, "deferred"), ZERO),
                credits_left=credits_left(
                    customer, rating.credits, as_of, rating.grants_of(customer)
                ),
                cycle=", ".join(r.cycle.key for r in cycles),
                usage=usage,
                spend=spend,
                spend_cap=customer.spend_cap,
            )
        )
    return tuple(rows)


@dataclass(frozen=True)
class CustomerTotals:
    """One currency's customers added up: the Customers page's total row."""

    currency: str
    customers: int
    revenue: Decimal
    receivable: Decimal
    unbilled: Decimal
    deferred: Decimal
    #: credit left summed over the customers that have grants; None when none has
    credits_left: Decimal | None
    spend: Decimal


def customer_totals(rows: Iterable[CustomerFigures]) -> tuple[CustomerTotals, ...]:
    """Per currency, sorted: the customers' figures summed (an amount in EUR is never added to
    one in USD).

    acme (revenue 140.00, unbilled 30.00, spend 30.00, no credit) and beta (revenue 54.00,
    deferred 6.00, credit left 6.00, spend 4.00), both USD: revenue 194.00, unbilled 30.00,
    deferred 6.00, credits left 6.00 and spend 34.00 for 2 customers.
    """
    by_currency: dict[str, list[CustomerFigures]] = defaultdict(list)
    for row in rows:
        by_currency[row.currency].append(row)
    totals = []
    for currency, group in sorted(by_currency.items()):
        credits = [r.credits_left for r in group if r.credits_left is not None]
        totals.append(
            CustomerTotals(
                currency=currency,
                customers=len(group),
                revenue=sum((r.revenue for r in group), ZERO),
                receivable=sum((r.receivable for r in group), ZERO),
                unbilled=sum((r.unbilled for r in group), ZERO),
                deferred=sum((r.deferred for r in group), ZERO),
                credits_left=sum(credits, ZERO) if credits else None,
                spend=sum((r.spend for r in group), ZERO),
            )
        )
    return tuple(totals)


# --- close --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthClose:
    """One month's close status, the seal verified from the entries as loaded."""

    month: str
    sealed: bool
    verified: bool
    seal_hash: str
    message: str
    acceptances: tuple[tuple[str, str], ...]
    findings: tuple[Finding, ...] | None = None
    findings_error: str = ""
    report: str = ""

    @property
    def accepted_ids(self) -> frozenset[str]:
        return frozenset(fid for fid, _reason in self.acceptances)

    @property
    def status(self) -> str:
        if not self.sealed:
            return "open"
        return "sealed, verified" if self.verified else "sealed, BROKEN"


def acceptances(entries: Iterable[data.Directive]) -> dict[str, tuple[tuple[str, str], ...]]:
    """``custom "meterbook-accept" "<month>" "<finding id>" "<reason>"`` per month, sorted by id."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for entry in entries:
        if isinstance(entry, data.Custom) and entry.type == ACCEPT and len(entry.values) >= 3:
            month, finding, reason = (v.value for v in entry.values[:3])
            found[str(month)].append((str(finding), str(reason)))
    return {month: tuple(sorted(items)) for month, items in found.items()}


def close_months(
    entries: Sequence[data.Directive],
    findings: Mapping[str, tuple[Finding, ...] | str] | None = None,
    reports: Mapping[str, str] | None = None,
) -> tuple[MonthClose, ...]:
    """Each month from the first with an entry or a seal to the last, newest first.

    ``findings`` gives an open month's current findings (or an error text when
    the reconcilers failed); ``reports`` the close report's name per month.
    """
    statuses = {s.month: s for s in seal.verify_seals(entries)}
    accepted = acceptances(entries)
    dated = [month_of(e.date) for e in _transactions(entries)]
    known = sorted({*dated, *statuses, *accepted})
    if not known:
        return ()
    rows = []
    for month in months_between(known[0], known[-1]):
        status = statuses.get(month)
        found = (findings or {}).get(month)
        rows.append(
            MonthClose(
                month=month,
                sealed=status is not None,
                verified=bool(status and status.ok),
                seal_hash=status.hash if status else "",
                message=status.message if status else "",
                acceptances=accepted.get(month, ()),
                findings=found if isinstance(found, tuple) else None,
                findings_error=found if isinstance(found, str) else "",
                report=(reports or {}).get(month, ""),
            )
        )
    return tuple(reversed(rows))
