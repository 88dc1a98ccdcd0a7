"""Subscription changes after invoicing: the fee billed in advance corrected, never rewritten.

An invoice pins the subscription terms it billed: each advance base-fee line names
its cycle (``2026-10-01/2026-11-01``, link ``^acme-2026-10-01``) and amount, and each
frozen accrual the cycle its usage was billed for. Editing ``customers.yaml``
afterwards (an upgrade, a downgrade, a cancellation, a plan change, backdated or
not) is compared with those pins whenever the books are posted:

- a cycle whose **usage is already invoiced** (its accruals frozen) cannot be cut,
  moved or given another plan: ``post``, ``invoice`` and ``close`` refuse with one
  line naming the customer, the cycle and the invoice (:func:`require_billed_cycles`);
- a cycle whose **advance fee** is invoiced is re-rated with the current
  subscriptions (:class:`ledger.rules.ChangePolicy`: prorated by day, or not).
  What was billed for days the customer no longer has is credited, what the new
  terms add is charged, each once, in the first open month, referencing the
  original invoice (:func:`correct_fee_changes`).

acme on plan ``p`` (31.00 a month in advance, calendar cycles) was invoiced
31.00 on INV-2026-000001 for October; then acme cancels from Oct 11. The cycle is
now ``[Oct 1, Oct 11)``: 10 days, 31.00 × 10 ÷ 31 = 10.00, recognized by day
through Oct 10. The 21.00 billed for Oct 11–31 is credited on the cycle's last day
(or the first open day, if that month is sealed), out of deferred revenue, which
the shortened cycle no longer recognizes::

    2026-10-10 * "acme" "Credit note CN-2026-000001 for INV-2026-000001" ^CN-2026-000001 ^INV-2026-000001 ^acme-2026-10-01
      credit_note: "CN-2026-000001"
      reason: "subscription change: cycle 2026-10-01/2026-11-01 now 2026-10-01/2026-10-11, base fee 31.00 now 10.00"
      Liabilities:Deferred-Revenue:Acme        21.00 USD
      Assets:Receivables:Invoiced:Acme        -21.00 USD

so deferred revenue ends the cycle at −31.00 + 10.00 + 21.00 = 0 (a paid invoice
credits ``refund_liability`` instead of the receivable). When the terms rise
instead (a cancellation taken back after its credit, a cycle that grew), the
difference is a debit adjustment ``DA-…`` (``unbilled`` / ``deferred``, billed as
its own line on the customer's next invoice: receivable / deferred in all)::

    2026-10-20 * "acme" "Debit adjustment DA-2026-000001 for INV-2026-000001" ^DA-2026-000001 ^INV-2026-000001 ^acme-2026-10-01
      Assets:Receivables:Unbilled:Acme         21.00 USD
      Liabilities:Deferred-Revenue:Acme       -21.00 USD

The new plan of a plan change starts its own cycle on the change date, whose
fee (prorated by day for a calendar-anchored short cycle) is billed by its own
invoice on its start date, like any first cycle. Each correction is stored
(credit notes in ``credit_notes``, debit adjustments in ``rerates`` with line key
``subscription:advance``), so the next run posts only what is still missing.
"""  # noqa: E501

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, func, select

from ledger.credit_notes import creditable, recut_cycles
from ledger.cycles import Cycle, cycles_for, link_customer
from ledger.errors import BadInput
from ledger.facts.credit_notes import CreditNote, CreditPart, load_credit_notes
from ledger.facts.invoices import TOPUP, Invoice
from ledger.facts.pins import TermsPin
from ledger.money import ZERO
from ledger.rating import cycle_plan, prorate
from ledger.reconcile import CheckResult
from ledger.store import credit_notes as credit_notes_table
from ledger.store import rerates
from ledger.tax import booked_share, credit_of_lines

if TYPE_CHECKING:
    from ledger.opened import OpenWorkspace
    from ledger.rules import Rules

_DAY = timedelta(days=1)
#: A credit note issued for a subscription change starts its reason with this.
REASON = "subscription change"
#: The rerates line key of a subscription change's debit adjustment.
LINE_KEY = "subscription:advance"


def current_cycles(rules: Rules, customers: set[str], until: date) -> dict[str, Cycle]:
    """Every cycle of these customers starting before ``until``, by link, as the rules say now."""
    found: dict[str, Cycle] = {}
    for cid in sorted(customers):
        customer = rules.customers.get(cid)
        if customer is not None:
            for cycle in cycles_for(customer, rules.plans, until=until):
                found[cycle.link] = cycle
    return found


def advance_fee(rules: Rules, cycle: Cycle | None, pin: TermsPin | None) -> Decimal:
    """The advance base fee the cycle bills now (0: no cycle, or no fee in advance)."""
    if cycle is None:
        return ZERO
    plan = cycle_plan(rules.plans[cycle.plan], cycle, pin)
    if plan.base_fee is None or plan.base_fee.timing != "advance":
        return ZERO
    return prorate(plan.base_fee.amount, cycle, plan.currency)


@dataclass(frozen=True)
class FeeChange:
    """One advance base-fee line whose cycle the current subscriptions bill differently."""

    invoice: Invoice
    line: int  # 1-based
    link: str
    billed: Decimal
    corrected: Decimal  # by earlier subscription-change documents (credit notes negative)
    now: Decimal
    cycle_then: str
    cycle_now: str  # "" when the subscriptions no longer have the cycle
    on: date  # the correction's date
    #: deferred parts of earlier credit notes on the line, scheduled over the old cycle:
    #: taken out at once when the fee changes (``credit_notes.recut_cycles``)
    stale: Decimal = ZERO

    @property
    def difference(self) -> Decimal:
        return self.now - self.billed - self.corrected + self.stale


def line_corrections(
    engine: Engine, notes: Iterable[CreditNote] | None = None
) -> dict[tuple[str, int], tuple[Decimal, tuple[str, ...]]]:
    """What subscription-change documents changed per (invoice, line): the amount (credit
    notes negative) and the documents' numbers (``trace`` explains an invoice with them).
    ``notes``: the stored credit notes when the caller has read them already."""
    amounts: dict[tuple[str, int], Decimal] = defaultdict(lambda: ZERO)
    documents: dict[tuple[str, int], list[str]] = defaultdict(list)
    for note in load_credit_notes(engine) if notes is None else notes:
        if note.reason.startswith(REASON):
            for part in note.parts:
                amounts[(note.invoice, part.line)] -= part.amount
                documents[(note.invoice, part.line)].append(note.number)
    with engine.connect() as conn:
        rows = conn.execute(
            select(rerates.c.invoice, rerates.c.line, rerates.c.amount, rerates.c.document)
            .where(rerates.c.line_key == LINE_KEY)
            .order_by(rerates.c.id)
        ).all()
    for invoice, line, amount, document in rows:
        amounts[(invoice, int(line))] += Decimal(amount)
        documents[(invoice, int(line))].append(document)
    return {key: (amount, tuple(documents[key])) for key, amount in amounts.items()}


def _corrections(session: OpenWorkspace) -> dict[tuple[str, int], Decimal]:
    """What earlier subscription-change documents changed per (invoice, line)."""
    done: dict[tuple[str, int], Decimal] = defaultdict(lambda: ZERO)
    for key, (amount, _documents) in line_corrections(
        session.engine, session.stored_facts().credit_notes
    ).items():
        done[key] = amount
    return done


def fee_changes(session: OpenWorkspace, through: date, *, every: bool = False) -> list[FeeChange]:
    """Every invoiced advance fee the current subscriptions bill differently, with the day
    its correction is dated: the cycle's (new) last day, not before the invoice nor before
    the first open day. Those dated after ``through`` are left for a later run."""

    lines = [
        (inv, i, ln)
        for inv in session.stored_facts().invoices
        for i, ln in enumerate(inv.lines, 1)
        if ln.kind == "base_fee" and ln.account == "deferred" and ln.cycle and ln.link
    ]
    if not lines:
        return []
    until = max(date.fromisoformat(ln.cycle[:10]) for _, _, ln in lines) + _DAY
    cycles = current_cycles(session.rules, {inv.customer for inv, _, _ in lines}, until)
    pins = session.stored_facts().pins
    corrected = _corrections(session)
    # deferred parts of earlier notes on the line scheduled over its old cycle: once the fee
    # changes, the correction counts them as taken out at once (credit_notes.recut_cycles)
    scheduled: dict[tuple[str, int], list[tuple[str, Decimal]]] = defaultdict(list)
    for note in session.stored_facts().credit_notes:
        if not note.reason.startswith(REASON):
            for part in note.parts:
                if part.cycle and part.deferred:
                    scheduled[(note.invoice, part.line)].append((part.cycle, part.deferred))
    first_open = session.first_open()
    # where the days billed run out now: the billed cycle's end, or as the latest correction
    # of the line left it (a cancellation's credit note, a charge's debit adjustment)
    recut = recut_cycles(session.stored_facts().credit_notes, session.stored_facts().adjustments)
    # a charge is billed by the customer's first invoice dated after it: never before an
    # invoice already issued, which did not bill it (and whose re-draft must not); a top-up's
    # invoice bills the top-up alone (never a charge), so it does not count
    latest: dict[str, date] = {}
    for issued in session.stored_facts().invoices:
        if issued.kind != TOPUP:
            latest[issued.customer] = max(latest.get(issued.customer, date.min), issued.date)
    found = []
    for inv, i, ln in lines:
        cycle = cycles.get(ln.link)
        now = advance_fee(session.rules, cycle, pins.get(ln.link))
        key = cycle.key if cycle is not None else ""
        stale = (
            sum((d for c, d in scheduled[(inv.number, i)] if c != key), ZERO)
            if now != ln.amount
            else ZERO
        )
        on = max(first_open, inv.date, cycle.end - _DAY if cycle is not None else inv.date)
        cut = recut.get((inv.number, i), "")
        billed_end = date.fromisoformat((cut if "/" in cut else ln.cycle)[11:21])
        if (
            cycle is not None
            and cycle.end > billed_end
            and now > ln.amount + corrected[(inv.number, i)]
        ):
            # the cycle grew past the days billed (an end taken back, a later end): from the
            # billed end on, recognition by day runs past what was billed, so the charge is
            # dated there, not at the new end (deferred revenue would hold a debit meanwhile)
            on = max(first_open, inv.date, billed_end)
        change = FeeChange(
            inv,
            i,
            ln.link,
            ln.amount,
            corrected[(inv.number, i)],
            now,
            ln.cycle,
            cycle.key if cycle is not None else "",
            on,
            stale,
        )
        if change.difference > 0 and latest.get(inv.customer, date.min) > on:
            change = replace(change, on=latest[inv.customer])
        if every or (change.difference and change.on <= through):
            found.append(change)
    return found


def absorbed_recuts(session: OpenWorkspace) -> dict[tuple[str, int], str]:
    """Per (invoice, line): the cycle a fee now runs over when the subscriptions changed it by
    no more than earlier credit notes on the line took out (a goodwill note of 21.00 on 31.00,
    then a cut to 10.00): no correction is issued (its amount is 0), yet the notes' schedules
    over the old cycle stop, as a correction stops them
    (:func:`ledger.credit_notes.recut_cycles`)."""
    if not any(
        part.cycle and part.deferred
        for note in session.stored_facts().credit_notes
        if not note.reason.startswith(REASON)
        for part in note.parts
    ):
        return {}
    return {
        (c.invoice.number, c.line): c.cycle_now
        for c in fee_changes(session, date.max, every=True)
        if not c.difference and c.stale and c.now != c.billed and c.cycle_now
    }


def current_fees(session: OpenWorkspace, invoice_number: str) -> dict[str, tuple[str, Decimal]]:
    """Per advance-fee cycle link of the invoice: the cycle key and fee the subscriptions
    give it now (what a credit note on the fee line takes its deferred part against)."""

    invoice = next(
        (inv for inv in session.stored_facts().invoices if inv.number == invoice_number), None
    )
    if invoice is None:
        return {}
    links = [
        ln for ln in invoice.lines if ln.kind == "base_fee" and ln.account == "deferred" and ln.link
    ]
    if not links:
        return {}
    until = max(date.fromisoformat(ln.cycle[:10]) for ln in links) + _DAY
    cycles = current_cycles(session.rules, {invoice.customer}, until)
    pins = session.stored_facts().pins
    found = {}
    for ln in links:
        cycle = cycles.get(ln.link)
        if cycle is not None:
            found[ln.link] = (cycle.key, advance_fee(session.rules, cycle, pins.get(ln.link)))
    return found


def require_billed_cycles(session: OpenWorkspace) -> None:
    """Refuse (exit 2, one line) a subscription edit that cuts, moves or re-plans a cycle
    whose usage an issued invoice already billed (its accruals are frozen in the invoice), or
    that ends a cycle a threshold invoice billed before the day after that invoice's date
    (ended on that date, its cycle-end invoice would be that invoice)."""
    invoices = session.stored_facts().invoices
    frozen = {
        (snap.link, snap.customer): (snap.cycle, snap.plan, inv.number)
        for inv in invoices
        for snap in inv.accruals
    }
    # a threshold invoice billed the cycle through a day: it may end later, never by then
    partly = {
        (snap.link, snap.customer, snap.through): (snap.cycle, snap.plan, inv.number)
        for inv in invoices
        for snap in inv.progress
        if (snap.link, snap.customer) not in frozen
    }
    if not frozen and not partly:
        return
    starts = [date.fromisoformat(c[:10]) for c, _, _ in (*frozen.values(), *partly.values())]
    customers = {c for _, c in frozen} | {c for _, c, _ in partly}
    cycles = current_cycles(session.rules, customers, max(starts) + _DAY)
    for (link, customer, day), (key, plan, number) in sorted(partly.items()):
        now = cycles.get(link)
        if (
            now is not None
            and (now.start, now.plan) == (date.fromisoformat(key[:10]), plan)
            and now.end > day + _DAY  # it still runs on the threshold invoice's day
        ):
            continue
        raise BadInput(
            f"rules/customers.yaml: customers.{customer}.subscriptions: "
            f"cycle ^{link} ({key}, plan {plan}) is "
            + (f"now {now.key} on plan {now.plan}" if now is not None else "no longer there")
            + f", but {number} (a threshold invoice) billed its usage through {day}: a billed "
            f"cycle is not re-cut; end or change it on or after {day + 2 * _DAY}. "
            "Nothing was written"
        )
    for (link, customer), (key, plan, number) in sorted(frozen.items()):
        now = cycles.get(link)
        if now is not None and now.key == key and now.plan == plan:
            continue
        what = (
            f"now {now.key} on plan {now.plan}"
            if now is not None
            else "no longer in the subscriptions"
        )
        end = key.partition("/")[2]
        raise BadInput(
            f"rules/customers.yaml: customers.{customer}.subscriptions: "
            f"cycle ^{link} ({key}, plan {plan}) is "
            f"{what}, but {number} already billed its usage: a billed cycle is not re-cut; "
            "date the change "
            f"on or after {end}. Nothing was written"
        )


def require_billed_discounts(session: OpenWorkspace) -> None:
    """Refuse (exit 2, one line) a rules edit that changes what an issued invoice took off a
    cycle's advance fee (:mod:`ledger.discounts`): the fee and its discount went to deferred
    revenue together and are recognized together, so a billed fee keeps its discounts: a
    discount added, changed or removed on it, or a subscription change that re-cuts a cycle
    whose billed fee had a discount, is refused. (A discount on billed *usage* that changes is
    a late difference, as late usage is.)"""
    from ledger.discounts import Part, discount_parts, discounts_on

    rules = session.rules
    for inv in session.stored_facts().invoices:
        customer = rules.customers.get(inv.customer)
        if customer is None or not (
            customer.discounts or any(ln.kind == "discount" for ln in inv.lines)
        ):
            continue
        for fee in inv.lines:
            if not (fee.kind == "base_fee" and fee.account == "deferred" and fee.link):
                continue
            start, end = (date.fromisoformat(day) for day in fee.cycle.split("/"))
            billed = [
                (ln.description, ln.amount)
                for ln in inv.lines
                if ln.kind == "discount" and ln.link == fee.link and ln.account == "deferred"
            ]
            cycle = current_cycles(rules, {inv.customer}, start + _DAY).get(fee.link)
            mine = discounts_on(customer, rules.plans, cycle) if cycle is not None else ()
            now = [
                (d.label, -d.amount)
                for d in discount_parts(
                    mine, [Part("base_fee", "deferred", fee.amount)], inv.currency
                )
            ]
            was, became = (", ".join(f"{t} {a}" for t, a in x) or "none" for x in (billed, now))
            where = f"rules/customers.yaml: customers.{inv.customer}"
            if billed and (cycle is None or cycle.key != fee.cycle):
                raise BadInput(
                    f"{where}.subscriptions: cycle ^{fee.link} ({fee.cycle}) is "
                    + (f"now {cycle.key}" if cycle else "no longer in the subscriptions")
                    + f", but {inv.number} billed its advance fee with discounts {was}: a billed "
                    f"fee's discounts are not changed; date the change on or after {end}. "
                    "Nothing was written"
                )
            if now != billed:
                raise BadInput(
                    f"{where}.discounts: the advance fee of cycle ^{fee.link} ({fee.cycle}) was "
                    f"billed by {inv.number} with discounts {was}, now {became}: a billed fee's "
                    f"discounts are not changed; start the discount after {start}. "
                    "Nothing was written"
                )


def require_sealed_accruals(session: OpenWorkspace) -> None:
    """Refuse (exit 2, one line) a subscription edit that leaves an accrual sealed in the books
    at a day that is no longer an accrual point of its cycle (a change dated in a sealed
    month that cuts the cycle before it): a sealed month is never rewritten, so the change
    must take effect on or after the first open day."""
    from beancount.core import data as bc

    record = session.sealed_record()
    points: dict[str, set[date]] = defaultdict(set)
    customers: dict[str, str] = {}
    for entry in record:
        meta = entry.meta or {} if isinstance(entry, bc.Transaction) else {}
        if not isinstance(entry, bc.Transaction) or not (entry.narration or "").startswith(
            "Usage accrual"
        ):
            continue  # only the cycle's own accruals (not invoices, notes, late adjustments)
        key = str(meta.get("cycle") or "")
        customer = str(meta.get("customer") or "")
        if not key or "," in key or not customer:
            continue
        link = next(  # the cycle's link: ^acme-2026-10-01, or ^acme/seats-2026-10-01 for an add-on
            (
                link
                for link in sorted(entry.links)
                if link.endswith(f"-{key[:10]}") and link_customer(link) == customer
            ),
            "",
        )
        if link:
            points[link].add(entry.date)
            customers[link] = customer
    if not points:
        return
    until = max(max(days) for days in points.values()) + _DAY
    cycles = current_cycles(session.rules, set(customers.values()), until)
    first_open = session.first_open()
    progress = session.stored_facts().progress  # threshold invoices' accruals (in the cycle)
    for link, days in sorted(points.items()):
        cycle = cycles.get(link)
        valid = set(cycle.accrual_points()) if cycle is not None else set()
        if cycle is not None:
            valid |= {d for d in progress.get(link, ()) if d in cycle}
        stray = sorted(days - valid)
        if stray:
            raise BadInput(
                f"rules/customers.yaml: customers.{customers[link]}.subscriptions: "
                f"cycle ^{link} has an accrual sealed on {stray[0]}, "
                "which the subscriptions as they are now no longer accrue: "
                "a sealed month is not rewritten; "
                f"date the change on or after {first_open}. Nothing was written"
            )


def require_unissued_days(session: OpenWorkspace) -> None:
    """Refuse (exit 2, one line) a subscription or credit grant that would add a line to an
    invoice already issued: a new cycle's advance fee, or a prepaid grant, dated on a day
    whose invoice for the customer is issued (one invoice per customer and day, and an
    issued invoice is never changed). Dated a day later, it is billed on its own invoice.

    So is a cycle cut (a cancellation, a plan change) to end on such a day: its usage
    would be invoiced on that day, and the issued invoice did not bill it. cal's grant of
    Sep 11 is billed on INV-2026-000003 of Sep 11; cal then cancelled from Sep 11 cuts
    ``[Sep 1, Oct 1)`` to end Sep 11, so it is refused: ended from Sep 12 the cycle is
    invoiced on its own invoice of Sep 12."""

    issued = {inv.key: inv for inv in session.stored_facts().invoices}
    if not issued:
        return
    latest = max(inv.date for inv in issued.values()) + _DAY
    cycles = current_cycles(session.rules, {inv.customer for inv in issued.values()}, latest)
    pins = session.stored_facts().pins
    for cycle in sorted(cycles.values(), key=lambda c: (c.start, c.customer)):
        inv = issued.get(f"{cycle.customer}/{cycle.start.isoformat()}")
        if inv is None or not advance_fee(session.rules, cycle, pins.get(cycle.link)):
            continue
        if not any(ln.kind == "base_fee" and ln.link == cycle.link for ln in inv.lines):
            raise BadInput(
                f"rules/customers.yaml: customers.{cycle.customer}.subscriptions: the cycle "
                f"{cycle.key} (plan "
                f"{cycle.plan}) would bill its advance fee on {cycle.start}, but {inv.number} "
                "of that day is "
                f"already issued: start the change on or after {cycle.start + _DAY}. Nothing "
                "was written"
            )
    frozen = {snap.link for inv in issued.values() for snap in inv.accruals}
    for cycle in sorted(cycles.values(), key=lambda c: (c.end, c.customer)):
        inv = issued.get(f"{cycle.customer}/{cycle.end.isoformat()}")
        if inv is not None and cycle.link not in frozen:
            raise BadInput(
                f"rules/customers.yaml: customers.{cycle.customer}.subscriptions: the cycle "
                f"{cycle.key} (plan {cycle.plan}) would be invoiced on {cycle.end}, but "
                f"{inv.number} of that day is already issued: end or change it on or after "
                f"{cycle.end + _DAY}. Nothing was written"
            )
    for cid in sorted({inv.customer for inv in issued.values()}):
        customer = session.rules.customers.get(cid)
        grants = customer.credits if customer is not None else ()
        for grant in grants:
            inv = issued.get(f"{cid}/{grant.granted.isoformat()}")
            if inv is None:
                continue
            wanted = len(
                [
                    g
                    for g in grants
                    if (g.granted, g.amount, g.expires)
                    == (grant.granted, grant.amount, grant.expires)
                ]
            )
            billed = len(
                [
                    ln
                    for ln in inv.lines
                    if ln.kind == "credit_grant"
                    and ln.amount == grant.amount
                    and ln.description.startswith(
                        f"prepaid credit granted {grant.granted.isoformat()}"
                    )
                    and (grant.expires is None or grant.expires.isoformat() in ln.description)
                ]
            )
            if wanted > billed:
                raise BadInput(
                    f"rules/customers.yaml: customers.{cid}.credits: a grant of {grant.amount} on "
                    f"{grant.granted} would be billed on {inv.number}, already issued for that "
                    "day: grant it "
                    f"on or after {grant.granted + _DAY}. Nothing was written"
                )


def correct_fee_changes(session: OpenWorkspace, through: date) -> list[str]:
    """Store a credit note or debit adjustment for each :func:`fee_changes` entry; return
    their numbers. Re-running finds nothing new (the stored ones count as ``corrected``)."""
    changes = fee_changes(session, through)
    if not changes:
        return []
    numbers: list[str] = []
    engine = session.engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE credit_notes, rerates IN EXCLUSIVE MODE")
        cn_seq = conn.execute(select(func.max(credit_notes_table.c.seq))).scalar() or 0
        da_numbers = conn.execute(
            select(rerates.c.document).where(rerates.c.document.like("DA-%"))
        ).scalars()
        da_seq = max((int(n.rsplit("-", 1)[1]) for n in da_numbers), default=0)
        run = (conn.execute(select(func.max(rerates.c.run))).scalar() or 0) + 1
        earlier = [
            CreditNote.from_json(d)
            for d in conn.execute(
                select(credit_notes_table.c.document).order_by(credit_notes_table.c.seq)
            ).scalars()
        ]
        unbilled = _unbilled_charges(session)
        for change in changes:
            inv, line = change.invoice, change.invoice.lines[change.line - 1]
            was = f"cycle {change.cycle_then} now {change.cycle_now or 'ended before it began'}"
            reason = f"{REASON}: {was}, base fee {change.billed} now {change.now}"
            pending, since = unbilled.get((inv.number, change.line), (ZERO, date.min))
            back = min(pending, -change.difference)
            if back > 0:
                # a charge not billed yet is taken back by reversing it (a negative debit
                # adjustment, on or after the charge, billed beside it on the next invoice),
                # not by a credit note: that would credit money the customer was never billed
                da_seq += 1
                on = max(change.on, since)
                numbers.append(_store_charge(conn, session, change, -back, on, run, da_seq))
                change = replace(change, corrected=change.corrected - back)
                if not change.difference:
                    continue
            if change.difference < 0:
                net = -change.difference
                amount, tax = credit_of_lines(
                    inv, net, {change.line: net}
                )  # with its tax (ledger.tax)
                cn_seq += 1
                note = CreditNote(
                    number=f"CN-{change.on.year}-{cn_seq:06d}",
                    seq=cn_seq,
                    invoice=inv.number,
                    customer=inv.customer,
                    date=change.on,
                    currency=inv.currency,
                    amount=amount,
                    reason=reason,
                    line=change.line,
                    line_description=line.description,
                    forced=amount > creditable(inv, earlier, change.line),
                    invoice_date=inv.date,
                    invoice_total=inv.total,
                    credited_before=sum(
                        (n.amount for n in earlier if n.invoice == inv.number), ZERO
                    ),
                    # billed for days the subscription no longer has: never recognized,
                    # so all of it is deferred (net of the tax a tax-inclusive fee holds)
                    parts=(
                        CreditPart(
                            line=change.line,
                            kind=line.kind,
                            description=line.description,
                            amount=net,
                            deferred=booked_share(line, net, inv.currency),
                        ),
                    ),
                    tax=tax,
                )
                conn.execute(
                    credit_notes_table.insert().values(
                        number=note.number,
                        seq=note.seq,
                        invoice=note.invoice,
                        customer=note.customer,
                        date=note.date.isoformat(),
                        currency=note.currency,
                        amount=str(amount),
                        reason=reason,
                        document=note.to_json(),
                    )
                )
                earlier.append(note)
                numbers.append(note.number)
                continue
            da_seq += 1
            numbers.append(
                _store_charge(conn, session, change, change.difference, change.on, run, da_seq)
            )
    return numbers


def _store_charge(
    conn: Connection,
    session: OpenWorkspace,
    change: FeeChange,
    amount: Decimal,
    on: date,
    run: int,
    seq: int,
) -> str:
    """Store one debit adjustment of ``change`` (a charge, or a negative one reversing a charge
    not billed yet) dated ``on``; return its number."""
    inv = change.invoice
    number = f"DA-{on.year}-{seq:06d}"
    conn.execute(
        rerates.insert().values(
            run=run,
            document=number,
            customer=inv.customer,
            invoice=inv.number,
            line=change.line,
            line_key=LINE_KEY,
            kind="subscription",
            meter="",
            link=change.link,
            cycle=change.cycle_now or change.cycle_then,
            currency=inv.currency,
            invoiced=str(change.billed),
            rerated=str(change.now),
            amount=str(amount),
            date=on.isoformat(),
            since=on.isoformat(),
            rules=session.rules.hash,
        )
    )
    return number


def _unbilled_charges(session: OpenWorkspace) -> dict[tuple[str, int], tuple[Decimal, date]]:
    """Per (invoice, line): what the subscription changes' debit adjustments charged that no
    issued invoice has billed yet (their reversals counted), and the latest such charge's
    date (a reversal is dated on or after it)."""
    facts = session.stored_facts()
    billed = {
        line.description.split(" ", 1)[0]
        for inv in facts.invoices
        for line in inv.lines
        if line.kind == "rerate"
    }
    found: dict[tuple[str, int], tuple[Decimal, date]] = {}
    for adj in facts.adjustments:
        if adj.line_key != LINE_KEY or not adj.document.startswith("DA-"):
            continue
        if adj.document in billed:
            continue
        amount, since = found.get((adj.invoice, adj.line), (ZERO, date.min))
        found[(adj.invoice, adj.line)] = (amount + adj.amount, max(since, adj.date))
    return found


def subscriptions_check(session: OpenWorkspace) -> CheckResult:
    """``meterbook check``'s line: no subscription edit after invoicing waits uncorrected
    (a correction due by today not yet posted) or contradicts a billed cycle."""
    try:
        require_billed_cycles(session)
        require_billed_discounts(session)
        require_sealed_accruals(session)
        require_unissued_days(session)
    except BadInput as exc:
        return CheckResult("subscriptions as invoiced", False, (str(exc),))
    # due by the day the books are posted through (a correction dated later is not due yet)
    pending = fee_changes(
        session, min(session.posted_through() or session.today(), session.today())
    )
    if pending:
        return CheckResult(
            "subscriptions as invoiced",
            False,
            (
                f"{len(pending)} advance fees billed for subscriptions changed since: run "
                "`meterbook post` to "
                "credit or charge the difference",
                *(
                    f"{c.invoice.number} line {c.line} ^{c.link}: billed "
                    f"{c.billed}, now {c.now} ({c.cycle_then} now {c.cycle_now or 'gone'})"
                    for c in pending[:10]
                ),
            ),
        )
    return CheckResult(
        "subscriptions as invoiced",
        True,
        (
            "every invoiced cycle as the subscriptions give it, or corrected by a credit note "
            "or debit adjustment",
        ),
    )
