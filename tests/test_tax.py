"""Taxes on invoices: worked examples computed by hand, checked through the books Beancount loads.

The workspace (tests/support/tax.py; calendar cycles from 2026-10-01, 0.25 a call, invoiced
2026-11-01; seller tax id DE811111111):

- ``kunde`` (EUR, German VAT 19 %): 401 calls = 100.25; VAT 100.25 × 0.19 =
  19.0475 → 19.05; total 119.30.
- ``client_fr`` (EUR, reverse charge, FR40303265045): 400 calls = 100.00; no VAT;
  total 100.00, with the reverse-charge mention.
- ``acme_us`` (USD, California 7.25 % + San Francisco district 1.375 %): 401
  calls = 100.25; 100.25 × 0.0725 = 7.268125 → 7.27 and 100.25 × 0.01375 =
  1.3784375 → 1.38; total 108.90.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from hypothesis import given
from hypothesis import strategies as st

from ledger.books import load_books
from ledger.errors import PluginError
from ledger.facts.credit_notes import load_credit_notes
from ledger.facts.invoices import load_invoices
from ledger.reports import build_report
from ledger.session import Session
from ledger.tax import TaxRate, standard_tax
from tests.support.readme import hookspec_example, manual_text
from tests.support.tax import CONFIG, PLANS, TAXES, tax_workspace
from tests.support.workspaces import (
    METERS_CALLS,
    balance,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

RECEIVABLE = "Assets:Receivables:Invoiced:Kunde"


def books(session: Session) -> list[data.Directive]:
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return entries


def invoice_txn(entries: list[data.Directive], number: str) -> dict[str, Decimal]:
    [txn] = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and e.meta.get("invoice") == number
        and e.narration.startswith("Invoice")
    ]
    return {p.account: p.units.number for p in txn.postings}


def test_eu_vat_reverse_charge_and_us_sales_tax_are_invoiced_and_booked(tmp_path: Path) -> None:
    session = tax_workspace(tmp_path / "ws")
    issued = session.invoice(through=date(2026, 11, 1))
    totals = {inv.customer: (inv.number, inv.subtotal, inv.total) for inv in issued}
    assert totals == {
        "acme_us": ("INV-2026-000001", Decimal("100.25"), Decimal("108.90")),
        "client_fr": ("INV-2026-000002", Decimal("100.00"), Decimal("100.00")),
        "kunde": ("INV-2026-000003", Decimal("100.25"), Decimal("119.30")),
    }
    entries = books(session)
    # tax is owed to the jurisdiction, not revenue: Dr receivable (with tax) / Cr unbilled and tax
    assert invoice_txn(entries, "INV-2026-000003") == {
        RECEIVABLE: Decimal("119.30"),
        "Assets:Receivables:Unbilled:Kunde": Decimal("-100.25"),
        "Liabilities:Tax:DE": Decimal("-19.05"),
    }
    assert invoice_txn(entries, "INV-2026-000001") == {
        "Assets:Receivables:Invoiced:Acme-Us": Decimal("108.90"),
        "Assets:Receivables:Unbilled:Acme-Us": Decimal("-100.25"),
        "Liabilities:Tax:US-CA": Decimal("-7.27"),
        "Liabilities:Tax:US-CA-SF": Decimal("-1.38"),
    }
    assert invoice_txn(entries, "INV-2026-000002") == {
        "Assets:Receivables:Invoiced:Client-Fr": Decimal("100.00"),
        "Assets:Receivables:Unbilled:Client-Fr": Decimal("-100.00"),
    }
    # revenue stays net of tax
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 11, 2), "EUR") == Decimal(
        "-200.25"
    )
    # documents: tax lines and rates, both tax ids, the reverse-charge mention where it applies
    docs = session.workspace.books_dir / "documents"
    html = (docs / "INV-2026-000003.html").read_text()
    assert "VAT 19% (DE) on 100.25 EUR" in html and "19.05 EUR" in html and "119.30 EUR" in html
    assert "seller tax id DE811111111" in html and "customer tax id DE123456789" in html
    assert "Reverse charge" not in html
    fr = (docs / "INV-2026-000002.html").read_text()
    assert "reverse charge (FR) on 100.00 EUR" in fr and "customer tax id FR40303265045" in fr
    assert "Reverse charge: VAT to be accounted for by the recipient" in fr
    us = (docs / "INV-2026-000001.html").read_text()
    assert (
        "state sales tax 7.25% (US-CA) on 100.25 USD" in us
        and "district sales tax 1.375% (US-CA-SF)" in us
    )
    record = json.loads((docs / "INV-2026-000003.json").read_text())
    assert record["total"] == "119.30" and record["tax"]["lines"] == [
        {
            "jurisdiction": "DE",
            "rate": "0.19",
            "base": "100.25",
            "amount": "19.05",
            "name": "VAT",
            "treatment": "standard",
        }
    ]


def test_credit_note_reverses_its_share_of_tax_and_payment_settles_the_total(
    tmp_path: Path,
) -> None:
    """Half of kunde's 119.30 credited (59.65): tax 19.05 × 59.65 / 119.30 = 9.525 → 9.52
    (half-even),
    so 50.13 is contra-revenue; the 59.65 left is paid on Nov 20 and the receivable is 0. The tax
    owed to DE is 19.05 − 9.52 = 9.53, and the November close asserts it."""
    session = tax_workspace(tmp_path / "ws")
    session.invoice(through=date(2026, 11, 1))
    note = session.credit("INV-2026-000003", amount="59.65", reason="outage", on=date(2026, 11, 10))
    assert note.tax is not None and note.tax_amount == Decimal("9.52")
    assert [p.amount for p in note.parts] == [Decimal("50.13")]
    (tmp_path / "pay.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-11-20,59.65,EUR,INV-2026-000003,PAY-1\n"
    )
    assert run_cli(session.workspace.root, "ingest", str(tmp_path / "pay.csv")).exit_code == 0
    result = run_cli(session.workspace.root, "close", "2026-10")
    assert result.exit_code == 0, result.output
    result = run_cli(session.workspace.root, "close", "2026-11")
    assert result.exit_code == 0, result.output
    entries = books(session)
    [cn] = [
        e
        for e in entries
        if isinstance(e, data.Transaction) and e.meta.get("credit_note") == note.number
    ]
    assert {p.account: p.units.number for p in cn.postings} == {
        "Income:Credit-Notes": Decimal("50.13"),
        "Liabilities:Tax:DE": Decimal("9.52"),
        RECEIVABLE: Decimal("-59.65"),
    }
    assert balance(entries, RECEIVABLE, date(2026, 12, 1)) == 0
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 12, 1)) == Decimal("-9.53")
    assertions = {
        (e.account, e.amount.number)
        for e in entries
        if isinstance(e, data.Balance)
        and e.date == date(2026, 12, 1)
        and e.account.startswith("Liabilities:Tax")
    }
    assert assertions == {
        ("Liabilities:Tax:DE", Decimal("-9.53")),
        ("Liabilities:Tax:US-CA", Decimal("-7.27")),
        ("Liabilities:Tax:US-CA-SF", Decimal("-1.38")),
    }
    html = (session.workspace.books_dir / "documents" / f"{note.number}.html").read_text()
    assert "VAT 19% (DE) on 50.13 EUR" in html and "9.52 EUR" in html
    # trace recomputes the invoice, its tax postings included
    result = run_cli(session.workspace.root, "trace", "INV-2026-000003")
    assert result.exit_code == 0, result.output


def test_tax_report_ties_to_the_books(tmp_path: Path) -> None:
    """November: DE base 100.25 invoiced − 50.13 credited (the note's net part) = 50.12, tax 19.05 −
    9.52 = 9.53; FR 100.00
    reverse charge, no tax; US-CA 7.27 and US-CA-SF 1.38 on 100.25. Each tax account's November
    movement in the books equals the documents' tax."""
    session = tax_workspace(tmp_path / "ws")
    session.invoice(through=date(2026, 11, 1))
    session.credit("INV-2026-000003", amount="59.65", reason="outage", on=date(2026, 11, 10))
    session.post(through=date(2026, 11, 30))
    report = build_report(session, "tax", month="2026-11")
    rows = {
        (r[1], r[2], r[4]): (r[6], r[7])
        for r in report.table("Tax by month, jurisdiction and rate").rows
    }
    assert rows == {
        ("DE", "standard", "19%"): (Decimal("50.12"), Decimal("9.53")),
        ("FR", "reverse charge", "0%"): (Decimal("100.00"), Decimal("0.00")),
        ("US-CA", "standard", "7.25%"): (Decimal("100.25"), Decimal("7.27")),
        ("US-CA-SF", "standard", "1.375%"): (Decimal("100.25"), Decimal("1.38")),
    }
    ties = report.table("Tax liabilities: documents vs books").rows
    assert [(r[1], r[3], r[4], r[5]) for r in ties] == [
        ("Liabilities:Tax:DE", Decimal("9.53"), Decimal("9.53"), Decimal("0.00")),
        ("Liabilities:Tax:US-CA", Decimal("7.27"), Decimal("7.27"), Decimal("0.00")),
        ("Liabilities:Tax:US-CA-SF", Decimal("1.38"), Decimal("1.38"), Decimal("0.00")),
    ]
    # the books' own figure, independently: minus the November postings to each tax account
    entries = books(session)
    for account, _documents, books_figure, _diff in [(r[1], r[3], r[4], r[5]) for r in ties]:
        moved = -sum(
            (
                p.units.number
                for e in entries
                if isinstance(e, data.Transaction)
                and date(2026, 11, 1) <= e.date <= date(2026, 11, 30)
                for p in e.postings
                if p.account == account
            ),
            Decimal(0),
        )
        assert moved == books_figure
    result = run_cli(session.workspace.root, "report", "tax", "--month", "2026-11", "--csv")
    assert result.exit_code == 0 and "DE,standard,VAT,19%,EUR,50.12,9.53,2" in result.output


def test_inclusive_prices_take_the_tax_out_of_revenue(tmp_path: Path) -> None:
    """prices = "inclusive": kunde's 476 calls bill 119.00 EUR including VAT:
    tax 119 × 0.19 / 1.19 = 19.00, base 100.00; the total stays 119.00. The accrual took
    the tax out already (revenue and unbilled 100.00), so the invoice moves unbilled 100.00
    and credits 19.00 of VAT, with nothing to correct (tests/test_tax_inclusive.py)."""
    config = CONFIG + 'prices = "inclusive"\n'
    session = tax_workspace(tmp_path / "ws", config=config, counts=(476, 400, 401))
    issued = {inv.customer: inv for inv in session.invoice(through=date(2026, 11, 1))}
    kunde = issued["kunde"]
    assert (kunde.subtotal, kunde.total) == (Decimal("119.00"), Decimal("119.00"))
    assert kunde.tax is not None and [(t.base, t.amount) for t in kunde.tax.lines] == [
        (Decimal("100.00"), Decimal("19.00"))
    ]
    entries = books(session)
    assert invoice_txn(entries, kunde.number) == {
        RECEIVABLE: Decimal("119.00"),
        "Assets:Receivables:Unbilled:Kunde": Decimal("-100.00"),
        "Liabilities:Tax:DE": Decimal("-19.00"),
    }
    revenue = sum(
        (
            p.units.number
            for e in entries
            if isinstance(e, data.Transaction)
            for p in e.postings
            if p.account.startswith("Income:")
            and p.units.currency == "EUR"
            and e.meta.get("customer") == "kunde"
        ),
        Decimal(0),
    )
    assert revenue == Decimal("-100.00")


def test_a_third_party_tax_plugin_answers_through_the_same_hook(tmp_path: Path) -> None:
    """A tax service plugin taxes acme_us at Washington's 6.5 % + 3.85 %:
    100.25 × 0.065 = 6.51625 → 6.52,
    100.25 × 0.0385 = 3.859625 → 3.86; rounding per line (one line here): total 110.63."""
    plugin = """
from ledger.hookspecs import hookimpl
from ledger.tax import Tax, TaxRate, standard_tax

RATES = [TaxRate(jurisdiction="US-WA", rate="0.065", name="state sales tax"),
         TaxRate(jurisdiction="US-WA-Seattle", rate="0.0385", name="city sales tax")]

@hookimpl
def meterbook_tax(draft):
    if draft.invoice.customer != "acme_us":
        return None
    bases = [(line.amount, RATES) for line in draft.invoice.lines]
    tax = standard_tax(bases, draft.invoice.currency,
                       rounding=draft.settings.rounding, inclusive=draft.settings.inclusive)
    return Tax(lines=tax.lines, seller_tax_id=draft.settings.seller_tax_id,
               customer_tax_id="WA-603")
"""
    taxes = TAXES.replace("    acme_us: {rates: [ca_state, ca_district]}\n", "")
    session = tax_workspace(
        tmp_path / "ws",
        taxes=taxes,
        plugins={"taxservice": plugin},
        config=CONFIG + 'rounding = "line"\n',
    )
    issued = {inv.customer: inv for inv in session.invoice(through=date(2026, 11, 1))}
    assert issued["acme_us"].total == Decimal("110.63")
    assert issued["kunde"].total == Decimal(
        "119.30"
    )  # the first-party rules still answer for kunde
    entries = books(session)
    assert invoice_txn(entries, issued["acme_us"].number)[
        "Liabilities:Tax:US-WA-Seattle"
    ] == Decimal("-3.86")


def test_two_plugins_taxing_one_invoice_stop_the_run_and_issue_nothing(tmp_path: Path) -> None:
    plugin = """
from ledger.hookspecs import hookimpl
from ledger.tax import Tax

@hookimpl
def meterbook_tax(draft):
    return Tax()
"""
    session = tax_workspace(tmp_path / "ws", plugins={"greedy": plugin})
    with pytest.raises(PluginError, match="only one meterbook_tax plugin may answer"):
        session.invoice(through=date(2026, 11, 1))
    assert load_invoices(session.engine) == []
    result = run_cli(session.workspace.root, "invoice", "--through", "2026-11-01")
    assert result.exit_code == 2 and "meterbook_local.greedy" in result.output


def test_a_plugin_returning_unrounded_tax_is_refused(tmp_path: Path) -> None:
    plugin = """
from decimal import Decimal
from ledger.hookspecs import hookimpl
from ledger.tax import Tax, TaxLine

@hookimpl
def meterbook_tax(draft):
    if draft.invoice.customer == "acme_us":
        line = TaxLine("US-CA", Decimal("0.0725"), Decimal("100.25"), Decimal("7.268125"))
        return Tax(lines=(line,))
"""
    session = tax_workspace(tmp_path / "ws", taxes=None, plugins={"sloppy": plugin})
    with pytest.raises(PluginError, match="not rounded to USD's minor unit"):
        session.invoice(through=date(2026, 11, 1))


def test_a_plugin_saying_whose_tax_is_whose_must_add_up(tmp_path: Path) -> None:
    """A plugin charging 7.27 on acme_us's one line but saying the line carries 7.26 of it
    (``line_tax``) is refused, nothing issued: line credits would give back 0.01 too little."""
    plugin = """
from decimal import Decimal
from ledger.hookspecs import hookimpl
from ledger.tax import Tax, TaxLine

@hookimpl
def meterbook_tax(draft):
    if draft.invoice.customer == "acme_us":
        line = TaxLine("US-CA", Decimal("0.0725"), Decimal("100.25"), Decimal("7.27"))
        return Tax(lines=(line,), line_tax=(((0, Decimal("7.26")),),))
"""
    session = tax_workspace(tmp_path / "ws", taxes=None, plugins={"sloppy": plugin})
    with pytest.raises(PluginError, match=r"line_tax gives 7.26 of tax 7.25% \(US-CA\)"):
        session.invoice(through=date(2026, 11, 1))
    assert load_invoices(session.engine) == []


def test_without_tax_rules_nothing_changes(tmp_path: Path) -> None:
    session = tax_workspace(
        tmp_path / "ws", taxes=None, config='store = "sqlite:///var/events.sqlite"\n'
    )
    issued = session.invoice(through=date(2026, 11, 1))
    assert [(inv.customer, inv.total, inv.tax) for inv in issued] == [
        ("acme_us", Decimal("100.25"), None),
        ("client_fr", Decimal("100.00"), None),
        ("kunde", Decimal("100.25"), None),
    ]
    record = json.loads(
        (session.workspace.books_dir / "documents" / "INV-2026-000003.json").read_text()
    )
    assert "tax" not in record
    text = "".join(p.read_text() for p in session.workspace.books_dir.rglob("*.beancount"))
    assert (
        "Liabilities:Tax" not in text
        and "tax id"
        not in (session.workspace.books_dir / "documents" / "INV-2026-000003.html").read_text()
    )


@pytest.mark.parametrize(
    ("taxes", "message"),
    [
        (
            TAXES.replace("rates: [de_vat]", "rates: [de_vta]"),
            "rules/taxes.yaml:7: taxes.customers.kunde.rates[0]: unknown rate 'de_vta'",
        ),
        (
            TAXES.replace(
                "treatment: reverse_charge, tax_id: FR40303265045", "treatment: reverse_charge"
            ),
            "reverse charge needs the customer's tax_id",
        ),
        (TAXES.replace('rate: "0.19"', "rate: 0.19"), "never floats"),
        (TAXES.replace("    kunde:", "    nobody:"), "unknown customer 'nobody'"),
    ],
)
def test_bad_tax_rules_are_one_line_exit_2(tmp_path: Path, taxes: str, message: str) -> None:
    session = tax_workspace(tmp_path / "ws")  # the events stored; then the rules broken
    (session.workspace.rules_dir / "taxes.yaml").write_text(taxes)
    result = run_cli(session.workspace.root, "invoice", "--through", "2026-11-01")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and load_invoices(session.engine) == []


def test_bad_tax_settings_name_the_key(tmp_path: Path) -> None:
    session = tax_workspace(tmp_path / "ws")
    session.workspace.config_file.write_text(CONFIG + 'rounding = "cent"\n')
    result = run_cli(session.workspace.root, "invoice", "--through", "2026-11-01")
    assert result.exit_code == 2 and "tax.rounding: 'cent' is not line or invoice" in result.output


def test_reverse_charge_without_the_sellers_vat_number_is_refused(tmp_path: Path) -> None:
    """client_fr is reverse-charged but meterbook.toml gives no seller_tax_id: a reverse-charge
    invoice must show both VAT numbers, so ``invoice`` stops (exit 2, one line naming the
    key), nothing is issued, and ``check`` fails its rules line with the same words."""
    session = tax_workspace(tmp_path / "ws")
    session.workspace.config_file.write_text('store = "sqlite:///var/events.sqlite"\n')
    for command, code in ((("invoice", "--through", "2026-11-01"), 2), (("check",), 1)):
        result = run_cli(session.workspace.root, *command)
        assert result.exit_code == code, result.output  # check: ran, found the rules broken
        assert "tax.seller_tax_id: missing, and taxes.yaml reverse-charges client_fr" in (
            result.output
        )
        assert "Traceback" not in result.output
    assert load_invoices(session.engine) == []


RATE = TaxRate(jurisdiction="DE", rate=Decimal("0.19"), name="VAT")
cents = st.integers(min_value=-10_000, max_value=1_000_000).map(lambda n: Decimal(n).scaleb(-2))


@given(st.lists(cents, min_size=1, max_size=8))
def test_rounding_per_invoice_and_per_line(amounts: list[Decimal]) -> None:
    """Per invoice: one half-even rounding of the exact tax on the base; per line: the rounded
    lines' sum, within half a cent per line of the exact tax; both at the minor unit."""
    bases = [(a, (RATE,)) for a in amounts]
    exact = sum(amounts, Decimal(0)) * RATE.rate
    whole = standard_tax(bases, "EUR").amount
    assert whole == exact.quantize(Decimal("0.01"), rounding="ROUND_HALF_EVEN")
    per_line = standard_tax(bases, "EUR", rounding="line").amount
    assert per_line == sum(
        (
            Decimal(a * RATE.rate).quantize(Decimal("0.01"), rounding="ROUND_HALF_EVEN")
            for a in amounts
        ),
        Decimal(0),
    )
    assert abs(per_line - exact) <= Decimal("0.005") * len(amounts)
    inclusive = standard_tax(bases, "EUR", inclusive=True)
    assert inclusive.lines[0].base + inclusive.amount == sum(amounts, Decimal(0))


def test_rerate_credit_notes_give_back_the_tax_on_the_decrease(tmp_path: Path) -> None:
    """Plan eu re-priced to 0.20 from Oct 1 after invoicing: kunde's 401 calls are 80.20,
    20.05 less. Its note gives back the 20.05 with the tax charged on it,
    round(19.05 × 20.05 ÷ 100.25 = 3.81) = 3.81: 23.86 in all, contra-revenue exactly 20.05.
    client_fr (reverse charge) is credited 20.00, no tax."""
    session = tax_workspace(tmp_path / "ws")
    session.invoice(through=date(2026, 11, 1))
    plans = session.workspace.rules_dir / "plans.yaml"
    plans.write_text(
        PLANS
        + """\
    versions:
      - effective: 2026-10-01
        charges: [{meter: api_calls, model: unit, unit_price: "0.20"}]
"""
    )
    result = run_cli(
        session.workspace.root, "rerate", "--from", "2026-10-01", "--date", "2026-11-15"
    )
    assert result.exit_code == 0, result.output
    session = open_session(session.workspace.root)
    session.post(through=date(2026, 11, 30))
    entries = books(session)
    notes = {
        e.meta["invoice"]: {p.account: p.units.number for p in e.postings}
        for e in entries
        if isinstance(e, data.Transaction) and e.narration.startswith("Credit note")
    }
    assert notes == {
        "INV-2026-000003": {
            "Income:Credit-Notes": Decimal("20.05"),
            "Liabilities:Tax:DE": Decimal("3.81"),
            RECEIVABLE: Decimal("-23.86"),
        },
        "INV-2026-000002": {
            "Income:Credit-Notes": Decimal("20.00"),
            "Assets:Receivables:Invoiced:Client-Fr": Decimal("-20.00"),
        },
    }
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 12, 1)) == Decimal(
        "-15.24"
    )  # 19.05 − 3.81


def test_the_hookspec_example_plugin_taxes_as_documented(tmp_path: Path) -> None:
    """ledger/hookspecs.py's meterbook_tax example, saved as is: acme_us at 6.5 % + 3.85 %
    on 100.25:
    6.51625 → 6.52 and 3.859625 → 3.86, total 110.63 with the customer's tax id on the invoice."""
    taxes = TAXES.replace("    acme_us: {rates: [ca_state, ca_district]}\n", "")
    session = tax_workspace(
        tmp_path / "ws",
        taxes=taxes,
        plugins={"taxservice": hookspec_example("meterbook_tax").replace('"acme"', '"acme_us"')},
    )
    issued = {inv.customer: inv for inv in session.invoice(through=date(2026, 11, 1))}
    assert issued["acme_us"].total == Decimal("110.63")
    tax = issued["acme_us"].tax  # which tax is whose: the one line carries both
    assert tax is not None and tax.line_tax == (((0, Decimal("6.52")), (1, Decimal("3.86"))),)
    html = (
        session.workspace.books_dir / "documents" / f"{issued['acme_us'].number}.html"
    ).read_text()
    assert (
        "customer tax id WA-603-123-456" in html and "city sales tax 3.85% (US-WA-Seattle)" in html
    )


def test_plans_override_the_customers_rate_or_exempt_their_lines(tmp_path: Path) -> None:
    """default: German VAT for every customer; plan ``eu`` at the reduced 7 %, plan ``us`` exempt.
    kunde (eu): 100.25 × 0.07 = 7.0175 → 7.02, total 107.27; acme_us (us): exempt, total 100.25,
    the plan's reason printed; client_fr keeps its reverse charge."""
    taxes = """\
taxes:
  rates:
    de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}
    de_reduced: {jurisdiction: DE, rate: "0.07", name: VAT}
  default: {rates: [de_vat]}
  customers:
    client_fr: {treatment: reverse_charge, tax_id: FR40303265045, jurisdiction: FR}
  plans:
    eu: {rates: [de_reduced]}
    us: {treatment: exempt, reason: "export of services: outside the scope of German VAT"}
"""
    session = tax_workspace(tmp_path / "ws", taxes=taxes)
    issued = {inv.customer: inv for inv in session.invoice(through=date(2026, 11, 1))}
    assert issued["kunde"].total == Decimal("107.27")
    assert issued["client_fr"].total == Decimal("100.00")
    us = issued["acme_us"]
    assert us.total == Decimal("100.25") and us.tax is not None
    assert [(t.treatment, t.base, t.amount) for t in us.tax.lines] == [
        ("exempt", Decimal("100.25"), Decimal("0.00"))
    ]
    html = (session.workspace.books_dir / "documents" / f"{us.number}.html").read_text()
    assert "export of services: outside the scope of German VAT" in html


def test_the_readme_documents_these_tax_rules() -> None:
    """README's Taxes section shows the rules these worked examples run with."""
    text = manual_text()
    after = text[text.index("<!-- taxes-example -->") :]
    assert after.split("```yaml\n", 1)[1].split("```", 1)[0] == TAXES


def test_notes_crediting_everything_give_back_exactly_all_the_tax(tmp_path: Path) -> None:
    """kunde's 119.30 credited in two halves: 19.05 × 59.65 / 119.30 = 9.525 → 9.52, then
    round(19.05 × 119.30 / 119.30) − 9.52 = 9.53: 19.05 in all, the tax account back at 0.
    A ``--line 1`` note may take the line with its tax (100.25 + 19.05 = 119.30), not more."""
    session = tax_workspace(tmp_path / "ws")
    session.invoice(through=date(2026, 11, 1))
    root = session.workspace.root
    too_much = run_cli(
        root,
        "credit",
        "INV-2026-000003",
        "--amount",
        "119.31",
        "--line",
        "1",
        "--reason",
        "x",
        "--date",
        "2026-11-10",
    )
    assert too_much.exit_code == 2 and "(119.30 EUR)" in too_much.output, too_much.output
    first = session.credit("INV-2026-000003", amount="59.65", reason="a", on=date(2026, 11, 10))
    second = session.credit(
        "INV-2026-000003", amount="59.65", reason="b", on=date(2026, 11, 11), line=1
    )
    assert (first.tax_amount, second.tax_amount) == (Decimal("9.52"), Decimal("9.53"))
    session.post(through=date(2026, 11, 30))
    entries = books(session)
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 12, 1)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 12, 1)) == 0
    assert balance(entries, "Income:Credit-Notes", date(2026, 12, 1)) == Decimal("100.25")


def test_taxed_invoices_and_notes_on_each_store(tmp_path: Path, store_url: str) -> None:
    """The first worked examples on SQLite and PostgreSQL: the tax is stored with the invoice and
    the note (their JSON records), and read back the same."""
    config = f'store = "{store_url}"\n[tax]\nseller_tax_id = "DE811111111"\n'
    session = tax_workspace(tmp_path / "ws", config=config)
    session.invoice(through=date(2026, 11, 1))
    session.credit("INV-2026-000003", amount="59.65", reason="a", on=date(2026, 11, 10))
    stored = {
        inv.customer: (inv.total, inv.tax.amount if inv.tax else None)
        for inv in load_invoices(session.engine)
    }
    assert stored == {
        "acme_us": (Decimal("108.90"), Decimal("8.65")),
        "client_fr": (Decimal("100.00"), Decimal("0.00")),
        "kunde": (Decimal("119.30"), Decimal("19.05")),
    }
    [note] = load_credit_notes(session.engine)
    assert note.tax_amount == Decimal("9.52")


def test_tax_report_over_a_period(tmp_path: Path) -> None:
    """A quarter's return: kunde also uses 100 calls in November (25.00 EUR, VAT 4.75, invoiced
    Dec 1). Over 2026-11..2026-12 DE sums to base 100.25 + 25.00 = 125.25 and tax 19.05 + 4.75 =
    23.80 from 2 invoices; each month still ties to the books."""
    session = tax_workspace(tmp_path / "ws")
    insert_events(session.engine, calls("kunde", ["2026-11-09"] * 100, prefix="nov"))
    session.invoice(through=date(2026, 12, 1))
    root = session.workspace.root
    result = run_cli(root, "report", "tax", "--month", "2026-11..2026-12", "--json")
    assert result.exit_code == 0, result.output
    tables = {t["title"]: t["rows"] for t in json.loads(result.output)["tables"]}
    [de] = [
        r
        for r in tables["Tax by jurisdiction and rate over 2026-11..2026-12"]
        if r["jurisdiction"] == "DE"
    ]
    assert (de["taxable base"], de["tax amount"], de["documents"]) == ("125.25", "23.80", 2)
    ties = tables["Tax liabilities: documents vs books"]
    assert {
        (r["month"], r["account"], r["books"], r["difference"])
        for r in ties
        if r["account"] == "Liabilities:Tax:DE"
    } == {
        ("2026-11", "Liabilities:Tax:DE", "19.05", "0.00"),
        ("2026-12", "Liabilities:Tax:DE", "4.75", "0.00"),
    }
    backwards = run_cli(root, "report", "tax", "--month", "2026-12..2026-11")
    assert backwards.exit_code == 2 and "is not YYYY-MM or FIRST..LAST" in backwards.output
    other = run_cli(root, "report", "revenue", "--month", "2026-11..2026-12")
    assert other.exit_code == 2 and "'2026-11..2026-12' is not YYYY-MM" in other.output


def test_every_command_refuses_a_broken_tax_setup(tmp_path: Path) -> None:
    """A bad taxes.yaml is found by ``post`` and ``check`` too, not first by the invoice run."""
    session = tax_workspace(tmp_path / "ws")
    root = session.workspace.root
    (root / "rules" / "taxes.yaml").write_text(TAXES.replace('rate: "0.19"', 'rate: "1.19"'))
    for args in (("post", "--through", "2026-10-31"), ("check",)):
        result = run_cli(root, *args)
        assert result.exit_code in (1, 2) and "rules/taxes.yaml:3: taxes.rates.de_vat.rate" in (
            result.output
        ), result.output


def test_the_tax_account_template_comes_from_accounts_yaml(tmp_path: Path) -> None:
    """accounts key ``tax`` (DESIGN's table) renamed: kunde's 19.05 goes to
    Liabilities:VAT-Payable:DE."""
    session = tax_workspace(tmp_path / "ws")
    (session.workspace.rules_dir / "accounts.yaml").write_text(
        "accounts:\n  tax: Liabilities:VAT-Payable:{jurisdiction}\n"
    )
    session = open_session(session.workspace.root)
    issued = {inv.customer: inv for inv in session.invoice(through=date(2026, 11, 1))}
    postings = invoice_txn(books(session), issued["kunde"].number)
    assert postings["Liabilities:VAT-Payable:DE"] == Decimal("-19.05")
    (session.workspace.rules_dir / "accounts.yaml").write_text(
        "accounts:\n  tax: Liabilities:{meters}\n"
    )
    result = run_cli(session.workspace.root, "check")
    assert (
        "rules/accounts.yaml" in result.output and "unknown placeholder {meters}" in result.output
    )


@given(
    st.integers(min_value=1, max_value=10**7).map(lambda c: Decimal(c).scaleb(-2)),
    st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=6),
)
def test_credit_notes_reverse_exactly_the_invoice_tax(
    subtotal: Decimal, weights: list[int]
) -> None:
    """However an invoice's total is split over credit notes, each note's tax share is at the
    minor unit and not negative, and the shares add up to exactly the invoice's tax."""
    from ledger.facts.invoices import Invoice, InvoiceLine
    from ledger.tax import credited_tax

    line = InvoiceLine(kind="usage", description="u", account="unbilled", amount=subtotal)
    tax = standard_tax([(subtotal, (RATE,))], "EUR")
    invoice = Invoice(
        customer="k", date=date(2026, 11, 1), currency="EUR", lines=(line,), rules="r", tax=tax
    )
    total = invoice.total
    cuts = [total * w // sum(weights) for w in weights[:-1]]
    amounts = [Decimal(c).quantize(Decimal("0.01")) for c in cuts]
    amounts.append(total - sum(amounts, Decimal(0)))
    before, reversed_tax = Decimal(0), Decimal(0)
    for amount in amounts:
        share = credited_tax(invoice, before, amount)
        assert share is not None
        assert share.amount >= 0 and share.amount == share.amount.quantize(Decimal("0.01"))
        reversed_tax += share.amount
        before += amount
    assert reversed_tax == tax.amount


def test_credit_notes_on_tax_inclusive_prices(tmp_path: Path) -> None:
    """prices = "inclusive": kunde's 119.00 (100.00 + 19.00 VAT) credited 59.50 gives back 9.50 of
    tax and 50.00 of revenue; the line (119.00 with its tax) has 59.50 left, which a --line note
    takes: the tax account and the receivable end at 0, revenue at 0 (119.00 − 19.00 − 100.00)."""
    session = tax_workspace(
        tmp_path / "ws", config=CONFIG + 'prices = "inclusive"\n', counts=(476, 400, 401)
    )
    session.invoice(through=date(2026, 11, 1))
    first = session.credit("INV-2026-000003", amount="59.50", reason="a", on=date(2026, 11, 10))
    assert first.tax_amount == Decimal("9.50") and [p.amount for p in first.parts] == [
        Decimal("59.50")
    ]
    root = session.workspace.root
    more = run_cli(
        root,
        "credit",
        "INV-2026-000003",
        "--amount",
        "59.51",
        "--line",
        "1",
        "--reason",
        "b",
        "--date",
        "2026-11-11",
    )
    assert more.exit_code == 2 and "(59.50 EUR)" in more.output, more.output
    session.credit("INV-2026-000003", amount="59.50", reason="b", on=date(2026, 11, 11), line=1)
    session.post(through=date(2026, 11, 30))
    entries = books(session)
    [cn] = [
        e
        for e in entries
        if isinstance(e, data.Transaction) and e.meta.get("credit_note") == first.number
    ]
    assert {p.account: p.units.number for p in cn.postings} == {
        "Income:Credit-Notes": Decimal("50.00"),
        "Liabilities:Tax:DE": Decimal("9.50"),
        RECEIVABLE: Decimal("-59.50"),
    }
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 12, 1)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 12, 1)) == 0
    revenue = sum(
        (
            p.units.number
            for e in entries
            if isinstance(e, data.Transaction)
            for p in e.postings
            if p.account.startswith("Income:")
            and p.units.currency == "EUR"
            and e.meta.get("customer") == "kunde"
        ),
        Decimal(0),
    )
    assert revenue == 0


def test_a_subscription_cancelled_after_its_taxed_fee_gets_the_tax_back(tmp_path: Path) -> None:
    """kunde pays 31.00 EUR a month in advance + 19 % VAT: INV-2026-000001 of Oct 1 is 31.00 +
    5.89 = 36.89. Cancelled from Oct 11 after that: the 21.00 billed for Oct 11–31 is credited
    with its tax, round(5.89 × 21.00 ÷ 31.00 = 3.990…) = 3.99, so the note is 24.99 (deferred
    21.00, tax 3.99). The call of Oct 3 is billed Oct 11: 1.00 + 0.19. VAT owed: 5.89 − 3.99 +
    0.19 = 2.09, which is 19 % of what kunde is billed in the end (10.00 + 1.00)."""
    plans = """\
plans:
  p:
    currency: EUR
    base_fee: {amount: "31.00", timing: advance}
    charges: [{meter: api_calls, model: unit, unit_price: "1.00"}]
"""
    customers = (
        "customers:\n  kunde: {currency: EUR, billing_anchor: calendar, "
        "subscriptions: [{plan: p, start: 2026-10-01%s}]}\n"
    )
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=plans, customers=customers % "", config=CONFIG
    )
    (root / "rules" / "taxes.yaml").write_text(
        'taxes:\n  rates: {de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}}\n'
        "  customers: {kunde: {rates: [de_vat], tax_id: DE123456789}}\n"
    )
    insert_events(open_session(root).engine, calls("kunde", ["2026-10-03"]))
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    (root / "rules" / "customers.yaml").write_text(customers % ", end: 2026-10-11")
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    assert run_cli(root, "invoice", "--through", "2026-11-01").exit_code == 0
    session = open_session(root)
    entries = books(session)
    (note,) = [e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta]
    assert {p.account: p.units.number for p in note.postings} == {
        "Liabilities:Deferred-Revenue:Kunde": Decimal("21.00"),
        "Liabilities:Tax:DE": Decimal("3.99"),
        RECEIVABLE: Decimal("-24.99"),
    }
    assert balance(entries, "Liabilities:Deferred-Revenue:Kunde", date(2026, 10, 11)) == 0
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 11, 2)) == Decimal("-2.09")
    assert balance(entries, RECEIVABLE, date(2026, 11, 2)) == Decimal(
        "13.09"
    )  # 36.89 − 24.99 + 1.19
    assert run_cli(root, "check").exit_code == 0


def _accounting_totals(html: str) -> list[str]:
    """The credit note's Accounting table: the footer's amount, deferred and contra-revenue."""
    table = html.split("<h2>Accounting</h2>", 1)[1].split("</table>", 1)[0]
    foot = table.split("<tfoot>", 1)[1]
    return [cell.split("</td>", 1)[0] for cell in foot.split("<td class='num'>")[1:]]


def test_credit_note_document_does_not_count_the_tax_as_contra_revenue(tmp_path: Path) -> None:
    """kunde's 59.65 note: 50.13 of the line (contra-revenue, as posted) + 9.52 of VAT. The
    Accounting table's totals are the lines' 50.13, deferred 0.00, contra-revenue 50.13 (they
    said 59.65 and 59.65, the tax counted as revenue given back). Inclusive prices (119.00
    with 19.00 VAT in it), a 59.50 note: the line 59.50 holds 9.50 of tax, shown as its own
    row, so the totals are 50.00, 0.00 and 50.00, as the books have them."""
    session = tax_workspace(tmp_path / "ws")
    session.invoice(through=date(2026, 11, 1))
    note = session.credit("INV-2026-000003", amount="59.65", reason="outage", on=date(2026, 11, 10))
    html = (session.workspace.books_dir / "documents" / f"{note.number}.html").read_text()
    assert _accounting_totals(html) == ["50.13 EUR", "0.00 EUR", "50.13 EUR"]
    session.post(through=date(2026, 11, 30))
    [cn] = [
        e
        for e in books(session)
        if isinstance(e, data.Transaction) and e.meta.get("credit_note") == note.number
    ]
    assert {p.account: p.units.number for p in cn.postings}["Income:Credit-Notes"] == Decimal(
        "50.13"
    )

    inclusive = tax_workspace(
        tmp_path / "incl", config=CONFIG + 'prices = "inclusive"\n', counts=(476, 400, 401)
    )
    inclusive.invoice(through=date(2026, 11, 1))
    note = inclusive.credit(
        "INV-2026-000003", amount="59.50", reason="outage", on=date(2026, 11, 10)
    )
    html = (inclusive.workspace.books_dir / "documents" / f"{note.number}.html").read_text()
    assert "tax included above, given back</td><td class='num'>-9.50</td>" in html
    assert _accounting_totals(html) == ["50.00 EUR", "0.00 EUR", "50.00 EUR"]


MIXED_PLANS = """\
plans:
  a:
    currency: EUR
    charges: [{meter: api_calls, model: unit, unit_price: "1.00"}]
  b:
    currency: EUR
    base_fee: {amount: "100.00", timing: advance}
    charges: [{meter: api_calls, model: unit, unit_price: "1.00"}]
"""
MIXED_CUSTOMERS = """\
customers:
  kunde:
    currency: EUR
    billing_anchor: calendar
    subscriptions: [{plan: a, start: 2026-10-01, end: 2026-11-01}, {plan: b, start: 2026-11-01}]
"""
MIXED_TAXES = """\
taxes:
  rates:
    de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}
    de_reduced: {jurisdiction: DE, rate: "0.07", name: VAT}
  customers:
    kunde: {rates: [de_vat], tax_id: DE123456789}
  plans:
    b: {rates: [de_reduced]}
"""


def test_a_line_credit_gives_back_that_lines_own_tax(tmp_path: Path) -> None:
    """kunde moves from plan a (19 %) to b (7 %) on Nov 1: INV-2026-000001 bills October's
    100 calls on a (100.00, VAT 19.00) and November's fee of b in advance (100.00, VAT
    7.00): 226.00. Line 1 can be credited 100.00 + 19.00 = 119.00 (the invoice's average
    said 113.00, with 3.50 at 7 % and 9.50 at 19 % given back). Two notes of 59.50 on line 1
    give back 9.50 + 9.50 of the 19 % VAT and nothing at 7 %; line 2's 107.00 gives back
    the 7.00. All 26.00 of VAT is given back, the DE liability is 0. A rerate's decrease of
    10.00 on line 1 gives back round(19.00 × 10 ÷ 100) = 1.90 (the average: 0.35 + 0.95)."""
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=MIXED_PLANS,
        customers=MIXED_CUSTOMERS,
        config=CONFIG,
    )
    (root / "rules" / "taxes.yaml").write_text(MIXED_TAXES)
    session = open_session(root)
    insert_events(session.engine, calls("kunde", ["2026-10-05"] * 100))
    [inv] = session.invoice(through=date(2026, 11, 1))
    assert inv.total == Decimal("226.00") and [ln.amount for ln in inv.lines] == [
        Decimal("100.00"),
        Decimal("100.00"),
    ]
    from ledger.tax import credit_of_lines

    amount, tax = credit_of_lines(inv, Decimal("10.00"), {1: Decimal("10.00")})
    assert tax is not None and amount == Decimal("11.90")
    assert [(t.rate, t.base, t.amount) for t in tax.lines] == [
        (Decimal("0.19"), Decimal("10.00"), Decimal("1.90"))
    ]
    refused = run_cli(
        root,
        "credit",
        inv.number,
        "--line",
        "1",
        "--amount",
        "119.01",
        "--reason",
        "x",
        "--date",
        "2026-11-05",
    )
    assert refused.exit_code == 2 and "can still be credited (119.00 EUR)" in refused.output
    notes = [
        session.credit(inv.number, amount=a, reason="x", on=date(2026, 11, 5), line=n)
        for n, a in ((1, "59.50"), (1, "59.50"), (2, "107.00"))
    ]
    assert [
        [(t.rate, t.base, t.amount) for t in n.tax.lines] for n in notes if n.tax is not None
    ] == [
        [(Decimal("0.19"), Decimal("50.00"), Decimal("9.50"))],
        [(Decimal("0.19"), Decimal("50.00"), Decimal("9.50"))],
        [(Decimal("0.07"), Decimal("100.00"), Decimal("7.00"))],
    ]
    session.post(through=date(2026, 11, 30))
    entries = books(session)
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 12, 1)) == 0
    assert balance(entries, RECEIVABLE, date(2026, 12, 1)) == 0
    report = build_report(session, "tax", month="2026-11")
    assert {
        (r[4], r[6], r[7]) for r in report.table("Tax by month, jurisdiction and rate").rows
    } == {("19%", Decimal("0.00"), Decimal("0.00")), ("7%", Decimal("0.00"), Decimal("0.00"))}


def test_a_prepaid_grant_is_taxed_as_the_plan_it_is_spent_on(tmp_path: Path) -> None:
    """kunde is on plan ``books`` (7 %; the customer's own rate is 19 %) and is granted 50.00
    of prepaid credit on Oct 1: the grant-only invoice of Oct 1 is 50.00 + 7 % = 53.50 (it
    was taxed 19 %, 59.50, while its drawdown line is taxed 7 %). October's 100 calls at
    1.00 less the 50.00 credit applied bill 50.00 + 3.50 on Nov 1. VAT in all: 3.50 + 3.50
    = 7.00, 7 % of the 100.00 supplied (it was 9.50 + 3.50 = 13.00)."""
    plans = (
        "plans:\n  books: {currency: EUR, charges: [{meter: api_calls, model: unit, "
        'unit_price: "1.00"}]}\n'
    )
    customers = (
        "customers:\n  kunde: {currency: EUR, billing_anchor: calendar, subscriptions: "
        '[{plan: books, start: 2026-10-01}], credits: [{amount: "50.00", granted: 2026-10-01}]}\n'
    )
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=plans, customers=customers, config=CONFIG
    )
    (root / "rules" / "taxes.yaml").write_text(
        MIXED_TAXES.replace("    b: {rates: [de_reduced]}", "    books: {rates: [de_reduced]}")
    )
    session = open_session(root)
    insert_events(session.engine, calls("kunde", ["2026-10-05"] * 100))
    grant, usage = session.invoice(through=date(2026, 11, 1))
    assert [ln.kind for ln in grant.lines] == ["credit_grant"]
    assert grant.total == Decimal("53.50") and grant.tax is not None
    assert [(t.rate, t.base, t.amount) for t in grant.tax.lines] == [
        (Decimal("0.07"), Decimal("50.00"), Decimal("3.50"))
    ]
    assert [ln.amount for ln in usage.lines] == [Decimal("100.00"), Decimal("-50.00")]
    assert usage.total == Decimal("53.50")
    entries = books(session)
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 11, 2)) == Decimal("-7.00")


def test_reverse_charge_supplies_are_listed_per_customer_tax_id(tmp_path: Path) -> None:
    """client_fr's 100.00 EUR (reverse charge, FR40303265045) less a credit note of 40.00 on
    Nov 12: 60.00 under its tax id in November, from 2 documents, as the EC Sales List wants
    it; the standard-rated customers are not in that table."""
    session = tax_workspace(tmp_path / "ws")
    session.invoice(through=date(2026, 11, 1))
    note = session.credit("INV-2026-000002", amount="40.00", reason="outage", on=date(2026, 11, 12))
    assert note.tax is not None and note.tax_amount == 0
    session.post(through=date(2026, 11, 30))
    report = build_report(session, "tax", month="2026-11")
    assert report.table("Reverse-charge supplies by customer tax id").rows == (
        ("2026-11", "FR40303265045", "client_fr", "FR", "EUR", Decimal("60.00"), 2),
    )


GROUPS = (
    (RATE,),
    (TaxRate(jurisdiction="DE", rate=Decimal("0.07"), name="VAT"),),
    (
        TaxRate(jurisdiction="US-CA", rate=Decimal("0.0725"), name="state"),
        TaxRate(jurisdiction="US-CA-SF", rate=Decimal("0.01375"), name="district"),
    ),
)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=50_000).map(lambda n: Decimal(n).scaleb(-2)),
            st.sampled_from(range(len(GROUPS))),
            st.sampled_from((Decimal(0), Decimal("0.5"), Decimal("0.37"))),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(("invoice", "line")),
    st.booleans(),
)
def test_crediting_every_line_gives_back_each_tax_line_exactly(
    lines: list[tuple[Decimal, int, Decimal]], rounding: str, inclusive: bool
) -> None:
    """Any lines at any mix of rates, rounded either way, prices exclusive or inclusive: the
    lines' shares (``Tax.line_tax``) add up to each tax line; crediting every line to its
    limit, each in one or two notes (``first`` of it, then the rest), gives back exactly each
    tax line's tax, never a negative share, and only tax lines of the line credited."""
    from ledger.facts.invoices import Invoice, InvoiceLine
    from ledger.tax import credited_tax, line_creditable

    tax = standard_tax(
        [(a, GROUPS[g]) for a, g, _ in lines], "EUR", rounding=rounding, inclusive=inclusive
    )
    for j, t in enumerate(tax.lines):
        assert sum((a for shares in tax.line_tax for jj, a in shares if jj == j), Decimal(0)) == (
            t.amount
        )
    invoice = Invoice(
        customer="c",
        date=date(2026, 11, 1),
        currency="EUR",
        rules="r",
        number="INV-1",
        lines=tuple(InvoiceLine("usage", "u", "unbilled", a) for a, _, _ in lines),
        tax=tax,
    )
    credited = {i: Decimal(0) for i in range(1, len(lines) + 1)}
    given: list = []
    before = Decimal(0)
    for i, (_, g, first) in enumerate(lines, 1):
        limit = line_creditable(invoice, i, credited, given)
        assert limit is not None
        partial = (limit * first).quantize(Decimal("0.01"))
        for step in ([partial] if 0 < partial < limit else []) + [None]:
            rest = line_creditable(invoice, i, credited, given)
            assert rest is not None
            amount = rest if step is None else step
            note = credited_tax(
                invoice, before, amount, line=i, credited=dict(credited), given=given
            )
            assert note is not None
            assert all(t.amount >= 0 for t in note.lines)
            assert {(t.jurisdiction, t.rate) for t in note.lines} <= {
                (r.jurisdiction, r.rate) for r in GROUPS[g]
            }
            credited[i] += amount - (Decimal(0) if inclusive else note.amount)
            given.append(note)
            before += amount
    back: dict = {}
    for note in given:
        for t in note.lines:
            back[(t.jurisdiction, t.rate)] = back.get((t.jurisdiction, t.rate), 0) + t.amount
    assert back == {(t.jurisdiction, t.rate): t.amount for t in tax.lines}
    assert before == invoice.total


def test_a_customer_switching_to_reverse_charge_keeps_its_issued_tax(tmp_path: Path) -> None:
    """kunde is invoiced 100.25 + 19.05 VAT on Nov 1, then gives its Austrian VAT id and is
    reverse-charged from then on (taxes.yaml changed): its 40 calls of November (10.00) are
    invoiced on Dec 1 with no VAT and the mention. The November invoice keeps its tax: the
    books, the tax report (DE 100.25 / 19.05) and ``trace`` (total 119.30 recomputed as
    100.25 of lines + the 19.05 issued; it said 100.25 and blamed late usage) agree."""
    session = tax_workspace(tmp_path / "ws")
    insert_events(session.engine, calls("kunde", ["2026-11-05"] * 40, "nov"))
    session.invoice(through=date(2026, 11, 1))
    root = session.workspace.root
    (root / "rules" / "taxes.yaml").write_text(
        TAXES.replace(
            "kunde: {rates: [de_vat], tax_id: DE123456789}",
            "kunde: {treatment: reverse_charge, tax_id: ATU12345678, jurisdiction: AT}",
        )
    )
    assert run_cli(root, "invoice", "--through", "2026-12-01").exit_code == 0
    invoices = {(inv.customer, inv.date): inv for inv in load_invoices(session.engine)}
    december = invoices[("kunde", date(2026, 12, 1))]
    assert december.total == Decimal("10.00") and december.tax is not None
    assert december.tax.reverse_charge and december.tax.customer_tax_id == "ATU12345678"
    entries = books(session)
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 12, 2)) == Decimal("-19.05")
    report = build_report(open_session(root), "tax", month="2026-11..2026-12")
    rows = {
        (r[0], r[1], r[2]): (r[6], r[7])
        for r in report.table("Tax by month, jurisdiction and rate").rows
    }
    assert rows[("2026-11", "DE", "standard")] == (Decimal("100.25"), Decimal("19.05"))
    assert rows[("2026-12", "AT", "reverse charge")] == (Decimal("10.00"), Decimal("0.00"))
    traced = run_cli(root, "trace", "INV-2026-000003")
    total = next(ln for ln in traced.output.splitlines() if ln.strip().startswith("total "))
    assert total.split()[1:] == ["119.30", "EUR", "119.30", "EUR", "ok"], traced.output


def test_a_correction_is_taxed_as_the_supply_it_corrects(tmp_path: Path) -> None:
    """kunde's October (401 calls at 0.25 = 100.25) was invoiced on Nov 1 with 19 % DE VAT;
    kunde is reverse-charged (AT) from then on. Plan eu is re-priced to 0.30 from Oct 1, so
    the rerate of Nov 20 charges October 401 × 0.05 = 20.05 more (DA-2026-000001). The Dec 1
    invoice bills November's 40 calls × 0.30 = 12.00 reverse-charged, and the 20.05 for the
    October supply at that supply's 19 %: 20.05 × 0.19 = 3.8095 → 3.81 (it was billed
    reverse-charged, no VAT). Total 12.00 + 20.05 + 3.81 = 35.86; DE VAT owed 19.05 + 3.81
    = 22.86."""
    session = tax_workspace(tmp_path / "ws")
    insert_events(session.engine, calls("kunde", ["2026-11-05"] * 40, "nov"))
    session.invoice(through=date(2026, 11, 1))
    root = session.workspace.root
    (root / "rules" / "taxes.yaml").write_text(
        TAXES.replace(
            "kunde: {rates: [de_vat], tax_id: DE123456789}",
            "kunde: {treatment: reverse_charge, tax_id: ATU12345678, jurisdiction: AT}",
        )
    )
    (root / "rules" / "plans.yaml").write_text(
        PLANS.replace(
            "  eu:\n    currency: EUR\n    charges: [{meter: api_calls, model: unit, "
            'unit_price: "0.25"}]\n',
            "  eu:\n    currency: EUR\n    charges: [{meter: api_calls, model: unit, "
            'unit_price: "0.25"}]\n    versions:\n      - effective: 2026-10-01\n'
            '        charges: [{meter: api_calls, model: unit, unit_price: "0.30"}]\n',
        )
    )
    result = run_cli(root, "rerate", "--from", "2026-10-01", "--date", "2026-11-20")
    assert result.exit_code == 0 and "DA-2026-000001" in result.output, result.output
    result = run_cli(root, "invoice", "--through", "2026-12-01")
    assert result.exit_code == 0, result.output
    [december] = [
        inv
        for inv in load_invoices(session.engine)
        if inv.customer == "kunde" and inv.date == date(2026, 12, 1)
    ]
    assert [(ln.kind, ln.amount) for ln in december.lines] == [
        ("usage", Decimal("12.00")),
        ("rerate", Decimal("20.05")),
    ]
    assert december.tax is not None and december.total == Decimal("35.86")
    assert {(t.jurisdiction, t.treatment, t.base, t.amount) for t in december.tax.lines} == {
        ("DE", "standard", Decimal("20.05"), Decimal("3.81")),
        ("AT", "reverse_charge", Decimal("12.00"), Decimal("0.00")),
    }
    html = (session.workspace.books_dir / "documents" / f"{december.number}.html").read_text()
    assert "VAT 19% (DE) on 20.05 EUR" in html and "reverse charge (AT) on 12.00 EUR" in html
    assert "Reverse charge: VAT to be accounted for by the recipient" in html
    entries = books(session)
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 12, 2)) == Decimal("-22.86")
