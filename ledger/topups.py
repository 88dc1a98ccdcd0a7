"""Wallet top-ups: prepaid credit bought at any time, billed and drawn like a grant.

A top-up comes from a payments file's ``topup`` row, from ``meterbook topup`` or from
the customer's ``wallet:`` settings (recurring, or automatic under a balance)::

    date,amount,currency,invoice,reference,kind,customer,expires
    2026-10-05,50.00,USD,,BANK-7,topup,acme,2027-10-05

    $ meterbook topup acme --amount 50.00 --date 2026-10-05 --expires 2027-10-05

Either stores the fact ``topup:BANK-7`` (the command's reference defaults to
``acme/2026-10-05/50.00``), once: the same reference again is a no-op, with other figures a
conflict. It is then a grant of the customer (:func:`grants_of`): invoiced on its own
invoice of its date into deferred revenue, drawn by usage oldest-expiring first,
breakage at expiry (:mod:`ledger.rating`, the manual's "Wallet top-ups").

A top-up is dated on or before today and in an open month: the engine refuses it
otherwise (:func:`problem`), whatever the entry point.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine, select

from ledger.errors import AfterTodayError, BadInput, SealedMonthError
from ledger.facts.topups import TopUp
from ledger.money import minor_units
from ledger.period import add_months
from ledger.rules import CreditGrant, Customer, Rules, WalletGrant
from ledger.store import topups as topups_table

#: Months between two recurring top-ups, by ``every``.
EVERY = {"month": 1, "quarter": 3, "year": 12}


def problem(rules: Rules, topup: TopUp, *, today: date, first_open: date) -> tuple[str, str] | None:
    """Why ``topup`` cannot be recorded, as ``(reason, one line)``, or None.

    >>> from ledger.rules import Customer
    >>> class R: customers = {"acme": Customer(id="acme", currency="USD")}
    >>> t = TopUp("BANK-7", "acme", date(2026, 10, 5), Decimal("50.00"), "USD")
    >>> problem(R, t, today=date(2026, 10, 4), first_open=date(2026, 10, 1))
    ('future_date', 'date 2026-10-05 is after today (2026-10-04)')
    >>> problem(R, t, today=date(2026, 11, 4), first_open=date(2026, 11, 1))
    ('sealed_month', 'date 2026-10-05 is inside the sealed months (sealed through 2026-10-31)')
    """
    if not topup.reference or len(topup.reference) > 255:
        return "too_long", f"reference is {len(topup.reference)} characters (1 to 255)"
    customer = rules.customers.get(topup.customer)
    if customer is None:
        return "unknown_customer", f"customer {topup.customer!r} is not in customers.yaml"
    if topup.currency != customer.currency:
        return (
            "currency_mismatch",
            f"currency {topup.currency} is not {topup.customer}'s ({customer.currency})",
        )
    if topup.amount <= 0:
        return "nonpositive_amount", f"amount {topup.amount} is not positive"
    places = minor_units(topup.currency)
    if topup.amount != topup.amount.quantize(Decimal(1).scaleb(-places)):
        return (
            "bad_number",
            f"amount {topup.amount} has more than {places} decimal places for {topup.currency}",
        )
    if topup.date > today:
        return "future_date", f"date {topup.date} is after today ({today})"
    if topup.date < first_open:
        return (
            "sealed_month",
            f"date {topup.date} is inside the sealed months (sealed through "
            f"{first_open - timedelta(days=1)})",
        )
    if topup.expires is not None and topup.expires <= topup.date:
        return "bad_date", f"expires {topup.expires} is not after the date {topup.date}"
    return None


def store_topup(conn: Connection, topup: TopUp, *, now: datetime) -> str:
    """Store one top-up; ``accepted``, ``duplicates`` (the same reference and figures) or
    ``conflicts`` (the reference records other figures: nothing stored)."""
    digest = topup.payload_hash()
    stored = conn.execute(
        select(topups_table.c.payload_hash).where(topups_table.c.reference == topup.reference)
    ).scalar()
    if stored is not None:
        return "duplicates" if stored == digest else "conflicts"
    conn.execute(
        topups_table.insert().values(
            reference=topup.reference,
            customer=topup.customer,
            date=topup.date.isoformat(),
            amount=str(topup.amount),
            currency=topup.currency,
            expires=topup.expires.isoformat() if topup.expires else "",
            payload_hash=digest,
            source=topup.source,
            recorded_at=now.isoformat(),
        )
    )
    return "accepted"


def record(
    engine: Engine,
    rules: Rules,
    topup: TopUp,
    *,
    today: date,
    first_open: date,
    now: datetime | None = None,
) -> str:
    """``meterbook topup``: judge and store one top-up; ``accepted`` or ``duplicates``.

    Refused (exit 2, one line): after today (:class:`AfterTodayError`), inside the sealed
    months (:class:`SealedMonthError`), anything else :func:`problem` finds, or a reference
    that already records other figures.
    """
    found = problem(rules, topup, today=today, first_open=first_open)
    if found is not None:
        reason, detail = found
        error = {"future_date": AfterTodayError, "sealed_month": SealedMonthError}.get(
            reason, BadInput
        )
        raise error(f"topup: {detail}; nothing was recorded")
    with engine.begin() as conn:
        outcome = store_topup(conn, topup, now=now or datetime.now(UTC))
    if outcome == "conflicts":
        raise BadInput(
            f"topup: reference {topup.reference!r} already records another top-up; give "
            "another --reference. Nothing was recorded"
        )
    return outcome


def _expiry(customer: Customer, granted: date) -> date | None:
    days = customer.wallet.expires_after_days if customer.wallet is not None else None
    return granted + timedelta(days=days) if days else None


def recurring_grants(customer: Customer, through: date) -> list[WalletGrant]:
    """The customer's recurring top-ups granted on or before ``through``: on ``start`` and every
    ``every`` after it, before ``end``.

    >>> from ledger.rules import RecurringTopUp, Wallet
    >>> c = Customer(id="a", currency="USD", wallet=Wallet(recurring=RecurringTopUp(
    ...     amount=Decimal("20.00"), start=date(2026, 1, 31))))
    >>> [(g.key, str(g.granted)) for g in recurring_grants(c, date(2026, 3, 31))]
    [('recurring:2026-01-31', '2026-01-31'), ('recurring:2026-02-28', '2026-02-28'), \
('recurring:2026-03-31', '2026-03-31')]
    """
    wallet = customer.wallet
    if wallet is None or wallet.recurring is None:
        return []
    plan = wallet.recurring
    found: list[WalletGrant] = []
    n = 0
    while True:
        day = add_months(plan.start, n * EVERY[plan.every])
        if day > through or (plan.end is not None and day >= plan.end):
            return found
        found.append(
            WalletGrant(
                amount=plan.amount,
                granted=day,
                expires=_expiry(customer, day),
                key=f"recurring:{day.isoformat()}",
            )
        )
        n += 1


def auto_grant(customer: Customer, day: date) -> WalletGrant:
    """The automatic top-up granted on ``day`` (the day after the accrual point whose draws
    took the balance under ``wallet.below``)."""
    assert customer.wallet is not None and customer.wallet.top_up is not None
    return WalletGrant(
        amount=customer.wallet.top_up,
        granted=day,
        expires=_expiry(customer, day),
        key=f"auto:{day.isoformat()}",
    )


def grants_of(customer: Customer, topups: Iterable[TopUp], through: date) -> list[CreditGrant]:
    """The customer's grants known through ``through`` before automatic top-ups: the rules'
    ``credits`` first, in their order (their keys never change), then the recurring and
    stored top-ups granted by then, by date and key."""
    extra: list[WalletGrant] = recurring_grants(customer, through)
    extra.extend(
        WalletGrant(amount=t.amount, granted=t.date, expires=t.expires, key=t.key)
        for t in topups
        if t.customer == customer.id and t.date <= through
    )
    return [*customer.credits, *sorted(extra, key=lambda g: (g.granted, g.key))]


def is_topup(grant: CreditGrant) -> bool:
    """True for a wallet top-up (billed on an invoice of its own), False for a rules grant."""
    return isinstance(grant, WalletGrant)


def topup_description(grant: WalletGrant) -> str:
    """The top-up's invoice line: ``wallet top-up topup:BANK-7, expires 2027-10-05``."""
    expiry = f", expires {grant.expires.isoformat()}" if grant.expires else ""
    return f"wallet top-up {grant.key}{expiry}"
