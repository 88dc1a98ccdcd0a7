"""Usage statements: what a customer can check before disputing a bill.

``meterbook statement acme --cycle 2026-09-10`` (on Sep 10, so the current
cycle) writes two files named after the cycle's link,
``statements/acme-2026-09-01.html`` and ``.csv``::

    Usage statement · Acme (acme) · cycle 2026-09-01/2026-10-01 · plan g · as of 2026-09-10 (day 10 of 30)

    daily usage        api_calls: one SVG bar a day (11, 10, 10, … calls); tokens: 1,000 on Sep 5
    charges to date    api_calls (graduated) 101 call                      4.55
                         0 – 10: 10 × 0 = 0
                         11 and above: 91 × 0.05 = 4.55
                       tokens (unit) 1,000 token                           10.00
                       total this cycle to date                            14.55
    projection         ÷ 10 elapsed days × 30: 303 call → 14.65, 3,000 token → 30.00; total 44.65
    caps               api_calls 101 of 100 call (101.0 %), projected 303; 80 % on 2026-09-08, 100 % on 2026-09-10
    evidence           102 event rows in acme-2026-09-01.csv (api_calls Σ 101; tokens Σ 1,000), sha256 …

The charges are the rating's (the same lines :func:`ledger.invoicing.cycle_lines`
puts on the invoice, plus the base fee billed in advance at the cycle's
start), so for a finished cycle the statement's total is what the invoices
billed for that cycle. The CSV has one row per event and meter it counts for
(``meter,day,time,source,event_id,type,quantity,properties``), streamed from
the store in time order: summing ``quantity`` per meter (count and sum
meters) gives the statement's quantity.

The projection is the run rate: quantity to date ÷ elapsed days × days in the
cycle (count and sum meters; max, latest and unique-count meters keep their
value to date), priced with the plan version the whole cycle is rated under,
plus the base fee, the minimum commitment's shortfall against the projected
usage, less prepaid credit up to what the cycle's accrual points drew so far
and what a later one can still draw. For a finished cycle it is the actual
total. Credit left that expires before the cycle's end is mentioned::

    5.00 USD of prepaid credit expires tomorrow, 2026-10-10: credit is drawn at month
    ends and on the cycle's last day, and none comes before, so it will not be used.

The HTML is self-contained (inline CSS and SVG, no scripts, no external
references) and every text from the rules or the store is HTML-escaped. Output
depends only on the store, the rules and the statement date: no timestamps of
now.
"""  # noqa: E501

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Engine

from ledger.alerts import (
    Alert,
    CapChanges,
    CycleProgress,
    cap_changes,
    cap_on,
    charge_amount,
    crossings,
    cycle_progress,
)
from ledger.books import write_atomic
from ledger.cycles import Cycle, cycle_at, cycles_at
from ledger.discounts import Part, discount_parts, discounts_on
from ledger.documents import statement_html
from ledger.documents.invoices import line_label
from ledger.documents.pdf import render_pdf
from ledger.errors import BadInput
from ledger.escaping import SpreadsheetCsv
from ledger.events import from_us
from ledger.facts.invoices import InvoiceLine
from ledger.invoicing import cycle_lines, discount_lines
from ledger.metering import Window, cut_off_us, daily_usage, measure
from ledger.money import ZERO, from_units_nanos, normalize, round_money
from ledger.pricing import Band, Usage
from ledger.rating import CycleRating, Rating, charge_bands, cycle_plan, grant_key, undrawn_credit
from ledger.rules import Meter, Plan, Rules
from ledger.store import events

if TYPE_CHECKING:
    from ledger.session import Session

_DAY = timedelta(days=1)
#: Aggregations whose quantity grows with time, so the run rate extrapolates them.
RUN_RATE_AGGREGATIONS = frozenset({"count", "sum"})
CSV_COLUMNS = ("meter", "day", "time", "source", "event_id", "type", "quantity", "properties")


@dataclass(frozen=True)
class MeterUsage:
    """One meter over the cycle to date: per local day (days with events) and in total."""

    meter: str
    unit: str
    aggregation: str
    daily: tuple[tuple[date, Decimal, int], ...]  # (day, quantity, events)
    quantity: Decimal
    events: int
    #: the meter's display name (``name`` in meters.yaml, else its id)
    name: str = ""


@dataclass(frozen=True)
class ExpiringCredit:
    """Prepaid credit left on the statement date that expires before the cycle is over:
    from ``expires`` on it can no longer be drawn (``days`` after the statement date)."""

    amount: Decimal
    expires: date
    days: int
    #: the accrual points before ``expires`` where usage can still draw on it (none: all of
    #: ``amount`` is lost; credit is drawn at month ends and the cycle's last day only)
    drawn_at: tuple[date, ...] = ()

    @property
    def when(self) -> str:
        """``tomorrow, 2026-10-10``, ``in 5 days, 2026-10-14``."""
        return f"{'tomorrow' if self.days == 1 else f'in {self.days} days'}, {self.expires}"


@dataclass(frozen=True)
class CapUse:
    """A usage or spend cap: used so far, projected at the cycle's end, thresholds crossed."""

    kind: str  # usage_cap | spend_cap
    meter: str | None
    unit: str
    cap: Decimal
    used: Decimal
    projected: Decimal
    crossed: tuple[Alert, ...]

    @property
    def percent(self) -> Decimal:
        """Share of the cap used, in percent with one decimal (``82.5``)."""
        return (self.used * 100 / self.cap).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class ChargeProjection:
    """One charge projected to the cycle's end from its run rate."""

    meter: str
    quantity: Decimal
    projected_quantity: Decimal
    projected_amount: Decimal


@dataclass(frozen=True)
class Projection:
    """The projected end-of-cycle cost and how it was computed (``method``, one paragraph)."""

    method: str
    elapsed_days: int
    cycle_days: int
    charges: tuple[ChargeProjection, ...]
    usage: Decimal
    base_fee: Decimal
    commitment: Decimal
    credit: Decimal
    #: the customer's discounts on the projected charges (:mod:`ledger.discounts`)
    discount: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.usage + self.base_fee + self.commitment - self.discount - self.credit


@dataclass(frozen=True)
class Statement:
    """A customer's cycle to date (or a finished cycle): usage, charges, credits, projection,
    caps."""

    customer: str
    name: str
    currency: str
    cycle: Cycle
    through: date
    meters: tuple[MeterUsage, ...]
    lines: tuple[InvoiceLine, ...]
    credit_applied: Decimal
    credit_remaining: Decimal
    projection: Projection
    caps: tuple[CapUse, ...]
    rules: str
    #: the plan's display name (``name`` in plans.yaml, else its id)
    plan_name: str = ""
    #: prepaid credit left on ``through`` that expires by the cycle's end, soonest first
    expiring: tuple[ExpiringCredit, ...] = ()
    #: each line of ``lines`` in the customer's words, as the invoice labels it (the meter's
    #: display name, "Base fee, billed in arrears" …); empty: the lines' descriptions
    labels: tuple[str, ...] = ()

    @property
    def total(self) -> Decimal:
        """Everything billed for the cycle: the invoices' lines linked to it, once it is
        finished."""
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def finished(self) -> bool:
        return self.through == self.cycle.end - _DAY

    @property
    def elapsed_days(self) -> int:
        return (self.through - self.cycle.start).days + 1


@dataclass(frozen=True)
class Evidence:
    """The CSV written next to a statement: rows per meter, the sum of their quantities, digest."""

    file: str
    rows: int
    per_meter: tuple[
        tuple[str, int, Decimal | None], ...
    ]  # (meter, rows, Σ quantity for count/sum)
    sha256: str


@dataclass(frozen=True)
class StatementFiles:
    """What ``write_statement`` wrote."""

    statement: Statement
    html: Path
    csv: Path
    evidence: Evidence


# --- choosing the cycle --------------------------------------------------------------------


def pick_cycle(
    rules: Rules, customer: str, which: str, today: date, subscription: str | None = None
) -> Cycle:
    """The customer's cycle containing ``today`` (``which="current"``) or the date ``which``:
    of its subscription ``subscription`` (an ``id``; "" the main one), or None: the main one's,
    else the first add-on's running then."""
    if customer not in rules.customers:
        known = ", ".join(sorted(rules.customers)[:5])
        raise BadInput(
            f"unknown customer {customer!r} "
            f"(customers: {known}{', …' if len(rules.customers) > 5 else ''})"
        )
    if which == "current":
        day = today
    else:
        try:
            day = date.fromisoformat(which)
        except ValueError:
            raise BadInput(
                f"--cycle: {which!r} is neither 'current' nor a date YYYY-MM-DD"
            ) from None
    subscriber = rules.customers[customer]
    if subscription is None:
        running = cycles_at(subscriber, rules.plans, day)
        cycle = running[0] if running else None
    elif subscription not in subscriber.series():
        ids = ", ".join(repr(k) for k in subscriber.series() if k) or "none"
        raise BadInput(
            f"--subscription: customer {customer!r} has no subscription {subscription!r} "
            f"(its ids: {ids})"
        )
    else:
        cycle = cycle_at(subscriber, rules.plans, day, subscription)
    if cycle is None:
        whose = f"subscription {subscription!r} of customer" if subscription else "customer"
        raise BadInput(f"--cycle: {whose} {customer!r} has no billing cycle containing {day}")
    if cycle.start > today:
        raise BadInput(
            f"--cycle: the cycle {cycle.key} has not started yet (today is {today.isoformat()})"
        )
    return cycle


# --- building ------------------------------------------------------------------------------


def build_statement(session: Session, cycle: Cycle, *, today: date) -> Statement:
    """The statement of ``cycle`` as of ``today`` (its last day once it is finished)."""
    rules, engine, tz = session.rules, session.engine, session.workspace.tz
    models = session.registry.pricing_models
    customer = rules.customers[cycle.customer]
    plan = terms_of(session, cycle)
    through = min(today, cycle.end - _DAY)
    rating = session.rate(through, {cycle.customer})
    rated = _rated(rating, cycle, through)

    lines = list(cycle_lines(rated, rules))
    fee = rated.base_fee
    if fee is not None and fee.timing == "advance" and fee.billed:
        advance = InvoiceLine(
            kind="base_fee",
            description=f"{cycle.plan} base fee {cycle.key} (in advance)",
            account="deferred",
            amount=fee.billed,
            cycle=cycle.key,
            link=cycle.link,
        )
        lines[:0] = [advance, *discount_lines(rated, "base_fee", "deferred")]
    remaining = _credit_remaining(rules, rating, cycle.customer, through)
    drawn_at = _draw_points(session, cycle)
    settled = _settled_credit(rating, cycle, through, drawn_at)
    expiring = _expiring(rules, settled, cycle, through)

    changes = cap_changes(engine)  # the customer's own cap changes (``meterbook api``'s portal)
    capped = set(customer.caps) | {m for c, m in changes if c == customer.id and m in rules.meters}
    meter_ids = list(dict.fromkeys(c.meter for c in plan.charges))
    meter_ids += sorted(m for m in capped if m not in meter_ids)
    progress = cycle_progress(
        engine,
        rules,
        models,
        tz,
        [(cycle, through)],
        spend=customer.spend_cap is not None,
        changes=changes,
        pins=session.stored_facts().pins,
    )[0]
    meters = tuple(
        _meter_usage(engine, rules.meters[m], cycle, through, tz, rated, progress)
        for m in meter_ids
    )
    projection = _project(
        session,
        cycle,
        through,
        rated,
        _usable_credit(rules, settled, cycle, through, drawn_at),
        expiring,
    )
    caps = _caps(rules, progress, projection, meters, session, changes)
    return Statement(
        customer=customer.id,
        name=customer.name or customer.id,
        currency=customer.currency,
        cycle=cycle,
        through=through,
        meters=meters,
        lines=tuple(lines),
        credit_applied=rated.credit_applied,
        credit_remaining=remaining,
        projection=projection,
        caps=caps,
        rules=rules.hash,
        plan_name=rules.plans[cycle.plan].name or cycle.plan,
        expiring=expiring,
        labels=tuple(line_label(line, rules) for line in lines),
    )


def terms_of(session: Session, cycle: Cycle) -> Plan:
    """The plan terms the rating prices ``cycle`` with: the version in effect at its start,
    or the one its invoice pinned (:func:`ledger.rating.cycle_plan`)."""
    return cycle_plan(
        session.rules.plans[cycle.plan], cycle, session.stored_facts().pins.get(cycle.link)
    )


def _rated(rating: Rating, cycle: Cycle, through: date) -> CycleRating:
    for rated in rating.cycles:
        if rated.cycle == cycle and rated.through == through:
            return rated
    raise AssertionError(
        f"the rating has no point {through} for {cycle.key}"
    )  # rating_points includes it


def _credit_remaining(rules: Rules, rating: Rating, customer: str, through: date) -> Decimal:
    """Prepaid credit left on ``through``: grants so far − draws + returns − breakage."""
    grants = rating.grants_of(rules.customers[customer])
    total = sum((g.amount for g in grants if g.granted <= through), ZERO)
    for movement in rating.credits:
        if movement.customer == customer and movement.day <= through:
            total += {"draw": -1, "return": 1, "breakage": -1, "credit_note": -1}[
                movement.kind
            ] * movement.amount
    return total


def _draw_points(session: Session, cycle: Cycle) -> frozenset[date]:
    """The days credit is drawn for ``cycle``: its accrual points (month ends and its last day)
    and the days threshold invoices billed it through (:func:`ledger.rating.threshold_points`)."""
    thresholds = session.stored_facts().progress.get(cycle.link, ())
    return frozenset((*cycle.accrual_points(), *thresholds))


def _settled_credit(
    rating: Rating, cycle: Cycle, through: date, drawn_at: frozenset[date]
) -> Rating:
    """``rating`` without the draws and returns it made at ``through`` when that is not a day
    credit is drawn for the cycle (``drawn_at``, :func:`_draw_points`): a draw "as if the cycle
    ended on the statement date" may never happen (the grant can expire first)."""
    if through in drawn_at:
        return rating
    kept = tuple(
        m
        for m in rating.credits
        if not (m.customer == cycle.customer and m.day == through and m.kind in ("draw", "return"))
    )
    return replace(rating, credits=kept)


def _expiring(
    rules: Rules, settled: Rating, cycle: Cycle, through: date
) -> tuple[ExpiringCredit, ...]:
    """The customer's grants with credit left on ``through`` (drawn at accrual points only) that
    expire after it and no later than the cycle's end (usable through its last day at most)."""
    grants = settled.grants_of(rules.customers[cycle.customer])
    left = undrawn_credit(settled, grants, cycle.customer, through)
    points = [p for p in cycle.accrual_points() if p > through]
    found = [
        ExpiringCredit(
            left[key],
            grant.expires,
            (grant.expires - through).days,
            tuple(p for p in points if p < grant.expires),
        )
        for i, grant in enumerate(grants)
        if grant.expires is not None
        and through < grant.expires <= cycle.end
        and left.get(key := grant_key(grants, i), ZERO) > 0
    ]
    return tuple(sorted(found, key=lambda e: (e.expires, e.amount)))


def _usable_credit(
    rules: Rules, settled: Rating, cycle: Cycle, through: date, drawn_at: frozenset[date]
) -> tuple[Decimal, Decimal]:
    """``(applied, usable)``: the credit drawn for the cycle through ``through`` at the days
    credit is drawn (``drawn_at``: accrual points and threshold invoices' days), and what is
    left of the grants on ``through`` that a later accrual point of the cycle can still draw
    (granted by then, not expired at it). A threshold invoice that drew the credit mid-cycle
    counts: the projection must not offer that credit again."""
    applied = ZERO
    for rated in settled.cycles:
        real = rated.through in drawn_at
        if rated.cycle == cycle and rated.through <= through and real:
            applied = rated.credit_applied
    grants = settled.grants_of(rules.customers[cycle.customer])
    left = undrawn_credit(settled, grants, cycle.customer, through)
    points = [p for p in cycle.accrual_points() if p > through]
    usable = sum(
        (
            left.get(grant_key(grants, i), ZERO)
            for i, grant in enumerate(grants)
            if any(grant.expires is None or p < grant.expires for p in points)
        ),
        ZERO,
    )
    return applied, max(usable, ZERO)


def _meter_usage(
    engine: Engine,
    meter: Meter,
    cycle: Cycle,
    through: date,
    tz: ZoneInfo,
    rated: CycleRating,
    progress: CycleProgress,
) -> MeterUsage:
    daily = daily_usage(
        engine, meter, start=cycle.start, end=through + _DAY, tz=tz, customers=[cycle.customer]
    )
    charged = [c for c in rated.charges if c.meter == meter.id]
    if charged:
        quantity, count = charged[0].quantity, charged[0].events
    else:  # a capped meter the plan does not price
        quantity = progress.quantities[meter.id][-1]
        count = sum(d.usage.events for d in daily)
    return MeterUsage(
        meter=meter.id,
        unit=meter.unit,
        aggregation=meter.aggregation,
        daily=tuple((d.day, d.usage.quantity, d.usage.events) for d in daily),
        quantity=quantity,
        events=count,
        name=meter.name or meter.id,
    )


def _scale(value: Decimal, factor: Fraction) -> Decimal:
    """``value × factor``, whole when ``value`` is whole, else to 9 places (half-even)."""
    exact = value * factor.numerator / Decimal(factor.denominator)
    places = Decimal(1) if value == value.to_integral_value() else Decimal(1).scaleb(-9)
    return normalize(exact.quantize(places, rounding=ROUND_HALF_EVEN))


def _project(
    session: Session,
    cycle: Cycle,
    through: date,
    rated: CycleRating,
    credit_terms: tuple[Decimal, Decimal],
    expiring: Sequence[ExpiringCredit] = (),
) -> Projection:
    rules, tz = session.rules, session.workspace.tz
    models = session.registry.pricing_models
    plan = terms_of(session, cycle)
    elapsed = (through - cycle.start).days + 1
    factor = Fraction(cycle.days, elapsed)
    window = Window(cycle.customer, cut_off_us(cycle.start, tz), cut_off_us(through + _DAY, tz))
    charges: list[ChargeProjection] = []
    for charge in plan.charges:
        meter = rules.meters[charge.meter]
        where = f"pricing model {charge.model!r} on {cycle.customer} {cycle.key} ({charge.meter})"
        bands = charge_bands(models[charge.model], charge, where)
        usage = measure(session.engine, meter, [window], bands)[window]
        if meter.aggregation in RUN_RATE_AGGREGATIONS and factor != 1:
            usage = Usage(
                quantity=_scale(usage.quantity, factor),
                events=round(usage.events * factor),
                bands=tuple(
                    Band(b.upper, round(b.count * factor), _scale(b.total, factor))
                    for b in usage.bands
                ),
            )
        amount = charge_amount(models, charge, usage, plan.currency, cycle)  # at the cycle's end
        to_date = next(c.quantity for c in rated.charges if c.index == len(charges))
        charges.append(
            ChargeProjection(
                meter=charge.meter,
                quantity=to_date,
                projected_quantity=usage.quantity,
                projected_amount=amount,
            )
        )
    usage_total = sum((c.projected_amount for c in charges), ZERO)
    base_fee = rated.base_fee.billed if rated.base_fee is not None else ZERO
    commitment = ZERO
    if plan.minimum_commitment is not None:
        minimum = round_money(
            plan.minimum_commitment
            * cycle.proration().numerator
            / Decimal(cycle.proration().denominator),
            plan.currency,
        )
        commitment = max(ZERO, minimum - usage_total)
    off = discount_parts(
        discounts_on(rules.customers[cycle.customer], rules.plans, cycle),
        [
            *([Part("base_fee", "deferred", base_fee)] if _timing(rated) == "advance" else []),
            *(Part(f"usage:{c.meter}", "unbilled", c.projected_amount) for c in charges),
            *([Part("commitment", "unbilled", commitment)] if commitment else []),
            *([Part("base_fee", "unbilled", base_fee)] if _timing(rated) == "arrears" else []),
        ],
        plan.currency,
    )
    discount = sum((d.amount for d in off), ZERO)
    # credit is drawn at accrual points: what expires before the next one is lost to the cycle
    applied, usable = credit_terms
    lost = any(not e.drawn_at for e in expiring)
    on_usage = sum((d.amount for d in off if d.part.startswith("usage:")), ZERO)
    credit = min(usage_total - on_usage, applied + usable)
    terms = _terms_text(session, cycle)
    if elapsed == cycle.days:
        method = (
            "The cycle is finished: the projection is the actual total (quantities to date "
            f"priced with {terms})."
        )
    else:
        method = (
            f"Run rate: quantity to date ÷ {elapsed} elapsed days × {cycle.days} days in the "
            "cycle, for count and sum meters (max, latest and unique-count meters keep their "
            f"value to date), priced with {terms}; plus the base fee, the minimum commitment's "
            "shortfall against the projected usage, less the customer's discounts on them, less "
            "prepaid credit up to what is applied and remaining"
            + (" (less what expires before it can be drawn)" if lost else "")
            + "."
        )
    return Projection(
        method=method,
        elapsed_days=elapsed,
        cycle_days=cycle.days,
        charges=tuple(charges),
        usage=usage_total,
        base_fee=base_fee,
        commitment=commitment,
        credit=credit,
        discount=discount,
    )


def _timing(rated: CycleRating) -> str:
    return rated.base_fee.timing if rated.base_fee is not None and rated.base_fee.billed else ""


def _terms_text(session: Session, cycle: Cycle) -> str:
    """``plan pro``, or for a plan with versions the one the whole cycle is priced with, the
    projected days included (a version never splits a cycle): ``plan pro as of its version of
    2026-10-01``, ``plan pro (its original terms)``."""
    plan = session.rules.plans[cycle.plan]
    if not plan.versions:
        return f"plan {cycle.plan}"
    pin = session.stored_facts().pins.get(cycle.link)
    version = pin.usage if pin is not None and pin.usage is not None else None
    version = plan.version_at(cycle.start) if version is None else version
    if version == date.min:
        return f"plan {cycle.plan} (its original terms)"
    return f"plan {cycle.plan} as of its version of {version}"


def _caps(
    rules: Rules,
    progress: CycleProgress,
    projection: Projection,
    meters: Sequence[MeterUsage],
    session: Session,
    changes: CapChanges,
) -> tuple[CapUse, ...]:
    customer = rules.customers[progress.cycle.customer]
    alerts = crossings(progress, rules, session.workspace.alerts, changes)
    factor = Fraction(projection.cycle_days, projection.elapsed_days)
    caps = []
    last = progress.days[-1] if progress.days else progress.cycle.start
    for meter in sorted(progress.quantities):
        cap = cap_on(
            rules, customer.id, meter, last, changes
        )  # in force on the statement's last day
        if cap is None:
            continue
        used = progress.quantities[meter][-1] if progress.days else ZERO
        aggregation = rules.meters[meter].aggregation
        projected = _scale(used, factor) if aggregation in RUN_RATE_AGGREGATIONS else used
        caps.append(
            CapUse(
                kind="usage_cap",
                meter=meter,
                unit=rules.meters[meter].unit,
                cap=cap,
                used=used,
                projected=projected,
                crossed=tuple(a for a in alerts if a.meter == meter),
            )
        )
    if customer.spend_cap is not None:
        used = progress.spend[-1] if progress.spend else ZERO
        caps.append(
            CapUse(
                kind="spend_cap",
                meter=None,
                unit=customer.currency,
                cap=customer.spend_cap,
                used=used,
                projected=projection.usage,
                crossed=tuple(a for a in alerts if a.kind == "spend_cap"),
            )
        )
    return tuple(caps)


# --- the evidence CSV --------------------------------------------------------------------


def evidence_rows(
    engine: Engine, meters: Sequence[Meter], customer: str, start_us: int, end_us: int, tz: ZoneInfo
) -> Iterator[tuple[str, ...]]:
    """One row per event and meter it counts for, streamed from the store in ``(time, source, id)`` order.

    The meter's filter is applied here as metering applies it (property text
    equals the filter's text); ``quantity`` is what the event adds: ``1`` for
    count, the value property for sum, max and latest ("" when it is not a
    number), the value's text for unique count.
    """  # noqa: E501
    pg = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        for meter in meters:
            order: list[Any] = [events.c.time_us, events.c.source, events.c.event_id]
            if pg:
                order = [
                    events.c.time_us,
                    events.c.source.collate("C"),
                    events.c.event_id.collate("C"),
                ]
            query = (
                sa.select(
                    events.c.source,
                    events.c.event_id,
                    events.c.type,
                    events.c.time_us,
                    events.c.properties,
                    events.c.numbers,
                )
                .where(
                    events.c.customer == customer,
                    events.c.type == meter.event_type,
                    events.c.time_us >= start_us,
                    events.c.time_us < end_us,
                )
                .order_by(*order)
            )
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
            for source, event_id, type_, time_us, properties, numbers in result:
                props = json.loads(properties)
                if any(props.get(k) != v for k, v in meter.filter.items()):
                    continue
                when = from_us(time_us)
                yield (
                    meter.id,
                    when.astimezone(tz).date().isoformat(),
                    when.isoformat().replace("+00:00", "Z"),
                    source,
                    event_id,
                    type_,
                    _event_quantity(meter, props, json.loads(numbers)),
                    properties,
                )


def _event_quantity(meter: Meter, props: dict[str, str], numbers: dict[str, list[int]]) -> str:
    if meter.aggregation == "count":
        return "1"
    assert meter.value is not None  # rules require it for every other aggregation
    if meter.aggregation == "unique_count":
        return props.get(meter.value, "")
    pair = numbers.get(meter.value)
    return str(from_units_nanos(pair[0], pair[1])) if pair else ""


def write_evidence(
    path: Path, rows: Iterator[tuple[str, ...]], meters: Sequence[Meter]
) -> Evidence:
    """Stream ``rows`` into ``path`` atomically (temporary file, fsync, rename); count and
    digest them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    counts = {m.id: 0 for m in meters}
    sums: dict[str, Decimal] = {m.id: ZERO for m in meters}
    additive = {m.id for m in meters if m.aggregation in RUN_RATE_AGGREGATIONS}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            buffer = io.StringIO()
            writer = SpreadsheetCsv(buffer)  # a cell from the data never runs as a formula
            writer.writerow(CSV_COLUMNS)
            for n, row in enumerate(rows, 1):
                writer.writerow(row)
                counts[row[0]] += 1
                if row[6] and row[0] in additive:
                    sums[row[0]] += Decimal(row[6])
                if n % 5000 == 0:
                    chunk = buffer.getvalue().encode("utf-8")
                    handle.write(chunk)
                    digest.update(chunk)
                    buffer.seek(0)
                    buffer.truncate()
            chunk = buffer.getvalue().encode("utf-8")
            handle.write(chunk)
            digest.update(chunk)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    per_meter = tuple(
        (
            m.id,
            counts[m.id],
            normalize(sums[m.id]) if m.aggregation in RUN_RATE_AGGREGATIONS else None,
        )
        for m in meters
    )
    return Evidence(
        file=path.name, rows=sum(counts.values()), per_meter=per_meter, sha256=digest.hexdigest()
    )


def write_statement(
    session: Session,
    customer: str,
    *,
    which: str = "current",
    out: Path | None = None,
    today: date | None = None,
    subscription: str | None = None,
) -> StatementFiles:
    """Build the statement and write ``<out>/<customer>-<cycle start>.csv`` and ``.html``
    (``<customer>+<id>-<cycle start>`` for the cycle of subscription ``id``, an add-on).

    ``out`` defaults to ``statements/`` in the workspace; ``today`` to today in the workspace
    timezone; ``subscription`` picks the subscription (:func:`pick_cycle`). One command
    (:meth:`Session.command`): the issued facts are read once.
    """
    with session.command():
        return _write_statement(session, customer, which, out, today, subscription)


def _write_statement(
    session: Session,
    customer: str,
    which: str,
    out: Path | None,
    today: date | None,
    subscription: str | None = None,
) -> StatementFiles:
    today = today or session.today()
    cycle = pick_cycle(session.rules, customer, which, today, subscription)
    statement = build_statement(session, cycle, today=today)
    out = out if out is not None else session.workspace.root / "statements"
    tz = session.workspace.tz
    meters = [session.rules.meters[m.meter] for m in statement.meters]
    csv_path = out / f"{cycle.file_stem}.csv"
    rows = evidence_rows(
        session.engine,
        meters,
        cycle.customer,
        cut_off_us(cycle.start, tz),
        cut_off_us(statement.through + _DAY, tz),
        tz,
    )
    evidence = write_evidence(csv_path, rows, meters)
    html_path = out / f"{cycle.file_stem}.html"
    html = statement_html(statement, evidence, session.templates)
    write_atomic(html_path, html)
    if session.workspace.documents.pdf:
        write_atomic(html_path.with_suffix(".pdf"), render_pdf(html))
    return StatementFiles(statement=statement, html=html_path, csv=csv_path, evidence=evidence)
