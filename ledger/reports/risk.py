"""``meterbook report risk``: customers whose latest month's usage collapsed or spiked against
the median of the months before it.

A customer at 100 tokens in October after a median of 1,000 is a churn risk (at most 50 %),
one at 1,500 after 500 a bill-shock risk (at least 200 %): :func:`risk_status`.
"""

from __future__ import annotations

import statistics
from decimal import ROUND_HALF_EVEN, Decimal

from ledger.period import months_between, shift_month
from ledger.reports.sources import Sources, monthly_usage, usage_month
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


def risk(sources: Sources, month: str | None = None) -> Report:
    """Customers whose latest month's usage dropped or spiked against their trailing median."""
    last = usage_month(sources, month)
    baseline = months_between(shift_month(last, -RISK_BASELINE_MONTHS), shift_month(last, -1))
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
            f"Per customer and meter, the quantity measured in the store in {last} (calendar "
            "month, workspace timezone) against the median of the "
            f"{RISK_BASELINE_MONTHS} months before it ({baseline[0]} to {baseline[-1]}). At most "
            f"{CHURN_BELOW * 100:.0f} % of the median is a churn risk (usage collapsing), at "
            f"least {SHOCK_ABOVE * 100:.0f} % a bill-shock risk (usage spiking, so will the "
            "invoice); a median of 0 has no baseline. Flagged rows first."
        ),
        tables=(
            Table(
                f"Usage against the trailing median, {last}",
                ("customer", "meter", "trailing median", "latest", "change %", "status"),
                tuple(rows),
            ),
        ),
    )
