"""Documents: invoices, credit notes, debit adjustments and usage statements, as HTML.

Each document is a Jinja2 template in ``ledger/documents/templates/`` (``invoice.html``,
``credit_note.html``, ``debit_adjustment.html``, ``statement.html``), extending ``base.html``
with the one stylesheet ``style.css``. Every value printed is HTML-escaped (autoescape). A
workspace replaces any of them with a file of the same name in its own templates directory,
which can extend the packaged one (``meterbook/invoice.html``) and fill its empty blocks::

    # meterbook.toml
    [documents]
    templates = "templates"     # templates/invoice.html replaces the packaged one

    {# templates/invoice.html: the packaged invoice under the business's name #}
    {% extends "meterbook/invoice.html" %}
    {% block seller %}<p>Example Billing Ltd · VAT {{ seller.tax_id }}</p>{% endblock %}

    >>> from ledger.documents.invoices import BillTo
    >>> line = InvoiceLine("rerate", "debit adjustment <beta>", "unbilled", Decimal("4.55"))
    >>> invoice = Invoice("acme", date(2026, 10, 1), "USD", (line,), "r1", "INV-2026-000007")
    >>> html = DEFAULT.render("invoice", invoice=invoice, customer_name="Acme & Co",
    ...                       bill_to=BillTo("acme", "Acme & Co", address=("1 Main St",)),
    ...                       rows=invoice_rows(invoice, None), prepaid=())
    >>> print(*html[html.index("<h1>") : html.index("<dl")].split("<h2>"), sep="\\n")
    <h1>Invoice INV-2026-000007</h1><div class='parties'><div>
    Bill to</h2><p><b>Acme &amp; Co</b><br>1 Main St</p><p class='meta'>Customer acme</p></div>
    >>> "Debit adjustment &lt;beta&gt;" in html, html.endswith("</body></html>\\n")
    (True, True)

Documents are self-contained (inline CSS and SVG, no scripts, no external references) and
depend only on their inputs, so ``post`` writes the same bytes again and the seal holds. The
callers pass plain records in (the issued facts of :mod:`ledger.facts`, a statement); this
package imports none of the stages that issue them.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import jinja2
from markupsafe import Markup

from ledger.documents.invoices import PrepaidBalance, bill_to, invoice_rows
from ledger.errors import BadInput
from ledger.events import dumps
from ledger.facts.adjustments import Adjustment, by_document
from ledger.facts.credit_notes import CreditNote
from ledger.facts.invoices import Invoice, InvoiceLine
from ledger.money import ZERO, round_money
from ledger.rules import Rules

if TYPE_CHECKING:
    from ledger.cycles import Cycle

#: The packaged templates: the documents meterbook writes unless a workspace overrides them.
PACKAGED_DIR = Path(__file__).parent / "templates"


class UsageStatement(Protocol):
    """A usage statement (:class:`ledger.statements.Statement`, a later stage than this one):
    whose it is; the template reads its other fields by name (the manual, "Documents and
    templates")."""

    @property
    def customer(self) -> str: ...


@dataclass(frozen=True)
class Seller:
    """Who issues the documents and how to pay them, as ``meterbook.toml`` says: ``tax_id`` is
    ``[tax] seller_tax_id`` ("" when unset), ``title`` the workspace's ``title``; ``name``,
    ``address``, ``email`` and ``phone`` are ``[seller]`` (printed at the top of every
    document), ``payment`` and ``payment_details`` are ``[payment]`` (printed on invoices).
    A logo goes into the workspace's own templates (the manual "Documents and templates")."""

    tax_id: str = ""
    title: str = ""
    name: str = ""
    address: tuple[str, ...] = ()
    email: str = ""
    phone: str = ""
    payment: str = ""
    payment_details: tuple[tuple[str, str], ...] = ()

    @property
    def identified(self) -> bool:
        """Whether ``[seller]`` gives anything to print at the top of the documents."""
        return bool(self.name or self.address or self.email or self.phone)

    @property
    def pays(self) -> bool:
        """Whether ``[payment]`` gives instructions to print on the invoices."""
        return bool(self.payment or self.payment_details)


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates kept for the process, by template name and file; Jinja compiles a
    template again when its source's checksum differs (an override edited meanwhile). Every
    command renders documents through a new :class:`Templates`: compiled once, not per
    command."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self.compiled.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


class Templates:
    """The document templates of a workspace: its override directory first, then the
    packaged ones. Override templates are parsed here, so a syntax error stops the command
    before it writes anything, as one line naming the file and line."""

    def __init__(self, directory: Path | None = None, seller: Seller | None = None) -> None:
        self.directory = directory
        self.seller = seller or Seller()
        packaged = jinja2.FileSystemLoader(str(PACKAGED_DIR))
        overrides = [jinja2.FileSystemLoader(str(directory))] if directory is not None else []
        self.environment = jinja2.Environment(
            # "meterbook/invoice.html" is always the packaged one: an override can extend it
            loader=jinja2.ChoiceLoader(
                [jinja2.PrefixLoader({"meterbook": packaged}), *overrides, packaged]
            ),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            finalize=_escaped,
            keep_trailing_newline=True,  # a document ends with a line break
            bytecode_cache=_COMPILED,
        )
        self.environment.filters.update(
            number=grouped,
            money=money,
            round_money=round_money,
            plural=plural,
            signed=signed,
            svg=svg,
        )
        self.environment.globals.update(rounding=rounding, daily_chart=daily_chart)
        if directory is not None:
            self._parse_overrides(directory)

    def _parse_overrides(self, directory: Path) -> None:
        """Compile every ``.html`` and ``.css`` file of the override directory."""
        for path in sorted(directory.rglob("*")):
            if path.suffix not in (".html", ".css") or not path.is_file():
                continue
            name = path.relative_to(directory).as_posix()
            try:
                self.environment.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise BadInput(f"{exc.filename or path}:{exc.lineno}: {_first_line(exc)}") from None
            except UnicodeDecodeError:
                raise BadInput(f"{path}: a template must be UTF-8 text") from None

    def render(self, kind: str, **context: object) -> str:
        """The document ``kind`` (``invoice``, …) from ``kind.html``, given its variables; the
        templates also get ``seller`` and ``document`` (the kind)."""
        try:
            template = self.environment.get_template(f"{kind}.html")
            return template.render(context, document=kind, seller=self.seller)
        except Exception as exc:
            where = self._where(exc.__traceback__)
            if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
                where = (exc.filename, exc.lineno)
            if where is None or not (isinstance(exc, jinja2.TemplateError) or self._ours(where)):
                raise
            file, line = where
            raise BadInput(f"{file}:{line}: {kind}: {_first_line(exc)}") from None

    def _where(self, tb: TracebackType | None) -> tuple[str, int] | None:
        """The innermost template line on the stack (Jinja puts templates' own lines there)."""
        roots = [str(PACKAGED_DIR), *([str(self.directory)] if self.directory else [])]
        found = None
        while tb is not None:
            name = tb.tb_frame.f_code.co_filename
            if any(name.startswith(root + os.sep) for root in roots):
                found = (name, tb.tb_lineno)
            tb = tb.tb_next
        return found

    def _ours(self, where: tuple[str, int]) -> bool:
        """An error in the workspace's own template (not a packaged one's bug)."""
        return self.directory is not None and where[0].startswith(str(self.directory) + os.sep)


def _escaped(value: object) -> object:
    """Every printed value, escaped as :func:`html.escape` does (``&quot;``, ``&#x27;``): the
    spelling the documents were first issued with, so their bytes stay the same."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))


def _first_line(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
    return (message.splitlines() or [type(exc).__name__])[0]


# --- what the templates are given -------------------------------------------------------


def customer_name(rules: Rules, customer: str) -> str:
    """The customer's display name from ``customers.yaml``, or its id."""
    known = rules.customers.get(customer)
    return known.name if known and known.name else customer


def grouped(value: Decimal | int) -> str:
    """The ``number`` filter: ``1234.5`` → ``1,234.5`` (digits grouped, its places kept)."""
    return f"{value:,}"


def money(amount: Decimal, currency: str) -> str:
    """``1,234.50 USD``: the amount as given (rounded where it was computed) and the currency."""
    return f"{amount:,} {currency}"


def plural(count: int, noun: str) -> str:
    """``1 event``, ``1,024 events``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def signed(value: Decimal) -> str:
    """``+0.003``, ``-0.002``."""
    return f"{value:+}"


def svg(value: Decimal | int) -> str:
    """An SVG coordinate: one decimal place, half-even (``42.85`` → ``42.8``)."""
    return str(Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN))


def rounding(line: InvoiceLine) -> Decimal | None:
    """What rounding a usage line's cumulative amount to the currency's minor unit changed
    against its tiers' exact sum, or None (rounding happens once, on the cumulative amount)."""
    exact = sum((t.amount for t in line.tiers), ZERO)
    if line.kind != "usage" or not line.tiers or exact == line.amount:
        return None
    return line.amount - exact


@dataclass(frozen=True)
class Bar:
    """One day's bar of a chart: its box (SVG coordinates) and what it shows."""

    x: str
    y: str
    width: str
    height: str
    day: date
    quantity: Decimal
    events: int


@dataclass(frozen=True)
class Label:
    """A date under a chart's axis (the cycle's first and last day)."""

    x: str
    anchor: str
    day: date


#: The widest a digit and a separator ("," ".") of the charts' 11 px labels (``svg text`` in
#: style.css) can be: 0.64 em and 0.32 em in DejaVu Sans, the widest usual sans-serif face
#: (Chromium measures "2,091,087" at 56 px in it), with a margin.
DIGIT_PX = Decimal("7.2")
SEPARATOR_PX = Decimal("3.6")
#: The plot's left edge unless its labels need more room: "99,999" and "1,000.5" fit.
DEFAULT_LEFT = 56


@dataclass(frozen=True)
class Chart:
    """A daily usage bar chart over a whole cycle (days after the statement date stay empty).

    The y-axis labels are right-aligned 4 units left of the plot, so the plot starts far enough
    right for the widest label (the peak) to fit (:func:`plot_left`).
    """

    bars: tuple[Bar, ...]
    labels: tuple[Label, ...]
    peak: Decimal
    width: int = 720
    height: int = 170
    left: int = DEFAULT_LEFT
    top: int = 12
    plot_height: int = 130

    @property
    def base(self) -> int:
        return self.top + self.plot_height

    @property
    def right(self) -> int:
        return self.width - 8


def plot_left(peak: Decimal) -> int:
    """Where the plot starts so that the peak's label fits left of it: the label's width, the
    4 units between it and the axis and 4 of margin, rounded up; at least 56.

    ``2,091,087``: 7 digits × 7.2 + 2 separators × 3.6 = 57.6, + 8 = 65.6 → the plot starts at
    66 (at 56 the label would start 4 units left of the picture and lose its "2").

    >>> plot_left(Decimal(2_091_087)), plot_left(Decimal("1000.5")), plot_left(Decimal(7))
    (66, 56, 56)
    """
    label = grouped(peak)
    digits = sum(c.isdigit() or c == "-" for c in label)
    width = digits * DIGIT_PX + (len(label) - digits) * SEPARATOR_PX
    return max(DEFAULT_LEFT, int((width + 8).to_integral_value(rounding=ROUND_CEILING)))


def daily_chart(daily: Sequence[tuple[date, Decimal, int]], cycle: Cycle) -> Chart:
    """The bars of ``(day, quantity, events)`` over ``cycle``, the tallest at the plot's top."""
    peak = max((max(q, ZERO) for _d, q, _e in daily), default=ZERO)
    frame = Chart((), (), peak, left=plot_left(peak))
    slot = Decimal(frame.right - frame.left) / cycle.days
    bars = []
    for day, quantity, events in daily:
        index = (day - cycle.start).days
        height = (max(quantity, ZERO) * frame.plot_height / peak) if peak else ZERO
        x = frame.left + slot * index + slot / 10
        box = (svg(x), svg(frame.base - height), svg(slot * 8 / 10), svg(height))
        bars.append(Bar(*box, day, quantity, events))
    last = cycle.end - timedelta(days=1)
    labels = (
        Label(svg(frame.left + slot * 0), "start", cycle.start),
        Label(svg(frame.left + slot * (cycle.days - 1) + slot), "end", last),
    )
    return Chart(tuple(bars), labels, peak, left=frame.left)


# --- the documents --------------------------------------------------------------------------


def invoice_html(
    invoice: Invoice,
    rules: Rules,
    templates: Templates,
    prepaid: Sequence[PrepaidBalance] = (),
) -> str:
    """A self-contained HTML invoice (``invoice.html``): its record, with the customer's
    billing details and the lines labelled from ``rules``, and ``prepaid``: the customer's
    prepaid credit left on the invoice date (:mod:`ledger.documents.invoices`)."""
    return templates.render(
        "invoice",
        invoice=invoice,
        customer_name=customer_name(rules, invoice.customer),
        bill_to=bill_to(rules, invoice.customer),
        rows=invoice_rows(invoice, rules),
        prepaid=tuple(prepaid),
    )


def invoice_documents(
    invoice: Invoice,
    rules: Rules,
    templates: Templates,
    prepaid: Sequence[PrepaidBalance] = (),
) -> dict[str, str]:
    """``{relative path under books/: content}`` for one invoice: its HTML, and its JSON (the
    store's canonical invoice record)."""
    return {
        f"documents/{invoice.number}.html": invoice_html(invoice, rules, templates, prepaid),
        f"documents/{invoice.number}.json": invoice.to_json() + "\n",
    }


def document_names(
    invoices: Sequence[Invoice], notes: Sequence[CreditNote], adjustments: Sequence[Adjustment]
) -> set[str]:
    """The paths under books/ of these documents (HTML, JSON and the PDF print of the HTML),
    without rendering them."""
    numbers = [inv.number for inv in invoices] + [note.number for note in notes]
    numbers += sorted(by_document(adjustments, "DA-"))
    return {f"documents/{n}.{kind}" for n in numbers for kind in ("html", "json", "pdf")}


def credit_note_html(note: CreditNote, rules: Rules, templates: Templates) -> str:
    """A self-contained HTML credit note, with the split over the invoice's lines
    (``credit_note.html``)."""
    name = customer_name(rules, note.customer)
    return templates.render("credit_note", note=note, customer_name=name)


def credit_note_documents(note: CreditNote, rules: Rules, templates: Templates) -> dict[str, str]:
    """``{relative path under books/: content}`` for one credit note: HTML and JSON."""
    return {
        f"documents/{note.number}.html": credit_note_html(note, rules, templates),
        f"documents/{note.number}.json": note.to_json() + "\n",
    }


def debit_adjustment_html(
    number: str, lines: Sequence[Adjustment], total: Decimal, rules: Rules, templates: Templates
) -> str:
    """A self-contained HTML debit adjustment: a rerate's increases on one invoice's lines
    (``debit_adjustment.html``)."""
    name = customer_name(rules, lines[0].customer)
    return templates.render(
        "debit_adjustment", number=number, lines=lines, total=total, customer_name=name
    )


def debit_documents(
    adjustments: Sequence[Adjustment], rules: Rules, templates: Templates
) -> dict[str, str]:
    """``{relative path under books/: content}``: HTML and JSON of every debit adjustment."""
    documents: dict[str, str] = {}
    for number, group in sorted(by_document(adjustments, "DA-").items()):
        first = group[0]
        total = sum((adj.amount for adj in group), ZERO)
        html = debit_adjustment_html(number, group, total, rules, templates)
        documents[f"documents/{number}.html"] = html
        documents[f"documents/{number}.json"] = (
            dumps(
                {
                    "number": number,
                    "customer": first.customer,
                    "invoice": first.invoice,
                    "date": first.date.isoformat(),
                    "since": first.since.isoformat(),
                    "rules": first.rules,
                    "currency": first.currency,
                    "total": str(total),
                    "lines": [
                        {
                            "line": adj.line,
                            "charge": adj.label,
                            "cycle": adj.cycle,
                            "invoiced": str(adj.invoiced),
                            "rerated": str(adj.rerated),
                            "amount": str(adj.amount),
                        }
                        for adj in group
                    ],
                }
            )
            + "\n"
        )
    return documents


def statement_html(statement: UsageStatement, evidence: object, templates: Templates) -> str:
    """The self-contained HTML usage statement (``statement.html``): inline CSS and SVG,
    escaped, no scripts, no external references."""
    return templates.render("statement", statement=statement, evidence=evidence)


#: The packaged templates, with no seller: documents outside a workspace (tests, doctests).
DEFAULT = Templates()
