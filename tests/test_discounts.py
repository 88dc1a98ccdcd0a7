"""Discounts and coupons (``discounts:`` of a customer), hand-computed through rating, posting,
invoicing, credit notes, close and trace, with the books read back through Beancount's loader.

acme: plan ``pro`` (30.00 in advance, 0.10 per API call), cycles from the 15th;
``launch`` 20 % off api_calls for 3 cycles, ``loyalty`` 5.00 off the whole invoice forever.

- cycle 1 ``[Sep 15, Oct 15)`` (30 days): 600 calls on Sep 20, 400 on Oct 10.
  Sep 15 invoice: fee 30.00, loyalty −5.00 (taken from the fee, billed first) = 25.00,
  Dr receivable / Cr deferred 25.00.
  Sep 30 accrual: usage 60.00, launch round(0.20 × 60.00) = 12.00, unbilled 48.00;
  fee recognized round(30.00 × 16/30) = 16.00, its discount round(5.00 × 16/30) = 2.67;
  Income:Discounts 12.00 + 2.67 = 14.67, deferred +16.00 − 2.67 = +13.33.
  Oct 14 accrual: usage 100.00 (+40.00), launch 20.00 (+8.00), fee 30.00 (+14.00), its
  discount 5.00 (+2.33): Income:Discounts +10.33; deferred −25 + 13.33 + 11.67 = 0.
  Oct 15 invoice: 100.00 − 20.00 + 30.00 − 5.00 = 105.00.
- cycles 2 and 3: 100 calls each → 10.00 − 2.00 + next fee 30.00 − 5.00 = 33.00.
- cycle 4 ``[Dec 15, Jan 15)``: launch is used up (3 cycles): 10.00 + 30.00 − 5.00 = 35.00.

beta: plan ``small`` (0.10 per call, calendar months), ``flat5`` 5.00 off forever:
September 30 calls = 3.00, the discount capped at 3.00 (invoice of Oct 1: 0.00);
October 100 calls = 10.00 − 5.00 = 5.00 (Nov 1).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data

from ledger.books import load_books
from ledger.errors import RulesError
from ledger.facts.invoices import Invoice
from ledger.rules import load_rules
from ledger.session import Session
from tests.support.workspaces import (
    METERS_CALLS,
    balance,
    book_hashes,
    calls,
    insert_events,
    module_scope,
    open_session,
    run_cli,
    write_workspace,
)

D = Decimal

PLANS = """\
plans:
  pro:
    currency: USD
    base_fee: {amount: "30.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
  small:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
"""
ACME = """\
  acme:
    currency: USD
    subscriptions: [{plan: pro, start: 2026-09-15}]
    discounts:
      - {id: launch, percent: "20", charges: [api_calls], cycles: 3, start: 2026-09-15}
      - {id: loyalty, amount: "5.00", start: 2026-09-15}
"""
BETA = """\
  beta:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: small, start: 2026-09-01}]
    discounts:
      - {id: flat5, amount: "5.00", start: 2026-09-01}
"""
CUSTOMERS = "customers:\n" + ACME + BETA


def _events() -> list:
    return [
        *calls("acme", ["2026-09-20"] * 600 + ["2026-10-10"] * 400, "c1-"),
        *calls("acme", ["2026-10-20"] * 100, "c2-"),
        *calls("acme", ["2026-11-20"] * 100, "c3-"),
        *calls("acme", ["2026-12-20"] * 100, "c4-"),
        *calls("beta", ["2026-09-10"] * 30, "sep-"),
        *calls("beta", ["2026-10-10"] * 100, "oct-"),
    ]


Books = tuple[Session, list[Invoice], list[data.Directive]]


@pytest.fixture(scope=module_scope)
def books(tmp_path_factory: pytest.TempPathFactory) -> Books:
    root = write_workspace(
        tmp_path_factory.mktemp("discounts") / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
    )
    session = open_session(root, today=date(2027, 1, 20))
    insert_events(session.engine, _events())
    issued = session.invoice(through=date(2026, 10, 15))
    # 10 % of the usage line's net 80.00
    session.credit("INV-2026-000003", amount="8.00", reason="outage", on=date(2026, 10, 20), line=1)
    issued += session.invoice(through=date(2027, 1, 15))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return session, issued, entries


def _invoice(issued: list[Invoice], customer: str, day: date) -> Invoice:
    (found,) = [inv for inv in issued if inv.customer == customer and inv.date == day]
    return found


def _lines(inv: Invoice) -> list[tuple[str, str, Decimal]]:
    return [(line.kind, line.description, line.amount) for line in inv.lines]


def test_twenty_percent_on_usage_for_three_cycles(books: Books) -> None:
    _, issued, _ = books
    assert _lines(_invoice(issued, "acme", date(2026, 10, 15))) == [
        ("usage", "api_calls (unit)", D("100.00")),
        ("discount", "launch: 20% off", D("-20.00")),
        ("base_fee", "pro base fee 2026-10-15/2026-11-15 (in advance)", D("30.00")),
        ("discount", "loyalty: 5.00 off", D("-5.00")),
    ]
    totals = {inv.date: inv.total for inv in issued if inv.customer == "acme"}
    assert totals == {
        date(2026, 9, 15): D("25.00"),
        date(2026, 10, 15): D("105.00"),
        date(2026, 11, 15): D("33.00"),
        date(2026, 12, 15): D("33.00"),
        date(2027, 1, 15): D("35.00"),  # the fourth cycle: launch used up
    }
    fourth = _invoice(issued, "acme", date(2027, 1, 15))
    assert [ln.description for ln in fourth.lines if ln.kind == "discount"] == ["loyalty: 5.00 off"]


def test_usage_discount_accrues_with_the_usage(books: Books) -> None:
    _, _, entries = books
    sep = date(2026, 10, 1)
    # 60.00 of usage less 12.00 is unbilled; 12.00 + 2.67 (the fee's) of discounts in September
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", sep) == D("48.00")
    assert balance(entries, "Income:Usage:Api-Calls", sep) == D("-63.00")  # acme 60 + beta 3
    assert balance(entries, "Income:Discounts", sep) == D("17.67")  # acme 14.67 + beta 3.00
    assert balance(entries, "Income:Subscriptions:Pro", sep) == D("-16.00")
    # after Oct 15's invoice the cycle's unbilled is 0: the invoice settled the net 80.00
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", date(2026, 10, 16)) == 0


def test_advance_fee_discount_is_recognized_ratably_across_the_month_end(books: Books) -> None:
    _, issued, entries = books
    first = _invoice(issued, "acme", date(2026, 9, 15))
    assert [(ln.kind, ln.account, ln.amount) for ln in first.lines] == [
        ("base_fee", "deferred", D("30.00")),
        ("discount", "deferred", D("-5.00")),
    ]
    deferred = "Liabilities:Deferred-Revenue:Acme"
    # the invoice booked 25.00; by Sep 30: 16.00 − 2.67 recognized, 11.67 left
    assert balance(entries, deferred, date(2026, 9, 16)) == D("-25.00")
    assert balance(entries, deferred, date(2026, 10, 1)) == D("-11.67")
    # Oct 14, the cycle's last day: deferred revenue is back to 0 before the next fee
    assert balance(entries, deferred, date(2026, 10, 15)) == 0
    (sep30,) = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and e.date == date(2026, 9, 30)
        and "acme-2026-09-15" in e.links
    ]
    posted = {p.account: p.units.number for p in sep30.postings}
    assert posted["Income:Discounts"] == D("14.67")
    assert posted[deferred] == D("13.33")


def test_fixed_amount_is_capped_at_what_it_discounts(books: Books) -> None:
    _, issued, entries = books
    october = _invoice(issued, "beta", date(2026, 10, 1))
    assert _lines(october) == [
        ("usage", "api_calls (unit)", D("3.00")),
        ("discount", "flat5: 5.00 off", D("-3.00")),
    ]
    assert october.total == 0
    assert _invoice(issued, "beta", date(2026, 11, 1)).total == D("5.00")
    assert balance(entries, "Assets:Receivables:Invoiced:Beta", date(2026, 11, 2)) == D("5.00")


def test_credit_note_reverses_gross_and_discount_in_proportion(books: Books) -> None:
    """8.00 credited on the usage line (gross 100.00, discount 20.00, net 80.00): the discount
    reversed is 8.00 × 20.00 ÷ 80.00 = 2.00, the gross 10.00; the receivable falls by 8.00."""
    session, _, entries = books
    (note,) = [
        e
        for e in entries
        if isinstance(e, data.Transaction) and (e.meta or {}).get("credit_note") == "CN-2026-000001"
    ]
    assert {p.account: p.units.number for p in note.postings} == {
        "Income:Credit-Notes": D("10.00"),
        "Income:Discounts": D("-2.00"),
        "Assets:Receivables:Invoiced:Acme": D("-8.00"),
    }
    # the line can be credited 72.00 more (its net 80.00 less 8.00), not its gross
    from ledger.credit_notes import creditable
    from ledger.facts.credit_notes import load_credit_notes
    from ledger.facts.invoices import load_invoices

    invoice = next(i for i in load_invoices(session.engine) if i.number == "INV-2026-000003")
    assert creditable(invoice, load_credit_notes(session.engine), 1) == D("72.00")
    html = (session.workspace.books_dir / "documents" / "CN-2026-000001.html").read_text()
    assert "2.00 USD of discounts given back with 10.00 USD of gross revenue" in " ".join(
        html.split()
    )


def test_a_discount_line_cannot_be_credited_itself(books: Books) -> None:
    session, _, _ = books
    from ledger.errors import BadInput

    with pytest.raises(BadInput, match="line 2 of INV-2026-000003 is a discount"):
        session.credit("INV-2026-000003", amount="1.00", reason="x", on=date(2026, 10, 21), line=2)


def test_trace_verifies_a_discounted_invoice(books: Books) -> None:
    session, _, _ = books
    root = session.workspace.root
    for number in ("INV-2026-000001", "INV-2026-000003"):
        result = run_cli(root, "trace", number)
        assert result.exit_code == 0, result.output
        assert "verified: the invoice, its document and the books equal" in result.output
    assert "discounts" in run_cli(root, "trace", "INV-2026-000003").output


def test_statement_and_document_show_the_discounts(books: Books) -> None:
    session, _, _ = books
    html = (session.workspace.books_dir / "documents" / "INV-2026-000003.html").read_text()
    assert "Discount launch: 20% off" in html and "Discount loyalty: 5.00 off" in html
    from ledger.cycles import cycle_at
    from ledger.statements import build_statement

    cycle = cycle_at(session.rules.customers["acme"], session.rules.plans, date(2026, 9, 15))
    assert cycle is not None
    statement = build_statement(session, cycle, today=date(2026, 10, 20))
    assert [(ln.kind, ln.amount) for ln in statement.lines] == [
        ("base_fee", D("30.00")),
        ("discount", D("-5.00")),
        ("usage", D("100.00")),
        ("discount", D("-20.00")),
    ]
    # finished: the projection is the actual total, net of both discounts
    assert statement.projection.discount == D("25.00")
    assert statement.projection.total == statement.total == D("105.00")


def test_forecast_takes_the_discounts_off(books: Books) -> None:
    """The forecast after December: acme's cycle running on Jan 1 is [Dec 15, Jan 15), past
    launch's three cycles, so only loyalty's 5.00 comes off (the 30.00 fee is there to take it
    from); beta's trend (30, 100, 0, 0 calls) forecasts no usage: nothing to take 5.00 from."""
    session, _, _ = books
    from ledger.reports.forecast import forecast
    from ledger.reports.sources import Sources

    report = forecast(Sources(session), "2026-12")
    rows = report.tables[1].rows
    off = {(r[0], r[1], r[3]): r[5] for r in rows if str(r[3]).startswith("(discount")}
    assert off[("acme", "2027-01", "(discount loyalty: 5.00 off)")] == D("-5.00")
    assert not any(key[0] == "beta" for key in off)
    (acme,) = [r for r in report.tables[0].rows if r[0] == "acme"]
    usage = {(r[1], r[3]): r[5] for r in rows if r[0] == "acme"}
    assert acme[3] == usage[("2027-01", "api_calls")] + D("30.00") - D("5.00")
    assert not any(key[2].startswith("(discount launch") for key in off)


def test_close_of_a_month_with_discounts(tmp_path: Path) -> None:
    """September closed: its assertions hold the discounts (acme 14.67 + beta 3.00) and
    ``check`` passes."""
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)
    session = open_session(root)
    insert_events(session.engine, _events()[:600] + _events()[-130:-100])
    session.post(date(2026, 9, 30))
    result = run_cli(root, "close", "2026-09")
    assert result.exit_code == 0, result.output
    text = " ".join((root / "books" / "2026" / "2026-09.close.beancount").read_text().split())
    assert "2026-10-01 balance Income:Discounts 17.67 USD" in text
    assert "2026-10-01 balance Liabilities:Deferred-Revenue:Acme -11.67 USD" in text
    assert run_cli(root, "check").exit_code == 0


@pytest.mark.parametrize(
    ("discount", "message"),
    [
        ('{id: x, percent: "0", start: 2026-09-01}', "percent: a percent is above 0"),
        ('{id: x, percent: "120", start: 2026-09-01}', "percent: a percent is above 0"),
        ('{id: x, amount: "5.005", start: 2026-09-01}', "amount: 5.005 has more decimal places"),
        ('{id: x, amount: "-1", start: 2026-09-01}', "amount: a discount amount is above 0"),
        ("{id: x, start: 2026-09-01}", "discounts[0]: give either percent or amount"),
        (
            '{id: x, percent: "10", amount: "1", start: 2026-09-01}',
            "discounts[0]: give either percent or amount",
        ),
        (
            '{id: x, percent: "10", charges: [storage], start: 2026-09-01}',
            "charges[0]: 'storage' is no charge of the customer's plans",
        ),
        ('{id: x, percent: "10", cycles: 0, start: 2026-09-01}', "cycles: Input should be"),
        ('{id: x, percent: "10"}', "discounts[0].start: required key is missing"),
    ],
)
def test_bad_discounts_are_refused_with_file_and_key(
    tmp_path: Path, discount: str, message: str
) -> None:
    customers = (
        "customers:\n  c:\n    currency: USD\n"
        "    subscriptions: [{plan: small, start: 2026-09-01}]\n"
        f"    discounts:\n      - {discount}\n"
    )
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=customers)
    with pytest.raises(RulesError) as caught:
        load_rules(root / "rules")
    assert str(caught.value).startswith("rules/customers.yaml:6: customers.c.discounts[0]")
    assert message in str(caught.value)
    result = run_cli(root, "rate")
    assert result.exit_code == 2 and message in result.output


def test_a_billed_fee_keeps_its_discounts(tmp_path: Path) -> None:
    """acme's Sep 15 invoice billed the fee 30.00 with loyalty's 5.00 off; raising loyalty to
    6.00 from the same start would change that billed fee's discount: refused, nothing written.
    Starting the new terms with the next cycle (Oct 15) is accepted."""
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers="customers:\n" + ACME
    )
    open_session(root).invoice(through=date(2026, 9, 15))
    rules = root / "rules" / "customers.yaml"
    rules.write_text(rules.read_text().replace('amount: "5.00"', 'amount: "6.00"'))
    before = book_hashes(root / "books")
    result = run_cli(root, "post", "--through", "2026-09-30")
    assert result.exit_code == 2
    assert (
        "customers.acme.discounts: the advance fee of cycle ^acme-2026-09-15 "
        "(2026-09-15/2026-10-15) was billed by INV-2026-000001 with discounts "
        "loyalty: 5.00 off -5.00, now loyalty: 6.00 off -6.00: a billed fee's discounts are "
        "not changed; start the discount after 2026-09-15. Nothing was written"
    ) in result.output
    assert book_hashes(root / "books") == before
    rules.write_text(
        rules.read_text().replace(
            '{id: loyalty, amount: "6.00", start: 2026-09-15}',
            '{id: loyalty, amount: "5.00", start: 2026-09-15, cycles: 1}\n'
            '      - {id: loyal2, amount: "6.00", start: 2026-10-15}',
        )
    )
    assert run_cli(root, "post", "--through", "2026-09-30").exit_code == 0


def test_tax_is_charged_on_the_discounted_amount(tmp_path: Path) -> None:
    """kunde (19 % VAT) with 20 % off its usage: 1,000 calls = 100.00, discount −20.00, so
    the VAT base is 80.00 and the VAT round(80.00 × 0.19) = 15.20; total 95.20."""
    from tests.support.tax import CONFIG

    customers = (
        "customers:\n  kunde:\n    currency: USD\n    billing_anchor: calendar\n"
        "    subscriptions: [{plan: small, start: 2026-09-01}]\n"
        '    discounts: [{id: promo, percent: "20", start: 2026-09-01}]\n'
    )
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=customers, config=CONFIG
    )
    (root / "rules" / "taxes.yaml").write_text(
        'taxes:\n  rates:\n    de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}\n'
        "  customers:\n    kunde: {rates: [de_vat], tax_id: DE123456789}\n"
    )
    session = open_session(root, today=date(2026, 10, 2))
    insert_events(session.engine, calls("kunde", ["2026-09-10"] * 1000))
    (invoice,) = session.invoice(through=date(2026, 10, 1))
    assert invoice.subtotal == D("80.00")
    assert invoice.tax is not None
    assert [(t.base, t.amount) for t in invoice.tax.lines] == [(D("80.00"), D("15.20"))]
    assert invoice.total == D("95.20")
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    assert balance(entries, "Liabilities:Tax:DE", date(2026, 10, 2)) == D("-15.20")


def test_discounts_per_plan(tmp_path: Path) -> None:
    """``accounts.yaml``'s ``discounts: Income:Discounts:{plan}``: the accruals and a credit
    note's reversal both book plan pro's discounts to Income:Discounts:Pro (September: 14.67;
    the note on Oct 20 gives back 2.00 of the Oct 15 invoice's 20.00)."""
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers="customers:\n" + ACME
    )
    (root / "rules" / "accounts.yaml").write_text(
        "accounts:\n  discounts: Income:Discounts:{plan}\n"
    )
    session = open_session(root, today=date(2026, 10, 21))
    insert_events(session.engine, _events()[:1000])
    session.invoice(through=date(2026, 10, 15))
    session.credit("INV-2026-000002", amount="8.00", reason="outage", on=date(2026, 10, 20), line=1)
    session.post(date(2026, 10, 20))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    assert balance(entries, "Income:Discounts:Pro", date(2026, 10, 1)) == D("14.67")
    assert balance(entries, "Income:Discounts:Pro", date(2026, 10, 21)) == D("23.00")  # 25 − 2
    assert balance(entries, "Income:Discounts", date(2026, 10, 21)) == 0


def test_a_taxed_discounted_line_is_credited_net_with_its_tax(tmp_path: Path) -> None:
    """kunde's invoice: usage 100.00, promo −20.00, VAT 19 % on 80.00 = 15.20, total 95.20.
    Line 1 can be credited its net with its tax, 80.00 + 15.20 = 95.20 (not 119.00); a note of
    9.52 gives back 1.52 of VAT and credits 8.00 of the line: 10.00 gross, 2.00 of discount."""
    from tests.support.tax import CONFIG

    customers = (
        "customers:\n  kunde:\n    currency: USD\n    billing_anchor: calendar\n"
        "    subscriptions: [{plan: small, start: 2026-09-01}]\n"
        '    discounts: [{id: promo, percent: "20", start: 2026-09-01}]\n'
    )
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=customers, config=CONFIG
    )
    (root / "rules" / "taxes.yaml").write_text(
        'taxes:\n  rates:\n    de_vat: {jurisdiction: DE, rate: "0.19", name: VAT}\n'
        "  customers:\n    kunde: {rates: [de_vat], tax_id: DE123456789}\n"
    )
    session = open_session(root, today=date(2026, 10, 2))
    insert_events(session.engine, calls("kunde", ["2026-09-10"] * 1000))
    (invoice,) = session.invoice(through=date(2026, 10, 1))
    from ledger.credit_notes import creditable

    assert creditable(invoice, [], 1) == D("95.20")
    note = session.credit(invoice.number, amount="9.52", reason="x", on=date(2026, 10, 2), line=1)
    assert note.tax_amount == D("1.52")
    ((part),) = note.parts
    assert (part.amount, part.discount) == (D("8.00"), D("2.00"))


def test_cycles_are_counted_per_subscription() -> None:
    """``cycles: 2`` from Oct 1 on a customer with a main plan (monthly from Sep 1) and an
    add-on (``id: seats``, from Oct 15): the main plan's Oct and Nov cycles and the add-on's
    Oct 15 and Nov 15 cycles; not the main plan's September (before the start) nor December."""
    from ledger.cycles import Cycle
    from ledger.discounts import cycle_discounts
    from ledger.rules import Customer, Discount

    def cycle(series: str, start: date, end: date) -> Cycle:
        return Cycle("c", "p", start, end, start, end, 0, False, False, series=series)

    main = [cycle("", date(2026, m, 1), date(2026, m + 1, 1)) for m in (9, 10, 11)]
    seats = [cycle("seats", date(2026, m, 15), date(2026, m + 1, 15)) for m in (10, 11)]
    seats.append(cycle("seats", date(2026, 12, 15), date(2027, 1, 15)))
    dec = cycle("", date(2026, 12, 1), date(2027, 1, 1))
    two = Discount(id="two", percent=D(10), cycles=2, start=date(2026, 10, 1))
    customer = Customer(id="c", currency="USD", discounts=(two,))
    found = cycle_discounts(customer, [*main, dec, *seats])
    assert sorted(found) == [
        "c-2026-10-01",
        "c-2026-11-01",
        "c/seats-2026-10-15",
        "c/seats-2026-11-15",
    ]


def test_a_discount_takes_off_the_parts_it_names_and_a_meter_named_like_a_part() -> None:
    """``charges: [base_fee]`` takes off the base fee, not api_calls' usage. A meter may be
    named like a part (``minimum_commitment`` is a valid meter id): the name then takes off
    both, the commitment and that meter's usage (``applies``' second test: kills ``or`` for
    ``and``, ``not in``, ``!= "usage"``, a misspelt ``"usage"`` and a partition on ``XX:XX``)."""
    from ledger.discounts import applies
    from ledger.rules import Discount

    fee = Discount(id="fee", amount=D("5.00"), charges=("base_fee",), start=date(2026, 9, 1))
    assert applies(fee, "base_fee")
    assert not applies(fee, "usage:api_calls")
    named = Discount(
        id="min", percent=D(10), charges=("minimum_commitment",), start=date(2026, 9, 1)
    )
    assert applies(named, "commitment")
    assert applies(named, "usage:minimum_commitment")
    assert not applies(named, "usage:api_calls")


def test_discounts_in_order_each_on_what_the_earlier_left() -> None:
    """A cycle's parts at a point: a 3.00 fee in advance (1/3 earned), usage a 0.02, usage b
    0.80; ``launch`` 20 % off, then ``loyalty`` 5.00 off, both on everything:

    - launch: fee round(0.20 × 3.00) = 0.60 (earned round(0.60 / 3) = 0.20), 2.40 left; a:
      round(0.004) = 0.00, no line, and b still gets round(0.20 × 0.80) = 0.16, 0.64 left;
    - loyalty: the fee's 2.40 (earned 0.80), 2.60 of the coupon left: a's 0.02, 2.58 left:
      b's 0.64; the last 1.94 is lost.

    In yen: 100 off a 3,100 fee with 15/31 earned recognizes round(48.39) = 48 yen. Kills
    ``left <= 1`` (b skipped), ``break`` at a's 0.00, the left assigned or added back (the
    coupon would take 0.60 or 3.60 off the fee), the coupon emptied after its first part and
    the earned share rounded to cents."""
    from fractions import Fraction

    from ledger.discounts import DiscountRating, Part, discount_parts
    from ledger.rules import Discount

    start = date(2026, 9, 1)
    launch = Discount(id="launch", percent=D(20), start=start)
    loyalty = Discount(id="loyalty", amount=D("5.00"), start=start)
    parts = [
        Part("base_fee", "deferred", D("3.00"), Fraction(1, 3)),
        Part("usage:a", "unbilled", D("0.02")),
        Part("usage:b", "unbilled", D("0.80")),
    ]
    assert discount_parts((launch, loyalty), parts, "USD") == (
        DiscountRating("launch: 20% off", "base_fee", "deferred", D("0.60"), D("0.20")),
        DiscountRating("launch: 20% off", "usage:b", "unbilled", D("0.16"), D("0.16")),
        DiscountRating("loyalty: 5.00 off", "base_fee", "deferred", D("2.40"), D("0.80")),
        DiscountRating("loyalty: 5.00 off", "usage:a", "unbilled", D("0.02"), D("0.02")),
        DiscountRating("loyalty: 5.00 off", "usage:b", "unbilled", D("0.64"), D("0.64")),
    )
    yen = Discount(id="yen", amount=D(100), start=start)
    fee = Part("base_fee", "deferred", D(3100), Fraction(15, 31))
    (found,) = discount_parts((yen,), [fee], "JPY")
    assert (found.amount, str(found.recognized)) == (D(100), "48")


def test_cycles_are_counted_in_start_order_across_a_plan_change() -> None:
    """``cycles: 1`` from Sep 1 on a main subscription that changes from ``pro`` (September) to
    ``basic`` (October): September's cycle gets it, not October's, although ``basic`` sorts
    before ``pro`` (kills the cycles sorted as ``Cycle`` orders them, plan before start)."""
    from ledger.cycles import Cycle
    from ledger.discounts import cycle_discounts
    from ledger.rules import Customer, Discount

    sep = Cycle(
        "c",
        "pro",
        date(2026, 9, 1),
        date(2026, 10, 1),
        date(2026, 9, 1),
        date(2026, 10, 1),
        0,
        True,
        True,
    )
    oct_ = Cycle(
        "c",
        "basic",
        date(2026, 10, 1),
        date(2026, 11, 1),
        date(2026, 10, 1),
        date(2026, 11, 1),
        1,
        True,
        False,
    )
    once = Discount(id="once", percent=D(10), cycles=1, start=date(2026, 9, 1))
    customer = Customer(id="c", currency="USD", discounts=(once,))
    assert cycle_discounts(customer, [sep, oct_]) == {"c-2026-09-01": (once,)}


def test_a_cycle_before_a_discounts_start_has_none() -> None:
    """c (plan p, calendar months from Sep 1) has 10 % off from Oct 1: its September cycle has
    no discount, ``()`` (kills the ``None`` default and the missing one: the callers iterate
    it), its October cycle has it."""
    from ledger.cycles import cycles_for
    from ledger.discounts import discounts_on
    from ledger.rules import Customer, Discount, Plan, Subscription

    plans = {"p": Plan(id="p", currency="USD")}
    later = Discount(id="later", percent=D(10), start=date(2026, 10, 1))
    customer = Customer(
        id="c",
        currency="USD",
        billing_anchor="calendar",
        subscriptions=(Subscription(plan="p", start=date(2026, 9, 1)),),
        discounts=(later,),
    )
    sep, oct_ = cycles_for(customer, plans, until=date(2026, 10, 2))
    assert discounts_on(customer, plans, sep) == ()
    assert discounts_on(customer, plans, oct_) == (later,)
