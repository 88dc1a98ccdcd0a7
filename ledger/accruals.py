"""Accrual points: what a cycle's rating says the books must hold.

:func:`targets` gives a cycle's cumulative balances at a rated point (usage
revenue per meter, unbilled, contract asset, deferred, fee and commitment
revenue); :func:`snapshot` freezes them into the
:class:`~ledger.facts.invoices.Snapshot` an invoice keeps; :func:`plan_points`
chooses, per cycle, the live snapshots or the frozen ones of an invoiced cycle,
and the late differences between them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.facts.invoices import Snapshot
from ledger.money import ZERO
from ledger.rating import CycleRating, Rating

if TYPE_CHECKING:
    from ledger.facts.invoices import Invoice


def split_credit(rated: CycleRating) -> tuple[Decimal, Decimal]:
    """Credit applied to final-price usage first (unbilled), then to the rest (contract asset)."""
    final = min(rated.credit_applied, rated.final_usage)
    return final, rated.credit_applied - final


def targets(rated: CycleRating) -> dict[str, Decimal]:
    """The cumulative balances a cycle's accruals must have reached at ``rated.through``."""

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
        link=rated.cycle.link,
        customer=rated.cycle.customer,
        cycle=rated.cycle.key,
        plan=rated.cycle.plan,
        through=rated.through,
        currency=rated.currency,
        targets=tuple(sorted(targets(rated).items())),
        quantities=tuple(sorted(quantities.items())),
        evidence=evidence,
    )


def plan_points(
    rating: Rating,
    invoices: Sequence[Invoice],
    *,
    first_open: date,
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
            live[rated.cycle.link].append(
                snapshot(rated, evidence.get((rated.cycle.link, rated.through), ""))
            )
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
