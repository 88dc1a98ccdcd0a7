"""``meterbook report forecast``: the next three months per customer from the trailing usage
trend, priced with the customer's plan.

Per customer and meter a least-squares line is fitted through the monthly quantities of the
last six months (:func:`linear_trend`) and continued: 100, 200, 300 calls give 400, 500, 600.
Each forecast month is priced with the plans running on its first day (a main plan and its
add-ons), each at the plan version in effect for that day's billing cycle (:func:`plans_on`):
a price rise effective 2026-12-01 prices December and January at the new price, November at
the old.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from ledger.cycles import Cycle, cycles_at
from ledger.discounts import Part, discount_parts, discounts_on
from ledger.errors import PluginError
from ledger.metering import Window, cut_off_us, measure
from ledger.money import ZERO, normalize, round_money
from ledger.period import month_start, months_between, next_month, shift_month
from ledger.pricing import PricingError, PricingModel, Usage
from ledger.rating import charge_bands, cycle_plan, price_charge
from ledger.reports.sources import (
    Sources,
    monthly_usage,
    usage_month,
)
from ledger.reports.table import Cell, Report, Table

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ledger.rules import Charge, Plan, Rules

#: Months of history the trend is fitted on, and months forecast.
TREND_MONTHS = 6
FORECAST_MONTHS = 3
#: Places of forecast quantities.
QUANTITY = Decimal("0.01")


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
    """The first of :func:`plans_on` (the main subscription's plan; None: none runs then)."""
    running = plans_on(rules, customer, day)
    return running[0] if running else None


def plans_on(rules: Rules, customer: str, day: date) -> tuple[Plan, ...]:
    """The terms the customer is billed with for the cycles running on ``day`` (none: no
    subscription then), one per subscription (a main plan and its add-ons): each plan at the
    version in effect at its cycle's start, as rating prices the cycle
    (:func:`ledger.rating.cycle_plan`; a version never splits a cycle).

    Subscriptions of one id are in start order and a later start ends the earlier one (a
    plan change).
    """
    return tuple(
        cycle_plan(rules.plans[cycle.plan], cycle)
        for cycle in cycles_at(rules.customers[customer], rules.plans, day)
    )


#: a customer's meter's monthly trend: (quantity line, events line, months fitted)
_Trend = tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal], int]

CYCLE_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


def _last_month_rate(
    sources: Sources,
    customer: str,
    meter: str,
    month: str,
    model: PricingModel,
    charge: Charge,
    bands: tuple[Decimal, ...],
) -> Decimal:
    """Amount per unit of quantity in ``month``, priced with the events counted by the model's
    bands (a per-event minimum or maximum cannot be priced from a forecast total alone); 0
    without usage."""
    tz = sources.session.workspace.tz
    window = Window(
        customer,
        cut_off_us(month_start(month), tz),
        cut_off_us(month_start(next_month(month)), tz),
    )
    usage = measure(sources.session.engine, sources.rules.meters[meter], [window], bands)[window]
    if not usage.quantity:
        return ZERO
    where = f"pricing model {charge.model!r} on {customer} ({meter}), forecasting,"
    return price_charge(model, charge, usage, where).amount / usage.quantity


def _discounts(
    rules: Rules, customer: str, cycle: Cycle, plan: Plan, amounts: Mapping[str, Decimal]
) -> list[tuple[str, Decimal]]:
    """The customer's discounts on one plan's forecast month (:mod:`ledger.discounts`): those
    of the cycle running on its first day, on the month's charges, base fee and shortfall
    (``amounts`` by row label); a fixed amount per cycle spread evenly by month like the fee."""
    known = rules.customers[customer]
    if not known.discounts:
        return []
    per_month = CYCLE_MONTHS[plan.cycle]
    mine = [
        d
        if d.amount is None or per_month == 1
        else d.model_copy(update={"amount": round_money(d.amount / per_month, plan.currency)})
        for d in discounts_on(known, rules.plans, cycle)
    ]
    fee = amounts.get("(base fee)") or ZERO
    timing = plan.base_fee.timing if plan.base_fee is not None else ""
    parts = [
        *([Part("base_fee", "deferred", fee)] if timing == "advance" else []),
        *(Part(f"usage:{c.meter}", "unbilled", amounts.get(c.meter) or ZERO) for c in plan.charges),
        Part("commitment", "unbilled", amounts.get("(commitment shortfall)") or ZERO),
        *([Part("base_fee", "unbilled", fee)] if timing == "arrears" else []),
    ]
    off: dict[str, Decimal] = {}
    for d in discount_parts(mine, parts, plan.currency):
        off[d.label] = off.get(d.label, ZERO) + d.amount
    return sorted(off.items())


def forecast(sources: Sources, month: str | None = None) -> Report:
    """The next three months per customer from the trailing usage trend, priced with the plan."""
    last = usage_month(sources, month)
    history = months_between(shift_month(last, 1 - TREND_MONTHS), last)
    future = [shift_month(last, k) for k in range(1, FORECAST_MONTHS + 1)]
    usage = monthly_usage(sources, history)
    models = sources.session.registry.pricing_models
    trends: dict[tuple[str, str], _Trend] = {}
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
            running = plans_on(sources.rules, cid, month_start(m))
            if not running:
                totals.append(None)
                continue
            total: Decimal | None = ZERO
            cycles = cycles_at(sources.rules.customers[cid], sources.rules.plans, month_start(m))
            for plan, cycle in zip(running, cycles, strict=True):
                plans.append(plan.id)
                first = len(meter_rows)
                total = _plan_month(
                    sources, models, trends, cid, m, k, last, plan, total, meter_rows
                )
                if total is not None:
                    amounts = {
                        str(row[3]): row[5]
                        for row in meter_rows[first:]
                        if isinstance(row[5], Decimal)
                    }
                    for label, off in _discounts(sources.rules, cid, cycle, plan, amounts):
                        meter_rows.append(
                            (cid, m, plan.id, f"(discount {label})", None, -off, currency)
                        )
                        total -= off
            totals.append(total)
        if plans:
            customer_rows.append((cid, currency, ",".join(sorted(set(plans))), *totals))
    return Report(
        name="forecast",
        title=f"Forecast for {future[0]} to {future[-1]} (trend through {last})",
        method=(
            "Per customer and meter, the monthly quantity (and event count) measured in the "
            f"store over the trailing {TREND_MONTHS} calendar months through {last} — from the "
            "first month with usage, if later — is fitted with a least-squares line y = a + b·x "
            f"(x = 0, 1, … per month); the next {FORECAST_MONTHS} months are the line's values at "
            "the following x, never below 0. Each month's quantity is priced with the customer's "
            "plan on that month's first day, at the plan version in effect for the billing "
            "cycle running that day (the terms that cycle is invoiced with), as if the month "
            "were one billing cycle — for a "
            "quarterly or yearly plan, a cycle used at that monthly rate (count and sum meters "
            "times the cycle's months; max, latest and unique counts as they are) divided by its "
            "months — (the plan's pricing plugin, rounded half-even; a model with per-event "
            "bands, such as a percentage with a per-event minimum or maximum, at the amount per "
            f"unit it gave in {last}), plus the base fee (a quarterly or yearly fee spread evenly "
            "by month) and, for monthly plans, any minimum-commitment shortfall, less the "
            "customer's discounts on the cycle running that day (a fixed amount per cycle spread "
            "evenly by month). Prepaid credits and taxes are not deducted."
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


def _plan_month(
    sources: Sources,
    models: Mapping[str, PricingModel],
    trends: Mapping[tuple[str, str], _Trend],
    cid: str,
    m: str,
    k: int,
    last: str,
    plan: Plan,
    total: Decimal | None,
    meter_rows: list[tuple[Cell, ...]],
) -> Decimal | None:
    """``total`` plus the forecast of one plan of ``cid`` (its usage charges, base fee and
    commitment shortfall) for month ``m``, ``k`` months after ``last``; its rows added to
    ``meter_rows``. None once an amount cannot be forecast."""
    currency = sources.rules.customers[cid].currency
    usage_total = ZERO
    per_month = CYCLE_MONTHS[plan.cycle]
    for charge in plan.charges:
        trend = trends.get((cid, charge.meter))
        quantity, events = ZERO, 0
        if trend is not None:
            (qa, qb), (ea, eb), n = trend
            quantity = max(ZERO, qa + qb * (n - 1 + k)).quantize(QUANTITY, rounding=ROUND_HALF_EVEN)
            events = max(
                0, int((ea + eb * (n - 1 + k)).to_integral_value(rounding=ROUND_HALF_EVEN))
            )
        where = f"pricing model {charge.model!r} on {cid} ({charge.meter}), forecasting,"
        try:
            model = models[charge.model]
            bands = charge_bands(model, charge, where)
            # per-event bands (a minimum or maximum per event): last month's effective rate
            if bands:
                amount: Decimal | None = round_money(
                    _last_month_rate(sources, cid, charge.meter, last, model, charge, bands)
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
                price = price_charge(model, charge, cycle_usage, where)
                amount = round_money(price.amount / per_month, currency)
        # a quantity the model cannot price: no forecast for it (a plugin's own refusal
        # comes back from price_charge as a PluginError naming it)
        except (PricingError, PluginError, ArithmeticError, KeyError):
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
    return total
