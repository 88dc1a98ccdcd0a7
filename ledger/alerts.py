"""Caps and alerts: the day a customer's cycle-to-date usage or spend reaches a threshold
of its cap.

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

Each notification plugin (a ``meterbook_alert`` hook implementation) takes each
alert once. Raising an alert stores, in the same transaction, one row per
plugin in ``alert_deliveries``; a plugin's row is deleted when it takes the alert
(the webhook plugin takes it when it is delivered or appended to the outbox).
A plugin that raises (a webhook down *and* an outbox that cannot be written,
say) keeps its row: ``meterbook alerts`` exits 1 and the next run calls that
plugin alone again, so the plugins that took the alert never hear it twice::

    run   recorder        mailer (smtp down, then fixed)   meterbook alerts
    1     takes A, B      fails A, B: pending              exit 1, A and B PENDING mailer
    2     -               takes A, B                       exit 0
    3     -               -                                exit 0

A delivery whose plugin is no longer loaded waits for it (reported, never
dropped silently) until ``meterbook alerts --drop-undelivered PLUGIN``.
"""

from __future__ import annotations

import re
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
from ledger.facts.pins import TermsPin, load_pins
from ledger.metering import Window, cut_off_us, daily_usage, measure
from ledger.money import ZERO, normalize, round_money
from ledger.pricing import PricingModel, Usage
from ledger.rating import charge_bands, charged, cycle_plan, is_ratable, price_charge
from ledger.registry import NotificationFailure
from ledger.rules import Charge, Meter, Rules
from ledger.store import alert_deliveries as deliveries
from ledger.store import alerts as alerts_table
from ledger.store import cap_changes as cap_changes_table
from ledger.workspace import AlertsConfig

if TYPE_CHECKING:
    from ledger.session import Session

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
        """Stable across runs: ``usage-cap:acme:api_calls:2026-09-01:80``,
        ``spend-cap:acme:2026-09-01:100``."""
        parts = [
            self.kind.replace("_", "-"),
            self.customer,
            *([self.meter] if self.meter else []),
            self.cycle.split("/")[0],
            self.percent,
        ]
        return ":".join(parts)

    @property
    def level(self) -> Decimal:
        """``threshold × cap``: the figure that had to be reached."""
        return normalize(self.threshold * self.cap)

    @property
    def message(self) -> str:
        """One line for people: who, what, which threshold, when."""
        what = f"{self.meter} usage" if self.meter else "spend"
        return (
            f"{self.customer}: {what} reached {self.percent} % of the cap "
            f"({_show(self.level, self)} of {_show(self.cap, self)} {self.unit}) "
            f"on {self.date.isoformat()}: {_show(self.value, self)} {self.unit} "
            f"in cycle {self.cycle}"
        )

    def payload(self) -> dict[str, str | None]:
        """The alert as JSON-ready text (Decimals as strings): the webhook body and ``--json``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "customer": self.customer,
            "meter": self.meter,
            "cycle": self.cycle,
            "threshold": str(self.threshold),
            "cap": str(self.cap),
            "level": str(self.level),
            "value": str(self.value),
            "unit": self.unit,
            "date": self.date.isoformat(),
            "message": self.message,
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
class PendingDelivery:
    """A raised alert one notification plugin has not taken yet.

    ``attempts`` calls were made; ``error`` is the last one's failure ("" when the
    plugin was never called, or a call is in progress in another run).
    ``loaded``: whether the plugin is loaded now; one that is not keeps its
    deliveries until it is back or they are dropped (:func:`drop_undelivered`).
    """

    alert: str
    plugin: str
    attempts: int
    error: str
    last_attempt: str  # ISO 8601 UTC, "" before the first call
    loaded: bool


@dataclass(frozen=True)
class AlertRun:
    """What one check did: every crossing through ``through`` (``alerts``), which were raised now
    (``new``), the plugin calls made and failed now (``delivered`` as ``(alert id, plugin)``,
    ``failures``), and the deliveries still ``pending`` after it, in every raised alert.
    ``also_pending`` holds the raised alerts with a pending delivery that are not among
    ``alerts`` (dated after ``through``, or no longer crossed since events were corrected)."""

    through: date
    alerts: tuple[Alert, ...]
    new: frozenset[str]
    delivered: tuple[tuple[str, str], ...] = ()
    failures: tuple[tuple[str, NotificationFailure], ...] = ()
    pending: tuple[PendingDelivery, ...] = ()
    also_pending: tuple[Alert, ...] = ()

    def pending_plugins(self, alert_id: str) -> tuple[str, ...]:
        """The plugins that have not taken ``alert_id`` yet."""
        return tuple(p.plugin for p in self.pending if p.alert == alert_id)


#: Self-service usage caps (:func:`cap_changes`): per ``(customer, meter)``, the ``(effective
#: day, cap)`` changes in the order they were made.
CapChanges = Mapping[tuple[str, str], tuple[tuple[date, Decimal], ...]]


def cap_changes(engine: Engine) -> dict[tuple[str, str], tuple[tuple[date, Decimal], ...]]:
    """The self-service cap changes in the store (``meterbook api``'s portal, ``cap_changes``)."""
    c = cap_changes_table.c
    found: dict[tuple[str, str], list[tuple[date, Decimal]]] = defaultdict(list)
    with engine.connect() as conn:
        for customer, meter, effective, cap in conn.execute(
            sa.select(c.customer, c.meter, c.effective, c.cap).order_by(c.effective, c.id)
        ):
            found[(customer, meter)].append((date.fromisoformat(effective), Decimal(cap)))
    return {key: tuple(values) for key, values in found.items()}


def cap_on(
    rules: Rules, customer: str, meter: str, day: date, changes: CapChanges
) -> Decimal | None:
    """The usage cap in force on ``day``: the last self-service change effective on or before
    it, else the customer's cap in the rules (None: no cap).

    >>> from ledger.rules import Customer
    >>> acme = Customer(id="acme", currency="USD", caps={"api_calls": Decimal(100)})
    >>> rules = Rules.model_construct(customers={"acme": acme})
    >>> changes = {("acme", "api_calls"): ((date(2026, 9, 9), Decimal(150)),)}
    >>> cap_on(rules, "acme", "api_calls", date(2026, 9, 8), changes), cap_on(
    ...     rules, "acme", "api_calls", date(2026, 9, 9), changes)
    (Decimal('100'), Decimal('150'))
    """
    found = rules.customers[customer].caps.get(meter)
    for effective, cap in changes.get((customer, meter), ()):
        if effective <= day:
            found = cap
    return found


def cycle_progress(
    engine: Engine,
    rules: Rules,
    models: Mapping[str, PricingModel],
    tz: ZoneInfo,
    cycles: Sequence[tuple[Cycle, date]],
    *,
    spend: bool | None = None,
    changes: CapChanges | None = None,
    pins: Mapping[str, TermsPin] | None = None,
) -> list[CycleProgress]:
    """Cumulative capped usage (and spend) per day of each ``(cycle, last day)``.

    One metering call per meter (and per band set) for all cycles and days at
    once. ``spend=None`` computes spend for customers with a spend cap only;
    True for every cycle (statements project it), False never. ``changes``: meters
    with a self-service cap (:func:`cap_changes`) count as capped too. ``pins``: the
    stored terms pins when the caller has read them already (a command's snapshot).
    """
    needs: dict[_Key, dict[tuple[str, date], tuple[Cycle, tuple[date, ...]]]] = defaultdict(dict)
    plans: list[tuple[Cycle, tuple[date, ...], list[str], bool]] = []
    pins = load_pins(engine) if pins is None else pins
    # spend is priced as the rating prices the cycle: its plan version (or the one an invoice
    # pinned), never the plan's original terms
    terms = {
        cycle.link: cycle_plan(rules.plans[cycle.plan], cycle, pins.get(cycle.link))
        for cycle, _last in cycles
    }
    for cycle, last in cycles:
        customer = rules.customers[cycle.customer]
        days = tuple(
            cycle.start + timedelta(days=i)
            for i in range((min(last, cycle.end - _DAY) - cycle.start).days + 1)
        )
        meters = sorted(
            _capped_here(
                cycle,
                rules,
                set(customer.caps)
                | {m for c, m in (changes or {}) if c == customer.id and m in rules.meters},
            )
        )
        for meter in meters:
            needs[(meter, ())][(cycle.link, cycle.start)] = (cycle, days)
        with_spend = customer.spend_cap is not None if spend is None else spend
        if with_spend:
            for charge in terms[cycle.link].charges:
                needs[(charge.meter, _bands(models, charge))][(cycle.link, cycle.start)] = (
                    cycle,
                    days,
                )
        plans.append((cycle, days, meters, with_spend))
    usages = {
        key: _cumulative(engine, rules.meters[key[0]], key[1], tz, items)
        for key, items in sorted(needs.items())
    }
    result = []
    for cycle, days, meters, with_spend in plans:
        at = (cycle.link, cycle.start)
        quantities = {m: tuple(u.quantity for u in usages[(m, ())][at]) for m in meters}
        plan = terms[cycle.link]
        spent: tuple[Decimal, ...] = ()
        if with_spend:
            totals = [ZERO] * len(days)
            for charge in plan.charges:
                previous: tuple[Usage | None, Decimal] = (None, ZERO)
                by_day = is_ratable(models[charge.model])  # earned by day, not by usage
                for i, usage in enumerate(usages[(charge.meter, _bands(models, charge))][at]):
                    if by_day:
                        previous = (
                            usage,
                            charge_amount(models, charge, usage, plan.currency, cycle, days[i]),
                        )
                    elif (
                        usage != previous[0]
                    ):  # pricing is pure: a day without usage costs nothing new
                        previous = (usage, charge_amount(models, charge, usage, plan.currency))
                    totals[i] += previous[1]
            spent = tuple(totals)
        result.append(
            CycleProgress(
                cycle=cycle, currency=plan.currency, days=days, quantities=quantities, spend=spent
            )
        )
    return result


_Key = tuple[str, tuple[Decimal, ...]]  # (meter, bands)
#: Aggregations whose cumulative usage is the running total of the daily ones.
ADDITIVE = frozenset({"count", "sum"})


def _capped_here(cycle: Cycle, rules: Rules, capped: set[str]) -> set[str]:
    """The capped meters measured over ``cycle``: a customer with add-ons (subscription ids)
    has a meter's cap counted over the cycles of the add-on whose plan prices it, every other
    cap over its main subscription's cycles, so no usage cap is counted twice."""
    customer = rules.customers[cycle.customer]
    if len(customer.series()) == 1:
        return capped
    if cycle.series:
        return capped & rules.plans[cycle.plan].priced_meters
    addons = {
        m for sub in customer.subscriptions if sub.id for m in rules.plans[sub.plan].priced_meters
    }
    return capped - addons


def _cumulative(
    engine: Engine,
    meter: Meter,
    bands: tuple[Decimal, ...],
    tz: ZoneInfo,
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
        daily = {
            (d.customer, d.day): d.usage
            for d in daily_usage(
                engine,
                meter,
                start=lo,
                end=hi,
                tz=tz,
                customers={cycle.customer for cycle, _d in items.values()},
            )
        }
        for key, (cycle, days) in items.items():
            quantity, count, series = ZERO, 0, []
            for day in days:
                usage = daily.get((cycle.customer, day))
                if usage is not None:
                    quantity, count = normalize(quantity + usage.quantity), count + usage.events
                series.append(Usage(quantity=quantity, events=count))
            out[key] = tuple(series)
        return out
    windows = {
        key: [
            Window(cycle.customer, cut_off_us(cycle.start, tz), cut_off_us(day + _DAY, tz))
            for day in days
        ]
        for key, (cycle, days) in items.items()
    }
    measured = measure(engine, meter, sorted({w for ws in windows.values() for w in ws}), bands)
    return {key: tuple(measured[w] for w in ws) for key, ws in windows.items()}


def _bands(models: Mapping[str, PricingModel], charge: Charge) -> tuple[Decimal, ...]:
    return charge_bands(
        models[charge.model], charge, f"pricing model {charge.model!r} ({charge.meter})"
    )


def charge_amount(
    models: Mapping[str, PricingModel],
    charge: Charge,
    usage: Usage,
    currency: str,
    cycle: Cycle | None = None,
    day: date | None = None,
) -> Decimal:
    """A charge's amount for a cumulative usage, rounded as the rating rounds it. With
    ``cycle``, a ratable charge (``flat``) counts as rating recognizes it: prorated for a
    short cycle and earned by day through ``day`` (the cycle's last day when None)."""
    model = models[charge.model]
    where = f"pricing model {charge.model!r} ({charge.meter}), pricing a spend cap,"
    amount = price_charge(model, charge, usage, where).amount
    if cycle is None:
        return round_money(amount, currency)
    return charged(model, amount, cycle, day or cycle.end - _DAY, currency)


def crossings(
    progress: CycleProgress,
    rules: Rules,
    delivery: AlertsConfig = AlertsConfig(),
    changes: CapChanges | None = None,
) -> list[Alert]:
    """Every threshold of the customer's caps reached in ``progress``, dated the first day it
    was reached.

    A usage cap changed by the customer (``changes``, :func:`cap_changes`) counts from
    the day of the change on: each day is measured against the cap in force that day.
    """
    customer = rules.customers[progress.cycle.customer]
    delivery = _delivery(rules, customer.id, delivery)
    found: list[Alert] = []
    series: list[tuple[str, str | None, tuple[Decimal | None, ...], tuple[Decimal, ...], str]] = [
        (
            "usage_cap",
            meter,
            tuple(cap_on(rules, customer.id, meter, day, changes or {}) for day in progress.days),
            values,
            rules.meters[meter].unit,
        )
        for meter, values in sorted(progress.quantities.items())
    ]
    if customer.spend_cap is not None and progress.spend:
        series.append(
            (
                "spend_cap",
                None,
                (customer.spend_cap,) * len(progress.days),
                progress.spend,
                progress.currency,
            )
        )
    for kind, meter, caps, values, unit in series:
        for threshold in sorted(set(customer.alert_thresholds)):
            for day, value, cap in zip(progress.days, values, caps, strict=True):
                if cap is not None and value >= threshold * cap:
                    found.append(
                        Alert(
                            kind=kind,
                            customer=customer.id,
                            meter=meter,
                            cycle=progress.cycle.key,
                            threshold=threshold,
                            cap=cap,
                            value=value,
                            unit=unit,
                            date=day,
                            delivery=delivery,
                        )
                    )
                    break
    return found


def _delivery(rules: Rules, customer: str, delivery: AlertsConfig) -> AlertsConfig:
    """The workspace's ``[alerts]`` settings with the customer's own ``webhook`` as URL, if set."""
    known = rules.customers.get(customer)
    return (
        replace(delivery, webhook_url=known.webhook)
        if known is not None and known.webhook
        else delivery
    )


def find_alerts(session: Session, through: date) -> list[Alert]:
    """Every crossing in every cycle that started on or before ``through``, in date order."""
    rules = session.rules
    cycles: list[tuple[Cycle, date]] = []
    changes = cap_changes(session.engine)
    for _cid, customer in sorted(rules.customers.items()):
        if (
            not customer.caps
            and customer.spend_cap is None
            and not any(c == _cid for c, _m in changes)
        ):
            continue
        for cycle in cycles_for(customer, rules.plans, until=through + _DAY):
            cycles.append((cycle, min(through, cycle.end - _DAY)))
    progress = cycle_progress(
        session.engine,
        rules,
        session.registry.pricing_models,
        session.workspace.tz,
        cycles,
        changes=changes,
        pins=session.facts().pins,
    )
    found = [
        alert for p in progress for alert in crossings(p, rules, session.workspace.alerts, changes)
    ]
    return sorted(
        found, key=lambda a: (a.date, a.customer, a.cycle, a.kind, a.meter or "", a.threshold)
    )


#: A delivery claimed this long ago that neither succeeded nor failed was interrupted (the
#: run was killed inside the plugin call): the next run claims it again. Longer than any
#: first-party call can last: the webhook's worst case (10 POSTs of 60 s, backoff 60 s × 2^n)
#: is under 9 hours. An interrupt (Ctrl-C) is recorded as a failure at once instead.
INTERRUPTED_AFTER = timedelta(hours=24)


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


def notification_plugins(session: Session) -> tuple[str, ...]:
    """The loaded plugins implementing ``meterbook_alert``, in the order they are called."""
    return tuple(impl.plugin_name for impl in session.registry.hook.meterbook_alert.get_hookimpls())


def record(
    engine: Engine,
    alerts: Sequence[Alert],
    plugins: Sequence[str] = (),
    *,
    now: datetime | None = None,
) -> frozenset[str]:
    """Store the alerts not stored yet, each with a delivery owed by every one of ``plugins``;
    return the ids stored now.

    ``INSERT … ON CONFLICT DO NOTHING`` per alert: two concurrent runs cannot both raise one.
    The alert and its deliveries are one transaction, so a raised alert always has them.
    """
    raised_at = _stamp(now)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    new: set[str] = set()
    with engine.begin() as conn:
        for alert in alerts:
            statement = (
                insert(alerts_table)
                .values(
                    id=alert.id,
                    kind=alert.kind,
                    customer=alert.customer,
                    meter=alert.meter or "",
                    cycle=alert.cycle,
                    threshold=str(alert.threshold),
                    cap=str(alert.cap),
                    value=str(alert.value),
                    date=alert.date.isoformat(),
                    message=alert.message,
                    raised_at=raised_at,
                    unit=alert.unit,
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(alerts_table.c.id)
            )
            if (
                conn.execute(statement).scalar_one_or_none() is not None
            ):  # (rowcount is -1 on psycopg)
                new.add(alert.id)
                if plugins:
                    conn.execute(
                        deliveries.insert(),
                        [{"alert_id": alert.id, "plugin": p, "attempts": 0} for p in plugins],
                    )
    return frozenset(new)


def claim(engine: Engine, alert_id: str, plugin: str, *, now: datetime | None = None) -> bool:
    """Take one pending delivery for this run; False when another run has it.

    One conditional ``UPDATE``: only a delivery never tried, failed (and, when its plugin asked
    to retry later, due), or interrupted (claimed over :data:`INTERRUPTED_AFTER` ago) is taken,
    and marked in progress (``error`` NULL, ``last_attempt`` now). Two runs cannot both take
    it: SQLite runs one writer at a time, and PostgreSQL makes the second ``UPDATE`` wait for
    the first to commit and then re-check its ``WHERE`` against the new row.
    """
    moment = now or datetime.now(UTC)
    row = deliveries.c
    statement = (
        sa.update(deliveries)
        .where(
            row.alert_id == alert_id,
            row.plugin == plugin,
            # a failed delivery is due at once, a deferred one (RetryLater) from its last_attempt on
            sa.or_(
                row.last_attempt.is_(None),
                sa.and_(row.error.is_not(None), row.last_attempt <= _stamp(moment)),
                row.last_attempt < _stamp(moment - INTERRUPTED_AFTER),
            ),
        )
        .values(attempts=row.attempts + 1, error=None, last_attempt=_stamp(moment))
    )
    with engine.begin() as conn:
        return conn.execute(statement).rowcount == 1


class RetryLater(Exception):
    """Raised by a notification plugin told to come back later (an HTTP ``Retry-After``): the
    delivery stays pending and no run claims it before ``until``.

    >>> str(RetryLater(datetime(2026, 12, 4, 19, 0, tzinfo=UTC), "HTTP 503 Service Unavailable"))
    'retry after 2026-12-04T19:00:00+00:00 (HTTP 503 Service Unavailable)'
    """

    def __init__(self, until: datetime, reason: str = ""):
        super().__init__(f"retry after {_stamp(until)} ({reason})")
        self.until = until


#: How :meth:`ledger.registry.Registry.notify` words a :class:`RetryLater` (``Type: message``).
_RETRY_LATER = re.compile(r"^RetryLater: retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00) ")


def settle(engine: Engine, alert_id: str, plugin: str, failure: NotificationFailure | None) -> None:
    """Record how a claimed call went: taken (the delivery is deleted) or failed (kept with its
    error).

    A :class:`RetryLater` failure keeps the delivery with ``last_attempt`` set to the time it
    may be retried: :func:`claim` takes a failed delivery only once that time has come.
    """
    where = (deliveries.c.alert_id == alert_id, deliveries.c.plugin == plugin)
    values: dict[str, str] = {}
    if failure is not None:
        values["error"] = failure.error or "failed"
        deferred = _RETRY_LATER.match(values["error"])
        if deferred:
            values["last_attempt"] = deferred.group(1)
    with engine.begin() as conn:
        if failure is None:
            conn.execute(sa.delete(deliveries).where(*where))
        else:
            conn.execute(sa.update(deliveries).where(*where).values(**values))


def pending_deliveries(engine: Engine, loaded: Collection[str] = ()) -> list[PendingDelivery]:
    """Every delivery not made yet, by alert date, alert id and plugin."""
    row, alert = deliveries.c, alerts_table.c
    query = (
        sa.select(row.alert_id, row.plugin, row.attempts, row.error, row.last_attempt)
        .join_from(deliveries, alerts_table, row.alert_id == alert.id)
        .order_by(alert.date, row.alert_id, row.plugin)
    )
    with engine.connect() as conn:
        return [
            PendingDelivery(
                alert=a,
                plugin=p,
                attempts=n,
                error=e or "",
                last_attempt=t or "",
                loaded=p in loaded,
            )
            for a, p, n, e, t in conn.execute(query)
        ]


def drop_undelivered(engine: Engine, plugin: str) -> int:
    """Forget every delivery still owed by ``plugin`` (a retired notifier); return how many."""
    with engine.begin() as conn:
        return conn.execute(sa.delete(deliveries).where(deliveries.c.plugin == plugin)).rowcount


def stored_alerts(session: Session, ids: Collection[str]) -> dict[str, Alert]:
    """Raised alerts as they were raised (figures from the store), with today's delivery
    settings."""
    if not ids:
        return {}
    wanted = sorted(ids)
    with session.engine.connect() as conn:
        rows = [
            row
            for start in range(0, len(wanted), 10_000)  # PostgreSQL: at most 65,535 parameters
            for row in conn.execute(
                sa.select(alerts_table).where(alerts_table.c.id.in_(wanted[start : start + 10_000]))
            )
        ]
    return {
        row.id: Alert(
            kind=row.kind,
            customer=row.customer,
            meter=row.meter or None,
            cycle=row.cycle,
            threshold=Decimal(row.threshold),
            cap=Decimal(row.cap),
            value=Decimal(row.value),
            unit=row.unit or "",
            date=date.fromisoformat(row.date),
            delivery=_delivery(session.rules, row.customer, session.workspace.alerts),
        )
        for row in rows
    }


def raised_ids(engine: Engine) -> frozenset[str]:
    """The ids of every alert raised so far."""
    with engine.connect() as conn:
        return frozenset(conn.execute(sa.select(alerts_table.c.id)).scalars())


def raise_alerts(session: Session, through: date) -> AlertRun:
    """Find the crossings through ``through``, raise the new ones, and make every delivery owed.

    Raising stores each new crossing with one delivery per notification plugin
    (:func:`record`; two concurrent runs cannot both raise it). Then each pending
    delivery of a loaded plugin, new or left by an earlier run, is claimed
    (:func:`claim`; two runs cannot both make it) and that plugin alone is called
    (``Registry.notify(only=…)``). Taken, the delivery is deleted; failed, it is kept
    with its error for the next run, and the failure does not stop the others.
    Deliveries of plugins not loaded now wait, listed in ``pending``.
    """
    found = find_alerts(session, through)
    plugins = notification_plugins(session)
    new = record(session.engine, found, plugins)
    waiting = pending_deliveries(session.engine, plugins)
    by_id = {alert.id: alert for alert in found if alert.id in new}  # new: exactly as just stored
    by_id |= stored_alerts(session, {p.alert for p in waiting if p.loaded} - by_id.keys())
    # alert by alert in date order (the crossings' order first), each in the plugins' call order
    rank = {
        alert_id: i
        for i, alert_id in enumerate(
            dict.fromkeys([a.id for a in found] + [p.alert for p in waiting])
        )
    }
    order = {name: i for i, name in enumerate(plugins)}
    delivered: list[tuple[str, str]] = []
    failures: list[tuple[str, NotificationFailure]] = []
    for item in sorted(
        (p for p in waiting if p.loaded), key=lambda p: (rank[p.alert], order[p.plugin])
    ):
        if not claim(session.engine, item.alert, item.plugin):
            continue  # another run has it
        alert = by_id[item.alert]
        try:
            failed = session.registry.notify("meterbook_alert", only={item.plugin}, alert=alert)
        except BaseException as exc:  # Ctrl-C inside the plugin: release the claim, then stop
            settle(
                session.engine,
                item.alert,
                item.plugin,
                NotificationFailure(
                    item.plugin, "meterbook_alert", f"interrupted ({type(exc).__name__})"
                ),
            )
            raise
        settle(session.engine, item.alert, item.plugin, failed[0] if failed else None)
        if failed:
            failures.append((item.alert, failed[0]))
        else:
            delivered.append((item.alert, item.plugin))
    pending = pending_deliveries(session.engine, plugins)
    listed = {alert.id for alert in found}
    others = stored_alerts(session, {p.alert for p in pending} - listed)
    return AlertRun(
        through=through,
        alerts=tuple(found),
        new=new,
        delivered=tuple(delivered),
        failures=tuple(failures),
        pending=tuple(pending),
        also_pending=tuple(sorted(others.values(), key=lambda a: (a.date, a.id))),
    )
