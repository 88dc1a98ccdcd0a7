"""Documents from Jinja2 templates (ledger.documents): the same bytes as before, escaped input,
and a workspace's own templates.

The golden files in ``tests/golden/documents/`` were written by the f-string code the templates
replaced (meterbook before issue 11), from the inputs :func:`cases` builds: a taxed invoice
whose customer display name is hostile, a supplementary reverse-charge invoice, two credit
notes, a debit adjustment and a usage statement with caps. The documents already issued are
hashed into the seals of closed months, so the templates must give these bytes exactly.

Worked numbers of the taxed invoice INV-2026-000007: api_calls, 101 calls, graduated: 10 × 0
= 0 and 91 × 0.0333 = 3.0303, rounded half-even to 3.03 (the rounding row shows -0.0003);
base fee 10.00; subtotal 13.03; VAT 19 % on 13.03 = 2.4757 → 2.48; total due 15.51.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from ledger.alerts import Alert
from ledger.cycles import Cycle
from ledger.documents import (
    DEFAULT,
    PACKAGED_DIR,
    Templates,
    credit_note_html,
    debit_adjustment_html,
    invoice_html,
    statement_html,
)
from ledger.errors import BadInput
from ledger.facts.adjustments import Adjustment
from ledger.facts.credit_notes import CreditNote, CreditPart
from ledger.facts.invoices import SUPPLEMENTARY, Invoice, InvoiceLine, Tax, TaxLine, load_invoices
from ledger.pricing import PriceLine
from ledger.statements import CapUse, ChargeProjection, Evidence, MeterUsage, Projection, Statement
from tests.support.readme import manual_text
from tests.support.workspaces import (
    METERS_CALLS,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

GOLDEN = Path(__file__).parent / "golden" / "documents"
D = Decimal
HOSTILE = 'O\'Brien & <script>alert("x")</script>'

# --- inputs (the golden files were rendered from these by the code before templates) ------


def names() -> dict[str, str]:
    """Customer display names, as customers.yaml gives them."""
    return {"acme": HOSTILE, "beta": "", "gamma": "Gamma GmbH"}


def _invoices() -> dict[str, Invoice]:
    graduated = InvoiceLine(
        "usage",
        "api_calls (graduated)",
        "unbilled",
        D("3.03"),
        cycle="2026-09-01/2026-10-01",
        meter="api_calls",
        quantity=D(101),
        unit="call",
        tiers=(
            PriceLine("0 – 10", D(10), D(0), D(0)),
            PriceLine("11 and above", D(91), D("0.0333"), D("3.0303")),
        ),
    )
    fee = InvoiceLine(
        "base_fee", "Base fee <Pro>", "deferred", D("10.00"), cycle="2026-10-01/2026-11-01"
    )
    vat = Tax(
        lines=(TaxLine("DE", D("0.19"), D("13.03"), D("2.48"), "VAT"),),
        seller_tax_id="DE811111111",
        customer_tax_id="DE 123'456",
    )
    late = InvoiceLine(
        "late_usage", "api_calls after the last invoice", "unbilled", D("5.00"), quantity=D(5)
    )
    reverse = Tax(
        lines=(TaxLine("FR", D(0), D("5.00"), D(0), "TVA", "reverse_charge"),),
        exemption="Autoliquidation — reverse charge, art. 196 <VAT Directive>",
        seller_tax_id="DE811111111",
    )
    return {
        "invoice_taxed": Invoice(
            "acme",
            date(2026, 10, 1),
            "USD",
            (graduated, fee),
            "r1a2b3",
            "INV-2026-000007",
            due=date(2026, 10, 31),
            tax=vat,
        ),
        "invoice_supplementary_reverse_charge": Invoice(
            "gamma",
            date(2026, 10, 20),
            "EUR",
            (late,),
            "r1a2b3",
            "INV-2026-000008",
            kind=SUPPLEMENTARY,
            tax=reverse,
        ),
    }


def _credit_notes() -> dict[str, CreditNote]:
    included = Tax(
        lines=(TaxLine("DE", D("0.19"), D("10.00"), D("1.90"), "VAT"),),
        inclusive=True,
        seller_tax_id="DE811111111",
        customer_tax_id="DE 123'456",
    )
    return {
        "credit_note_parts_inclusive": CreditNote(
            "CN-2026-000002",
            2,
            "INV-2026-000007",
            "acme",
            date(2026, 10, 5),
            "USD",
            D("11.90"),
            "double-billed <fee> & 'sorry'",
            line=2,
            line_description="Base fee <Pro>",
            invoice_date=date(2026, 10, 1),
            invoice_total=D("15.51"),
            credited_before=D("1.00"),
            parts=(CreditPart(2, "base_fee", "Base fee <Pro>", D("11.90"), D("4.00")),),
            tax=included,
        ),
        "credit_note_invoice_total": CreditNote(
            "CN-2026-000003",
            3,
            "INV-2026-000009",
            "beta",
            date(2026, 11, 2),
            "USD",
            D("1234.50"),
            "goodwill",
            invoice_date=None,
            invoice_total=D("2000.00"),
        ),
    }


def _adjustments() -> list[Adjustment]:
    common = dict(
        run=1,
        document="DA-2026-000001",
        customer="acme",
        invoice="INV-2026-000007",
        currency="USD",
        date=date(2026, 11, 3),
        since=date(2026, 9, 1),
        rules="r9<new>",
    )
    return [
        Adjustment(
            line=1,
            line_key="usage:api_calls <v2>",
            kind="usage",
            meter="api_calls",
            link="acme-2026-09-01",
            cycle="2026-09-01/2026-10-01",
            invoiced=D("3.03"),
            rerated=D("1003.03"),
            amount=D("1000.00"),
            **common,  # type: ignore[arg-type]
        ),
        Adjustment(
            line=2,
            line_key="base_fee:advance",
            kind="base_fee",
            meter="",
            link="acme-2026-10-01",
            cycle="2026-10-01/2026-11-01",
            invoiced=D("10.00"),
            rerated=D("12.50"),
            amount=D("2.50"),
            **common,  # type: ignore[arg-type]
        ),
    ]


def _statement() -> tuple[Statement, Evidence]:
    cycle = Cycle(
        "acme",
        "g<1>",
        date(2026, 9, 1),
        date(2026, 10, 1),
        date(2026, 9, 1),
        date(2026, 10, 1),
        1,
        True,
        False,
    )
    key = cycle.key
    crossed = tuple(
        Alert("usage_cap", "acme", "api_calls", key, D(t), D(100), D(v), "call", date(2026, 9, d))
        for t, v, d in (("0.8", 80, 8), ("1", 101, 10))
    )
    meters = (
        MeterUsage(
            "api_calls",
            "call",
            "count",
            (
                (date(2026, 9, 1), D(11), 11),
                (date(2026, 9, 2), D(10), 10),
                (date(2026, 9, 10), D(80), 80),
            ),
            D(101),
            101,
        ),
        MeterUsage(
            "tok<ens>", "token & co", "sum", ((date(2026, 9, 5), D("1000.5"), 1),), D("1000.5"), 1
        ),
    )
    line = _invoices()["invoice_taxed"].lines[0]
    statement = Statement(
        customer="acme",
        name=HOSTILE,
        currency="USD",
        cycle=cycle,
        through=date(2026, 9, 10),
        meters=meters,
        lines=(line, InvoiceLine("base_fee", "Base fee", "deferred", D("10.00"))),
        credit_applied=D("2.00"),
        credit_remaining=D("8.005"),
        projection=Projection(
            method="÷ 10 elapsed days × 30 <run rate>",
            elapsed_days=10,
            cycle_days=30,
            charges=(
                ChargeProjection("api_calls", D(101), D(303), D("9.0909")),
                ChargeProjection("tok<ens>", D("1000.5"), D("3001.5"), D("30.015")),
            ),
            usage=D("39.1059"),
            base_fee=D("10.00"),
            commitment=D(0),
            credit=D("2.00"),
        ),
        caps=(
            CapUse("usage_cap", "api_calls", "call", D(100), D(101), D(303), crossed),
            CapUse("spend_cap", None, "USD", D(500), D("13.03"), D("47.1059"), ()),
        ),
        rules="r1a2b3",
    )
    evidence = Evidence(
        "acme-2026-09-01.csv",
        102,
        (("api_calls", 101, D(101)), ("tok<ens>", 1, D("1000.5")), ("latest'meter", 0, None)),
        "ab" * 32,
    )
    return statement, evidence


def cases() -> dict[str, tuple[str, object]]:
    """``{golden file name: (kind, inputs)}``."""
    found: dict[str, tuple[str, object]] = {}
    found.update({k: ("invoice", v) for k, v in _invoices().items()})
    found.update({k: ("credit_note", v) for k, v in _credit_notes().items()})
    found["debit_adjustment"] = ("debit_adjustment", _adjustments())
    found["statement"] = ("statement", _statement())
    return found


# --- end of inputs -------------------------------------------------------------------------


def rules() -> object:
    """What the documents read of the rules: the customers' display names (no billing
    details), acme's subscription to plan ``pro`` from 2026-09-01 and the display names of
    that plan and of the meter ``api_calls``, both hostile."""
    customers = {
        k: SimpleNamespace(name=v, billing=None, subscriptions=()) for k, v in names().items()
    }
    pro = SimpleNamespace(plan="pro", start=date(2026, 9, 1), end=None, id="")
    customers["acme"] = SimpleNamespace(name=HOSTILE, billing=None, subscriptions=(pro,))
    return SimpleNamespace(
        customers=customers,
        meters={"api_calls": SimpleNamespace(name="API <calls>")},
        plans={"pro": SimpleNamespace(name="Pro <2026>")},
    )


def render(kind: str, inputs: object, templates: Templates = DEFAULT) -> str:
    if kind == "invoice":
        return invoice_html(inputs, rules(), templates)  # type: ignore[arg-type]
    if kind == "credit_note":
        return credit_note_html(inputs, rules(), templates)  # type: ignore[arg-type]
    if kind == "debit_adjustment":
        assert isinstance(inputs, list)
        total = sum((a.amount for a in inputs), D(0))
        names = rules()
        return debit_adjustment_html(inputs[0].document, inputs, total, names, templates)
    statement, evidence = inputs  # type: ignore[misc]
    return statement_html(statement, evidence, templates)


@pytest.mark.parametrize("name", sorted(cases()))
def test_templates_give_the_bytes_the_f_string_code_gave(name: str) -> None:
    """Each document is byte for byte the golden file the code before templates wrote."""
    kind, inputs = cases()[name]
    assert render(kind, inputs) == (GOLDEN / f"{name}.html").read_text(encoding="utf-8")


def test_every_value_from_input_is_escaped() -> None:
    """A display name with a script, quotes and an ampersand prints as text on every document
    that shows it; descriptions, reasons, units and meter names likewise."""
    found = {name: render(*case) for name, case in cases().items()}
    for name in ("invoice_taxed", "credit_note_parts_inclusive", "debit_adjustment", "statement"):
        html = found[name]
        assert "<script>" not in html and "</script>" not in html, name
        assert "O&#x27;Brien &amp; &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "API &lt;calls&gt;" in found["invoice_taxed"]
    assert (
        "<td>Pro &lt;2026&gt;<div class='period'>2026-10-01 – 2026-10-31</div>"
        in found["invoice_taxed"]
    )
    assert (
        "double-billed &lt;fee&gt; &amp; &#x27;sorry&#x27;" in found["credit_note_parts_inclusive"]
    )
    assert "api_calls &lt;v2&gt;" in found["debit_adjustment"]
    assert "aria-label='daily tok&lt;ens&gt;'" in found["statement"]
    tags = {m.group(1) for m in re.finditer(r"<([a-z0-9!]+)", found["statement"])}
    assert tags <= STATEMENT_TAGS, tags  # no element came from the input


STATEMENT_TAGS = {
    *("!doctype", "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p"),
    *("table", "thead", "tbody", "tfoot", "tr", "th", "td", "div", "span", "b", "i", "svg"),
    *("line", "text", "rect", "details", "summary"),
}


# --- a workspace's own templates --------------------------------------------------------------

PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
"""
CUSTOMERS = """\
customers:
  acme:
    name: "Acme <Corp>"
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-09-01}]
"""


def readme_invoice() -> str:
    """The README's example (Documents and templates): the packaged invoice with the
    business's logo, address and VAT number."""
    text = manual_text()
    after = text[text.index("<!-- documents-example") :]
    match = re.search(r"```jinja\n(.*?)```", after, re.S)
    assert match, "no jinja block after the documents-example marker"
    return match.group(1)


def workspace(root: Path, documents: str = '[documents]\ntemplates = "templates"\n') -> Path:
    config = (
        'store = "sqlite:///var/events.sqlite"\n'
        'title = "Example books"\n'
        f"{documents}"
        '[tax]\nseller_tax_id = "GB123456789"\n'
    )
    write_workspace(root, meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS, config=config)
    (root / "templates").mkdir()
    return root


def one_line(result: object, *parts: str) -> None:
    """Exit 2 and one line of output that says all of ``parts``, no traceback."""
    assert getattr(result, "exit_code", None) == 2, getattr(result, "output", "")
    out = getattr(result, "output", "").strip()
    assert "\n" not in out and "Traceback" not in out, out
    for part in parts:
        assert part in out, out


def test_a_workspace_template_replaces_the_packaged_invoice(tmp_path: Path) -> None:
    """acme makes 3 calls in September at 1.00: INV-2026-000001 of Oct 1 bills 3.00 USD. With
    the README's ``templates/invoice.html`` the invoice carries the seller's logo, address
    and VAT number (``[tax] seller_tax_id``) above the packaged invoice's lines; the customer's
    name is still escaped, ``check`` re-renders the same bytes from the same templates."""
    root = workspace(tmp_path / "ws")
    (root / "templates" / "invoice.html").write_text(readme_invoice())
    session = open_session(root)
    try:
        insert_events(session.engine, calls("acme", ["2026-09-02", "2026-09-03", "2026-09-04"]))
        session.invoice(date(2026, 10, 1))
        [invoice] = load_invoices(session.engine)
    finally:
        session.engine.dispose()
    html = (root / "books" / "documents" / f"{invoice.number}.html").read_text(encoding="utf-8")
    assert invoice.total == D("3.00")
    assert html.startswith("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>")
    assert "<p>Example Billing Ltd · 1 High Street, London · VAT GB123456789</p>" in html
    assert "aria-label='logo'" in html
    assert "</style><style>.seller{display:flex;gap:1rem;align-items:center}</style></head>" in html
    assert "<body><header class='seller'><svg width='40'" in html
    assert "<b>Acme &lt;Corp&gt;</b>" in html and "<Corp>" not in html
    assert "<p class='meta'>Customer acme</p>" in html
    assert "<td class='num'>3.00 USD</td></tr></tfoot>" in html
    assert run_cli(root, "check").exit_code == 0, run_cli(root, "check").output


def test_the_stylesheet_is_one_template_a_workspace_can_replace(tmp_path: Path) -> None:
    """``templates/style.css`` replaces the packaged stylesheet on every document."""
    root = workspace(tmp_path / "ws")
    (root / "templates" / "style.css").write_text("body{font-family:Georgia,serif}\n")
    session = open_session(root)
    try:
        invoice = _invoices()["invoice_taxed"]
        html = invoice_html(invoice, rules(), session.templates)  # type: ignore[arg-type]
    finally:
        session.engine.dispose()
    assert "<style>\nbody{font-family:Georgia,serif}\n</style>" in html
    assert session.templates.seller.tax_id == "GB123456789"
    assert session.templates.seller.title == "Example books"


@pytest.mark.parametrize(
    ("documents", "parts"),
    [
        (
            '[documents]\ntemplates = "nowhere"\n',
            ("meterbook.toml: documents.templates:", "nowhere does not exist"),
        ),
        (
            '[documents]\ntemplates = "meterbook.toml"\n',
            ("meterbook.toml: documents.templates:", "is not a directory"),
        ),
        ('[documents]\ntemplates = ""\n', ("meterbook.toml: documents.templates: expected",)),
        ('[documents]\nlogo = "x.png"\n', ("meterbook.toml: documents.logo: unknown key",)),
        ('documents = "templates"\n', ("meterbook.toml: documents: expected a table",)),
    ],
)
def test_a_bad_templates_setting_is_one_line_naming_the_key(
    tmp_path: Path, documents: str, parts: tuple[str, ...]
) -> None:
    one_line(run_cli(workspace(tmp_path / "ws", documents), "post"), *parts)


def test_a_template_with_a_syntax_error_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    """Found when the workspace is opened, before anything is written."""
    root = workspace(tmp_path / "ws")
    (root / "templates" / "invoice.html").write_text(
        '{% extends "base.html" %}\n{% block body %}\n{% if invoice.number %}\n{% endblock %}\n'
    )
    one_line(
        run_cli(root, "post", "--through", "2026-10-01"),
        f"{root / 'templates' / 'invoice.html'}:4:",
        "endblock",
    )
    assert not (root / "books").exists()


def test_a_template_naming_an_unknown_variable_is_one_line_naming_file_and_line(
    tmp_path: Path,
) -> None:
    """StrictUndefined: a typo prints nothing silently; the invoice is not issued."""
    root = workspace(tmp_path / "ws")
    (root / "templates" / "invoice.html").write_text(
        '{% extends "base.html" %}\n{% block body %}\n<p>{{ invoice.numbr }}</p>\n{% endblock %}\n'
    )
    session = open_session(root)
    try:
        insert_events(session.engine, calls("acme", ["2026-09-02"]))
    finally:
        session.engine.dispose()
    one_line(
        run_cli(root, "invoice", "--through", "2026-10-01"),
        f"{root / 'templates' / 'invoice.html'}:3:",
        "has no attribute 'numbr'",
    )
    session = open_session(root)
    try:
        assert load_invoices(session.engine) == []
    finally:
        session.engine.dispose()


def test_errors_in_an_override_are_bad_input_not_a_crash(tmp_path: Path) -> None:
    directory = tmp_path / "t"
    directory.mkdir()
    (directory / "credit_note.html").write_text("{{ 1 / 0 }}\n")
    note = _credit_notes()["credit_note_invoice_total"]
    with pytest.raises(BadInput, match=r"credit_note\.html:1: credit_note: division by zero"):
        credit_note_html(note, rules(), Templates(directory))  # type: ignore[arg-type]


def test_the_templates_ship_in_the_wheel() -> None:
    """pyproject's package-data names every file of ledger/documents/templates/, and its
    package list every package of ledger/ (a wheel holds only the packages listed)."""
    root = Path(__file__).parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    packages = config["tool"]["setuptools"]["packages"]
    found = [f"ledger.{p.parent.name}" for p in (root / "ledger").glob("*/__init__.py")]
    assert sorted(set(found) - set(packages)) == []
    patterns = config["tool"]["setuptools"]["package-data"]["ledger.documents"]
    for path in PACKAGED_DIR.iterdir():
        name = path.relative_to(PACKAGED_DIR.parent).as_posix()
        assert any(Path(name).match(p) for p in patterns), name
