"""Accrual points: what a cycle's rating says the books must hold.

:func:`targets` gives a cycle's cumulative balances at a rated point (usage
revenue per meter, unbilled, contract asset, deferred, fee and commitment
revenue); :func:`snapshot` freezes them into the
:class:`~ledger.facts.invoices.Snapshot` an invoice keeps; :func:`plan_points`
chooses, per cycle, the live snapshots or the frozen ones of an invoiced cycle,
and the late differences between them.

With tax-inclusive prices the books hold each part net of the tax it holds
(:class:`Inclusion`, :func:`net_targets`): 119.00 of usage with 19 % VAT in it is
accrued as 100.00 of revenue and unbilled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.facts.invoices import Snapshot
from ledger.money import ZERO, round_money
from ledger.rating import CycleRating, Rating, recognize

if TYPE_CHECKING:
    from ledger.discounts import DiscountRating
    from ledger.facts.invoices import Invoice


def split_credit(rated: CycleRating) -> tuple[Decimal, Decimal]:
    """Credit applied to final-price usage first (unbilled), then to the rest (contract asset);
    usage net of its discounts (:mod:`ledger.discounts`), as credit draws it."""
    final = min(rated.credit_applied, rated.final_usage - rated.discounted("usage:", "unbilled"))
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
    for d in rated.discounts:
        # contra-revenue in the period of the revenue it discounts: with the usage accrued, or
        # by day with an advance fee (out of deferred revenue, which the invoice booked net)
        out["discount:"] += d.recognized
        out[d.account] -= d.recognized
    return {k: v for k, v in out.items() if v}


# --- tax-inclusive prices: accrued net of the tax they hold --------------------------------------


def net_of_tax(amount: Decimal, rates: Sequence[Decimal], currency: str) -> Decimal:
    """``amount``, a price that includes tax at ``rates``, less that tax: per rate
    ``round(amount × rate ÷ (1 + all the rates))``, half-even, as
    :func:`ledger.tax.standard_tax` taxes one line of tax-inclusive prices.

    >>> net_of_tax(Decimal("119.00"), [Decimal("0.19")], "EUR")
    Decimal('100.00')
    >>> net_of_tax(Decimal("61.42"), [Decimal("0.19")], "EUR")     # 61.42 − round(9.8066)
    Decimal('51.61')
    >>> net_of_tax(Decimal("108.90"), [Decimal("0.0725"), Decimal("0.01375")], "USD")
    Decimal('100.25')
    """
    if not rates:
        return amount
    combined = 1 + sum(rates, ZERO)
    return amount - sum((round_money(amount * r / combined, currency) for r in rates), ZERO)


def fee_booked(amount: Decimal, booked: Decimal, billed: Decimal, currency: str) -> Decimal:
    """What deferred revenue recognizes of an advance fee invoiced at ``amount``, of which the
    invoice booked ``booked`` to deferred revenue (net of the tax a tax-inclusive price holds),
    now that the cycle bills ``billed``: ``billed`` less the tax the invoice took out, plus the
    share of it that a subscription change's credit note for the days taken away gives back
    (``round(tax × (amount − billed) ÷ amount)``, as :func:`ledger.tax.booked_share`), so deferred
    revenue ends the cycle at exactly 0.

    >>> fee_booked(Decimal("119.00"), Decimal("100.00"), Decimal("119.00"), "EUR")
    Decimal('100.00')
    >>> fee_booked(Decimal("31.00"), Decimal("26.05"), Decimal("10.00"), "EUR")  # 10 − 4.95 + 3.35
    Decimal('8.40')
    """
    tax = amount - booked
    if tax and billed < amount:  # a fee cut to nothing gets all its tax back: recognizes 0
        return billed - tax + round_money(tax * (amount - billed) / amount, currency)
    return billed - tax


@dataclass(frozen=True)
class Inclusion:
    """The tax a cycle's tax-inclusive prices hold, as the tax plugin says when it is accrued
    (:func:`ledger.tax.included_taxes`).

    ``rates``: per part of the cycle's bill (``usage:<meter>``, ``commitment``, ``base_fee``),
    the rates of the tax charged on it (none: untaxed, exempt or reverse-charged).
    ``fee``: the cycle's advance base fee as an issued invoice billed it, ``(amount, booked)``:
    deferred revenue recognizes what that invoice booked (:func:`fee_booked`), whatever the
    rules say since, as it keeps the amount.

    >>> kunde = Inclusion("EUR", {"usage:api_calls": (Decimal("0.19"),)})
    >>> kunde.net("usage:api_calls", Decimal("119.00")), kunde.net("commitment", Decimal("5"))
    (Decimal('100.00'), Decimal('5'))
    """

    currency: str
    rates: Mapping[str, tuple[Decimal, ...]] = field(default_factory=dict)
    fee: tuple[Decimal, Decimal] | None = None

    def net(self, part: str, amount: Decimal) -> Decimal:
        """``amount`` of ``part`` less the tax it holds."""
        return net_of_tax(amount, self.rates.get(part, ()), self.currency)

    def advance_fee(self, billed: Decimal) -> Decimal:
        """What deferred revenue holds and recognizes of an advance fee of ``billed``: what its
        invoice booked (:func:`fee_booked`), or, not invoiced yet, ``billed`` net of its tax."""
        if self.fee is not None:
            return fee_booked(*self.fee, billed, self.currency)
        return self.net("base_fee", billed)


def net_targets(rated: CycleRating, included: Inclusion) -> dict[str, Decimal]:
    """:func:`targets` with tax-inclusive prices: each part net of the tax it holds.

    kunde's calendar-month cycle, 476 calls at 0.25 EUR with 19 % VAT included, through
    Oct 31: 119.00 of usage is 119.00 − round(119.00 × 0.19 ÷ 1.19) = 100.00 of revenue
    and unbilled, what the invoice of Nov 1 moves to the receivable with 19.00 of VAT.

    Each part (a charge, the commitment shortfall, an arrears fee) is netted on its own,
    cumulatively, as the invoice's lines will be (:attr:`ledger.facts.invoices.InvoiceLine.net`), so
    unbilled is what they settle. An advance fee is recognized by day out of what its invoice
    booked to deferred revenue (:meth:`Inclusion.advance_fee`): 119.00 a month from
    Oct 16 is round(100.00 × 16 ÷ 31) = 51.61 of October revenue. Prepaid credit drawn keeps
    its amount: a grant's deferred revenue is booked with its tax (see the manual "Taxes").
    """
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for charge in rated.charges:
        amount = included.net(f"usage:{charge.meter}", charge.amount)
        out[f"usage_revenue:{charge.meter}"] += amount
        out["unbilled" if charge.final else "contract_asset"] += amount
    final_credit, nonfinal_credit = split_credit(rated)
    out["unbilled"] -= final_credit
    out["contract_asset"] -= nonfinal_credit
    out["deferred"] += rated.credit_applied
    if rated.commitment_shortfall:
        shortfall = included.net("commitment", rated.commitment_shortfall)
        out["commitment_revenue:"] += shortfall
        out["unbilled"] += shortfall
    fee = rated.base_fee
    if fee is not None and fee.recognized:
        if fee.timing == "advance":
            cycle = rated.cycle
            earned = recognize(
                included.advance_fee(fee.billed), cycle, rated.through, rated.currency
            )
        else:
            earned = included.net("base_fee", fee.recognized)
        out[f"subscription_revenue:{rated.cycle.plan}"] += earned
        out["deferred" if fee.timing == "advance" else "unbilled"] += earned
    for d in rated.discounts:  # each netted with the rates of the part it discounts
        net = included.net(d.part, d.amount)
        if d.account == "deferred":
            net = recognize(net, rated.cycle, rated.through, rated.currency)
        out["discount:"] += net
        out[d.account] -= net
    return {k: v for k, v in out.items() if v}


def snapshot(rated: CycleRating, evidence: str = "", included: Inclusion | None = None) -> Snapshot:
    """Freeze a cycle rating into the record invoices keep (``included``: the tax its
    tax-inclusive prices hold, :func:`ledger.tax.included_taxes`)."""
    quantities: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for charge in rated.charges:
        quantities[charge.meter] = charge.quantity
    gross = tuple(sorted(targets(rated).items()))
    net = tuple(sorted(net_targets(rated, included).items())) if included is not None else ()
    return Snapshot(
        link=rated.cycle.link,
        customer=rated.cycle.customer,
        cycle=rated.cycle.key,
        plan=rated.cycle.plan,
        through=rated.through,
        currency=rated.currency,
        targets=gross,
        quantities=tuple(sorted(quantities.items())),
        evidence=evidence,
        net=net if net != gross else (),
    )


def fee_as_accrued(at: CycleRating, ratings: Sequence[CycleRating]) -> CycleRating:
    """``at`` with its base fee recognized as at the cycle's last accrual point before it (0
    before the first): a threshold invoice's accrual moves usage only, so the fee is recognized
    at the accrual points alone, as the credit notes that reduce its recognition are booked
    (:func:`ledger.journal.credit_notes.fee_reduction_entries`)."""
    fee = at.base_fee
    if fee is None or at.through in at.cycle.accrual_points():
        return at  # a month end's own point: its fee recognized there (a threshold on the 1st)
    earlier = [
        r for r in ratings if r.through < at.through and r.through in at.cycle.accrual_points()
    ]
    before = earlier[-1] if earlier else None
    recognized = before.base_fee.recognized if before and before.base_fee else ZERO
    # so are its discounts (contra-revenue by day, as the fee)
    was = list(before.discounts) if before is not None else []
    discounts = tuple(
        d if d.part != "base_fee" else replace(d, recognized=_same(d, was)) for d in at.discounts
    )
    return replace(at, base_fee=replace(fee, recognized=recognized), discounts=discounts)


def _same(discount: DiscountRating, earlier: Sequence[DiscountRating]) -> Decimal:
    """What the same discount (label, part, account) had recognized at an earlier point."""
    key = (discount.label, discount.part, discount.account)
    found = [d.recognized for d in earlier if (d.label, d.part, d.account) == key]
    return found[0] if found else ZERO


def late_targets(now: Snapshot, frozen: Snapshot) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """The balances a late entry moves the books from (``frozen``, as invoiced) and to (``now``):
    net of the tax in tax-inclusive prices when the invoice froze them net, else the prices
    (an invoice issued before accruals were net of tax: its cycle stays as it was booked)."""
    if frozen.net or not now.net:
        return now.booked, frozen.booked
    return dict(now.targets), dict(frozen.targets)


def plan_points(
    rating: Rating,
    invoices: Sequence[Invoice],
    *,
    first_open: date,
    evidence: Mapping[tuple[str, date], str] | None = None,
    included: Mapping[str, Inclusion] | None = None,
) -> tuple[list[Snapshot], list[tuple[Snapshot, Snapshot, date]]]:
    """The snapshots to post (frozen ones for invoiced cycles) and the late differences;
    ``included``: per cycle link, the tax its tax-inclusive prices hold.

    A late difference is dated on the day its invoice line waits from
    (:func:`late_day`), so every invoice settles exactly the unbilled and contract-asset
    balances its customer's books hold before its date."""
    frozen: dict[str, list[Snapshot]] = defaultdict(list)
    invoice_date: dict[str, date] = {}
    # threshold invoices froze a cycle through a day of their own: posted as such, in the place
    # of any other snapshot of that day, while the cycle's later points accrue on
    progress: dict[str, dict[date, Snapshot]] = defaultdict(dict)
    for inv in invoices:
        for snap in inv.accruals:
            frozen[snap.link].append(snap)
            invoice_date[snap.link] = inv.date
        for snap in inv.progress:
            progress[snap.link][snap.through] = snap
    digests = evidence or {}
    included = included or {}

    def with_evidence(snap: Snapshot) -> Snapshot:
        # read only for the snapshots posted: an invoiced cycle's evidence is frozen with it
        return replace(snap, evidence=digests.get((snap.link, snap.through), ""))

    live: dict[str, list[Snapshot]] = defaultdict(list)
    for rated in rating.cycles:
        if rated.through in rated.cycle.accrual_points():
            live[rated.cycle.link].append(snapshot(rated, "", included.get(rated.cycle.link)))
    points: list[Snapshot] = []
    late: list[tuple[Snapshot, Snapshot, date]] = []
    for link in sorted(set(live) | set(frozen) | set(progress)):
        mine = progress.get(link, {})
        points.extend(mine.values())
        if link in frozen:
            points.extend(s for s in frozen[link] if s.through not in mine)
            last_frozen = max(frozen[link], key=lambda s: s.through)
            now = [s for s in live.get(link, []) if s.through == last_frozen.through]
            if now and now[0].targets != last_frozen.targets:
                day = max(invoice_date[link], first_open)
                if any(now[0].target(k) != last_frozen.target(k) for k in SETTLED):
                    day = late_day(link, now[0].customer, day, invoices)
                late.append((with_evidence(now[0]), last_frozen, day))
        else:
            points.extend(with_evidence(s) for s in live.get(link, []) if s.through not in mine)
    return points, late


#: The targets an invoice settles (its lines take them out of the books).
SETTLED = ("unbilled", "contract_asset")


def late_day(link: str, customer: str, day: date, invoices: Sequence[Invoice]) -> date:
    """The day the books post a cycle's late difference on: ``day`` (its invoice's date, or
    the first open day), or the date of the customer's latest invoice when that is later,
    as of the invoice that billed the difference's late line (or now, unbilled).

    That is the day its late line waits from (:func:`ledger.invoicing.late_usage`): usage
    that arrived after a later invoice of the customer was issued is billed on the next
    one, so the books hold it from that later invoice's date; dated on its cycle's invoice,
    the later invoice would settle less than its customer's books hold before it. The day
    does not move once billed: the latest invoice before the one that billed the line is the
    latest there was when the line waited. (Late usage billed in parts, part of it arriving
    after a later invoice billed the rest, is dated on the first part's day.)

    vol's cycle ``[Aug 15, Sep 15)`` was invoiced on Sep 15, its next cycle on Oct 15;
    usage of Sep 11 that arrives after that is dated Oct 15, and billed on Nov 15:

    >>> from ledger.facts.invoices import Invoice, InvoiceLine
    >>> def inv(number, day, *lines):
    ...     return Invoice("vol", day, "USD", lines, rules="", number=number)
    >>> late = InvoiceLine("late_usage", "late", "contract_asset", Decimal("-0.74"), link="a")
    >>> issued = [inv("1", date(2026, 9, 15)), inv("2", date(2026, 10, 15))]
    >>> late_day("a", "vol", date(2026, 9, 15), issued)
    datetime.date(2026, 10, 15)
    >>> late_day("a", "vol", date(2026, 9, 15), [*issued, inv("3", date(2026, 11, 15), late)])
    datetime.date(2026, 10, 15)

    Arrived before Oct 15 and billed there, it stays on Sep 15:

    >>> late_day("a", "vol", date(2026, 9, 15), [issued[0], inv("2", date(2026, 10, 15), late)])
    datetime.date(2026, 9, 15)
    """
    own = [inv for inv in invoices if inv.customer == customer]
    billers = [
        inv.date
        for inv in own
        if any(line.kind == "late_usage" and line.link == link for line in inv.lines)
    ]
    until = min(billers) if billers else date.max
    return max([day, *(inv.date for inv in own if inv.date < until)])
