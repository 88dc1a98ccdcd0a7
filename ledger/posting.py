"""Posting: the journal entries of DESIGN's accounting table, from rating and facts.

An accrual point books the change in a cycle's cumulative *targets*. With
acme's cycle ``[2026-09-15, 2026-10-15)`` rated 4.00 of API calls through
Sep 30 and 15.00 through Oct 14, plus a 49.00 base fee billed in advance::

    2026-09-30 * "acme" "Usage accrual 2026-09-15/2026-10-15 through 2026-09-30" ^acme-2026-09-15
      Assets:Receivables:Unbilled:Acme          4.00 USD
      Income:Usage:Api-Calls                   -4.00 USD
        meter: "api_calls"
        quantity: 14000
      Liabilities:Deferred-Revenue:Acme        26.13 USD
      Income:Subscriptions:Pro                -26.13 USD

    2026-10-14 * "acme" "Usage accrual … through 2026-10-14" ^acme-2026-09-15
      Assets:Receivables:Unbilled:Acme         11.00 USD
      Income:Usage:Api-Calls                  -11.00 USD
      …

A cycle's targets (cumulative, rounded) are, per DESIGN:

- ``usage_revenue:<meter>``: usage charges of the meter (credit side);
- ``unbilled``: final-price usage − credit applied to it + commitment
  shortfall + base fee recognized in arrears;
- ``contract_asset``: non-final usage (volume tiers) − credit applied to it;
- ``deferred``: base fee recognized in advance + credit drawn (both reduce
  the deferred-revenue liability, hence a debit);
- ``subscription_revenue:<plan>``, ``commitment_revenue``: their revenue.

Once a cycle is invoiced its targets are frozen in the invoice (a snapshot per
accrual point), so regenerating the books never moves an invoiced accrual.
Usage that arrives afterwards is a *late* adjustment: the difference between
the targets now and the frozen ones, posted on its own in the first open
month (metadata ``late: TRUE``, ``usage_date``) and billed on the customer's
next invoice.

Sealed months are never regenerated: :func:`catch_up` compares what would now
be posted before the first open day with the sealed files and posts the
difference as late adjustments on that day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from beancount.core import data
from beancount.core.amount import Amount

from ledger.rating import ZERO, CreditMovement, CycleRating, Rating
from ledger.rules import Rules

if TYPE_CHECKING:
    from ledger.invoicing import Invoice

FLAG = "*"


@dataclass(frozen=True)
class Snapshot:
    """A cycle's cumulative targets at one accrual point (what the books hold through it)."""

    link: str
    customer: str
    cycle: str
    plan: str
    through: date
    currency: str
    targets: tuple[tuple[str, Decimal], ...]
    quantities: tuple[tuple[str, Decimal], ...] = ()
    evidence: str = ""

    def target(self, key: str) -> Decimal:
        return dict(self.targets).get(key, ZERO)


def targets(rated: CycleRating) -> dict[str, Decimal]:
    """The cumulative balances a cycle's accruals must have reached at ``rated.through``."""
    from ledger.invoicing import split_credit

    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for charge in rated.charges:
        out[f"usage_revenue:{charge.meter}"] += charge.amount
    final_credit, nonfinal_credit = split_credit(rated)
    out["unbilled"] += rated.final_usage - final_credit + rated.commitment_shortfall
    out["contract_asset"] += rated.nonfinal_usage - nonfinal_credit
    out["deferred"] += rated.credit_applied
    if rated.commitment_shortfall:
        out["commitment_revenue:"] += rated.commitment_shortfall
    fee = rated.base_fee
    if fee is not None and fee.recognized:
        out[f"subscription_revenue:{rated.cycle.plan}"] += fee.recognized
        out["deferred" if fee.timing == "advance" else "unbilled"] += fee.recognized
    return {k: v for k, v in out.items() if v}


def snapshot(rated: CycleRating, evidence: str = "") -> Snapshot:
    """Freeze a cycle rating into the record invoices keep."""
    quantities: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for charge in rated.charges:
        quantities[charge.meter] = charge.quantity
    return Snapshot(
        link=rated.cycle.link, customer=rated.cycle.customer, cycle=rated.cycle.key, plan=rated.cycle.plan,
        through=rated.through, currency=rated.currency, targets=tuple(sorted(targets(rated).items())),
        quantities=tuple(sorted(quantities.items())), evidence=evidence,
    )


@dataclass(frozen=True)
class Books:
    """Everything posting produces, ready for the books writer."""

    entries: tuple[data.Directive, ...]
    documents: Mapping[str, str] = field(default_factory=dict)  # relative path → content


def _signed_postings(rules: Rules, customer: str, currency: str, deltas: Mapping[str, Decimal],
                     quantities: Mapping[str, Decimal]) -> list[data.Posting]:
    """Postings for target deltas: debit-natured keys positive, revenue negative."""
    postings = []
    for key in sorted(deltas):
        amount = deltas[key]
        if not amount:
            continue
        kind, _, ref = key.partition(":")
        meta: dict[str, object] | None = None
        if kind == "usage_revenue":
            account = rules.account(kind, meter=ref)
            meta = {"meter": ref}
            if ref in quantities:
                meta["quantity"] = quantities[ref]
            number = -amount
        elif kind == "subscription_revenue":
            account, number = rules.account(kind, plan=ref), -amount
        elif kind == "commitment_revenue":
            account, number = rules.account(kind), -amount
        else:  # unbilled, contract_asset, deferred: asset up / liability down = debit
            account, number = rules.account(kind, customer=customer), amount
        postings.append(data.Posting(account, Amount(number, currency), None, None, None, meta))
    return postings


def _meta(**values: object) -> dict[str, object]:
    return {"filename": "<meterbook>", "lineno": 0, **{k: v for k, v in values.items() if v is not None}}


def accrual_entries(points: Sequence[Snapshot], rules: Rules) -> list[data.Transaction]:
    """One transaction per cycle and accrual point: the change in its targets."""
    entries: list[data.Transaction] = []
    previous: dict[str, Snapshot] = {}
    for snap in sorted(points, key=lambda s: (s.link, s.through)):
        before = previous.get(snap.link)
        now = dict(snap.targets)
        then = dict(before.targets) if before else {}
        deltas = {k: now.get(k, ZERO) - then.get(k, ZERO) for k in set(now) | set(then)}
        previous[snap.link] = snap
        postings = _signed_postings(rules, snap.customer, snap.currency, deltas, dict(snap.quantities))
        if not postings:
            continue
        meters = ",".join(m for m, _ in snap.quantities)
        entries.append(data.Transaction(
            _meta(customer=snap.customer, cycle=snap.cycle, meter=meters or None, rules=rules.hash,
                  evidence=snap.evidence or None),
            snap.through, FLAG, snap.customer,
            f"Usage accrual {snap.cycle} through {snap.through.isoformat()}",
            frozenset(), frozenset({snap.link}), postings,
        ))
    return entries


def late_entries(late: Sequence[tuple[Snapshot, Snapshot, date]], rules: Rules) -> list[data.Transaction]:
    """Late usage: targets now − targets frozen by the invoice, dated in the first open month."""
    entries = []
    for now, frozen, day in late:
        a, b = dict(now.targets), dict(frozen.targets)
        deltas = {k: a.get(k, ZERO) - b.get(k, ZERO) for k in set(a) | set(b)}
        quantities = {m: q - dict(frozen.quantities).get(m, ZERO) for m, q in now.quantities}
        postings = _signed_postings(rules, now.customer, now.currency, deltas, quantities)
        if postings:
            entries.append(data.Transaction(
                _meta(customer=now.customer, cycle=now.cycle, rules=rules.hash, evidence=now.evidence or None,
                      usage_date=now.through, late=True),
                day, FLAG, now.customer, f"Late usage for invoiced cycle {now.cycle}",
                frozenset(), frozenset({now.link}), postings,
            ))
    return entries


def invoice_entries(invoices: Sequence[Invoice], rules: Rules, documents_dir: str = "../documents") -> list[data.Directive]:
    """Receivable / what each invoice settles, plus a document directive for Fava.

    Document paths are relative to the month file (``books/YYYY/``) that holds them.
    """
    entries: list[data.Directive] = []
    for inv in invoices:
        receivable = rules.account("receivable", customer=inv.customer)
        postings = [data.Posting(receivable, Amount(inv.total, inv.currency), None, None, None, None)]
        for key in ("unbilled", "contract_asset", "deferred"):
            amount = inv.settles(key)
            if amount:
                postings.append(data.Posting(rules.account(key, customer=inv.customer),
                                             Amount(-amount, inv.currency), None, None, None, None))
        links = frozenset({inv.number, *inv.cycles})
        entries.append(data.Transaction(
            _meta(customer=inv.customer, invoice=inv.number, due=inv.due, rules=inv.rules,
                  cycle=",".join(sorted({ln.cycle for ln in inv.lines if ln.cycle})) or None),
            inv.date, FLAG, inv.customer, f"Invoice {inv.number}", frozenset(), links, postings,
        ))
        entries.append(data.Document(
            _meta(), inv.date, receivable, f"{documents_dir}/{inv.number}.html", frozenset(), frozenset({inv.number}),
        ))
    return entries


def breakage_entries(movements: Sequence[CreditMovement], rules: Rules) -> list[data.Transaction]:
    """Credit left at expiry: deferred revenue → breakage revenue, dated the expiry date."""
    totals: dict[tuple[str, date], Decimal] = defaultdict(lambda: ZERO)
    for m in movements:
        if m.kind == "breakage":
            totals[(m.customer, m.day)] += m.amount
    entries = []
    for (customer, day), amount in sorted(totals.items()):
        currency = rules.customers[customer].currency
        entries.append(data.Transaction(
            _meta(customer=customer, rules=rules.hash), day, FLAG, customer, "Prepaid credit expired (breakage)",
            frozenset(), frozenset(), [
                data.Posting(rules.account("deferred", customer=customer), Amount(amount, currency), None, None, None, None),
                data.Posting(rules.account("breakage_revenue"), Amount(-amount, currency), None, None, None, None),
            ]))
    return entries


def plan_points(rating: Rating, invoices: Sequence[Invoice], *, first_open: date,
                evidence: Mapping[tuple[str, date], str] | None = None,
                ) -> tuple[list[Snapshot], list[tuple[Snapshot, Snapshot, date]]]:
    """The snapshots to post (frozen ones for invoiced cycles) and the late differences."""
    frozen: dict[str, list[Snapshot]] = defaultdict(list)
    invoice_date: dict[str, date] = {}
    for inv in invoices:
        for snap in inv.accruals:
            frozen[snap.link].append(snap)
            invoice_date[snap.link] = inv.date
    evidence = evidence or {}
    live: dict[str, list[Snapshot]] = defaultdict(list)
    for rated in rating.cycles:
        if rated.through in rated.cycle.accrual_points():
            live[rated.cycle.link].append(snapshot(rated, evidence.get((rated.cycle.link, rated.through), "")))
    points: list[Snapshot] = []
    late: list[tuple[Snapshot, Snapshot, date]] = []
    for link in sorted(set(live) | set(frozen)):
        if link in frozen:
            points.extend(frozen[link])
            last_frozen = max(frozen[link], key=lambda s: s.through)
            now = [s for s in live.get(link, []) if s.through == last_frozen.through]
            if now and now[0].targets != last_frozen.targets:
                late.append((now[0], last_frozen, max(invoice_date[link], first_open)))
        else:
            points.extend(live[link])
    return points, late


def post(rating: Rating, rules: Rules, invoices: Sequence[Invoice], *, first_open: date,
         evidence: Mapping[tuple[str, date], str] | None = None) -> list[data.Directive]:
    """Every generated entry through the rating's date."""
    points, late = plan_points(rating, invoices, first_open=first_open, evidence=evidence)
    entries: list[data.Directive] = []
    entries.extend(accrual_entries(points, rules))
    entries.extend(late_entries(late, rules))
    entries.extend(invoice_entries(invoices, rules))
    entries.extend(breakage_entries(rating.credits, rules))
    return entries


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_day(day: date) -> date:
    return day + timedelta(days=1)


# --- after the close: catch-up of sealed months -----------------------------------------


def usage_month(entry: data.Directive) -> date:
    """The first day of the month an entry's amounts belong to: its ``usage_date``'s
    month for a late adjustment, else its own date's month."""
    usage = (entry.meta or {}).get("usage_date") if (entry.meta or {}).get("late") else None
    return month_start(usage if isinstance(usage, date) else entry.date)


def _month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


CatchUpKey = tuple[date, str, tuple[str, ...]]  # usage month, customer, sorted links


def catch_up(regenerated: Sequence[data.Directive], recorded: Sequence[data.Directive], *,
             first_open: date, rules_hash: str) -> tuple[list[data.Directive], list[data.Transaction]]:
    """Split regenerated entries around the seal: what to write, and late adjustments.

    Sealed months are never rewritten (DESIGN "Sealed periods are immutable"),
    so whatever regeneration now puts before ``first_open`` — usage that arrived
    late for a non-invoiced cycle, an invoice issued later for a sealed date —
    and the late entries of invoiced cycles whose usage is in a sealed month are
    compared with what the sealed files (``recorded``) hold, per usage month,
    customer, links, account, meter and currency. Each non-zero difference
    becomes a late adjustment dated ``first_open``, one transaction per usage
    month, customer and links (so ``^acme-2026-10-01`` still finds it)::

        2026-11-01 * "acme" "Late adjustment for sealed period 2026-10" ^acme-2026-10-01
          customer: "acme"
          cycle: "2026-10-01/2026-11-01"
          late: TRUE
          usage_date: 2026-10-31
          Assets:Receivables:Unbilled:Acme   0.05 USD
          Income:Usage:Api-Calls            -0.05 USD
            meter: "api_calls"

    Earlier adjustments are part of the record (keyed by their ``usage_date``),
    so the next run posts only what is still missing: nothing when nothing
    changed. Each group holds whole entries, so each adjustment balances.
    """
    write: list[data.Directive] = []
    sums: dict[CatchUpKey, dict[tuple[str, str, str], Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    cycles: dict[CatchUpKey, set[str]] = defaultdict(set)

    def add(entry: data.Transaction, sign: int) -> None:
        meta = entry.meta or {}
        key = (usage_month(entry), str(meta.get("customer", entry.payee or "")), tuple(sorted(entry.links or ())))
        for cycle in str(meta.get("cycle") or "").split(","):
            if cycle:
                cycles[key].add(cycle)
        for p in entry.postings:
            if p.units is None or not isinstance(p.units.number, Decimal):
                continue
            meter = str((p.meta or {}).get("meter", ""))
            sums[key][(p.account, meter, p.units.currency)] += sign * p.units.number

    for entry in regenerated:
        if entry.date < first_open:
            if isinstance(entry, data.Transaction):
                add(entry, +1)
        elif isinstance(entry, data.Transaction) and usage_month(entry) < first_open:
            add(entry, +1)  # a late entry of an invoiced cycle whose usage is sealed
        else:
            write.append(entry)
    for entry in recorded:
        if isinstance(entry, data.Transaction) and entry.date < first_open:
            add(entry, -1)

    adjustments: list[data.Transaction] = []
    for key in sorted(sums):
        month, customer, links = key
        postings = []
        for (account_name, meter, currency), number in sorted(sums[key].items()):
            if number:
                meta = {"meter": meter} if meter else None
                postings.append(data.Posting(account_name, Amount(number, currency), None, None, None, meta))
        if not postings:
            continue
        period = f"{month.year:04d}-{month.month:02d}"
        cycle = ",".join(sorted(cycles[key])) or None
        adjustments.append(data.Transaction(
            _meta(customer=customer or None, cycle=cycle, rules=rules_hash, usage_date=_month_end(month), late=True),
            first_open, FLAG, customer or None, f"Late adjustment for sealed period {period}",
            frozenset(), frozenset(links), postings,
        ))
    return write, adjustments
