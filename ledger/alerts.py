"""Caps and alerts: the day a customer's cycle-to-date usage or spend reaches a threshold of its cap.

A customer with a usage cap, a spend cap and the default thresholds::

    customers:
      acme:
        currency: USD
        subscriptions: [{plan: g, start: 2026-09-01}]   # graduated: 10 calls free, then 0.05
        billing_anchor: calendar
        caps: {api_calls: 100}
        spend_cap: "4.00"
        alert_thresholds: [0.8, 1.0]

With 10 calls a day from September 1st, cumulative for the cycle
``2026-09-01/2026-10-01``::

    day         calls   spend
    2026-09-08     80    3.50   usage-cap:acme:api_calls:2026-09-01:80  (80 of 100 call)
                                spend-cap:acme:2026-09-01:80            (3.20 of 4.00 USD)
    2026-09-09     90    4.00   spend-cap:acme:2026-09-01:100
    2026-09-10    100    4.50   usage-cap:acme:api_calls:2026-09-01:100

A threshold is crossed on the first day whose cumulative figure reaches
``threshold × cap``. Usage is the meter's aggregate over ``[cycle start, day
+ 1)`` (computed in SQL by :mod:`ledger.metering`, exact for every
aggregation); spend is the cycle's usage charges priced with the plan and
rounded like the rating (gross of prepaid credits; base fees and commitments
are known in advance and left out). Each crossing has a stable id; raised
alerts are kept in the store's ``alerts`` table, so each is raised, and passed
to the ``meterbook_alert`` hook, once however often the check runs.

An alert counts as raised only once every notification plugin took it (the
webhook plugin takes it when it is delivered or appended to the outbox). If a
plugin raises (a webhook down *and* an outbox that cannot be written, say),
the alert is not kept as raised: ``meterbook alerts`` exits 1 and the next run
notifies it again, so no alert is lost silently; the plugins that did take it
get it again then (the webhook sends the same ``Idempotency-Key``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from ledger.cycles import Cycle, cycles_for
from ledger.errors import PluginError
from ledger.metering import Window, cut_off_us, daily_usage, measure
from ledger.money import normalize, round_money
from ledger.pricing import PricingModel, Usage
from ledger.rating import is_ratable, prorate, recognize
from ledger.registry import NotificationFailure
from ledger.rules import Charge, Meter, Rules
from ledger.store import alerts as alerts_table
from ledger.workspace import AlertsConfig

if TYPE_CHECKING:
    from ledger.session import Session

ZERO = Decimal(0)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Alert:
    """One threshold of a cap crossed in one cycle: what ``meterbook_alert`` receives.

    ``value`` is the cumulative figure on ``date``, the first day it reached
    ``threshold × cap``. ``delivery`` is the workspace's ``[alerts]``
    configuration with the customer's own ``webhook`` (customers.yaml), if
    any, as the URL: notification plugins read where to send from here.
    """

    kind: str  # "usage_cap" | "spend_cap"
    customer: str
    meter: str | None
    cycle: str  # cycle key "start/end"
    threshold: Decimal
    cap: Decimal
    value: Decimal
    unit: str  # the meter's unit, or the currency for spend
    date: date
    delivery: AlertsConfig = field(default=AlertsConfig(), compare=False)

    @property
    def percent(self) -> str:
        """The threshold in percent: ``0.8`` → ``"80"``."""
        return str(normalize(self.threshold * 100))

    @property
    def id(self) -> str:
        """Stable across runs: ``usage-cap:acme:api_calls:2026-09-01:80``, ``spend-cap:acme:2026-09-01:100``."""
        parts = [self.kind.replace("_", "-"), self.customer, *([self.meter] if self.meter else []),
                 self.cycle.split("/")[0], self.percent]
        return ":".join(parts)

    @property
    def level(self) -> Decimal:
        """``threshold × cap``: the figure that had to be reached."""
        return normalize(self.threshold * self.cap)

    @property
    def message(self) -> str:
        """One line for people: who, what, which threshold, when."""
        what = f"{self.meter} usage" if self.meter else "spend"
        return (f"{self.customer}: {what} reached {self.percent} % of the cap ({_show(self.level, self)} of "
                f"{_show(self.cap, self)} {self.unit}) on {self.date.isoformat()}: {_show(self.value, self)} "
                f"{self.unit} in cycle {self.cycle}")

    def payload(self) -> dict[str, str | None]:
        """The alert as JSON-ready text (Decimals as strings): the webhook body and ``--json``."""
        return {
            "id": self.id, "kind": self.kind, "customer": self.customer, "meter": self.meter,
            "cycle": self.cycle, "threshold": str(self.threshold), "cap": str(self.cap),
            "level": str(self.level), "value": str(self.value), "unit": self.unit,
            "date": self.date.isoformat(), "message": self.message,
        }


def _show(amount: Decimal, alert: Alert) -> str:
    return f"{round_money(amount, alert.unit) if alert.kind == 'spend_cap' else amount:,}"


@dataclass(frozen=True)
class CycleProgress:
    """One cycle's cumulative figures per day, from its start through ``days[-1]``.

    ``quantities`` holds each capped meter's cumulative quantity per day;
    ``spend`` the cumulative usage charges per day (empty without a spend cap).
    """

    cycle: Cycle
    currency: str
    days: tuple[date, ...]
    quantities: Mapping[str, tuple[Decimal, ...]]
    spend: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class AlertRun:
    """What one check raised: every crossing through ``through``, which ones are new (raised and
    notified now), failed notifications, and ``pending``: the new crossings whose notification
    failed, not kept as raised (the next run tries them again)."""

    through: date
    alerts: tuple[Alert, ...]
    new: frozenset[str]
    failures: tuple[tuple[str, NotificationFailure], ...] = ()
    pending: frozenset[str] = frozenset()


def cycle_progress(engine: Engine, rules: Rules, models: Mapping[str, PricingModel], tz: ZoneInfo,
                   cycles: Sequence[tuple[Cycle, date]], *, spend: bool | None = None) -> list[CycleProgress]:
    """Cumulative capped usage (and spend) per day of each ``(cycle, last day)``.

    One metering call per meter (and per band set) for all cycles and days at
    once. ``spend=None`` computes spend for customers with a spend cap only;
    True for every cycle (statements project it), False never.
    """
    needs: dict[_Key, dict[tuple[str, date], tuple[Cycle, tuple[date, ...]]]] = defaultdict(dict)
    plans: list[tuple[Cycle, tuple[date, ...], list[str], bool]] = []
    for cycle, last in cycles:
        customer = rules.customers[cycle.customer]
        days = tuple(cycle.start + timedelta(days=i) for i in range((min(last, cycle.end - _DAY) - cycle.start).days + 1))
        meters = sorted(customer.caps)
        for meter in meters:
            needs[(meter, ())][(cycle.customer, cycle.start)] = (cycle, days)
        with_spend = customer.spend_cap is not None if spend is None else spend
        if with_spend:
            for charge in rules.plans[cycle.plan].charges:
                needs[(charge.meter, _bands(models, charge))][(cycle.customer, cycle.start)] = (cycle, days)
        plans.append((cycle, days, meters, with_spend))
    usages = {key: _cumulative(engine, rules.meters[key[0]], key[1], tz, items) for key, items in sorted(needs.items())}
    result = []
    for cycle, days, meters, with_spend in plans:
        at = (cycle.customer, cycle.start)
        quantities = {m: tuple(u.quantity for u in usages[(m, ())][at]) for m in meters}
        plan = rules.plans[cycle.plan]
        spent: tuple[Decimal, ...] = ()
        if with_spend:
            totals = [ZERO] * len(days)
            for charge in plan.charges:
                previous: tuple[Usage | None, Decimal] = (None, ZERO)
                by_day = is_ratable(models[charge.model])  # earned by day, not by usage
                for i, usage in enumerate(usages[(charge.meter, _bands(models, charge))][at]):
                    if by_day:
                        previous = (usage, charge_amount(models, charge, usage, plan.currency, cycle, days[i]))
                    elif usage != previous[0]:  # pricing is pure: a day without usage costs nothing new
                        previous = (usage, charge_amount(models, charge, usage, plan.currency))
                    totals[i] += previous[1]
            spent = tuple(totals)
        result.append(CycleProgress(cycle=cycle, currency=plan.currency, days=days, quantities=quantities,
                                    spend=spent))
    return result


_Key = tuple[str, tuple[Decimal, ...]]  # (meter, bands)
#: Aggregations whose cumulative usage is the running total of the daily ones.
ADDITIVE = frozenset({"count", "sum"})


def _cumulative(engine: Engine, meter: Meter, bands: tuple[Decimal, ...], tz: ZoneInfo,
                items: Mapping[tuple[str, date], tuple[Cycle, tuple[date, ...]]],
                ) -> dict[tuple[str, date], tuple[Usage, ...]]:
    """Per cycle: the meter's usage over ``[cycle start, day + 1)`` for each of its days.

    Count and sum add up across days, so one grouped daily query and a running
    total suffice (linear in days); other aggregations and band counts measure
    each cumulative window (:func:`ledger.metering.measure`).
    """
    out: dict[tuple[str, date], tuple[Usage, ...]] = {}
    if not bands and meter.aggregation in ADDITIVE:
        lo = min(cycle.start for cycle, _days in items.values())
        hi = max(days[-1] for _cycle, days in items.values()) + _DAY
        daily = {(d.customer, d.day): d.usage for d in daily_usage(
            engine, meter, start=lo, end=hi, tz=tz, customers={cycle.customer for cycle, _d in items.values()})}
        for key, (cycle, days) in items.items():
            quantity, count, series = ZERO, 0, []
            for day in days:
                usage = daily.get((cycle.customer, day))
                if usage is not None:
                    quantity, count = normalize(quantity + usage.quantity), count + usage.events
                series.append(Usage(quantity=quantity, events=count))
            out[key] = tuple(series)
        return out
    windows = {key: [Window(cycle.customer, cut_off_us(cycle.start, tz), cut_off_us(day + _DAY, tz)) for day in days]
               for key, (cycle, days) in items.items()}
    measured = measure(engine, meter, sorted({w for ws in windows.values() for w in ws}), bands)
    return {key: tuple(measured[w] for w in ws) for key, ws in windows.items()}


def _bands(models: Mapping[str, PricingModel], charge: Charge) -> tuple[Decimal, ...]:
    try:
        return tuple(models[charge.model].bands(charge.terms))
    except Exception as exc:  # a plugin's bug: name it, never a traceback
        raise PluginError(f"pricing model {charge.model!r} ({charge.meter}) failed in bands(): "
                          f"{type(exc).__name__}: {exc}") from None


def charge_amount(models: Mapping[str, PricingModel], charge: Charge, usage: Usage, currency: str,
                  cycle: Cycle | None = None, day: date | None = None) -> Decimal:
    """A charge's amount for a cumulative usage, rounded as the rating rounds it. With
    ``cycle``, a ratable charge (``flat``) counts as rating recognizes it: prorated for a
    short cycle and earned by day through ``day`` (the cycle's last day when None)."""
    try:
        model = models[charge.model]
        amount = model.price(charge.terms, usage).amount
        if cycle is not None and is_ratable(model):
            return recognize(prorate(amount, cycle, currency), cycle, day or cycle.end - _DAY, currency)
        return round_money(amount, currency)
    except Exception as exc:  # a plugin's bug or a price that is not a finite Decimal
        raise PluginError(f"pricing model {charge.model!r} ({charge.meter}) failed pricing a spend cap: "
                          f"{type(exc).__name__}: {exc}") from None


def crossings(progress: CycleProgress, rules: Rules, delivery: AlertsConfig = AlertsConfig()) -> list[Alert]:
    """Every threshold of the customer's caps reached in ``progress``, dated the first day it was reached."""
    customer = rules.customers[progress.cycle.customer]
    if customer.webhook:
        delivery = replace(delivery, webhook_url=customer.webhook)
    found: list[Alert] = []
    series: list[tuple[str, str | None, Decimal, tuple[Decimal, ...], str]] = [
        ("usage_cap", meter, customer.caps[meter], values, rules.meters[meter].unit)
        for meter, values in sorted(progress.quantities.items())]
    if customer.spend_cap is not None and progress.spend:
        series.append(("spend_cap", None, customer.spend_cap, progress.spend, progress.currency))
    for kind, meter, cap, values, unit in series:
        for threshold in sorted(set(customer.alert_thresholds)):
            level = threshold * cap
            for day, value in zip(progress.days, values, strict=True):
                if value >= level:
                    found.append(Alert(kind=kind, customer=customer.id, meter=meter, cycle=progress.cycle.key,
                                       threshold=threshold, cap=cap, value=value, unit=unit, date=day,
                                       delivery=delivery))
                    break
    return found


def find_alerts(session: Session, through: date) -> list[Alert]:
    """Every crossing in every cycle that started on or before ``through``, in date order."""
    rules = session.rules
    cycles: list[tuple[Cycle, date]] = []
    for _cid, customer in sorted(rules.customers.items()):
        if not customer.caps and customer.spend_cap is None:
            continue
        for cycle in cycles_for(customer, rules.plans, until=through + _DAY):
            cycles.append((cycle, min(through, cycle.end - _DAY)))
    progress = cycle_progress(session.engine, rules, session.registry.pricing_models, session.workspace.tz, cycles)
    found = [alert for p in progress for alert in crossings(p, rules, session.workspace.alerts)]
    return sorted(found, key=lambda a: (a.date, a.customer, a.cycle, a.kind, a.meter or "", a.threshold))


def record(engine: Engine, alerts: Sequence[Alert], *, now: datetime | None = None) -> frozenset[str]:
    """Store the alerts not stored yet; return the ids stored now.

    ``INSERT … ON CONFLICT DO NOTHING`` per alert: two concurrent runs cannot both raise one.
    """
    raised_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    new: set[str] = set()
    with engine.begin() as conn:
        for alert in alerts:
            statement = insert(alerts_table).values(
                id=alert.id, kind=alert.kind, customer=alert.customer, meter=alert.meter or "", cycle=alert.cycle,
                threshold=str(alert.threshold), cap=str(alert.cap), value=str(alert.value),
                date=alert.date.isoformat(), message=alert.message, raised_at=raised_at,
            ).on_conflict_do_nothing(index_elements=["id"]).returning(alerts_table.c.id)
            if conn.execute(statement).scalar_one_or_none() is not None:  # (rowcount is -1 on psycopg)
                new.add(alert.id)
    return frozenset(new)


def unrecord(engine: Engine, ids: Collection[str]) -> None:
    """Forget raised alerts whose notification failed, so the next run raises them again."""
    if ids:
        with engine.begin() as conn:
            conn.execute(sa.delete(alerts_table).where(alerts_table.c.id.in_(sorted(ids))))


def raised_ids(engine: Engine) -> frozenset[str]:
    """The ids of every alert raised so far."""
    with engine.connect() as conn:
        return frozenset(conn.execute(sa.select(alerts_table.c.id)).scalars())


def raise_alerts(session: Session, through: date) -> AlertRun:
    """Find the crossings through ``through``, store the new ones and notify each once.

    Storing first claims each new crossing (two concurrent runs cannot both notify
    it). A plugin that raises is reported in ``failures`` (with the alert id) and
    does not stop the others; the alert is then forgotten again (``pending``), so
    it is not lost: the next run raises and notifies it again.
    """
    found = find_alerts(session, through)
    claimed = record(session.engine, found)
    failures: list[tuple[str, NotificationFailure]] = []
    pending: set[str] = set()
    for alert in found:
        if alert.id in claimed:
            failed = session.registry.notify("meterbook_alert", alert=alert)
            failures += [(alert.id, f) for f in failed]
            if failed:
                pending.add(alert.id)
    unrecord(session.engine, pending)
    return AlertRun(through=through, alerts=tuple(found), new=claimed - pending, failures=tuple(failures),
                    pending=frozenset(pending))
