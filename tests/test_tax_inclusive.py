"""Tax-inclusive prices accrued net of tax: worked examples checked through Beancount's loader.

The workspace: ``prices = "inclusive"``, German VAT 19 % for every customer (``default:``), a
``count`` meter ``api_calls`` at 0.25 EUR a call (tax included), and

- ``kunde``: plan ``eu``, calendar months from 2026-10-01: 476 calls on Oct 31 bill 119.00
  on the invoice of Nov 1, of which 119.00 × 0.19 ÷ 1.19 = 19.00 is VAT;
- ``abo``: plan ``fee``, a base fee of 119.00 a month in advance, cycles from 2026-10-16
  (``[Oct 16, Nov 16)``, 31 days), invoiced on Oct 16.

Every month's revenue is net of the tax: the accruals take it out (``ledger.tax.Inclusion``),
so unbilled and deferred revenue hold 100.00 and the invoice moves them with the VAT.
"""

from __future__ import annotations

import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data, realization
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from ledger.books import load_books
from ledger.events import Event, parse_time
from ledger.facts.invoices import Invoice, load_invoices
from ledger.reports import build_report
from ledger.session import Session
from ledger.store import invoices as invoices_table
from tests.support.workspaces import METERS_CALLS, calls, insert_events, open_session, run_cli

PLANS = """\
plans:
  eu:
    currency: EUR
    charges: [{meter: api_calls, model: unit, unit_price: "0.25"}]
  fee:
    currency: EUR
    base_fee: {amount: "119.00", timing: advance}
    charges: [{meter: api_calls, model: unit, unit_price: "0.25"}]
"""
CUSTOMERS = """\
customers:
  kunde: {currency: EUR, billing_anchor: calendar, subscriptions: [{plan: eu, start: 2026-10-01}]}
  abo: {currency: EUR, subscriptions: [{plan: fee, start: 2026-10-16}]}
"""
TAXES = """\
taxes:
  rates:
    de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}
  default: {rates: [de_vat]}
"""
CONFIG = (
    'store = "sqlite:///var/events.sqlite"\n'
    '[tax]\nseller_tax_id = "DE811111111"\nprices = "inclusive"\n'
)
UNBILLED = "Assets:Receivables:Unbilled:Kunde"
RECEIVABLE = "Assets:Receivables:Invoiced:Kunde"
DEFERRED = "Liabilities:Deferred-Revenue:Abo"
VAT = "Liabilities:Tax:DE"
OCT, NOV, DEC = date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)


def workspace(
    root: Path,
    *,
    customers: str = CUSTOMERS,
    meters: str = METERS_CALLS,
    plans: str = PLANS,
    taxes: str | None = TAXES,
    config: str = CONFIG,
    plugins: dict[str, str] | None = None,
) -> Session:
    (root / "rules").mkdir(parents=True)
    (root / "meterbook.toml").write_text(
        ('plugins_dir = "plugins"\n' if plugins is not None else "") + config
    )
    for name, text in (("meters", meters), ("plans", plans), ("customers", customers)):
        (root / "rules" / f"{name}.yaml").write_text(text)
    if taxes is not None:
        (root / "rules" / "taxes.yaml").write_text(taxes)
    if plugins is not None:
        (root / "plugins").mkdir()
        for name, source in plugins.items():
            (root / "plugins" / f"{name}.py").write_text(source)
    return open_session(root)


def loaded(session: Session) -> list[data.Directive]:
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return entries


def realized(entries: list[data.Directive], account: str, before: date) -> Decimal:
    """The balance of ``account`` and its sub-accounts at the start of ``before``, as Beancount
    realizes the entries dated earlier."""
    real = realization.realize([e for e in entries if e.date < before])
    node = realization.get(real, account)
    if node is None:
        return Decimal(0)
    units = realization.compute_balance(node).get_currency_units("EUR")
    return Decimal(units.number)


def moved(entries: list[data.Directive], account: str, start: date, end: date) -> Decimal:
    """What ``account`` (and its sub-accounts) moved from ``start`` to the day before ``end``."""
    return realized(entries, account, end) - realized(entries, account, start)


def transaction(entries: list[data.Directive], narration: str) -> dict[str, Decimal]:
    [txn] = [e for e in entries if isinstance(e, data.Transaction) and e.narration == narration]
    return {p.account: p.units.number for p in txn.postings}


def traced(session: Session, *refs: str) -> None:
    for ref in refs:
        result = run_cli(session.workspace.root, "trace", ref)
        assert result.exit_code == 0, result.output


def test_calendar_month_usage_is_accrued_net_of_vat(tmp_path: Path) -> None:
    """kunde's 476 calls on Oct 31 are 119.00 with VAT. The accrual of Oct 31 takes the VAT
    out: 119.00 − round(119.00 × 0.19 ÷ 1.19 = 19.00) = 100.00 of revenue and unbilled, so
    October (closed and sealed) shows exactly 100.00. The invoice of Nov 1 moves it:
    Dr receivable 119.00 / Cr unbilled 100.00 / Cr Liabilities:Tax:DE 19.00, and November's
    revenue does not move (before, October showed 119.00 and November −19.00)."""
    session = workspace(tmp_path / "ws", customers=CUSTOMERS.split("  abo:")[0])
    insert_events(session.engine, calls("kunde", ["2026-10-31"] * 476))
    session.post(through=date(2026, 10, 31))
    closed = run_cli(session.workspace.root, "close", "2026-10")
    assert closed.exit_code == 0, closed.output
    [invoice] = session.invoice(through=NOV)
    assert (invoice.total, invoice.tax.amount if invoice.tax else None) == (
        Decimal("119.00"),
        Decimal("19.00"),
    )
    assert [(line.amount, line.net) for line in invoice.lines] == [
        (Decimal("119.00"), Decimal("100.00"))
    ]
    session.post(through=date(2026, 11, 30))
    entries = loaded(session)
    assert moved(entries, "Income", OCT, NOV) == Decimal("-100.00")
    assert moved(entries, "Income", NOV, DEC) == Decimal("0")
    assert realized(entries, UNBILLED, NOV) == Decimal("100.00")
    assert transaction(entries, f"Invoice {invoice.number}") == {
        RECEIVABLE: Decimal("119.00"),
        UNBILLED: Decimal("-100.00"),
        VAT: Decimal("-19.00"),
    }
    assert moved(entries, VAT, NOV, DEC) == Decimal("-19.00")
    assert realized(entries, UNBILLED, DEC) == 0
    # the sealed October asserts the net figures, and nothing books to Income:Tax-Included
    assertions = {
        e.account: e.amount.number for e in entries if isinstance(e, data.Balance) and e.date == NOV
    }
    assert assertions["Income:Usage:Api-Calls"] == Decimal("-100.00")
    assert assertions[UNBILLED] == Decimal("100.00")
    assert not any(isinstance(e, data.Open) and e.account == "Income:Tax-Included" for e in entries)
    assert run_cli(session.workspace.root, "check").exit_code == 0
    traced(session, invoice.number, "kunde-2026-10-01")


def test_advance_fee_is_deferred_and_recognized_net_of_vat(tmp_path: Path) -> None:
    """abo's 119.00 fee for [Oct 16, Nov 16) is invoiced on Oct 16: Dr receivable 119.00 /
    Cr deferred revenue 100.00 / Cr Liabilities:Tax:DE 19.00. October recognizes
    round(100.00 × 16 ÷ 31 = 51.6129) = 51.61 (before: round(119.00 × 16 ÷ 31) = 61.42, less
    19.00 on the invoice, 42.42), deferred revenue holds 100.00 − 51.61 = 48.39 at Oct 31
    (before: 57.58, of which 9.19 VAT), and Nov 15 recognizes the 48.39 left: 0 on Nov 16."""
    session = workspace(tmp_path / "ws", customers=CUSTOMERS.replace("  kunde:", "  #kunde:"))
    [invoice] = session.invoice(through=date(2026, 10, 16))
    session.post(through=date(2026, 11, 15))
    entries = loaded(session)
    assert transaction(entries, f"Invoice {invoice.number}") == {
        "Assets:Receivables:Invoiced:Abo": Decimal("119.00"),
        DEFERRED: Decimal("-100.00"),
        VAT: Decimal("-19.00"),
    }
    assert moved(entries, "Income", OCT, NOV) == Decimal("-51.61")
    assert realized(entries, DEFERRED, NOV) == Decimal("-48.39")
    assert moved(entries, "Income", NOV, DEC) == Decimal("-48.39")
    assert realized(entries, DEFERRED, date(2026, 11, 16)) == 0
    # the deferred-revenue report schedules what the books hold: 48.39 for November
    report = build_report(session, "deferred", month="2026-10")
    assert "48.39" in report.render() and "57.58" not in report.render()
    assert run_cli(session.workspace.root, "check").exit_code == 0
    traced(session, invoice.number, "abo-2026-10-16")


PLUGIN = """
from ledger.hookspecs import hookimpl
from ledger.tax import Tax, TaxRate, standard_tax

@hookimpl
def meterbook_tax(draft):
    rate = ACCRUAL if draft.accrual else "0.16"      # the service's answer changed in between
    if rate is None:
        return None
    rates = [TaxRate(jurisdiction="DE", rate=rate, name="VAT")]
    bases = [(line.amount, rates) for line in draft.invoice.lines]
    tax = standard_tax(bases, draft.invoice.currency, inclusive=draft.settings.inclusive)
    return Tax(lines=tax.lines, inclusive=tax.inclusive, line_tax=tax.line_tax)
"""


def test_rules_changed_between_accrual_and_invoice(tmp_path: Path) -> None:
    """October accrued at 19 % (100.00) and sealed; then rules/taxes.yaml says 7 %. The invoice
    of Nov 1 is exact at the new rate: 119.00 × 0.07 ÷ 1.07 = 7.785 → 7.79 of VAT, unbilled
    119.00 − 7.79 = 111.21. Sealed October keeps its 100.00; the difference, 11.21, is the
    re-pricing of the sealed period posted on the first open day (Nov 1, the invoice's date),
    as for any change of terms. Revenue over the cycle is 100.00 + 11.21 = 111.21, the invoice's
    net total; nothing goes to Income:Tax-Included."""
    session = workspace(tmp_path / "ws", customers=CUSTOMERS.split("  abo:")[0])
    insert_events(session.engine, calls("kunde", ["2026-10-31"] * 476))
    session.post(through=date(2026, 10, 31))
    assert run_cli(session.workspace.root, "close", "2026-10").exit_code == 0
    (session.workspace.rules_dir / "taxes.yaml").write_text(TAXES.replace('"0.19"', '"0.07"'))
    session = open_session(session.workspace.root)
    [invoice] = session.invoice(through=NOV)
    entries = loaded(session)
    assert transaction(entries, f"Invoice {invoice.number}") == {
        RECEIVABLE: Decimal("119.00"),
        UNBILLED: Decimal("-111.21"),
        VAT: Decimal("-7.79"),
    }
    assert transaction(
        entries, "Re-pricing of sealed period 2026-10: same quantities, current terms"
    ) == {UNBILLED: Decimal("11.21"), "Income:Usage:Api-Calls": Decimal("-11.21")}
    assert moved(entries, "Income", OCT, NOV) == Decimal("-100.00")
    assert moved(entries, "Income", NOV, DEC) == Decimal("-11.21")
    assert -realized(entries, "Income", DEC) == invoice.total - Decimal("7.79")
    assert realized(entries, UNBILLED, DEC) == 0
    assert run_cli(session.workspace.root, "check").exit_code == 0
    traced(session, invoice.number)


@pytest.mark.parametrize(
    ("accrual", "correction", "accrued"),
    [
        # 19 % at accrual: 19.00 taken out; the invoice charges 119.00 × 0.16 ÷ 1.16 = 16.4138
        # → 16.41, so 19.00 − 16.41 = 2.59 more revenue, credited on the invoice
        ('"0.19"', Decimal("-2.59"), Decimal("19.00")),
        # no answer at accrual: accrued as priced (119.00), the invoice takes 16.41 out
        ("None", Decimal("16.41"), Decimal("0.00")),
    ],
)
def test_a_tax_service_answering_otherwise_at_the_invoice_is_corrected_on_it(
    tmp_path: Path, accrual: str, correction: Decimal, accrued: Decimal
) -> None:
    """A tax service plugin says 19 % when asked at accrual (``draft.accrual``) and 16 % when the
    invoice of Nov 1 is issued. The invoice is exact (receivable 119.00, VAT 16.41) and moves
    unbilled as accrued; the difference between the tax the accrual took out and the invoice's
    is booked on the invoice to Income:Tax-Included, with both figures as metadata. Revenue
    over the cycle is 119.00 − 16.41 = 102.59 either way."""
    plugins = {"svc": PLUGIN.replace("ACCRUAL", accrual)}
    session = workspace(
        tmp_path / "ws", customers=CUSTOMERS.split("  abo:")[0], taxes=None, plugins=plugins
    )
    insert_events(session.engine, calls("kunde", ["2026-10-31"] * 476))
    [invoice] = session.invoice(through=NOV)
    entries = loaded(session)
    assert transaction(entries, f"Invoice {invoice.number}") == {
        RECEIVABLE: Decimal("119.00"),
        UNBILLED: Decimal("-119.00") + accrued,
        "Income:Tax-Included": correction,
        VAT: Decimal("-16.41"),
    }
    [txn] = [e for e in entries if isinstance(e, data.Transaction) and e.date == NOV]
    [posting] = [p for p in txn.postings if p.account == "Income:Tax-Included"]
    assert (posting.meta["invoice_tax"], posting.meta["accrued_tax"]) == (
        Decimal("16.41"),
        accrued,
    )
    assert moved(entries, "Income", OCT, NOV) == Decimal("-119.00") + accrued
    assert realized(entries, "Income", DEC) == Decimal("-102.59")
    assert realized(entries, UNBILLED, DEC) == 0
    assert run_cli(session.workspace.root, "check").exit_code == 0
    traced(session, invoice.number)


def test_credit_notes_on_inclusive_invoices_give_back_the_tax_share(tmp_path: Path) -> None:
    """kunde's 119.00 (100.00 + 19.00 VAT) credited 59.50 on Nov 10: tax
    19.00 × 59.50 ÷ 119.00 = 9.50, contra-revenue 59.50 − 9.50 = 50.00, so the cycle's revenue
    is 100.00 − 50.00 = 50.00 and 9.50 of VAT is owed; the tax report ties to the books.

    abo's 119.00 fee credited 59.50 on its first day (line 1): 9.50 of VAT back and
    59.50 − round(19.00 × 59.50 ÷ 119.00) = 50.00 out of deferred revenue, none of it
    contra-revenue; the recognition loses 50.00 by day (25.81 in October, 24.19 to Nov 15), so
    the fee earns 100.00 − 50.00 = 50.00 and deferred revenue ends the cycle at 0."""
    session = workspace(tmp_path / "ws")
    insert_events(session.engine, calls("kunde", ["2026-10-31"] * 476))
    issued = {inv.customer: inv for inv in session.invoice(through=NOV)}
    usage = session.credit(
        issued["kunde"].number, amount="59.50", reason="outage", on=date(2026, 11, 10)
    )
    fee = session.credit(
        issued["abo"].number, amount="59.50", reason="promo", on=date(2026, 10, 16), line=1
    )
    assert (usage.tax_amount, usage.deferred) == (Decimal("9.50"), Decimal("0.00"))
    assert (fee.tax_amount, fee.deferred) == (Decimal("9.50"), Decimal("50.00"))
    session.post(through=date(2026, 11, 15))
    entries = loaded(session)
    assert transaction(entries, f"Credit note {usage.number} for {issued['kunde'].number}") == {
        "Income:Credit-Notes": Decimal("50.00"),
        VAT: Decimal("9.50"),
        RECEIVABLE: Decimal("-59.50"),
    }
    assert transaction(entries, f"Credit note {fee.number} for {issued['abo'].number}") == {
        VAT: Decimal("9.50"),
        DEFERRED: Decimal("50.00"),
        "Assets:Receivables:Invoiced:Abo": Decimal("-59.50"),
    }
    revenue = {a: -realized(entries, a, date(2026, 11, 16)) for a in ("Income:Usage", "Income")}
    assert revenue == {"Income:Usage": Decimal("100.00"), "Income": Decimal("100.00")}
    assert moved(entries, "Income:Subscriptions", OCT, NOV) == Decimal("-25.80")  # 51.61 − 25.81
    assert realized(entries, DEFERRED, date(2026, 11, 16)) == 0
    assert realized(entries, VAT, date(2026, 11, 16)) == Decimal("-19.00")  # 2 × (19.00 − 9.50)
    report = build_report(session, "tax", month="2026-11")
    ties = report.table("Tax liabilities: documents vs books").rows
    assert [(r[1], r[3], r[4]) for r in ties] == [(VAT, Decimal("9.50"), Decimal("9.50"))]
    assert run_cli(session.workspace.root, "check").exit_code == 0
    traced(session, issued["kunde"].number, issued["abo"].number)


def test_cancelling_a_tax_inclusive_fee_credits_its_tax_share(tmp_path: Path) -> None:
    """abo cancels from Oct 26 after the 119.00 fee was invoiced: 10 of 31 days are
    119.00 × 10 ÷ 31 = 38.39 now. The subscription-change credit note gives back 80.61 with
    its tax round(19.00 × 80.61 ÷ 119.00 = 12.8705) = 12.87, so 80.61 − 12.87 = 67.74 leaves
    deferred revenue; the 10 days earn 38.39 − 19.00 + 12.87 = 32.26 (their price net of the
    VAT still charged, 19.00 − 12.87 = 6.13), and deferred revenue ends at
    −100.00 + 67.74 + 32.26 = 0."""
    session = workspace(tmp_path / "ws", customers=CUSTOMERS.replace("  kunde:", "  #kunde:"))
    [invoice] = session.invoice(through=date(2026, 10, 16))
    cancelled = CUSTOMERS.replace("start: 2026-10-16}", "start: 2026-10-16, end: 2026-10-26}")
    (session.workspace.rules_dir / "customers.yaml").write_text(cancelled)
    session = open_session(session.workspace.root)
    session.post(through=date(2026, 10, 31))
    entries = loaded(session)
    [note] = [e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta]
    assert {p.account: p.units.number for p in note.postings} == {
        VAT: Decimal("12.87"),
        DEFERRED: Decimal("67.74"),
        "Assets:Receivables:Invoiced:Abo": Decimal("-80.61"),
    }
    assert moved(entries, "Income", OCT, NOV) == Decimal("-32.26")
    assert realized(entries, DEFERRED, NOV) == 0
    assert realized(entries, VAT, NOV) == Decimal("-6.13")
    assert run_cli(session.workspace.root, "check").exit_code == 0
    traced(session, invoice.number)


def test_invoices_issued_before_net_accruals_keep_their_books(tmp_path: Path) -> None:
    """An invoice issued before accruals were net of tax froze its cycle's accruals with the
    tax in (no ``net`` in its document): regenerated, its cycle still accrues 119.00 and the
    invoice still takes the 19.00 out of revenue through Income:Tax-Included (Dr 19.00), the
    books it was issued with; revenue over the cycle is 100.00 as before."""
    session = workspace(tmp_path / "ws", customers=CUSTOMERS.split("  abo:")[0])
    insert_events(session.engine, calls("kunde", ["2026-10-31"] * 476))
    [invoice] = session.invoice(through=NOV)
    old = Invoice.from_json(invoice.to_json())
    old_json = old.to_json().replace('"net":"100.00",', "")
    old_json = old_json.replace(',"net":[["api_calls","100.00"],["unbilled","100.00"]]', "")
    old_json = old_json.replace(
        ',"net":[["unbilled","100.00"],["usage_revenue:api_calls","100.00"]]', ""
    )
    assert "net" not in old_json
    with session.engine.begin() as conn:
        conn.execute(
            update(invoices_table)
            .where(invoices_table.c.number == invoice.number)
            .values(document=old_json)
        )
    [stored] = load_invoices(session.engine)
    assert stored.lines[0].net is None and not stored.accruals[0].net
    session.post(through=NOV)
    entries = loaded(session)
    assert moved(entries, "Income:Usage", OCT, NOV) == Decimal("-119.00")
    assert transaction(entries, f"Invoice {invoice.number}") == {
        RECEIVABLE: Decimal("119.00"),
        UNBILLED: Decimal("-119.00"),
        "Income:Tax-Included": Decimal("19.00"),
        VAT: Decimal("-19.00"),
    }
    assert realized(entries, "Income", date(2026, 11, 2)) == Decimal("-100.00")
    assert run_cli(session.workspace.root, "check").exit_code == 0
    traced(session, invoice.number, "kunde-2026-10-01")


# --- property: books balance, and a cycle's revenue is its invoice's net total -----------------

METERS = (
    METERS_CALLS + "  searches: {event_type: search.request, aggregation: count, unit: search}\n"
)
CUSTOMER = "customers:\n  c: {currency: EUR, subscriptions: [{plan: p, start: 2026-10-16}]}\n"
RATES = {
    "de": ['{jurisdiction: DE, rate: "0.19", name: VAT}'],
    "de_reduced": ['{jurisdiction: DE, rate: "0.07", name: VAT}'],
    "ca_sf": [
        '{jurisdiction: US-CA, rate: "0.0725", name: state}',
        '{jurisdiction: US-CA-SF, rate: "0.01375", name: district}',
    ],
}


def _events(kind: str, customer: str, days: list[str]) -> list[Event]:
    return [
        Event.build(
            source="t",
            id=f"{kind}-{i}",
            customer=customer,
            type=f"{kind}.request",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={},
        )
        for i, day in enumerate(days)
    ]


def _net(amount: Decimal, rates: list[Decimal]) -> Decimal:
    """The reference: ``amount`` less round(amount × rate ÷ (1 + all rates)) per rate."""
    combined = 1 + sum(rates, Decimal(0))
    tax = sum(
        ((amount * r / combined).quantize(Decimal("0.01")) for r in rates),  # half-even
        Decimal(0),
    )
    return amount - tax


@settings(max_examples=12, deadline=None)
@given(
    api=st.tuples(st.integers(0, 400), st.integers(0, 400)),
    searches=st.tuples(st.integers(0, 300), st.integers(0, 300)),
    prices=st.tuples(st.sampled_from(["0.25", "0.13", "0.07"]), st.sampled_from(["0.33", "0.05"])),
    minimum=st.sampled_from([None, "80.00"]),
    fee=st.sampled_from([None, "19.99"]),
    taxed=st.sampled_from(sorted(RATES)),
    rounding=st.sampled_from(["line", "invoice"]),
)
def test_books_balance_and_a_cycles_revenue_is_its_invoices_net_total(
    api: tuple[int, int],
    searches: tuple[int, int],
    prices: tuple[str, str],
    minimum: str | None,
    fee: str | None,
    taxed: str,
    rounding: str,
) -> None:
    """Any usage on two meters over the cycle [Oct 16, Nov 16) (accrued Oct 31 and Nov 15), a
    commitment minimum and an arrears fee or not, any of three rate sets, either rounding:
    every transaction balances; October's revenue is each part's price through Oct 31 net of
    its tax (the reference :func:`_net`); the invoice of Nov 16 leaves unbilled at 0; and the
    revenue over the cycle, Income:Tax-Included's correction included, is the invoice's total
    less its tax. Rounded per line, the invoice's tax is exactly what the accruals took out
    (no correction); per invoice, they differ by at most a cent per rate and line."""
    rates = [Decimal(r.split('rate: "')[1].split('"')[0]) for r in RATES[taxed]]
    extra = (f'    minimum_commitment: "{minimum}"\n' if minimum else "") + (
        f'    base_fee: {{amount: "{fee}", timing: arrears}}\n' if fee else ""
    )
    plans = (
        "plans:\n  p:\n    currency: EUR\n"
        + extra
        + f'    charges:\n      - {{meter: api_calls, model: unit, unit_price: "{prices[0]}"}}\n'
        + f'      - {{meter: searches, model: unit, unit_price: "{prices[1]}"}}\n'
    )
    named = {f"r{i}": text for i, text in enumerate(RATES[taxed])}
    taxes = (
        "taxes:\n  rates:\n"
        + "".join(f"    {name}: {text}\n" for name, text in named.items())
        + f"  default: {{rates: [{', '.join(named)}]}}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        session = workspace(
            Path(tmp) / "ws",
            customers=CUSTOMER,
            meters=METERS,
            plans=plans,
            taxes=taxes,
            config=CONFIG + f'rounding = "{rounding}"\n',
        )
        days = ["2026-10-20"] * api[0] + ["2026-11-10"] * api[1]
        found = ["2026-10-25"] * searches[0] + ["2026-11-12"] * searches[1]
        insert_events(session.engine, _events("api", "c", days) + _events("search", "c", found))
        invoices = session.invoice(through=date(2026, 11, 16))
        entries = loaded(session)
        for entry in entries:
            if isinstance(entry, data.Transaction):
                assert sum(p.units.number for p in entry.postings) == 0, entry
        october = _net(api[0] * Decimal(prices[0]), rates) + _net(
            searches[0] * Decimal(prices[1]), rates
        )
        if fee:  # an arrears fee is earned by day: 16 of 31 days by Oct 31
            october += _net((Decimal(fee) * 16 / 31).quantize(Decimal("0.01")), rates)
        assert -moved(entries, "Income", OCT, NOV) == october
        if not invoices:  # nothing used, no commitment, no fee: nothing billed
            assert realized(entries, "Income", DEC) == 0
            return
        [invoice] = invoices
        assert invoice.tax is not None and invoice.tax.inclusive
        assert realized(entries, "Assets:Receivables:Unbilled", DEC) == 0
        assert -realized(entries, "Income", DEC) == invoice.total - invoice.tax.amount
        correction = realized(entries, "Income:Tax-Included", DEC)
        if rounding == "line":
            assert correction == 0
        else:
            assert abs(correction) <= Decimal("0.01") * len(invoice.lines) * len(rates)
