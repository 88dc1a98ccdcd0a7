"""Terms pins and drift: which plan version an invoiced cycle was billed under.

When an invoice is issued, :func:`record_pins` stores, per cycle, the plan version
and a digest of its terms (:func:`terms_digest`). Editing that version in place
later would silently re-price billed usage: :func:`changed_terms` finds such
drift, :func:`require_unchanged_terms` refuses to post or invoice over it, and
:func:`pinned_terms_check` is the auditor's view of it. Re-pricing on purpose is
:mod:`ledger.rerate`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select

from ledger.cycles import cycle_at, cycle_of_link, link_customer, link_series
from ledger.errors import RulesError
from ledger.events import dumps
from ledger.facts.invoices import Invoice
from ledger.facts.pins import version_date, version_text
from ledger.store import cycle_terms

if TYPE_CHECKING:
    from ledger.opened import OpenWorkspace
    from ledger.reconcile import CheckResult
    from ledger.rules import Meter, Plan, Rules
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.opened import OpenWorkspace
    from ledger.reconcile import CheckResult
    from ledger.rules import Rules

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _number(value: Decimal) -> str:
    """Decimal text without trailing zeros or exponent: ``0.020`` → ``"0.02"``,
    ``1E+3`` → ``"1000"``."""
    return format(value.normalize(), "f") if value.is_finite() else str(value)


def _plain(value: Any) -> Any:
    """A charge's YAML parameters as JSON data that is equal exactly when the values are:
    a number written ``1000``, ``"1000"`` or ``'1000.0'`` is one number."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int | Decimal):
        return _number(Decimal(value))
    if isinstance(value, str):
        return _number(Decimal(value.strip())) if _NUMBER.fullmatch(value.strip()) else value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return repr(value)


def pinned_terms(plan: Plan, version: date, part: str) -> dict[str, Any]:
    """The terms of ``plan``'s version ``version`` (``date.min``: the original terms) that a
    ``part`` pin (:data:`PARTS`) fixes, as plain JSON data: what rating reads.

    A charge is its meter, its model and its parameters as written in the YAML
    (whatever the plugin parses them into: a plugin upgrade is not an edit). Key
    order, quoting and ``"0.020"`` for ``"0.02"`` are not terms, nor is the order
    of the charges; the advance fee's amount belongs to the ``fee`` pin, since the
    invoice that bills a cycle's usage does not bill it:

    >>> from ledger.rules import BaseFee, Charge, Plan
    >>> plan = Plan(id="u", currency="USD", base_fee=BaseFee(amount=Decimal("9.00")), charges=(
    ...     Charge(meter="api_calls", model="graduated", tiers=[{"up_to": 1000, "unit_price": "0"},
    ...                                                         {"unit_price": "0.020"}]),))
    >>> usage = pinned_terms(plan, date.min, "usage")
    >>> usage["charges"], usage["base_fee"]  # doctest: +NORMALIZE_WHITESPACE
    ([{'meter': 'api_calls', 'model': 'graduated',
       'params': {'tiers': [{'up_to': '1000', 'unit_price': '0'}, {'unit_price': '0.02'}]}}],
     {'timing': 'advance'})
    >>> pinned_terms(plan, date.min, "fee")
    {'currency': 'USD', 'cycle': 'monthly', 'base_fee': {'amount': '9', 'timing': 'advance'}}

    Each term is named here, not taken from the records wholesale, so that a term
    a later meterbook adds (left out while at its default) keeps stored digests valid.
    """
    terms = plan.as_of(version)
    fee = terms.base_fee
    out: dict[str, Any] = {"currency": terms.currency, "cycle": terms.cycle}
    if part == "fee":
        return {
            **out,
            "base_fee": {"amount": _number(fee.amount), "timing": fee.timing} if fee else None,
        }
    charges = sorted(
        ({"meter": c.meter, "model": c.model, "params": _plain(c.params)} for c in terms.charges),
        key=dumps,
    )
    return {
        **out,
        "charges": charges,
        "minimum_commitment": _number(terms.minimum_commitment)
        if terms.minimum_commitment is not None
        else None,
        "base_fee": None
        if fee is None
        else {"timing": "advance"}
        if fee.timing == "advance"
        else {"amount": _number(fee.amount), "timing": fee.timing},
    }


#: A usage digest that also covers the definitions of the charged meters starts with this
#: (then 62 hex digits of the sha256, the column's 64 characters); one without it is the
#: earlier digest of the plan's terms alone, still checked as such.
METERED = "m:"


def meter_terms(meter: Meter) -> dict[str, Any]:
    """What metering reads of a meter definition (not its unit, account or live tolerance)."""
    return {
        "event_type": meter.event_type,
        "aggregation": meter.aggregation,
        "value": meter.value,
        "filter": dict(sorted(meter.filter.items())),
    }


def terms_digest(
    plan: Plan, version: date, part: str, meters: Mapping[str, Meter] | None = None
) -> str:
    """sha256 (hex) of the canonical JSON of :func:`pinned_terms`: what a pin stores.

    With ``meters``, a ``usage`` digest also covers the definitions (:func:`meter_terms`)
    of the meters the version charges — a filter or aggregation edited in
    ``meters.yaml`` re-prices invoiced cycles as surely as a tier price — and is
    marked :data:`METERED`.
    """
    terms = pinned_terms(plan, version, part)
    if meters is None or part != "usage":
        return hashlib.sha256(dumps(terms).encode()).hexdigest()
    charged = sorted({c["meter"] for c in terms["charges"]})
    terms["meters"] = {m: meter_terms(meters[m]) if m in meters else None for m in charged}
    return METERED + hashlib.sha256(dumps(terms).encode()).hexdigest()[: 64 - len(METERED)]


#: links per ``IN`` query: PostgreSQL takes at most 65,535 bound parameters a statement
_CHUNK = 10_000


def record_pins(conn: Connection, rules: Rules, invoices: Iterable[Invoice]) -> None:
    """Pin the versions newly issued invoices were rated with (kept as they are once set),
    in the transaction that issues them (:func:`ledger.invoicing.issue`'s ``also``), each
    with the invoice and the digest of the version's terms (:func:`terms_digest`).

    A cycle's usage is pinned by the invoice that freezes its accruals (arrears),
    its advance base fee by the invoice that bills it.
    """
    wanted: dict[str, dict[str, Any]] = {}
    for inv in invoices:
        customer = rules.customers.get(inv.customer)
        if customer is None:
            continue
        parts = [(snap.cycle, snap.link, "usage") for snap in inv.accruals]
        parts += [
            (line.cycle, line.link, "fee")
            for line in inv.lines
            if line.kind == "base_fee" and line.account == "deferred" and line.cycle
        ]
        for key, link, part in parts:
            cycle = cycle_at(
                customer, rules.plans, date.fromisoformat(key[:10]), link_series(link or "")
            )
            if cycle is None or cycle.plan not in rules.plans:
                continue
            row = wanted.setdefault(cycle.link, {"plan": cycle.plan})
            if f"{part}_version" in row:
                continue
            plan = rules.plans[cycle.plan]
            version = plan.version_at(cycle.start)
            row.update(
                {
                    f"{part}_version": version_text(version),
                    f"{part}_invoice": inv.number,
                    f"{part}_digest": terms_digest(plan, version, part, rules.meters),
                }
            )
    if not wanted:
        return
    links = sorted(wanted)
    existing = {
        row.link: row
        for start in range(0, len(links), _CHUNK)  # PostgreSQL takes at most 65,535 parameters
        for row in conn.execute(
            select(cycle_terms).where(cycle_terms.c.link.in_(links[start : start + _CHUNK]))
        )
    }
    new: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for link, row in sorted(wanted.items()):
        if link not in existing:
            new.setdefault(tuple(sorted(row)), []).append({"link": link, **row})
    for rows in new.values():  # one executemany per shape (usage, fee or both pinned)
        conn.execute(cycle_terms.insert(), rows)
    for link, row in sorted(wanted.items()):
        old = existing.get(link)
        if old is None:
            continue
        # a pin, once set, never moves (the invoice was issued under it), nor does its digest
        update = {
            k: v
            for part in PARTS
            if f"{part}_version" in row and getattr(old, f"{part}_version") is None
            for k, v in row.items()
            if k.startswith(f"{part}_")
        }
        if update:
            conn.execute(cycle_terms.update().where(cycle_terms.c.link == link).values(**update))


@dataclass(frozen=True)
class Drift:
    """An issued cycle whose pinned plan version has other terms now than when it was invoiced.

    Rating would price the cycle with the edited terms and ``post`` would book the
    difference as a late adjustment on an invoiced (perhaps sealed) cycle, with no
    credit note or debit adjustment: the edit must be undone and made a version.
    """

    customer: str
    link: str
    cycle: str  # 2026-10-01/2026-11-01; "" when the customer's subscriptions no longer have it
    plan: str
    version: date  # the pinned version's effective date; date.min: the plan's original terms
    part: str  # usage | fee (:data:`PARTS`)
    invoice: str  # the invoice that pinned it
    pinned: str  # the digest stored at invoicing
    current: str | None  # the digest of the terms now; None: the plan is gone from the rules

    @property
    def version_label(self) -> str:
        return (
            "original terms"
            if self.version == date.min
            else f"version effective {self.version.isoformat()}"
        )

    @property
    def terms(self) -> str:
        if self.part == "fee":
            return "advance base fee"
        meters = " (or its meters' definitions)" if self.pinned.startswith(METERED) else ""
        return f"charges, commitment and arrears base fee{meters}"

    def describe(self) -> str:
        """One line: ``INV-… link (cycle): plan p, version, what changed``."""
        cycle = f" ({self.cycle})" if self.cycle else ""
        change = (
            "plan removed from the rules"
            if self.current is None
            else f"{self.terms} edited since invoiced"
        )
        return (
            f"{self.invoice} {self.link}{cycle}: plan {self.plan}, {self.version_label}: {change}"
        )


def changed_terms(engine: Engine, rules: Rules) -> list[Drift]:
    """Every pin whose version's terms in ``rules`` differ from the digest stored when it
    was invoiced, ordered by invoice. Pins stored before digests were kept (NULL) are
    unknown, not drift: :func:`unverified_pins` counts them."""
    with engine.connect() as conn:
        rows = conn.execute(select(cycle_terms).order_by(cycle_terms.c.link)).all()
    now: dict[tuple[str, date, str, bool], str | None] = {}
    found: list[Drift] = []
    for row in rows:
        for part in PARTS:
            version, pinned = (
                version_date(getattr(row, f"{part}_version")),
                getattr(row, f"{part}_digest"),
            )
            if version is None or pinned is None:
                continue
            metered = pinned.startswith(METERED)
            key = (row.plan, version, part, metered)
            if key not in now:
                plan = rules.plans.get(row.plan)
                now[key] = (
                    terms_digest(plan, version, part, rules.meters if metered else None)
                    if plan is not None
                    else None
                )
            if now[key] == pinned:
                continue
            customer = link_customer(row.link)
            subscriber = rules.customers.get(customer)
            cycle = (
                cycle_of_link(subscriber, rules.plans, row.link) if subscriber is not None else None
            )
            found.append(
                Drift(
                    customer=customer,
                    link=row.link,
                    cycle=cycle.key if cycle else "",
                    plan=row.plan,
                    version=version,
                    part=part,
                    invoice=getattr(row, f"{part}_invoice") or "",
                    pinned=pinned,
                    current=now[key],
                )
            )
    return sorted(found, key=lambda d: (d.invoice, d.link, d.part))


def unverified_pins(engine: Engine) -> int:
    """Pins stored before term digests were kept (a store migrated from an earlier schema):
    what they were invoiced under is unknown, so an edit to them cannot be detected."""
    c = cycle_terms.c
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(cycle_terms)
                .where(
                    ((c.usage_version.is_not(None)) & c.usage_digest.is_(None))
                    | ((c.fee_version.is_not(None)) & c.fee_digest.is_(None))
                )
            ).scalar()
            or 0
        )


def _where(rules_dir: Path, rules: Rules, drift: Drift) -> tuple[str, int | None]:
    """The key path and line in plans.yaml of the drifted version (the plan's own for the
    original terms)."""
    from ledger.rules import _dotted, _Source

    path: tuple[Any, ...] = ("plans", drift.plan)
    plan = rules.plans.get(drift.plan)
    if plan is not None and drift.version != date.min:
        index = next((i for i, v in enumerate(plan.versions) if v.effective == drift.version), None)
        if index is not None:
            path = (*path, "versions", index)
    return _dotted(path), _Source(rules_dir / "plans.yaml", "plans").line(path)


def require_unchanged_terms(session: OpenWorkspace) -> None:
    """Refuse (exit 2, :class:`RulesError` naming ``rules/plans.yaml``) when a pinned plan
    version was edited in place after an invoice was issued under it (:func:`changed_terms`).

    ``post``, ``invoice``, ``close`` and ``rerate`` call it before writing anything: with
    the edit in place rating would re-price invoiced cycles silently (a late adjustment,
    no document) and ``rerate`` would compare the new terms with themselves.
    """
    drifts = changed_terms(session.engine, session.rules)
    if not drifts:
        return
    first = drifts[0]
    key, line = _where(session.workspace.rules_dir, session.rules, first)
    others = sorted({d.invoice for d in drifts} - {first.invoice})
    billed = f"{first.invoice} billed for cycle {first.link}"
    metered = first.part == "usage" and first.pinned.startswith(METERED)
    what = (
        f"plan {first.plan!r}, which {billed}, is gone from the rules"
        if first.current is None
        else f"the {'advance base fee' if first.part == 'fee' else 'terms'} of plan {first.plan!r}"
        f"{' or of its meters' if metered else ''}"
        f" that {billed} ({first.version_label}) changed in place"
    )
    more = len(others)
    raise RulesError(
        what
        + (f" ({more} more invoice{'s' if more > 1 else ''} affected)" if more else "")
        + ": restore the terms, add a `versions:` entry effective from the change date, then run "
        "`meterbook rerate --from DATE`. Nothing was written",
        file=f"{session.workspace.rules_dir.name}/plans.yaml",
        key=key,
        line=line,
    )


def pinned_terms_check(session: OpenWorkspace) -> CheckResult:
    """``meterbook check``'s line for :func:`changed_terms`: failed on any drift. Pins
    without a digest (stored before digests were kept) are counted as unknown, not failed."""
    from ledger.reconcile import CheckResult

    c = cycle_terms.c
    with session.engine.connect() as conn:
        rows = conn.execute(
            select(c.usage_version, c.usage_digest, c.fee_version, c.fee_digest)
        ).all()
    checked = sum(
        1
        for row in rows
        for version, digest in ((row[0], row[1]), (row[2], row[3]))
        if version is not None and digest is not None
    )
    unknown = unverified_pins(session.engine)
    drifts = changed_terms(session.engine, session.rules)
    note = (
        (
            f"{unknown} issued cycles pinned before meterbook kept term digests: "
            "their terms at invoicing are unknown, not checked",
        )
        if unknown
        else ()
    )
    if not drifts:
        return CheckResult(
            "pinned plan terms",
            True,
            (f"{len(rows)} issued cycles, {checked} pinned terms as invoiced", *note),
        )
    return CheckResult(
        "pinned plan terms",
        False,
        (
            f"{len(drifts)} pinned terms edited in place after invoicing: "
            "restore them, add a `versions:` entry effective from the change date, "
            "then run `meterbook rerate --from DATE`",
            *(d.describe() for d in drifts[:10]),
            *([f"… and {len(drifts) - 10} more"] if len(drifts) > 10 else []),
            *note,
        ),
    )


#: What a pin fixes: ``usage`` (the charges, the commitment and an arrears base fee,
#: pinned by the invoice that bills the cycle's arrears) and ``fee`` (an advance base
#: fee, pinned by the invoice that bills it).
PARTS = ("usage", "fee")
