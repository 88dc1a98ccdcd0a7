"""Re-rating issued cycles after a retroactive plan change: credit notes and debit adjustments.

Plans carry effective-dated versions (``rules/plans.yaml``); a cycle is rated
with the version in effect at its start. An *issued* cycle keeps the version it
was invoiced under (pinned in the store's ``cycle_terms`` when the invoice is
issued), so adding a version effective in the past changes nothing already
billed until an accountant runs::

    meterbook rerate --from 2026-10-01 --date 2026-11-25

which re-rates every issued cycle starting on or after 2026-10-01 with the
current rules and, for each invoice line whose amount differs, posts the
difference in the open month. acme's October cycle was invoiced 20 calls ×
1.00 = 20.00 on INV-2026-000002; the new version charges 0.80, so 16.00, and::

    2026-11-25 * "acme" "Credit note CN-2026-000001 for INV-2026-000002" ^CN-2026-000001 ^INV-2026-000002 ^acme-2026-10-01
      customer: "acme"
      invoice: "INV-2026-000002"
      credit_note: "CN-2026-000001"
      reason: "re-rated from 2026-10-01 with rules 5e1c…: api_calls -4.00"
      rerate: TRUE
      rules: "5e1c…"
      cycle: "2026-10-01/2026-11-01"
      Income:Credit-Notes                  4.00 USD
      Assets:Receivables:Invoiced:Acme    -4.00 USD

A decrease is a credit note (:mod:`ledger.credit_notes`: numbered, documented,
settled against the invoice like any other, so a paid invoice's credit becomes
a refund liability). An increase is a *debit adjustment* ``DA-YYYY-NNNNNN``:
revenue earned, not yet billed, exactly like late usage (DESIGN's accounting
table), billed as its own line on the customer's next invoice::

    2026-11-25 * "acme" "Debit adjustment DA-2026-000001 for INV-2026-000002" ^DA-2026-000001 ^INV-2026-000002 ^acme-2026-10-01
      customer: "acme"
      debit_adjustment: "DA-2026-000001"
      rerate: TRUE
      Assets:Receivables:Unbilled:Acme     5.00 USD
      Income:Usage:Api-Calls              -5.00 USD
        meter: "api_calls"

The difference of a line is ``re-rated (current rules) − as invoiced (pinned
version, today's quantities) − earlier reratings``; each run's lines are kept
in the store's ``rerates`` table with the document that carries them, so a
second run posts nothing. Usage that arrives late for an issued cycle is still
the late-usage adjustment of :mod:`ledger.journal.accruals`, priced with the pinned
version; a later rerate run re-prices it. Sealed months are never touched: the
documents are dated in an open month.

A pin only means something while its version's terms stay as they were, so each
pin also stores a digest of those terms (:func:`ledger.pins.terms_digest`). Editing a pinned
version *in place* (0.02 → 0.025 in a tier, with no new version) would re-price
the invoiced cycle silently: ``post`` would book a late adjustment and no
document, and ``rerate`` would find nothing. :func:`ledger.pins.changed_terms` finds such
edits; ``post``, ``invoice``, ``close`` and ``rerate`` refuse while one is in
place (:func:`ledger.pins.require_unchanged_terms`)::

    rules/plans.yaml:2: plans.u: the terms of plan 'u' that INV-2026-000002 billed for cycle acme-2026-10-01 (original terms) changed in place (1 more invoice affected): restore the terms, add a `versions:` entry effective from the change date, then run `meterbook rerate --from DATE`. Nothing was written

and ``meterbook check`` fails (:func:`ledger.pins.pinned_terms_check`). Pins stored before
digests were kept have none: their terms at invoicing are unknown, not drift.
"""  # noqa: E501

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ledger.credit_notes import creditable
from ledger.errors import BadInput, SealedMonthError
from ledger.facts.adjustments import Adjustment, _label
from ledger.facts.credit_notes import CreditNote
from ledger.facts.invoices import Invoice, InvoiceLine
from ledger.facts.pins import TermsPin
from ledger.invoicing import cycle_lines
from ledger.money import ZERO
from ledger.pins import require_unchanged_terms
from ledger.rating import CycleRating, rate
from ledger.store import credit_notes as credit_notes_table
from ledger.store import rerates
from ledger.tax import credit_of_lines

if TYPE_CHECKING:
    from ledger.reconcile import CheckResult
    from ledger.session import Session

_Date = date  # the field named ``date`` shadows the type inside the class
#: Invoice line kinds a rerate compares (credits applied and grants stay as invoiced).
RERATED_KINDS = ("usage", "commitment", "base_fee")


# --- reratings the current rules no longer explain ---------------------------------------------


def rerated_lines_check(session: Session) -> CheckResult:
    """``meterbook check``'s line for the stored reratings: every credit note and debit
    adjustment a rerate posted must still be what the current rules give.

    A rerate run credits ``current − as invoiced``; the rules it ran with are the
    only explanation of that document. Removing (or editing) the version afterwards
    leaves the document unexplained: INV-2026-000002 billed 20.00, the 0.80 version
    re-rated it to 16.00 and CN-2026-000001 credited 4.00; with the version gone
    the current rules give 20.00 again, so::

        INV-2026-000002 api_calls (cycle acme-2026-10-01): reratings posted -4.00 USD
        (CN-2026-000001), the current rules explain 0.00: restore the plan version
        they were rated with, or run `meterbook rerate --from 2026-10-01` to post the difference

    fails the check (a rerate run with the current rules posts that difference,
    after which the documents add up again).
    """
    from ledger.reconcile import CheckResult

    adjustments = list(session.stored_facts().adjustments)
    if not adjustments:
        return CheckResult("rerated invoice lines", True, ("no reratings",))
    since = min(date.fromisoformat(adj.cycle[:10]) for adj in adjustments)
    rerated = {(adj.invoice, adj.line_key) for adj in adjustments}
    posted: dict[tuple[str, str], list[Adjustment]] = defaultdict(list)
    for adj in adjustments:
        posted[(adj.invoice, adj.line_key)].append(adj)
    problems = []
    pending: list[str] = []
    for line in compute(session, since):
        if (line.invoice, line.line_key) not in rerated:
            continue  # never re-rated: a pending rerate, not an unexplained document
        docs = posted[(line.invoice, line.line_key)]
        # the line as invoiced (late usage at the pinned price) when its latest rerate ran:
        # that run's re-rated amount less every rerating of the line up to it
        then = docs[-1].rerated - sum((a.amount for a in docs), ZERO)
        if line.invoiced + line.late != then:
            # usage arrived since (priced with the pinned version, as late usage is): the
            # difference is a rerate still to run for it, like a line never re-rated
            pending.append(f"{line.invoice} {line.label} (cycle {line.link})")
            continue
        problems.append(
            f"{line.invoice} {line.label} (cycle {line.link}): "
            f"reratings posted {line.earlier} {line.currency} "
            f"({', '.join(sorted({a.document for a in docs}))}), the current rules explain "
            f"{line.earlier + line.difference}: restore the plan version they were rated with, "
            "or run "
            f"`meterbook rerate --from {since}` to post the difference"
        )
    note = (
        f"{len(rerated)} re-rated invoice lines, {len({a.document for a in adjustments})} documents"
    )
    later = (
        (
            f"{len(pending)} with usage since their rerate, priced as invoiced until "
            f"`meterbook rerate --from {since}` re-prices it: {', '.join(pending[:3])}"
            + (f" and {len(pending) - 3} more" if len(pending) > 3 else ""),
        )
        if pending
        else ()
    )
    if not problems:
        return CheckResult(
            "rerated invoice lines", True, (f"{note}, each as the current rules give", *later)
        )
    return CheckResult(
        "rerated invoice lines",
        False,
        (
            f"{len(problems)} of {note} no longer follow from the current rules",
            *problems[:10],
            *([f"… and {len(problems) - 10} more"] if len(problems) > 10 else []),
        ),
    )


# --- computing the differences -----------------------------------------------------------------


@dataclass(frozen=True)
class RerateLine:
    """One invoice line whose re-rated amount differs from what is billed for it."""

    customer: str
    invoice: str
    invoice_date: date
    line: int  # 1-based line of the invoice; 0 when the invoice had no such line
    line_key: str
    kind: str
    meter: str
    link: str
    cycle: str
    plan: str
    currency: str
    invoiced: Decimal  # the invoice line
    late: Decimal  # late usage since billed through the late-usage adjustments (pinned price)
    earlier: Decimal  # earlier reratings of this line
    rerated: Decimal  # the line with the current rules and today's quantities
    difference: Decimal
    document: str = ""

    @property
    def label(self) -> str:
        return _label(self.line_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "invoice": self.invoice,
            "line": self.line,
            "cycle": self.cycle,
            "link": self.link,
            "charge": self.label,
            "currency": self.currency,
            "invoiced": str(self.invoiced),
            "late": str(self.late),
            "earlier": str(self.earlier),
            "rerated": str(self.rerated),
            "difference": str(self.difference),
            "document": self.document,
        }


def _keyed(lines: Iterable[tuple[int, InvoiceLine]]) -> dict[str, tuple[int, InvoiceLine]]:
    """Invoice lines of one cycle by a stable key (usage by meter, the others by kind)."""
    out: dict[str, tuple[int, InvoiceLine]] = {}
    for index, line in lines:
        if line.kind not in RERATED_KINDS:
            continue
        if line.kind == "usage":
            key = f"usage:{line.meter}"
        elif line.kind == "base_fee":
            key = "base_fee:advance" if line.account == "deferred" else "base_fee:arrears"
        else:
            key = line.kind
        n, unique = 1, key
        while unique in out:
            n += 1
            unique = f"{key}#{n}"
        out[unique] = (index, line)
    return out


def _latest(ratings: Iterable[CycleRating]) -> dict[str, CycleRating]:
    latest: dict[str, CycleRating] = {}
    for rated in ratings:
        if rated.cycle.link not in latest or rated.through >= latest[rated.cycle.link].through:
            latest[rated.cycle.link] = rated
    return latest


def _advance_fee(rated: CycleRating | None) -> Decimal:
    fee = rated.base_fee if rated is not None else None
    return fee.billed if fee is not None and fee.timing == "advance" else ZERO


def compute(session: Session, since: date) -> list[RerateLine]:
    """Every invoice line of an issued cycle starting on or after ``since`` whose amount
    with the current rules differs from what was billed (and re-rated before) for it."""
    rules = session.rules
    facts = session.stored_facts()  # once per command (ledger.opened.OpenWorkspace.command)
    issued = facts.invoices
    arrears: list[tuple[Invoice, str, str]] = []  # invoice, link, cycle key
    advance: list[tuple[Invoice, str, str]] = []
    for inv in issued:
        for link, key in sorted({(s.link, s.cycle) for s in inv.accruals}):
            if date.fromisoformat(key[:10]) >= since:
                arrears.append((inv, link, key))
        for line in inv.lines:
            if (
                line.kind == "base_fee"
                and line.account == "deferred"
                and line.cycle
                and date.fromisoformat(line.cycle[:10]) >= since
            ):
                advance.append((inv, line.link, line.cycle))
    if not arrears and not advance:
        return []
    customers = {inv.customer for inv, _, _ in (*arrears, *advance)}
    through = max(inv.date for inv, _, _ in (*arrears, *advance))
    models, tz = session.registry.pricing_models, session.workspace.tz

    def latest(pins: Mapping[str, TermsPin] | None) -> dict[str, CycleRating]:
        """The latest rating of each cycle, with the plan versions ``pins`` names (or now)."""
        return _latest(
            rate(
                session.engine,
                rules,
                models,
                tz,
                through=through,
                customers=customers,
                pins=pins,
                reductions=facts.grant_reductions,
                progress=facts.progress,
            ).cycles
        )

    pinned, current = latest(facts.pins), latest(None)
    earlier: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for adj in facts.adjustments:
        earlier[(adj.invoice, adj.line_key)] += adj.amount

    found: list[RerateLine] = []

    def add(
        inv: Invoice,
        link: str,
        key: str,
        plan: str,
        line_key: str,
        index: int,
        billed: Decimal,
        pinned_amount: Decimal,
        now: Decimal,
        meter: str,
        kind: str,
    ) -> None:
        difference = now - pinned_amount - earlier[(inv.number, line_key)]
        if difference:
            found.append(
                RerateLine(
                    customer=inv.customer,
                    invoice=inv.number,
                    invoice_date=inv.date,
                    line=index,
                    line_key=line_key,
                    kind=kind,
                    meter=meter,
                    link=link,
                    cycle=key,
                    plan=plan,
                    currency=inv.currency,
                    invoiced=billed,
                    late=pinned_amount - billed,
                    earlier=earlier[(inv.number, line_key)],
                    rerated=now,
                    difference=difference,
                )
            )

    for inv, link, key in arrears:
        was, now = pinned.get(link), current.get(link)
        if was is None or now is None or not (was.is_cycle_end and now.is_cycle_end):
            continue  # the subscription no longer has this cycle: nothing to compare it with
        billed = _keyed(
            (i, line)
            for i, line in enumerate(inv.lines, 1)
            if line.link == link and not (line.kind == "base_fee" and line.account == "deferred")
        )
        then = _keyed(enumerate(cycle_lines(was, rules)))
        today = _keyed(enumerate(cycle_lines(now, rules)))
        for line_key in sorted(set(billed) | set(then) | set(today)):
            index, sample = billed.get(line_key) or today.get(line_key) or then[line_key]
            add(
                inv,
                link,
                key,
                now.cycle.plan,
                line_key,
                index if line_key in billed else 0,
                sample.amount if line_key in billed else ZERO,
                then[line_key][1].amount if line_key in then else ZERO,
                today[line_key][1].amount if line_key in today else ZERO,
                sample.meter,
                sample.kind,
            )
    for inv, link, key in advance:
        index = next(
            i
            for i, line in enumerate(inv.lines, 1)
            if line.link == link and line.kind == "base_fee" and line.account == "deferred"
        )
        rated = current.get(link) or pinned.get(link)
        if rated is None:
            continue
        add(
            inv,
            link,
            key,
            rated.cycle.plan,
            "base_fee:advance",
            index,
            inv.lines[index - 1].amount,
            _advance_fee(pinned.get(link)),
            _advance_fee(current.get(link)),
            "",
            "base_fee",
        )
    return sorted(found, key=lambda r: (r.customer, r.invoice, r.cycle, r.line_key))


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RerateReport:
    """What ``meterbook rerate`` found and (unless a dry run) posted."""

    since: date
    on: date
    rules: str
    lines: tuple[RerateLine, ...]
    dry_run: bool = False

    @property
    def documents(self) -> tuple[str, ...]:
        return tuple(sorted({line.document for line in self.lines if line.document}))

    def render(self) -> str:
        """The text the CLI prints: a block per customer, then a summary."""
        out = [
            f"rerate from {self.since} with rules {self.rules}, dated {self.on}"
            f"{' (dry run: nothing stored or posted)' if self.dry_run else ''}"
        ]
        by_customer: dict[str, list[RerateLine]] = defaultdict(list)
        for line in self.lines:
            by_customer[line.customer].append(line)
        for customer, lines in sorted(by_customer.items()):
            out.append(f"{customer}")
            out.append(
                f"  {'invoice':<16} {'cycle':<21} {'charge':<22} {'invoiced':>12} {'re-rated':>12} "
                f"{'difference':>12}  document"
            )
            for line in lines:
                note = []
                if line.late:
                    note.append(f"late {line.late}")
                if line.earlier:
                    note.append(f"re-rated before {line.earlier}")
                extra = f"  ({', '.join(note)})" if note else ""
                out.append(
                    f"  {line.invoice:<16} {line.cycle:<21} {line.label:<22} {line.invoiced:>12} "
                    f"{line.rerated:>12} {line.difference:>12}  {line.document or '-'}{extra}"
                )
            for currency in sorted({ln.currency for ln in lines}):
                total = sum((ln.difference for ln in lines if ln.currency == currency), ZERO)
                out.append(f"  {'net difference':<87} {total:>12} {currency}")
        if not self.lines:
            out.append("nothing to re-rate: every issued cycle matches the current rules")
        else:
            credits = sorted({ln.document for ln in self.lines if ln.document.startswith("CN-")})
            debits = sorted({ln.document for ln in self.lines if ln.document.startswith("DA-")})
            out.append(
                f"{len(self.lines)} invoice lines differ; "
                + (
                    f"posted {len(credits)} credit notes and {len(debits)} debit adjustments"
                    if not self.dry_run
                    else "nothing posted (dry run)"
                )
            )
        return "\n".join(out)

    def json_lines(self) -> list[str]:
        """One JSON object per differing line, then a summary object."""
        rows = [json.dumps({"type": "line", **line.to_json()}) for line in self.lines]
        rows.append(
            json.dumps(
                {
                    "type": "summary",
                    "since": self.since.isoformat(),
                    "date": self.on.isoformat(),
                    "rules": self.rules,
                    "lines": len(self.lines),
                    "documents": list(self.documents),
                    "dry_run": self.dry_run,
                }
            )
        )
        return rows


def rerate(
    session: Session, since: date, *, on: date | None = None, dry_run: bool = False
) -> RerateReport:
    """Re-rate issued cycles starting on or after ``since``; store and post the differences on
    ``on``.

    ``on`` (default today) must be in an open month, not before any affected invoice and,
    unless ``dry_run``, not after today (:class:`ledger.errors.AfterTodayError`).
    Refused while a pinned version is edited in place (:func:`require_unchanged_terms`):
    the "as invoiced" side would be priced with the edit and nothing would differ.

    One command (:meth:`ledger.opened.OpenWorkspace.command`): the issued facts are read once
    to compute the differences, and once more by the post after they are stored.
    """
    with session.command():
        return _rerate(session, since, on=on, dry_run=dry_run)


def _rerate(session: Session, since: date, *, on: date | None, dry_run: bool) -> RerateReport:
    on = on or session.today()
    if not dry_run:  # a dry run stores nothing: it may look at any day
        session.require_not_after_today(
            on,
            "--date",
            "credit notes and debit adjustments are dated the day they are issued or earlier",
        )
    require_unchanged_terms(session)
    first_open = session.first_open()
    if on < first_open:
        raise SealedMonthError(
            f"--date: {on.isoformat()} is in a sealed month; corrections go in an open month "
            f"(from {first_open.isoformat()})"
        )
    with session.engine.connect() as conn:
        seen = conn.execute(select(func.max(rerates.c.id))).scalar() or 0
    lines = compute(session, since)
    early = [ln for ln in lines if ln.invoice_date > on]
    if early:
        raise BadInput(
            f"--date: {on.isoformat()} is before {early[0].invoice}'s date "
            f"{early[0].invoice_date.isoformat()}"
        )
    report = RerateReport(
        since=since, on=on, rules=session.rules.hash, lines=tuple(lines), dry_run=dry_run
    )
    if dry_run or not lines:
        return report
    posted = _store(session, report, seen)
    session.wrote_facts()  # the credit notes and adjustments are stored: the post reads them
    from ledger.books import posted_through_books

    session.post(posted_through_books(session.workspace.books_dir, on))
    return replace(report, lines=posted)


def _store(session: Session, report: RerateReport, seen: int) -> tuple[RerateLine, ...]:
    """Number the documents and store credit notes and rerate lines in one transaction."""
    engine = session.engine
    by_invoice: dict[tuple[str, bool], list[RerateLine]] = defaultdict(list)
    for line in report.lines:
        by_invoice[(line.invoice, line.difference < 0)].append(line)
    invoices = {inv.number: inv for inv in session.stored_facts().invoices}
    posted: list[RerateLine] = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE credit_notes, rerates IN EXCLUSIVE MODE")
        if (conn.execute(select(func.max(rerates.c.id))).scalar() or 0) != seen:
            raise BadInput("rerate: another rerate ran meanwhile; run it again")
        run = (conn.execute(select(func.max(rerates.c.run))).scalar() or 0) + 1
        cn_seq = conn.execute(select(func.max(credit_notes_table.c.seq))).scalar() or 0
        da_numbers = conn.execute(
            select(rerates.c.document).where(rerates.c.document.like("DA-%"))
        ).scalars()
        da_seq = max((int(n.rsplit("-", 1)[1]) for n in da_numbers), default=0)
        earlier_notes = [
            CreditNote.from_json(d)
            for d in conn.execute(
                select(credit_notes_table.c.document).order_by(credit_notes_table.c.seq)
            ).scalars()
        ]
        for (number, decrease), lines in sorted(by_invoice.items()):
            invoice = invoices[number]
            if decrease:
                cn_seq += 1
                document = f"CN-{report.on.year}-{cn_seq:06d}"
                # the lines' decrease and the tax the invoice charged on it (ledger.tax)
                decreases = {
                    ln.line: -ln.difference for ln in lines if ln.line
                }  # each line's own tax
                amount, tax = credit_of_lines(
                    invoice,
                    -sum((ln.difference for ln in lines), ZERO),
                    decreases if len(decreases) == len(lines) else None,
                )
                before = sum((n.amount for n in earlier_notes if n.invoice == number), ZERO)
                single = lines[0].line if len(lines) == 1 and lines[0].line else None
                limit = creditable(invoice, earlier_notes, single)
                what = "; ".join(f"{ln.label} {ln.difference}" for ln in lines)
                note = CreditNote(
                    number=document,
                    seq=cn_seq,
                    invoice=number,
                    customer=invoice.customer,
                    date=report.on,
                    currency=invoice.currency,
                    amount=amount,
                    reason=(
                        f"re-rated from {report.since.isoformat()} "
                        f"with rules {report.rules}: {what}"
                    ),
                    line=single,
                    line_description=invoice.lines[single - 1].description if single else "",
                    forced=amount > limit,
                    invoice_date=invoice.date,
                    invoice_total=invoice.total,
                    credited_before=before,
                    tax=tax,
                )
                conn.execute(
                    credit_notes_table.insert().values(
                        number=note.number,
                        seq=note.seq,
                        invoice=note.invoice,
                        customer=note.customer,
                        date=report.on.isoformat(),
                        currency=note.currency,
                        amount=str(amount),
                        reason=note.reason,
                        document=note.to_json(),
                    )
                )
                earlier_notes.append(note)
            else:
                da_seq += 1
                document = f"DA-{report.on.year}-{da_seq:06d}"
            for ln in lines:
                conn.execute(
                    rerates.insert().values(
                        run=run,
                        document=document,
                        customer=ln.customer,
                        invoice=ln.invoice,
                        line=ln.line,
                        line_key=ln.line_key,
                        kind=ln.kind,
                        meter=ln.meter,
                        link=ln.link,
                        cycle=ln.cycle,
                        currency=ln.currency,
                        invoiced=str(ln.invoiced),
                        rerated=str(ln.rerated),
                        amount=str(ln.difference),
                        date=report.on.isoformat(),
                        since=report.since.isoformat(),
                        rules=report.rules,
                    )
                )
                posted.append(replace(ln, document=document))
    return tuple(sorted(posted, key=lambda r: (r.customer, r.invoice, r.cycle, r.line_key)))


def parse_since(text: str, option: str = "--from") -> date:
    """A ``YYYY-MM-DD`` option value, or :class:`BadInput` naming it.

    >>> parse_since("2026-10-01")
    datetime.date(2026, 10, 1)
    >>> parse_since("10/01/2026")
    Traceback (most recent call last):
    ledger.errors.BadInput: --from: '10/01/2026' is not a date (YYYY-MM-DD)
    """
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or len(text) != 10:  # fromisoformat also takes 20261001
        raise BadInput(f"{option}: {text!r} is not a date (YYYY-MM-DD)")
    return day
