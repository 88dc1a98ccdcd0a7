"""The meterbook pages in Fava: Revenue, Customers, Close, Evidence and Reports.

``books/main.beancount`` declares the module (Fava finds every page class in it)::

    2000-01-01 custom "fava-extension" "ledger.fava_ext"

and each page appears in Fava's sidebar, at ``/<ledger>/extension/<Class>/``:

- **Revenue** (:class:`MeterbookRevenue`): per month and currency, revenue
  recognized, invoiced, and unbilled, deferred and receivable at month end,
  with a bar chart;
- **Customers** (:class:`MeterbookCustomers`): per customer, revenue,
  receivable, unbilled, deferred, prepaid credit left, and the current cycle's
  usage and spend against its caps;
- **Close** (:class:`MeterbookClose`): each month sealed or open, its seal
  verified live from the loaded entries, findings (run now for open months)
  and acceptances, a form that composes the ``meterbook close --accept`` command
  for an open month's findings, and the close report ``books/YYYY/YYYY-MM.close.md``
  rendered as a page;
- **Evidence** (:class:`MeterbookEvidence`): a cycle link or an invoice number
  in, its trace (``ledger.trace``) out;
- **Reports** (:class:`MeterbookReports`): every report of ``ledger.reports``
  rendered as tables.

Amounts come from the entries Fava loaded (unfiltered: Fava's time and account
filters do not apply to these pages); the workspace (rules, store) is found by
walking up from the ledger file to ``meterbook.toml``. Pages only read: every
endpoint is GET, and ``meterbook serve`` runs Fava read-only. Customers show by
their name from the rules (their id under it); an invoice, credit note or debit
adjustment number links to its document through Fava's own ``document`` route;
total rows and columns are bold.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from babel.core import Locale
from beancount.core import data
from fava.core.number import get_locale_format
from fava.core.query import QueryResultTable
from fava.ext import FavaExtensionBase, extension_endpoint
from flask import Response, abort, request, url_for
from markupsafe import Markup

from ledger import seal
from ledger.errors import MeterbookError
from ledger.fava_ext import figures
from ledger.fava_ext.chart import revenue_charts, revenue_table
from ledger.fava_ext.markup import close_report_html, segments
from ledger.money import minor_units, quantum
from ledger.period import is_month, month_of

if TYPE_CHECKING:
    from fava.core import FavaLedger

    from ledger.session import Session

#: The module name declared in ``main.beancount``.
EXTENSION_MODULE = "ledger.fava_ext"
_REF = re.compile(r"^\^?[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def money(value: Decimal | None, currency: str = "") -> str:
    """An amount as printed on the pages: every digit kept, at least the currency's
    minor unit, thousands grouped; ``—`` for none.

    >>> money(Decimal("1234.5"), "USD"), money(Decimal("0"), "USD"), money(Decimal("0.125"), "USD")
    ('1,234.50', '0.00', '0.125')
    >>> money(Decimal("14000")), money(None)
    ('14,000', '—')
    """
    if value is None:
        return "—"
    if currency:
        q = quantum(currency)
        if value.as_tuple().exponent > q.as_tuple().exponent:  # type: ignore[operator]
            value = value.quantize(q)  # adds zeros only: never rounds a digit away
    return format(value, ",f")


@dataclass(frozen=True)
class Notice:
    """Why a page (or part of one) has nothing to show, in one line."""

    text: str


class _Workspace:
    """What every page shares: the meterbook workspace behind the loaded ledger.

    A mixin, not a Fava extension itself (Fava registers every
    ``FavaExtensionBase`` subclass it finds in this module as a page).
    """

    ledger: FavaLedger
    _session: Session | MeterbookError | None = None
    _documents: dict[str, str] | None = None

    def money(self, value: Decimal | None, currency: str = "") -> str:
        """An amount formatted by Fava's own number formatter (``fava.core.number``): the
        ledger's ``locale`` Fava option (grouping, decimal mark) and the currency's precision in
        the books (else its ISO 4217 minor unit), widened to every digit the value has.

        >>> from types import SimpleNamespace as NS
        >>> page = _Workspace()
        >>> page.ledger = NS(fava_options=NS(locale="de_DE"),
        ...                  format_decimal=NS(precisions={"USD": 2}))
        >>> page.money(Decimal("1234.5"), "USD"), page.money(Decimal("0.125"), "USD")
        ('1.234,50', '0,125')
        >>> page.money(None)
        '—'
        >>> page.ledger.fava_options.locale = None                     # Fava's default: no grouping
        >>> page.money(Decimal("1234.5"), "USD"), page.money(Decimal("7"), "JPY")
        ('1234.50', '7')
        """
        if value is None:
            return "—"
        places = self.ledger.format_decimal.precisions.get(currency) if currency else None
        if places is None:
            places = minor_units(currency) if currency else 0
        exponent = value.as_tuple().exponent
        digits = max(places, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
        name = self.ledger.fava_options.locale
        return get_locale_format(Locale.parse(name) if name else None, digits)(value)

    @staticmethod
    def is_notice(value: object) -> bool:
        return isinstance(value, Notice)

    def after_load_file(self) -> None:
        """The books changed on disk: forget the session (rules may have been re-read too)."""
        self._session = None
        self._documents = None

    def documents(self) -> dict[str, str]:
        """Each document's number → its file: the books' ``document`` entries (an invoice's,
        credit note's or debit adjustment's, linked ``^INV-2026-000002``) whose file exists."""
        if self._documents is None:
            found: dict[str, str] = {}
            for entry in self.entries:
                if isinstance(entry, data.Document) and Path(entry.filename).is_file():
                    for number in sorted(entry.links or ()):
                        found.setdefault(number, entry.filename)
            self._documents = found
        return self._documents

    def document_url(self, number: str) -> str | None:
        """Fava's address of the document numbered ``number``, or None: its ``document`` route,
        which serves a file only when a ``document`` entry of the books names it."""
        filename = self.documents().get(number)
        return url_for("document", filename=filename) if filename else None

    def linked(self, text: object) -> list[tuple[str, str | None]]:
        """``text`` cut around the document numbers in it (:func:`markup.segments`), for the
        templates to write each piece escaped and each number as a link."""
        return segments(str(text), self.document_url)

    def customer_names(self) -> dict[str, str]:
        """Customer id → the ``name`` of the rules (customers without one are left out)."""
        session = self.session()
        if isinstance(session, Notice):
            return {}
        return {cid: c.name for cid, c in session.rules.customers.items() if c.name}

    @staticmethod
    def journal_url(customer: str) -> str:
        """Fava's journal of the customer's transactions (their ``customer`` metadata): the
        books' payee is the customer id, so this is where a name leads to its entries."""
        exact = customer.replace(".", "[.]")  # a filter value is a regular expression
        return url_for("report", report_name="journal", filter=f'customer:"^{exact}$"')

    @property
    def entries(self) -> list[data.Directive]:
        return cast(
            "list[data.Directive]", list(self.ledger.all_entries)
        )  # Fava's loaded Beancount entries

    def session(self) -> Session | Notice:
        """The workspace opened (once per load of the books), or why it cannot be."""
        if self._session is None:
            from ledger.session import Session
            from ledger.workspace import Workspace

            try:
                self._session = Session.open(
                    Workspace.find(Path(self.ledger.beancount_file_path).parent)
                )
            except MeterbookError as exc:
                self._session = exc
        if isinstance(self._session, MeterbookError):
            return Notice(f"the meterbook workspace could not be opened: {self._session}")
        return self._session

    def as_of(self) -> date | None:
        """The last date the books have a transaction for."""
        dates = [e.date for e in self.entries if isinstance(e, data.Transaction)]
        return max(dates) if dates else None


class MeterbookRevenue(_Workspace, FavaExtensionBase):
    """Revenue recognized, invoiced, unbilled, deferred and receivable by month."""

    report_title = "Revenue"

    def revenue(
        self,
    ) -> tuple[list[Any], list[tuple[str, QueryResultTable, figures.MonthFigures]]] | Notice:
        """Fava's charts of every currency, and per currency a Fava query table of its months
        and their total (:func:`figures.period_total`)."""
        session = self.session()
        if isinstance(session, Notice):
            return session
        rows = figures.revenue_by_month(self.entries, session.rules)
        # a commodity with no figure in any month (the seal's marker) is left out
        shown = {
            r.currency
            for r in rows
            if any((r.recognized, r.invoiced, r.unbilled, r.deferred, r.receivable))
        }
        rows = tuple(r for r in rows if r.currency in shown)
        tables = []
        for currency in sorted({r.currency for r in rows}):
            months = [r for r in rows if r.currency == currency]
            tables.append((currency, revenue_table(months), figures.period_total(months)))
        return (revenue_charts(rows) if rows else []), tables


#: What the Customers page shows: the day, each customer's figures and the totals per currency.
CustomersPage = (
    tuple[date, tuple[figures.CustomerFigures, ...], tuple[figures.CustomerTotals, ...]] | Notice
)


class MeterbookCustomers(_Workspace, FavaExtensionBase):
    """Per customer: usage, revenue, receivable, unbilled, credits left, caps."""

    report_title = "Customers"
    _figures: CustomersPage | None = None

    def after_load_file(self) -> None:
        super().after_load_file()
        self._figures = None

    def customers(self) -> CustomersPage:
        """The customers' figures through the books' last date and their totals per currency:
        rated once per load of the books, not per view."""
        if self._figures is None:
            self._figures = self._customers()
        return self._figures

    def _customers(self) -> CustomersPage:
        session = self.session()
        if isinstance(session, Notice):
            return session
        as_of = self.as_of()
        if as_of is None:
            return Notice("the books have no transactions yet: run meterbook post")
        try:
            rating = session.rate(as_of)
        except MeterbookError as exc:
            return Notice(f"rating through {as_of} failed: {exc}")
        entries = self.entries
        if (
            session.workspace.summary_books
        ):  # control accounts: the customers' detail is the store's
            from ledger.summary_trace import subledger

            entries = subledger(session, entries)
        rows = figures.customer_figures(entries, session.rules, rating)
        return as_of, rows, figures.customer_totals(rows)


class MeterbookClose(_Workspace, FavaExtensionBase):
    """Each month: sealed or open, seal verified live, findings, acceptances, close report."""

    report_title = "Close"
    _months: tuple[figures.MonthClose, ...] | Notice | None = None

    def after_load_file(self) -> None:
        super().after_load_file()
        self._months = None

    def months(self) -> tuple[figures.MonthClose, ...] | Notice:
        """Every month's row. The reconcilers of every open month run once per load of the
        books (over the entries Fava loaded), not per view; the acceptances a refused close
        recorded are read from the store on each view (they are in the store until the month
        is sealed)."""
        if self._months is None:
            self._months = self._close_months()
        if isinstance(self._months, Notice):
            return self._months
        from ledger.closing import load_acceptances

        engine = cast("Session", self.session()).engine
        return tuple(
            row if row.sealed else _with_stored(row, load_acceptances(engine, row.month))
            for row in self._months
        )

    def _close_months(self) -> tuple[figures.MonthClose, ...] | Notice:
        session = self.session()
        if isinstance(session, Notice):
            return session
        with session.command() as reads:
            reads.books = (self.entries, [], {})  # the books as Fava loaded them
            return self._months_of(session)

    def _months_of(self, session: Session) -> tuple[figures.MonthClose, ...]:
        from ledger.closing import run_reconcilers

        entries = self.entries
        books_dir = session.workspace.books_dir
        sealed = {s.month for s in seal.verify_seals(entries)}
        reports = {p.name[:7]: p.name for p in books_dir.glob("[0-9][0-9][0-9][0-9]/*.close.md")}
        dated = sorted({month_of(e.date) for e in entries if isinstance(e, data.Transaction)})
        findings: dict[str, tuple[Any, ...] | str] = {}
        for month in dated:
            if month in sealed:
                continue
            try:
                findings[month] = tuple(run_reconcilers(session, month))
            except MeterbookError as exc:
                findings[month] = f"the reconcilers failed: {exc}"
        return figures.close_months(entries, findings, reports)

    def _report_path(self, month: str) -> Path | None:
        session = self.session()
        if not is_month(month) or isinstance(session, Notice):
            return None
        path = session.workspace.books_dir / month[:4] / f"{month}.close.md"
        return path if path.is_file() else None

    def report_page(self, month: str) -> Markup | Notice:
        """The close report of ``month`` as HTML (:func:`markup.close_report_html`: escaped,
        totals bold, document numbers linked), or why there is none."""
        path = self._report_path(month)
        if path is None:
            return Notice(
                f"no close report for {month[:20]!r}: a month's report is written when it is sealed"
            )
        return Markup(close_report_html(path.read_text(encoding="utf-8"), self.document_url))

    # Fava types extension_endpoint with an unbound TypeVar, hence the ignore
    @extension_endpoint("close_report")  # type: ignore[arg-type]
    def close_report(self) -> Response:
        """``books/YYYY/YYYY-MM.close.md`` as plain text (``?month=YYYY-MM``): the Markdown
        source of the report the page renders."""
        path = self._report_path(request.args.get("month", ""))
        if path is None:
            return abort(404)
        return Response(path.read_text(encoding="utf-8"), mimetype="text/plain")

    @staticmethod
    def drafted(row: figures.MonthClose) -> list[tuple[str, str]]:
        """The acceptances the form has collected for this open month so far (its GET query:
        ``month``, then ``accept`` and ``reason`` in pairs): only ids of the month's findings,
        each once, with a reason."""
        if row.sealed or not row.findings or request.args.get("month") != row.month:
            return []
        known = {f.id for f in row.findings}
        pairs = zip(request.args.getlist("accept"), request.args.getlist("reason"), strict=False)
        drafted: dict[str, str] = {}
        for fid, reason in pairs:
            if fid in known and reason.strip():
                drafted.setdefault(fid, " ".join(reason.split()))
        return list(drafted.items())

    @staticmethod
    def pending(row: figures.MonthClose, drafted: Sequence[tuple[str, str]]) -> list[Any]:
        """The open month's findings neither accepted nor in the form's command yet."""
        taken = row.accepted_ids | {fid for fid, _reason in drafted}
        return [f for f in row.findings or () if f.id not in taken]

    @staticmethod
    def close_command(month: str, drafted: Sequence[tuple[str, str]]) -> str:
        """The shell command that closes ``month`` accepting ``drafted`` (each value quoted).

        >>> print(MeterbookClose.close_command("2026-10", [("planted:beta:2026-10", "reset; $0")]))
        meterbook close 2026-10 --accept planted:beta:2026-10 --reason 'reset; $0'
        """
        words = ["meterbook", "close", month]
        for fid, reason in drafted:
            words += ["--accept", fid, "--reason", reason]
        return shlex.join(words)


def _with_stored(row: figures.MonthClose, stored: dict[str, str]) -> figures.MonthClose:
    if not stored:
        return row
    merged = dict(row.acceptances) | stored
    return figures.MonthClose(**{**row.__dict__, "acceptances": tuple(sorted(merged.items()))})


class MeterbookEvidence(_Workspace, FavaExtensionBase):
    """A cycle link or an invoice number in, the trace from events to the books out."""

    report_title = "Evidence"

    def trace(self, ref: str | None) -> Any:
        """The trace of ``ref`` (``ledger.trace.Trace``), or a :class:`Notice`; None without a
        ref."""
        if not ref:
            return None
        ref = ref.strip()
        if not _REF.match(ref):
            return Notice(
                f"{ref[:60]!r} is not a cycle link (acme-2026-10-15) or an invoice number "
                "(INV-2026-000001)"
            )
        session = self.session()
        if isinstance(session, Notice):
            return session
        try:
            from ledger.trace import trace
        except ImportError:
            return Notice("tracing is not available: this installation has no ledger.trace module")
        try:
            return trace(session, ref)
        except MeterbookError as exc:
            return Notice(str(exc))


class MeterbookReports(_Workspace, FavaExtensionBase):
    """Every finance report of ``ledger.reports``, rendered as tables."""

    report_title = "Reports"

    def names(self) -> Sequence[str] | Notice:
        registry = _reports()
        if isinstance(registry, Notice):
            return registry
        return list(registry)

    def report(self, name: str | None, month: str | None) -> Any:
        """The ``Report`` called ``name`` (for ``month`` if given), a Notice, or None without a
        name."""
        if not name:
            return None
        registry = _reports()
        if isinstance(registry, Notice):
            return registry
        if name not in registry:
            return Notice(f"no report named {name[:40]!r} (reports: {', '.join(registry)})")
        if month and not is_month(month):
            return Notice(f"month {month[:20]!r} is not YYYY-MM")
        session = self.session()
        if isinstance(session, Notice):
            return session
        from ledger.reports import build_report  # type: ignore[attr-defined]

        try:
            return build_report(session, name, month=month or None)
        except MeterbookError as exc:
            return Notice(f"report {name}: {exc}")

    def cell(self, value: object, currency: str = "") -> str:
        """A report cell as text: numbers by Fava's formatter (:meth:`money`; ``currency`` is the
        row's, when its table has a ``currency`` column), every digit kept; None empty."""
        if value is None:
            return ""
        if isinstance(value, Decimal):
            return self.money(value, currency)
        return str(value)

    @staticmethod
    def row_currency(columns: Sequence[str], row: Sequence[object]) -> str:
        """The row's ``currency`` cell, or "" when its table has none."""
        return str(row[columns.index("currency")]) if "currency" in columns else ""

    @staticmethod
    def is_total_row(row: Sequence[object]) -> bool:
        """A report's total row: the one with a ``(total)`` cell."""
        return any(cell == "(total)" for cell in row)

    def shown(self, columns: Sequence[str], row: Sequence[object]) -> list[ReportCell]:
        """The row's cells as the page shows them: amounts by :meth:`cell`, a customer id by
        its name, document numbers linked, a ``total`` column's cells bold."""
        currency = self.row_currency(columns, row)
        names = self.customer_names()
        cells = []
        for column, value in zip(columns, row, strict=True):
            name = names.get(value) if column == "customer" and isinstance(value, str) else None
            cells.append(
                ReportCell(
                    text=name or self.cell(value, currency),
                    customer=str(value) if name else "",
                    numeric=isinstance(value, Decimal | int) and not isinstance(value, bool),
                    total=column == "total",
                )
            )
        return cells


@dataclass(frozen=True)
class ReportCell:
    """One report cell on the page: its text, the customer id under a name, its style."""

    text: str
    customer: str = ""
    numeric: bool = False
    total: bool = False


def _reports() -> dict[str, Any] | Notice:
    from ledger import reports

    registry = getattr(reports, "REPORTS", None)
    if not registry or not hasattr(reports, "build_report"):
        return Notice(
            "finance reports are not available: this installation's ledger.reports has no REPORTS"
        )
    return dict(registry)
