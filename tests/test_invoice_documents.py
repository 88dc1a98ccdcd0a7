"""Invoices a customer can pay (issue 14, item 4): the seller and how to pay from
``meterbook.toml``, the customer's billing details from ``customers.yaml``, display names,
inclusive periods, the shortfall explained, the prepaid credit left, the due date; a PDF
next to the HTML. None of it is in the invoice's record.

The worked example. Plan ``pro`` ("Pro"): base fee 49.00 in advance, minimum commitment
100.00, ``api_calls`` ("API calls") at 0.01. acme ("Acme Corp", payment terms 30 days) is
granted 20.00 of prepaid credit on 2026-09-01, expiring 2026-11-01, and makes 10 calls a
day in September (300 calls)::

    INV-2026-000001  2026-09-01  due 2026-10-01
      Base fee, billed in advance   Pro  2026-09-01 – 2026-09-30            49.00
      Prepaid credit granted 2026-09-01, expires 2026-11-01                 20.00
      total                                                                 69.00
      prepaid credit left on 2026-09-01: 20.00 (usable until 2026-10-31)

    INV-2026-000002  2026-10-01  due 2026-10-31 (30 days)
      API calls                     Pro  2026-09-01 – 2026-09-30  300 call   3.00
      Minimum commitment shortfall  Pro  2026-09-01 – 2026-09-30            97.00
        minimum commitment 100.00 − usage 3.00 = 97.00
      Prepaid credit applied        Pro  2026-09-01 – 2026-09-30            -3.00
      Base fee, billed in advance   Pro  2026-10-01 – 2026-10-31            49.00
      total  3.00 + 97.00 − 3.00 + 49.00 =                                146.00
      prepaid credit left on 2026-10-01: 20.00 − 3.00 = 17.00 (usable until 2026-10-31)
"""

from __future__ import annotations

import io
import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.facts.invoices import load_invoices
from ledger.statements import write_statement
from tests.support.workspaces import (
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

METERS = """\
meters:
  api_calls: {name: API calls, event_type: api.request, aggregation: count, unit: call}
"""
PLANS = """\
plans:
  pro:
    name: Pro
    currency: USD
    base_fee: {amount: "49.00", timing: advance}
    minimum_commitment: "100.00"
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.01"}
"""
CUSTOMERS = """\
customers:
  acme:
    name: Acme Corp
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: pro, start: 2026-09-01}]
    payment_terms_days: 30
    credits: [{amount: "20.00", granted: 2026-09-01, expires: 2026-11-01}]
"""
BILLING = """\
    billing:
      contact: Accounts payable
      address: ["1 Main Street", "Springfield, IL 62701"]
      email: ap@acme.example
      reference: PO-4471
"""
SETTINGS = """\
[seller]
name = "Example Billing Ltd"
address = ["1 High Street", "London EC1A 1AA"]
email = "billing@example.com"

[payment]
instructions = "Bank transfer, quoting the invoice number."
[payment.details]
"Account name" = "Example Billing Ltd"
IBAN = "GB82 WEST 1234 5698 7654 32"
"""
SEPTEMBER = [f"2026-09-{d:02d}" for d in range(1, 31)]


def workspace(root: Path, *, presented: bool = True, pdf: bool = False) -> Path:
    """The worked example; ``presented``: with the seller, payment and billing settings."""
    config = 'store = "sqlite:///var/events.sqlite"\n'
    if pdf:
        config += "[documents]\npdf = true\n"
    write_workspace(
        root,
        meters=METERS,
        plans=PLANS,
        customers=CUSTOMERS + (BILLING if presented else ""),
        config=config + (SETTINGS if presented else ""),
    )
    session = open_session(root)
    try:
        insert_events(session.engine, calls("acme", [d for d in SEPTEMBER for _ in range(10)]))
        session.invoice(date(2026, 10, 1))
    finally:
        session.engine.dispose()
    return root


def document(root: Path, name: str) -> str:
    return (root / "books" / "documents" / name).read_text(encoding="utf-8")


def test_an_invoice_says_who_bills_whom_what_for_and_how_to_pay(tmp_path: Path) -> None:
    """The worked example's INV-2026-000002, and ``check`` passes on the books."""
    root = workspace(tmp_path / "ws")
    html = document(root, "INV-2026-000002.html")
    # the seller, from [seller]
    assert (
        "<header class='seller'><b>Example Billing Ltd</b><br>1 High Street<br>London EC1A 1AA"
        "<br>billing@example.com</header>" in html
    )
    # the customer, from customers.yaml
    assert (
        "<h2>Bill to</h2><p><b>Acme Corp</b><br>Accounts payable<br>1 Main Street"
        "<br>Springfield, IL 62701<br>ap@acme.example</p>"
        "<p class='meta'>Customer acme · your reference PO-4471</p>" in html
    )
    # dates and what is due
    assert "<dt>Invoice date</dt><dd>2026-10-01</dd>" in html
    assert "<dt>Due date</dt><dd>2026-10-31 (30 days)</dd>" in html
    assert "<dt>Amount due</dt><dd><b>146.00 USD</b></dd>" in html
    # the lines: display names, the plan, the cycle as the days it covers
    september = "<td>Pro<div class='period'>2026-09-01 – 2026-09-30</div></td>"
    october = "<td>Pro<div class='period'>2026-10-01 – 2026-10-31</div></td>"
    assert (
        "<tr><td>API calls<div class='tiers'>300 units: 300 × 0.01 = 3.00</div></td>"
        f"{september}<td class='num'>300 call</td><td class='num'>3.00 USD</td></tr>" in html
    )
    assert "api_calls" not in html and "(unit)" not in html and "2026-09-01/2026-10-01" not in html
    # the shortfall explained: minimum 100.00 − usage 3.00 = 97.00
    assert (
        "<tr><td>Minimum commitment shortfall<div class='tiers'>minimum commitment 100.00 − "
        f"usage 3.00 = 97.00</div></td>{september}<td class='num'></td>"
        "<td class='num'>97.00 USD</td></tr>" in html
    )
    assert f"<tr><td>Prepaid credit applied</td>{september}" in html
    assert f"<tr><td>Base fee, billed in advance</td>{october}" in html
    assert "<td colspan='3'>Total due by 2026-10-31</td><td class='num'>146.00 USD</td>" in html
    # prepaid credit left: 20.00 − 3.00 = 17.00, usable through the day before it expires
    assert "<h2>Prepaid credit</h2><p>Remaining on 2026-10-01: 17.00 USD</p>" in html
    assert (
        "<li>17.00 USD granted 2026-09-01, usable until 2026-10-31 (expires 2026-11-01)</li>"
        in html
    )
    # how to pay, from [payment], with the invoice number as the reference
    assert (
        "<h2>How to pay</h2><p>Bank transfer, quoting the invoice number.</p>"
        "<dl class='facts pay'><dt>Account name</dt><dd>Example Billing Ltd</dd>"
        "<dt>IBAN</dt><dd>GB82 WEST 1234 5698 7654 32</dd>"
        "<dt>Reference</dt><dd>INV-2026-000002</dd>"
        "<dt>Amount</dt><dd>146.00 USD by 2026-10-31</dd></dl>" in html
    )
    first = document(root, "INV-2026-000001.html")
    assert "<dt>Amount due</dt><dd><b>69.00 USD</b></dd>" in first
    assert "<h2>Prepaid credit</h2><p>Remaining on 2026-09-01: 20.00 USD</p>" in first
    result = run_cli(root, "check")
    assert result.exit_code == 0, result.output


def test_the_presentation_is_not_in_the_invoice_record(tmp_path: Path) -> None:
    """The same books without [seller], [payment] and ``billing:``: the invoices' JSON records
    say the same (but the rules hash, which covers customers.yaml), their HTML does not."""
    presented = workspace(tmp_path / "a")
    plain = workspace(tmp_path / "b", presented=False)
    for number in ("INV-2026-000001", "INV-2026-000002"):
        a, b = (json.loads(document(r, f"{number}.json")) for r in (presented, plain))
        assert a.pop("rules") != b.pop("rules")
        assert a == b
        assert "billing" not in json.dumps(a) and "IBAN" not in json.dumps(a)
    html = document(plain, "INV-2026-000002.html")
    assert "<header" not in html and "How to pay" not in html
    assert "<h2>Bill to</h2><p><b>Acme Corp</b></p><p class='meta'>Customer acme</p>" in html


@pytest.mark.parametrize(
    ("where", "text", "parts"),
    [
        (
            "customers",
            "    billing: {email: not-an-address}\n",
            ("rules/customers.yaml:", "customers.acme.billing.email", "not an email address"),
        ),
        (
            "customers",
            "    billing: {fax: '123'}\n",
            ("rules/customers.yaml:", "customers.acme.billing.fax", "unknown key"),
        ),
        (
            "customers",
            "    billing: {address: 1 Main Street}\n",
            ("rules/customers.yaml:", "customers.acme.billing.address"),
        ),
        ("config", "[seller]\nlogo = 'x.png'\n", ("meterbook.toml: seller.logo: unknown key",)),
        (
            "config",
            "[seller]\naddress = '1 High Street'\n",
            ("meterbook.toml: seller.address: expected a list of lines",),
        ),
        (
            "config",
            "[payment.details]\nIBAN = 42\n",
            ("meterbook.toml: payment.details.IBAN: expected a non-empty string",),
        ),
        (
            "config",
            "[documents]\npdf = 'yes'\n",
            ("meterbook.toml: documents.pdf: expected true or false",),
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_file_and_key(
    tmp_path: Path, where: str, text: str, parts: tuple[str, ...]
) -> None:
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS,
        plans=PLANS,
        customers=CUSTOMERS + (text if where == "customers" else ""),
        config='store = "sqlite:///var/events.sqlite"\n' + (text if where == "config" else ""),
    )
    result = run_cli(root, "post", "--through", "2026-09-30")
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert "\n" not in out and "Traceback" not in out, out
    for part in parts:
        assert part in out, out


def _weasyprint_works() -> bool:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


needs_pdf = pytest.mark.skipif(
    not _weasyprint_works(),
    reason="WeasyPrint or Pango is missing (pip install 'meterbook[pdf]'; apt-get install "
    "libpango-1.0-0 libpangoft2-1.0-0)",
)


def pdf_text(path: Path) -> str:
    """The text of every page of a PDF, read back with pypdf."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(path.read_bytes()))
    return "\n".join(page.extract_text() for page in reader.pages)


@needs_pdf
def test_a_pdf_is_printed_next_to_each_document(tmp_path: Path) -> None:
    """With ``[documents] pdf = true`` the PDF of INV-2026-000002 holds its number, the amount
    due (146.00 USD) and its lines; ``check`` accepts it; a PDF deleted is printed again by
    the next ``post``; a statement gets its PDF too."""
    root = workspace(tmp_path / "ws", pdf=True)
    pdf = root / "books" / "documents" / "INV-2026-000002.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = pdf_text(pdf)
    for part in ("INV-2026-000002", "146.00 USD", "API calls", "Example Billing Ltd", "PO-4471"):
        assert part in text, text
    assert "INV-2026-000001" in pdf_text(pdf.with_name("INV-2026-000001.pdf"))
    assert run_cli(root, "check").exit_code == 0, run_cli(root, "check").output

    pdf.unlink()
    assert run_cli(root, "post", "--through", "2026-10-01").exit_code == 0
    assert "146.00 USD" in pdf_text(pdf)

    session = open_session(root)
    try:
        files = write_statement(session, "acme", which="2026-09-15", today=date(2026, 10, 20))
    finally:
        session.engine.dispose()
    statement = files.html.with_suffix(".pdf")
    assert "Usage statement" in pdf_text(statement) and "3.00 USD" in pdf_text(statement)
    [second] = [i for i in load_invoices(open_session(root).engine) if i.number.endswith("2")]
    assert second.total == Decimal("146.00")


def test_pdf_without_weasyprint_is_one_line_naming_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``import weasyprint`` failing (not installed) stops the command before it writes."""
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS,
        plans=PLANS,
        customers=CUSTOMERS,
        config='store = "sqlite:///var/events.sqlite"\n[documents]\npdf = true\n',
    )
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # what Python does for a missing module
    result = run_cli(root, "post", "--through", "2026-09-30")
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert "\n" not in out and "Traceback" not in out, out
    assert "meterbook.toml: documents.pdf: PDFs need WeasyPrint" in out
    assert "pip install 'meterbook[pdf]'" in out and "libpango" in out
    assert not (root / "books").exists()
