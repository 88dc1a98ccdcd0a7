"""Reconciliation: checks that compare two independent records of the same thing.

A reconciler is a plugin (hook ``meterbook_reconcilers``) with a ``name`` and a
``check(context)`` that yields :class:`Finding` records; ``context`` is a
:class:`ReconcileContext`, the one object a reconciler gets. A worked example,
the dual-track check of batch events against live meter totals::

    Finding(id="dual-track:acme:api_calls:2026-10", severity="error",
            check="dual-track", customer="acme", meter="api_calls", period="2026-10",
            expected=Decimal("25000"), actual=Decimal("24988"),
            explanation="batch events count 24,988 calls; the live meter reported 25,000")

An ``error`` finding blocks close and invoicing of its period until it is fixed
or explicitly accepted with a reason (recorded in the books); ``warning`` and
``info`` findings are reported only. Findings are values: a reconciler never
raises to report a problem.

The records of ``meterbook check`` live here too, low in the pipeline, so that
every stage can report on itself without importing the auditor
(:mod:`ledger.audit`): :class:`CheckResult`, one line of the check, and
:class:`TiedBalance`, one customer balance compared store against books.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

#: ``date`` as a type where a property named ``date`` shadows it
_Date = date

if TYPE_CHECKING:
    from beancount.core import data
    from sqlalchemy import Engine

    from ledger.cycles import Cycle
    from ledger.rules import Rules
    from ledger.workspace import Workspace

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One discrepancy (or note) a reconciler found.

    ``id`` is stable across runs for the same discrepancy, so that an acceptance
    recorded in the books keeps matching it: build it with :func:`finding_id`.
    ``expected`` and ``actual`` are the two figures compared (a Decimal amount or
    quantity, or a short text when the check is not numeric).
    """

    id: str
    severity: Severity
    check: str
    customer: str | None
    meter: str | None
    period: str
    expected: Decimal | str | None
    actual: Decimal | str | None
    explanation: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"finding {self.id!r}: severity must be one of {', '.join(SEVERITIES)}, "
                f"got {self.severity!r}"
            )

    @property
    def blocks_close(self) -> bool:
        """Error findings block close and invoicing until fixed or accepted."""
        return self.severity == "error"


def finding_id(check: str, period: str, *parts: str | None) -> str:
    """A stable finding id from the check, period and what it is about.

    >>> finding_id("dual-track", "2026-10", "acme", "api_calls")
    'dual-track:acme:api_calls:2026-10'
    >>> finding_id("unapplied-cash", "2026-10", None, "PAY-17")
    'unapplied-cash:PAY-17:2026-10'
    """
    return ":".join([check, *(p for p in parts if p), period])


@dataclass(frozen=True)
class TiedBalance:
    """One customer balance at the end of ``through``: recomputed from the store vs the books."""

    customer: str
    kind: str  # unbilled | contract_asset | receivable
    account: str
    currency: str
    through: date
    store: Decimal
    books: Decimal


@dataclass(frozen=True)
class CheckResult:
    """One line of ``meterbook check``: a named check, ok or not, and what was found."""

    name: str
    ok: bool
    details: tuple[str, ...] = ()


# --- what a reconciler reads of the rating and the invoices -------------------------------
# Read-only views, so the plugin surface names no module above the rules: the engine hands
# in its own records (ledger.rating.Rating, ledger.facts.invoices.Invoice), which have
# these attributes and more.


class RatedCharge(Protocol):
    """One charge of a rated cycle, cumulative through the rating's day."""

    @property
    def meter(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def amount(self) -> Decimal:
        """Priced and rounded to the currency's minor unit."""
        ...


class RatedCycle(Protocol):
    """One billing cycle rated through ``through`` (an accrual point, or the rating's day)."""

    @property
    def cycle(self) -> Cycle:
        """The cycle: ``customer``, ``plan``, ``start``, ``end``, ``link``, ``key``."""
        ...

    @property
    def through(self) -> date: ...
    @property
    def currency(self) -> str: ...
    @property
    def charges(self) -> Sequence[RatedCharge]: ...
    @property
    def is_cycle_end(self) -> bool:
        """True when ``through`` is the cycle's last day: what its invoice bills."""
        ...


class RatingView(Protocol):
    """Every cycle rated through a day, at each of its accrual points."""

    @property
    def through(self) -> date: ...
    @property
    def cycles(self) -> Sequence[RatedCycle]: ...
    def latest(self) -> Sequence[RatedCycle]:
        """The last rating of each cycle (the cycle-to-date view)."""
        ...


class InvoiceLineView(Protocol):
    """One line of an issued invoice."""

    @property
    def kind(self) -> str:
        """usage, commitment, base_fee, credit_applied, credit_grant or late_usage."""
        ...

    @property
    def description(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def cycle(self) -> str:
        """The cycle key ``start/end`` the line bills (``""`` when none)."""
        ...

    @property
    def link(self) -> str: ...
    @property
    def meter(self) -> str: ...
    @property
    def quantity(self) -> Decimal | None: ...


class InvoiceView(Protocol):
    """An issued invoice, as a reconciler or a notification plugin reads it."""

    @property
    def number(self) -> str: ...
    @property
    def customer(self) -> str: ...
    @property
    def date(self) -> _Date: ...
    @property
    def currency(self) -> str: ...
    @property
    def lines(self) -> Sequence[InvoiceLineView]: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def rules(self) -> str:
        """The hash of the rules the invoice was rated under."""
        ...


@dataclass(frozen=True)
class ReconcileContext:
    """What a reconciler's ``check(context)`` may read for the period under review.

    The engine builds it (:func:`ledger.closing.reconcile_context`); a reconciler only
    reads it. Plain values are fields; what costs a rating or a load of the books is
    computed on first use and kept for the other reconcilers of the same run::

        context.period        "2026-10"
        context.start         2026-10-01 (the period's first day)
        context.end           2026-10-31 (its last day, inclusive)
        context.rating        every cycle rated cumulatively through 2026-10-31 (but the
                              settled ones of sealed months, see ``rating``)
        context.invoices      the issued invoices dated on or before 2026-10-31
        context.entries       the books as Beancount loads them
        context.tie_out(day)  per-customer balances at the end of ``day``: store vs books
    """

    #: The period under review, ``YYYY-MM``.
    period: str
    #: The period's first day.
    start: date
    #: The period's last day (inclusive).
    end: date
    #: The workspace: its folders, time zone (``workspace.tz``) and ``meterbook.toml``
    #: settings (``workspace.gaps_spikes``, ``workspace.operating_currency``...).
    workspace: Workspace
    #: The rules as loaded: meters, plans, customers, accounts (``rules.account(kind, ...)``).
    rules: Rules
    #: The event store (SQLAlchemy): read it with :mod:`ledger.metering` or the tables of
    #: :mod:`ledger.store`; never write it from a reconciler.
    engine: Engine
    #: The first day of the first month not sealed (``date.min`` when nothing is sealed):
    #: a sealed period's balances are asserted by its close file.
    first_open: date
    #: Today in the workspace's time zone (the demo's fixed day in the demo).
    today: date
    _rate: Callable[[date], RatingView] = field(repr=False)
    _invoices: Callable[[], Sequence[InvoiceView]] = field(repr=False)
    _entries: Callable[[], list[data.Directive]] = field(repr=False)
    _tie_out: Callable[[Sequence[data.Directive], date], list[TiedBalance]] = field(repr=False)

    @cached_property
    def rating(self) -> RatingView:
        """Every cycle rated cumulatively through the period's last day
        (:class:`RatingView`; ``rating.latest()`` gives each cycle once). For an open period,
        the cycles settled before its first open day are left out (invoiced in a sealed month,
        no event stored in their time since: their invoices' ``accruals`` hold what rating
        gives, :meth:`ledger.session.Session.settled`); none of them ends in the period."""
        return self._rate(self.end)

    @cached_property
    def invoices(self) -> list[InvoiceView]:
        """Issued invoices dated on or before the period's last day, in number order."""
        return [inv for inv in self._invoices() if inv.date <= self.end]

    @cached_property
    def entries(self) -> list[data.Directive]:
        """The books as Beancount loads them (every month, the sealed ones included)."""
        return self._entries()

    def tie_out(self, through: date) -> list[TiedBalance]:
        """Every per-customer unbilled, contract-asset and receivable balance at the end of
        ``through``, recomputed from the store and the rating (``store``) and summed from
        :attr:`entries` (``books``): the tie-out of ``meterbook check``."""
        return self._tie_out(self.entries, through)


@runtime_checkable
class Reconciler(Protocol):
    """What a reconciliation plugin provides.

    ``check`` gets a :class:`ReconcileContext`: the period under review, the
    workspace, its rules, the event store, the rating, the issued invoices and the
    books. It reads what it needs and yields nothing when all is well.
    """

    #: A short, stable, kebab-case name (``dual-track``); used as ``Finding.check``.
    name: str

    def check(self, context: ReconcileContext) -> Iterable[Finding]:
        """Yield findings for the period in ``context``; yield nothing when all is well."""
        ...
