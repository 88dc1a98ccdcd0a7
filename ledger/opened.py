"""A workspace opened for work: its rules, plugins and store, and what the books say.

What every stage that corrects or drafts needs to know about the workspace: the rules
and plugins it was opened with, its store, today's date in its time zone, the first
day the books are still open, what the sealed months hold and the day the books were
last posted through. :class:`ledger.session.Session` builds the pipeline on it; the
stages below the session (pins, subscriptions, credit notes) take an
:class:`OpenWorkspace`, so none of them reaches up into the session.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from threading import get_ident
from typing import Any, Self

from beancount.core import data
from beancount.parser import parser
from sqlalchemy import Engine, select

from ledger import books
from ledger.errors import AfterTodayError, SealedMonthError
from ledger.facts import IssuedFacts, load_facts
from ledger.period import Month
from ledger.registry import Registry, load_registry
from ledger.rules import Rules, load_rules
from ledger.store import meta as meta_table
from ledger.store import open_store
from ledger.tax import check_tax_setup
from ledger.workspace import Workspace

#: The store's ``meta`` key for the day the books were last posted through
#: (:meth:`OpenWorkspace.posted_through`).
POSTED_THROUGH = "posted:through"


@dataclass
class Reads:
    """What one command has read of the store and the books, kept until it writes.

    A command (``post``, ``invoice``, ``credit``, ``rerate``, ``close``) runs inside
    :meth:`OpenWorkspace.command`: the issued facts are read from the store once, each
    rating and its evidence digests are computed once, the books are loaded in Beancount
    once, and every stage below takes them from here. A write forgets what it makes stale
    (:meth:`OpenWorkspace.wrote_facts`, :meth:`OpenWorkspace.wrote_books`), so the next
    read sees it.
    """

    facts: IssuedFacts | None = None
    #: ratings by (through, customers[, "whole"]); values typed loosely: ``rating`` is a
    #: later stage
    ratings: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: evidence digests by the rating they were computed for (``id``, the rating kept alive)
    digests: dict[int, tuple[Any, Mapping[tuple[str, date], str]]] = field(default_factory=dict)
    #: regenerated entries by the arguments that decide them
    regenerated: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: ``books.load_books(main.beancount)``, while the books are as loaded
    books: tuple[Any, ...] | None = None
    #: the sealed months' entries as written (:meth:`OpenWorkspace.sealed_record`), until a
    #: month is sealed
    sealed: list[data.Directive] | None = None
    #: the sealed documents whose files hold their sealed bytes (``Session.intact_documents``)
    intact: set[str] | None = None
    #: book files parsed (Beancount's parser) by path, size and modification time
    parsed: dict[tuple[str, int, int], tuple[Any, ...]] = field(default_factory=dict)
    #: documents by issued number (and the prepaid balances an invoice shows), rendered once
    rendered: dict[tuple[str, tuple[Any, ...]], dict[str, str]] = field(default_factory=dict)
    #: the settled cycles' links (``Session.settled``) by the issued facts they were found for
    settled: tuple[Any, frozenset[str]] | None = None


@dataclass
class OpenWorkspace:
    """A workspace opened for work."""

    workspace: Workspace
    registry: Registry
    rules: Rules
    engine: Engine
    #: "today" instead of the clock's (the demo's fixed calendar, a test as of a date)
    fixed_today: date | None = None
    #: the running command's reads and the thread running it (:meth:`command`)
    running: tuple[int, Reads] | None = field(default=None, repr=False, compare=False)

    @property
    def reads(self) -> Reads | None:
        """What the running command has read, or None outside a command (every read goes to
        the store then), and in any thread but the command's (the API server's request
        threads share one session and run no command on it)."""
        running = self.running
        return running[1] if running is not None and running[0] == get_ident() else None

    @contextmanager
    def command(self) -> Iterator[Reads]:
        """One command's reads (:class:`Reads`); a command run inside another (``close`` runs
        ``invoice`` and ``post``) shares the outer one's."""
        if self.reads is not None:
            yield self.reads
            return
        reads = Reads()
        self.running = (get_ident(), reads)
        try:
            yield reads
        finally:
            self.running = None

    def stored_facts(self) -> IssuedFacts:
        """The issued facts in the store: read once per command (:meth:`command`)."""
        reads = self.reads
        if reads is None:
            return load_facts(self.engine)
        if reads.facts is None:
            reads.facts = load_facts(self.engine)
        return reads.facts

    def wrote_facts(self, *, rated: bool = True) -> None:
        """The command has just stored a fact: read them again when next asked. ``rated=False``
        keeps the ratings (issuing invoices pins exactly the plan versions they were rated
        with and changes no event or grant, so every rating stays what it was; not a threshold
        invoice: its cycle is rated at one more cut-off from then on)."""
        reads = self.reads
        if reads is not None:
            reads.facts = None
            reads.settled = None
            reads.regenerated.clear()
            if rated:
                reads.ratings.clear()

    def loaded_books(self) -> tuple[data.Directives, list[data.BeancountError], dict[str, Any]]:
        """``main.beancount`` loaded in Beancount (:func:`ledger.books.load_books`): once per
        command, again only after the command wrote the books (:meth:`wrote_books`)."""
        reads = self.reads
        if reads is None:
            return books.load_books(self.workspace.main_file)
        if reads.books is None:
            reads.books = books.load_books(self.workspace.main_file)
        return reads.books  # type: ignore[return-value]

    def parse_file(self, path: str) -> tuple[list[data.Directive], list[Any], dict[str, Any]]:
        """A book file as Beancount's parser reads it (:data:`ledger.books.Parse`): parsed once
        per command while its size and modification time stay the same."""
        reads = self.reads
        if reads is None:
            return parser.parse_file(path)
        stat = Path(path).stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in reads.parsed:
            reads.parsed[key] = parser.parse_file(path)
        entries, errors, options = reads.parsed[key]
        return list(entries), list(errors), dict(options)

    def wrote_books(self, *, sealed: bool = False) -> None:
        """The command has just written a book file: load them again when next asked;
        ``sealed``: a close file, so the sealed months' record is read again too."""
        reads = self.reads
        if reads is not None:
            reads.books = None
            if sealed:
                reads.settled = None
                reads.sealed = None
                reads.intact = None
                reads.parsed.clear()

    @classmethod
    def open(cls, workspace: Workspace, *, today: date | None = None) -> Self:
        """The workspace's plugins, rules and store; ``today`` (default: the clock's, in the
        workspace's time zone) is the day the engine's date rules are kept against."""
        registry = load_registry(workspace.plugins_dir)
        rules = load_rules(
            workspace.rules_dir,
            registry.pricing_models,
            change_policy=workspace.subscription_changes,
        )
        check_tax_setup(
            workspace.rules_dir, workspace.config_file, rules
        )  # fails early, with its line
        store = open_store(workspace.store_url)
        return cls(workspace, registry, rules, store, fixed_today=today)

    def today(self) -> date:
        """Today in the workspace's time zone (or the fixed day it was opened with)."""
        if self.fixed_today is not None:
            return self.fixed_today
        return datetime.now(self.workspace.tz).date()

    def require_not_after_today(self, day: date, option: str, why: str) -> None:
        """Refuse (:class:`AfterTodayError`) a write dated after today; ``option`` names the
        date's origin and ``why`` says what the write would do.

        ``--through: 2026-12-05 is after today (2026-12-04, UTC); the books are posted only
        through today``
        """
        today = self.today()
        if day > today:
            raise AfterTodayError(
                f"{option}: {day.isoformat()} is after today ({today.isoformat()}, "
                f"{self.workspace.timezone}); {why}"
            )

    def require_postable(self, through: date, command: str) -> None:
        """Refuse to (re)write the open months through ``through`` when it is after today
        (:class:`AfterTodayError`) or inside the sealed months (:class:`SealedMonthError`:
        the open months' files would be written empty, issued invoices and all).

        ``--through: 2026-09-15 is inside the sealed months (sealed through 2026-09-30);
        post through 2026-09-30 or later``
        """
        self.require_not_after_today(
            through, "--through", "the books are posted only through today"
        )
        first_open = self.first_open()
        if first_open > date.min and through < first_open - timedelta(days=1):
            sealed_end = first_open - timedelta(days=1)
            raise SealedMonthError(
                f"--through: {through.isoformat()} is inside the sealed months (sealed through "
                f"{sealed_end.isoformat()}); {command} through {sealed_end.isoformat()} or later"
            )

    def first_open(self) -> date:
        """The first day of the first month that is not sealed."""
        sealed = books.sealed_months(self.workspace.books_dir)
        if not sealed:
            return date.min
        return Month.parse(max(sealed)).next().first

    def sealed_record(self) -> list[data.Directive]:
        """The entries of the sealed months' files, as written (parsed, not booked): parsed once
        per command, again after it seals a month (:meth:`wrote_books`)."""
        if self.reads is not None and self.reads.sealed is not None:
            return list(self.reads.sealed)
        record: list[data.Directive] = []
        books_dir = self.workspace.books_dir
        for month in sorted(books.sealed_months(books_dir)):
            path = books.month_path(books_dir, month)
            if path.exists():
                parsed, _errors, _options = self.parse_file(str(path))
                record.extend(parsed)
        if self.reads is not None:
            self.reads.sealed = list(record)
        return record

    def posted_through(self) -> date | None:
        """The day the books were last posted through, as the store recorded it (None: never)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(meta_table.c.value).where(meta_table.c.key == POSTED_THROUGH)
            ).scalar()
        return date.fromisoformat(value) if value else None
