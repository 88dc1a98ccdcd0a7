"""Rating: cumulative amounts per customer, cycle and charge at each cut-off.

For a cycle ``[2026-09-15, 2026-10-15)`` on plan ``pro`` (graduated API calls,
base fee 49.00 in advance, minimum commitment 100.00), rating through
2026-10-14 gives one :class:`CycleRating` per accrual point::

    through 2026-09-30   api_calls 14,000 calls  →  4.00   base fee recognized 26.13
    through 2026-10-14   api_calls 25,000 calls  → 15.00   base fee recognized 49.00
                                                           commitment shortfall 85.00

Every figure is *cumulative* for the cycle and rounded half-even to the
currency's minor unit; posting books the difference between consecutive
cumulatives, so a cycle's accruals sum exactly to its invoice. Quantities come
from :mod:`ledger.metering` (SQL); prices from the pricing plugins.

Timing rules (DESIGN): an accrual dated D covers usage before D+1 00:00 in the
workspace timezone. Base fees are recognized by day:
``round(billed × days elapsed ÷ days in cycle)``, where ``billed`` is the fee
prorated by days for a cycle cut short by a start, end or plan change. The
minimum commitment (prorated the same way) is compared with gross usage charges
on the cycle's last day. A *ratable* charge (a model with ``ratable = True``, such
as ``flat``: a fee for access over the cycle, not for units) is billed and
recognized exactly like the base fee: its price is prorated by days for a short
cycle and earned by day (:func:`prorate`, :func:`recognize`)::

    flat 92.00, quarter [2026-10-01, 2027-01-01)     through Oct 31 → 31.00
                                                     through Nov 30 → 61.00
                                                     through Dec 31 → 92.00 (invoiced)
    flat 30.00, monthly [2026-11-01, 2026-11-11) cut by a plan change → 10.00

Prepaid credits are drawn oldest-expiring first at each accrual point, never
below zero; usage they cannot cover is billable; what is left at expiry is
breakage. A credit note on a grant's invoice line takes part of the grant back
(:class:`GrantReduction`): from the note's date on the grant has that much less
to draw, so less usage is covered and less expires::

    grant 1000.00 granted 2026-09-01        draws to 2026-10-12: 300.00
    credit note 2026-10-12 on the grant     reduction 500.00 → 200.00 left
    usage after 2026-10-12 draws at most 200.00; breakage at expiry ≤ 200.00

Wallet top-ups (:mod:`ledger.topups`) are grants too, after the rules' ``credits``: the
stored and recurring ones, and the automatic ones this rating decides. With
``wallet: {below: "10.00", top_up: "50.00"}``, an accrual point (a month end or a cycle's
last day) whose draws leave the customer's balance (credit left of the grants granted and
not expired) under 10.00 grants a 50.00 top-up the next day, ``auto:<day>``::

    grant 40.00 granted 2026-10-01     draws on 2026-10-31: 35.00 → 5.00 left < 10.00
    auto:2026-11-01 50.00              drawn from 2026-11-30 on (the 5.00 first if it expires first)

Only a point that drew credit triggers one (an idle or empty wallet never tops itself up),
and at most one per day; the next can only come from a later point's draws.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from ledger.cycles import Cycle, cycles_for
from ledger.discounts import DiscountRating, Part, cycle_discounts, discount_parts
from ledger.errors import PluginError
from ledger.facts.credit_notes import GrantReduction
from ledger.facts.pins import TermsPin
from ledger.facts.topups import TopUp
from ledger.metering import Window, cut_off_us, measure
from ledger.money import ZERO, round_money
from ledger.pricing import Price, PriceLine, PricingModel, Usage
from ledger.rules import Charge, CreditGrant, Customer, Discount, Plan, Rules, WalletGrant
from ledger.topups import grants_of


@dataclass(frozen=True)
class ChargeRating:
    """One charge of a cycle, cumulative through a cut-off."""

    index: int
    meter: str
    model: str
    quantity: Decimal
    events: int
    amount: Decimal
    lines: tuple[PriceLine, ...]
    final: bool


@dataclass(frozen=True)
class BaseFeeRating:
    """A cycle's base fee: what is billed for the cycle and recognized so far."""

    timing: str
    billed: Decimal
    recognized: Decimal


@dataclass(frozen=True)
class CycleRating:
    """A cycle rated cumulatively through ``through`` (inclusive)."""

    cycle: Cycle
    through: date
    currency: str
    charges: tuple[ChargeRating, ...]
    base_fee: BaseFeeRating | None
    commitment_shortfall: Decimal
    credit_applied: Decimal
    #: the customer's discounts on this cycle, per part (:mod:`ledger.discounts`)
    discounts: tuple[DiscountRating, ...] = ()

    def discounted(self, prefix: str, account: str) -> Decimal:
        """The discounts on the parts named ``prefix``… that settle ``account``."""
        return sum(
            (
                d.amount
                for d in self.discounts
                if d.part.startswith(prefix) and d.account == account
            ),
            ZERO,
        )

    @property
    def usage_amount(self) -> Decimal:
        """Gross usage charges before credits."""
        return sum((c.amount for c in self.charges), ZERO)

    @property
    def final_usage(self) -> Decimal:
        return sum((c.amount for c in self.charges if c.final), ZERO)

    @property
    def nonfinal_usage(self) -> Decimal:
        return sum((c.amount for c in self.charges if not c.final), ZERO)

    @property
    def is_cycle_end(self) -> bool:
        return self.through == self.cycle.end - timedelta(days=1)


@dataclass(frozen=True)
class CreditMovement:
    """A prepaid credit grant drawn, returned, expired (breakage) or taken back by a credit note.

    ``grant`` is the grant's index in the customer's ``credits``. Every kind but
    ``return`` lowers what is left of the grant.
    """

    customer: str
    grant: int
    day: date
    kind: str  # "draw" | "return" | "breakage" | "credit_note"
    amount: Decimal
    cycle: Cycle | None = None


def grant_key(grants: Sequence[CreditGrant], index: int) -> str:
    """A grant's stable name: its date and its place among the grants of that date.

    >>> from ledger.rules import CreditGrant
    >>> gs = [CreditGrant(amount=Decimal(5), granted=date(2026, 9, 1)),
    ...       CreditGrant(amount=Decimal(9), granted=date(2026, 9, 1))]
    >>> grant_key(gs, 1)
    '2026-09-01#2'

    A wallet top-up (:class:`~ledger.rules.WalletGrant`) has its own key (``topup:BANK-7``),
    so top-ups never change a rules grant's key.
    """
    grant = grants[index]
    if isinstance(grant, WalletGrant):
        return grant.key
    granted = grant.granted
    ordinal = sum(
        1 for g in grants[: index + 1] if g.granted == granted and not isinstance(g, WalletGrant)
    )
    return f"{granted.isoformat()}#{ordinal}"


def undrawn_credit(
    rating: Rating, grants: Sequence[CreditGrant], customer: str, day: date
) -> dict[str, Decimal]:
    """What is left of each of ``customer``'s grants at the end of ``day``, by :func:`grant_key`:
    granted − drawn + returned − breakage − taken back by credit notes, from ``rating``'s
    movements dated on or before ``day`` (rate through ``day`` so its draws are counted)."""
    left = {g: grant.amount for g, grant in enumerate(grants) if grant.granted <= day}
    for move in rating.credits:
        if move.customer == customer and move.day <= day and move.grant in left:
            left[move.grant] += move.amount if move.kind == "return" else -move.amount
    return {grant_key(grants, g): amount for g, amount in left.items()}


def credit_at_start(
    rating: Rating, grants: Sequence[CreditGrant], customer: str, day: date
) -> dict[str, Decimal]:
    """What is left of each grant at the start of ``day`` (an invoice date), by
    :func:`grant_key`: granted on or before it − drawn + returned before it − expired or
    taken back by credit notes on or before it. Unlike :func:`undrawn_credit` it does not
    depend on how far ``rating`` goes: a rating through ``day`` draws that day's usage too."""
    left = {g: grant.amount for g, grant in enumerate(grants) if grant.granted <= day}
    for move in rating.credits:
        if move.customer != customer or move.grant not in left:
            continue
        if move.day < day or (move.day == day and move.kind in ("breakage", "credit_note")):
            left[move.grant] += move.amount if move.kind == "return" else -move.amount
    return {grant_key(grants, g): amount for g, amount in left.items()}


@dataclass(frozen=True)
class Rating:
    """Everything rated through a date: every accrual point of every cycle."""

    through: date
    cycles: tuple[CycleRating, ...]
    credits: tuple[CreditMovement, ...] = field(default=())
    #: per customer rated, its grants: the rules' ``credits``, then its wallet top-ups
    #: granted through ``through`` (stored, recurring, automatic); ``CreditMovement.grant``
    #: indexes them
    grants: Mapping[str, tuple[CreditGrant, ...]] = field(default_factory=dict)

    def grants_of(self, customer: Customer) -> tuple[CreditGrant, ...]:
        """``customer``'s grants as this rating drew them (its ``credits`` when not rated)."""
        return self.grants.get(customer.id, customer.credits)

    def latest(self) -> list[CycleRating]:
        """The last rating of each cycle (the cycle-to-date view)."""
        last: dict[tuple[str, str], CycleRating] = {}
        for rated in self.cycles:
            last[(rated.cycle.link, rated.cycle.plan)] = rated
        return sorted(
            last.values(), key=lambda r: (r.cycle.customer, r.cycle.start, r.cycle.series)
        )


def cycle_plan(plan: Plan, cycle: Cycle, pin: TermsPin | None = None) -> Plan:
    """The terms a cycle is rated with: the plan version in effect at the cycle's start,
    except what an issued invoice pinned (so a retroactive version changes an issued
    cycle only through ``meterbook rerate``)."""
    if not plan.versions:
        return plan
    in_effect = plan.version_at(cycle.start)
    usage = pin.usage if pin is not None and pin.usage is not None else in_effect
    fee = pin.fee if pin is not None and pin.fee is not None else usage
    terms = plan.as_of(usage)
    return (
        terms if fee == usage else terms.model_copy(update={"base_fee": plan.as_of(fee).base_fee})
    )


def rating_points(cycle: Cycle, through: date) -> tuple[date, ...]:
    """The cut-offs at which a cycle is rated: its accrual points up to
    ``through``, plus ``through`` itself when it falls inside the cycle."""
    points = [d for d in cycle.accrual_points() if d <= through]
    if cycle.start <= through < cycle.end - timedelta(days=1) and through not in points:
        points.append(through)
    return tuple(sorted(points))


def threshold_points(cycle: Cycle, through: date, progress: Collection[date]) -> tuple[date, ...]:
    """The days threshold invoices froze a cycle's accruals through (``progress``), up to
    ``through``: rated like accrual points, so the credit drawn there stays what they billed.
    (Drafting a threshold invoice rates the day before its date on its own, through that day:
    :meth:`ledger.session.Session.draft`.) Never the cycle's last day (the cycle-end invoice's).

    >>> from ledger.cycles import Cycle
    >>> sep, oct = date(2026, 9, 1), date(2026, 10, 1)
    >>> c = Cycle("acme", "pro", sep, oct, sep, oct, 0, True, False)
    >>> threshold_points(c, date(2026, 9, 11), [date(2026, 9, 4), date(2026, 9, 12)])
    (datetime.date(2026, 9, 4),)
    """
    last = cycle.end - timedelta(days=1)
    return tuple(sorted(d for d in progress if d <= through and d in cycle and d != last))


def rate(
    engine: Engine,
    rules: Rules,
    models: Mapping[str, PricingModel],
    tz: ZoneInfo,
    *,
    through: date,
    customers: Collection[str] | None = None,
    pins: Mapping[str, TermsPin] | None = None,
    reductions: Sequence[GrantReduction] | None = None,
    progress: Mapping[str, Collection[date]] | None = None,
    topups: Sequence[TopUp] | None = None,
    settled: Collection[str] = frozenset(),
) -> Rating:
    """Rate every cycle that started on or before ``through``.

    A cycle is also rated at the days threshold invoices froze it through (``progress``, by
    cycle link: :func:`threshold_points`).

    Each cycle with the plan version in effect at its start, or the one ``pins``
    (by cycle link) says it was invoiced under (:func:`cycle_plan`). Prepaid
    credit grants are reduced by ``reductions``; None means the ones the store's
    credit notes made (:func:`ledger.credit_notes.load_grant_reductions`), so
    every caller draws credit exactly as the books post it.

    ``settled``: links of cycles left out, whose invoice's frozen accruals are what rating
    them would give (:meth:`ledger.session.Session.settled`); never a cycle of a customer
    with prepaid credit (grants, a wallet, top-ups), whose draws run through all of its
    cycles in date order.
    """
    if reductions is None:
        from ledger.facts.credit_notes import load_grant_reductions

        reductions = load_grant_reductions(engine)
    if topups is None:
        from ledger.facts.topups import load_topups

        topups = load_topups(engine)
    selected = [
        c for cid, c in sorted(rules.customers.items()) if customers is None or cid in customers
    ]
    plan_points: list[tuple[Customer, Cycle, tuple[date, ...]]] = []
    terms: dict[str, Plan] = {}
    discounts: dict[str, tuple[Discount, ...]] = {}
    topped_up = {topup.customer for topup in topups}
    for customer in selected:
        cycles = cycles_for(customer, rules.plans, until=through + timedelta(days=1))
        discounts.update(cycle_discounts(customer, cycles))  # counted over every cycle
        # prepaid credit (the rules' grants, a wallet, top-ups) is drawn through every cycle
        credit = bool(customer.credits or customer.wallet or customer.id in topped_up)
        for cycle in cycles:
            if cycle.link in settled and not credit:
                continue
            points = rating_points(cycle, through)
            extra = threshold_points(cycle, through, (progress or {}).get(cycle.link, ()))
            if extra:
                points = tuple(sorted({*points, *extra}))
            if points:
                plan_points.append((customer, cycle, points))
                terms[cycle.link] = cycle_plan(
                    rules.plans[cycle.plan], cycle, (pins or {}).get(cycle.link)
                )

    usages = _measure_all(engine, rules, models, tz, plan_points, terms)
    results: list[CycleRating] = []
    movements: list[CreditMovement] = []
    all_grants: dict[str, tuple[CreditGrant, ...]] = {}
    bought: dict[str, list[TopUp]] = defaultdict(list)  # stored top-ups by customer
    for topup in topups:
        bought[topup.customer].append(topup)
    by_customer: dict[str, list[tuple[Cycle, date, _Gross]]] = defaultdict(list)
    for customer, cycle, points in plan_points:
        plan = terms[cycle.link]
        for point in points:
            charges = tuple(
                _rate_charge(
                    i,
                    charge,
                    models,
                    usages[(cycle.link, cycle.plan, i, point)],
                    plan.currency,
                    cycle,
                    point,
                )
                for i, charge in enumerate(plan.charges)
            )
            fee = (
                _base_fee(cycle, plan.base_fee.amount, plan.base_fee.timing, point, plan.currency)
                if plan.base_fee
                else None
            )
            shortfall = _shortfall(
                cycle,
                plan.minimum_commitment,
                sum((c.amount for c in charges), ZERO),
                point,
                plan.currency,
            )
            mine = discounts.get(cycle.link, ())
            off = (
                discount_parts(mine, _parts(charges, fee, shortfall, cycle, point), plan.currency)
                if mine
                else ()
            )
            by_customer[customer.id].append((cycle, point, _Gross(charges, fee, shortfall, off)))

    for customer in selected:
        rows = sorted(
            by_customer.get(customer.id, []), key=lambda r: (r[1], r[0].start, r[0].series)
        )
        taken = [r for r in reductions if r.customer == customer.id and r.day <= through]
        grants = grants_of(customer, bought.get(customer.id, ()), through)
        billed_at = {
            cycle.link: frozenset(threshold_points(cycle, through, progress.get(cycle.link, ())))
            for cycle, _point, _gross in rows
            if progress and cycle.link in progress
        }
        applied, customer_movements, drawn = _apply_credits(
            customer, rows, through, taken, grants, billed_at
        )
        movements.extend(customer_movements)
        all_grants[customer.id] = drawn
        for cycle, point, gross in rows:
            plan = terms[cycle.link]
            results.append(
                CycleRating(
                    cycle=cycle,
                    through=point,
                    currency=plan.currency,
                    charges=gross.charges,
                    base_fee=gross.base_fee,
                    commitment_shortfall=gross.shortfall,
                    credit_applied=applied[(cycle.link, cycle.plan, point)],
                    discounts=gross.discounts,
                )
            )
    results.sort(key=lambda r: (r.cycle.customer, r.cycle.start, r.cycle.series, r.through))
    movements.sort(key=lambda m: (m.customer, m.day, m.grant, m.kind))
    return Rating(
        through=through, cycles=tuple(results), credits=tuple(movements), grants=all_grants
    )


@dataclass(frozen=True)
class _Gross:
    charges: tuple[ChargeRating, ...]
    base_fee: BaseFeeRating | None = None
    shortfall: Decimal = ZERO
    discounts: tuple[DiscountRating, ...] = ()

    @property
    def amount(self) -> Decimal:
        """The usage charges prepaid credit draws on: net of their discounts."""
        usage = sum((c.amount for c in self.charges), ZERO)
        return usage - sum((d.amount for d in self.discounts if d.part.startswith("usage:")), ZERO)


def _parts(
    charges: Sequence[ChargeRating],
    fee: BaseFeeRating | None,
    shortfall: Decimal,
    cycle: Cycle,
    point: date,
) -> list[Part]:
    """A cycle's discountable parts in the order a fixed discount takes from them: the advance
    fee (billed first, on the cycle's first day), the usage charges, the commitment shortfall,
    the arrears fee (:mod:`ledger.discounts`)."""
    parts = []
    if fee is not None and fee.timing == "advance":
        earned = Fraction(days_elapsed(cycle, point), cycle.days)  # by day, as :func:`recognize`
        parts.append(Part("base_fee", "deferred", fee.billed, earned))
    for c in charges:
        parts.append(
            Part(f"usage:{c.meter}", "unbilled" if c.final else "contract_asset", c.amount)
        )
    if shortfall:
        parts.append(Part("commitment", "unbilled", shortfall))
    if fee is not None and fee.timing == "arrears":
        parts.append(Part("base_fee", "unbilled", fee.recognized))
    return parts


def _measure_all(
    engine: Engine,
    rules: Rules,
    models: Mapping[str, PricingModel],
    tz: ZoneInfo,
    plan_points: Iterable[tuple[Customer, Cycle, tuple[date, ...]]],
    terms: Mapping[str, Plan],
) -> dict[tuple[str, str, int, date], Usage]:
    """One metering call per (meter, bands): every window of every cycle at once."""
    requests: dict[tuple[str, tuple[Decimal, ...]], set[Window]] = defaultdict(set)
    keys: list[tuple[tuple[str, str, int, date], str, tuple[Decimal, ...], Window]] = []
    for _customer, cycle, points in plan_points:
        start_us = cut_off_us(cycle.start, tz)
        for i, charge in enumerate(terms[cycle.link].charges):
            where = (
                f"pricing model {charge.model!r} on {cycle.customer} {cycle.key} ({charge.meter})"
            )
            bands = charge_bands(models[charge.model], charge, where)
            for point in points:
                window = Window(cycle.customer, start_us, cut_off_us(point + timedelta(days=1), tz))
                requests[(charge.meter, bands)].add(window)
                keys.append(
                    (
                        (cycle.link, cycle.plan, i, point),
                        charge.meter,
                        bands,
                        window,
                    )
                )
    measured = {
        (meter, bands): measure(engine, rules.meters[meter], sorted(windows), bands)
        for (meter, bands), windows in sorted(requests.items())
    }
    return {key: measured[(meter, bands)][window] for key, meter, bands, window in keys}


def is_ratable(model: PricingModel) -> bool:
    """True when ``model`` prices access over the cycle rather than units: its
    optional ``ratable`` attribute (absent means False, see :class:`PricingModel`)."""
    return getattr(model, "ratable", False) is True


def _plugin_call(
    charge: Charge, cycle: Cycle, method: str, call: Callable[..., Any], *args: Any
) -> Any:
    """``call(*args)`` of a pricing plugin; anything it raises is a :class:`PluginError`
    naming it."""
    try:
        return call(*args)
    except Exception as exc:  # a plugin's bug or refusal: name it, never a traceback
        raise PluginError(
            f"pricing model {charge.model!r} on {cycle.customer} {cycle.key} ({charge.meter}) "
            f"failed in {method}(): {type(exc).__name__}: {exc}"
        ) from None


def charged(
    model: PricingModel, amount: Decimal, cycle: Cycle, point: date, currency: str
) -> Decimal:
    """What a charge the model priced at ``amount`` (unrounded) counts in ``cycle`` through
    ``point``: rounded to the currency; a ratable one (a stand-ready obligation satisfied
    over time) prorated for a short cycle and earned by day, like the base fee."""
    if is_ratable(model):
        return recognize(prorate(amount, cycle, currency), cycle, point, currency)
    return round_money(amount, currency)


def price_charge(model: PricingModel, charge: Charge, usage: Usage, where: str) -> Price:
    """The one way to price a charge: the plugin's :class:`~ledger.pricing.Price` for
    ``usage``, checked. Rating, alerts, statements and forecasts all price through here, so
    a plugin's result is validated wherever it is used: anything the plugin raises, or a
    result that is not a ``Price`` with a finite Decimal amount and ``PriceLine`` lines, is a
    :class:`PluginError` naming ``where`` (the model, customer, cycle and meter)."""
    try:
        price = model.price(charge.terms, usage)
    except Exception as exc:  # a plugin's bug or refusal: name it, never a traceback
        raise PluginError(f"{where} failed in price(): {type(exc).__name__}: {exc}") from None
    if not (
        isinstance(price, Price)
        and isinstance(price.amount, Decimal)
        and price.amount.is_finite()
        and all(isinstance(line, PriceLine) for line in price.lines)
    ):
        raise PluginError(
            f"{where} returned {price!r:.200}, not a Price with a finite Decimal amount"
        )
    return price


def charge_bands(model: PricingModel, charge: Charge, where: str) -> tuple[Decimal, ...]:
    """The one way to ask a pricing plugin for a charge's per-event bands, checked like
    :func:`price_charge`: anything the plugin raises, or a result that is not a sequence of
    finite Decimal thresholds in ascending order (what :func:`ledger.metering.measure` counts
    events between), is a :class:`PluginError` naming ``where``."""
    try:
        bands = model.bands(charge.terms)
    except Exception as exc:  # a plugin's bug or refusal: name it, never a traceback
        raise PluginError(f"{where} failed in bands(): {type(exc).__name__}: {exc}") from None
    if not (
        isinstance(bands, tuple | list)
        and all(isinstance(b, Decimal) and b.is_finite() for b in bands)
        and list(bands) == sorted(bands)
    ):
        raise PluginError(
            f"{where} returned {bands!r:.200} from bands(), not finite Decimal thresholds in "
            "ascending order"
        )
    return tuple(bands)


def _rate_charge(
    index: int,
    charge: Charge,
    models: Mapping[str, PricingModel],
    usage: Usage,
    currency: str,
    cycle: Cycle,
    point: date,
) -> ChargeRating:
    model = models[charge.model]
    where = f"pricing model {charge.model!r} on {cycle.customer} {cycle.key} ({charge.meter})"
    price = price_charge(model, charge, usage, where)
    amount, lines = charged(model, price.amount, cycle, point, currency), price.lines
    if is_ratable(model):
        lines = tuple(_ratable_line(line, cycle, point, currency) for line in lines)
    return ChargeRating(
        index=index,
        meter=charge.meter,
        model=charge.model,
        quantity=usage.quantity,
        events=usage.events,
        amount=amount,
        lines=lines,
        final=_plugin_call(charge, cycle, "price_is_final", model.price_is_final, charge.terms)
        is True,
    )


def _ratable_line(line: PriceLine, cycle: Cycle, point: date, currency: str) -> PriceLine:
    """A ratable charge's breakdown line as of ``point``: prorated for a short cycle
    (``flat fee per cycle, 61/92 days: 1 × 331.52 = 331.52``), and before the
    cycle's last day showing what is earned so far (``…, 31 of 92 days to date: 1 = 31.00``)."""
    description, unit_price = line.description, line.unit_price
    billed = prorate(line.amount, cycle, currency)
    if cycle.proration() != 1:
        description += f", {cycle.days}/{cycle.nominal_days} days"
        if unit_price is not None:
            unit_price = prorate(unit_price, cycle, currency)
    elapsed = days_elapsed(cycle, point)
    if elapsed < cycle.days:
        description += f", {elapsed} of {cycle.days} days to date"
        unit_price = None  # the amount is a share of quantity × price, not their product
    return PriceLine(
        description, line.quantity, unit_price, recognize(billed, cycle, point, currency)
    )


def _fraction_of(amount: Decimal, fraction: Fraction) -> Decimal:
    return amount * fraction.numerator / Decimal(fraction.denominator)


def days_elapsed(cycle: Cycle, point: date) -> int:
    """Days of ``cycle`` up to and including ``point``: ``[Oct 1, Jan 1)`` through Oct 31 → 31."""
    return (point - cycle.start).days + 1


def prorate(amount: Decimal, cycle: Cycle, currency: str) -> Decimal:
    """What ``cycle`` bills of an amount per full cycle: prorated by days when the cycle
    is cut short (:meth:`Cycle.proration`), rounded to the currency (base fee,
    minimum commitment, ratable charges).

    >>> from ledger.cycles import Cycle
    >>> cut = Cycle("acme", "pro", date(2026, 11, 1), date(2026, 11, 11),
    ...             date(2026, 11, 1), date(2026, 12, 1), 0, False, True)
    >>> prorate(Decimal("30.00"), cut, "USD")
    Decimal('10.00')
    """
    return round_money(_fraction_of(amount, cycle.proration()), currency)


def recognize(billed: Decimal, cycle: Cycle, point: date, currency: str) -> Decimal:
    """What is earned of ``billed`` by the end of ``point``, cumulative:
    ``round(billed × days elapsed ÷ days in cycle)``, so the last day earns all of it.

    >>> from ledger.cycles import Cycle
    >>> quarter = Cycle("acme", "ent", date(2026, 10, 1), date(2027, 1, 1),
    ...                 date(2026, 10, 1), date(2027, 1, 1), 0, True, False)
    >>> [str(recognize(Decimal("92.00"), quarter, d, "USD")) for d in quarter.accrual_points()]
    ['31.00', '61.00', '92.00']
    """
    return round_money(
        _fraction_of(billed, Fraction(days_elapsed(cycle, point), cycle.days)), currency
    )


def _base_fee(cycle: Cycle, fee: Decimal, timing: str, point: date, currency: str) -> BaseFeeRating:
    billed = prorate(fee, cycle, currency)
    return BaseFeeRating(
        timing=timing, billed=billed, recognized=recognize(billed, cycle, point, currency)
    )


def _shortfall(
    cycle: Cycle, minimum: Decimal | None, gross: Decimal, point: date, currency: str
) -> Decimal:
    if minimum is None or point != cycle.end - timedelta(days=1):
        return ZERO
    return max(ZERO, prorate(minimum, cycle, currency) - gross)


def _apply_credits(
    customer: Customer,
    rows: list[tuple[Cycle, date, _Gross]],
    through: date,
    reductions: Sequence[GrantReduction] = (),
    grants: Sequence[CreditGrant] | None = None,
    billed_at: Mapping[str, Collection[date]] | None = None,
) -> tuple[dict[tuple[str, str, date], Decimal], list[CreditMovement], tuple[CreditGrant, ...]]:
    """Draw each cycle's usage from prepaid credits, point by point in date order.

    A cycle's cumulative credited amount never exceeds its cumulative usage:
    when usage falls (volume tiers), the excess goes back to the grants it came
    from, newest draw first. Grants are drawn oldest-expiring first, only while
    ``granted <= day < expires``.

    ``billed_at``: per cycle link, the days threshold invoices billed it through
    (:func:`threshold_points`). What such an invoice billed is not drawn from credit
    afterwards: from then on the cycle's credit grows by at most its usage's growth since
    that day. A 20.00 top-up bought after a threshold invoice billed 5.00 of a cycle's
    usage pays for the 3.00 used since, not for all 8.00 (the threshold invoice would be
    paid twice, once by the customer and once from the wallet, and the cycle's unbilled
    usage would be −5.00 until the cycle-end invoice gave it back).

    A credit note's reduction dated D takes its amount off the grant before the
    draws of the points dated D. The note was checked against the grant's balance
    rated through D, after the draws known then, so those draws still fit; usage of
    D or before that arrives after the note draws only what the note left (36.00
    bought, 1.00 drawn at Sep 30, 19.44 credited that day: late usage of Sep 30
    draws at most 16.56, the rest is billed; drawn after the note, it took 35.00 of
    the 36.00 and deferred revenue ended 18.44 in debit). It is not capped: the
    books debit deferred revenue by exactly this amount, so a grant whose balance
    usage of earlier points has since drawn below it stays negative (nothing more
    is drawn from it, nothing expires) and deferred revenue shows the same.

    ``grants``: the customer's grants (default its ``credits``); an automatic top-up
    (``wallet.below``) is appended to them the day after an accrual point whose draws left
    the balance under the level, if that day is ``through`` or earlier. Returns the credit
    applied per cycle and point, the movements and the grants drawn from.
    """
    grants = list(customer.credits if grants is None else grants)
    remaining = [g.amount for g in grants]
    draws: dict[tuple[str, str], list[tuple[int, Decimal]]] = defaultdict(list)
    credited: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    applied: dict[tuple[str, str, date], Decimal] = {}
    movements: list[CreditMovement] = []
    expired: set[int] = set()

    def expire_before(day: date) -> None:
        for g, grant in enumerate(grants):
            if g not in expired and grant.expires is not None and grant.expires <= day:
                expired.add(g)
                if remaining[g] > 0:
                    movements.append(
                        CreditMovement(customer.id, g, grant.expires, "breakage", remaining[g])
                    )
                    remaining[g] = ZERO

    by_key = {grant_key(grants, g): g for g in range(len(grants))}
    # a reduction of an automatic top-up names a grant this loop adds before the reduction's day
    pending = sorted(reductions, key=lambda r: (r.day, r.note, r.key))

    def take_back_before(day: date) -> None:
        while pending and pending[0].day <= day:
            r = pending.pop(0)
            if r.key not in by_key:
                continue
            expire_before(r.day)
            g = by_key[r.key]
            remaining[g] -= r.amount
            movements.append(CreditMovement(customer.id, g, r.day, "credit_note", r.amount))

    def draw_order() -> list[int]:
        return sorted(
            range(len(grants)), key=lambda g: (grants[g].expires or date.max, grants[g].granted, g)
        )

    order = draw_order()
    wallet = customer.wallet
    below = wallet.below if wallet is not None else None
    drew = False  # the current point's rows drew credit

    def top_up_after(point: date) -> None:
        """The automatic top-up, once the last row of an accrual point has drawn."""
        nonlocal order
        day = point + timedelta(days=1)
        if below is None or not drew or day > through:
            return
        balance = sum(
            (
                max(remaining[g], ZERO)
                for g, grant in enumerate(grants)
                if g not in expired
                and grant.granted <= point
                and (grant.expires is None or grant.expires > point)
            ),
            ZERO,
        )
        if balance < below:
            from ledger.topups import auto_grant

            grants.append(auto_grant(customer, day))
            remaining.append(grants[-1].amount)
            by_key[grant_key(grants, len(grants) - 1)] = len(grants) - 1
            order = draw_order()

    #: per cycle, its usage and credit at the latest threshold invoice's day so far
    frozen: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for n, (cycle, point, gross) in enumerate(rows):
        take_back_before(point)  # a note of the point's day: before its draws
        expire_before(point)
        key = (cycle.link, cycle.plan)
        target = gross.amount
        if key in frozen:
            usage_then, credit_then = frozen[key]
            target = min(target, credit_then + max(ZERO, gross.amount - usage_then))
        have = credited[key]
        if target < have:  # usage fell: give back the excess, newest draw first
            excess = have - target
            while excess > 0 and draws[key]:
                g, amount = draws[key].pop()
                back = min(amount, excess)
                if amount > back:
                    draws[key].append((g, amount - back))
                excess -= back
                have -= back
                if g in expired:  # the grant already expired: what comes back is breakage now
                    movements.append(CreditMovement(customer.id, g, point, "breakage", back))
                else:
                    remaining[g] += back
                movements.append(CreditMovement(customer.id, g, point, "return", back, cycle))
        elif target > have:
            need = target - have
            for g in order:
                grant = grants[g]
                if need <= 0:
                    break
                if g in expired or grant.granted > point or remaining[g] <= 0:
                    continue
                take = min(need, remaining[g])
                remaining[g] -= take
                need -= take
                have += take
                draws[key].append((g, take))
                movements.append(CreditMovement(customer.id, g, point, "draw", take, cycle))
                drew = drew or point in cycle.accrual_points()
        credited[key] = have
        applied[(cycle.link, cycle.plan, point)] = have
        if billed_at and point in billed_at.get(cycle.link, ()):
            frozen[key] = (gross.amount, have)
        if n + 1 == len(rows) or rows[n + 1][1] != point:  # the point's last row
            top_up_after(point)
            drew = False
    take_back_before(through + timedelta(days=1))
    expire_before(through)
    return applied, movements, tuple(grants)


# --- the rating as text (meterbook rate) ---------------------------------------------


def rated_lines(rating: Rating, *, as_json: bool = False) -> Iterator[str]:
    """The cycle-to-date rating of every cycle, one charge per line (``meterbook rate``), each
    with its tiers and the cycle's base fee, commitment shortfall and credit applied::

        acme  2026-08-15/2026-09-15  storage_gb  unit  128.8  12.88 USD
            128.8 units: 128.8 × 0.10 = 12.880
            acme 2026-08-15/2026-09-15: base fee 49.00/49.00 recognized; commitment shortfall …

    ``as_json``: one JSON object per charge (its tiers included, keys sorted) a line.
    """
    for rated in rating.latest():
        cycle = rated.cycle
        for charge in rated.charges:
            if as_json:
                yield json.dumps(
                    {
                        "customer": cycle.customer,
                        "cycle": cycle.key,
                        "plan": cycle.plan,
                        "through": str(rated.through),
                        "charge": charge.index,
                        "meter": charge.meter,
                        "model": charge.model,
                        "quantity": str(charge.quantity),
                        "amount": str(charge.amount),
                        "currency": rated.currency,
                        "final": charge.final,
                        "tiers": [
                            {
                                "description": t.description,
                                "quantity": str(t.quantity),
                                "unit_price": None if t.unit_price is None else str(t.unit_price),
                                "amount": str(t.amount),
                            }
                            for t in charge.lines
                        ],
                    },
                    sort_keys=True,
                )
            else:
                yield (
                    f"{cycle.customer}  {cycle.key}  {charge.meter}  {charge.model}  "
                    f"{charge.quantity}  {charge.amount} {rated.currency}"
                )
                for tier in charge.lines:
                    price = f" × {tier.unit_price}" if tier.unit_price is not None else ""
                    yield f"    {tier.description}: {tier.quantity}{price} = {tier.amount}"
        extras = []
        if rated.base_fee is not None:
            extras.append(
                f"base fee {rated.base_fee.recognized}/{rated.base_fee.billed} recognized"
            )
        if rated.commitment_shortfall:
            extras.append(f"commitment shortfall {rated.commitment_shortfall}")
        if rated.credit_applied:
            extras.append(f"credit applied {rated.credit_applied}")
        if extras and not as_json:
            yield f"    {cycle.customer} {cycle.key}: " + "; ".join(extras) + f" {rated.currency}"
