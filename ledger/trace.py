"""Trace: recompute a cycle or an invoice from the store and compare it with the books.

DESIGN: "Every posting is traceable. Each generated transaction carries links
and metadata naming the customer, cycle, meter, quantity, rules version and an
evidence hash of the events behind it; ``meterbook trace`` recomputes it."

For a cycle link (``ann-2026-09-15``, with or without ``^``) the trace collects
every transaction of the books carrying the link, recomputes the cycle from
the store at the books' latest accrual point (events, evidence digest,
quantity, tiers, amount per meter) and compares::

    $ meterbook trace ann-2026-09-15
    trace ^ann-2026-09-15: cycle 2026-09-15/2026-10-15 of ann, plan g (USD)
    books: 3 transactions carry ^ann-2026-09-15
      2026-09-30  accrual  Usage accrual 2026-09-15/2026-10-15 through 2026-09-30
      2026-10-14  accrual  Usage accrual 2026-09-15/2026-10-15 through 2026-10-14
      2026-10-15  invoice  Invoice INV-2026-000006
    store, recomputed through 2026-10-14:
      api_calls (graduated): 25 events, first 2026-09-16T12:00:00+00:00, last 2026-10-11T12:…
        events sha256 8dab2ae6c335bd10b3151ef48fe39ecd8716efb67c83ebe122a78a8531204016
        quantity 25 call
          0 – 10                   10 × 0 = 0
          11 – 100                 15 × 0.05 = 0.75
        amount 0.75 USD
    compared                            recorded          store
      api_calls quantity on 2026-09-30  14                14                ok
      api_calls quantity                25                25                ok
      api_calls revenue                 0.75 USD          0.75 USD          ok
      unbilled                          0.75 USD          0.75 USD          ok
      evidence 2026-10-14               8c17c8950907b8a0  8c17c8950907b8a0  ok

    verified: the books equal the recomputation from the store

One call more in the store for Oct 12 (not posted yet) turns the last lines into
``api_calls quantity: books 25, store 26 (1 event more in the store than the
2026-10-14 accrual reflects)``, the revenue and unbilled amounts and the
evidence digest, each named, and ``meterbook trace`` exits 1.

What ``verified`` proves for a cycle: the sums of the cycle's accrual and
late-adjustment postings per account (revenue per meter, unbilled, contract
asset, deferred revenue drawn, subscription and commitment revenue) equal the
cumulative targets rated now from the store and the rules; the ``quantity``
metadata equals the meter's aggregate at the date it was posted; and the
``evidence`` digest of the latest accrual equals the digest recomputed over
the event ids and payload hashes (:func:`ledger.metering.evidence`, combined
exactly as :meth:`ledger.session.Session.evidence` does); and the books load
without a Beancount error (a broken seal verifies nothing). One event more or
less, an edited payload or an edited figure in the books is named.

For an invoice number the stored invoice is re-drafted from the store and the
rules as of its date (:func:`ledger.invoicing.draft_invoices`, with the
invoices issued before it) and compared line by line, together with its JSON
document under ``books/documents/``, the invoice transaction of the books
(receivable = total, what it settles) and the trace of each of its cycles.
Usage that arrived after the invoice and is already posted as a late
adjustment in the books is *explained*, not a difference: it is listed as a
note (it is billed on a later invoice). So is a sealed accrual whose events
changed after the seal while the cumulative amounts agree: the seal keeps its
digest and the money moved (if any) is in the late adjustments.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from beancount.core import data

from ledger import metering
from ledger.accruals import fee_as_accrued, snapshot
from ledger.books import load_books, sealed_months
from ledger.errors import BadInput
from ledger.escaping import for_terminal
from ledger.events import from_us
from ledger.facts.invoices import Invoice, InvoiceLine
from ledger.journal.meta import parse_quantities
from ledger.journal.summary import is_summary_link
from ledger.money import ZERO
from ledger.period import month_of
from ledger.pricing import PriceLine, format_quantity
from ledger.rating import CycleRating, Rating
from ledger.summary_trace import Expansion, expand, subledger, summary_differences
from ledger.tax import included_difference, tax_postings

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from ledger.session import Session


@dataclass(frozen=True)
class Check:
    """One recomputed figure next to what is recorded (``source`` names where: books, invoice,
    document).

    ``explained`` is set when a mismatch is accounted for elsewhere in the books
    (late usage posted as a late adjustment): a note, not a difference.
    """

    what: str
    recorded: str
    store: str
    source: str = "books"
    note: str = ""
    explained: str = ""
    link: str = ""
    #: for invoice figures: the late-adjustment figure that must bridge invoice and store
    #: (``usage_revenue:<meter>``, ``quantity:<meter>``, a target key), "" when none applies
    late_key: str = ""

    @property
    def ok(self) -> bool:
        return self.recorded == self.store

    def difference(self) -> str:
        """``"api_calls quantity: books 25, store 27 (…)"``."""
        text = f"{self.what}: {self.source} {self.recorded or '—'}, store {self.store or '—'}"
        return f"{text} ({self.note})" if self.note else text

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "source": self.source,
            "recorded": self.recorded,
            "store": self.store,
            "ok": self.ok,
            "note": self.note,
            "explained": self.explained,
        }


@dataclass(frozen=True)
class Posted:
    """A transaction of the books that carries the traced link."""

    date: date
    kind: str  # accrual | late | invoice | payment | credit_note | other
    narration: str
    evidence: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "kind": self.kind,
            "narration": self.narration,
            "evidence": self.evidence or None,
        }


@dataclass(frozen=True)
class MeterTrace:
    """A meter of the cycle recomputed from the store at the trace point."""

    meter: str
    model: str
    unit: str
    events: int
    first: str | None
    last: str | None
    digest: str
    quantity: Decimal
    tiers: tuple[PriceLine, ...]
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "model": self.model,
            "unit": self.unit,
            "events": self.events,
            "first": self.first,
            "last": self.last,
            "digest": self.digest,
            "quantity": str(self.quantity),
            "tiers": [
                {
                    "description": t.description,
                    "quantity": str(t.quantity),
                    "unit_price": None if t.unit_price is None else str(t.unit_price),
                    "amount": str(t.amount),
                }
                for t in self.tiers
            ],
            "amount": str(self.amount),
        }


@dataclass(frozen=True)
class Trace:
    """The result of ``meterbook trace REF``: what was recomputed and how it compares."""

    ref: str
    kind: str  # "invoice" | "cycle"
    verified: bool
    differences: tuple[str, ...]
    customer: str
    currency: str
    cycle: str = ""  # cycle key start/end (cycle traces)
    plan: str = ""
    through: date | None = None  # the point recomputed (cycle traces)
    transactions: tuple[Posted, ...] = ()
    meters: tuple[MeterTrace, ...] = ()
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = ()
    invoice: Invoice | None = None
    cycles: tuple[Trace, ...] = field(default=())

    def render(self) -> str:
        """The text ``meterbook trace`` prints."""
        out: list[str] = []
        if self.kind == "cycle":
            out.append(
                f"trace ^{self.ref}: cycle {self.cycle} of {self.customer}, "
                f"plan {self.plan} ({self.currency})"
            )
        else:
            inv = self.invoice
            assert inv is not None
            out.append(
                f"trace {self.ref}: invoice of {self.customer} dated {inv.date.isoformat()}, "
                f"total {inv.total} {inv.currency}"
            )
            for i, line in enumerate(inv.lines, 1):
                qty = (
                    f"  {format_quantity(line.quantity)} {line.unit}".rstrip()
                    if line.quantity is not None
                    else ""
                )
                cycle = f"  ^{line.link}" if line.link else ""
                out.append(
                    f"  line {i}  {line.kind:<14} {line.description}{qty}  "
                    f"{line.amount} {inv.currency}  [{line.account}]{cycle}"
                )
        if self.transactions:
            label = f"^{self.ref}" if self.kind == "cycle" else self.ref
            many = len(self.transactions) != 1
            out.append(
                f"books: {len(self.transactions)} transaction{'s' if many else ''} "
                f"carr{'y' if many else 'ies'} {label}"
            )
            for t in self.transactions:
                out.append(f"  {t.date.isoformat()}  {t.kind:<8} {for_terminal(t.narration)}")
        if self.through is not None:
            out.append(f"store, recomputed through {self.through.isoformat()}:")
            for m in self.meters:
                span = f", first {m.first}, last {m.last}" if m.events else ""
                out.append(f"  {m.meter} ({m.model}): {m.events} events{span}")
                out.append(f"    events sha256 {m.digest}")
                out.append(f"    quantity {format_quantity(m.quantity)} {m.unit}".rstrip())
                for tier in m.tiers:
                    price = f" × {tier.unit_price}" if tier.unit_price is not None else ""
                    out.append(
                        f"      {tier.description:<24} "
                        f"{format_quantity(tier.quantity)}{price} = {tier.amount}"
                    )
                out.append(f"    amount {m.amount} {self.currency}")
        if self.checks:
            width = max(len(c.what) for c in self.checks) + 2
            cols = [
                max([len(c.recorded or "—") for c in self.checks] + [8]) + 2,
                max([len(c.store or "—") for c in self.checks] + [5]) + 2,
            ]
            out.append(f"compared{' ' * (width - 6)}{'recorded':<{cols[0]}}store")
            for c in self.checks:
                state = "ok" if c.ok else ("explained" if c.explained else "DIFFERS")
                out.append(
                    f"  {c.what:<{width}}{c.recorded or '—':<{cols[0]}}"
                    f"{c.store or '—':<{cols[1]}}{state}"
                )
        for note in self.notes:
            out.append(f"note: {note}")
        for sub in self.cycles:
            out.append("")
            out.extend(sub.render().splitlines())
        out.append("")
        if self.verified:
            what = (
                "the books equal"
                if self.kind == "cycle"
                else "the invoice, its document and the books equal"
            )
            out.append(f"verified: {what} the recomputation from the store")
        else:
            out.append(
                f"NOT verified: {len(self.differences)} "
                f"difference{'s' if len(self.differences) != 1 else ''}"
            )
            out.extend(f"  - {d}" for d in self.differences)
        return "\n".join(line.rstrip() for line in out)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: Decimals and dates as strings."""
        out: dict[str, Any] = {
            "ref": self.ref,
            "kind": self.kind,
            "verified": self.verified,
            "differences": list(self.differences),
            "notes": list(self.notes),
            "customer": self.customer,
            "currency": self.currency,
        }
        if self.kind == "cycle":
            out.update(
                cycle=self.cycle,
                plan=self.plan,
                through=self.through.isoformat() if self.through else None,
                meters=[m.to_json() for m in self.meters],
            )
        if self.invoice is not None:
            inv = self.invoice
            out["invoice"] = {
                "number": inv.number,
                "date": inv.date.isoformat(),
                "total": str(inv.total),
                "lines": [_line_json(line) for line in inv.lines],
            }
            out["cycles"] = [sub.to_json() for sub in self.cycles]
        out["transactions"] = [t.to_json() for t in self.transactions]
        out["checks"] = [c.to_json() for c in self.checks]
        return out


def _line_json(line: InvoiceLine) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "description": line.description,
        "account": line.account,
        "amount": str(line.amount),
        "cycle": line.cycle or None,
        "link": line.link or None,
        "meter": line.meter or None,
        "quantity": None if line.quantity is None else str(line.quantity),
        "unit": line.unit or None,
    }


# --- entry point -------------------------------------------------------------------------

_INVOICE = re.compile(r"INV-\d{4}-\d+")


def trace(session: Session, ref: str) -> Trace | Expansion:
    """Trace a cycle link (``acme-2026-10-15`` or ``^acme-2026-10-15``) or an invoice number;
    with summary books, a summary link too (:mod:`ledger.summary_trace`).

    Unknown ref → :class:`BadInput` (exit 2). One command (:meth:`Session.command`): the
    issued facts are read once.
    """
    with session.command():
        return _trace(session, ref)


def _trace(session: Session, ref: str) -> Trace | Expansion:
    body = ref.strip().removeprefix("^")
    if not body:
        raise BadInput(
            "trace: give a cycle link (acme-2026-10-15) or an invoice number (INV-2026-000001)"
        )
    main = session.workspace.main_file
    if not main.exists():
        raise BadInput(f"trace: {main} does not exist; run meterbook post first")
    entries, errors, _options = load_books(main)
    books_entries = entries
    if session.workspace.summary_books:  # the per-customer detail is the store's
        if is_summary_link(body):
            expansion = expand(session, body, entries)
            if errors:
                problem = f"the books do not pass bean-check: {len(errors)} errors"
                return replace(expansion, differences=(*expansion.differences, problem))
            return expansion
        entries = subledger(session, entries)
    invoices = list(session.stored_facts().invoices)
    numbers = {inv.number for inv in invoices}
    if body in numbers:
        result = _trace_invoice(session, body, entries, invoices)
    elif _INVOICE.fullmatch(body):
        raise BadInput(f"trace: {body}: no such invoice in the store")
    else:
        result = _trace_cycle(session, body, entries, invoices)
    if session.workspace.summary_books:
        found, notes = summary_differences(session, body, books_entries, entries)
        result = replace(
            result,
            verified=result.verified and not found,
            differences=(*result.differences, *found),
            notes=(*result.notes, *notes),
        )
    if errors:
        # books that bean-check rejects (a broken seal, an unbalanced entry) verify nothing
        first = errors[0]
        where = (
            f"{first.source.get('filename', '?')}:{first.source.get('lineno', '?')}: "
            if first.source
            else ""
        )
        problem = (
            "the books do not pass bean-check: "
            f"{len(errors)} error{'s' if len(errors) != 1 else ''}, "
            f"first {where}{str(first.message).splitlines()[0]}"
        )
        result = replace(result, verified=False, differences=(problem, *result.differences))
    return result


# --- cycles ------------------------------------------------------------------------------

_SEALED_AND_AGREED = (
    "the month is sealed (the seal guards the figure) and the cumulative amounts agree"
)


def _kind(entry: data.Transaction, numbers: Iterable[str], notes: Iterable[str] = ()) -> str:
    meta = entry.meta or {}
    # a sealed month's catch-up of a note's recognition schedule (ledger.journal.sealed: it
    # carries the note's link) belongs with the note's entries, not with the cycle's revenue
    if "credit_note" in meta or (meta.get("late") and set(entry.links or ()) & set(notes)):
        return "credit_note"
    if "reference" in meta or "application" in meta:  # cash received, applied or refunded
        return "payment"
    if "invoice" in meta or set(entry.links or ()) & set(numbers):
        return "invoice"
    if meta.get("late"):
        return "late"
    return "accrual"


def _usage_date(entry: data.Transaction) -> date:
    meta = entry.meta or {}
    usage = meta.get("usage_date")
    return usage if meta.get("late") and isinstance(usage, date) else entry.date


def _point_of(day: date, points: Mapping[date, CycleRating]) -> date:
    """The accrual point a figure posted for ``day`` is for: ``day`` itself, or for a sealed
    month's catch-up (whose ``usage_date`` is the month end) the cycle's last point up to it."""
    return max((p for p in points if p <= day), default=day)


def _time(us: int | None, tz: ZoneInfo) -> str | None:
    return None if us is None else from_us(us).astimezone(tz).isoformat()


def _target_label(key: str) -> str:
    kind, _, ref = key.partition(":")
    return {
        "usage_revenue": f"{ref} revenue",
        "subscription_revenue": f"subscription revenue {ref}",
        "commitment_revenue": "commitment revenue",
        "discount": "discounts",
        "unbilled": "unbilled",
        "contract_asset": "contract asset",
        "deferred": "deferred revenue drawn",
    }.get(kind, key)


def _account_keys(session: Session, customer: str) -> dict[str, tuple[str, int]]:
    """Account → (target key, sign that turns its postings into the target's sign)."""
    rules = session.rules
    keys: dict[str, tuple[str, int]] = {}
    for meter in rules.meters:
        keys[rules.account("usage_revenue", meter=meter)] = (f"usage_revenue:{meter}", -1)
    for plan in rules.plans:
        keys[rules.account("subscription_revenue", plan=plan)] = (
            f"subscription_revenue:{plan}",
            -1,
        )
    keys[rules.account("commitment_revenue")] = ("commitment_revenue:", -1)
    for plan in rules.plans:  # contra-revenue, a debit (ledger.discounts)
        keys[rules.account("discounts", plan=plan)] = ("discount:", 1)
    for kind in ("unbilled", "contract_asset", "deferred"):
        keys[rules.account(kind, customer=customer)] = (kind, 1)
    return keys


def _books_targets(
    session: Session, customer: str, usage: Sequence[data.Transaction]
) -> dict[str, Decimal]:
    """The cumulative target balances the books hold for a cycle (its accrual and late postings)."""
    keys = _account_keys(session, customer)
    sums: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for entry in usage:
        for p in entry.postings:
            if p.units is None or not isinstance(p.units.number, Decimal):
                continue
            meter = (p.meta or {}).get("meter")
            key, sign = keys.get(p.account, (f"account {p.account}", 1))
            if key.startswith("usage_revenue:") and isinstance(meter, str) and meter:
                key = f"usage_revenue:{meter}"
            sums[key] += sign * p.units.number
    return dict(sums)


def _books_quantities(usage: Sequence[data.Transaction]) -> dict[str, tuple[Decimal | None, date]]:
    """Per meter: the cumulative quantity the books record and the accrual point it is for.

    An accrual carries its meters' cumulative quantities (``quantities``, and on
    the revenue posting when the amount moved); a late entry carries the change since the
    invoiced accrual, added on top. A late adjustment without a quantity (a
    sealed month's catch-up that could not derive it, see
    :func:`ledger.journal.sealed.catch_up`) leaves the quantity unknown (None). The day
    is the entry's usage date; :func:`_point_of` maps a catch-up's month end to
    the cycle's accrual point.
    """
    result: dict[str, tuple[Decimal | None, date]] = {}
    for entry in sorted(
        usage, key=lambda e: (_usage_date(e), bool((e.meta or {}).get("late")), e.date)
    ):
        late = bool((entry.meta or {}).get("late"))
        carried: dict[str, Decimal | None] = {}
        for p in entry.postings:
            meter, quantity = (p.meta or {}).get("meter"), (p.meta or {}).get("quantity")
            if isinstance(meter, str) and meter:
                carried[meter] = quantity if isinstance(quantity, Decimal) else carried.get(meter)
        # ``quantities`` also names a meter whose amount never moved (a free tier): no revenue
        # posting carries it
        listed = (entry.meta or {}).get("quantities")
        if isinstance(listed, str):
            for meter, quantity in parse_quantities(listed).items():
                carried.setdefault(meter, quantity)
        for meter, quantity in carried.items():
            if not late and isinstance(quantity, Decimal):
                result[meter] = (quantity, _usage_date(entry))
            elif late:
                before = result.get(meter, (ZERO, _usage_date(entry)))[0]
                total = (
                    before + quantity
                    if isinstance(quantity, Decimal) and before is not None
                    else None
                )
                result[meter] = (total, _usage_date(entry))
    return result


class _Evidence:
    """Per-meter evidence of a cycle's windows, each streamed from the store once per trace.

    :meth:`digest` is :func:`ledger.metering.evidence_digest`, the same function
    :meth:`ledger.session.Session.evidence` writes the ``evidence`` metadata with.
    """

    def __init__(self, session: Session):
        self.session = session
        self.cache: dict[tuple[str, str, int, int], metering.Evidence] = {}

    def window(self, rated: CycleRating) -> metering.Window:
        return metering.accrual_window(
            rated.cycle.customer, rated.cycle.start, rated.through, self.session.workspace.tz
        )

    def meter(self, rated: CycleRating, meter: str) -> metering.Evidence:
        window = self.window(rated)
        key = (meter, window.customer, window.start_us, window.end_us)
        if key not in self.cache:
            self.cache[key] = metering.evidence(
                self.session.engine, self.session.rules.meters[meter], window
            )
        return self.cache[key]

    def digest(self, rated: CycleRating) -> str:
        meters = sorted({c.meter for c in rated.charges})
        return metering.evidence_digest((m, self.meter(rated, m)) for m in meters)

    def accruals(self, rating: Rating, links: Iterable[str]) -> dict[tuple[str, date], str]:
        """Digests of the accrual points of the cycles ``links`` (what invoices freeze)."""
        wanted = set(links)
        return {
            (r.cycle.link, r.through): self.digest(r)
            for r in rating.cycles
            if r.cycle.link in wanted
            and (r.through in r.cycle.accrual_points() or r.through < rating.through)
        }


def _meter_traces(session: Session, rated: CycleRating, evidence: _Evidence) -> list[MeterTrace]:
    tz = session.workspace.tz
    out = []
    for charge in rated.charges:
        ev = evidence.meter(rated, charge.meter)
        out.append(
            MeterTrace(
                meter=charge.meter,
                model=charge.model,
                unit=session.rules.meters[charge.meter].unit,
                events=ev.events,
                first=_time(ev.first_us, tz),
                last=_time(ev.last_us, tz),
                digest=ev.digest,
                quantity=charge.quantity,
                tiers=charge.lines,
                amount=charge.amount,
            )
        )
    return out


def _held_by_threshold(
    session: Session, books: _CycleBooks, now: _Recomputed, invoices: Sequence[Invoice]
) -> str:
    """Why the books may hold less (or more) than the store at their latest point, when that
    point is the accrual a threshold invoice froze and the books hold exactly what it froze:
    usage of the days before it that arrived afterwards waits for the cycle's next accrual
    point, which books it cumulatively (and the cycle's next invoice bills it). "" otherwise."""
    frozen = [
        a
        for inv in invoices
        for a in inv.progress
        if a.link == books.link and a.through == now.through
    ]
    if not frozen:
        return ""
    held = {k: v for k, v in _books_targets(session, books.customer, books.usage).items() if v}
    if held != {k: v for k, v in frozen[0].booked.items() if v}:
        return ""
    later = [d for d in now.rated.cycle.accrual_points() if d > now.through]
    return (
        f"usage through {now.through.isoformat()} that arrived after the threshold invoice "
        f"froze it: the cycle's next accrual ({later[0].isoformat() if later else 'its end'}) "
        "books it"
    )


def _earlier_quantities(
    session: Session,
    link: str,
    usage: Sequence[data.Transaction],
    points: Mapping[date, CycleRating],
    latest: Mapping[str, tuple[Decimal | None, date]],
    checks: Sequence[Check],
    frozen: Mapping[date, Mapping[str, Decimal]],
    progress: Mapping[date, Mapping[str, Decimal]] | None = None,
) -> list[Check]:
    """Proves the ``quantity`` of every earlier accrual equals the store at its own point.

    Events that arrive for an earlier point after it was invoiced or sealed move
    the cumulative figures, which late adjustments post in full; the earlier
    accrual keeps its figure. Such a mismatch is explained when everything
    cumulative agrees and the accrual still holds the invoice's frozen figure with
    a late adjustment after it, or its month is sealed (the seal guards its figures).
    So is the accrual a threshold invoice froze (``progress``) when a later accrual of the
    cycle carries the change.
    """
    progress = progress or {}
    sealed = sealed_months(session.workspace.books_dir)
    out = []
    for entry in sorted(usage, key=lambda e: e.date):
        if (entry.meta or {}).get("late"):
            continue
        for p in entry.postings:
            meter, quantity = (p.meta or {}).get("meter"), (p.meta or {}).get("quantity")
            if (
                not isinstance(meter, str)
                or not isinstance(quantity, Decimal)
                or latest.get(meter, (0, None))[1] == entry.date
            ):
                continue
            at = points.get(entry.date)
            store = next((c.quantity for c in at.charges if c.meter == meter), None) if at else None
            explained = ""
            if store != quantity and all(
                c.ok or c.explained for c in checks
            ):  # everything cumulative agrees
                later = sorted(
                    {
                        e.date.isoformat()
                        for e in usage
                        if (e.meta or {}).get("late") and e.date > entry.date
                    }
                )
                if later and frozen.get(entry.date, {}).get(meter) == quantity:
                    explained = (
                        "the accrual keeps the invoice's frozen figure; the change is posted as "
                        f"late adjustments on {', '.join(later)}"
                    )
                elif month_of(entry.date) in sealed:
                    explained = _SEALED_AND_AGREED
                elif progress.get(entry.date, {}).get(meter) == quantity and any(
                    e.date > entry.date for e in usage if not (e.meta or {}).get("late")
                ):
                    explained = (
                        "the accrual keeps the threshold invoice's frozen figure; the change is "
                        "accrued at the cycle's later points"
                    )
                elif later and progress.get(entry.date, {}).get(meter) == quantity:
                    # arrived after the cycle-end invoice too (no later point moved before it)
                    explained = (
                        "the accrual keeps the threshold invoice's frozen figure; the change is "
                        f"posted as late adjustments on {', '.join(later)}"
                    )
            note = (
                ""
                if store == quantity
                else _quantity_note(
                    session.rules.meters[meter].aggregation
                    if meter in session.rules.meters
                    else "",
                    quantity,
                    store if store is not None else ZERO,
                    entry.date,
                )
            )
            out.append(
                Check(
                    f"{meter} quantity on {entry.date.isoformat()}",
                    str(quantity),
                    "" if store is None else str(store),
                    note=note,
                    explained=explained,
                    link=link,
                )
            )
    return out


def _quantity_note(meter_kind: str, books: Decimal, store: Decimal, day: date) -> str:
    if meter_kind == "count" and store != books:
        more = store - books
        what = f"{abs(more)} event{'s' if abs(more) != 1 else ''}"
        return (
            f"{what} {'more' if more > 0 else 'fewer'} in the store than the "
            f"{day.isoformat()} accrual reflects"
        )
    return f"the store differs from the {day.isoformat()} accrual"


# --- the checks of a cycle ---------------------------------------------------------------
#
# A cycle trace reads what the books hold for the link (:class:`_CycleBooks`), rates the cycle
# now from the store (:class:`_Recomputed`) and runs the checks below in order; each says in
# its docstring what it proves. A check returns :class:`Check` s (recorded next to store,
# ``explained`` when a mismatch is accounted for elsewhere). The amounts' agreement decides
# whether a sealed figure's drift is explained; the earlier accruals' quantities
# (:func:`_earlier_quantities`) are explained only when every other check agrees.


@dataclass(frozen=True)
class _CycleBooks:
    """What the books hold for one cycle link: whose cycle it is, every transaction carrying
    the link (``posted``), its accruals and late adjustments (``usage``) and the days it is
    accrued on (``accrued``)."""

    link: str
    customer: str
    currency: str
    cycle_key: str
    posted: tuple[Posted, ...]
    usage: tuple[data.Transaction, ...]
    accrued: frozenset[date]


@dataclass(frozen=True)
class _Recomputed:
    """The cycle rated now from the store (``rating``: the customer's cycles through the books'
    last usage date) at each of its accrual points (``points``), the latest of them
    (``through``, rated as ``rated``), and the months sealed in the books."""

    rating: Rating
    points: Mapping[date, CycleRating]
    through: date
    rated: CycleRating
    sealed: set[str]
    evidence: _Evidence


def _cycle_books(
    session: Session, link: str, entries: Sequence[data.Directive], numbers: set[str]
) -> _CycleBooks:
    """The transactions of the books that carry ``^link``, in date order; :class:`BadInput`
    when none does or when their customer is not in the rules."""
    linked = sorted(
        (e for e in entries if isinstance(e, data.Transaction) and link in (e.links or ())),
        key=lambda e: (e.date, e.narration or ""),
    )
    if not linked:
        raise BadInput(
            f"trace: {link}: no transaction in the books carries ^{link} "
            f"(not a cycle link or an invoice number; run meterbook post?)"
        )
    customer = str((linked[0].meta or {}).get("customer") or linked[0].payee or "")
    if customer not in session.rules.customers:
        raise BadInput(f"trace: ^{link}: customer {customer!r} is not in the rules")
    notes = {n.number for n in session.facts().credit_notes}
    posted = tuple(
        Posted(
            e.date,
            _kind(e, numbers, notes),
            e.narration or "",
            str((e.meta or {}).get("evidence") or ""),
        )
        for e in linked
    )
    kinds = list(zip(linked, posted, strict=True))
    return _CycleBooks(
        link=link,
        customer=customer,
        currency=session.rules.customers[customer].currency,
        cycle_key=next((str(e.meta["cycle"]) for e in linked if (e.meta or {}).get("cycle")), ""),
        posted=posted,
        usage=tuple(e for e, p in kinds if p.kind in ("accrual", "late")),
        accrued=frozenset(e.date for e, p in kinds if p.kind == "accrual"),
    )


def _accrual_points_problem(
    books: _CycleBooks, points: Mapping[date, CycleRating], last_usage: date
) -> str:
    """Proves every accrual of the books is dated on an accrual point of a cycle the rules give
    the customer: otherwise the one difference of the trace ("" when none), since nothing else
    can be compared with a cycle the rules do not have."""
    stray = sorted(books.accrued - set(points))
    if points and not stray:
        return ""
    day = (stray or [last_usage])[0]
    return (
        f"the books accrue ^{books.link} on {day.isoformat()}, which is not an accrual point of "
        f"any cycle the rules give {books.customer}"
    )


def _amount_checks(
    session: Session, books: _CycleBooks, now: _Recomputed, invoices: Sequence[Invoice]
) -> list[Check]:
    """Proves the sums of the cycle's accrual and late-adjustment postings per target (revenue
    per meter, unbilled, contract asset, deferred revenue drawn, subscription and commitment
    revenue) equal the cumulative targets rated now from the store and the rules, as the books
    hold them: net of the tax tax-inclusive prices hold, unless the invoice froze the cycle's
    accruals with the tax in."""
    books_sums = _books_targets(session, books.customer, books.usage)
    mine = [a for inv in invoices for a in inv.accruals if a.link == books.link]
    included = session.included(now.rating, invoices).get(books.link)
    if mine and not any(a.net for a in mine):  # frozen with the tax in: booked so
        included = None
    rated = now.rated
    if any(
        a.through == now.through for inv in invoices for a in inv.progress if a.link == books.link
    ):
        # a threshold invoice's accrual: the base fee as recognized at the accrual points
        rated = fee_as_accrued(rated, [now.points[d] for d in sorted(now.points)])
    store_sums = snapshot(rated, "", included).booked
    currency = books.currency
    amounts: list[Check] = []
    for key in sorted(
        set(books_sums) | set(store_sums), key=lambda k: (not k.startswith("usage_revenue:"), k)
    ):
        have, want = books_sums.get(key, ZERO), store_sums.get(key, ZERO)
        if have or want:
            amounts.append(
                Check(
                    _target_label(key), f"{have} {currency}", f"{want} {currency}", link=books.link
                )
            )
    return amounts


def _quantity_checks(
    session: Session,
    books: _CycleBooks,
    now: _Recomputed,
    latest: Mapping[str, tuple[Decimal | None, date]],
    amounts_agree: bool,
) -> list[Check]:
    """Proves each meter's latest ``quantity`` in the books (``latest``: the figure and the
    accrual point it is for) equals the meter's aggregate in the store at that point. A meter
    never posted (its amount never moved) or a catch-up that could not derive its quantity is
    left to the evidence and the amounts. A mismatch in a sealed month is explained when the
    amounts agree: the seal guards the figure, late adjustments move the money."""
    checks: list[Check] = []
    for meter in sorted({c.meter for c in now.rated.charges} | set(latest)):
        if meter not in latest:
            # nothing posted for the meter (its amount never moved): the evidence covers it
            continue
        recorded, day = latest[meter]
        if recorded is None:
            continue  # a catch-up that could not derive its quantity: the amounts still compare
        at = now.points.get(day)
        store_qty = next((c.quantity for c in at.charges if c.meter == meter), None) if at else None
        what = f"{meter} quantity" + (f" on {day.isoformat()}" if day != now.through else "")
        note = explained = ""
        if store_qty is not None and recorded != store_qty:
            note = _quantity_note(
                session.rules.meters[meter].aggregation if meter in session.rules.meters else "",
                recorded,
                store_qty,
                day,
            )
            if amounts_agree and month_of(day) in now.sealed:
                explained = _SEALED_AND_AGREED
        checks.append(
            Check(
                what,
                str(recorded),
                "" if store_qty is None else str(store_qty),
                note=note,
                explained=explained,
                link=books.link,
            )
        )
    return checks


def _evidence_checks(books: _CycleBooks, now: _Recomputed, amounts_agree: bool) -> list[Check]:
    """Proves the ``evidence`` digest of the latest entry that carries one equals the digest
    recomputed from the store at its accrual point: the same events, with the same payloads.

    When that entry is a late adjustment of a sealed accrual whose digest differs, the sealed
    accrual's digest is checked too, first, and shown next to it.
    """
    with_evidence = [e for e in books.usage if (e.meta or {}).get("evidence")]
    if not with_evidence:
        return []
    latest = max(
        with_evidence, key=lambda e: (_usage_date(e), bool((e.meta or {}).get("late")), e.date)
    )
    day = _point_of(_usage_date(latest), now.points)
    what = f"evidence {day.isoformat()}"
    checks = []
    if (latest.meta or {}).get("late"):
        # a late adjustment carries the digest regenerated at the point; the sealed accrual
        # it adjusts keeps its own, shown (and explained) next to it
        sealed_accrual = [
            e
            for e in with_evidence
            if not (e.meta or {}).get("late")
            and e.date == day
            and month_of(e.date) in now.sealed
            and (e.meta or {})["evidence"] != (latest.meta or {})["evidence"]
        ]
        if sealed_accrual:
            checks.append(_evidence_check(books, now, amounts_agree, sealed_accrual[-1], day, what))
            what = f"{what} late adjustment {latest.date.isoformat()}"
    checks.append(_evidence_check(books, now, amounts_agree, latest, day, what))
    return checks


def _evidence_check(
    books: _CycleBooks,
    now: _Recomputed,
    amounts_agree: bool,
    entry: data.Transaction,
    day: date,
    what: str,
) -> Check:
    """Proves ``entry``'s ``evidence`` digest equals the one recomputed at the accrual point
    ``day``. A sealed entry whose events changed after the seal keeps its digest: explained
    when the amounts agree, naming the late adjustments that posted the change (if any)."""
    recorded_digest = str((entry.meta or {})["evidence"])
    store_digest = now.evidence.digest(now.points[day]) if day in now.points else ""
    note = (
        ""
        if recorded_digest == store_digest
        else (f"the events behind the {day.isoformat()} accrual changed since it was posted")
    )
    explained = ""
    month = month_of(entry.date)
    if note and month in now.sealed and amounts_agree:
        # a sealed entry keeps its digest; what changed in money is posted as late adjustments
        adjusted = sorted(
            {
                e.date.isoformat()
                for e in books.usage
                if (e.meta or {}).get("late") and e.date > entry.date
            }
        )
        explained = (
            f"events arrived after this accrual was frozen (by an invoice or the seal); {month} "
            "is sealed, so the accrual keeps its digest and the "
            + (
                f"amounts they change are posted as late adjustments on {', '.join(adjusted)}"
                if adjusted
                else "amounts are unchanged, so nothing was posted"
            )
        )
    return Check(
        what, recorded_digest, store_digest, note=note, link=books.link, explained=explained
    )


def _rules_notes(session: Session, books: _CycleBooks) -> list[str]:
    """Notes (never a difference) that the cycle was posted under rules other than today's:
    the figures compared are today's rating, so a difference may come from the rules."""
    posted_rules = sorted(
        {str(e.meta["rules"]) for e in books.usage if (e.meta or {}).get("rules")}
    )
    if posted_rules and posted_rules != [session.rules.hash]:
        return [
            f"posted with rules {', '.join(posted_rules)}; the rules are now {session.rules.hash}"
        ]
    return []


def _trace_cycle(
    session: Session,
    link: str,
    entries: Sequence[data.Directive],
    invoices: Sequence[Invoice],
    evidence: _Evidence | None = None,
) -> Trace:
    """The trace of the cycle ``^link``: the books' figures for it against the cycle rated now
    from the store, check by check (the functions above)."""
    evidence = evidence or _Evidence(session)
    books = _cycle_books(session, link, entries, {inv.number for inv in invoices})
    found = Trace(
        ref=link,
        kind="cycle",
        verified=True,
        differences=(),
        customer=books.customer,
        currency=books.currency,
        cycle=books.cycle_key,
        transactions=books.posted,
    )
    if not books.usage:
        return replace(found, notes=("no accrual posted for this cycle yet: nothing to recompute",))

    # a sealed month's catch-up is dated by its month end: the cycle's last point up to it counts
    last_usage = max(_usage_date(e) for e in books.usage)
    rating = session.rate(last_usage, {books.customer})
    # a threshold invoice's accrual is one of the cycle's points (the rating rates it)
    progress = {a.through for inv in invoices for a in inv.progress if a.link == link}
    points = {
        r.through: r
        for r in rating.cycles
        if r.cycle.link == link and (r.through in r.cycle.accrual_points() or r.through in progress)
    }
    problem = _accrual_points_problem(books, points, last_usage)
    if problem:
        return replace(found, verified=False, differences=(problem,))
    through = max(points)
    now = _Recomputed(
        rating,
        points,
        through,
        points[through],
        sealed_months(session.workspace.books_dir),
        evidence,
    )

    amounts = _amount_checks(session, books, now, invoices)
    amounts_agree = all(c.ok for c in amounts)
    # the books' latest quantity per meter, at the accrual point it was posted for
    latest = {
        meter: (quantity, _point_of(day, points))
        for meter, (quantity, day) in _books_quantities(books.usage).items()
    }
    checks = [
        *_quantity_checks(session, books, now, latest, amounts_agree),
        *amounts,
        *_evidence_checks(books, now, amounts_agree),
    ]
    frozen = {
        a.through: dict(a.quantities) for inv in invoices for a in inv.accruals if a.link == link
    }
    frozen_by_threshold = {
        a.through: dict(a.quantities) for inv in invoices for a in inv.progress if a.link == link
    }
    checks[:0] = _earlier_quantities(
        session, link, books.usage, points, latest, checks, frozen, frozen_by_threshold
    )
    held = _held_by_threshold(session, books, now, invoices)
    if held:
        checks = [c if c.ok or c.explained else replace(c, explained=held) for c in checks]
    checks = _explain_free_late_usage(checks, amounts_agree, frozen.get(through, {}))
    notes = [f"{c.difference()}: {c.explained}" for c in checks if not c.ok and c.explained]
    notes.extend(_rules_notes(session, books))
    differences = tuple(c.difference() for c in checks if not c.ok and not c.explained)
    return Trace(
        ref=link,
        kind="cycle",
        verified=not differences,
        differences=differences,
        customer=books.customer,
        currency=books.currency,
        cycle=now.rated.cycle.key,
        plan=now.rated.cycle.plan,
        through=through,
        transactions=books.posted,
        meters=tuple(_meter_traces(session, now.rated, evidence)),
        checks=tuple(checks),
        notes=tuple(notes),
    )


def _explain_free_late_usage(
    checks: list[Check], amounts_agree: bool, frozen: Mapping[str, Any]
) -> list[Check]:
    """Usage that arrived after the invoice froze the cycle and costs nothing (a free tier):
    the store's quantity grew, no amount moved, so no late entry was posted. Explained when
    every amount agrees and the books' quantity is the one the invoice froze."""
    if not amounts_agree or not frozen:
        return checks
    out, grown = [], False
    for check in checks:
        found = re.fullmatch(r"(\S+) quantity", check.what)
        meter = found.group(1) if found else ""
        if not check.ok and not check.explained and meter in frozen:
            try:
                arrived = (
                    Decimal(check.recorded) == Decimal(str(frozen[meter])) < Decimal(check.store)
                )
            except ArithmeticError:
                arrived = False
            if arrived:
                grown = True
                check = replace(
                    check,
                    explained="usage that arrived after the invoice froze the cycle, priced at "
                    "0 (nothing to post: the amounts are unchanged)",
                )
        out.append(check)
    if grown:
        out = [
            replace(c, explained="the events behind the frozen accrual grew by usage priced at 0")
            if not c.ok and not c.explained and c.what.startswith("evidence ")
            else c
            for c in out
        ]
    return out


# --- invoices ----------------------------------------------------------------------------


def _line_key(line: InvoiceLine) -> tuple[str, str, str, str]:
    return line.kind, line.link, line.meter, line.account


def _keyed(
    lines: Sequence[InvoiceLine],
) -> dict[tuple[str, str, str, str, int], tuple[int, InvoiceLine]]:
    seen: Counter[tuple[str, str, str, str]] = Counter()
    out = {}
    for i, line in enumerate(lines, 1):
        key = _line_key(line)
        seen[key] += 1
        out[(*key, seen[key])] = (i, line)
    return out


def _compare_lines(invoice: Invoice, draft: Invoice) -> list[Check]:
    mine, theirs = _keyed(invoice.lines), _keyed(draft.lines)
    checks = []
    for key in sorted(
        set(mine) | set(theirs), key=lambda k: mine.get(k, theirs.get(k, (0, None)))[0]
    ):
        number, line = mine.get(key, (0, None))
        _, again = theirs.get(key, (0, None))
        shown = line or again
        assert shown is not None
        label = f"line {number}" if number else "line (missing)"
        what = (
            f"{label} {shown.kind}"
            + (f" {shown.meter}" if shown.meter else "")
            + f" [{shown.account}]"
        )
        if line is None or again is None:
            checks.append(
                Check(
                    what,
                    "" if line is None else f"{line.amount}",
                    "" if again is None else f"{again.amount}",
                    source="invoice",
                    link=shown.link,
                    note="a line the store does not recompute"
                    if again is None
                    else "a line the invoice lacks",
                )
            )
            continue
        usage = line.kind == "usage" and bool(line.meter)
        if line.quantity is not None or again.quantity is not None:
            checks.append(
                Check(
                    f"{what} quantity",
                    str(line.quantity),
                    str(again.quantity),
                    source="invoice",
                    link=shown.link,
                    late_key=f"quantity:{line.meter}" if usage else "",
                )
            )
        # a usage line booked net of the tax its price holds compares what the books hold of
        # it, as its late usage is posted (the net follows from the amount at the rates)
        net = usage and line.net is not None
        checks.append(
            Check(
                f"{what} {'net amount' if net else 'amount'}",
                f"{line.booked if net else line.amount}",
                f"{again.booked if net else again.amount}",
                source="invoice",
                link=shown.link,
                late_key=f"usage_revenue:{line.meter}" if usage else "",
            )
        )
    return checks


def _compare_accruals(invoice: Invoice, draft: Invoice) -> list[Check]:
    frozen = {(a.link, a.through): a for a in (*invoice.accruals, *invoice.progress)}
    again = {(a.link, a.through): a for a in (*draft.accruals, *draft.progress)}
    last = {link: max(t for k, t in frozen if k == link) for link, _ in frozen}
    checks = []
    for key in sorted(set(frozen) | set(again)):
        link, through = key
        a, b = frozen.get(key), again.get(key)
        at_last = last.get(link) == through  # late adjustments bridge the last point only
        what = f"frozen accrual ^{link} {through.isoformat()}"
        if a is None or b is None:
            checks.append(
                Check(
                    what,
                    "present" if a else "",
                    "present" if b else "",
                    source="invoice",
                    link=link,
                )
            )
            continue
        quantities = sorted(set(dict(a.quantities)) | set(dict(b.quantities)))
        for meter in quantities:
            checks.append(
                Check(
                    f"{what} {meter} quantity",
                    str(dict(a.quantities).get(meter, "")),
                    str(dict(b.quantities).get(meter, "")),
                    source="invoice",
                    link=link,
                    late_key=f"quantity:{meter}" if at_last else "",
                )
            )
        # what the books hold: net of the tax in tax-inclusive prices when frozen so
        mine, theirs = (a.booked, b.booked) if a.net else (dict(a.targets), dict(b.targets))
        for target in sorted(set(mine) | set(theirs)):
            checks.append(
                Check(
                    f"{what} {_target_label(target)}",
                    str(mine.get(target, ZERO)),
                    str(theirs.get(target, ZERO)),
                    source="invoice",
                    link=link,
                    late_key=target if at_last else "",
                )
            )
        checks.append(
            Check(f"{what} evidence", a.evidence, b.evidence, source="invoice", link=link)
        )
    return checks


def _books_invoice(
    session: Session, invoice: Invoice, entries: Sequence[data.Directive]
) -> list[Check]:
    """The invoice transaction of the books: receivable = total, and what it settles."""
    found = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and invoice.number in (e.links or ())
        and (e.meta or {}).get("invoice") == invoice.number
        and not {"credit_note", "reference", "application", "debit_adjustment"} & set(e.meta or {})
    ]
    cur = invoice.currency
    if len(found) != 1:
        return [
            Check("invoice transaction in the books", f"{len(found)} transactions", "1 transaction")
        ]
    entry = found[0]
    sums: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for p in entry.postings:
        if p.units is not None and isinstance(p.units.number, Decimal):
            sums[p.account] += p.units.number
    rules = session.rules
    receivable = rules.account("receivable", customer=invoice.customer)
    checks = [
        Check(
            f"receivable {receivable}",
            f"{sums.pop(receivable, ZERO)} {cur}",
            f"{invoice.total} {cur}",
        )
    ]
    for kind in ("unbilled", "contract_asset", "deferred"):
        account = rules.account(kind, customer=invoice.customer)
        have, want = -sums.pop(account, ZERO), invoice.settles(kind)
        if have or want:
            label = (
                "credits deferred revenue"
                if kind == "deferred"
                else f"settles {_target_label(kind)}"
            )
            checks.append(Check(label, f"{have} {cur}", f"{want} {cur}"))
    for account, amount in tax_postings(invoice.tax, rules, cur):  # the invoice's tax (ledger.tax)
        have = sums.pop(account, ZERO)
        checks.append(Check(f"tax {account}", f"{have} {cur}", f"{amount} {cur}"))
    difference = included_difference(invoice)  # tax in prices the accruals did not take out
    if difference:
        account = rules.account("tax_included")
        have = sums.pop(account, ZERO)
        what = f"tax included, corrected {account}"
        checks.append(Check(what, f"{have} {cur}", f"{difference} {cur}"))
    for account, amount in sorted(sums.items()):
        if amount:
            checks.append(Check(f"unexpected posting {account}", f"{amount} {cur}", f"0 {cur}"))
    if entry.date != invoice.date:
        checks.append(Check("invoice date", entry.date.isoformat(), invoice.date.isoformat()))
    return checks


def _document(session: Session, invoice: Invoice) -> Check:
    path = session.workspace.books_dir / "documents" / f"{invoice.number}.json"
    what = f"document documents/{invoice.number}.json"
    if not path.exists():
        return Check(what, "missing", "present", source="books")
    # byte for byte: the document is the stored record (``to_json``), so even a figure the
    # record derives on reading (the total) cannot be edited unnoticed
    text = path.read_text(encoding="utf-8").rstrip("\n")
    want = invoice.to_json()
    digest = hashlib.sha256(want.encode()).hexdigest()[:16]
    if text == want:
        return Check(what, digest, digest, source="books")
    return Check(
        what,
        "differs from the stored invoice",
        digest,
        source="books",
        note=f"sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}",
    )


def _late_figures(
    session: Session, customer: str, link: str, entries: Sequence[data.Directive]
) -> dict[str, Decimal | None]:
    """What the books' late adjustments of a cycle add: per target key, and ``quantity:<meter>``
    (None when an adjustment without a quantity touched the meter)."""
    late = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and link in (e.links or ())
        and (e.meta or {}).get("late")
    ]
    figures: dict[str, Decimal | None] = dict(_books_targets(session, customer, late))
    # what the cycle's own accruals carry (a sealed month's, when the catch-up is dated after
    # it): the invoice may have billed more than them, so the catch-up mixes billed usage with
    # usage that came after the invoice, and only accrued + late = store holds
    accrued = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and link in (e.links or ())
        and not {"late", "invoice", "credit_note", "reference", "application"} & set(e.meta or {})
    ]
    for key, amount in _books_targets(session, customer, accrued).items():
        figures[f"accrued:{key}"] = amount
    # the accruals' quantities are cumulative: the latest posted per meter is what they carried
    for entry in sorted(accrued, key=lambda e: e.date):
        for p in entry.postings:
            meter, quantity = (p.meta or {}).get("meter"), (p.meta or {}).get("quantity")
            if isinstance(meter, str) and meter and isinstance(quantity, Decimal):
                figures[f"accrued:quantity:{meter}"] = quantity
    for entry in late:
        for p in entry.postings:
            meter, quantity = (p.meta or {}).get("meter"), (p.meta or {}).get("quantity")
            if isinstance(meter, str) and meter:
                key = f"quantity:{meter}"
                before = figures.get(key, ZERO)
                figures[key] = (
                    before + quantity
                    if isinstance(quantity, Decimal) and before is not None
                    else None
                )
    return figures


def _explain_late(
    checks: list[Check],
    cycles: Mapping[str, Trace],
    late: Mapping[str, Mapping[str, Decimal | None]],
) -> list[Check]:
    """Mismatches of an invoiced cycle whose late usage the books already carry become notes.

    The cycle's own trace must be verified (books = store now) and it must have
    late adjustments; where a figure has a late counterpart, invoice + late
    adjustments must equal the store exactly.
    """
    out = []
    for check in checks:
        sub = cycles.get(check.link)
        days = (
            sorted({t.date.isoformat() for t in sub.transactions if t.kind == "late"})
            if sub
            else []
        )
        free = (
            sub is not None
            and sub.verified
            and any(not c.ok and c.explained and c.what.endswith(" quantity") for c in sub.checks)
            and (
                check.late_key.startswith("quantity:")
                or check.what.endswith(" quantity")
                or " evidence" in check.what
            )
        )
        if not check.ok and not days and free:
            check = replace(
                check,
                explained=f"usage of ^{check.link} that arrived after the invoice and moved "
                "no amount (priced at 0, or kept by a seal: the cycle's trace explains it)",
            )
        if not check.ok and sub is not None and sub.verified and days:
            bridged = True
            if check.late_key:
                added = late.get(check.link, {}).get(check.late_key, ZERO)
                accrued = late.get(check.link, {}).get(f"accrued:{check.late_key}", ZERO)
                try:
                    recorded, store = Decimal(check.recorded), Decimal(check.store)
                    bridged = added is None or recorded + added == store
                    if not bridged and added is not None and accrued is not None:
                        # the late entry caught up a sealed month from what it carried, and
                        # the invoice billed part of that catch-up: accrued + late = store,
                        # with the invoice's figure between the two
                        low, high = sorted((accrued, store))
                        bridged = accrued + added == store and low <= recorded <= high
                except ArithmeticError:
                    bridged = False
            if bridged:
                check = replace(
                    check,
                    explained=f"usage that arrived after the invoice, posted in the books as "
                    f"late usage of ^{check.link} on {', '.join(days)}",
                )
        out.append(check)
    return out


def _explain_threshold(
    invoice: Invoice, checks: list[Check], cycles: Mapping[str, Trace]
) -> list[Check]:
    """Mismatches of a cycle a threshold invoice billed before the cycle ended become notes when
    usage of the days it froze arrived after it: the cycle's own trace is verified (books =
    store now, or the books hold what it froze, :func:`_held_by_threshold`); a later accrual
    books the arrival and the cycle's next invoice bills it, deducting what the threshold
    invoice billed."""
    frozen = {snap.link: snap.through for snap in invoice.progress}
    out = []
    for check in checks:
        sub = cycles.get(check.link)
        day = frozen.get(check.link)
        if (
            not check.ok
            and not check.explained
            and sub is not None
            and sub.verified
            and day is not None
        ):
            check = replace(
                check,
                explained=f"usage through {day.isoformat()} that arrived after the threshold "
                f"invoice: accrued later on ^{check.link} and billed on its next invoice",
            )
        out.append(check)
    return out


def _explain_subscription_changes(
    session: Session, invoice: Invoice, checks: list[Check]
) -> list[Check]:
    """An advance fee line that differs because the subscription changed after the invoice is
    explained when the subscription-change documents (:mod:`ledger.subscriptions`) bridge it
    exactly: invoiced + their corrections = the store's figure now."""
    from ledger.subscriptions import fee_changes, line_corrections

    fixes = {
        line: fix
        for (number, line), fix in line_corrections(
            session.engine, session.stored_facts().credit_notes
        ).items()
        if number == invoice.number
    }
    # a change whose correction is dated after the books' horizon (a cancellation ahead), and
    # earlier notes' deferred parts the correction counted as taken out at once
    every = {
        c.line: c
        for c in fee_changes(session, date.max, every=True)
        if c.invoice.number == invoice.number
    }
    due = {line: c for line, c in every.items() if c.difference}
    out = []
    for check in checks:
        found = re.fullmatch(r"line (\d+) base_fee \[deferred\](?: amount)?", check.what)
        line = int(found.group(1)) if found else 0
        fix, pending = fixes.get(line), due.get(line)
        # a fee cut by no more than earlier credit notes on the line took out: no correction
        absorbed = line in every and bool(every[line].stale) and fix is None and pending is None
        if not check.ok and (fix is not None or pending is not None or absorbed):
            done = fix[0] if fix is not None else ZERO
            later = pending.difference if pending is not None else ZERO
            stale = every[line].stale if line in every else ZERO
            try:
                bridged = Decimal(check.recorded) + done + later - stale == Decimal(
                    check.store or "0"
                )
            except ArithmeticError:
                bridged = False
            if bridged:
                said = (
                    [f"{', '.join(fix[1])} {'credit' if done < 0 else 'charge'} {abs(done)}"]
                    if fix
                    else []
                )
                if absorbed:
                    said.append(
                        f"the fee is now {every[line].now}, and the credit notes on the line "
                        f"already took out {every[line].stale} of it: nothing left to correct"
                    )
                if pending is not None:
                    said.append(
                        f"{abs(later)} to be {'credited' if later < 0 else 'charged'} on "
                        f"{pending.on.isoformat()}, when the books are posted through that day"
                    )
                check = replace(
                    check,
                    explained=f"the subscription changed after the invoice: {'; '.join(said)}",
                )
        out.append(check)
    return out


def _trace_invoice(
    session: Session, number: str, entries: Sequence[data.Directive], invoices: Sequence[Invoice]
) -> Trace:
    position = next(i for i, inv in enumerate(invoices) if inv.number == number)
    invoice = invoices[position]
    numbers = {inv.number for inv in invoices}
    evidence = _Evidence(session)
    cycles = {
        link: _trace_cycle(session, link, entries, invoices, evidence) for link in invoice.cycles
    }

    rating = session.rate(invoice.date, {invoice.customer})
    # every cycle whose accruals the invoice froze, billed by a line or not (a cycle without
    # anything to bill, moved out of a sealed month with another draft, keeps no zero line)
    frozen = {*invoice.cycles, *(snap.link for snap in invoice.accruals)}
    drafts = session.draft(
        rating,
        invoice.date,
        issued=invoices[:position],
        evidence=evidence.accruals(rating, frozen),
        redrafting=invoice,
    )
    draft = next((d for d in drafts if d.key == invoice.key), None)
    # a cycle this invoice did not bill, which a later invoice did (its usage arrived after this
    # one was issued: a cycle with nothing to bill then, billed by a later-numbered invoice on
    # an earlier date) is not this invoice's to re-draft
    later = {
        link
        for inv in invoices[position + 1 :]
        for link in (
            *(snap.link for snap in (*inv.accruals, *inv.progress)),
            *(ln.link for ln in inv.lines if ln.link),
        )
    }
    foreign = later - frozen - {ln.link for ln in invoice.lines if ln.link}
    if draft is not None and foreign:
        draft = replace(
            draft,
            lines=tuple(ln for ln in draft.lines if ln.link not in foreign),
            accruals=tuple(a for a in draft.accruals if a.link not in foreign),
        )
    checks: list[Check] = [_document(session, invoice), *_books_invoice(session, invoice, entries)]
    if draft is None:
        checks.append(
            Check(
                "re-drafted invoice",
                f"{invoice.total} {invoice.currency}",
                "",
                source="invoice",
                note=f"the store and rules draft no invoice for {invoice.key}",
            )
        )
    else:
        late = {link: _late_figures(session, invoice.customer, link, entries) for link in cycles}
        line_checks = _explain_late(
            _compare_lines(invoice, draft) + _compare_accruals(invoice, draft), cycles, late
        )
        line_checks = _explain_subscription_changes(session, invoice, line_checks)
        line_checks = _explain_threshold(invoice, line_checks, cycles)
        checks.extend(line_checks)
        # the tax is decided once, when the invoice is issued, and kept with it (ledger.tax): the
        # recomputation adds the tax as issued, so later tax rules cannot make the total differ
        redrafted = draft.subtotal + (invoice.tax.added if invoice.tax is not None else 0)
        total = Check(
            "total",
            f"{invoice.total} {invoice.currency}",
            f"{redrafted} {draft.currency}",
            source="invoice",
        )
        if not total.ok and all(c.ok or c.explained for c in line_checks):
            total = replace(
                total,
                explained="the lines' differences are late usage or subscription changes "
                "posted in the books",
            )
        checks.append(total)
    notes = tuple(f"{c.difference()}: {c.explained}" for c in checks if not c.ok and c.explained)
    differences = [c.difference() for c in checks if not c.ok and not c.explained]
    for link, sub in sorted(cycles.items()):
        differences.extend(f"^{link}: {d}" for d in sub.differences)
    posted = tuple(
        Posted(e.date, _kind(e, numbers), e.narration or "")
        for e in sorted(
            (e for e in entries if isinstance(e, data.Transaction) and number in (e.links or ())),
            key=lambda e: (e.date, e.narration or ""),
        )
    )
    return Trace(
        ref=number,
        kind="invoice",
        verified=not differences,
        differences=tuple(differences),
        customer=invoice.customer,
        currency=invoice.currency,
        transactions=posted,
        checks=tuple(checks),
        notes=notes,
        invoice=invoice,
        cycles=tuple(cycles[link] for link in sorted(cycles)),
    )
