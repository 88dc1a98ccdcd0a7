"""Gaps and spikes in daily usage, per customer and billed meter: warnings for a human to look at.

Daily figures come from :func:`ledger.metering.daily_usage` (SQL, local days of
the workspace timezone) for each meter a customer's plans charge for. Two rules:

**Gap** — a run of weekdays inside the month with no events, with events on the
weekday just before the run and on the weekday just after it (weekends are
skipped: a Monday–Friday business going quiet on Saturday is no gap). Days from
today on are never a gap. A customer who stops (no usage after) or starts (none
before) is no gap either::

    gaps-spikes:acme:api_calls:gap-2026-10-14:2026-10  warning  expected 1200  actual 0
      no api_calls events on 2026-10-14 (Wednesday), with usage on 2026-10-13 and 2026-10-15
      (median day before: 1200): an integration down?

**Spike** — a day whose figure is above :data:`SPIKE_FACTOR` (5) times the median
of the customer's days with usage among the :data:`TRAILING_DAYS` (14) days before
it, when at least :data:`MIN_HISTORY` (7) such days exist (new customers are not
judged on their first week)::

    gaps-spikes:acme:api_calls:spike-2026-10-20:2026-10  warning  expected 6000  actual 9100
      9100 on 2026-10-20, over 5 × the trailing median 1200: a runaway client, or a double import?

Both are **warnings**: usage legitimately varies, so they never block the close.

**Tuning.** The figures above are defaults (:class:`ledger.rules.GapsSpikesTuning`):
``[gaps_spikes]`` in ``meterbook.toml`` changes them for the workspace, ``gaps_spikes:`` on
a customer in ``customers.yaml`` for that customer. ``enabled = false`` turns the check
off; ``min_gap_days = 3`` reports only gaps of 3 weekdays or more (a customer who reports
every few days); ``spike_factor``, ``trailing_days`` and ``min_history`` set the spike rule.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.hookspecs import hookimpl
from ledger.metering import daily_usage
from ledger.reconcile import Finding, ReconcileContext, finding_id
from ledger.rules import GapsSpikesTuning

if TYPE_CHECKING:
    from ledger.rules import Meter

SPIKE_FACTOR = Decimal(5)
TRAILING_DAYS = 14
MIN_HISTORY = 7
#: How far past the month's end a gap's closing usage is looked for.
LOOK_AHEAD = 7


def weekdays(start: date, end: date) -> list[date]:
    """Monday to Friday in ``[start, end)``.

    >>> [d.day for d in weekdays(date(2026, 10, 9), date(2026, 10, 14))]
    [9, 12, 13]
    """
    return [
        start + timedelta(days=i)
        for i in range((end - start).days)
        if (start + timedelta(days=i)).weekday() < 5
    ]


def gaps(
    active: set[date], start: date, end: date, *, look_behind: date, look_ahead: date
) -> list[list[date]]:
    """Runs of weekdays in ``[start, end)`` without usage, bounded by weekdays with usage.

    >>> days = {date(2026, 10, d) for d in (12, 13, 15, 16)}     # Mon, Tue, Thu, Fri
    >>> gaps(days, date(2026, 10, 1), date(2026, 11, 1),
    ...      look_behind=date(2026, 9, 17), look_ahead=date(2026, 11, 8))
    [[datetime.date(2026, 10, 14)]]
    """
    found: list[list[date]] = []
    run: list[date] = []
    before = False  # the weekday before the current run had usage
    for day in weekdays(look_behind, look_ahead):
        if day in active:
            if run and before:
                inside = [d for d in run if start <= d < end]
                if inside:
                    found.append(inside)
            run, before = [], True
        else:
            run.append(day)
    return found


def spike(
    day: date,
    figure: Decimal,
    days: Mapping[date, Decimal],
    tuning: GapsSpikesTuning = GapsSpikesTuning(),
) -> Decimal | None:
    """The trailing median when ``figure`` on ``day`` is a spike over it, else None.

    >>> history = {date(2026, 10, d): Decimal(100) for d in range(1, 15)}
    >>> spike(date(2026, 10, 15), Decimal(501), history)
    Decimal('100')
    >>> spike(date(2026, 10, 15), Decimal(500), history) is None
    True
    >>> spike(date(2026, 10, 15), Decimal(501), history, GapsSpikesTuning(spike_factor=Decimal(6)))
    """
    since = day - timedelta(days=tuning.trailing_days)
    trailing = [q for d, q in days.items() if since <= d < day and q > 0]
    if len(trailing) < tuning.min_history:
        return None
    median = Decimal(statistics.median(trailing))
    return median if median > 0 and figure > tuning.spike_factor * median else None


class GapsSpikes:
    """Daily gaps and spikes per customer and billed meter (see the module docstring)."""

    name = "gaps-spikes"

    def check(self, context: ReconcileContext) -> Iterator[Finding]:
        rules = context.rules
        workspace = context.workspace.gaps_spikes or GapsSpikesTuning()
        tunings = {
            cid: workspace.merged(customer.gaps_spikes) for cid, customer in rules.customers.items()
        }
        billed: dict[str, set[str]] = {}
        for cid, customer in rules.customers.items():
            if not tunings[cid].enabled:
                continue
            for sub in customer.subscriptions:
                plan = rules.plans.get(sub.plan)
                for charge in plan.charges if plan is not None else ():
                    billed.setdefault(charge.meter, set()).add(cid)
        start, end = context.start, context.end + timedelta(days=1)
        today = context.today
        trailing = max((t.trailing_days for t in tunings.values()), default=TRAILING_DAYS)
        behind = start - timedelta(days=trailing)
        ahead = min(end + timedelta(days=LOOK_AHEAD), today)
        for meter_id in sorted(billed):
            meter = rules.meters[meter_id]
            per_customer: dict[str, dict[date, Decimal]] = {}
            events: dict[str, set[date]] = {}
            for row in daily_usage(
                context.engine,
                meter,
                start=behind,
                end=ahead,
                tz=context.workspace.tz,
                customers=billed[meter_id],
            ):
                per_customer.setdefault(row.customer, {})[row.day] = row.usage.quantity
                if row.usage.events:
                    events.setdefault(row.customer, set()).add(row.day)
            for cid in sorted(per_customer):
                days = per_customer[cid]
                tuning = tunings[cid]
                for run in gaps(
                    events.get(cid, set()),
                    start,
                    min(end, today),
                    look_behind=behind,
                    look_ahead=ahead,
                ):
                    if len(run) >= tuning.min_gap_days:
                        yield self._gap(context, cid, meter, run, days, tuning)
                factor = tuning.spike_factor
                for day in sorted(d for d in days if start <= d < end):
                    median = spike(day, days[day], days, tuning)
                    if median is not None:
                        yield self._finding(
                            context,
                            cid,
                            meter.id,
                            f"spike-{day}",
                            factor * median,
                            days[day],
                            f"{days[day]} on {day}, over {factor} × the trailing median "
                            f"{median}: a runaway client, or a double import?",
                        )

    def _gap(
        self,
        context: ReconcileContext,
        customer: str,
        meter: Meter,
        run: list[date],
        days: Mapping[date, Decimal],
        tuning: GapsSpikesTuning,
    ) -> Finding:
        first, last = run[0], run[-1]
        since = first - timedelta(days=tuning.trailing_days)
        trailing = [q for d, q in days.items() if since <= d < first and q > 0]
        median = Decimal(statistics.median(trailing)) if trailing else None
        when = (
            f"{first} ({first:%A})" if first == last else f"{len(run)} weekdays {first} to {last}"
        )
        typical = f" (median day before: {median})" if median is not None else ""
        return self._finding(
            context,
            customer,
            meter.id,
            f"gap-{first}",
            median,
            Decimal(0),
            f"no {meter.id} events on {when}, with usage on the weekdays around{typical}: "
            "an integration down?",
        )

    def _finding(
        self,
        context: ReconcileContext,
        customer: str,
        meter: str,
        what: str,
        expected: Decimal | None,
        actual: Decimal,
        explanation: str,
    ) -> Finding:
        return Finding(
            id=finding_id(self.name, context.period, customer, meter, what),
            severity="warning",
            check=self.name,
            customer=customer,
            meter=meter,
            period=context.period,
            expected=expected,
            actual=actual,
            explanation=explanation,
        )


@hookimpl
def meterbook_reconcilers() -> list[GapsSpikes]:
    """The first-party gaps-and-spikes check, registered through the same hook as third-party
    ones."""
    return [GapsSpikes()]
