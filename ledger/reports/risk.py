"""``meterbook report risk``: customers whose latest month's usage collapsed or spiked against
the median of the months before it.

A customer at 100 tokens in October after a median of 1,000 is a churn risk (at most 50 %),
one at 1,500 after 500 a bill-shock risk (at least 200 %): :func:`risk_status`.

The baseline is the customer's own history: only the full calendar months since its first day
(its first subscription's start or first event, whichever is earlier) count, never the months
before it signed up (0) nor the month it signed up in (a few days' usage). A customer starting
on 2026-08-25 judged in October has one baseline month, September:
:func:`baseline_months`.
"""

from __future__ import annotations

import statistics
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from ledger.period import month_start, months_between, shift_month
from ledger.reports.sources import Sources, customer_starts, monthly_usage, usage_month
from ledger.reports.table import Report, Table

#: Months in the trailing median, and the thresholds on latest ÷ median.
RISK_BASELINE_MONTHS = 3
CHURN_BELOW = Decimal("0.5")
SHOCK_ABOVE = Decimal("2")


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


def baseline_months(last: str, start: date | None) -> list[str]:
    """The months of the baseline for ``last``: of the :data:`RISK_BASELINE_MONTHS` before it,
    those a customer starting on ``start`` had in full.

    >>> baseline_months("2026-10", date(2026, 8, 25))
    ['2026-09']
    >>> baseline_months("2026-10", date(2026, 8, 1)), baseline_months("2026-10", date(2026, 10, 3))
    (['2026-08', '2026-09'], [])
    >>> baseline_months("2026-10", None)
    ['2026-07', '2026-08', '2026-09']
    """
    trailing = months_between(shift_month(last, -RISK_BASELINE_MONTHS), shift_month(last, -1))
    return [m for m in trailing if start is None or month_start(m) >= start]


def risk(sources: Sources, month: str | None = None) -> Report:
    """Customers whose latest month's usage dropped or spiked against their trailing median."""
    last = usage_month(sources, month)
    trailing = baseline_months(last, None)
    usage = monthly_usage(sources, [*trailing, last])
    starts = customer_starts(sources)
    order = {"churn risk": 0, "bill-shock risk": 1, "no baseline": 2, "ok": 3}
    rows = []
    for cid, meter in sorted({(c, mt) for c, mt, _m in usage}):
        baseline = baseline_months(last, starts.get(cid))
        quantities = [usage[(cid, meter, m)].quantity for m in baseline]
        median = Decimal(statistics.median(quantities)) if quantities else Decimal(0)
        latest = usage[(cid, meter, last)].quantity
        status = risk_status(latest, median)
        change = (
            ((latest / median - 1) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
            if median
            else None
        )
        since = (
            None
            if not baseline
            else baseline[0]
            if len(baseline) == 1
            else f"{baseline[0]} to {baseline[-1]}"
        )
        rows.append((cid, meter, since, median, latest, change, status))
    rows.sort(key=lambda r: (order[str(r[6])], r[0], r[1]))
    return Report(
        name="risk",
        title=f"Usage risk in {last}",
        method=(
            f"Per customer and meter, the quantity measured in the store in {last} (calendar "
            "month, workspace timezone) against the median of the "
            f"{RISK_BASELINE_MONTHS} months before it ({trailing[0]} to {trailing[-1]}) that the "
            "customer had in full: months before its first day (its first subscription's start "
            "or first event, whichever is earlier) and the month it started in are left out "
            "('baseline' shows the months used). At most "
            f"{CHURN_BELOW * 100:.0f} % of the median is a churn risk (usage collapsing), at "
            f"least {SHOCK_ABOVE * 100:.0f} % a bill-shock risk (usage spiking, so will the "
            "invoice); no full month or a median of 0 has no baseline. Flagged rows first."
        ),
        tables=(
            Table(
                f"Usage against the trailing median, {last}",
                (
                    "customer",
                    "meter",
                    "baseline",
                    "trailing median",
                    "latest",
                    "change %",
                    "status",
                ),
                tuple(rows),
            ),
        ),
    )
