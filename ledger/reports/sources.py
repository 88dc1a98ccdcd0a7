"""What reports read: the books as Beancount loads them, the store's issued facts, usage
measured by SQL metering, and the months a report covers.

A report gets one :class:`Sources` per run: the books are loaded once (or handed in by
``meterbook close``, which has them) and the invoices, payments and credit notes are loaded
from the store when first asked for. :meth:`Sources.balances` sums the books' postings by
(account kind, customer, currency) up to a day, the figure each report's recomputation is
shown next to.

Months are ``YYYY-MM`` strings (calendar months in the workspace timezone):

    >>> months_between("2026-11", "2027-01"), shift_month("2026-01", -2)
    (['2026-11', '2026-12', '2027-01'], '2025-11')
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING

from beancount.core import data
from sqlalchemy import func, select

from ledger import books
from ledger.errors import BadInput
from ledger.metering import Window, cut_off_us, measure
from ledger.money import ZERO, round_money
from ledger.period import month_of, month_start, months_between, next_month, shift_month
from ledger.pricing import Usage
from ledger.store import events as events_table

if TYPE_CHECKING:
    from ledger.facts import IssuedFacts
    from ledger.facts.credit_notes import CreditNote
    from ledger.facts.invoices import Invoice
    from ledger.facts.payments import Payment
    from ledger.rules import Rules
    from ledger.session import Session


class Sources:
    """The books (loaded once, as Beancount loads them) and the store's facts for one run."""

    def __init__(self, session: Session, entries: Iterable[data.Directive] | None = None):
        self.session = session
        self._entries = None if entries is None else list(entries)
        if self._entries is not None:  # the books already loaded by the caller (close has them)
            self.transactions = [e for e in self._entries if isinstance(e, data.Transaction)]

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
    def customer_transactions(self) -> list[data.Transaction]:
        """The transactions per customer: the books' own, or with summary books (control
        accounts) the per-customer sub-ledger behind them, derived from the store
        (:func:`ledger.summary_trace.subledger`). What reports break down by customer reads
        these; what they total per account reads :attr:`transactions`, the books."""
        if not self.session.workspace.summary_books:
            return self.transactions
        from ledger.summary_trace import subledger

        entries = self._entries
        if entries is None:
            main = self.session.workspace.main_file
            entries = books.load_books(main)[0] if main.exists() else []
        return [e for e in subledger(self.session, entries) if isinstance(e, data.Transaction)]

    @cached_property
    def facts(self) -> IssuedFacts:
        """The store's issued facts (the running command's, when there is one)."""
        return self.session.stored_facts()

    @cached_property
    def invoices(self) -> list[Invoice]:
        return list(self.facts.invoices)

    @cached_property
    def payments(self) -> list[Payment]:
        return list(self.facts.payments)

    @cached_property
    def credit_notes(self) -> list[CreditNote]:
        return list(self.facts.credit_notes)

    @cached_property
    def account_kinds(self) -> dict[str, tuple[str, str]]:
        """Per-customer account → (kind, customer) for unbilled, contract asset, receivable,
        deferred and refund liability."""
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
        return months_between(month_of(first), month_of(last))

    def balances(self, on: date) -> dict[tuple[str, str, str], Decimal]:
        """(kind, customer, currency) → balance of the customer accounts at the end of ``on``."""
        totals: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
        for entry in self.customer_transactions:
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


def at_minor_unit(value: Decimal, currency: str) -> Decimal:
    """An amount at the currency's minor unit (``0`` → ``0.00``); amounts in the books
    already are."""
    return round_money(value, currency)


def at_minor_units(currency: str, *values: Decimal) -> tuple[Decimal, ...]:
    """Each of ``values`` at the currency's minor unit (:func:`at_minor_unit`)."""
    return tuple(at_minor_unit(v, currency) for v in values)


# --- months -----------------------------------------------------------------------------


def as_of(sources: Sources, month: str | None) -> str:
    """The month a balance report is taken at: ``--month``, else the books' last month."""
    return month if month is not None else sources.books_months()[-1]


def usage_month(sources: Sources, month: str | None) -> str:
    """The last month of usage history: ``--month``, else the last complete month (before
    today's)."""
    if month is not None:
        return month
    return shift_month(month_of(sources.session.today()), -1)


def months_of(sources: Sources, month: str | None) -> list[str]:
    """The months a flow report covers: ``--month``, else every month of the books."""
    return [month] if month is not None else sources.books_months()


# --- usage from the store -------------------------------------------------------------------


def monthly_usage(sources: Sources, months: Sequence[str]) -> dict[tuple[str, str, str], Usage]:
    """(customer, meter, month) → the meter's aggregate over the calendar month (workspace
    timezone), measured in SQL; only customer/meter pairs with events in some month."""
    session = sources.session
    tz = session.workspace.tz
    windows = {
        (cid, m): Window(
            cid,
            cut_off_us(month_start(m), tz),
            cut_off_us(month_start(next_month(m)), tz),
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


def customer_starts(sources: Sources) -> dict[str, date]:
    """customer → its first day: the earlier of its first subscription's start and the day (in
    the workspace timezone) of its first event in the store; a customer with neither is left
    out. A customer subscribed from 2026-08-25 whose first event is on 2026-08-26 starts on
    2026-08-25, so August is a partial month for it and September its first full one."""
    starts = {
        cid: min(sub.start for sub in customer.subscriptions)
        for cid, customer in sources.rules.customers.items()
        if customer.subscriptions
    }
    tz = sources.session.workspace.tz
    query = select(events_table.c.customer, func.min(events_table.c.time_us)).group_by(
        events_table.c.customer
    )
    with sources.session.engine.connect() as conn:
        for cid, first_us in conn.execute(query):
            if cid not in sources.rules.customers or first_us is None:
                continue
            day = datetime.fromtimestamp(first_us / 1_000_000, UTC).astimezone(tz).date()
            starts[cid] = min(day, starts.get(cid, day))
    return starts
