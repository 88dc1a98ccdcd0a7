"""Several subscriptions per customer at once: a main plan and an add-on (issue 18, item 1).

The workspace: plan ``p`` bills 31.00 a month in advance and 1.00 per API call; plan ``a``
(the add-on, priority support) bills 10.00 a month in advance and prices no meter. acme is
on ``p`` from 2026-10-01 on calendar cycles, and on ``a`` as its subscription ``id: support``
anchored on the add-on's own start. Its cycles' links are ``^acme-2026-10-01`` (the main
subscription, as with one subscription) and ``^acme/support-…`` (the add-on).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data

from ledger.books import load_books
from ledger.cycles import cycles_at, cycles_for
from ledger.facts.invoices import load_invoices
from ledger.rules import Customer, Plan, Subscription
from tests.support.workspaces import (
    METERS_CALLS,
    balance,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

PLANS = """\
plans:
  p:
    currency: USD
    base_fee: {amount: "31.00", timing: advance}
    charges:
      - {meter: api_calls, model: unit, unit_price: "1.00"}
  a:
    currency: USD
    base_fee: {amount: "10.00", timing: advance}
  q:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.50"}
"""
RECEIVABLE = "Assets:Receivables:Invoiced:Acme"
DEFERRED = "Liabilities:Deferred-Revenue:Acme"


def _customers(addon: str, main: str = "{plan: p, start: 2026-10-01}") -> str:
    return (
        "customers:\n  acme:\n    currency: USD\n    billing_anchor: calendar\n"
        f"    subscriptions:\n      - {main}\n      - {addon}\n"
    )


def _workspace(tmp_path: Path, addon: str) -> Path:
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=_customers(addon)
    )
    insert_events(open_session(root).engine, calls("acme", ["2026-10-03", "2026-10-20"]))
    return root


def _invoices(entries: list[data.Directive]) -> dict[str, data.Transaction]:
    return {
        e.meta["invoice"]: e
        for e in entries
        if isinstance(e, data.Transaction) and e.narration.startswith("Invoice ")
    }


ADDON_OCT_1 = "{id: support, plan: a, start: 2026-10-01, billing_anchor: start}"
ADDON_OCT_15 = "{id: support, plan: a, start: 2026-10-15, billing_anchor: start}"


@pytest.fixture
def together(tmp_path: Path) -> Path:
    """The add-on from Oct 1: both subscriptions' cycles start and end on the same days."""
    return _workspace(tmp_path, ADDON_OCT_1)


def test_cycles_of_two_subscriptions_starting_the_same_day_have_distinct_links() -> None:
    """The same plan twice (two seats of ``a``, ids ``s1`` and ``s2``) beside ``p``: three
    cycles start on Oct 1, each with its own link; the main one keeps today's link."""
    plans = {"p": Plan(id="p", currency="USD"), "a": Plan(id="a", currency="USD")}
    acme = Customer(
        id="acme",
        currency="USD",
        billing_anchor="calendar",
        subscriptions=(
            Subscription(plan="p", start=date(2026, 10, 1)),
            Subscription(id="s2", plan="a", start=date(2026, 10, 1)),
            Subscription(id="s1", plan="a", start=date(2026, 10, 15), billing_anchor="start"),
        ),
    )
    cycles = cycles_for(acme, plans, until=date(2026, 11, 2))
    assert [(c.link, c.key) for c in cycles] == [
        ("acme-2026-10-01", "2026-10-01/2026-11-01"),
        ("acme/s2-2026-10-01", "2026-10-01/2026-11-01"),
        ("acme/s1-2026-10-15", "2026-10-15/2026-11-15"),
        ("acme-2026-11-01", "2026-11-01/2026-12-01"),
        ("acme/s2-2026-11-01", "2026-11-01/2026-12-01"),
    ]
    assert [c.link for c in cycles_at(acme, plans, date(2026, 10, 20))] == [
        "acme-2026-10-01",
        "acme/s1-2026-10-15",
        "acme/s2-2026-10-01",
    ]


def test_dates_that_coincide_bill_both_subscriptions_on_one_invoice(together: Path) -> None:
    """Both cycles run [Oct 1, Nov 1) (calendar; the add-on anchored on its start, Oct 1).

    INV-2026-000001 (Oct 1): p's fee 31.00 (^acme-2026-10-01) + a's fee 10.00
    (^acme/support-2026-10-01) = 41.00, all deferred. INV-2026-000002 (Nov 1): October's 2
    calls × 1.00 = 2.00, then November's fees 31.00 + 10.00: 43.00. By Oct 31 each fee is
    recognized in full to its own plan's revenue (31.00 to P, 10.00 to A), so deferred
    revenue is 0 before Nov 1 and −41.00 after; acme owes 41.00 + 43.00 = 84.00.
    """
    assert run_cli(together, "invoice", "--through", "2026-11-01").exit_code == 0
    assert run_cli(together, "post", "--through", "2026-11-01").exit_code == 0
    entries, errors, _ = load_books(together / "books" / "main.beancount")
    assert errors == []
    invoices = _invoices(entries)
    assert sorted(invoices) == ["INV-2026-000001", "INV-2026-000002"]
    first, second = invoices["INV-2026-000001"], invoices["INV-2026-000002"]
    assert first.date == date(2026, 10, 1)
    assert first.links == {"INV-2026-000001", "acme-2026-10-01", "acme/support-2026-10-01"}
    assert {p.account: p.units.number for p in first.postings} == {
        RECEIVABLE: Decimal("41.00"),
        DEFERRED: Decimal("-41.00"),
    }
    assert second.date == date(2026, 11, 1)
    assert {p.account: p.units.number for p in second.postings} == {
        RECEIVABLE: Decimal("43.00"),
        "Assets:Receivables:Unbilled:Acme": Decimal("-2.00"),
        DEFERRED: Decimal("-41.00"),
    }
    session = open_session(together)
    (stored,) = [i for i in session.stored_facts().invoices if i.number == "INV-2026-000001"]
    assert [(ln.description, ln.amount, ln.link) for ln in stored.lines] == [
        ("p base fee 2026-10-01/2026-11-01 (in advance)", Decimal("31.00"), "acme-2026-10-01"),
        (
            "a base fee 2026-10-01/2026-11-01 (in advance)",
            Decimal("10.00"),
            "acme/support-2026-10-01",
        ),
    ]
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-31.00")
    assert balance(entries, "Income:Subscriptions:A", date(2026, 11, 1)) == Decimal("-10.00")
    assert balance(entries, "Income:Usage:Api-Calls", date(2026, 11, 1)) == Decimal("-2.00")
    assert balance(entries, DEFERRED, date(2026, 11, 1)) == 0
    assert balance(entries, DEFERRED, date(2026, 11, 2)) == Decimal("-41.00")
    assert balance(entries, RECEIVABLE, date(2026, 11, 2)) == Decimal("84.00")


def test_dates_that_differ_bill_each_subscription_on_its_own_invoice(tmp_path: Path) -> None:
    """The add-on from Oct 15 anchored on its start: its cycles are [Oct 15, Nov 15), … .

    Invoices: Oct 1 p's fee 31.00; Oct 15 a's fee 10.00; Nov 1 2 calls 2.00 + p's fee 31.00
    = 33.00; Nov 15 a's fee 10.00. The add-on's fee is recognized by day over its 31-day
    cycle: 10.00 × 17 ÷ 31 = 5.48 by Oct 31 (Oct 15–31), the other 4.52 by Nov 14.
    """
    root = _workspace(tmp_path, ADDON_OCT_15)
    assert run_cli(root, "invoice", "--through", "2026-11-15").exit_code == 0
    assert run_cli(root, "post", "--through", "2026-11-15").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    got = {
        (inv.date, inv.postings[0].units.number, tuple(sorted(inv.links)))
        for inv in _invoices(entries).values()
    }
    assert got == {
        (date(2026, 10, 1), Decimal("31.00"), ("INV-2026-000001", "acme-2026-10-01")),
        (date(2026, 10, 15), Decimal("10.00"), ("INV-2026-000002", "acme/support-2026-10-15")),
        (
            date(2026, 11, 1),
            Decimal("33.00"),
            ("INV-2026-000003", "acme-2026-10-01", "acme-2026-11-01"),
        ),
        (date(2026, 11, 15), Decimal("10.00"), ("INV-2026-000004", "acme/support-2026-11-15")),
    }
    assert balance(entries, "Income:Subscriptions:A", date(2026, 11, 1)) == Decimal("-5.48")
    assert balance(entries, "Income:Subscriptions:A", date(2026, 11, 15)) == Decimal("-10.00")
    assert balance(entries, RECEIVABLE, date(2026, 11, 16)) == Decimal("84.00")


def test_cancelling_the_addon_mid_cycle_credits_only_its_fee(together: Path) -> None:
    """INV-2026-000001 billed 31.00 + 10.00 on Oct 1; then the add-on is cancelled from Oct 11.

    Its cycle is now [Oct 1, Oct 11): 10.00 × 10 ÷ 31 = 3.23, so CN-2026-000001 (Oct 10)
    credits 10.00 − 3.23 = 6.77 of line 2 (deferred 6.77 / receivable 6.77); p's line and
    cycle are untouched. Revenue of A is 3.23, of P 31.00; deferred revenue is 0 by Oct 31;
    INV-2026-000002 (Nov 1) bills 2 calls 2.00 + p's fee 31.00 = 33.00 and no add-on fee:
    acme owes 41.00 − 6.77 + 33.00 = 67.23. ``check`` and ``trace`` pass, October closes.
    """
    assert run_cli(together, "invoice", "--through", "2026-10-01").exit_code == 0
    (together / "rules" / "customers.yaml").write_text(
        _customers(ADDON_OCT_1.replace("}", ", end: 2026-10-11}"))
    )
    assert run_cli(together, "post", "--through", "2026-10-31").exit_code == 0
    result = run_cli(together, "invoice", "--through", "2026-11-01")
    assert result.exit_code == 0 and "33.00 USD" in result.output, result.output
    entries, errors, _ = load_books(together / "books" / "main.beancount")
    assert errors == []
    (note,) = [e for e in entries if isinstance(e, data.Transaction) and "credit_note" in e.meta]
    assert (note.date, note.meta["invoice_line"], note.meta["reason"]) == (
        date(2026, 10, 10),
        Decimal("2"),
        "subscription change: cycle 2026-10-01/2026-11-01 now 2026-10-01/2026-10-11, "
        "base fee 10.00 now 3.23",
    )
    assert {p.account: p.units.number for p in note.postings} == {
        DEFERRED: Decimal("6.77"),
        RECEIVABLE: Decimal("-6.77"),
    }
    assert balance(entries, "Income:Subscriptions:A", date(2026, 11, 1)) == Decimal("-3.23")
    assert balance(entries, "Income:Subscriptions:P", date(2026, 11, 1)) == Decimal("-31.00")
    assert balance(entries, DEFERRED, date(2026, 11, 1)) == 0
    assert run_cli(together, "post", "--through", "2026-11-01").exit_code == 0
    entries, errors, _ = load_books(together / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, RECEIVABLE, date(2026, 11, 2)) == Decimal("67.23")
    assert run_cli(together, "check").exit_code == 0
    traced = run_cli(together, "trace", "INV-2026-000001")
    assert traced.exit_code == 0, traced.output
    assert "CN-2026-000001 credit 6.77" in traced.output, traced.output
    assert run_cli(together, "close", "2026-10").exit_code == 0


def test_trace_verifies_each_subscriptions_cycle_and_their_shared_invoice(together: Path) -> None:
    """Posted through Oct 31: ^acme-2026-10-01 has p's 31.00 and the 2 calls (2.00),
    ^acme/support-2026-10-01 only a's 10.00; each verifies against the store, and so does
    INV-2026-000001 that billed both fees."""
    assert run_cli(together, "invoice", "--through", "2026-10-01").exit_code == 0
    assert run_cli(together, "post", "--through", "2026-10-31").exit_code == 0
    main = run_cli(together, "trace", "acme-2026-10-01")
    assert main.exit_code == 0, main.output
    assert "plan p" in main.output and "api_calls revenue       2.00 USD" in main.output
    addon = run_cli(together, "trace", "^acme/support-2026-10-01")
    assert addon.exit_code == 0, addon.output
    assert "plan a" in addon.output
    assert "subscription revenue a  10.00 USD         10.00 USD         ok" in addon.output
    assert "api_calls" not in addon.output
    invoice = run_cli(together, "trace", "INV-2026-000001")
    assert invoice.exit_code == 0 and "verified" in invoice.output, invoice.output


def test_close_seals_a_month_with_two_subscriptions(tmp_path: Path) -> None:
    """The add-on from Oct 15 (its own invoice dates): October closes with P 31.00, A 5.48
    (10.00 × 17 ÷ 31), usage 2.00 unbilled, 4.52 of A still deferred, and receivable
    31.00 + 10.00 = 41.00; the sealed month's figures are those."""
    root = _workspace(tmp_path, ADDON_OCT_15)
    assert run_cli(root, "invoice", "--through", "2026-10-31").exit_code == 0
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    closed = run_cli(root, "close", "2026-10")
    assert closed.exit_code == 0, closed.output
    assert (root / "books" / "2026" / "2026-10.beancount").read_text().count("seal") >= 1
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    nov_1 = date(2026, 11, 1)
    assert balance(entries, "Income:Subscriptions:P", nov_1) == Decimal("-31.00")
    assert balance(entries, "Income:Subscriptions:A", nov_1) == Decimal("-5.48")
    assert balance(entries, "Assets:Receivables:Unbilled:Acme", nov_1) == Decimal("2.00")
    assert balance(entries, DEFERRED, nov_1) == Decimal("-4.52")
    assert balance(entries, RECEIVABLE, nov_1) == Decimal("41.00")
    assert run_cli(root, "invoice", "--through", "2026-11-01").exit_code == 0


def test_statement_of_the_addon_by_its_id(together: Path) -> None:
    """``statement acme --subscription support`` writes the add-on's cycle, named after its
    link (``acme+support-2026-10-01``); without it, the main subscription's."""
    out = together / "out"
    addon = run_cli(
        together, "statement", "acme", "--cycle", "2026-10-20", "--subscription", "support",
        "--out", str(out),
    )  # fmt: skip
    assert addon.exit_code == 0, addon.output
    assert "2026-10-01/2026-11-01" in addon.output
    assert (out / "acme+support-2026-10-01.html").exists()
    main = run_cli(together, "statement", "acme", "--cycle", "2026-10-20", "--out", str(out))
    assert main.exit_code == 0 and (out / "acme-2026-10-01.html").exists(), main.output
    wrong = run_cli(together, "statement", "acme", "--subscription", "nope")
    assert wrong.exit_code == 2
    assert "no subscription 'nope' (its ids: 'support')" in wrong.output
    early = run_cli(
        together, "statement", "acme", "--subscription", "support", "--cycle", "2026-09-20"
    )
    assert early.exit_code == 2
    assert (
        "--cycle: subscription 'support' of customer 'acme' has no billing cycle containing "
        "2026-09-20"
    ) in " ".join(early.output.split())


@pytest.mark.parametrize(
    ("main", "addon", "message"),
    [
        (
            "{plan: p, start: 2026-10-01, end: 2026-12-01}",
            "{plan: a, start: 2026-10-15}",
            "rules/customers.yaml:7: customers.acme.subscriptions[1].start: overlaps the previous "
            "subscription (an add-on running alongside it needs its own id:)",
        ),
        (
            "{plan: p, start: 2026-10-01}",
            "{id: cheap, plan: q, start: 2026-10-15}",
            "rules/customers.yaml:7: customers.acme.subscriptions[1].plan: plan 'q' prices meter "
            "'api_calls', which the main subscription (plan 'p') prices at the same time: its "
            "usage would be billed twice",
        ),
        (
            "{plan: p, start: 2026-10-01}",
            "{id: sup/port, plan: a, start: 2026-10-15}",
            "rules/customers.yaml:7: customers.acme.subscriptions[1].id: ids are 1..255 letters",
        ),
        (
            "{id: x, plan: a, start: 2026-10-15}",
            "{id: x, plan: a, start: 2026-10-01}",
            "rules/customers.yaml:7: customers.acme.subscriptions[1].start: subscriptions must be "
            "in order of start date",
        ),
    ],
    ids=["overlap-without-id", "same-meter-twice", "id-with-slash", "id-out-of-order"],
)
def test_refused_subscriptions(tmp_path: Path, main: str, addon: str, message: str) -> None:
    """Exit 2 with one line naming the file, line and key; an add-on that prices another
    meter, or the same plan after the other ended, is accepted."""
    root = write_workspace(
        tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=_customers(addon, main)
    )
    result = run_cli(root, "invoice", "--through", "2026-10-31")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_the_same_meter_after_the_other_subscription_ended_is_accepted(tmp_path: Path) -> None:
    """``q`` prices api_calls too, but from Nov 1, when the main subscription has ended: one
    subscription prices the meter at any time."""
    customers = _customers(
        "{id: cheap, plan: q, start: 2026-11-01}",
        "{plan: p, start: 2026-10-01, end: 2026-11-01}",
    )
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=customers)
    assert run_cli(root, "invoice", "--through", "2026-11-01").exit_code == 0


def test_the_same_plan_twice_under_two_ids_bills_two_fees(tmp_path: Path) -> None:
    """Two seats of the add-on ``a`` (ids ``s1`` and ``s2``) beside ``p``, all from Oct 1: three
    cycles start that day on one invoice, 31.00 + 10.00 + 10.00 = 51.00, each fee with its own
    link (``^acme/s1-2026-10-01``, ``^acme/s2-2026-10-01``); by Oct 31 A has earned 20.00."""
    customers = _customers(
        "{id: s1, plan: a, start: 2026-10-01}\n      - {id: s2, plan: a, start: 2026-10-01}"
    )
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=customers)
    assert run_cli(root, "invoice", "--through", "2026-10-01").exit_code == 0
    assert run_cli(root, "post", "--through", "2026-10-31").exit_code == 0
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    (invoice,) = _invoices(entries).values()
    assert invoice.links == {
        "INV-2026-000001",
        "acme-2026-10-01",
        "acme/s1-2026-10-01",
        "acme/s2-2026-10-01",
    }
    assert balance(entries, RECEIVABLE, date(2026, 10, 2)) == Decimal("51.00")
    assert balance(entries, "Income:Subscriptions:A", date(2026, 11, 1)) == Decimal("-20.00")
    assert balance(entries, DEFERRED, date(2026, 11, 1)) == 0
    assert run_cli(root, "trace", "acme/s2-2026-10-01").exit_code == 0


def test_an_add_on_backdated_into_a_sealed_month_waits_for_the_next_invoice_day(
    tmp_path: Path,
) -> None:
    """Found by the simulator (seed 79291). acme on ``p`` from Sep 1: INV-2026-000001 (Sep 1,
    31.00) and INV-2026-000002 (Oct 1, October's 31.00); September is sealed; a 6.00 top-up
    on Oct 3 is invoiced by ``invoice --through 2026-10-03``: INV-2026-000003 of Oct 3. The
    add-on from Sep 29 (anchored on its start, [Sep 29, Oct 29), 10.00) would bill its fee on
    Sep 29, a sealed day: it moves to the day after acme's last invoice, Oct 4. ``invoice
    --through 2026-10-03`` issues nothing (it issued INV-2026-000004 dated Sep 29, inside the
    seal, which the books could never hold); ``invoice --through 2026-10-04`` issues it, 10.00,
    dated Oct 4; the receivable is 31.00 + 31.00 + 6.00 + 10.00 = 78.00; ``check`` passes."""
    main = "{plan: p, start: 2026-09-01}"
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers="customers:\n  acme:\n    currency: USD\n    billing_anchor: calendar\n"
        f"    subscriptions: [{main}]\n",
    )
    for step in (
        ("invoice", "--through", "2026-10-01"),
        ("close", "2026-09"),
        ("topup", "acme", "--amount", "6.00", "--date", "2026-10-03"),
        ("invoice", "--through", "2026-10-03"),
    ):
        result = run_cli(root, *step)
        assert result.exit_code == 0, (step, result.output)
    addon = "{id: support, plan: a, start: 2026-09-29, billing_anchor: start}"
    (root / "rules" / "customers.yaml").write_text(_customers(addon, main))
    result = run_cli(root, "invoice", "--through", "2026-10-03")
    assert result.exit_code == 0, result.output
    session = open_session(root)
    assert [(i.number, i.date, i.total) for i in load_invoices(session.engine)] == [
        ("INV-2026-000001", date(2026, 9, 1), Decimal("31.00")),
        ("INV-2026-000002", date(2026, 10, 1), Decimal("31.00")),
        ("INV-2026-000003", date(2026, 10, 3), Decimal("6.00")),
    ]
    result = run_cli(root, "invoice", "--through", "2026-10-04")
    assert result.exit_code == 0, result.output
    last = load_invoices(session.engine)[-1]
    assert (last.number, last.date, last.total) == (
        "INV-2026-000004",
        date(2026, 10, 4),
        Decimal("10.00"),
    )
    assert [ln.cycle for ln in last.lines] == ["2026-09-29/2026-10-29"]
    entries, errors, _ = load_books(root / "books" / "main.beancount")
    assert errors == []
    assert balance(entries, RECEIVABLE, date(2026, 10, 5)) == Decimal("78.00")
    checked = run_cli(root, "check")
    assert checked.exit_code == 0, checked.output
