"""The customer portal's figures: one customer's cycle to date, live from the store.

Everything comes from the engine, not from the books: usage per meter and local
day (:func:`ledger.metering.daily_usage`), the charges to date and the projected
cycle cost (:func:`ledger.statements.build_statement`: the rating's lines, priced
with the plan version the cycle is rated under, projected by run rate), caps with
their thresholds and the days they were crossed (:func:`ledger.alerts.crossings`,
with the customer's own cap changes), prepaid credit left per grant with its
expiry (:func:`ledger.rating.undrawn_credit`), and the documents issued to the
customer (invoices and credit notes from the store, statements written for it).

A self-service cap change (:func:`change_cap`) is a dated fact in ``cap_changes``:
the new cap, the previous one, the local day it takes effect (today), when and
with which key. It must stay within the plan's ``max_caps`` for the meter:

    >>> check_cap("150", Decimal("1000")), check_cap("0", Decimal("1000"))
    (Decimal('150'), 'a cap is a quantity above 0')
    >>> check_cap("1000.5", Decimal("1000")), check_cap("1e3", Decimal("1000"))
    ('at most 1000, the maximum of your plan', 'a cap is a decimal number such as 2500 or 2500.5')
    >>> check_cap("\u0663\u0660\u0660", Decimal("1000"))
    'a cap is a decimal number such as 2500 or 2500.5'
    >>> check_cap("NaN", Decimal("1000"))
    'a cap is a decimal number such as 2500 or 2500.5'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ledger.alerts import cap_changes, cap_on, crossings, cycle_progress
from ledger.cycles import Cycle, cycles_at, cycles_for
from ledger.money import normalize
from ledger.rating import grant_key, undrawn_credit
from ledger.statements import CapUse, Statement, build_statement
from ledger.store import cap_changes as cap_changes_table
from ledger.store import credit_notes, invoices

if TYPE_CHECKING:
    from ledger.session import Session

_DAY = timedelta(days=1)
_NUMBER = re.compile(r"[0-9]{1,15}(\.[0-9]{1,9})?")  # ASCII digits only (not "٣٠٠٠")


@dataclass(frozen=True)
class CapChange:
    """One self-service cap change, as finance sees it."""

    customer: str
    meter: str
    cap: Decimal
    previous: Decimal | None
    effective: date
    changed_at: str
    key_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "meter": self.meter,
            "cap": str(self.cap),
            "previous": None if self.previous is None else str(self.previous),
            "effective": self.effective.isoformat(),
            "changed_at": self.changed_at,
            "key": self.key_id,
        }


@dataclass(frozen=True)
class CapView:
    """A usage cap of the portal: in force today, the plan's maximum, use, thresholds reached."""

    meter: str
    unit: str
    cap: Decimal
    maximum: Decimal | None
    used: Decimal
    projected: Decimal
    thresholds: tuple[tuple[Decimal, date | None], ...]  # (threshold, day reached or None)

    @property
    def percent(self) -> Decimal:
        return (self.used * 100 / self.cap).quantize(Decimal("0.1"))

    @property
    def status(self) -> str:
        """``ok``, or the highest threshold reached: ``80 % reached on 2026-12-03``."""
        reached = [(t, d) for t, d in self.thresholds if d is not None]
        if not reached:
            return "ok"
        threshold, day = max(reached)
        return f"{normalize(threshold * 100)} % reached on {day}"

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "unit": self.unit,
            "cap": str(self.cap),
            "maximum": None if self.maximum is None else str(self.maximum),
            "used": str(self.used),
            "projected": str(self.projected),
            "percent": str(self.percent),
            "status": self.status,
            "thresholds": [
                {"threshold": str(t), "reached": None if d is None else d.isoformat()}
                for t, d in self.thresholds
            ],
        }


@dataclass(frozen=True)
class Credit:
    """A prepaid credit grant: amount, granted, expires, left today."""

    amount: Decimal
    granted: date
    expires: date | None
    left: Decimal


@dataclass(frozen=True)
class Document:
    """A file issued to the customer: ``name`` is also its download path under
    ``/portal/documents/``."""

    name: str
    kind: str  # invoice | credit_note | statement | evidence
    date: str
    path: Path


@dataclass(frozen=True)
class PortalView:
    """Everything the portal shows for one customer today."""

    customer: str
    today: date
    statement: Statement | None
    caps: tuple[CapView, ...]
    spend_cap: CapUse | None
    credits: tuple[Credit, ...]
    documents: tuple[Document, ...]
    changes: tuple[CapChange, ...]

    def to_json(self) -> dict[str, Any]:
        s = self.statement
        out: dict[str, Any] = {
            "customer": self.customer,
            "today": self.today.isoformat(),
            "cycle": None,
        }
        if s is not None:
            p = s.projection
            out.update(
                {
                    "name": s.name,
                    "currency": s.currency,
                    "cycle": {
                        "start": s.cycle.start.isoformat(),
                        "end": s.cycle.end.isoformat(),
                        "plan": s.cycle.plan,
                        "through": s.through.isoformat(),
                        "elapsed_days": p.elapsed_days,
                        "days": p.cycle_days,
                    },
                    "usage": [
                        {
                            "meter": m.meter,
                            "unit": m.unit,
                            "aggregation": m.aggregation,
                            "quantity": str(m.quantity),
                            "events": m.events,
                            "daily": [
                                {"day": d.isoformat(), "quantity": str(q), "events": n}
                                for d, q, n in m.daily
                            ],
                        }
                        for m in s.meters
                    ],
                    "charges": [
                        {
                            "kind": line.kind,
                            "description": line.description,
                            "amount": str(line.amount),
                        }
                        for line in s.lines
                    ],
                    "total_to_date": str(s.total),
                    "projection": {
                        "total": str(p.total),
                        "usage": str(p.usage),
                        "base_fee": str(p.base_fee),
                        "commitment": str(p.commitment),
                        "credit": str(p.credit),
                        "method": p.method,
                        "charges": [
                            {
                                "meter": c.meter,
                                "quantity": str(c.quantity),
                                "projected_quantity": str(c.projected_quantity),
                                "projected_amount": str(c.projected_amount),
                            }
                            for c in p.charges
                        ],
                    },
                    "credit_remaining": str(s.credit_remaining),
                }
            )
        out["caps"] = [c.to_json() for c in self.caps]
        sc = self.spend_cap
        out["spend_cap"] = (
            None
            if sc is None
            else {
                "cap": str(sc.cap),
                "used": str(sc.used),
                "projected": str(sc.projected),
                "percent": str(sc.percent),
                "reached": [
                    {"threshold": str(a.threshold), "date": a.date.isoformat()} for a in sc.crossed
                ],
            }
        )
        out["credits"] = [
            {
                "amount": str(c.amount),
                "granted": c.granted.isoformat(),
                "expires": None if c.expires is None else c.expires.isoformat(),
                "left": str(c.left),
            }
            for c in self.credits
        ]
        out["documents"] = [
            {"name": d.name, "kind": d.kind, "date": d.date, "url": f"/portal/documents/{d.name}"}
            for d in self.documents
        ]
        out["cap_changes"] = [c.to_json() for c in self.changes]
        return out


def current_cycle(session: Session, customer: str, today: date) -> Cycle | None:
    """The customer's cycle containing today (its main subscription's, when add-ons run too),
    else its latest cycle that started (None: none)."""
    rules = session.rules
    running = cycles_at(rules.customers[customer], rules.plans, today)
    if running:
        return running[0]
    started = [
        c
        for c in cycles_for(rules.customers[customer], rules.plans, until=today + _DAY)
        if c.start <= today
    ]
    return started[-1] if started else None


def load_changes(engine: sa.Engine, customer: str | None = None) -> tuple[CapChange, ...]:
    """Self-service cap changes, oldest first (one customer's, or all)."""
    c = cap_changes_table.c
    query = sa.select(
        c.customer, c.meter, c.cap, c.previous, c.effective, c.changed_at, c.key_id
    ).order_by(c.id)
    if customer is not None:
        query = query.where(c.customer == customer)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return tuple(
        CapChange(
            r.customer,
            r.meter,
            Decimal(r.cap),
            Decimal(r.previous) if r.previous else None,
            date.fromisoformat(r.effective),
            r.changed_at,
            r.key_id,
        )
        for r in rows
    )


def portal_view(session: Session, customer: str, today: date) -> PortalView:
    """The portal's figures for ``customer`` as of ``today`` (the workspace's local day)."""
    rules, engine = session.rules, session.engine
    cycle = current_cycle(session, customer, today)
    statement = build_statement(session, cycle, today=today) if cycle is not None else None
    changes = cap_changes(engine)
    caps: list[CapView] = []
    spend: CapUse | None = None
    if cycle is not None and statement is not None:
        progress = cycle_progress(
            engine,
            rules,
            session.registry.pricing_models,
            session.workspace.tz,
            [(cycle, statement.through)],
            spend=False,
            changes=changes,
        )[0]
        alerts = crossings(progress, rules, session.workspace.alerts, changes)
        plan = rules.plans[cycle.plan]
        factor = Decimal(statement.projection.cycle_days) / Decimal(
            statement.projection.elapsed_days
        )
        thresholds = sorted(set(rules.customers[customer].alert_thresholds))
        for meter, values in sorted(progress.quantities.items()):
            cap = cap_on(rules, customer, meter, statement.through, changes)
            if cap is None:
                continue
            used = values[-1] if values else Decimal(0)
            aggregation = rules.meters[meter].aggregation
            projected = (
                normalize((used * factor).quantize(Decimal(1)))
                if aggregation in ("count", "sum")
                else used
            )
            reached = {a.threshold: a.date for a in alerts if a.meter == meter}
            caps.append(
                CapView(
                    meter=meter,
                    unit=rules.meters[meter].unit,
                    cap=cap,
                    maximum=plan.max_caps.get(meter),
                    used=used,
                    projected=projected,
                    thresholds=tuple((Decimal(t), reached.get(t)) for t in thresholds),
                )
            )
        spend = next((c for c in statement.caps if c.kind == "spend_cap"), None)
    credits: tuple[Credit, ...] = ()
    if customer in session.wallet_customers():
        rating = session.rate(today, {customer})
        grants = rating.grants_of(rules.customers[customer])
        left = undrawn_credit(rating, grants, customer, today)
        credits = tuple(
            Credit(g.amount, g.granted, g.expires, left.get(grant_key(grants, i), Decimal(0)))
            for i, g in enumerate(grants)
            if g.granted <= today
        )
    return PortalView(
        customer=customer,
        today=today,
        statement=statement,
        caps=tuple(caps),
        spend_cap=spend,
        credits=credits,
        documents=documents(session, customer),
        changes=load_changes(engine, customer),
    )


def documents(session: Session, customer: str) -> tuple[Document, ...]:
    """The customer's documents that exist on disk: invoices and credit notes (HTML and JSON)
    named by the store, and the statements (HTML and evidence CSV) written for it."""
    folder = session.workspace.books_dir / "documents"
    found: list[Document] = []
    with session.engine.connect() as conn:
        issued = [
            ("invoice", n, d)
            for n, d in conn.execute(
                sa.select(invoices.c.number, invoices.c.date).where(invoices.c.customer == customer)
            )
        ]
        issued += [
            ("credit_note", n, d)
            for n, d in conn.execute(
                sa.select(credit_notes.c.number, credit_notes.c.date).where(
                    credit_notes.c.customer == customer
                )
            )
        ]
    for kind, number, day in issued:
        for suffix in (".html", ".json"):
            path = folder / f"{number}{suffix}"
            if _plain_file(path):
                found.append(Document(f"{number}{suffix}", kind, day, path))
    statements = session.workspace.root / "statements"
    pattern = re.compile(re.escape(customer) + r"-(\d{4}-\d{2}-\d{2})\.(html|csv)")
    if statements.is_dir():
        for path in statements.iterdir():
            match = pattern.fullmatch(path.name)
            if match and _plain_file(path):
                found.append(
                    Document(
                        path.name,
                        "statement" if match.group(2) == "html" else "evidence",
                        match.group(1),
                        path,
                    )
                )
    return tuple(sorted(found, key=lambda d: (d.date, d.name), reverse=True))


def _plain_file(path: Path) -> bool:
    """A regular file that is not a symbolic link: a link planted among the documents
    (to the store, the rules, /etc/passwd) is never served."""
    return not path.is_symlink() and path.is_file()


def check_cap(text: str, maximum: Decimal) -> Decimal | str:
    """The cap asked for, or why it cannot be set."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return "a cap is a decimal number such as 2500 or 2500.5"
    try:
        value = normalize(Decimal(text))
    except InvalidOperation:
        return "a cap is a decimal number such as 2500 or 2500.5"
    if value <= 0:
        return "a cap is a quantity above 0"
    if value > maximum:
        return f"at most {maximum}, the maximum of your plan"
    return value


class CapRefused(Exception):
    """A cap change that cannot be made: ``status`` is the HTTP status (403 or 422)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def change_cap(
    session: Session, customer: str, meter: str, text: str, key_id: str, today: date
) -> CapChange:
    """Set ``customer``'s usage cap on ``meter`` from ``today`` on, within its plan's maximum."""
    rules = session.rules
    if meter not in rules.meters:
        raise CapRefused(404, f"unknown meter {meter!r}")
    # the plan of any subscription running today may let the customer cap the meter
    running = cycles_at(rules.customers[customer], rules.plans, today)
    maximum = next(
        (
            rules.plans[c.plan].max_caps[meter]
            for c in running
            if meter in rules.plans[c.plan].max_caps
        ),
        None,
    )
    if maximum is None:
        raise CapRefused(403, f"your plan does not let you set a cap on {meter}")
    value = check_cap(text, maximum)
    if isinstance(value, str):
        raise CapRefused(422, value)
    previous = cap_on(rules, customer, meter, today, cap_changes(session.engine))
    change = CapChange(
        customer,
        meter,
        value,
        previous,
        today,
        datetime.now(UTC).isoformat(timespec="seconds"),
        key_id,
    )
    with session.engine.begin() as conn:
        conn.execute(
            cap_changes_table.insert().values(
                customer=customer,
                meter=meter,
                cap=str(value),
                previous="" if previous is None else str(previous),
                effective=today.isoformat(),
                changed_at=change.changed_at,
                key_id=key_id,
            )
        )
    return change
