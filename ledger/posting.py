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

Every usage entry names its meters and their quantities (DESIGN "Every posting
is traceable"): ``meter`` lists the cycle's meters, ``quantities`` gives each
one's figure (``"api_calls=1234,storage_gb=12.5"``, in ``meter`` order) — the
cumulative cycle-to-date quantity on an accrual, the change on a late entry —
so a free-tier meter whose amount did not move is still on record; a revenue
posting repeats its meter's figure as ``quantity``. ``evidence`` is the digest
of the events behind the accrual point (:meth:`ledger.session.Session.evidence`);
an invoice's ``evidence`` is :func:`invoice_evidence` over the accruals it froze.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from beancount.core import data
from beancount.core.amount import Amount

from ledger.errors import BadInput
from ledger.facts.invoices import Snapshot
from ledger.money import ZERO
from ledger.rating import CreditMovement, CycleRating, Rating, grant_key
from ledger.rules import Rules
from ledger.tax import tax_postings

if TYPE_CHECKING:
    from ledger.facts.invoices import Invoice

FLAG = "*"


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


@dataclass(frozen=True)
class Books:
    """Everything posting produces, ready for the books writer."""

    entries: tuple[data.Directive, ...]
    documents: Mapping[str, str] = field(default_factory=dict)  # relative path → content


def format_quantities(quantities: Iterable[tuple[str, Decimal]]) -> str:
    """The ``quantities`` metadata: ``meter=quantity`` pairs in the order given, fixed-point.

    >>> format_quantities([("api_calls", Decimal(1234)), ("storage_gb", Decimal("12.5"))])
    'api_calls=1234,storage_gb=12.5'
    """
    return ",".join(f"{meter}={format(quantity, 'f')}" for meter, quantity in quantities)


def parse_quantities(text: str) -> dict[str, Decimal]:
    """The inverse of :func:`format_quantities` (meter ids hold no ``,`` or ``=``).

    >>> parse_quantities("api_calls=1234,storage_gb=12.5")
    {'api_calls': Decimal('1234'), 'storage_gb': Decimal('12.5')}
    """
    out: dict[str, Decimal] = {}
    for item in text.split(","):
        meter, _, value = item.partition("=")
        try:
            number = Decimal(value)
        except ArithmeticError:
            number = Decimal("NaN")
        if not meter or not number.is_finite():
            raise ValueError(f"{item!r} is not meter=quantity")
        out[meter] = number
    return out


def _usage_meta(quantities: Sequence[tuple[str, Decimal]]) -> dict[str, object]:
    """``meter`` and ``quantities`` for an entry naming these meters (none: neither key)."""
    if not quantities:
        return {}
    return {
        "meter": ",".join(m for m, _ in quantities),
        "quantities": format_quantities(quantities),
    }


def entry_quantities(entry: data.Transaction) -> dict[str, Decimal | None]:
    """Per meter an entry names: the quantity it records, None when it names the meter without one.

    Read from the transaction's ``quantities`` (every meter of ``meter``) and,
    for entries written before it existed, the revenue postings' ``quantity``.
    Cumulative on an accrual, the change on a late entry (``late: TRUE``).
    """
    meta = entry.meta or {}
    found: dict[str, Decimal | None] = {
        m: None for m in str(meta.get("meter") or "").split(",") if m
    }
    for p in entry.postings:
        meter, quantity = (p.meta or {}).get("meter"), (p.meta or {}).get("quantity")
        if isinstance(meter, str) and meter:
            found[meter] = quantity if isinstance(quantity, Decimal) else found.get(meter)
    listed = meta.get("quantities")
    if isinstance(listed, str):
        try:
            found.update(parse_quantities(listed))
        except ValueError as error:  # a hand-edited file: name the line, as bean-check would
            raise BadInput(
                f"{meta.get('filename', '<books>')}:{meta.get('lineno', 0)}: quantities: {error}"
            ) from None
    return found


def _signed_postings(
    rules: Rules,
    customer: str,
    currency: str,
    deltas: Mapping[str, Decimal],
    quantities: Mapping[str, Decimal],
) -> list[data.Posting]:
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
    return {
        "filename": "<meterbook>",
        "lineno": 0,
        **{k: v for k, v in values.items() if v is not None},
    }


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
        postings = _signed_postings(
            rules, snap.customer, snap.currency, deltas, dict(snap.quantities)
        )
        if not postings:
            continue
        # every meter the cycle charges, priced or not: a free tier posts no revenue but
        # its quantity is still what the customer used (and what the evidence covers)
        entries.append(
            data.Transaction(
                _meta(
                    customer=snap.customer,
                    cycle=snap.cycle,
                    **_usage_meta(snap.quantities),
                    rules=rules.hash,
                    evidence=snap.evidence or None,
                ),
                snap.through,
                FLAG,
                snap.customer,
                f"Usage accrual {snap.cycle} through {snap.through.isoformat()}",
                frozenset(),
                frozenset({snap.link}),
                postings,
            )
        )
    return entries


def late_entries(
    late: Sequence[tuple[Snapshot, Snapshot, date]], rules: Rules
) -> list[data.Transaction]:
    """Late usage: targets now − targets frozen by the invoice, dated in the first open month."""
    entries = []
    for now, frozen, day in late:
        a, b = dict(now.targets), dict(frozen.targets)
        deltas = {k: a.get(k, ZERO) - b.get(k, ZERO) for k in set(a) | set(b)}
        was = dict(frozen.quantities)
        quantities = {
            m: q - was.get(m, ZERO) for m, q in now.quantities
        }  # the change, as the amounts
        postings = _signed_postings(rules, now.customer, now.currency, deltas, quantities)
        if postings:
            entries.append(
                data.Transaction(
                    _meta(
                        customer=now.customer,
                        cycle=now.cycle,
                        **_usage_meta(sorted(quantities.items())),
                        rules=rules.hash,
                        evidence=now.evidence or None,
                        usage_date=now.through,
                        late=True,
                    ),
                    day,
                    FLAG,
                    now.customer,
                    f"Late usage for invoiced cycle {now.cycle}",
                    frozenset(),
                    frozenset({now.link}),
                    postings,
                )
            )
    return entries


def invoice_evidence(invoice: Invoice) -> str:
    r"""The evidence of everything an invoice billed from metered usage: sha256 over one
    ``<cycle link>\t<accrual date>\t<evidence>\n`` line per accrual snapshot it froze, in
    (link, date) order, first 16 hex digits; "" when it froze none or one has no evidence.

    The snapshots are the ``accruals`` of its JSON document, so anyone can recompute it::

        jq -r '.accruals | sort_by(.link, .through)[] | "\(.link)\t\(.through)\t\(.evidence)"' \
            books/documents/INV-2026-000007.json | sha256sum | cut -c1-16

    Late-usage lines are not in it: their evidence is on the late entries they bill.
    """
    accruals = sorted(invoice.accruals, key=lambda a: (a.link, a.through))
    if not accruals or not all(a.evidence for a in accruals):
        return ""
    lines = "".join(f"{a.link}\t{a.through.isoformat()}\t{a.evidence}\n" for a in accruals)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def invoice_entries(
    invoices: Sequence[Invoice], rules: Rules, documents_dir: str = "../documents"
) -> list[data.Directive]:
    """Receivable / what each invoice settles, plus a document directive for Fava.

    Document paths are relative to the month file (``books/YYYY/``) that holds them.
    """
    entries: list[data.Directive] = []
    for inv in invoices:
        receivable = rules.account("receivable", customer=inv.customer)
        postings = [
            data.Posting(receivable, Amount(inv.total, inv.currency), None, None, None, None)
        ]
        for key in ("unbilled", "contract_asset", "deferred"):
            amount = inv.settles(key)
            if amount:
                postings.append(
                    data.Posting(
                        rules.account(key, customer=inv.customer),
                        Amount(-amount, inv.currency),
                        None,
                        None,
                        None,
                        None,
                    )
                )
        # Tax is owed to the jurisdiction, never revenue: Cr Liabilities:Tax:{jurisdiction}
        for account, amount in tax_postings(inv.tax, rules, inv.currency):  # (ledger.tax)
            tax = Amount(amount, inv.currency)
            postings.append(data.Posting(account, tax, None, None, None, None))
        links = frozenset({inv.number, *inv.cycles})
        entries.append(
            data.Transaction(
                _meta(
                    customer=inv.customer,
                    invoice=inv.number,
                    due=inv.due,
                    rules=inv.rules,
                    cycle=",".join(sorted({ln.cycle for ln in inv.lines if ln.cycle})) or None,
                    evidence=invoice_evidence(inv) or None,
                ),
                inv.date,
                FLAG,
                inv.customer,
                f"Invoice {inv.number}",
                frozenset(),
                links,
                postings,
            )
        )
        entries.append(
            data.Document(
                _meta(),
                inv.date,
                receivable,
                f"{documents_dir}/{inv.number}.html",
                frozenset(),
                frozenset({inv.number}),
            )
        )
    return entries


def grant_invoices(invoices: Iterable[Invoice]) -> dict[tuple[str, str], str]:
    """``(customer, grant key) → number`` of the issued invoice that billed each prepaid grant.

    A grant is billed on the customer's invoice dated its grant date, one
    ``credit_grant`` line per grant of that day in rules order, so the n-th such
    line bills grant ``"<date>#n"`` (:func:`ledger.rating.grant_key`; credit
    notes name grants the same way).
    """
    found: dict[tuple[str, str], str] = {}
    for inv in invoices:
        grants = [ln for ln in inv.lines if ln.kind == "credit_grant"]
        for n in range(1, len(grants) + 1):
            found[(inv.customer, f"{inv.date.isoformat()}#{n}")] = inv.number
    return found


def breakage_entries(
    movements: Sequence[CreditMovement], rules: Rules, invoices: Sequence[Invoice] = ()
) -> list[data.Transaction]:
    """Credit left at expiry: deferred revenue → breakage revenue, one entry per grant and day.

    Dated the expiry date (or the accrual point where usage that fell hands back
    credit drawn from an expired grant). The entry names the grant (``grant``,
    its key ``"<granted>#<n>"``, and ``expires``) and the invoice that sold it
    (``grant_invoice`` and its link), so ``^INV-…`` shows the grant's whole life.
    The key is ``grant_invoice``, not ``invoice``: ``invoice`` marks an invoice's
    own transaction for the reports, Fava and ``trace``. No invoice issued for the
    grant yet (posting ahead of ``invoice``): no link, nothing invented::

        2026-10-15 * "cr" "Prepaid credit expired (breakage)" ^INV-2026-000003
          customer: "cr"
          grant: "2026-09-01#1"
          expires: 2026-10-15
          grant_invoice: "INV-2026-000003"
          rules: "…"
          Liabilities:Deferred-Revenue:Cr   4.00 USD
          Income:Credit-Breakage           -4.00 USD
    """
    totals: dict[tuple[str, date, int], Decimal] = defaultdict(lambda: ZERO)
    for m in movements:
        if m.kind == "breakage":
            totals[(m.customer, m.day, m.grant)] += m.amount
    billed = grant_invoices(invoices)
    entries = []
    for (customer, day, index), amount in sorted(totals.items()):
        grants = rules.customers[customer].credits
        currency = rules.customers[customer].currency
        key = grant_key(grants, index)
        number = billed.get((customer, key))
        entries.append(
            data.Transaction(
                _meta(
                    customer=customer,
                    grant=key,
                    expires=grants[index].expires,
                    grant_invoice=number,
                    rules=rules.hash,
                ),
                day,
                FLAG,
                customer,
                "Prepaid credit expired (breakage)",
                frozenset(),
                frozenset({number} if number else ()),
                [
                    data.Posting(
                        rules.account("deferred", customer=customer),
                        Amount(amount, currency),
                        None,
                        None,
                        None,
                        None,
                    ),
                    data.Posting(
                        rules.account("breakage_revenue"),
                        Amount(-amount, currency),
                        None,
                        None,
                        None,
                        None,
                    ),
                ],
            )
        )
    return entries


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


def post(
    rating: Rating,
    rules: Rules,
    invoices: Sequence[Invoice],
    *,
    first_open: date,
    evidence: Mapping[tuple[str, date], str] | None = None,
) -> list[data.Directive]:
    """Every generated entry through the rating's date."""
    points, late = plan_points(rating, invoices, first_open=first_open, evidence=evidence)
    entries: list[data.Directive] = []
    entries.extend(accrual_entries(points, rules))
    entries.extend(late_entries(late, rules))
    entries.extend(invoice_entries(invoices, rules))
    entries.extend(breakage_entries(rating.credits, rules, invoices))
    return entries


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_day(day: date) -> date:
    return day + timedelta(days=1)


# --- after the close: catch-up of sealed months -----------------------------------------


def _usage_day(entry: data.Directive) -> date:
    usage = (entry.meta or {}).get("usage_date") if (entry.meta or {}).get("late") else None
    return usage if isinstance(usage, date) else entry.date


def usage_month(entry: data.Directive) -> date:
    """The first day of the month an entry's amounts belong to: its ``usage_date``'s
    month for a late adjustment, else its own date's month."""
    return month_start(_usage_day(entry))


def _month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


CatchUpKey = tuple[date, str, tuple[str, ...]]  # usage month, customer, sorted links


def _book_order(entry: data.Transaction) -> tuple[date, bool, date, str]:
    """The order in which a cycle's entries build its figures (``meterbook trace`` reads them
    the same way): by usage date, an accrual before the late entries that adjust it."""
    return (
        _usage_day(entry),
        bool((entry.meta or {}).get("late")),
        entry.date,
        entry.narration or "",
    )


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
        period = f"{month.year:04d}-{month.month:02d}"
        cycle = ",".join(sorted(cycles[key])) or None
        evidence = (latest[key].meta or {}).get("evidence") if key in latest else None
        adjustments.append(
            data.Transaction(
                _meta(
                    customer=customer or None,
                    cycle=cycle,
                    **_usage_meta(sorted(quantities.items())),
                    rules=rules_hash,
                    evidence=evidence,
                    usage_date=_month_end(month),
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
