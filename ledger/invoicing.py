"""Invoices: drafted from the rating on their invoice dates, issued once, numbered.

On 2026-10-15 acme's cycle ``[2026-09-15, 2026-10-15)`` ends and the next one
starts, so one invoice carries both (DESIGN "Invoice date")::

    INV-2026-000007  acme  2026-10-15  USD
      usage       api_calls 25,000 calls (tiers …)            15.00   clears unbilled
      usage       storage_gb 12.5 GB                            1.25   clears unbilled
      commitment  minimum 100.00 − usage 16.25                 83.75   clears unbilled
      base fee    pro 2026-10-15/2026-11-15 (in advance)       49.00   → deferred revenue
                                                     total    149.00   → receivable

Every line names the account it settles (``unbilled``, ``contract_asset`` or
``deferred``), so the invoice transaction is receivable / those accounts and the
cycle's unbilled and contract-asset balances are exactly 0 afterwards.
Issued invoices are facts kept in the store: numbers ``INV-YYYY-NNNNNN`` are
sequential per workspace, never reused, and the unique key customer + date
(+ kind, for a supplementary invoice) makes issuing the same invoice twice
impossible.

Late usage of an invoiced cycle and a rerate's debit adjustments wait in
unbilled for the customer's next invoice. A customer whose subscriptions have
all ended has none, so once they have ended the waiting lines get a
*supplementary* invoice of their own (:func:`supplement`)::

    INV-2026-000009  gone  2026-09-19  USD  (supplementary)
      late_usage  late usage for 2026-09-01/2026-09-18          2.00   clears unbilled
                                                     total     2.00   → receivable
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, func, select

from ledger.accruals import (
    Inclusion,
    fee_as_accrued,
    late_targets,
    plan_points,
    snapshot,
    split_credit,
)
from ledger.facts.adjustments import Adjustment, by_document
from ledger.facts.invoices import (
    REGULAR,
    SUPPLEMENTARY,
    TOPUP,
    Invoice,
    InvoiceLine,
    Snapshot,
)
from ledger.money import ZERO
from ledger.rating import CycleRating, Rating
from ledger.rules import Customer, Rules, WalletGrant, invoice_threshold
from ledger.store import invoices as invoices_table

if TYPE_CHECKING:
    from ledger.cycles import Cycle
    from ledger.rules import Rules


def discount_lines(rated: CycleRating, part: str, account: str) -> list[InvoiceLine]:
    """The lines of the discounts on one part of a cycle (negative, settling what the part's line
    settles), to follow that line (:mod:`ledger.discounts`)."""
    cycle = rated.cycle
    return [
        InvoiceLine(
            kind="discount",
            description=d.label,
            account=account,
            amount=-d.amount,
            cycle=cycle.key,
            link=cycle.link,
            meter=part.partition(":")[2],
            on=part,
        )
        for d in rated.discounts
        if d.part == part and d.account == account
    ]


def _with_discounts(rated: CycleRating, lines: list[InvoiceLine]) -> list[InvoiceLine]:
    """``lines`` (one cycle's arrears lines), each followed by its discounts."""
    if not rated.discounts:
        return lines
    out = []
    for line in lines:
        out.append(line)
        if line.kind == "usage":
            out += discount_lines(rated, f"usage:{line.meter}", line.account)
        elif line.kind in ("commitment", "base_fee"):
            out += discount_lines(rated, line.kind, line.account)
    return out


def cycle_lines(rated: CycleRating, rules: Rules) -> list[InvoiceLine]:
    """The arrears lines of a cycle at its last accrual point (usage, commitment,
    arrears base fee, each followed by its discounts; credits applied)."""
    cycle = rated.cycle
    lines = [
        InvoiceLine(
            kind="usage",
            description=f"{c.meter} ({c.model})",
            account="unbilled" if c.final else "contract_asset",
            amount=c.amount,
            meter=c.meter,
            quantity=c.quantity,
            unit=rules.meters[c.meter].unit,
            tiers=c.lines,
            cycle=cycle.key,
            link=cycle.link,
        )
        for c in rated.charges
    ]
    if rated.commitment_shortfall:
        lines.append(
            InvoiceLine(
                kind="commitment",
                description="minimum commitment shortfall",
                account="unbilled",
                amount=rated.commitment_shortfall,
                cycle=cycle.key,
                link=cycle.link,
            )
        )
    if rated.base_fee is not None and rated.base_fee.timing == "arrears" and rated.base_fee.billed:
        lines.append(
            InvoiceLine(
                kind="base_fee",
                description=f"{cycle.plan} base fee (in arrears)",
                account="unbilled",
                amount=rated.base_fee.billed,
                cycle=cycle.key,
                link=cycle.link,
            )
        )
    lines = _with_discounts(rated, lines)
    final_credit, nonfinal_credit = split_credit(rated)
    if final_credit:
        lines.append(
            InvoiceLine(
                kind="credit_applied",
                description="prepaid credit applied",
                account="unbilled",
                amount=-final_credit,
                cycle=cycle.key,
                link=cycle.link,
            )
        )
    if nonfinal_credit:
        lines.append(
            InvoiceLine(
                kind="credit_applied",
                description="prepaid credit applied",
                account="contract_asset",
                amount=-nonfinal_credit,
                cycle=cycle.key,
                link=cycle.link,
            )
        )
    return lines


#: The line kinds a threshold invoice bills of a cycle (its deductions included).
THRESHOLD_KINDS = ("usage", "discount", "credit_applied", "threshold_billed")


def billed_by_threshold(link: str, issued: Iterable[Invoice]) -> list[InvoiceLine]:
    """What the threshold invoices of cycle ``link`` billed, as the lines that deduct it: one
    per invoice and account it settled, negative, in issue order (:func:`threshold_lines`).

    Each threshold invoice bills the cycle's usage through the day before its date, less what
    the earlier ones billed; the invoice after it (threshold or cycle end) bills the cycle's
    cumulative lines and deducts it again, so the cycle's invoices add up to its price however
    it is rated (a volume price that falls as usage grows makes a later invoice smaller, even
    negative)."""
    out = []
    for inv in issued:
        if not any(snap.link == link for snap in inv.progress):
            continue
        for account in ("unbilled", "contract_asset"):
            mine = [
                line
                for line in inv.lines
                if line.link == link and line.account == account and line.kind in THRESHOLD_KINDS
            ]
            amount = sum((line.amount for line in mine), ZERO)
            booked = sum((line.booked for line in mine), ZERO)
            if amount or booked:
                out.append(
                    InvoiceLine(
                        kind="threshold_billed",
                        description=f"usage billed on {inv.number} of {inv.date.isoformat()} "
                        "(threshold invoice)",
                        account=account,
                        amount=-amount,
                        cycle=mine[0].cycle if mine else "",
                        link=link,
                        net=-booked if booked != amount else None,
                    )
                )
    return out


def threshold_lines(
    rated: CycleRating, rules: Rules, issued: Iterable[Invoice]
) -> list[InvoiceLine]:
    """What a threshold invoice bills of a cycle rated through the day before its date: the
    usage charges with their discounts and prepaid credit applied, cumulative (the base fee in
    arrears and the minimum commitment wait for the cycle's end), less what earlier threshold
    invoices billed.

    acme's threshold is 100.00; on Sep 11 its cycle ``[Sep 1, Oct 1)`` has 120.00 of API
    calls through Sep 10 (an earlier threshold invoice, INV-…-000004 of Sep 6, billed 104.00)::

        usage             api_calls through 2026-09-10       120.00   clears unbilled
        threshold_billed  usage billed on INV-…-000004       -104.00   clears unbilled

    16.00 does not reach 100.00: no invoice. The cycle-end invoice of Oct 1 bills the whole
    cycle's lines and deducts the 104.00."""
    lines = [
        line
        for line in cycle_lines(rated, rules)
        if line.kind in ("usage", "credit_applied")
        or (line.kind == "discount" and line.on.startswith("usage:"))  # a discount on usage
    ]
    return [*lines, *billed_by_threshold(rated.cycle.link, issued)]


def net_lines(lines: Iterable[InvoiceLine], included: Inclusion | None) -> list[InvoiceLine]:
    """A cycle's lines with what the books hold of each (:attr:`InvoiceLine.net`) when its
    prices include tax (``included``, :class:`ledger.accruals.Inclusion`): the amount less the tax
    it holds, as the accruals posted it (:func:`ledger.accruals.net_targets`). Prepaid credit
    applied is booked as billed."""
    if included is None:
        return list(lines)
    out = []
    for line in lines:
        net = line.amount
        if line.kind == "usage":
            net = included.net(f"usage:{line.meter}", line.amount)
        elif line.kind == "commitment":
            net = included.net("commitment", line.amount)
        elif line.kind == "base_fee" and line.account == "deferred":
            net = included.advance_fee(line.amount)
        elif line.kind == "base_fee":
            net = included.net("base_fee", line.amount)
        elif line.kind == "discount":  # as the accruals net it (ledger.accruals.net_targets)
            net = included.net(line.on, line.amount)
        out.append(replace(line, net=net) if net != line.amount else line)
    return out


def draft_invoices(
    rating: Rating,
    rules: Rules,
    issued: Sequence[Invoice],
    *,
    through: date,
    first_open: date = date.min,
    evidence: Mapping[tuple[str, date], str] | None = None,
    redrafting: Invoice | None = None,
    included: Mapping[str, Inclusion] | None = None,
    before: Rating | None = None,
) -> list[Invoice]:
    """Every invoice dated on or before ``through`` that is not issued yet.

    ``before``: the customers with an invoice threshold rated through the day before
    ``through`` (what a threshold invoice dated ``through`` bills); None: ``rating``'s own
    cycles rated on that day, if any.

    ``included``: per cycle link, the tax its tax-inclusive prices hold
    (:func:`ledger.tax.included_taxes`): the accruals it freezes and its lines are net of it.

    ``redrafting``: an issued invoice being recomputed (``trace``): cycles whose
    accruals it froze from an earlier, unbilled day come back onto it, as they
    did when it was issued (:func:`_redate_sealed`), however many months were
    sealed since; it bills a cycle by threshold exactly when it did.

    Threshold invoicing (an ``invoice_threshold`` of the customer or the plan): a cycle
    running on ``through`` (not its first day) whose usage through the day before, less
    what earlier threshold invoices billed, reaches the threshold gets its
    :func:`threshold_lines` on the customer's invoice dated ``through``, which freezes the
    cycle's accrual of that day (``progress``); never dated in a sealed month. The
    cycle-end invoice deducts what they billed (:func:`billed_by_threshold`).

    One invoice per customer and invoice date: the ending cycles' arrears
    lines, the starting cycles' advance base fees, credit grants of the day,
    and late usage of earlier invoiced cycles not billed yet. Late usage that
    no invoice of the customer takes, once all its subscriptions have ended by
    ``through``, gets a supplementary invoice (:func:`supplement`).
    """
    evidence = {} if evidence is None else evidence  # (Digests of no accrual point is falsy)
    included = included or {}
    issued_keys = {inv.key for inv in issued}
    # a cycle whose accruals an issued invoice froze is billed (late usage aside), whatever that
    # invoice's date
    frozen = {snap.link for inv in issued for snap in inv.accruals}
    # an advance fee or a grant moved out of a sealed month (:func:`_redate_sealed`) was billed
    # on another day's invoice: billed once, never again on the next first open day
    fees = {
        line.link
        for inv in issued
        for line in inv.lines
        if line.kind == "base_fee" and line.account == "deferred" and line.link
    }
    grants = Counter(
        (inv.customer, line.description, line.amount)
        for inv in issued
        for line in inv.lines
        if line.kind == "credit_grant"
    )
    lines: dict[tuple[str, date], list[InvoiceLine]] = defaultdict(list)
    accruals: dict[tuple[str, date], list[Snapshot]] = defaultdict(list)
    progress: dict[tuple[str, date], list[Snapshot]] = defaultdict(list)
    # per cycle, the days its threshold invoices froze (the cycle-end invoice freezes the others)
    progressed: dict[str, set[date]] = defaultdict(set)
    for inv in issued:
        for snap in inv.progress:
            progressed[snap.link].add(snap.through)
    unproven: set[int] = set()  # the snapshots made here, their evidence not read yet

    def proven(snap: Snapshot) -> Snapshot:
        if id(snap) not in unproven:
            return snap  # one an earlier invoice froze (``redrafting``), evidence and all
        return replace(snap, evidence=evidence.get((snap.link, snap.through), ""))

    points: dict[str, list[CycleRating]] = defaultdict(list)
    for rated in rating.cycles:
        points[rated.cycle.link].append(rated)
    # the day before ``through``, what threshold invoices bill
    eve = through - timedelta(days=1)
    day_before = {r.cycle.link: r for r in rating.cycles if r.through == eve}
    day_before.update(
        {r.cycle.link: r for r in (before.cycles if before is not None else ()) if r.through == eve}
    )
    for ratings in points.values():
        rated = ratings[-1]
        cycle = rated.cycle
        mine = included.get(cycle.link)
        if rated.is_cycle_end and cycle.end <= through and cycle.link not in frozen:
            body = [*cycle_lines(rated, rules), *billed_by_threshold(cycle.link, issued)]
            lines[(cycle.customer, cycle.end)].extend(net_lines(body, mine))
            # evidence added below, for the invoices issued only (a zero draft is dropped)
            fresh = [
                snapshot(r, "", mine)
                for r in ratings
                if r.through in cycle.accrual_points() and r.through not in progressed[cycle.link]
            ]
            unproven.update(id(snap) for snap in fresh)
            accruals[(cycle.customer, cycle.end)].extend(fresh)
        fee = rated.base_fee
        if (
            fee is not None
            and fee.timing == "advance"
            and cycle.start <= through
            and fee.billed
            and cycle.link not in fees
        ):
            advance = InvoiceLine(
                kind="base_fee",
                description=f"{cycle.plan} base fee {cycle.key} (in advance)",
                account="deferred",
                amount=fee.billed,
                cycle=cycle.key,
                link=cycle.link,
            )
            off = discount_lines(rated, "base_fee", "deferred")
            lines[(cycle.customer, cycle.start)].extend(net_lines([advance, *off], mine))
        at = _threshold_point(
            cycle,
            day_before.get(cycle.link),
            rules,
            issued,
            through,
            first_open,
            frozen,
            progressed,
            redrafting,
        )
        if at is not None:
            lines[(cycle.customer, through)].extend(
                net_lines(threshold_lines(at, rules, issued), mine)
            )
            snap = snapshot(fee_as_accrued(at, ratings), "", mine)
            unproven.add(id(snap))
            progress[(cycle.customer, through)].append(snap)
    billed_topups = {(inv.customer, ln.grant) for inv in issued for ln in inv.lines if ln.grant}
    topups: list[Invoice] = []
    for cid, customer in rules.customers.items():
        for grant in rating.grants_of(customer):
            if isinstance(grant, WalletGrant):
                if grant.granted <= through and (cid, grant.key) not in billed_topups:
                    # re-drafting its own invoice (``trace``): dated as issued, whatever was
                    # sealed since
                    again = redrafting is not None and any(
                        ln.grant == grant.key for ln in redrafting.lines
                    )
                    floor = redrafting.date if redrafting is not None and again else first_open
                    topups.append(topup_invoice(customer, grant, rules, first_open=floor))
                continue
            if grant.granted <= through:
                expiry = f", expires {grant.expires.isoformat()}" if grant.expires else ""
                description = f"prepaid credit granted {grant.granted.isoformat()}{expiry}"
                if grants[(cid, description, grant.amount)]:
                    grants[(cid, description, grant.amount)] -= 1
                    continue
                lines[(cid, grant.granted)].append(
                    InvoiceLine(
                        kind="credit_grant",
                        description=description,
                        account="deferred",
                        amount=grant.amount,
                    )
                )
    _redate_sealed(lines, accruals, issued, issued_keys, first_open=first_open, through=through)
    if redrafting is not None:
        _redate_into(lines, accruals, redrafting)
        _not_yet_known(lines, redrafting)
    late = late_usage(
        rating, issued, first_open=first_open, included=included, redrafting=redrafting
    )
    drafts = []
    for (cid, day), body in sorted(lines.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if f"{cid}/{day.isoformat()}" in issued_keys:
            continue
        due = [line for posted, line in late.get(cid, []) if posted < day]
        if due:  # billed on this invoice: not on a later one of the same run
            late[cid] = [(posted, line) for posted, line in late[cid] if line not in due]
        body = [*body, *due]
        if not any(line.amount for line in body):
            continue  # nothing to bill (a cycle without usage): no zero invoice
        customer = rules.customers[cid]
        drafts.append(
            Invoice(
                customer=cid,
                date=day,
                currency=customer.currency,
                lines=tuple(body),
                rules=rules.hash,
                due=day + timedelta(days=customer.payment_terms_days),
                accruals=tuple(
                    sorted(
                        (proven(a) for a in accruals.get((cid, day), [])),
                        key=lambda a: (a.link, a.through),
                    )
                ),
                progress=tuple(
                    sorted((proven(a) for a in progress.get((cid, day), [])), key=lambda a: a.link)
                ),
            )
        )
    return supplement(
        [*drafts, *topups], late, issued, rules, through=through, redrafting=redrafting
    )


def topup_invoice(
    customer: Customer, grant: WalletGrant, rules: Rules, *, first_open: date = date.min
) -> Invoice:
    """The invoice of one wallet top-up (:mod:`ledger.topups`): one ``credit_grant`` line into
    deferred revenue, dated the grant's day (the first open day when that month is sealed:
    a recurring or automatic top-up the rules or late usage put there)::

        INV-2026-000012  acme  2026-10-05  USD  (top-up)
          credit_grant  wallet top-up topup:BANK-7, expires 2027-10-05   50.00  → deferred revenue
    """
    from ledger.topups import topup_description

    day = max(grant.granted, first_open)
    return Invoice(
        customer=customer.id,
        date=day,
        currency=customer.currency,
        lines=(
            InvoiceLine(
                kind="credit_grant",
                description=topup_description(grant),
                account="deferred",
                amount=grant.amount,
                grant=grant.key,
            ),
        ),
        rules=rules.hash,
        due=day + timedelta(days=customer.payment_terms_days),
        kind=TOPUP,
    )


def _threshold_point(
    cycle: Cycle,
    at: CycleRating | None,
    rules: Rules,
    issued: Sequence[Invoice],
    through: date,
    first_open: date,
    frozen: set[str],
    progressed: Mapping[str, set[date]],
    redrafting: Invoice | None,
) -> CycleRating | None:
    """The rating of a cycle a threshold invoice dated ``through`` bills (``at``: the cycle
    rated through the day before), or None: no threshold, the cycle not running on both days,
    ``through`` sealed, a threshold invoice of that day or later issued, or less than the
    threshold to bill.
    Re-drafting an issued invoice (``redrafting``), exactly the cycles it billed so."""
    before = through - timedelta(days=1)
    if at is None or cycle.link in frozen:
        return None
    if redrafting is not None:  # as issued, whatever the threshold or the seals say now
        billed = redrafting.date == through and any(
            snap.link == cycle.link for snap in redrafting.progress
        )
        return at if billed else None
    customer = rules.customers.get(cycle.customer)
    threshold = (
        invoice_threshold(customer, rules.plans.get(cycle.plan)) if customer is not None else None
    )
    if (
        threshold is None
        or not cycle.start <= before < cycle.end - timedelta(days=1)
        or through < first_open  # never into a sealed month
        or any(day >= before for day in progressed.get(cycle.link, ()))
    ):
        return None
    due = sum((line.amount for line in threshold_lines(at, rules, issued)), ZERO)
    return at if due >= threshold else None


def _redate_sealed(
    lines: dict[tuple[str, date], list[InvoiceLine]],
    accruals: dict[tuple[str, date], list[Snapshot]],
    issued: Sequence[Invoice],
    issued_keys: set[str],
    *,
    first_open: date,
    through: date,
) -> None:
    """Move what would be invoiced on a sealed day to the customer's first open day, in place.

    A cycle that billed nothing when its month was sealed (free-tier usage: no
    zero invoice) and has something to bill now (late usage) cannot get an
    invoice dated in the sealed month. Its lines go on the customer's invoice of
    the first open day after its last issued invoice, joining a regular invoice
    of that day if there is one. Its accrual snapshots ride along, so the cycle
    counts as invoiced from then on and later late usage is billed as such; zero
    lines are left off, and a day with nothing to bill stays where it is (no zero
    invoice). Nothing moves past ``through``: drafting through a sealed day (as
    ``trace`` re-drafts an old invoice) leaves every draft on its own date, and
    ``trace`` puts back what the invoice froze (:func:`_redate_into`).
    """
    if first_open == date.min:
        return
    last: dict[str, date] = {}
    for inv in issued:
        last[inv.customer] = max(last.get(inv.customer, date.min), inv.date)
    for cid, day in sorted(k for k in list(lines) if k[1] < first_open):
        target = max(first_open, last.get(cid, date.min) + timedelta(days=1))
        if f"{cid}/{day.isoformat()}" in issued_keys:
            continue
        moved = lines[(cid, day)]
        if not any(line.amount for line in moved):
            continue  # nothing to bill: the cycle waits, unfrozen, as before
        if target > through:
            if through >= first_open:
                # the customer's invoice of the first open day is issued already: its next
                # invoice day is after this run, which must not issue it on the sealed day
                del lines[(cid, day)]
                accruals.pop((cid, day), None)
            # else drafting as of a sealed day (``trace`` re-drafting history): as it was
            continue
        del lines[(cid, day)]
        lines[(cid, target)].extend(line for line in moved if line.amount)
        accruals[(cid, target)].extend(accruals.pop((cid, day), []))


def _redate_into(
    lines: dict[tuple[str, date], list[InvoiceLine]],
    accruals: dict[tuple[str, date], list[Snapshot]],
    invoice: Invoice,
) -> None:
    """Move onto ``invoice``'s day the earlier drafts of its customer whose cycles it froze."""
    frozen = {snap.link for snap in invoice.accruals}
    for cid, day in sorted(
        k for k in list(lines) if k[0] == invoice.customer and k[1] < invoice.date
    ):
        snapshots = accruals.get((cid, day), [])
        moved = lines[(cid, day)]
        if (
            snapshots
            and {snap.link for snap in snapshots} <= frozen
            and any(line.amount for line in moved)
        ):
            del lines[(cid, day)]
            lines[(cid, invoice.date)].extend(line for line in moved if line.amount)
            accruals[(cid, invoice.date)].extend(accruals.pop((cid, day)))


def _not_yet_known(lines: dict[tuple[str, date], list[InvoiceLine]], invoice: Invoice) -> None:
    """Leave off ``invoice``'s re-draft the advance fees and grants of earlier (sealed) days that
    :func:`_redate_sealed` moved onto its day but it does not bill: they were entered after it
    was issued (a backdated plan change or grant), so a later invoice bills them."""
    key = (invoice.customer, invoice.date)
    fees = {line.link for line in invoice.lines if line.kind == "base_fee"}
    grants = Counter(
        (line.description, line.amount) for line in invoice.lines if line.kind == "credit_grant"
    )
    kept = []
    for line in lines.get(key, []):
        if (
            (line.kind == "base_fee" or (line.kind == "discount" and line.account == "deferred"))
            and line.cycle
            and line.link not in fees
            and date.fromisoformat(line.cycle.split("/")[0]) < invoice.date
        ):
            continue
        if line.kind == "credit_grant" and f"granted {invoice.date.isoformat()}" not in (
            line.description
        ):
            if not grants[(line.description, line.amount)]:
                continue
            grants[(line.description, line.amount)] -= 1
        kept.append(line)
    if key in lines:
        lines[key] = kept


def late_usage(
    rating: Rating,
    issued: Sequence[Invoice],
    *,
    first_open: date = date.min,
    included: Mapping[str, Inclusion] | None = None,
    redrafting: Invoice | None = None,
) -> dict[str, list[tuple[date, InvoiceLine]]]:
    """Late usage of invoiced cycles not billed yet, with the day it waits from.

    Per cycle: the unbilled and contract-asset part of (targets now − targets
    frozen by its invoice) − late lines already billed. An invoice bills the
    late lines dated before its date. The day is the one the books post the late
    entry on (the cycle's invoice date, or the first open day), or the date of
    the customer's latest issued invoice when that is later: a remainder still
    unbilled after that invoice did not exist when it was issued (else it would
    have been billed there), so it is for the next invoice. With tax-inclusive
    prices (``included``) a line's ``net`` is what the late entry booked
    (:func:`ledger.accruals.late_targets`).

    ``redrafting`` (``trace``; ``issued`` are the invoices before it): late
    usage that arrived after that invoice was issued is not known to it. Its
    late lines are taken as what had arrived (up to the remainder: it cannot
    have billed more than the store now holds as late), dated on the customer's
    previous invoice (a supplementary invoice, dated by its lines: on the day they were
    posted, up to its own date); the rest of the remainder arrived after it and is left out.
    """
    billed: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    booked: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    latest: dict[str, date] = {}
    for inv in issued:
        latest[inv.customer] = max(latest.get(inv.customer, inv.date), inv.date)
        for line in inv.lines:
            if line.kind == "late_usage":
                billed[(line.link, line.account)] += line.amount
                booked[(line.link, line.account)] += line.booked
    took: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    took_net: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    if redrafting is not None:
        for line in redrafting.lines:
            if line.kind == "late_usage":
                took[(line.link, line.account)] += line.amount
                took_net[(line.link, line.account)] += line.booked
    _points, late = plan_points(rating, issued, first_open=first_open, included=included)
    result: dict[str, list[tuple[date, InvoiceLine]]] = defaultdict(list)
    for now, frozen, day in late:
        if redrafting is not None and redrafting.customer != now.customer:
            continue
        when = max(day, latest.get(now.customer, day))
        if redrafting is not None:
            when = latest.get(now.customer, date.min)
            if redrafting.kind == SUPPLEMENTARY:
                # dated by its lines' posting days: as posted then (the first open day may
                # have moved since), never after the invoice itself
                when = min(max(day, when), redrafting.date)
        to, was = late_targets(now, frozen)
        for account in ("unbilled", "contract_asset"):
            key = (now.link, account)
            diff = now.target(account) - frozen.target(account) - billed[key]
            net = to.get(account, ZERO) - was.get(account, ZERO) - booked[key]
            if redrafting is not None:
                arrived = _arrived(took[key], diff)
                if arrived != diff:  # what it billed (its own net), or nothing
                    net = took_net[key] if arrived else ZERO
                diff = arrived
            if diff or net:
                result[now.customer].append(
                    (
                        when,
                        InvoiceLine(
                            kind="late_usage",
                            description=f"late usage for {now.cycle}",
                            account=account,
                            amount=diff,
                            cycle=now.cycle,
                            link=now.link,
                            net=net if net != diff else None,
                        ),
                    )
                )
    return result


def _arrived(billed: Decimal, remainder: Decimal) -> Decimal:
    """The part of a late ``remainder`` an invoice that billed ``billed`` of it had: all it
    billed when the remainder covers it, else the remainder (same sign), else nothing.

    >>> _arrived(Decimal("0.60"), Decimal("1.00")), _arrived(Decimal("0.60"), Decimal("0.40"))
    (Decimal('0.60'), Decimal('0.40'))
    >>> _arrived(Decimal("0"), Decimal("1.00")), _arrived(Decimal("0.60"), Decimal("-0.20"))
    (Decimal('0'), Decimal('0'))
    """
    if not billed or billed * remainder <= 0:
        return ZERO
    return billed if abs(billed) <= abs(remainder) else remainder


def ended(customer: Customer, through: date) -> bool:
    """Whether none of the customer's subscriptions runs after ``through``: the last one of
    each ``id`` (they are in start order, each cut by the next one's start) has an ``end`` on
    or before it.

    A plan change is not an end (the next subscription runs on), and neither is
    an open-ended subscription:

    >>> from ledger.rules import Subscription
    >>> acme = Customer(id="acme", currency="USD", subscriptions=(
    ...     Subscription(plan="pro", start=date(2026, 8, 15)),
    ...     Subscription(plan="ent", start=date(2026, 11, 20), end=date(2027, 1, 1))))
    >>> ended(acme, date(2026, 12, 31)), ended(acme, date(2027, 1, 1))
    (False, True)

    An add-on (a subscription with an ``id``) still running keeps the customer on:

    >>> addon = Subscription(id="support", plan="a", start=date(2026, 12, 1), end=date(2027, 2, 1))
    >>> both = acme.model_copy(update={"subscriptions": (*acme.subscriptions, addon)})
    >>> ended(both, date(2027, 1, 1)), ended(both, date(2027, 2, 1))
    (False, True)
    """
    if not customer.subscriptions:
        return True
    end = customer.last_end  # with add-ons (subscription ids): the last of them to end
    return end is not None and end <= through


def supplement(
    drafts: Sequence[Invoice],
    pending: Mapping[str, Sequence[tuple[date, InvoiceLine]]],
    issued: Sequence[Invoice],
    rules: Rules,
    *,
    through: date,
    redrafting: Invoice | None = None,
) -> list[Invoice]:
    """``drafts`` plus each ended customer's ``pending`` lines on one supplementary invoice.

    ``pending``: per customer, the lines waiting in unbilled that no draft takes,
    each with the date it was posted (late usage, debit adjustments). A customer
    whose subscriptions still run keeps them for its next regular invoice. An
    ended customer (:func:`ended` by ``through``) has no next invoice, so its
    lines posted by ``through`` go on its supplementary invoice of this run
    (created, or extended when an earlier stage made one), dated the latest of:
    the lines' posting dates, the subscription's end, and the day after its
    last invoice issued or drafted (so it never precedes what it follows and is
    one per customer per run). Dated after ``through``: nothing this run. Re-drafting an
    issued supplementary invoice (``redrafting``, ``trace``): as issued, on its date, even
    when the customer's subscriptions were taken up again since.

    A customer who ended on Sep 18, invoiced that day, with 2.00 of late usage
    posted on Sep 18, gets ``gone/2026-09-19/supplementary`` for 2.00 from a run
    through any date from Sep 19. Returned in issue order: date, customer,
    regular before supplementary.
    """
    out = list(drafts)
    last_issued: dict[str, date] = {}
    for inv in issued:
        last_issued[inv.customer] = max(inv.date, last_issued.get(inv.customer, inv.date))
    for cid in sorted(pending):
        customer = rules.customers.get(cid)
        items = [(day, line) for day, line in pending[cid] if day <= through]
        as_issued = (
            redrafting is not None
            and redrafting.kind == SUPPLEMENTARY
            and redrafting.customer == cid
        )
        if customer is None or not items or not (as_issued or ended(customer, through)):
            continue
        found = [
            i for i, inv in enumerate(out) if inv.customer == cid and inv.kind == SUPPLEMENTARY
        ]
        current = out[found[0]] if found else None
        earlier = [
            d + timedelta(days=1)
            for d in (
                *([last_issued[cid]] if cid in last_issued else []),
                *(inv.date for inv in out if inv.customer == cid and inv is not current),
            )
        ]
        last = customer.last_end
        day = max(
            [
                *(d for d, _ in items),
                *earlier,
                *([last] if last else []),
                *([current.date] if current else []),
            ]
        )
        if as_issued and redrafting is not None:
            day = redrafting.date
        if day > through:
            continue
        lines = (*(current.lines if current else ()), *(line for _, line in items))
        invoice = Invoice(
            customer=cid,
            date=day,
            currency=customer.currency,
            lines=lines,
            rules=rules.hash,
            due=day + timedelta(days=customer.payment_terms_days),
            kind=SUPPLEMENTARY,
        )
        if current is not None:
            out[found[0]] = invoice
        else:
            out.append(invoice)
    return sorted(out, key=lambda inv: (inv.date, inv.customer, inv.kind != REGULAR, inv.key))


def number(engine: Engine, drafts: Iterable[Invoice]) -> list[Invoice]:
    """The drafts with the numbers :func:`issue` will give them, nothing stored: the next
    ones of the workspace's sequence, in order (``INV-<year of the invoice date>-<seq>``).

    :meth:`ledger.session.Session.invoice` writes the books and documents of the
    numbered invoices first and issues them after, under the workspace lock
    (:mod:`ledger.lock`), so the numbers cannot move in between; :func:`issue`
    refuses if they did.
    """
    with engine.connect() as conn:
        seq = conn.execute(select(func.max(invoices_table.c.seq))).scalar() or 0
    return [
        replace(draft, number=f"INV-{draft.date.year}-{seq + n:06d}")
        for n, draft in enumerate(drafts, 1)
    ]


def issue(
    engine: Engine,
    drafts: Iterable[Invoice],
    also: Callable[[Connection, list[Invoice]], None] | None = None,
) -> list[Invoice]:
    """Number and store drafts in one transaction; return them with numbers.

    ``also`` runs in the same transaction with the issued invoices, for what must
    be stored with them or not at all (the plan versions they were rated with).
    A draft numbered already (:func:`number`) must get that number, else
    :class:`~ledger.errors.StoreError` and nothing is stored.
    """
    from ledger.errors import StoreError

    issued: list[Invoice] = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE invoices IN EXCLUSIVE MODE")
        seq = conn.execute(select(func.max(invoices_table.c.seq))).scalar() or 0
        for draft in drafts:
            seq += 1
            number = f"INV-{draft.date.year}-{seq:06d}"
            if draft.number and draft.number != number:
                raise StoreError(
                    f"{draft.number} was numbered for {draft.customer} {draft.date}, "
                    f"but the store's next number is {number}: "
                    "another writer issued invoices meanwhile; "
                    "nothing was issued, run the command again"
                )
            invoice = replace(draft, number=number)
            conn.execute(
                invoices_table.insert().values(
                    number=number,
                    seq=seq,
                    customer=invoice.customer,
                    date=invoice.date.isoformat(),
                    currency=invoice.currency,
                    total=str(invoice.total),
                    document=invoice.to_json(),
                    key=invoice.key,
                )
            )
            issued.append(invoice)
        if also is not None:
            also(conn, issued)
    return issued


def bill_debit_adjustments(
    drafts: Sequence[Invoice],
    adjustments: Sequence[Adjustment],
    issued: Sequence[Invoice],
    *,
    rules: Rules | None = None,
    through: date | None = None,
    redrafting: Invoice | None = None,
) -> list[Invoice]:
    """Add each debit adjustment not billed yet to its customer's first draft dated after it.

    With ``rules`` and ``through`` (the run's date), an adjustment no draft takes
    goes on the customer's supplementary invoice once all its subscriptions have
    ended (:func:`ledger.invoicing.supplement`): a churned customer has no next
    invoice, and its debit adjustment would otherwise wait in unbilled forever.
    """
    billed = {
        line.description.split(" ", 1)[0]
        for inv in issued
        for line in inv.lines
        if line.kind == "rerate"
    }
    pending = {n: g for n, g in by_document(adjustments, "DA-").items() if n not in billed}
    # re-drafting an issued invoice (``trace``): what it billed stays on it, even when another
    # invoice of its day (a regular one, for usage that arrived after it) now comes first
    own = (
        {ln.description.split(" ", 1)[0] for ln in redrafting.lines if ln.kind == "rerate"}
        if redrafting is not None
        else set()
    )
    out: list[Invoice] = []
    for draft in sorted(drafts, key=lambda d: (d.date, d.customer, d.kind != REGULAR)):
        if draft.kind == TOPUP:  # a top-up's invoice bills the top-up alone
            out.append(draft)
            continue
        itself = redrafting is not None and draft.key == redrafting.key
        due = [
            n
            for n, g in sorted(pending.items())
            if g[0].customer == draft.customer
            and g[0].date < draft.date
            and (itself or n not in own)
        ]
        extra = [_debit_line(n, adj) for n in due for adj in pending.pop(n)]
        out.append(replace(draft, lines=(*draft.lines, *extra)) if extra else draft)
    if rules is None or through is None or not pending:
        return out
    waiting: dict[str, list[tuple[date, InvoiceLine]]] = defaultdict(list)
    for number, group in sorted(pending.items()):
        waiting[group[0].customer].extend((adj.date, _debit_line(number, adj)) for adj in group)
    return supplement(out, waiting, issued, rules, through=through, redrafting=redrafting)


def _debit_line(number: str, adj: Adjustment) -> InvoiceLine:
    """The invoice line that bills one line of debit adjustment ``number`` (it settles unbilled)."""
    return InvoiceLine(
        kind="rerate",
        description=f"{number} debit adjustment: {adj.label} of {adj.invoice} "
        f"re-rated from {adj.since.isoformat()}",
        account="unbilled",
        amount=adj.amount,
        cycle=adj.cycle,
        link=adj.link,
        meter=adj.meter,
    )
