"""Month-end close: the last stage of the pipeline.

``meterbook close 2026-10`` issues every invoice dated in October, posts
through October 31, runs the reconcilers and, when no error finding is open
(or each is accepted with a reason), writes ``books/2026/2026-10.close.beancount``::

    ; Written by `meterbook close`. Do not edit: sealed by ledger.seal.

    2026-11-01 custom "meterbook-accept" "2026-10" "dual-track:acme:api_calls:2026-10" "live meter reset on Oct 3"

    2026-11-01 balance Assets:Receivables:Unbilled:Acme    11.50 USD
    2026-11-01 balance Income:Usage:Api-Calls             -15.50 USD
    …

    2026-11-01 custom "meterbook-seal-documents" "2026-10" 2
      d1: "documents/INV-2026-000007.html <sha256>"
      d2: "documents/INV-2026-000007.json <sha256>"
      report: "2026/2026-10.close.md <sha256, its seal hash as a placeholder>"

    2026-11-01 balance Equity:Meterbook:Seals-Verified  3 SEAL   ; credited only by ledger.seal

    2026-11-01 custom "meterbook-seal-manifest" "2026-10" 14
      e1: "2026-10-01 open 5b0c4e33e1a6f4e2 Assets:Receivables:Unbilled:Acme"
      …
    2026-11-01 custom "meterbook-seal" "2026-10" "<previous seal hash>" "<this seal hash>"

The balance assertions are a real check: their amounts are computed from the
event store and the rating (every entry re-derived in memory, as if no month
were sealed, and summed through the month's last day), never read back from
the books. The books hold the sealed files plus the late adjustments of
:func:`ledger.journal.sealed.catch_up`, so they agree exactly when nothing was lost or
edited. The books are then loaded (Beancount checks the assertions) and only a
clean load is sealed; otherwise the close file is removed again.

Rules of the close:

- months close in order: the first close is the first month with entries;
  after that, the month after the last sealed one. Months without entries in
  between are closed (sealed empty) on the way, because the seal chain has no
  gaps. A month that has not ended yet cannot be closed.
- closing a closed month changes nothing and says so.
- acceptances (``--accept ID --reason TEXT``) are kept in the store, so a
  refused run remembers them, and written into the close file as
  ``custom "meterbook-accept"`` directives, sealed with the month.
- the seal hash is also kept in the store (``meta`` key ``seal:YYYY-MM``), the
  anchor ``meterbook check`` compares the books' chain with.
- a close is one unit, written in this order: the close file's assertions with
  the books and documents (loaded: they must be clean), the close report, the
  seal recorded in the store, the seal written into the close file. That last
  write is the commit point: killed before it, the month is open and a re-run
  closes it from the start; a sealed month whose store record or close report
  is missing is finished by the re-run (:func:`finish_close`). Named fault
  points (:mod:`ledger.faults`) let the tests kill it at each step.
- the open months stay posted as far as they were (the store's posted-through
  day, :meth:`ledger.session.Session.posted_through`): the inner invoicing and
  the outer post both go that far, so a refused close truncates nothing.

The assertions come from the recomputation the auditor's ``meterbook check``
ties out with (:mod:`ledger.audit`); the reconcilers run here get a
:class:`ledger.reconcile.ReconcileContext` (:func:`reconcile_context`).
"""  # noqa: E501

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beancount.core import data
from beancount.parser import parser
from sqlalchemy import Engine, delete, func, insert, select

from ledger import books, faults, metering, seal
from ledger.audit import (
    account_kinds,
    balances_before,
    control_kinds,
    error_line,
    regenerated_entries,
    tie_out_balances,
)
from ledger.books import posted_through_books
from ledger.errors import BadInput, PluginError
from ledger.escaping import for_terminal
from ledger.facts.invoices import Invoice
from ledger.journal.close import acceptance_directive, assertion_day, balance_assertion
from ledger.journal.summary import control_balances
from ledger.money import ZERO
from ledger.payments import outstanding
from ledger.period import is_month, month_end, month_of, month_start, next_month, previous_month
from ledger.reconcile import Finding, ReconcileContext
from ledger.store import acceptances as acceptances_table
from ledger.store import events as events_table
from ledger.store import meta as meta_table
from ledger.tax import is_tax_account

if TYPE_CHECKING:
    from ledger.session import Session

CLOSE_HEADER = "; Written by `meterbook close`. Do not edit: sealed by ledger.seal."
#: Company-wide accounts (not per customer) asserted at close from the payments table:
#: :func:`cash_balances`.
CASH_KINDS = ("cash", "unapplied_cash")


# --- months ------------------------------------------------------------------------------


def parse_month(text: str) -> str:
    """``"2026-10"``, or :class:`BadInput` naming the bad value."""
    if not is_month(text):
        raise BadInput(f"month {text!r} is not YYYY-MM")
    return text


# --- reconciliation --------------------------------------------------------------------


def reconcile_context(session: Session, month: str) -> ReconcileContext:
    """The one object every reconciler's ``check`` gets for ``month``: the session's
    workspace, rules and store, its rating, invoices and books, read on first use (inside a
    command, taken from what the command has read: :meth:`ledger.opened.Reads`). For a sealed
    month the rating is whole; for an open one it leaves out the cycles settled before the
    first open day (:meth:`ledger.session.Session.settled`), none of them in the month."""
    first_open = session.first_open()
    whole = month_end(month) < first_open
    return ReconcileContext(
        period=month,
        start=month_start(month),
        end=month_end(month),
        workspace=session.workspace,
        rules=session.rules,
        engine=session.engine,
        first_open=first_open,
        today=session.today(),
        _rate=lambda day: session.rate(day, whole=whole),
        _invoices=lambda: session.facts().invoices,
        _entries=lambda: list(session.loaded_books()[0]),
        _tie_out=lambda entries, through: tie_out_balances(session, entries, through),
    )


def run_reconcilers(session: Session, month: str) -> list[Finding]:
    """Every registered reconciler's findings for ``month``, sorted by severity then id.

    A reconciler that raises, or yields something that is not a Finding, is a
    :class:`PluginError` naming it (findings are values; raising is a bug).
    """
    context = reconcile_context(session, month)
    findings: list[Finding] = []
    for reconciler in session.registry.reconcilers:
        name = getattr(reconciler, "name", type(reconciler).__name__)
        try:
            found = list(reconciler.check(context) or ())
        except Exception as exc:
            raise PluginError(
                f"reconciler {name!r} failed on {month}: {type(exc).__name__}: {exc}"
            ) from None
        for finding in found:
            if not isinstance(finding, Finding):
                raise PluginError(
                    f"reconciler {name!r} yielded {type(finding).__name__}, not a Finding"
                )
        findings.extend(found)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: (order.get(f.severity, 3), f.id))


def load_acceptances(engine: Engine, month: str) -> dict[str, str]:
    """Accepted finding ids of ``month`` and their reasons."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(acceptances_table.c.finding, acceptances_table.c.reason).where(
                acceptances_table.c.period == month
            )
        )
        return {row.finding: row.reason for row in rows}


def accepted_earlier(engine: Engine, ids: Iterable[str], since: str) -> dict[str, str]:
    """Of ``ids``, those already accepted for a month from ``since`` on, with that month.

    A command re-run with the acceptances it was given before (``close 2026-09 --accept
    unapplied-cash:BANK-3:2026-10`` issued the invoice that October finding held, then
    refused on September's own findings; the operator runs it again adding those) passes
    an id no finding of this run matches: it was accepted, so it is not an unknown id.
    """
    wanted = set(ids)
    if not wanted:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(acceptances_table.c.finding, acceptances_table.c.period).where(
                acceptances_table.c.finding.in_(sorted(wanted)),
                acceptances_table.c.period >= since,
            )
        )
        return {row.finding: row.period for row in rows}


def record_acceptances(engine: Engine, month: str, accepted: Mapping[str, str]) -> None:
    """Remember acceptances (a new reason replaces an earlier one for the same finding)."""
    if not accepted:
        return
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with engine.begin() as conn:
        for finding, reason in accepted.items():
            conn.execute(
                delete(acceptances_table).where(
                    acceptances_table.c.period == month, acceptances_table.c.finding == finding
                )
            )
            conn.execute(
                insert(acceptances_table).values(
                    period=month, finding=finding, reason=reason, accepted_at=now
                )
            )


@dataclass(frozen=True)
class Reconciliation:
    """What ``meterbook reconcile`` prints: a month's findings and the acceptances recorded for
    them."""

    month: str
    findings: tuple[Finding, ...]
    accepted: Mapping[str, str] = field(default_factory=dict)

    COLUMNS = ("id", "severity", "customer", "meter", "period", "expected", "actual", "explanation")

    @property
    def open_errors(self) -> tuple[Finding, ...]:
        """Error findings not accepted: ``reconcile`` exits 1 and ``close`` refuses while any is
        left."""
        return tuple(f for f in self.findings if f.blocks_close and f.id not in self.accepted)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready object per finding (figures as decimal strings), with its acceptance."""
        return [
            {
                **{c: _text(getattr(f, c)) for c in self.COLUMNS},
                "check": f.check,
                "accepted": self.accepted.get(f.id),
            }
            for f in self.findings
        ]

    def render(self) -> str:
        """A plain-text table, the explanation last, then a one-line summary."""
        # data-derived text escaped (ledger.escaping): one finding, one line
        accepted = {i: f" [accepted: {reason}]" for i, reason in self.accepted.items()}
        rows = [
            [for_terminal(_text(getattr(f, c)) or "-") for c in self.COLUMNS[:-1]]
            + [for_terminal(f.explanation + accepted.get(f.id, ""))]
            for f in self.findings
        ]
        lines = []
        if rows:
            header = [c.upper() for c in self.COLUMNS]
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
            for row in [header, *rows]:
                lines.append(
                    "  ".join(
                        cell.ljust(w) if i < 5 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=False))
                    )
                    + "  "
                    + row[-1]
                )
        counts = {
            s: sum(1 for f in self.findings if f.severity == s)
            for s in ("error", "warning", "info")
        }
        summary = (
            f"{self.month}: {counts['error']} errors "
            f"({counts['error'] - len(self.open_errors)} accepted), "
            f"{counts['warning']} warnings, {counts['info']} info"
        )
        return "\n".join([*lines, summary if self.findings else f"{self.month}: no findings"])


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def first_open_month(session: Session) -> str:
    """The month ``close`` would close next: after the last sealed one, else the first with
    entries through today, else the current month."""
    sealed = books.sealed_months(session.workspace.books_dir)
    if sealed:
        return next_month(max(sealed))
    today = session.today()
    return _earliest_month_with_entries(session, before=today + timedelta(days=1)) or month_of(
        today
    )


def reconcile_month(session: Session, month: str | None = None) -> Reconciliation:
    """Run every reconciler for ``month`` (default :func:`first_open_month`); nothing is written."""
    month = parse_month(month) if month is not None else first_open_month(session)
    with session.command():
        findings = run_reconcilers(session, month)
    ids = {f.id for f in findings}
    accepted = {k: v for k, v in load_acceptances(session.engine, month).items() if k in ids}
    return Reconciliation(month, tuple(findings), accepted)


# --- the invoicing gate ----------------------------------------------------------------
@dataclass(frozen=True)
class Held:
    """A drafted invoice not issued: open error findings name its customer in a month it bills."""

    invoice: Invoice
    findings: tuple[Finding, ...]


@dataclass
class InvoiceGate:
    """DESIGN: an error finding blocks invoicing until fixed or accepted with a reason.

    Called with the drafts (books just posted from the same store), it runs the
    reconcilers for every open month the drafts bill (the months their cycles
    span), records the acceptances given that match a finding there, and holds
    each draft whose customer an open error finding of those months names. A
    finding that names no customer (an unidentified wire, say) holds no invoice —
    stopping every customer's billing over it would help nobody — but it still
    blocks the close. ``unknown``: accepted ids that matched no finding.
    """

    session: Session
    accept: Mapping[str, str] = field(default_factory=dict)
    held: list[Held] = field(default_factory=list)
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    #: raise BadInput (before anything is issued) for an accepted id that matches no finding
    strict: bool = False
    ran: bool = False

    def __call__(self, drafts: list[Invoice]) -> list[Invoice]:
        self.ran = True
        first_open = (
            month_of(self.session.first_open()) if self.session.first_open() > date.min else ""
        )
        months = sorted({m for d in drafts for m in billed_months(d) if m >= first_open})
        for month in months:
            self.findings[month] = run_reconcilers(self.session, month)
        where = {f.id: month for month, found in self.findings.items() for f in found}
        where |= accepted_earlier(self.session.engine, set(self.accept) - set(where), first_open)
        self.unknown = sorted(set(self.accept) - set(where))
        if self.unknown and self.strict:
            raise BadInput(
                f"--accept {self.unknown[0]}: no such finding in the months these invoices bill "
                f"({', '.join(months)}; findings: {', '.join(sorted(where)) or 'none'})"
            )
        for fid, reason in sorted(self.accept.items()):
            if fid in where:
                record_acceptances(self.session.engine, where[fid], {fid: reason})
        blocking: dict[str, list[Finding]] = {}
        for month, found in self.findings.items():
            accepted = load_acceptances(self.session.engine, month)
            blocking[month] = [
                f for f in found if f.blocks_close and f.customer and f.id not in accepted
            ]
        issue = []
        stopped: dict[
            str, tuple[Finding, ...]
        ] = {}  # customer → what holds its earliest held draft
        for draft in sorted(drafts, key=lambda d: d.date):
            holding = tuple(
                f
                for m in billed_months(draft)
                for f in blocking.get(m, ())
                if f.customer == draft.customer
            )
            # a customer's invoices are issued in date order: one held holds its later ones too,
            # or a later invoice would take a lower number and bill as if the earlier one did not
            # exist
            holding = holding or stopped.get(draft.customer, ())
            if holding:
                stopped.setdefault(draft.customer, holding)
                self.held.append(Held(draft, holding))
            else:
                issue.append(draft)
        order = {id(d): i for i, d in enumerate(drafts)}
        return sorted(issue, key=lambda d: order[id(d)])


def billed_months(invoice: Invoice) -> list[str]:
    """The months (YYYY-MM) the cycles of an invoice's lines span; its own month when no line
    names a cycle."""
    months: set[str] = set()
    for line in invoice.lines:
        if "/" in line.cycle:
            start, end = (date.fromisoformat(part) for part in line.cycle.split("/", 1))
            month = month_of(start)
            while month_start(month) < end:
                months.add(month)
                month = next_month(month)
    return sorted(months or {month_of(invoice.date)})


def invoice_gated(
    session: Session,
    through: date,
    accept: Mapping[str, str] | None = None,
) -> tuple[list[Invoice], InvoiceGate]:
    """``meterbook invoice``: issue what no open error finding holds; the gate says what it held."""
    gate = InvoiceGate(session, dict(accept or {}), strict=True)
    with session.command():  # the gate's reconcilers read what the invoice run has read
        issued = session.invoice(through, gate=gate)
    if gate.accept and not gate.ran:
        first_open = month_of(session.first_open()) if session.first_open() > date.min else ""
        fresh = sorted(
            set(gate.accept) - set(accepted_earlier(session.engine, gate.accept, first_open))
        )
        if fresh:
            raise BadInput(
                f"--accept {fresh[0]}: nothing to invoice through {through}, so no "
                "finding to accept here (accept it at `meterbook close`)"
            )
    return issued, gate


# --- the close -------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseReport:
    """What ``close`` did, or why it refused (``refused`` non-empty: nothing was sealed)."""

    month: str
    already_closed: bool = False
    refused: str = ""
    findings: tuple[Finding, ...] = ()
    accepted: Mapping[str, str] = field(default_factory=dict)
    invoices: tuple[Invoice, ...] = ()
    assertions: int = 0
    seal_hash: str = ""
    close_file: str = ""
    also_closed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    #: ``books/YYYY/YYYY-MM.close.md`` (:func:`ledger.reports.close.write_close_report`),
    #: once sealed
    report_file: str = ""
    #: what a re-run completed of a sealed month's close that had stopped half-way
    #: (:func:`finish_close`)
    finished: tuple[str, ...] = ()

    @property
    def open_errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocks_close and f.id not in self.accepted)


def close_month(
    session: Session, month: str, accept: Mapping[str, str] | None = None
) -> CloseReport:
    """Close ``month``: invoices, postings, reconciliation gate, assertions, seal.

    Raises :class:`BadInput` for a bad month, a month not ended yet or out of
    order; returns a report with ``refused`` set when findings or a failed
    load stop the close (the CLI exits 1).

    One command (:meth:`ledger.opened.OpenWorkspace.command`): the issued facts are read
    once (again after the invoices it issues are stored), each rating and its digests
    computed once, and the books loaded once until the close writes them.
    """
    with session.command():
        return _close_month(session, month, accept)


def _close_month(
    session: Session, month: str, accept: Mapping[str, str] | None = None
) -> CloseReport:
    month = parse_month(month)
    books_dir = session.workspace.books_dir
    sealed = books.sealed_months(books_dir)
    if month in sealed:
        return CloseReport(
            month,
            already_closed=True,
            close_file=str(books.close_path(books_dir, month)),
            finished=finish_close(session, month),
        )
    if month_end(month) >= session.today():
        raise BadInput(
            f"{month} has not ended yet (today is {session.today()}); close it from "
            f"{month_start(next_month(month))}"
        )
    also: list[str] = []
    if sealed:
        expected = next_month(max(sealed))
        if month < expected:
            raise BadInput(
                f"{month} is before the first closed month {min(sealed)} and cannot be closed: "
                "months close in order"
            )
        while expected < month:
            if _has_entries(session, expected):
                raise BadInput(f"close {expected} first: months close in order")
            gap = _close(session, expected, {})
            if gap.refused:
                return CloseReport(
                    month,
                    refused=f"{expected} (no entries) could not be closed: {gap.refused}",
                    findings=gap.findings,
                    errors=gap.errors,
                    also_closed=tuple(also),
                )
            also.append(expected)
            expected = next_month(expected)
    else:
        require_activity_by(session, month)
        earliest = _earliest_month_with_entries(session, before=month_start(month))
        if earliest is not None:
            raise BadInput(
                f"close {earliest} first: months close in order ({earliest} is the first month "
                "with entries)"
            )
    report = _close(session, month, dict(accept or {}))
    return CloseReport(**{**report.__dict__, "also_closed": tuple(also)})


def first_activity(session: Session) -> date | None:
    """The workspace's first day of activity: the earliest subscription start, credit grant or
    stored usage event (its day in the workspace timezone), or None when there is none.

    Asked only at a workspace's first close; only events before the rules' first day are
    looked for then.
    """
    days = [
        d
        for c in session.rules.customers.values()
        for d in (*(s.start for s in c.subscriptions), *(g.granted for g in c.credits))
    ]
    first = min(days, default=None)
    query = select(func.min(events_table.c.time_us))
    if first is not None:
        query = query.where(
            events_table.c.time_us < metering.cut_off_us(first, session.workspace.tz)
        )
    with session.engine.connect() as conn:
        earliest_us = conn.execute(query).scalar()
    if earliest_us is not None:
        moment = datetime.fromtimestamp(earliest_us / 1_000_000, UTC).astimezone(
            session.workspace.tz
        )
        first = moment.date() if first is None else min(first, moment.date())
    return first


def require_activity_by(session: Session, month: str) -> None:
    """Refuse (exit 2) to close a month that ends before the workspace's first activity: a
    typo would seal empty months for good (the seal chain cannot be taken back).

    With the first subscription starting 2026-09-01 and no earlier event, ``close 2026-08``
    is refused: ``2026-08 is before the workspace's first activity (2026-09-01) ...``.
    """
    first = first_activity(session)
    if first is None:
        raise BadInput(
            f"{month}: nothing to close: the rules have no subscription or credit grant and "
            "the store no event; a close seals its month for good"
        )
    if first > month_end(month):
        raise BadInput(
            f"{month} is before the workspace's first activity ({first}, the earliest "
            "subscription start, credit grant or event): nothing to close, and a sealed "
            "month cannot be reopened"
        )


def _due_invoices(session: Session, through: date) -> list[Invoice]:
    """Invoices dated on or before ``through`` that ``invoice`` would issue (not issued here)."""
    return session.draft(session.rate(through), through)


def _has_entries(session: Session, month: str) -> bool:
    start, end = month_start(month), month_end(month)
    if any(start <= inv.date <= end for inv in _due_invoices(session, end)):
        return True
    entries, _documents, _invoices = session.generate(end)
    return any(start <= e.date <= end for e in entries)


def _earliest_month_with_entries(session: Session, before: date) -> str | None:
    through = before - timedelta(days=1)
    dates = [e.date for e in session.generate(through)[0]]
    dates += [inv.date for inv in _due_invoices(session, through)]
    return month_of(min(dates)) if dates else None


def _close(session: Session, month: str, accept: dict[str, str]) -> CloseReport:
    workspace = session.workspace
    books_dir = workspace.books_dir
    end = month_end(month)
    # The books stay posted as far as they were (the later of what the open months' files hold
    # and what the store recorded): a refused or interrupted close never truncates them.
    through = max(posted_through_books(books_dir, end), session.posted_through() or end)

    # Everything due in the month is issued first: nothing dated in a sealed month may come later,
    # and an invoice held by an open error finding stops the close.
    gate = InvoiceGate(session, accept)
    issued = tuple(session.invoice(through=end, gate=gate, post_through=through))
    gated = {f.id for found in gate.findings.values() for f in found}
    earlier = accepted_earlier(session.engine, set(accept) - gated, month)
    for fid, accepted_for in earlier.items():  # a new reason replaces the earlier one
        record_acceptances(session.engine, accepted_for, {fid: accept[fid]})
    gated |= set(earlier)
    if gate.held:
        holding = {f.id: f for held in gate.held for f in held.findings}
        unknown = sorted(set(accept) - gated)
        if unknown:
            raise BadInput(
                f"--accept {unknown[0]}: no such finding for {month} "
                f"(findings: {', '.join(sorted(gated)) or 'none'})"
            )
        count = len(gate.held)
        return CloseReport(
            month,
            findings=tuple(sorted(holding.values(), key=lambda f: f.id)),
            invoices=issued,
            refused=(
                f"{count} invoice{'s' if count != 1 else ''} dated on or before {end} held by "
                "open error findings; fix or accept each with --accept ID --reason TEXT"
            ),
        )
    faults.point("close:inner-post")
    session.post(through)

    findings = run_reconcilers(session, month)
    known = {f.id for f in findings}
    unknown = sorted(set(accept) - known - gated)
    if unknown:
        raise BadInput(
            f"--accept {unknown[0]}: no such finding for {month} "
            f"(findings: {', '.join(sorted(known)) or 'none'})"
        )
    record_acceptances(session.engine, month, {k: v for k, v in accept.items() if k in known})
    accepted = {k: v for k, v in load_acceptances(session.engine, month).items() if k in known}
    report = CloseReport(month, findings=tuple(findings), accepted=accepted, invoices=issued)
    if report.open_errors:
        count = len(report.open_errors)
        return CloseReport(
            **{
                **report.__dict__,
                "refused": (
                    f"{count} open error finding{'s' if count != 1 else ''}; "
                    "fix or accept each with --accept ID --reason TEXT"
                ),
            }
        )

    balances = expected_balances(session, month)
    directives: list[data.Directive] = [
        acceptance_directive(month, fid, reason) for fid, reason in sorted(accepted.items())
    ]
    directives.extend(balances)
    body = CLOSE_HEADER + "\n" + "".join("\n" + books.format_entry(d) for d in directives)

    close_file = books.close_path(books_dir, month)
    entries, documents, _invoices = session.generate(through)
    from ledger.reports.close import close_report_path, close_report_text

    report_file = close_report_path(books_dir, month)
    loaded: list[data.Directive] = []
    hash_ = ""
    # One unit, in this order: close file (assertions) + books + documents, load; the close
    # report; the seal recorded in the store; the seal written into the close file (the commit
    # point: until it is there the month is open and a re-run closes it again from the start).
    try:
        books.write_atomic(close_file, body)
        session.write(entries, documents)  # main.beancount now includes the close file
        loaded, errors, _options = session.loaded_books()
        loaded = list(loaded)
        faults.point("close:body")
        if not errors:
            previous = _previous_seal(loaded, month)
            pending = close_report_text(
                session,
                month,
                findings=findings,
                accepted=accepted,
                seal_hash=seal.REPORT_PLACEHOLDER,
                entries=loaded,
            )
            covered = seal.coverage_text(
                month,
                str(books_dir),
                loaded,
                (report_file.relative_to(books_dir).as_posix(), pending),
                len(seal.read_seals(loaded)[0]),
            )
            extra, _errors, _options = parser.parse_string(covered)
            sealing = seal.build_seal(month, [*loaded, *extra], previous)
            hash_ = seal.read_seals(sealing)[0][0].hash
            books.write_atomic(report_file, pending.replace(seal.REPORT_PLACEHOLDER, hash_))
            record_seal(session, month, hash_)
            faults.point("close:recorded")
            books.write_atomic(
                close_file,
                body + "\n" + covered + "".join("\n" + books.format_entry(d) for d in sealing),
            )
            faults.point("close:sealed")
            session.wrote_books(sealed=True)
            loaded, errors, _options = session.loaded_books()
    except BaseException:
        _roll_back(session, month, close_file, entries, documents)
        raise
    if errors or month not in books.sealed_months(books_dir):
        _roll_back(session, month, close_file, entries, documents)
        messages = tuple(error_line(e) for e in errors)
        return CloseReport(
            **{
                **report.__dict__,
                "errors": messages,
                "refused": (
                    f"the books do not load cleanly with the close file ({len(errors)} errors)"
                ),
            }
        )
    return CloseReport(
        **{
            **report.__dict__,
            "assertions": len(balances),
            "seal_hash": hash_,
            "close_file": str(close_file),
            "report_file": str(report_file),
        }
    )


def finish_close(session: Session, month: str) -> tuple[str, ...]:
    """Complete the close of a sealed ``month`` that stopped after its seal was written: record
    the seal in the store if it is missing there, and write the close report if it is missing
    or differs from the one sealed (only when the report rendered again is the one sealed, or
    the seal predates sealed reports). A seal that does not verify is left to ``check``.
    Returns what was done, one phrase each (empty: the close was complete)."""
    from ledger.reports.close import close_report_path, close_report_text

    loaded, _errors, _options = session.loaded_books()
    status = {s.month: s for s in seal.verify_seals(loaded)}.get(month)
    if status is None or not status.ok:
        return ()
    done: list[str] = []
    with session.engine.connect() as conn:
        recorded = conn.execute(
            select(meta_table.c.value).where(meta_table.c.key == f"seal:{month}")
        ).scalar()
    if recorded is None:
        record_seal(session, month, status.hash)
        done.append("recorded its seal in the store")
    books_dir = session.workspace.books_dir
    path = close_report_path(books_dir, month)
    sealed_digest = None
    for entry in loaded:
        if (
            isinstance(entry, data.Custom)
            and entry.type == seal.DOCUMENTS
            and entry.values
            and entry.values[0].value == month
            and isinstance(entry.meta.get("report"), str)
        ):
            sealed_digest = entry.meta["report"].rpartition(" ")[2]
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if current is not None and (
        sealed_digest is None or seal.report_digest(current, status.hash) == sealed_digest
    ):
        return tuple(done)
    findings = run_reconcilers(session, month)
    known = {f.id for f in findings}
    accepted = {k: v for k, v in load_acceptances(session.engine, month).items() if k in known}
    shown = [
        e
        for e in loaded
        if seal.period_of(e) is not None
        or not isinstance(e, data.Custom | data.Transaction)
        or (isinstance(e, data.Transaction) and seal.GUARD_MARK not in e.meta)
    ]
    pending = close_report_text(
        session,
        month,
        findings=findings,
        accepted=accepted,
        seal_hash=seal.REPORT_PLACEHOLDER,
        entries=shown,
    )
    if (
        sealed_digest is None
        or seal.report_digest(pending, seal.REPORT_PLACEHOLDER) == sealed_digest
    ):
        books.write_atomic(path, pending.replace(seal.REPORT_PLACEHOLDER, status.hash))
        done.append(f"wrote its close report {path.relative_to(session.workspace.root)}")
    return tuple(done)


def record_seal(session: Session, month: str, hash_: str) -> None:
    """Keep ``seal:YYYY-MM`` in the store: the anchor ``check`` compares the books' chain with.

    ``close`` records it before it writes the seal into the books, so every seal the books
    ever carried is in the store: one deleted from the books later fails ``check``.
    """
    with session.engine.begin() as conn:
        conn.execute(delete(meta_table).where(meta_table.c.key == f"seal:{month}"))
        conn.execute(insert(meta_table).values(key=f"seal:{month}", value=hash_))


def _roll_back(
    session: Session,
    month: str,
    close_file: Path,
    entries: list[data.Directive],
    documents: dict[str, str],
) -> None:
    """Undo a close that did not seal: no close file, no close report, no seal record."""
    from sqlalchemy.exc import DBAPIError

    from ledger.reports.close import close_report_path

    # Every step is tried whatever the one before did (a close report path that is a folder
    # stopped the rest, leaving main.beancount including the close file it had just removed);
    # the books are written last, from the files then on disk.
    with contextlib.suppress(FileNotFoundError):
        close_file.unlink()
    session.wrote_books(sealed=True)
    report = close_report_path(session.workspace.books_dir, month)
    if report.is_file() or report.is_symlink():  # a folder there was there before the close
        report.unlink(missing_ok=True)
    with (
        contextlib.suppress(DBAPIError),
        session.engine.begin() as conn,
    ):  # a read-only store recorded nothing
        conn.execute(delete(meta_table).where(meta_table.c.key == f"seal:{month}"))
    session.write(entries, documents)


def _previous_seal(entries: Sequence[data.Directive], month: str) -> str:
    latest = seal.latest_seal(entries)
    if latest is None:
        return seal.GENESIS
    if latest.month != previous_month(month):
        raise BadInput(f"close {next_month(latest.month)} first: months close in order")
    return latest.hash


def cash_balances(session: Session, month: str) -> dict[tuple[str, str], Decimal]:
    """Cash and unapplied cash at the end of ``month`` per currency, from the payments table alone.

    Cash is every payment received through the month's last day, in full (the
    bank's figure). Unapplied cash is the part of each payment that the payment
    matching (:func:`ledger.payments.settle`, the replay that posts them, over the
    invoices, payments and credit notes dated through the month's end) applies
    to no invoice; it is a credit balance, so negative. With INV-1 1.00 USD and
    INV-2 0.75 USD open, 0.40 paid on INV-1, 2.00 on INV-2 and 15.00 naming no
    invoice::

        ("Assets:Bank:Operating", "USD")        17.40   0.40 + 2.00 + 15.00
        ("Liabilities:Unapplied-Cash", "USD")  -16.25   (2.00 - 0.75) + 15.00

    Cash applications (``meterbook apply`` / ``refund``) dated through the month's
    end count too: cash applied later leaves unapplied cash, a refund paid out
    leaves the bank (and unapplied cash when it refunds a payment's rest).

    The posted payment entries are not read, so a payment lost or edited on the
    way to the books fails its assertion.
    """
    end = month_end(month)
    facts = session.facts().through(end)
    payments = list(facts.payments)
    if not payments:
        return {}
    invoices, notes = list(facts.invoices), list(facts.credit_notes)
    applications = list(facts.applications)
    left = outstanding(invoices, payments, notes, applications)
    cash, unapplied = (session.rules.account(kind) for kind in CASH_KINDS)
    totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for payment in payments:
        totals[(cash, payment.currency)] += payment.amount
        if left[payment.reference]:
            totals[(unapplied, payment.currency)] -= left[payment.reference]
    for application in applications:
        if application.kind == "refund":
            totals[(cash, application.currency)] -= application.amount
    return dict(totals)


def expected_balances(session: Session, month: str) -> list[data.Balance]:
    """Balance assertions for the end of ``month`` (dated the 1st of the next month).

    One per currency for every unbilled, contract-asset, receivable, deferred,
    refund-liability and revenue (``Income:``) account with postings, the amount
    computed from the store and the rating (:func:`regenerated_entries`); and for
    cash and unapplied cash, computed from the payments table (:func:`cash_balances`).
    """
    day = assertion_day(month)
    cash_accounts = {session.rules.account(kind) for kind in CASH_KINDS}
    expected = {
        k: v
        for k, v in balances_before(regenerated_entries(session, month_end(month)), day).items()
        if k[0] not in cash_accounts
    }
    expected.update(cash_balances(session, month))
    kinds = account_kinds(session.rules)
    if session.workspace.summary_books:  # the control accounts hold the customers' sums
        expected = control_balances(expected, session.rules)
        kinds = {**kinds, **control_kinds(session.rules)}
    # Accounts posted to in the books but absent from the expectation must be 0: assert that too.
    posted = balances_before(session.loaded_books()[0], day)
    keys = {
        k
        for k in (*expected, *posted)
        if k[0] in kinds
        or k[0] in cash_accounts
        or k[0].startswith("Income:")
        or is_tax_account(session.rules, k[0])
    }  # tax owed, per jurisdiction
    return [
        balance_assertion(day, account, expected.get((account, currency), ZERO), currency)
        for account, currency in sorted(keys)
    ]
