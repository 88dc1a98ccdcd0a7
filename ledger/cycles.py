"""Billing cycles: the half-open date ranges ``[start, end)`` a customer is billed for.

A monthly plan anchored on its start (anniversary), then a plan change on the
15th of November, then an end::

    >>> from ledger.rules import Customer, Plan, Subscription
    >>> plans = {"pro": Plan(id="pro", currency="USD"),
    ...          "ent": Plan(id="ent", currency="USD", cycle="quarterly")}
    >>> acme = Customer(id="acme", currency="USD", subscriptions=(
    ...     Subscription(plan="pro", start=date(2026, 8, 15)),
    ...     Subscription(plan="ent", start=date(2026, 11, 20), end=date(2027, 1, 1))))
    >>> for c in cycles_for(acme, plans, until=date(2027, 6, 1)):
    ...     print(c.plan, c.key, c.nominal_key, c.proration(), c.first, c.last)
    pro 2026-08-15/2026-09-15 2026-08-15/2026-09-15 1 True False
    pro 2026-09-15/2026-10-15 2026-09-15/2026-10-15 1 False False
    pro 2026-10-15/2026-11-15 2026-10-15/2026-11-15 1 False False
    pro 2026-11-15/2026-11-20 2026-11-15/2026-12-15 1/6 False True
    ent 2026-11-20/2027-01-01 2026-11-20/2027-02-20 21/46 True True

The old plan's cycle is cut on the change date and keeps its nominal bounds
(for proration); the new plan's cycles run from the change date. With
``billing_anchor: calendar`` cycles run from the 1st of the month (quarterly:
Jan/Apr/Jul/Oct 1; yearly: Jan 1), and a mid-period start gives a short first
cycle prorated against the full calendar period::

    >>> calendar = acme.model_copy(update={"billing_anchor": "calendar", "subscriptions": (
    ...     Subscription(plan="pro", start=date(2026, 8, 15)),)})
    >>> [(c.key, str(c.proration())) for c in cycles_for(calendar, plans, until=date(2026, 9, 2))]
    [('2026-08-15/2026-09-01', '17/31'), ('2026-09-01/2026-10-01', '1')]

A subscription with an ``id`` (an add-on, :class:`ledger.rules.Subscription`) runs beside
the main one, with its own cycles and anchor; its cycles' links name it (:func:`cycle_link`)::

    >>> support = Subscription(id="support", plan="pro", start=date(2026, 8, 20),
    ...                        billing_anchor="start")
    >>> both = calendar.model_copy(update={"subscriptions": (*calendar.subscriptions, support)})
    >>> for c in cycles_for(both, plans, until=date(2026, 9, 2)):
    ...     print(c.link, c.key)
    acme-2026-08-15 2026-08-15/2026-09-01
    acme/support-2026-08-20 2026-08-20/2026-09-20
    acme-2026-09-01 2026-09-01/2026-10-01

Anniversaries on the 29th to 31st clamp to the month's last day and come back
(anchor 31: Jan 31 → Feb 28/29 → Mar 31); each boundary is computed from the
anchor, never from the previous boundary (:func:`add_months`).

Accrual points (DESIGN's timing rules) are the last day of every month that
ends inside the cycle and the cycle's last day::

    >>> Cycle("acme", "pro", date(2026, 9, 15), date(2026, 10, 15),
    ...       date(2026, 9, 15), date(2026, 10, 15), 0, True, False).accrual_points()
    (datetime.date(2026, 9, 30), datetime.date(2026, 10, 14))

All dates are plain dates; the workspace timezone is applied where events are
cut off (:mod:`ledger.metering`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING

from ledger.period import CYCLE_MONTHS, add_months, last_of_month

if TYPE_CHECKING:
    from ledger.rules import Customer, Plan, Subscription


_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Cycle:
    """One billing cycle ``[start, end)`` of one subscription of a customer.

    ``end`` is exclusive and is also the invoice date. ``nominal_start`` and
    ``nominal_end`` are the full, uncut cycle this one belongs to: they differ
    from ``start``/``end`` only for a cycle cut short by a calendar-anchored
    mid-period start, a subscription end or a plan change.
    """

    customer: str
    plan: str
    start: date
    end: date
    nominal_start: date
    nominal_end: date
    subscription: int
    first: bool
    last: bool
    #: bill a cycle cut short at its end (a change or cancellation) as if it ran to its
    #: nominal end: the ``proration: none`` policy (:class:`ledger.rules.ChangePolicy`)
    full_when_cut: bool = False
    #: the ``id`` of the subscription the cycle belongs to ("": the customer's main one)
    series: str = ""

    @property
    def days(self) -> int:
        """Days in the cycle: ``[Sep 15, Oct 15)`` has 30."""
        return (self.end - self.start).days

    @property
    def nominal_days(self) -> int:
        """Days in the full, uncut cycle."""
        return (self.nominal_end - self.nominal_start).days

    @property
    def key(self) -> str:
        """``"2026-10-15/2026-11-15"``: the ``cycle`` metadata value in the books."""
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @property
    def nominal_key(self) -> str:
        """The nominal bounds in the form of :attr:`key`."""
        return f"{self.nominal_start.isoformat()}/{self.nominal_end.isoformat()}"

    @property
    def link(self) -> str:
        """``"acme-2026-10-15"``: the body of the cycle's Beancount link ``^acme-2026-10-15``;
        ``"acme/seats-2026-10-15"`` for a cycle of acme's subscription ``id: seats``
        (:func:`cycle_link`)."""
        return cycle_link(self.customer, self.series, self.start)

    @property
    def file_stem(self) -> str:
        """The link as a file name: ``acme-2026-10-15``, ``acme+seats-2026-10-15``."""
        return self.link.replace("/", "+")

    def accrual_points(self) -> tuple[date, ...]:
        """The last day of every month that ends inside the cycle, and ``end - 1 day``.

        ``[Sep 15, Oct 15)`` → (Sep 30, Oct 14); ``[Oct 1, Nov 1)`` → (Oct 31,);
        a quarter ``[Jan 1, Apr 1)`` → (Jan 31, Feb 28, Mar 31).
        """
        last_day = self.end - _DAY
        points: list[date] = []
        month_end = last_of_month(self.start)
        while month_end < last_day:
            points.append(month_end)
            month_end = last_of_month(month_end + _DAY)
        points.append(last_day)
        return tuple(points)

    def proration(self) -> Fraction:
        """The share of the nominal cycle this cycle covers: ``days / nominal_days``
        (counted to the nominal end for a cycle cut at its end under ``proration: none``)."""
        if self.full_when_cut and self.end < self.nominal_end:
            return Fraction((self.nominal_end - self.start).days, self.nominal_days)
        return Fraction(self.days, self.nominal_days)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end


def cycle_link(customer: str, series: str, start: date) -> str:
    """The body of a cycle's link: customer and start day, and the subscription's ``id``
    after a ``/`` (which no id contains, so no two cycles share a link):

    >>> cycle_link("acme", "", date(2026, 10, 1)), cycle_link("acme", "seats", date(2026, 10, 1))
    ('acme-2026-10-01', 'acme/seats-2026-10-01')
    >>> link_series("acme/seats-2026-10-01"), link_series("acme-2026-10-01")
    ('seats', '')
    """
    body = f"{customer}/{series}" if series else customer
    return f"{body}-{start.isoformat()}"


def link_series(link: str) -> str:
    """The subscription ``id`` a cycle link names ("": the main subscription)."""
    return link[:-11].partition("/")[2]


def link_customer(link: str) -> str:
    """The customer a cycle link names."""
    return link[:-11].partition("/")[0]


def cycles_for(customer: Customer, plans: Mapping[str, Plan], *, until: date) -> tuple[Cycle, ...]:
    """Every cycle of every subscription of ``customer`` that starts before ``until``, in order
    of start (the main subscription's first on a day both start).

    A subscription ends at its ``end`` or at the start of the next one with the same
    ``id``, whichever is first; its cycles cover ``[start, end)`` with no gap and no
    overlap. An open-ended subscription's last cycle returned is the one in
    which ``until - 1 day`` falls (it may end after ``until``). Subscriptions of
    different ids run side by side, each with its own cycles and anchor.
    """
    series = customer.series()
    if len(series) == 1:
        return _series_cycles(customer, plans, next(iter(series.values())), until)
    found = [c for subs in series.values() for c in _series_cycles(customer, plans, subs, until)]
    order = {key: n for n, key in enumerate(series)}
    return tuple(sorted(found, key=lambda c: (c.start, order[c.series])))


def _series_cycles(
    customer: Customer,
    plans: Mapping[str, Plan],
    subscriptions: tuple[tuple[int, Subscription], ...],
    until: date,
) -> tuple[Cycle, ...]:
    """The cycles of one subscription ``id``: its plans one after the other."""
    cycles: list[Cycle] = []
    policy = customer.subscription_changes
    moved: date | None = None  # next_cycle: where the previous subscription really ended
    for n, (index, sub) in enumerate(subscriptions):
        end = sub.end
        if n + 1 < len(subscriptions):
            following = subscriptions[n + 1][1].start
            end = following if end is None else min(end, following)
        months = _cycle_months(plans[sub.plan].cycle)
        start = sub.start if moved is None else max(sub.start, moved)
        anchor = _anchor(sub.billing_anchor or customer.billing_anchor, start, months)
        if policy.effective == "next_cycle" and end is not None and end > start:
            end = _boundary_on_or_after(anchor, months, end)
            moved = end
        if end is not None and end <= start:
            continue
        if start != sub.start:
            sub = sub.model_copy(update={"start": start})
        k = 0
        nominal_start = anchor
        while True:
            nominal_end = add_months(anchor, (k + 1) * months)
            start = max(nominal_start, sub.start)
            if start >= until:
                break
            cut = end is not None and end <= nominal_end
            cycles.append(
                Cycle(
                    customer=customer.id,
                    plan=sub.plan,
                    start=start,
                    end=end if cut and end is not None else nominal_end,
                    nominal_start=nominal_start,
                    nominal_end=nominal_end,
                    subscription=index,
                    first=k == 0,
                    last=cut,
                    full_when_cut=policy.proration == "none",
                    series=sub.id,
                )
            )
            if cut:
                break
            k += 1
            nominal_start = nominal_end
    return tuple(cycles)


def _anchor(billing_anchor: str, start: date, months: int) -> date:
    if billing_anchor == "calendar":
        return date(start.year, (start.month - 1) // months * months + 1, 1)
    return start


def _boundary_on_or_after(anchor: date, months: int, day: date) -> date:
    """The first cycle boundary of a subscription anchored at ``anchor`` on or after ``day``
    (``effective: next_cycle``: a change inside a cycle waits for its end).

    >>> _boundary_on_or_after(date(2026, 8, 15), 1, date(2026, 10, 20))
    datetime.date(2026, 11, 15)
    >>> _boundary_on_or_after(date(2026, 8, 15), 1, date(2026, 10, 15))
    datetime.date(2026, 10, 15)
    """
    k = 0
    boundary = anchor
    while boundary < day:
        k += 1
        boundary = add_months(anchor, k * months)
    return boundary


def cycle_at(
    customer: Customer, plans: Mapping[str, Plan], day: date, series: str = ""
) -> Cycle | None:
    """The cycle of ``customer``'s subscription ``series`` (its ``id``; "": the main one) that
    contains ``day``, or None outside every subscription of that id."""
    for cycle in reversed(cycles_for(customer, plans, until=day + _DAY)):
        if cycle.series != series:
            continue
        if day in cycle:
            return cycle
        if cycle.end <= day:
            return None
    return None


def cycles_at(customer: Customer, plans: Mapping[str, Plan], day: date) -> tuple[Cycle, ...]:
    """Every cycle of ``customer`` that contains ``day``: one per subscription running then,
    the main one first, then by subscription ``id``."""
    found = [c for c in cycles_for(customer, plans, until=day + _DAY) if day in c]
    return tuple(sorted(found, key=lambda c: (c.series != "", c.series)))


def cycle_of_link(customer: Customer, plans: Mapping[str, Plan], link: str) -> Cycle | None:
    """The cycle of ``customer`` whose link is ``link`` as the subscriptions are now, or the
    one of the same subscription running on the link's start day (a cycle a change moved)."""
    return cycle_at(customer, plans, date.fromisoformat(link[-10:]), link_series(link))


def _cycle_months(kind: str) -> int:
    try:
        return CYCLE_MONTHS[kind]
    except KeyError:
        raise ValueError(f"unknown cycle {kind!r} (known: {', '.join(CYCLE_MONTHS)})") from None
