"""Dual track: the batch events against the live meter's own totals, per customer, meter and month.

Two independent records of the same usage must agree. For every meter with live
totals in the month (``meterbook ingest totals.csv``, see
:mod:`ledger.importers.live_totals`), each customer's batch figure per local day
(:func:`ledger.metering.daily_usage`, SQL) and live figure per day (summed over
the live sources) are combined over the month the way the meter aggregates —
summed for ``count`` and ``sum`` (and ``unique_count``: user-days), the largest
day for ``max``, the last day for ``latest`` — with a day missing on one side
counting as 0 there. Then, with the meter's ``live_tolerance`` (rules/meters.yaml;
``"5"`` absolute in the meter's unit, ``"0.1%"`` relative to the live total)::

    |batch − live| > tolerance          error    blocks close until fixed or accepted
    0 < |batch − live| ≤ tolerance      info     reported
    equal, but some days differ         info     (an event counted on another day)

For acme in October, 24,988 calls in the batch and 25,000 live, tolerance ``"5"``::

    dual-track:acme:api_calls:2026-10  error  expected 25000  actual 24988
      batch events give 24988, the live meter 25000 (difference -12, outside the tolerance 5);
      days that differ: 2026-10-03 batch 388 live 400

A meter without any live total in the month is not dual-tracked that month
(silence, not a finding); a customer with events but no live totals for a
dual-tracked meter is compared with 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.hookspecs import hookimpl
from ledger.live_totals import daily_live_totals
from ledger.metering import daily_usage
from ledger.money import ZERO
from ledger.reconcile import Finding, ReconcileContext, finding_id

if TYPE_CHECKING:
    from ledger.rules import Meter

#: Days that differ named in an explanation (the largest differences first).
SHOWN_DAYS = 3


def month_figure(aggregation: str, days: Mapping[date, Decimal]) -> Decimal:
    """A month's figure from its daily figures, as the meter aggregates.

    >>> days = {date(2026, 10, 1): Decimal("3"), date(2026, 10, 2): Decimal("5")}
    >>> month_figure("count", days), month_figure("max", days), month_figure("latest", days)
    (Decimal('8'), Decimal('5'), Decimal('5'))
    """
    if not days:
        return ZERO
    if aggregation == "max":
        return max(days.values())
    if aggregation == "latest":
        return days[max(days)]
    return sum(days.values(), ZERO)


class DualTrack:
    """Batch events vs live meter totals (see the module docstring)."""

    name = "dual-track"

    def check(self, context: ReconcileContext) -> Iterator[Finding]:
        start, end = context.start, context.end + timedelta(days=1)
        live = daily_live_totals(context.engine, start=start, end=end)
        for meter_id in sorted({meter for meter, _customer in live}):
            meter = context.rules.meters.get(meter_id)
            if meter is None:  # the rules dropped a meter that has live totals
                yield self._finding(
                    context,
                    None,
                    meter_id,
                    "warning",
                    None,
                    None,
                    f"live totals for meter {meter_id!r}, which is no longer in the rules",
                )
                continue
            batch: dict[str, dict[date, Decimal]] = {}
            for day in daily_usage(
                context.engine, meter, start=start, end=end, tz=context.workspace.tz
            ):
                batch.setdefault(day.customer, {})[day.day] = day.usage.quantity
            customers = sorted({c for m, c in live if m == meter_id} | set(batch))
            for customer in customers:
                finding = self._compare(
                    context,
                    meter,
                    customer,
                    batch.get(customer, {}),
                    live.get((meter_id, customer), {}),
                )
                if finding is not None:
                    yield finding

    def _compare(
        self,
        context: ReconcileContext,
        meter: Meter,
        customer: str,
        batch: Mapping[date, Decimal],
        live: Mapping[date, Decimal],
    ) -> Finding | None:
        differing = sorted(
            (d for d in set(batch) | set(live) if batch.get(d, ZERO) != live.get(d, ZERO)),
            key=lambda d: (-abs(batch.get(d, ZERO) - live.get(d, ZERO)), d),
        )
        ours, theirs = month_figure(meter.aggregation, batch), month_figure(meter.aggregation, live)
        if ours == theirs and not differing:
            return None
        tolerance = meter.live_tolerance
        allowed = tolerance.allowed(theirs)
        difference = ours - theirs
        severity = "error" if abs(difference) > allowed else "info"
        days = "; days that differ: " + ", ".join(
            f"{d} batch {batch.get(d, ZERO)} live {live.get(d, ZERO)}"
            for d in sorted(differing[:SHOWN_DAYS])
        )
        if len(differing) > SHOWN_DAYS:
            days += f" and {len(differing) - SHOWN_DAYS} more"
        if ours == theirs:
            text = f"equal over the month ({ours}), but {len(differing)} days differ"
        else:
            within = "outside" if severity == "error" else "within"
            text = (
                f"batch events give {ours}, the live meter {theirs} (difference {difference}, "
                f"{within} the tolerance {tolerance}"
                + (f" = {allowed}" if tolerance.relative else "")
                + ")"
            )
        return self._finding(
            context, customer, meter.id, severity, theirs, ours, text + (days if differing else "")
        )

    def _finding(
        self,
        context: ReconcileContext,
        customer: str | None,
        meter: str,
        severity: str,
        expected: Decimal | None,
        actual: Decimal | None,
        explanation: str,
    ) -> Finding:
        return Finding(
            id=finding_id(self.name, context.period, customer, meter),
            severity=severity,  # type: ignore[arg-type]
            check=self.name,
            customer=customer,
            meter=meter,
            period=context.period,
            expected=expected,
            actual=actual,
            explanation=explanation,
        )


@hookimpl
def meterbook_reconcilers() -> list[DualTrack]:
    """The first-party dual-track check, registered through the same hook as third-party ones."""
    return [DualTrack()]
