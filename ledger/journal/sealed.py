"""Sealed months: what changed behind the seal, posted on the first open day.

Sealed months are never regenerated. :func:`catch_up` compares what would now be
posted before the first open day with the sealed files and posts the difference
(late usage, a re-pricing) as late adjustments on that day, ``late: TRUE`` with
the ``usage_date`` they belong to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal

from beancount.core import data
from beancount.core.amount import Amount

from ledger.journal.meta import FLAG, entry_meta, entry_quantities, usage_meta
from ledger.money import ZERO
from ledger.period import first_of_month, last_of_month, month_of

#: usage month, customer, sorted links
CatchUpKey = tuple[date, str, tuple[str, ...]]


def _usage_day(entry: data.Directive) -> date:
    usage = (entry.meta or {}).get("usage_date") if (entry.meta or {}).get("late") else None
    return usage if isinstance(usage, date) else entry.date


def usage_month(entry: data.Directive) -> date:
    """The first day of the month an entry's amounts belong to: its ``usage_date``'s
    month for a late adjustment, else its own date's month."""
    return first_of_month(_usage_day(entry))


def _book_order(entry: data.Transaction) -> tuple[date, bool, date, str]:
    """The order in which a cycle's entries build its figures (``meterbook trace`` reads them
    the same way): by usage date, an accrual before the late entries that adjust it."""
    return (
        _usage_day(entry),
        bool((entry.meta or {}).get("late")),
        entry.date,
        entry.narration or "",
    )


def catch_up(
    regenerated: Sequence[data.Directive],
    recorded: Sequence[data.Directive],
    *,
    first_open: date,
    rules_hash: str,
) -> tuple[list[data.Directive], list[data.Transaction]]:
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
          meter: "api_calls"
          quantities: "api_calls=1"
          rules: "…"
          evidence: "bc5bffaf4c37e354"
          usage_date: 2026-10-31
          late: TRUE
          Assets:Receivables:Unbilled:Acme   0.05 USD
          Income:Usage:Api-Calls            -0.05 USD
            meter: "api_calls"
            quantity: 1

    When every meter's change is a known 0 and the amounts still moved, the terms
    changed, not the usage (a plan version added for a sealed accrual of a cycle
    not invoiced yet, e.g. by ``rerate``'s version): the adjustment is a
    re-pricing, ``"Re-pricing of sealed period 2026-10: same quantities, current
    terms"`` with ``repriced: TRUE``, its ``quantities`` the (zero) change and no
    per-posting ``quantity`` (no usage arrived).

    For a cycle's adjustment (one cycle link) the quantities are the change per
    meter: the cumulative quantity regeneration now holds through the month
    minus the one the books hold (:func:`cumulative_quantities` of each side's
    entries of the cycle up to that month), so sealed figures plus adjustments
    read as the store's. A meter whose recorded figure is unknown (sealed books
    written before ``quantities``) gets none: a guess would be worse than a gap.
    ``evidence`` is the regenerated digest at the latest accrual point of the
    month (its accrual or late entry); none when regeneration posts no entry at
    that point. Adjustments of other links (invoices, payments) carry neither.

    Earlier adjustments are part of the record (keyed by their ``usage_date``),
    so the next run posts only what is still missing: nothing when nothing
    changed. Each group holds whole entries, so each adjustment balances.
    """
    write: list[data.Directive] = []
    sums: dict[CatchUpKey, dict[tuple[str, str, str], Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    cycles: dict[CatchUpKey, set[str]] = defaultdict(set)
    latest: dict[
        CatchUpKey, data.Transaction
    ] = {}  # the group's last regenerated entry with evidence
    history: dict[tuple[int, str], list[data.Transaction]] = defaultdict(
        list
    )  # (side, cycle link) → entries

    def add(entry: data.Transaction, sign: int) -> None:
        meta = entry.meta or {}
        key = (
            usage_month(entry),
            str(meta.get("customer", entry.payee or "")),
            tuple(sorted(entry.links or ())),
        )
        for cycle in str(meta.get("cycle") or "").split(","):
            if cycle:
                cycles[key].add(cycle)
        for p in entry.postings:
            if p.units is None or not isinstance(p.units.number, Decimal):
                continue
            meter = str((p.meta or {}).get("meter", ""))
            sums[key][(p.account, meter, p.units.currency)] += sign * p.units.number
        if len(key[2]) == 1:
            history[(sign, key[2][0])].append(entry)
        if (
            sign > 0
            and meta.get("evidence")
            and (key not in latest or _book_order(entry) > _book_order(latest[key]))
        ):
            latest[key] = entry

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

    def changes(month: date, link: str) -> list[tuple[str, Decimal]]:
        now, then = (
            cumulative_quantities(e for e in history[(side, link)] if usage_month(e) <= month)
            for side in (+1, -1)
        )
        out = []
        for meter, quantity in sorted(now.items()):
            # the sealed books hold no entry of the cycle when it priced to nothing (a free tier
            # posts no accrual): its figure then is unknown, not 0 — no quantity is invented
            before = then.get(meter) if then else None
            if quantity is not None and before is not None:
                out.append((meter, quantity - before))
        return out

    adjustments: list[data.Transaction] = []
    for key in sorted(sums):
        month, customer, links = key
        quantities = dict(changes(month, links[0])) if len(links) == 1 else {}
        # every meter's quantity known and unchanged, yet the amounts moved: the terms changed
        # (a plan version added for a cycle not invoiced yet), not the usage
        repriced = bool(quantities) and not any(quantities.values())
        postings = []
        for (account_name, meter, currency), number in sorted(sums[key].items()):
            if number:
                meta: dict[str, object] | None = None
                if meter:
                    meta = {"meter": meter}
                    if meter in quantities and not repriced:
                        meta["quantity"] = quantities[meter]
                postings.append(
                    data.Posting(account_name, Amount(number, currency), None, None, None, meta)
                )
        if not postings:
            continue
        period = month_of(month)
        cycle = ",".join(sorted(cycles[key])) or None
        evidence = (latest[key].meta or {}).get("evidence") if key in latest else None
        adjustments.append(
            data.Transaction(
                entry_meta(
                    customer=customer or None,
                    cycle=cycle,
                    **usage_meta(sorted(quantities.items())),
                    rules=rules_hash,
                    evidence=evidence,
                    usage_date=last_of_month(month),
                    late=True,
                    repriced=True if repriced else None,
                ),
                first_open,
                FLAG,
                customer or None,
                (
                    f"Re-pricing of sealed period {period}: same quantities, current terms"
                    if repriced
                    else f"Late adjustment for sealed period {period}"
                ),
                frozenset(),
                frozenset(links),
                postings,
            )
        )
    return write, adjustments


def cumulative_quantities(entries: Iterable[data.Transaction]) -> dict[str, Decimal | None]:
    """Per meter, the cycle-to-date quantity a cycle's entries hold at the last of them.

    An accrual sets its meters' cumulative figures; a late entry adds its
    changes. A meter an entry names without a figure (a free meter in books
    written before ``quantities`` existed, a catch-up whose change could not be
    derived) is unknown (None) until the next accrual sets it again.
    """
    result: dict[str, Decimal | None] = {}
    for entry in sorted(entries, key=_book_order):
        late = bool((entry.meta or {}).get("late"))
        for meter, quantity in entry_quantities(entry).items():
            if not late:
                result[meter] = quantity
            else:
                before = result.get(meter, ZERO)
                result[meter] = None if before is None or quantity is None else before + quantity
    return result
