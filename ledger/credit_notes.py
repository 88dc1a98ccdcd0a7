"""Credit notes: an issued invoice reduced after the fact, numbered, documented, posted.

``meterbook credit INV-2026-000001 --amount 30.00 --reason "outage 2026-10-03"``
on a 100.00 USD invoice of which 80.00 is already paid leaves 20.00 unpaid, so
the credit note first cancels what is still owed and the rest becomes a refund
the vendor owes the customer (DESIGN's accounting table)::

    2026-10-28 * "acme" "Credit note CN-2026-000001 for INV-2026-000001" ^CN-2026-000001 ^INV-2026-000001 ^acme-2026-09-01
      customer: "acme"
      invoice: "INV-2026-000001"
      credit_note: "CN-2026-000001"
      reason: "outage 2026-10-03"
      Income:Credit-Notes                     30.00 USD
      Assets:Receivables:Invoiced:Acme       -20.00 USD
      Liabilities:Refunds:Acme               -10.00 USD
    2026-10-28 document Assets:Receivables:Invoiced:Acme "../documents/CN-2026-000001.html" ^CN-2026-000001

**What the note debits depends on the line it credits.** Revenue already
recognized is given back through contra-revenue (``credit_notes``); an amount
billed to deferred revenue and not yet recognized was never revenue, so the
note takes it out of deferred revenue instead (ASC 606: the liability for a
performance obligation not yet satisfied is reduced)::

    globex bought 1000.00 of prepaid credit (INV-2026-000001, deferred) and drew
    300.00 of it by 2026-10-12; a note crediting 500.00 that day:
      Liabilities:Deferred-Revenue:Globex     500.00 USD
      Assets:Receivables:Invoiced:Globex     -500.00 USD
    the grant has 200.00 left from then on (ledger.rating draws less), and
    breakage at expiry is at most 200.00, not 700.00

- a ``credit_grant`` line: deferred up to the grant's undrawn balance at the
  note's date (rated through that date); more is refused unless ``--force``,
  and the excess is then contra-revenue;
- an advance ``base_fee`` line: the part of the fee not yet recognized by the
  day before the note is deferred, the rest contra-revenue; the deferred part
  is taken out of the rest of the cycle's recognition ratably by day, by
  entries at the cycle's remaining accrual points (Dr subscription revenue /
  Cr deferred revenue, :func:`fee_reduction_entries`), so the cycle's deferred
  revenue ends at exactly 0;
- every other line (usage, commitment, arrears fee, late usage): contra-revenue.

A note without ``--line`` is allocated over the invoice's lines pro rata to
what each can still be credited (largest remainder to the cent, ties to the
earlier line): a concession on a whole invoice changes the price of every
obligation it bills in proportion, as ASC 606-10-32-43 allocates a change in
the transaction price. The split is fixed when the note is issued
(:class:`CreditPart`) and printed on its documents.

Numbers ``CN-YYYY-NNNNNN`` are sequential per workspace and never reused; the
note is a fact in the store's ``credit_notes`` table and its documents (HTML
for people, JSON for machines) live in ``books/documents/`` next to the
invoices'. Which part is unpaid is decided by :func:`ledger.payments.settle`
from the stored payments and notes, in date order, so the books come out the
same however often they are regenerated.

A note never credits more than the invoice's *creditable* amount (total −
earlier credit notes), nor with ``--line N`` more than that line's amount −
earlier notes on that line, unless ``--force`` (the excess is then a refund).
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select

from ledger.accruals import fee_booked
from ledger.errors import BadInput, SealedMonthError
from ledger.facts.credit_notes import CreditNote, CreditPart
from ledger.facts.invoices import Invoice
from ledger.money import ZERO, DecimalError, minor_units, parse_decimal, quantum, round_money
from ledger.store import credit_notes as credit_notes_table
from ledger.store import invoices as invoices_table
from ledger.tax import booked_share, credited_tax, line_creditable, with_tax

if TYPE_CHECKING:
    from ledger.facts.adjustments import Adjustment

_Date = date  # the field named ``date`` shadows the type inside the class
_DAY = timedelta(days=1)

#: ``(customer, day) → undrawn balance at the end of day by grant key``
#: (:func:`ledger.rating.undrawn_credit`)
GrantBalances = Callable[[str, date], Mapping[str, Decimal]]


def parse_amount(text: str, currency: str) -> Decimal:
    """A positive amount in ``currency``'s minor units, from a decimal string.

    >>> parse_amount("30", "USD")
    Decimal('30.00')
    >>> parse_amount("0.001", "USD")
    Traceback (most recent call last):
    ledger.errors.BadInput: --amount: '0.001' has more than 2 decimal places for USD
    """
    try:
        amount = parse_decimal(text, where="--amount")
    except DecimalError as exc:
        raise BadInput(str(exc)) from None
    step = _step(currency)
    if amount != amount.quantize(step):
        raise BadInput(
            f"--amount: {text!r} has more than {minor_units(currency)} decimal places "
            f"for {currency}"
        )
    if amount <= 0:
        raise BadInput(f"--amount: {text!r} must be positive")
    return amount.quantize(step)


def _step(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def credited_on_line(note: CreditNote, line: int) -> Decimal:
    """What ``note`` credited on invoice line ``line`` (its part there, or all of it for
    a ``--line`` note issued before notes were split)."""
    if note.parts:
        return sum((p.amount for p in note.parts if p.line == line), ZERO)
    return note.amount if note.line == line else ZERO


def line_discount(invoice: Invoice, line: int) -> Decimal:
    """The discounts on invoice line ``line`` (1-based; positive): its ``discount`` lines, which
    name the part of the same cycle they discount and settle the same account
    (:mod:`ledger.discounts`). A credit note credits a discounted line net of them."""
    gross = invoice.lines[line - 1]
    part = f"usage:{gross.meter}" if gross.kind == "usage" else gross.kind
    if gross.kind not in ("usage", "commitment", "base_fee"):
        return ZERO
    return -sum(
        (
            ln.amount
            for ln in invoice.lines
            if ln.kind == "discount"
            and ln.on == part
            and ln.link == gross.link
            and ln.account == gross.account
        ),
        ZERO,
    )


def line_amount(invoice: Invoice, line: int) -> Decimal:
    """What line ``line`` bills net of its discounts; a discount line itself bills nothing a
    note can credit (the note credits the line it discounts)."""
    ln = invoice.lines[line - 1]
    if ln.kind == "discount":
        return ZERO
    return ln.amount - line_discount(invoice, line) - billed_before(invoice, line)


def billed_before(invoice: Invoice, line: int) -> Decimal:
    """What earlier threshold invoices already billed of usage line ``line`` (creditable on
    them, not here): the invoice's ``threshold_billed`` deductions of the line's cycle and
    account, taken by its usage lines in order, each up to its amount net of discounts.

    A cycle-end invoice showing 20.00 of usage with 4.00 off, after a threshold invoice billed
    8.00 of it, may be credited 20.00 − 4.00 − 8.00 = 8.00 on that line."""
    ln = invoice.lines[line - 1]
    if ln.kind != "usage":
        return ZERO
    left = -sum(
        (
            x.amount
            for x in invoice.lines
            if x.kind == "threshold_billed" and x.link == ln.link and x.account == ln.account
        ),
        ZERO,
    )
    for i, other in enumerate(invoice.lines, 1):
        if left <= 0:
            return ZERO
        if other.kind == "usage" and other.link == ln.link and other.account == ln.account:
            take = min(left, max(ZERO, other.amount - line_discount(invoice, i)))
            if i == line:
                return take
            left -= take
    return ZERO


def discount_reversed(invoice: Invoice, line: int, revenue: Decimal) -> Decimal:
    """The discount a credit of ``revenue`` (net) on line ``line`` gives back with the gross:
    ``round(revenue × discount ÷ net)``, so the gross reversed is ``revenue`` + that.

    100.00 of usage with 20.00 off (net 80.00), credited 8.00: 2.00 of discount and
    10.00 of gross are reversed."""
    off = line_discount(invoice, line)
    net = invoice.lines[line - 1].amount - off
    if not off or net <= 0:
        return ZERO
    return round_money(revenue * off / net, invoice.currency)


def creditable(invoice: Invoice, earlier: Sequence[CreditNote], line: int | None = None) -> Decimal:
    """What may still be credited: total (or the line's amount net of its discounts) − earlier
    notes on it."""
    mine = [n for n in earlier if n.invoice == invoice.number]
    total = invoice.total - sum((n.amount for n in mine), ZERO)
    if line is None:
        return total
    on_line = line_amount(invoice, line) - sum((credited_on_line(n, line) for n in mine), ZERO)
    return min(total, line_with_tax(invoice, line, on_line, total, mine))


def credited_lines(invoice: Invoice, notes: Sequence[CreditNote]) -> dict[int, Decimal]:
    """Per invoice line (1-based), what ``notes`` credited on it."""
    return {
        i: sum((credited_on_line(n, i) for n in notes if n.invoice == invoice.number), ZERO)
        for i in range(1, len(invoice.lines) + 1)
    }


def line_with_tax(
    invoice: Invoice, line: int, on_line: Decimal, total: Decimal, mine: Sequence[CreditNote]
) -> Decimal:
    """A line's creditable ``on_line`` with the tax the invoice charged on it (:mod:`ledger.tax`):
    what is left of the invoice less the other lines' rest with their tax, so the lines'
    shares add up to the total left whatever the rounding. Untaxed: ``on_line`` itself."""
    if invoice.tax is None or not invoice.tax.added:
        return on_line
    own = line_creditable(invoice, line, credited_lines(invoice, mine), [n.tax for n in mine])
    if own is not None:  # the line's own tax, not the invoice's average (ledger.tax)
        gross = invoice.lines[line - 1].amount - credited_lines(invoice, mine)[line]
        if line_discount(invoice, line) and gross > 0:
            # a discounted line is credited net, its tax in proportion (the discount line's
            # own, negative tax makes the difference)
            return round_money(own * on_line / gross, invoice.currency)
        return own
    others = sum(
        (
            ln.amount - sum((credited_on_line(n, i) for n in mine), ZERO)
            for i, ln in enumerate(invoice.lines, 1)
            if i != line
        ),
        ZERO,
    )
    return total - with_tax(invoice, others)


# --- advance base fees: recognized, deferred, reduced ---------------------------------------


def cycle_bounds(key: str) -> tuple[date, date]:
    start, _, end = key.partition("/")
    return date.fromisoformat(start), date.fromisoformat(end)


def _share(amount: Decimal, part: Fraction, currency: str) -> Decimal:
    return round_money(amount * part.numerator / Decimal(part.denominator), currency)


def fee_recognized(fee: Decimal, cycle: str, through: date, currency: str) -> Decimal:
    """A fee billed in advance for ``cycle``, recognized by the end of ``through`` as rating does:
    ``round(fee × days elapsed ÷ days in cycle)``.

    >>> fee_recognized(Decimal("49.00"), "2026-10-15/2026-11-15", date(2026, 10, 31), "USD")
    Decimal('26.87')
    """
    start, end = cycle_bounds(cycle)
    if through < start:
        return ZERO
    if through >= end - _DAY:
        return fee
    return _share(fee, Fraction((through - start).days + 1, (end - start).days), currency)


def fee_reduction(
    deferred: Decimal, cycle: str, since: date, through: date, currency: str
) -> Decimal:
    """How much of a note's ``deferred`` part on an advance fee is taken out of the cycle's
    recognition by the end of ``through``: ratably by day from ``since`` (the note's date) to
    the cycle's last day, cumulative, so it reaches ``deferred`` exactly then. Rounded up to
    the minor unit (not half-even like the fee's own recognition): the fee and each note are
    rounded on their own, and two notes rounded down by half a cent each while the fee rounds
    up would recognize a cent more than the cycle has left, a debit in deferred revenue until
    the cycle ends (a 15.50 fee for [Sep 10, Oct 10), notes of 5.42 on Sep 10 and 6.66 on
    Sep 22, 6.05 of it deferred: on Sep 30, 10.85 − 3.79 − 3.02 = 4.04 recognized of the 4.03
    the notes left; rounded up, 10.85 − 3.80 − 3.03 = 4.02). Rounded up, the schedules never
    take out less than their exact share, so deferred revenue stays a credit.

    >>> fee_reduction(
    ...     Decimal("30.00"), "2026-10-01/2026-11-01", date(2026, 10, 17), date(2026, 10, 31), "USD"
    ... )
    Decimal('30.00')
    >>> fee_reduction(
    ...     Decimal("30.00"), "2026-10-15/2026-11-15", date(2026, 10, 26), date(2026, 10, 31), "USD"
    ... )
    Decimal('9.00')
    """
    _start, end = cycle_bounds(cycle)
    if through < since:
        return ZERO
    if through >= end - _DAY:
        return deferred
    part = Fraction((through - since).days + 1, (end - since).days)
    exact = deferred * part.numerator / Decimal(part.denominator)
    return exact.quantize(quantum(currency), rounding=ROUND_CEILING)


def fee_deferred_left(
    invoice: Invoice,
    line: int,
    notes: Sequence[CreditNote],
    through: date,
    current: tuple[str, Decimal] | None = None,
) -> Decimal:
    """Deferred revenue left for an advance fee line at the end of ``through``: billed (what
    the invoice booked, net of the tax a tax-inclusive price holds) − recognized − what
    ``notes`` took out of deferred revenue, less what they have since taken out of its
    recognition. A note dated after ``through`` counts in full (issuing checks
    against every earlier note); for the balance the books hold at ``through``, pass only
    the notes dated on or before it.

    ``current``: the cycle and fee the subscriptions give the line's cycle now, when they
    changed after the invoice (:mod:`ledger.subscriptions`): recognition follows them, and
    the subscription change's own credit note (no ``cycle``) takes its part out at once, and
    so does a note scheduled over the old cycle once that credit note exists; without one
    (``proration: none``), such a note is taken out over the rest of the cycle as it now
    runs, at once when that ended before the note's date (as the books post it)."""
    fee = invoice.lines[line - 1]
    cycle, amount = current if current is not None else (fee.cycle, fee.amount)
    # a tax-inclusive fee booked net of its tax is recognized out of that (ledger.accruals)
    earned = fee_booked(fee.amount, fee.booked, amount, invoice.currency)
    left = fee.booked - fee_recognized(earned, cycle, through, invoice.currency)
    corrected = any(
        n.invoice == invoice.number
        and n.reason.startswith("subscription change: cycle ")
        and any(p.line == line for p in n.parts)
        for n in notes
    )
    for note in notes:
        if note.invoice != invoice.number:
            continue
        for part in note.parts:
            if part.line == line and part.deferred:
                over = part.cycle
                if part.cycle and current is not None and part.cycle != current[0]:
                    over = "" if corrected else current[0]
                if over and cycle_bounds(over)[1] - _DAY < note.date:
                    over = f"{note.date.isoformat()}/{(note.date + _DAY).isoformat()}"
                # a subscription change's note (no cycle) takes its part out at once
                reduced = (
                    fee_reduction(part.deferred, over, note.date, through, invoice.currency)
                    if over
                    else ZERO
                )
                left -= part.deferred - reduced
    return left


# --- issuing ----------------------------------------------------------------------------------


def _pro_rata(
    amount: Decimal, weights: Sequence[tuple[int, Decimal]], currency: str
) -> list[tuple[int, Decimal]]:
    """``amount`` split over ``(line, weight)`` in proportion, to the minor unit: each share
    rounded down, the cents left to the largest remainders (ties: the earlier line).

    >>> _pro_rata(Decimal("10.00"), [(1, Decimal(1)), (2, Decimal(1)), (3, Decimal(1))], "USD")
    [(1, Decimal('3.34')), (2, Decimal('3.33')), (3, Decimal('3.33'))]
    """
    step = _step(currency)
    total = sum((w for _, w in weights), ZERO)
    exact = [(line, amount * w / total) for line, w in weights]
    floors = [(line, x.quantize(step, rounding=ROUND_FLOOR)) for line, x in exact]
    cents = int((amount - sum((f for _, f in floors), ZERO)) / step)
    bonus = {
        line
        for line, _ in sorted(
            ((line, x - f) for (line, x), (_, f) in zip(exact, floors, strict=True)),
            key=lambda t: (-t[1], t[0]),
        )[:cents]
    }
    return [(line, f + step if line in bonus else f) for line, f in floors]


def _grant_ordinal(invoice: Invoice, line: int) -> str:
    """The grant ``credit_grant`` line ``line`` (1-based) bills: the invoice dated its grant
    date lists that day's grants in rules order, so the n-th such line is grant
    ``"<date>#n"``."""
    if invoice.lines[line - 1].grant:  # a wallet top-up's line names its grant (ledger.topups)
        return invoice.lines[line - 1].grant
    n = sum(1 for ln in invoice.lines[:line] if ln.kind == "credit_grant" and not ln.grant)
    return f"{invoice.date.isoformat()}#{n}"


def allocate(
    invoice: Invoice,
    earlier: Sequence[CreditNote],
    amount: Decimal,
    on: date,
    *,
    line: int | None = None,
    force: bool = False,
    balances: GrantBalances | None = None,
    current: Mapping[str, tuple[str, Decimal]] | None = None,
) -> tuple[CreditPart, ...]:
    """Split a note of ``amount`` over the invoice's lines and decide what each part debits.

    ``--line``: all of it on that line. Otherwise pro rata to what each line can still be
    credited (lines with nothing left, such as credit applied, take none); a forced amount
    beyond them all is a part on line 0. A part on a prepaid-credit line more than the
    grant's undrawn balance on ``on`` is refused unless ``force``.
    """
    mine = [n for n in earlier if n.invoice == invoice.number]
    if line is not None:
        shares = [(line, amount)]
    else:
        left = [
            (i, line_amount(invoice, i) - sum((credited_on_line(n, i) for n in mine), ZERO))
            for i in range(1, len(invoice.lines) + 1)
        ]
        weights = [(i, x) for i, x in left if x > 0]
        spread = min(amount, sum((x for _, x in weights), ZERO))
        shares = [
            (i, x)
            for i, x in (_pro_rata(spread, weights, invoice.currency) if spread > 0 else [])
            if x
        ]
        if amount > spread:
            shares.append((0, amount - spread))
    undrawn: Mapping[str, Decimal] | None = None
    parts = []
    for i, share in shares:
        if i == 0:
            parts.append(
                CreditPart(line=0, kind="", description="beyond the invoice (forced)", amount=share)
            )
            continue
        ln = invoice.lines[i - 1]
        if ln.kind == "credit_grant" and ln.account == "deferred":
            if balances is None:
                raise BadInput(
                    f"credit: line {i} of {invoice.number} is prepaid credit and its undrawn "
                    "balance was not rated (issue the note through Session.credit)"
                )
            if undrawn is None:
                undrawn = balances(invoice.customer, on)
            key = _grant_ordinal(invoice, i)
            balance = max(undrawn.get(key, ZERO), ZERO)
            if share > balance and not force:
                raise BadInput(
                    f"credit: {share} {invoice.currency} on line {i} of {invoice.number} is more "
                    f"than its prepaid credit still undrawn on {on.isoformat()} "
                    f"({balance} {invoice.currency}); "
                    "use --force to credit the rest as contra-revenue"
                )
            parts.append(
                CreditPart(
                    line=i,
                    kind=ln.kind,
                    description=ln.description,
                    amount=share,
                    deferred=min(share, balance),
                    grant=key,
                )
            )
        elif ln.kind == "base_fee" and ln.account == "deferred" and ln.cycle:
            # recognition follows the subscriptions as they are now (a cancellation after the
            # invoice already shortened it): never take the same days out of it twice
            now = (current or {}).get(ln.link)
            now = now if now is not None and now != (ln.cycle, ln.amount) else None
            deferred = fee_deferred_left(invoice, i, mine, on - _DAY, now)
            cycle = now[0] if now is not None else ln.cycle
            off = line_discount(invoice, i)
            if off:  # deferred revenue holds the fee net of its discount, recognized alike
                deferred -= off - fee_recognized(off, cycle, on - _DAY, invoice.currency)
            deferred = max(deferred, ZERO)
            # a tax-inclusive fee's deferred revenue holds its price net of tax: so does the part
            booked = booked_share(ln, share, invoice.currency)
            parts.append(
                CreditPart(
                    line=i,
                    kind=ln.kind,
                    description=ln.description,
                    amount=share,
                    deferred=min(booked, deferred),
                    cycle=cycle if deferred else "",
                )
            )
        else:
            parts.append(CreditPart(line=i, kind=ln.kind, description=ln.description, amount=share))
    step = _step(invoice.currency)  # "0.00", not "0", on the documents
    return tuple(
        replace(
            p,
            deferred=p.deferred.quantize(step),
            discount=discount_reversed(invoice, p.line, p.revenue) if p.line else ZERO,
        )
        for p in parts
    )


def issue_credit_note(
    engine: Engine,
    invoice_number: str,
    *,
    amount: str,
    reason: str,
    on: date,
    line: int | None = None,
    force: bool = False,
    first_open: date = date.min,
    balances: GrantBalances | None = None,
    also: Callable[[CreditNote], None] | None = None,
    current: Mapping[str, tuple[str, Decimal]] | None = None,
) -> CreditNote:
    """Check, number, split (:func:`allocate`) and store a credit note in one transaction;
    return it.

    ``also`` runs inside that transaction after the note is stored and before it
    commits (:func:`issue` writes the note's documents there): if it raises, the
    note is rolled back, so no number is used up by a note without its documents.

    ``balances`` gives the prepaid-credit grants' undrawn balances (needed only when the
    note credits a ``credit_grant`` line; :func:`issue` passes the session's rating).
    Bad input (unknown invoice, bad amount, empty reason, a date before the
    invoice or in a sealed month, more than the creditable amount or a grant's
    undrawn balance without ``force``) raises :class:`BadInput` and stores nothing.
    """
    reason = reason.strip()
    if not reason:
        raise BadInput("--reason: give the reason for the credit note (it is printed on it)")
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE credit_notes IN EXCLUSIVE MODE")
        doc = conn.execute(
            select(invoices_table.c.document).where(invoices_table.c.number == invoice_number)
        ).scalar()
        if doc is None:
            raise BadInput(f"credit: {invoice_number!r} is not an issued invoice")
        invoice = Invoice.from_json(doc)
        value = parse_amount(amount, invoice.currency)
        if on < invoice.date:
            raise BadInput(
                f"--date: {on.isoformat()} is before {invoice.number}'s date "
                f"{invoice.date.isoformat()}"
            )
        if on < first_open:
            raise SealedMonthError(
                f"--date: {on.isoformat()} is in a sealed month; corrections go in an open month "
                f"(from {first_open.isoformat()})"
            )
        if line is not None and not 1 <= line <= len(invoice.lines):
            raise BadInput(
                f"--line: {invoice.number} has lines 1 to {len(invoice.lines)}, not {line}"
            )
        if line is not None and invoice.lines[line - 1].kind == "discount":
            raise BadInput(
                f"--line: line {line} of {invoice.number} is a discount; credit the line it "
                "discounts (the note gives its discount back in proportion)"
            )
        earlier = [
            CreditNote.from_json(d)
            for d in conn.execute(
                select(credit_notes_table.c.document)
                .where(credit_notes_table.c.invoice == invoice.number)
                .order_by(credit_notes_table.c.seq)
            ).scalars()
        ]
        limit = creditable(invoice, earlier, line)
        if value > limit and not force:
            what = f"line {line} of {invoice.number}" if line is not None else invoice.number
            raise BadInput(
                f"credit: {value} {invoice.currency} is more than {what} can still be credited "
                f"({max(limit, ZERO)} {invoice.currency}); use --force to credit it anyway"
            )
        # the note gives back its share of the invoice's tax; the lines are credited the rest
        credited_before = sum((n.amount for n in earlier), ZERO)
        tax = credited_tax(
            invoice,
            credited_before,
            value,
            line=line,
            given=[n.tax for n in earlier],
            credited=credited_lines(invoice, earlier),
        )
        # the grants' balances are rated while this transaction holds the numbering lock,
        # so no other note on the same grant can be stored in between
        # the lines are credited the rest; their amounts already hold the tax when prices include it
        net = value - (tax.amount if tax and invoice.tax and not invoice.tax.inclusive else ZERO)
        parts = allocate(
            invoice, earlier, net, on, line=line, force=force, balances=balances, current=current
        )
        beyond_grant = any(p.grant and p.deferred < p.amount for p in parts)
        seq = (conn.execute(select(func.max(credit_notes_table.c.seq))).scalar() or 0) + 1
        note = CreditNote(
            number=f"CN-{on.year}-{seq:06d}",
            seq=seq,
            invoice=invoice.number,
            customer=invoice.customer,
            date=on,
            currency=invoice.currency,
            amount=value,
            reason=reason,
            line=line,
            line_description=invoice.lines[line - 1].description if line is not None else "",
            forced=value > limit or beyond_grant,
            invoice_date=invoice.date,
            invoice_total=invoice.total,
            credited_before=credited_before,
            parts=parts,
            tax=tax,
        )
        conn.execute(
            credit_notes_table.insert().values(
                number=note.number,
                seq=seq,
                invoice=note.invoice,
                customer=note.customer,
                date=on.isoformat(),
                currency=note.currency,
                amount=str(value),
                reason=reason,
                document=note.to_json(),
            )
        )
        if also is not None:
            also(note)
    return note


def recut_cycles(
    notes: Sequence[CreditNote], adjustments: Sequence[Adjustment] = ()
) -> dict[tuple[str, int], str]:
    """Per (invoice, line): the cycle a subscription change's correction says the fee's
    cycle is now (``ledger.subscriptions``), when the fee now differs from the one billed:
    its credit note's reason reads ``… cycle A now B, base fee X now Y``; its debit
    adjustment (kind ``subscription``) names the cycle ``B`` and the fees. The latest
    correction of a line wins; one that brings the fee back to what was billed (a
    cancellation taken back) leaves no recut.

    A note on that line whose deferred part was scheduled over another cycle (issued before
    the change) no longer reduces recognition day by day: the change's correction counted
    that part as taken out at once (``ledger.subscriptions.FeeChange.stale``, counted while
    the fee differs from the one billed). That correction is a debit adjustment when the
    note took out more than the cut: a 9.30 goodwill note on a 31.00 fee, then the cycle
    cut to 22 of 31 days (22.00), is corrected by 22.00 − 31.00 + 9.30 = 0.30 (debit), and
    the note's schedule stops as it does after a credit."""
    changes: list[tuple[date, int, int, tuple[str, int], str, bool]] = []
    for note in notes:
        if note.reason.startswith("subscription change: cycle ") and " now " in note.reason:
            now = note.reason.split(" now ", 1)[1].split(",", 1)[0]
            fees = note.reason.rpartition("base fee ")[2].split(" now ")
            changed = len(fees) != 2 or fees[0] != fees[1]
            for part in note.parts:
                changes.append((note.date, 0, note.seq, (note.invoice, part.line), now, changed))
    for i, adj in enumerate(adjustments):
        if adj.kind == "subscription" and adj.document.startswith("DA-"):
            changed = adj.rerated != adj.invoiced
            changes.append((adj.date, 1, i, (adj.invoice, adj.line), adj.cycle, changed))
    latest = {key: (now, changed) for *_order, key, now, changed in sorted(changes)}
    return {key: now for key, (now, changed) in latest.items() if changed}
