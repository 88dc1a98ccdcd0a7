"""Prepaid credits drawn from two grants, a commitment beside a credit, a grant expiring on an
accrual point.

The three prepaid-credit bugs that survived the hand-planted mutants (issue 20) each have a
worked example here, rated by the engine and posted to books read back with Beancount's loader.

All three customers are on plan ``p`` (graduated calls: 10 free, then 0.05; storage 0.10 per GB
at the month's maximum; base fee 30.00 in advance; minimum commitment 20.00), cycles anchored at
the start Aug 15, and the same usage in the cycle ``[Sep 15, Oct 15)``::

    through Sep 30   14 calls → 4 × 0.05 = 0.20    12.5 GB × 0.10 = 1.25    usage 1.45
    through Oct 14   25 calls → 15 × 0.05 = 0.75   12.5 GB × 0.10 = 1.25    usage 2.00

Their grants differ:

    two    100.00 granted Aug 1, no expiry; 5.00 granted Sep 1, expires Oct 10
    k      5.00 granted Sep 1, expires Oct 10
    edge   5.00 granted Sep 1, expires Sep 30 (an accrual point)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

import pytest
from beancount.core import data

from ledger.books import load_books
from ledger.rating import CycleRating, Rating, undrawn_credit
from ledger.session import Session
from tests.support.rating import METERS, PLANS, cycle_usage
from tests.support.workspaces import insert_events, open_session, write_workspace

CUSTOMERS = """\
customers:
  two:
    currency: USD
    subscriptions: [{plan: p, start: 2026-08-15}]
    credits:
      - {amount: "100.00", granted: 2026-08-01}
      - {amount: "5.00", granted: 2026-09-01, expires: 2026-10-10}
  k:
    currency: USD
    subscriptions: [{plan: p, start: 2026-08-15}]
    credits:
      - {amount: "5.00", granted: 2026-09-01, expires: 2026-10-10}
  edge:
    currency: USD
    subscriptions: [{plan: p, start: 2026-08-15}]
    credits:
      - {amount: "5.00", granted: 2026-09-01, expires: 2026-09-30}
"""
SEP15 = date(2026, 9, 15)


@pytest.fixture
def rated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Session, Rating, list[data.Directive]]:
    """The three customers rated through Oct 14 and invoiced through Oct 31, books loaded."""
    root = tmp_path_factory.mktemp("credits") / "ws"
    session = open_session(write_workspace(root, meters=METERS, plans=PLANS, customers=CUSTOMERS))
    insert_events(session.engine, [*cycle_usage("two"), *cycle_usage("k"), *cycle_usage("edge")])
    rating = session.rate(date(2026, 10, 14))
    session.invoice(through=date(2026, 10, 31))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return session, rating, entries


def _point(rating: Rating, customer: str, through: date) -> CycleRating:
    [point] = [
        r
        for r in rating.cycles
        if r.cycle.customer == customer and r.cycle.start == SEP15 and r.through == through
    ]
    return point


def _moves(rating: Rating, customer: str) -> list[tuple[date, int, str, Decimal]]:
    return [(m.day, m.grant, m.kind, m.amount) for m in rating.credits if m.customer == customer]


def _posted(entries: Iterable[data.Directive], account: str, customer: str, on: date) -> Decimal:
    """Balance of ``account`` at the start of ``on`` from ``customer``'s transactions only
    (breakage and shortfall revenue accounts are shared by every customer)."""
    return sum(
        (
            p.units.number
            for e in entries
            if isinstance(e, data.Transaction) and e.payee == customer and e.date < on
            for p in e.postings
            if p.account == account
        ),
        Decimal(0),
    )


def test_oldest_expiring_grant_is_drawn_first(
    rated: tuple[Session, Rating, list[data.Directive]],
) -> None:
    """two holds 100.00 (granted first, never expires) and 5.00 (expires Oct 10).

    Sep 30: 1.45 drawn from the 5.00 grant, the one expiring first (5.00 − 1.45 = 3.55 left).
    Oct 10: the 3.55 left expires: breakage 3.55.
    Oct 14: usage 2.00 − 1.45 already credited = 0.55 more, from the 100.00 grant (99.45 left).
    Newest-expiring first (or rules order, or oldest granted first) would draw 1.45 from the
    100.00 grant instead and let all 5.00 expire: breakage 5.00, 98.00 left.
    """
    session, rating, entries = rated
    assert _moves(rating, "two") == [
        (date(2026, 9, 30), 1, "draw", Decimal("1.45")),
        (date(2026, 10, 10), 1, "breakage", Decimal("3.55")),
        (date(2026, 10, 14), 0, "draw", Decimal("0.55")),
    ]
    assert _point(rating, "two", date(2026, 10, 14)).credit_applied == Decimal("2.00")
    grants = session.rules.customers["two"].credits
    assert undrawn_credit(rating, grants, "two", date(2026, 10, 14)) == {
        "2026-08-01#1": Decimal("99.45"),
        "2026-09-01#1": Decimal("0.00"),
    }
    # books: breakage 3.55 on Oct 10 against the Sep 1 grant's invoice
    [expiry] = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and e.payee == "two"
        and e.narration.startswith("Prepaid credit expired")
    ]
    assert (expiry.date, expiry.meta["grant"]) == (date(2026, 10, 10), "2026-09-01#1")
    assert _posted(entries, "Income:Credit-Breakage", "two", date(2026, 10, 16)) == Decimal("-3.55")
    # deferred revenue: grants 100.00 + 5.00 and three advance fees 30.00 (Aug 15, Sep 15, Oct 15)
    # are credited; the fees recognized by Oct 14 (16.45 + 13.55 + 16.00 + 14.00 = 60.00), the draws
    # 1.45 + 0.55 and the breakage 3.55 are debited: −195.00 + 60.00 + 2.00 + 3.55 = −129.45, i.e.
    # the next cycle's 30.00 and the 99.45 left of the 100.00 grant
    assert _posted(
        entries, "Liabilities:Deferred-Revenue:Two", "two", date(2026, 10, 16)
    ) == Decimal("-129.45")


def test_commitment_shortfall_is_on_gross_usage_before_credits(
    rated: tuple[Session, Rating, list[data.Directive]],
) -> None:
    """k's cycle [Sep 15, Oct 15) has gross usage 2.00, of which the 5.00 grant covered 1.45
    (drawn Sep 30; the grant expired Oct 10, so the 0.55 since is billable).

    Shortfall = minimum 20.00 − gross usage 2.00 = 18.00 (on usage after credits it would be
    20.00 − 0.55 = 19.45). Unbilled at the cycle's last day: 0.55 not covered + 18.00 = 18.55,
    and the Oct 15 invoice bills those 18.55 with the next advance fee 30.00: 48.55.
    """
    _, rating, entries = rated
    last = _point(rating, "k", date(2026, 10, 14))
    assert (last.usage_amount, last.credit_applied) == (Decimal("2.00"), Decimal("1.45"))
    assert last.commitment_shortfall == Decimal("18.00")
    assert (
        _point(rating, "k", date(2026, 9, 30)).commitment_shortfall == 0
    )  # not the cycle's last day
    assert _posted(entries, "Income:Commitment-Shortfall", "k", date(2026, 10, 15)) == Decimal(
        "-38.00"
    )  # 20 + 18
    assert _posted(entries, "Assets:Receivables:Unbilled:K", "k", date(2026, 10, 15)) == Decimal(
        "18.55"
    )
    [invoice] = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and e.payee == "k"
        and e.date == date(2026, 10, 15)
        and "invoice" in e.meta
    ]
    assert [
        (p.account, p.units.number)
        for p in invoice.postings
        if p.account == "Assets:Receivables:Invoiced:K"
    ] == [("Assets:Receivables:Invoiced:K", Decimal("48.55"))]


def test_grant_is_not_drawable_on_its_expiry_day(
    rated: tuple[Session, Rating, list[data.Directive]],
) -> None:
    """edge's 5.00 grant expires Sep 30, an accrual point: "expires" is the first day it can no
    longer be drawn, so the Sep 30 point draws nothing, all 5.00 is breakage dated Sep 30 and
    the usage 1.45 is unbilled. Drawable on its expiry day, it would cover 1.45 and only 3.55
    would expire.
    """
    session, rating, entries = rated
    assert _moves(rating, "edge") == [(date(2026, 9, 30), 0, "breakage", Decimal("5.00"))]
    assert _point(rating, "edge", date(2026, 9, 30)).credit_applied == 0
    assert _point(rating, "edge", date(2026, 10, 14)).credit_applied == 0
    grants = session.rules.customers["edge"].credits
    assert undrawn_credit(rating, grants, "edge", date(2026, 9, 29)) == {
        "2026-09-01#1": Decimal("5.00")
    }
    assert undrawn_credit(rating, grants, "edge", date(2026, 9, 30)) == {
        "2026-09-01#1": Decimal("0.00")
    }
    assert _posted(entries, "Income:Credit-Breakage", "edge", date(2026, 10, 1)) == Decimal("-5.00")
    # Sep 30: usage 1.45 unbilled (the Sep 15 invoice had cleared the earlier 20.00 shortfall)
    assert _posted(
        entries, "Assets:Receivables:Unbilled:Edge", "edge", date(2026, 10, 1)
    ) == Decimal("1.45")
