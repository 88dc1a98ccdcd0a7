"""The ``flat`` fee is ratable: billed and recognized by day like the base fee.

Worked examples, computed by hand in the comments, through posting, invoicing and
Beancount's loader:

- a quarter ``[Oct 1, Jan 1)`` (92 days) with flat 92.00 accrues 31.00 on Oct 31,
  30.00 on Nov 30 and 31.00 on Dec 31, and the Jan 1 invoice bills 92.00, with or
  without usage;
- the same quarter ended on Dec 1 (61 of 92 days) bills 500.00 × 61/92 = 331.52;
- a monthly cycle cut by a plan change on Nov 11 (10 of 30 days) bills 30.00 → 10.00,
  exactly as the same plan's base fee is prorated.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from beancount.core import data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.books import load_books
from ledger.events import Event, parse_time
from ledger.facts.invoices import Invoice, InvoiceLine
from ledger.plugins.flat import FlatPricing
from ledger.pricing import Usage
from ledger.rating import is_ratable
from ledger.session import Session
from tests.support.workspaces import (
    METERS_CALLS_TOKENS,
    balance,
    calls,
    insert_events,
    module_scope,
    open_session,
    write_workspace,
)

D = Decimal

PLANS = """\
plans:
  q:
    currency: USD
    cycle: quarterly
    charges:
      - {meter: tokens, model: flat, amount: "92.00"}
  big:
    currency: USD
    cycle: quarterly
    charges:
      - {meter: tokens, model: flat, amount: "500.00"}
  m:
    currency: USD
    base_fee: {amount: "30.00", timing: arrears}
    charges:
      - {meter: api_calls, model: flat, amount: "30.00"}
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
"""
CUSTOMERS = """\
customers:
  zero: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: q, start: 2026-10-01}]}
  busy: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: q, start: 2026-10-01}]}
  short:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: big, start: 2026-10-01, end: 2026-12-01}]
  chg:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: m, start: 2026-11-01}, {plan: u, start: 2026-11-11}]
"""


def _tokens(customer: str, items: list[tuple[str, int]]) -> list[Event]:
    return [
        Event.build(
            source="t",
            id=f"{customer}-tok{i}",
            customer=customer,
            type="llm.completion",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={"tokens": n},
        )
        for i, (day, n) in enumerate(items)
    ]


def accruals(entries: list[data.Directive], link: str, account: str) -> list[tuple[date, Decimal]]:
    """``(date, amount)`` posted to ``account`` by the usage accruals of the cycle ``link``."""
    return [
        (e.date, p.units.number)
        for e in entries
        if isinstance(e, data.Transaction)
        and link in e.links
        and e.narration.startswith("Usage accrual")
        for p in e.postings
        if p.account == account
    ]


def usage_line(invoices: list[Invoice], customer: str, link: str) -> InvoiceLine:
    (line,) = [
        ln
        for inv in invoices
        if inv.customer == customer
        for ln in inv.lines
        if ln.kind == "usage" and ln.link == link
    ]
    return line


@pytest.fixture(scope=module_scope)
def books(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Session, list[Invoice], list[data.Directive]]:
    session = open_session(
        write_workspace(
            tmp_path_factory.mktemp("flat") / "ws",
            meters=METERS_CALLS_TOKENS,
            plans=PLANS,
            customers=CUSTOMERS,
        ),
        today=date(2027, 1, 1),  # invoiced through Jan 1, 2027
    )
    insert_events(
        session.engine,
        [
            *_tokens("busy", [("2026-10-05", 1000), ("2026-11-20", 5_000_000), ("2026-12-30", 7)]),
            *calls("chg", ["2026-11-02", "2026-11-12"]),
        ],
    )
    issued = session.invoice(through=date(2027, 1, 1))
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    return session, issued, entries


def test_flat_is_ratable_and_final() -> None:
    model = FlatPricing()
    terms = model.parse({"amount": "92.00"})
    assert is_ratable(model) and model.price_is_final(terms)
    # the model prices a full cycle whatever the usage; the engine prorates and recognizes it
    assert model.price(terms, Usage(D(12_000_000))).amount == D("92.00")


def test_quarter_recognized_by_day_at_each_month_end(
    books: tuple[Session, list[Invoice], list[data.Directive]],
) -> None:
    _, issued, entries = books
    # 92.00 over 92 days is 1.00 a day: Oct 31 → 31 days 31.00; Nov 30 → 61 days 61.00 (+30.00);
    # Dec 31 → 92 days 92.00 (+31.00). Zero usage and 5,001,007 tokens accrue the same.
    for customer in ("zero", "busy"):
        link = f"{customer}-2026-10-01"
        assert accruals(entries, link, "Income:Usage:Tokens") == [
            (date(2026, 10, 31), D("-31.00")),
            (date(2026, 11, 30), D("-30.00")),
            (date(2026, 12, 31), D("-31.00")),
        ]
        unbilled = f"Assets:Receivables:Unbilled:{customer.capitalize()}"
        assert accruals(entries, link, unbilled) == [
            (date(2026, 10, 31), D("31.00")),
            (date(2026, 11, 30), D("30.00")),
            (date(2026, 12, 31), D("31.00")),
        ]
        # the Jan 1 invoice bills the 92.00 the accruals sum to and clears unbilled
        line = usage_line(issued, customer, link)
        assert (line.amount, line.account) == (D("92.00"), "unbilled")
        assert [(t.description, t.quantity, t.unit_price, t.amount) for t in line.tiers] == [
            ("flat fee per cycle", 1, D("92.00"), D("92.00"))
        ]
        assert balance(entries, unbilled, date(2027, 1, 1)) == D("92.00")
        assert balance(entries, unbilled, date(2027, 1, 2)) == 0
        assert balance(
            entries, f"Assets:Receivables:Invoiced:{customer.capitalize()}", date(2027, 1, 2)
        ) == D("92.00")


def test_cycle_to_date_shows_the_share_earned(
    books: tuple[Session, list[Invoice], list[data.Directive]],
) -> None:
    session, _, _ = books
    # through Nov 15: 46 of 92 days → 92.00 × 46/92 = 46.00,
    # a line saying so (no unit price: it is a share)
    (rated,) = [
        r
        for r in session.rate(through=date(2026, 11, 15), customers={"zero"}).latest()
        if r.cycle.start == date(2026, 10, 1)
    ]
    (charge,) = rated.charges
    assert charge.amount == D("46.00") and charge.final
    assert [(t.description, t.unit_price, t.amount) for t in charge.lines] == [
        ("flat fee per cycle, 46 of 92 days to date", None, D("46.00"))
    ]


def test_shortened_quarter_prorated_by_days(
    books: tuple[Session, list[Invoice], list[data.Directive]],
) -> None:
    _, issued, entries = books
    # [Oct 1, Dec 1) is 61 of the nominal quarter's 92 days: 500.00 × 61/92 = 331.5217… → 331.52.
    # Oct 31: 331.52 × 31/61 = 168.4773… → 168.48; Nov 30 (last day): 331.52 − 168.48 = 163.04
    link = "short-2026-10-01"
    assert accruals(entries, link, "Income:Usage:Tokens") == [
        (date(2026, 10, 31), D("-168.48")),
        (date(2026, 11, 30), D("-163.04")),
    ]
    line = usage_line(issued, "short", link)
    assert line.amount == D("331.52") and line.cycle == "2026-10-01/2026-12-01"
    assert [(t.description, t.quantity, t.unit_price, t.amount) for t in line.tiers] == [
        ("flat fee per cycle, 61/92 days", 1, D("331.52"), D("331.52"))
    ]
    (invoice,) = [inv for inv in issued if inv.customer == "short"]
    assert invoice.date == date(2026, 12, 1) and invoice.total == D("331.52")
    assert balance(entries, "Assets:Receivables:Unbilled:Short", date(2026, 12, 2)) == 0


def test_plan_change_prorates_flat_like_the_base_fee(
    books: tuple[Session, list[Invoice], list[data.Directive]],
) -> None:
    _, issued, entries = books
    # plan m's November cycle is cut by the change to u on Nov 11: [Nov 1, Nov 11) is 10 of 30 days.
    # flat 30.00 × 10/30 = 10.00 and base fee 30.00 × 10/30 = 10.00, both recognized by Nov 10.
    link = "chg-2026-11-01"
    assert accruals(entries, link, "Income:Usage:Api-Calls") == [(date(2026, 11, 10), D("-10.00"))]
    assert accruals(entries, link, "Income:Subscriptions:M") == [(date(2026, 11, 10), D("-10.00"))]
    line = usage_line(issued, "chg", link)
    assert line.amount == D("10.00") and line.quantity == 1
    assert [(t.description, t.unit_price, t.amount) for t in line.tiers] == [
        ("flat fee per cycle, 10/30 days", D("10.00"), D("10.00"))
    ]
    (invoice,) = [inv for inv in issued if inv.customer == "chg" and inv.date == date(2026, 11, 11)]
    fee = [ln.amount for ln in invoice.lines if ln.kind == "base_fee"]
    assert fee == [D("10.00")] and invoice.total == D("20.00")
    # u's cycle [Nov 11, Dec 1): 1 call × 0.10, no flat fee
    (later,) = [inv for inv in issued if inv.customer == "chg" and inv.date == date(2026, 12, 1)]
    assert later.total == D("0.10")


PROPERTY_PLANS = """\
plans:
  f:
    currency: USD
    cycle: {cycle}
    charges:
      - {{meter: api_calls, model: flat, amount: "{amount}"}}
"""


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cycle=st.sampled_from(["monthly", "quarterly"]),
    cents=st.integers(min_value=0, max_value=10_000_000),
    start=st.integers(min_value=0, max_value=120),
    length=st.integers(min_value=1, max_value=200),
    anchor=st.sampled_from(["calendar", "start"]),
)
def test_accruals_of_a_cycle_sum_to_its_invoice(
    tmp_path_factory: pytest.TempPathFactory,
    cycle: str,
    cents: int,
    start: int,
    length: int,
    anchor: str,
) -> None:
    """For any flat amount and any subscription (starting and ending on any day), each cycle's
    accruals in the books sum exactly to its invoice line, and never decrease."""
    amount = D(cents) / 100
    first = date(2026, 1, 1) + timedelta(days=start)
    end = first + timedelta(days=length)
    customers = (
        f"customers:\n  c: {{currency: USD, billing_anchor: {anchor}, "
        f"subscriptions: [{{plan: f, start: {first}, end: {end}}}]}}\n"
    )
    session = open_session(
        write_workspace(
            tmp_path_factory.mktemp("p") / "ws",
            meters=METERS_CALLS_TOKENS,
            plans=PROPERTY_PLANS.format(cycle=cycle, amount=amount),
            customers=customers,
        )
    )
    issued = session.invoice(through=end)
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    lines = [ln for inv in issued for ln in inv.lines if ln.kind == "usage"]
    cycles = {ln.link for ln in lines}
    for rated in session.rate(through=end - timedelta(days=1)).latest():
        assert rated.is_cycle_end
        posted = accruals(entries, rated.cycle.link, "Assets:Receivables:Unbilled:C")
        assert all(n >= 0 for _d, n in posted)
        total = sum((n for _d, n in posted), D(0))
        # the cycle bills amount × days ÷ nominal days, to the cent (half-even)
        cut = rated.cycle
        assert total == (amount * cut.days / cut.nominal_days).quantize(
            D("0.01"), rounding=ROUND_HALF_EVEN
        )
        if total:
            (line,) = [ln for ln in lines if ln.link == rated.cycle.link]
            assert line.amount == total
        else:
            assert rated.cycle.link not in cycles


def test_spend_and_projection_count_a_flat_fee_as_it_is_earned(
    books: tuple[Session, list[Invoice], list[data.Directive]],
) -> None:
    """Spend caps see 1.00 of the quarter's 92.00 on Oct 1 and 31.00 on Oct 31 (as the books
    recognize it), and the short quarter's statement projects 331.52, not 500.00."""
    from ledger.alerts import cycle_progress
    from ledger.cycles import cycle_at
    from ledger.statements import build_statement

    session = books[0]
    rules, models, tz = session.rules, session.registry.pricing_models, session.workspace.tz
    quarter = cycle_at(rules.customers["zero"], rules.plans, date(2026, 10, 15))
    assert quarter is not None
    [progress] = cycle_progress(
        session.engine, rules, models, tz, [(quarter, date(2026, 10, 31))], spend=True
    )
    assert (progress.spend[0], progress.spend[29], progress.spend[30]) == (
        D("1.00"),
        D("30.00"),
        D("31.00"),
    )
    short_cycle = cycle_at(rules.customers["short"], rules.plans, date(2026, 10, 15))
    assert short_cycle is not None
    short = build_statement(session, short_cycle, today=date(2026, 10, 31))
    assert short.projection.total == D("331.52")
