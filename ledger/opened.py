"""A workspace opened for work: its rules, plugins and store, and what the books say.

What every stage that corrects or drafts needs to know about the workspace: the rules
and plugins it was opened with, its store, today's date in its time zone, the first
day the books are still open, what the sealed months hold and the day the books were
last posted through. :class:`ledger.session.Session` builds the pipeline on it; the
stages below the session (pins, subscriptions, credit notes) take an
:class:`OpenWorkspace`, so none of them reaches up into the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Self

from beancount.core import data
from beancount.parser import parser
from sqlalchemy import Engine, select

from ledger import books
from ledger.errors import AfterTodayError, SealedMonthError
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
class OpenWorkspace:
    """A workspace opened for work."""

    workspace: Workspace
    registry: Registry
    rules: Rules
    engine: Engine
    #: "today" instead of the clock's (the demo's fixed calendar, a test as of a date)
    fixed_today: date | None = None

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
        """The entries of the sealed months' files, as written (parsed, not booked)."""
        record: list[data.Directive] = []
        books_dir = self.workspace.books_dir
        for month in sorted(books.sealed_months(books_dir)):
            path = books.month_path(books_dir, month)
            if path.exists():
                parsed, _errors, _options = parser.parse_file(str(path))
                record.extend(parsed)
        return record

    def posted_through(self) -> date | None:
        """The day the books were last posted through, as the store recorded it (None: never)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(meta_table.c.value).where(meta_table.c.key == POSTED_THROUGH)
            ).scalar()
        return date.fromisoformat(value) if value else None
