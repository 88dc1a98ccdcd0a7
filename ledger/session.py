"""A session: one workspace with its rules, plugins and store, and the pipeline
stages run over them. The CLI, the demo and the tests drive the engine here::

    session = Session.open(Workspace.find(Path.cwd()))
    session.post(through=date(2026, 10, 31))      # rate → post → books/
    session.invoice(through=date(2026, 10, 31))   # issue due invoices, then re-post

Each stage lives in its own module (``metering``, ``rating``, ``journal``,
``invoicing``, ``books``); this module wires them in order and keeps the engine's
rules for every write, whoever calls it (the CLI, the demo, a script):

- nothing is written dated after today in the workspace's time zone
  (:class:`~ledger.errors.AfterTodayError`): ``session.post(through=date(2099, 1, 1))``
  is refused, and so is an invoice run, a credit note or a rerate dated tomorrow;
- nothing is written into the sealed months (:class:`~ledger.errors.SealedMonthError`):
  with September sealed, ``session.post(through=date(2026, 9, 15))`` is refused before
  the open October file is touched (posting through a sealed day would empty it).

The rules themselves are :class:`ledger.opened.OpenWorkspace`'s (``require_postable``,
``require_not_after_today``), so the stages below the session keep them too. "Today" is the
clock's, or the day given to ``Session.open`` (the demo's fixed calendar, a test that runs
as of a date).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections import ChainMap
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal, Self, cast

from beancount.core import data
from sqlalchemy import Connection, delete, insert, select

from ledger import books, faults, metering
from ledger.accruals import Inclusion
from ledger.credit_notes import issue_credit_note, recut_cycles
from ledger.documents import (
    Seller,
    Templates,
    credit_note_documents,
    debit_documents,
    document_names,
    invoice_documents,
)
from ledger.documents.invoices import PrepaidBalance, prepaid_balances
from ledger.documents.pdf import require_pdf, write_pdfs
from ledger.errors import BadInput, SealedMonthError, StoreError
from ledger.facts import IssuedFacts
from ledger.facts.adjustments import Adjustment
from ledger.facts.credit_notes import CreditNote
from ledger.facts.invoices import Invoice, Snapshot
from ledger.facts.payments import CashApplication
from ledger.facts.topups import TopUp
from ledger.invoicing import bill_debit_adjustments, draft_invoices, issue, number
from ledger.journal import post
from ledger.journal.adjustments import debit_entries, mark_credit_notes
from ledger.journal.credit_notes import credit_note_entries
from ledger.journal.payments import application_entries, payment_entries
from ledger.journal.sealed import catch_up, usage_month
from ledger.journal.summary import PREFIX as SUMMARY_PREFIX
from ledger.journal.summary import summarize
from ledger.opened import POSTED_THROUGH, OpenWorkspace
from ledger.payments import record_application
from ledger.pins import record_pins, require_unchanged_terms
from ledger.rating import CycleRating, Rating, credit_at_start, rate, undrawn_credit
from ledger.store import arrived_after, events_watermark, invoice_watermarks, safe_url
from ledger.store import meta as meta_table
from ledger.subscriptions import absorbed_recuts, current_fees
from ledger.tax import TaxSettings, apply_taxes, included_taxes
from ledger.workspace import Workspace

#: A rating and its evidence digests by (cycle link, accrual date), computed together.
Rated = tuple[Rating, Mapping[tuple[str, date], str]]


class Since(Mapping[tuple[str, date], str]):
    """The digests of the accrual points on or after ``day`` (the others are not keys)."""

    def __init__(self, digests: Mapping[tuple[str, date], str], day: date) -> None:
        self._digests, self._day = digests, day

    def __getitem__(self, key: tuple[str, date]) -> str:
        if key[1] < self._day:
            raise KeyError(key)
        return self._digests[key]

    def __iter__(self) -> Iterator[tuple[str, date]]:
        return (key for key in self._digests if key[1] >= self._day)

    def __len__(self) -> int:
        return sum(1 for _key in self)


class Digests(Mapping[tuple[str, date], str]):
    """The evidence digests of a rating's accrual points, by (cycle link, accrual date), each
    computed when first read (:func:`ledger.metering.evidence_digest`).

    Every point of the rating is a key, as if all were computed; the journal and drafting
    read only the points they post (an invoiced cycle's accruals are frozen in its invoice,
    evidence included), so the cost follows what is open, not the months behind it.
    """

    def __init__(self, session: Session, rating: Rating) -> None:
        self._session = session
        self._points = {
            (rated.cycle.link, rated.through): rated
            for rated in rating.cycles
            if rated.through in rated.cycle.accrual_points()
        }
        # every rated day can be read (a threshold invoice freezes the day before its date), but
        # only accrual points are iterated
        self._rated = {(rated.cycle.link, rated.through): rated for rated in rating.cycles}
        self._digests: dict[tuple[str, date], str] = {}

    def __getitem__(self, key: tuple[str, date]) -> str:
        if key not in self._digests:
            rated = self._rated[key]  # KeyError: not a point of the rating
            self._digests[key] = self._session.digest(rated)
        return self._digests[key]

    def __iter__(self) -> Iterator[tuple[str, date]]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)


#: meterbook's pages in Fava, declared in main.beancount (``custom "fava-extension"``).
FAVA_EXTENSIONS = ["ledger.fava_ext"]
#: Fava's options in main.beancount (``custom "fava-option"``): income, liabilities and equity
#: shown positive in Fava's income statement and balance sheet, as finance reads them (Beancount
#: keeps them as credits, negative; Fava's journal and account pages keep Beancount's signs).
FAVA_OPTIONS = {"invert-income-liabilities-equity": "true"}


@dataclass(frozen=True)
class PostReport:
    """What ``post`` wrote."""

    through: date
    entries: int
    months: tuple[str, ...]
    invoices: int
    #: invoices dated on or before ``through`` that ``invoice`` would issue and has not yet
    unissued: int = 0


@dataclass
class Session(OpenWorkspace):
    """A workspace opened for work, and the pipeline run over it."""

    #: invoices numbered by :meth:`invoice` whose books are being staged (not in the store yet)
    _issuing: tuple[Invoice, ...] = ()

    def facts(self) -> IssuedFacts:
        """The issued facts, read once per command (:meth:`command`), with the invoices
        :meth:`invoice` is issuing (numbered, not committed yet)."""
        stored = self.stored_facts()
        if not self._issuing:
            return stored
        return replace(stored, invoices=(*stored.invoices, *self._issuing))

    @classmethod
    def open(cls, workspace: Workspace, *, today: date | None = None) -> Self:
        session = super().open(workspace, today=today)
        session.templates  # noqa: B018 - a workspace's template with a syntax error fails here
        if session.workspace.documents.pdf:
            require_pdf(session.workspace.config_file)  # before anything is written
        return session

    @cached_property
    def templates(self) -> Templates:
        """The document templates: the workspace's ``[documents] templates`` over the packaged
        ones (:mod:`ledger.documents`)."""
        workspace = self.workspace
        tax_id = TaxSettings.load(workspace.config_file).seller_tax_id
        seller, payment = workspace.seller, workspace.payment
        return Templates(
            workspace.templates_dir,
            Seller(
                tax_id=tax_id,
                title=workspace.title,
                name=seller.name,
                address=seller.address,
                email=seller.email,
                phone=seller.phone,
                payment=payment.instructions,
                payment_details=payment.details,
            ),
        )

    def rate(
        self,
        through: date,
        customers: Collection[str] | None = None,
        *,
        facts: IssuedFacts | None = None,
        whole: bool = False,
    ) -> Rating:
        """Every cycle rated through ``through``; issued cycles with the plan version they
        were invoiced under (:mod:`ledger.rerate`).

        Inside a command, each (``through``, ``customers``) is rated once: ``facts`` is then
        the command's own snapshot, and only a stored fact that changes what rating reads
        (a credit note, a debit adjustment, a corrected fee) makes it rate again. A command's
        rating of every customer leaves out the settled cycles (:meth:`settled`), unless
        ``whole``: what it posts, drafts and reconciles in the open months reads their
        invoices' frozen accruals instead."""
        reads = self.reads
        key: tuple[Any, ...] = (through, None if customers is None else frozenset(customers))
        if whole:
            key = (*key, "whole")
        if reads is not None and key in reads.ratings:
            return cast(Rating, reads.ratings[key])
        facts = self.facts() if facts is None else facts
        rating = rate(
            self.engine,
            self.rules,
            self.registry.pricing_models,
            self.workspace.tz,
            through=through,
            customers=customers,
            pins=facts.pins,
            reductions=facts.grant_reductions,
            progress=facts.progress,
            settled=(
                self.settled(facts) if reads is not None and customers is None and not whole else ()
            ),
        )
        if reads is not None:
            reads.ratings[key] = rating
        return rating

    def settled(self, facts: IssuedFacts) -> frozenset[str]:
        """The links of the invoiced cycles that rating them again would not change, so the
        month-end leaves them out (its cost follows what is open, not the months behind it).

        A cycle is settled when each invoice that froze its accruals is dated before the
        first open day, was rated under the rules as they are now (same rules hash) and has
        a watermark (``invoice_watermarks``: the last event stored when its run rated it),
        its last frozen accrual is its last day, before the first open day, and no event
        stored after the watermark falls in the cycle's time range for its customer. A
        late event, an edit of the rules, a rerate (it edits the rules) or a subscription
        change (the same) makes the cycle rated again, exactly as before. Customers with
        prepaid credit are always rated (:func:`ledger.rating.rate`).

        acme's cycle ``[2025-01-01, 2025-02-01)``, invoiced 2025-01-31 with watermark 4,120,
        January sealed: settled, unless an event of acme dated in January has ``pk`` above
        4,120 (it arrived after the invoice was rated: late usage, posted as before).
        """
        reads = self.reads
        if reads is not None and reads.settled is not None and reads.settled[0] is facts:
            return reads.settled[1]
        found = self._settled(facts)
        if reads is not None:
            reads.settled = (facts, found)
        return found

    def _settled(self, facts: IssuedFacts) -> frozenset[str]:
        first_open = self.first_open()
        if first_open == date.min or not facts.invoices:
            return frozenset()
        with self.engine.connect() as conn:
            rows = conn.execute(select(invoice_watermarks.c.number, invoice_watermarks.c.events_pk))
            marks: dict[str, int] = {number: int(pk) for number, pk in rows}
        held: dict[str, list[tuple[Invoice, Snapshot]]] = {}
        for inv in facts.invoices:
            for snap in inv.accruals:
                held.setdefault(snap.link, []).append((inv, snap))
        tz = self.workspace.tz
        # per link: the customer, the cycle's time range and the lowest watermark
        candidates: dict[str, tuple[str, int, int, int]] = {}
        for link, frozen in held.items():
            start, _slash, end = frozen[0][1].cycle.partition("/")
            last = date.fromisoformat(end) - timedelta(days=1)
            watermarks = [marks.get(inv.number) for inv, _snap in frozen]
            if (
                last >= first_open
                or max(snap.through for _inv, snap in frozen) != last
                or any(inv.date >= first_open or inv.rules != self.rules.hash for inv, _ in frozen)
            ):
                continue
            known = [mark for mark in watermarks if mark is not None]
            if len(known) < len(watermarks):
                continue
            candidates[link] = (
                frozen[0][1].customer,
                metering.cut_off_us(date.fromisoformat(start), tz),
                metering.cut_off_us(last + timedelta(days=1), tz),
                min(known),
            )
        by_mark: dict[int, list[str]] = {}
        for link, (_c, _a, _b, mark) in candidates.items():
            by_mark.setdefault(mark, []).append(link)
        settled: set[str] = set()
        with self.engine.connect() as conn:
            for mark, links in sorted(by_mark.items()):
                spans = [candidates[link] for link in links]
                late = arrived_after(conn, mark, min(s[1] for s in spans), max(s[2] for s in spans))
                for link in links:
                    customer, start_us, end_us, _mark = candidates[link]
                    first_last = late.get(customer)
                    if first_last is None or not (
                        first_last[0] < end_us and first_last[1] >= start_us
                    ):
                        settled.add(link)
        return frozenset(settled)

    def evidence(self, rating: Rating) -> Digests:
        """Per cycle and accrual point: a digest over the evidence of each of its meters,
        computed when read (:class:`Digests`; once per rating inside a command)."""
        reads = self.reads
        if reads is not None and id(rating) in reads.digests:
            return cast(Digests, reads.digests[id(rating)][1])
        digests = Digests(self, rating)
        if reads is not None:
            reads.digests[id(rating)] = (rating, digests)  # the rating kept: its id stays its
        return digests

    def digest(self, rated: CycleRating) -> str:
        """The evidence digest of one rated accrual point: every meter it charges."""
        window = metering.accrual_window(
            rated.cycle.customer, rated.cycle.start, rated.through, self.workspace.tz
        )
        meters = sorted({c.meter for c in rated.charges})
        return metering.evidence_digest(
            (m, metering.evidence(self.engine, self.rules.meters[m], window)) for m in meters
        )

    def post(self, through: date, *, rated: Rated | None = None) -> PostReport:
        """Rate and (re)write the open months' books up to ``through``.

        ``through`` after today or inside the sealed months is refused before anything is
        written (:meth:`require_postable`). ``rated``: the rating through ``through`` and
        its evidence digests when the caller has just computed them from the same store
        (``invoice`` has).

        Runs as one command (:meth:`command`): the issued facts are read once, and rating,
        the journal and drafting all take them from there.
        """
        with self.command():
            return self._post(through, rated=rated)

    def _post(self, through: date, *, rated: Rated | None) -> PostReport:
        self.require_postable(through, "post")
        if rated is None:
            self.correct_subscriptions(through)  # (``invoice`` did before rating)
        facts = self.facts()  # the command's: rating, the journal and drafting all read these
        if rated is None:
            rating = self.rate(through, facts=facts)
            rated = (rating, self.evidence(rating))
        faults.point("post:rated")
        entries, documents, invoices = self.generate(through, rated=rated, facts=facts)
        staging = books.Staging()
        try:
            months = self.write(entries, documents, staging=staging)
            self.record_posted(
                through
            )  # the store first: books behind it fail `check` until re-posted
        except BaseException:
            staging.discard()
            raise
        staging.commit()
        unissued = self.draft(rated[0], through, facts=facts)
        return PostReport(
            through=through,
            entries=len(entries),
            months=months,
            invoices=len(invoices),
            unissued=len(unissued),
        )

    def generate(
        self,
        through: date,
        *,
        rated: Rated | None = None,
        facts: IssuedFacts | None = None,
    ) -> tuple[list[data.Directive], dict[str, str], list[Invoice]]:
        """The open months' entries up to ``through``, their documents and the invoices behind them.

        Nothing is generated for a sealed month: what regeneration would now put
        there is compared with the sealed files and the difference posted as
        late adjustments on the first open day (:func:`ledger.journal.sealed.catch_up`).
        """
        require_unchanged_terms(
            self
        )  # an invoiced plan version edited in place: refuse (ledger.rerate)
        first_open = self.first_open()
        if first_open > date.min and through >= first_open - timedelta(days=1):
            record = self.sealed_record()
            self.require_store_of_record(record)
            self.require_books_detail(record)
            # the settled cycles' sealed entries are what regenerating them would give: neither
            # side of the comparison holds them (with summary books an entry sums many cycles)
            facts = self.facts() if facts is None else facts
            leave_out = (
                self.settled(facts)
                if self.reads is not None and not self.workspace.summary_books
                else frozenset()
            )
            if leave_out:
                record = [e for e in record if not _settled_entry(e, leave_out, first_open)]
            # What is written is dated in the open months, and so are the accrual points whose
            # evidence it carries; the sealed months' entries are only compared with the record.
            # So the sealed points' digests are read only when the comparison finds something
            # to adjust (a late adjustment carries the evidence of its month's last point).
            for since in (first_open, date.min):
                generated, documents, invoices = self.regenerate(
                    through, rated=rated, facts=facts, evidence_from=since, leave_out=leave_out
                )
                generated = self.booked(generated)
                if leave_out:
                    generated = [
                        e for e in generated if not _settled_entry(e, leave_out, first_open)
                    ]
                entries, late = catch_up(
                    generated, record, first_open=first_open, rules_hash=self.rules.hash
                )
                if not late:
                    break
            entries = [*entries, *(e for e in late if e.date <= through)]
        else:
            generated, documents, invoices = self.regenerate(
                through, rated=rated, facts=facts
            )  # a rating that stops inside the sealed months says nothing about them
            entries = [e for e in self.booked(generated) if e.date >= first_open]
        return entries, documents, invoices

    def booked(self, generated: list[data.Directive]) -> list[data.Directive]:
        """The entries as the books hold them: summed on control accounts with summary books
        (:mod:`ledger.journal.summary`; the per-customer detail stays in the store), else as
        they are."""
        return summarize(generated, self.rules) if self.workspace.summary_books else generated

    def regenerate(
        self,
        through: date,
        *,
        evidence: bool = True,
        rated: Rated | None = None,
        first_open: date | None = None,
        facts: IssuedFacts | None = None,
        evidence_from: date = date.min,
        documents: bool = True,
        leave_out: frozenset[str] = frozenset(),
    ) -> tuple[list[data.Directive], dict[str, str], list[Invoice]]:
        """Every entry up to ``through`` derived from the store and the rating, sealed months
        included (what close asserts and check ties out against), with documents and invoices.
        ``documents=False`` leaves the documents out (``{}``): balances need no rendering.
        ``leave_out``: cycle links whose accruals are not generated (:meth:`generate`).

        ``evidence=False`` skips the evidence digests (metadata only, never an amount);
        ``evidence_from``: only the accrual points from that day on carry theirs.
        ``first_open`` (default: the first day after the sealed months) is the earliest
        day late entries of invoiced cycles are dated; ``date.min`` dates each where its
        usage was invoiced, as if no month had been sealed since.
        """
        facts = self.facts() if facts is None else facts
        rating, digests = rated if rated is not None else (self.rate(through, facts=facts), None)
        first_open = self.first_open() if first_open is None else first_open
        # inside a command, the same entries are derived once (close posts, asserts and ties
        # out the same days); the key holds what decides them beside the command's facts
        key = (
            through,
            evidence,
            evidence_from,
            first_open,
            id(rating),
            tuple(i.number for i in self._issuing),
            leave_out,
        )
        if self.reads is not None and key in self.reads.regenerated:
            _rating, (entries, rendered, invoices) = self.reads.regenerated[key]
            if rendered is not None or not documents:
                return list(entries), dict(rendered or {}), list(invoices)
        if evidence and digests is None:
            digests = self.evidence(rating)
        if evidence and digests is not None and evidence_from > date.min:
            digests = Since(digests, evidence_from)
        issued = list(facts.invoices)
        invoices = [inv for inv in issued if inv.date <= through]
        # Every issued invoice freezes its cycle's accruals, even one dated after ``through``:
        # the books hold the frozen figures from the day it was issued, and what arrived
        # since is late usage dated at the invoice or later (the freeze and late rules).
        generated = [
            e
            for e in post(
                rating,
                self.rules,
                issued,
                first_open=first_open,
                evidence=digests if evidence else None,
                included=self.included(rating, issued),
                leave_out=leave_out,
            )
            if e.date <= through
        ]
        # payments and credit notes: stored facts settled against the invoices in date order
        dated = facts.through(through)
        payments, notes = list(dated.payments), list(dated.credit_notes)
        applications = list(dated.applications)
        adjustments = list(dated.adjustments)
        generated += payment_entries(payments, invoices, notes, self.rules, applications)
        generated += credit_note_entries(
            notes,
            invoices,
            payments,
            self.rules,
            through=through,
            applications=applications,
            adjustments=adjustments,
            # a subscription change's correction dated after ``through`` (close and check of an
            # earlier month) drops a note's schedule there as it does in the books posted since
            recut={
                **recut_cycles(facts.credit_notes, facts.adjustments),
                **absorbed_recuts(self),
            },
        )
        generated += application_entries(applications, payments, invoices, notes, self.rules)
        # reratings: their credit notes are marked, their debit adjustments posted (ledger.rerate)
        generated = [
            *mark_credit_notes(generated, adjustments),
            *debit_entries(adjustments, self.rules),
        ]
        rendered = (
            self.documents(invoices, notes, adjustments, rating, skip=self.intact_documents())
            if documents
            else None
        )
        if self.reads is not None:
            self.reads.regenerated[key] = (rating, (generated, rendered, invoices))
            return list(generated), dict(rendered or {}), list(invoices)
        return generated, rendered or {}, invoices

    def documents(
        self,
        invoices: Sequence[Invoice],
        notes: Sequence[CreditNote],
        adjustments: Sequence[Adjustment],
        rating: Rating | None = None,
        *,
        skip: Collection[str] = frozenset(),
    ) -> dict[str, str]:
        """``{path under books/: content}`` of the documents of these invoices, credit notes and
        debit adjustments, as ``post`` writes them. ``rating`` (through the last invoice's date
        at least) gives the prepaid credit left on each invoice's date; None: rated here for
        the customers with prepaid credit. ``skip``: paths left out, not rendered (an invoice
        or credit note whose HTML and JSON both are)."""
        documents: dict[str, str] = {}
        invoices = [i for i in invoices if not _both(i.number, skip)]
        notes = [n for n in notes if not _both(n.number, skip)]
        prepaid = self.prepaid(invoices, rating)
        # an issued number's document is the same all command long: rendered once per command
        rendered = self.reads.rendered if self.reads is not None else {}
        for inv in invoices:
            key = (inv.number, prepaid.get(inv.number, ()))
            if key not in rendered:
                rendered[key] = invoice_documents(inv, self.rules, self.templates, key[1])
            documents.update(rendered[key])
        for note in notes:
            if (note.number, ()) not in rendered:
                rendered[(note.number, ())] = credit_note_documents(
                    note, self.rules, self.templates
                )
            documents.update(rendered[(note.number, ())])
        documents.update(debit_documents(adjustments, self.rules, self.templates))
        return documents

    def intact_documents(self) -> set[str]:
        """The sealed documents (paths under books/) whose files hold the bytes their seal
        covers: ``post`` would not write them (:meth:`write` only ever puts a sealed document's
        sealed bytes back), so it need not render them. Read once per command; none when PDF
        prints are made (a print is made from the HTML rendered)."""
        reads = self.reads
        if reads is not None and reads.intact is not None:
            return reads.intact
        found: set[str] = set()
        if not self.workspace.documents.pdf:
            books_dir = self.workspace.books_dir
            for relative, digest in books.sealed_documents(books_dir, self.parse_file).items():
                path = books_dir / relative
                if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                    found.add(relative)
        if reads is not None:
            reads.intact = found
        return found

    def prepaid(
        self, invoices: Sequence[Invoice], rating: Rating | None = None
    ) -> dict[str, tuple[PrepaidBalance, ...]]:
        """Per invoice number, its customer's prepaid credit left on the invoice date (grants
        granted − drawn + returned − expired − taken back by credit notes:
        :func:`ledger.rating.credit_at_start`); only for customers with grants."""
        rules = self.rules
        wallets = self.wallet_customers()
        with_credit = [inv for inv in invoices if inv.customer in wallets]
        if not with_credit:
            return {}
        last = max(inv.date for inv in with_credit)
        if rating is None or rating.through < last:
            rating = self.rate(last, {inv.customer for inv in with_credit})
        found = {}
        for inv in with_credit:
            grants = rating.grants_of(rules.customers[inv.customer])
            left = credit_at_start(rating, grants, inv.customer, inv.date)
            found[inv.number] = prepaid_balances(grants, left)
        return found

    def wallet_customers(self) -> set[str]:
        """The customers that have prepaid credit: grants in customers.yaml, wallet settings
        or stored top-ups (:mod:`ledger.topups`)."""
        from ledger.facts.topups import load_topups

        rules = self.rules
        found = {cid for cid, c in rules.customers.items() if c.credits or c.wallet is not None}
        found.update(t.customer for t in load_topups(self.engine) if t.customer in rules.customers)
        return found

    def issued_documents(self, through: date) -> dict[str, str]:
        """The documents of everything the store issued through ``through``
        (:meth:`documents`): what ``check`` compares the open months' files with."""
        stored = self.stored_facts().through(through)
        return self.documents(stored.invoices, stored.credit_notes, stored.adjustments)

    def issued_document_names(self) -> set[str]:
        """The paths under books/ of every document the store issued (HTML, JSON and the PDF
        print of the HTML), without rendering them."""
        stored = self.stored_facts()
        return document_names(stored.invoices, stored.credit_notes, stored.adjustments)

    def unknown_records(self, record: list[data.Directive] | None = None) -> list[str]:
        """What the sealed books record that the store does not hold, ``file:line: what`` each.

        Invoices, credit notes, debit adjustments and payments are facts kept in the
        store; the books are derived from it. Sealed books that name one the store
        lacks were posted from another store (a wrong URL, a fresh clone, a lost
        file): posting against it would reverse sealed history as "late adjustments".
        """
        record = self.sealed_record() if record is None else record
        stored = self.stored_facts()
        held = {
            "invoice": (invoices := {inv.number for inv in stored.invoices}),
            "grant_invoice": invoices,
            "credit_note": {note.number for note in stored.credit_notes},
            "debit_adjustment": {adj.document for adj in stored.adjustments},
            "reference": {p.reference for p in stored.payments},
            "application": {a.reference for a in stored.applications},
        }
        names = {
            "invoice": "invoice",
            "grant_invoice": "invoice",
            "credit_note": "credit note",
            "debit_adjustment": "debit adjustment",
            "reference": "payment",
            "application": "cash application",
        }
        missing: list[str] = []
        seen: set[tuple[str, str]] = set()
        for entry in record:
            if not isinstance(entry, data.Transaction):
                continue
            for key, known in held.items():
                if key == "invoice" and "reference" in entry.meta:
                    # a payment names the invoice its payer wrote, which may not exist
                    # (unapplied cash)
                    continue
                value = entry.meta.get(key)
                if (
                    isinstance(value, str)
                    and value not in known
                    and (names[key], value) not in seen
                ):
                    seen.add((names[key], value))
                    where = os.path.relpath(
                        str(entry.meta.get("filename", "books")), self.workspace.root
                    )
                    missing.append(f"{where}:{entry.meta.get('lineno', 0)}: {names[key]} {value}")
        return missing

    def require_store_of_record(self, record: list[data.Directive] | None = None) -> None:
        """Refuse (exit 2) when the sealed books name invoices or payments the store lacks."""
        missing = self.unknown_records(record)
        if missing:
            url = safe_url(self.workspace.store_url)
            raise StoreError(
                f"{missing[0]} is sealed in the books but not in the store {url}"
                + (f" ({len(missing) - 1} more records missing)" if len(missing) > 1 else "")
                + ": these books were posted from another store; restore it "
                "(or rebuild the demo with `meterbook demo`). "
                "Nothing was written: meterbook does not post against sealed history"
            )

    def require_books_detail(self, record: list[data.Directive]) -> None:
        """Refuse (exit 2) when ``books_detail`` is not what the sealed months were closed with:
        their control (or per-customer) balances are asserted, so the books' detail is chosen
        before the first close and kept."""
        summary = customer = ""
        for entry in record:
            if not isinstance(entry, data.Transaction):
                continue
            if any(link.startswith(SUMMARY_PREFIX) for link in entry.links or ()):
                summary = summary or entry.date.strftime("%Y-%m")
            elif "customer" in (entry.meta or {}):
                customer = customer or entry.date.strftime("%Y-%m")
        sealed_as = (
            ("summary", summary)
            if summary and not self.workspace.summary_books
            else ("customer", customer)
            if customer and self.workspace.summary_books
            else None
        )
        if sealed_as is not None:
            detail, month = sealed_as
            raise BadInput(
                f"{self.workspace.root / 'meterbook.toml'}: books_detail: {month} is sealed with "
                f"{detail} books; the books' detail cannot change after a month is sealed "
                f'(set books_detail = "{detail}" back). Nothing was written'
            )

    def require_writable_books(self) -> None:
        """Refuse (exit 2) unless ``books/`` and ``books/documents/`` take a new file
        (:func:`ledger.books.unwritable`)."""
        for folder in (self.workspace.books_dir, self.workspace.books_dir / "documents"):
            problem = books.unwritable(folder)
            if problem is not None:
                probe, reason = problem
                raise BadInput(
                    f"{probe}: {reason}: the books cannot be written, so nothing was issued"
                )

    def write(
        self,
        entries: list[data.Directive],
        documents: dict[str, str],
        *,
        staging: books.Staging | None = None,
    ) -> tuple[str, ...]:
        """Write the documents, then the books (:func:`ledger.books.write_books`); with
        ``staging``, only stage them there for the caller to put in place."""
        books_dir = self.workspace.books_dir
        staged = books.Staging() if staging is None else staging
        if staged.writes:
            books.remove_stale_temporaries(books_dir)  # a killed writer's; this one holds the lock
        sealed = books.sealed_documents(books_dir, self.parse_file)
        pdf = self.workspace.documents.pdf and staged.writes
        prints: dict[str, str] = {}  # the HTML documents whose PDF print is (re)made
        for relative, content in sorted(documents.items()):
            # A sealed document is the record: written again only to put back its sealed bytes
            # (deleted or edited), never changed (a new rendering after an upgrade).
            digest = hashlib.sha256(content.encode()).hexdigest() if relative in sealed else None
            if digest is not None and digest != sealed[relative]:
                if pdf and relative.endswith(".html"):
                    prints[relative] = ""  # printed from its sealed bytes if the PDF is missing
                continue
            changed = staged.add(books_dir / relative, content)
            if pdf and relative.endswith(".html"):
                prints[relative] = content if changed else ""
        if prints:
            write_pdfs(books_dir, prints, staged)
        currencies = sorted(
            {self.workspace.operating_currency}
            | {c.currency for c in self.rules.customers.values()}
        )
        options = {"title": self.workspace.title}
        written = books.write_books(
            books_dir,
            options=options,
            operating_currencies=currencies,
            plugins=[("ledger.seal", None)],
            extensions=FAVA_EXTENSIONS if importlib.util.find_spec(FAVA_EXTENSIONS[0]) else [],
            fava_options=FAVA_OPTIONS,
            entries=entries,
            sealed_months=books.sealed_months(books_dir),
            staging=staged,
            parse=self.parse_file,
        )
        if staging is None:
            staged.commit()
        self.wrote_books()  # staged or written: loaded books are stale either way
        return tuple(written)

    def unposted(self, through: date) -> list[str]:
        """The book files (paths under books/) that differ from what ``post --through through``
        would write from the store now; documents left out (``check`` compares them on their
        own)."""
        entries, documents, _invoices = self.generate(through)
        comparing = books.Comparing()
        self.write(entries, documents, staging=comparing)
        books_dir = self.workspace.books_dir
        return [
            path.relative_to(books_dir).as_posix()
            for path in comparing.differs
            if path.relative_to(books_dir).as_posix() not in documents
        ]

    def issued_invoices(self) -> list[Invoice]:
        """Every issued invoice in number order, with those :meth:`invoice` is issuing (numbered,
        their books being staged, not yet committed to the store)."""
        return list(self.facts().invoices)

    def record_posted(self, through: date) -> None:
        """Record in the store that the books are being posted through ``through``: ``check``
        audits through it and ``close`` re-posts through it, so books truncated or emptied
        behind the store's back fail ``check`` instead of passing it."""
        with self.engine.begin() as conn:
            record_posted(conn, through)

    def draft(
        self,
        rating: Rating,
        through: date,
        *,
        issued: Sequence[Invoice] | None = None,
        evidence: Mapping[tuple[str, date], str] | None = None,
        redrafting: Invoice | None = None,
        facts: IssuedFacts | None = None,
    ) -> list[Invoice]:
        """The invoices dated on or before ``through`` that ``issued`` (default: every issued
        invoice) leaves to issue: :func:`ledger.invoicing.draft_invoices`, then the debit
        adjustments recorded by then (:func:`ledger.rerate.bill_debit_adjustments`)."""
        facts = self.facts() if facts is None else facts
        issued = list(facts.invoices) if issued is None else list(issued)
        before = self._threshold_rating(rating, through, facts)
        if before is not None and evidence is not None:
            # read-only, each digest computed when read (a ChainMap only reads here)
            evidence = ChainMap(
                cast(MutableMapping[tuple[str, date], str], evidence),
                cast(MutableMapping[tuple[str, date], str], self.evidence(before)),
            )
        drafts = draft_invoices(
            rating,
            self.rules,
            issued,
            through=through,
            first_open=self.first_open(),
            evidence=evidence,
            redrafting=redrafting,
            included=self.included(rating, issued),
            before=before,
        )
        adjustments = list(facts.through(through).adjustments)
        drafts = bill_debit_adjustments(
            drafts, adjustments, issued, rules=self.rules, through=through, redrafting=redrafting
        )
        # then the tax plugins decide each draft's tax (ledger.tax); none answering: untaxed
        return apply_taxes(
            drafts,
            registry=self.registry,
            rules=self.rules,
            rules_dir=self.workspace.rules_dir,
            config=self.workspace.config_file,
            issued=issued,
        )

    def _threshold_rating(self, rating: Rating, through: date, facts: IssuedFacts) -> Rating | None:
        """The customers of ``rating`` with an invoice threshold rated through the day before
        ``through``: what a threshold invoice dated ``through`` bills (None: no such customer).
        Rated on its own, so the day before is the rating's last day, whose credit draws no
        other day of the cycle sees (as a rating through any day)."""
        rules = self.rules
        wanted = {
            cid
            for cid in {r.cycle.customer for r in rating.cycles}
            if cid in rules.customers
            and (
                rules.customers[cid].invoice_threshold is not None
                or any(
                    sub.plan in rules.plans and rules.plans[sub.plan].invoice_threshold is not None
                    for sub in rules.customers[cid].subscriptions
                )
            )
        }
        if not wanted:
            return None
        return self.rate(through - timedelta(days=1), wanted, facts=facts)

    def included(self, rating: Rating, issued: Sequence[Invoice]) -> dict[str, Inclusion]:
        """Per cycle link, the tax its tax-inclusive prices hold, so that it is accrued net of
        it (:func:`ledger.tax.included_taxes`; empty when prices exclude the tax)."""
        return included_taxes(
            rating,
            issued,
            registry=self.registry,
            rules=self.rules,
            rules_dir=self.workspace.rules_dir,
            config=self.workspace.config_file,
        )

    def correct_subscriptions(self, through: date) -> list[str]:
        """Subscriptions edited after invoicing (:mod:`ledger.subscriptions`): refuse an edit to
        a cycle whose usage is billed; credit or charge the difference on an advance fee."""
        from ledger.subscriptions import (
            correct_fee_changes,
            require_billed_cycles,
            require_billed_discounts,
            require_sealed_accruals,
            require_unissued_days,
        )

        require_billed_cycles(self)
        require_billed_discounts(self)
        require_sealed_accruals(self)
        require_unissued_days(self)
        written = correct_fee_changes(self, through)
        if written:  # corrections stored (credit notes, debit adjustments): read them again
            self.wrote_facts()
        return written

    def credit(
        self,
        invoice_number: str,
        *,
        amount: str,
        reason: str,
        on: date,
        line: int | None = None,
        force: bool = False,
    ) -> CreditNote:
        """``meterbook credit``: issue a credit note on ``invoice_number`` with the session's
        grant balances (rated through the note's date) and first open day, and write its
        documents before the note commits (a note whose documents cannot be written is not
        issued: a retry does not credit twice).

        A note dated after today is refused (:class:`ledger.errors.AfterTodayError`), one dated
        in a sealed month too (:class:`ledger.errors.SealedMonthError`): nothing is stored.

        One command (:meth:`command`): the facts are read once; the grant balances are rated
        from them."""
        with self.command():
            note = self._credit(invoice_number, amount, reason, on, line, force)
            self.wrote_facts()  # the note is stored
            return note

    def _credit(
        self,
        invoice_number: str,
        amount: str,
        reason: str,
        on: date,
        line: int | None,
        force: bool,
    ) -> CreditNote:
        self.require_not_after_today(
            on, "--date", "a credit note is dated the day it is issued or earlier"
        )
        rules = self.rules

        def balances(customer: str, day: date) -> Mapping[str, Decimal]:
            known = rules.customers.get(customer)
            if known is None or customer not in self.wallet_customers():
                return {}
            rating = self.rate(day, {customer})
            return undrawn_credit(rating, rating.grants_of(known), customer, day)

        def documents(note: CreditNote) -> None:
            try:  # written now (``post`` rewrites them identically)
                files = credit_note_documents(note, rules, self.templates)
                for relative, content in sorted(files.items()):
                    books.write_atomic(self.workspace.books_dir / relative, content)
            except OSError as exc:  # raised inside the note's transaction: the note is not kept
                where = (
                    exc.filename
                    if exc.filename is not None
                    else self.workspace.books_dir / "documents"
                )
                raise BadInput(
                    f"{where}: {exc.strerror or exc}: {note.number}'s documents cannot be "
                    "written, so no credit note was issued"
                ) from None

        # a subscription edited after the invoice is corrected first, so the note sees what is left
        self.correct_subscriptions(on)
        return issue_credit_note(
            self.engine,
            invoice_number,
            amount=amount,
            reason=reason,
            on=on,
            line=line,
            force=force,
            first_open=self.first_open(),
            balances=balances,
            also=documents,
            current=current_fees(self, invoice_number),
        )

    def apply(
        self,
        source: str,
        invoice_number: str,
        *,
        on: date,
        amount: Decimal | None = None,
        reference: str = "",
    ) -> tuple[CashApplication, bool]:
        """``meterbook apply``: apply what ``source`` holds (a payment's unapplied cash, a
        credit note's credit balance) to ``invoice_number`` on ``on``; ``amount`` None: all it
        can. Posted with the next :meth:`post`.

        Dated after today: refused (:class:`ledger.errors.AfterTodayError`); in a sealed
        month: refused (:class:`ledger.errors.SealedMonthError`); nothing is stored. Returns
        the application and whether it was stored now (False: recorded before, unchanged).
        One command (:meth:`command`): the facts are read once."""
        return self._record_cash("apply", source, invoice_number, on, amount, reference)

    def topup(
        self,
        customer: str,
        *,
        amount: Decimal,
        on: date,
        expires: date | None = None,
        reference: str = "",
    ) -> tuple[TopUp, bool]:
        """``meterbook topup``: record a wallet top-up of ``amount`` for ``customer`` on ``on``
        (:mod:`ledger.topups`), billed with the next ``invoice``. ``reference`` is its key
        (default ``<customer>/<date>/<amount>``): the same one again records nothing.

        Dated after today (:class:`ledger.errors.AfterTodayError`) or in a sealed month
        (:class:`ledger.errors.SealedMonthError`): refused, nothing is stored. Returns the
        top-up and whether it was stored now (False: recorded before, unchanged)."""
        from ledger.money import quantum
        from ledger.topups import record

        with self.command():
            known = self.rules.customers.get(customer)
            currency = known.currency if known is not None else ""
            if known is not None and amount == amount.quantize(quantum(currency)):
                amount = amount.quantize(quantum(currency))
            topup = TopUp(
                reference=reference or f"{customer}/{on.isoformat()}/{amount}",
                customer=customer,
                date=on,
                amount=amount,
                currency=currency,
                expires=expires,
                source="command",
            )
            outcome = record(
                self.engine,
                self.rules,
                topup,
                today=self.today(),
                first_open=self.first_open(),
            )
            return topup, outcome == "accepted"

    def refund(
        self, source: str, *, on: date, reference: str, amount: Decimal | None = None
    ) -> tuple[CashApplication, bool]:
        """``meterbook refund``: record a payout of what ``source`` holds on ``on`` under the
        bank's ``reference``; ``amount`` None: all of it. The same date rules as :meth:`apply`."""
        return self._record_cash("refund", source, "", on, amount, reference)

    def _record_cash(
        self,
        kind: Literal["apply", "refund"],
        source: str,
        invoice_number: str,
        on: date,
        amount: Decimal | None,
        reference: str,
    ) -> tuple[CashApplication, bool]:
        with self.command():
            first_open = self.first_open()
            if on < first_open:
                raise SealedMonthError(
                    f"--date: {on.isoformat()} is in a sealed month; cash is applied in an open "
                    f"month (from {first_open.isoformat()})"
                )
            self.require_not_after_today(
                on,
                "--date",
                f"cash is {'applied' if kind == 'apply' else 'refunded'} on the "
                "day it moves or earlier",
            )
            recorded = record_application(
                self.engine,
                self.stored_facts(),
                kind=kind,
                source=source.strip(),
                on=on,
                invoice=invoice_number.strip(),
                amount=amount,
                reference=reference,
            )
            if recorded[1]:
                self.wrote_facts(rated=False)
            return recorded

    def invoice(
        self,
        through: date,
        *,
        gate: Callable[[list[Invoice]], list[Invoice]] | None = None,
        post_through: date | None = None,
    ) -> list[Invoice]:
        """Issue every invoice dated on or before ``through`` not issued yet, then re-post
        through ``post_through`` (default ``through``; ``close`` keeps the later months posted).

        ``gate`` gets the drafts after the books are posted (so reconcilers see the store
        as it is) and returns the ones to issue (:func:`ledger.closing.invoice_gate` holds
        those with open error findings).

        All or nothing between the store and the files: the drafts are numbered in
        memory, the books and documents that hold them are staged as fsynced temporary
        files (a full disk fails here, with nothing issued), the invoices are committed
        to the store, and only then are the files renamed into place. A crash after the
        commit leaves the store ahead of the books: ``check`` fails until any ``post``
        or ``invoice`` rewrites them from the store.

        Refused before anything is rated or written: ``through`` after today (an invoice
        number is never taken back) and ``through`` or ``post_through`` inside the sealed
        months (:meth:`require_postable`).

        One command (:meth:`command`): the facts are read once and the rating and its digests
        computed once, for drafting, the gate's post and the books staged with the invoices.
        """
        with self.command():
            return self._invoice(through, gate=gate, post_through=post_through)

    def _invoice(
        self,
        through: date,
        *,
        gate: Callable[[list[Invoice]], list[Invoice]] | None,
        post_through: date | None,
    ) -> list[Invoice]:
        self.require_not_after_today(
            through,
            "--through",
            "an invoice number is never taken back, so none is issued before its date",
        )
        self.require_postable(through, "invoice")
        if post_through is not None and post_through != through:
            self.require_postable(post_through, "invoice")
        require_unchanged_terms(self)  # before anything is rated, issued or pinned
        if self.first_open() > date.min:
            self.require_store_of_record()
        # an issued number is never taken back: its books must be writable
        self.require_writable_books()
        # the last event stored before anything is rated: the frozen accruals of the invoices
        # issued here hold every event up to it (:meth:`settled`)
        with self.engine.connect() as conn:
            watermark = events_watermark(conn)
        self.correct_subscriptions(through)
        facts = self.facts()
        rating = self.rate(through, facts=facts)
        digests = self.evidence(rating)
        drafts = self.draft(rating, through, evidence=digests, facts=facts)
        post_through = through if post_through is None else post_through
        # issuing changes no event and pins exactly the plan versions this rating used, so
        # the books are posted from the same rating (rating and evidence cost the most)
        rated = (rating, digests) if post_through == through else None
        if gate is not None and drafts:
            self.post(post_through, rated=rated)
            drafts = gate(drafts)
        numbered = number(self.engine, drafts)
        self._issuing = tuple(
            Invoice.from_json(inv.to_json()) for inv in numbered
        )  # as the store gives them back
        staging = books.Staging()
        try:
            entries, documents, _invoices = self.generate(post_through, rated=rated)
            self.write(entries, documents, staging=staging)
            faults.point("invoice:staged")

            def also(conn: Connection, issued: list[Invoice]) -> None:
                record_pins(conn, self.rules, issued)
                record_posted(conn, post_through)
                if issued:
                    conn.execute(
                        insert(invoice_watermarks),
                        [{"number": inv.number, "events_pk": watermark} for inv in issued],
                    )

            new = issue(self.engine, numbered, also=also)
        except BaseException:
            staging.discard()
            raise
        finally:
            self._issuing = ()
            if numbered:  # invoices and their pins stored (or not): read the facts again,
                # keep the ratings (the pins are the plan versions they were rated with), unless
                # a threshold invoice adds a cut-off its cycle is rated at (``progress``): the
                # reconcilers of ``close`` compare its lines with the cycle rated there
                self.wrote_facts(rated=any(inv.threshold for inv in numbered))
        faults.point("invoice:numbered")
        staging.commit()
        return new


def record_posted(conn: Connection, through: date) -> None:
    """:meth:`Session.record_posted` inside a transaction of the caller's."""
    conn.execute(delete(meta_table).where(meta_table.c.key == POSTED_THROUGH))
    conn.execute(insert(meta_table).values(key=POSTED_THROUGH, value=through.isoformat()))


def _settled_entry(entry: data.Directive, settled: Collection[str], first_open: date) -> bool:
    """True for a transaction of the sealed months (its usage month) that links only settled
    cycles (:meth:`Session.settled`): left out of both sides of the sealed months' comparison,
    a whole catch-up group at a time (the groups are by usage month, customer and links)."""
    return (
        isinstance(entry, data.Transaction)
        and bool(entry.links)
        and usage_month(entry) < first_open
        and all(link in settled for link in entry.links)
    )


def _both(number: str, paths: Collection[str]) -> bool:
    """Whether a document's HTML and JSON are both in ``paths``."""
    return f"documents/{number}.html" in paths and f"documents/{number}.json" in paths
