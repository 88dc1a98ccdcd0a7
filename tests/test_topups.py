"""Wallet top-ups (ledger.topups): stored, billed, drawn and expired like a grant.

Every customer is on plan ``u`` (0.10 a call, calendar months from Sep 1, no base fee), so a
month's usage is ``calls × 0.10``, accrued on the month's last day and invoiced on the 1st:

- ``acme`` buys 30.00 on Sep 5 (payments-file row ``BANK-7``, expires Oct 20) and makes 100
  calls in September (10.00) and 50 in October (5.00)::

      Sep 5   INV (top-up) 30.00        receivable 30.00 / deferred −30.00
      Sep 30  draws 10.00 → 20.00 left  deferred 10.00 / unbilled −10.00 (credit applied)
      Oct 20  expires: breakage 20.00   deferred 20.00 / Income:Credit-Breakage −20.00
      Oct 31  5.00 of usage, no credit left: billed on Nov 1
      receivable 30.00 + 0.00 (Oct 1: 10.00 − 10.00) + 5.00 = 35.00, deferred 0.00

- ``beta`` has 20.00 from customers.yaml (Sep 1) and ``wallet: {below: "10.00", top_up:
  "50.00"}``; 150 calls in September (15.00), 100 in October (10.00)::

      Sep 30  draws 15.00 → 5.00 left < 10.00: auto:2026-10-01 of 50.00 granted Oct 1
      Oct 1   INV (top-up) 50.00        receivable 50.00 / deferred −50.00
      Oct 31  draws 5.00 (the Sep 1 grant, granted first) + 5.00 (auto) → 45.00 left: no more
      receivable 20.00 + 50.00 = 70.00, deferred −20 − 50 + 15 + 10 = −45.00
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from sqlalchemy import func, select

from ledger.books import load_books
from ledger.facts.invoices import TOPUP, load_invoices
from ledger.facts.topups import load_topups
from ledger.rating import undrawn_credit
from ledger.store import topups as topups_table
from tests.support.workspaces import (
    METERS_CALLS,
    calls,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

PLANS = """\
plans:
  u:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.10"}
"""
CUSTOMERS = """\
customers:
  acme: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-09-01}]}
  beta:
    currency: USD
    billing_anchor: calendar
    subscriptions: [{plan: u, start: 2026-09-01}]
    credits: [{amount: "20.00", granted: 2026-09-01}]
    wallet: {below: "10.00", top_up: "50.00"}
"""
TOPUP_ROW = (
    "date,amount,currency,invoice,reference,kind,customer,expires\n"
    "2026-09-05,30.00,USD,,BANK-7,topup,acme,2026-10-20\n"
)
D = Decimal


def _days(month: int, count: int) -> list[str]:
    """``count`` calls spread over the first 28 days of 2026-``month``."""
    return [f"2026-{month:02d}-{1 + i % 28:02d}" for i in range(count)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=CUSTOMERS)
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *calls("acme", _days(9, 100), "s"),
            *calls("acme", _days(10, 50), "o"),
            *calls("beta", _days(9, 150), "s"),
            *calls("beta", _days(10, 100), "o"),
        ],
    )
    return root


def _posted(entries: Iterable[data.Directive], account: str, on: date) -> Decimal:
    return sum(
        (
            p.units.number
            for e in entries
            if isinstance(e, data.Transaction) and e.date < on
            for p in e.postings
            if p.account == account
        ),
        D(0),
    )


def test_a_payments_file_topup_is_billed_drawn_and_expires(root: Path, tmp_path: Path) -> None:
    """acme's 30.00 from the payments row (module docstring): its own invoice on Sep 5,
    10.00 drawn on Sep 30, 20.00 breakage on Oct 20; re-importing the file is a no-op."""
    csv = tmp_path / "bank.csv"
    csv.write_text(TOPUP_ROW)
    first = run_cli(root, "ingest", str(csv))
    assert first.exit_code == 0, first.output
    assert "accepted 1" in first.output
    again = run_cli(root, "ingest", str(csv))
    assert again.exit_code == 0 and "duplicates 1" in again.output, again.output
    [topup] = load_topups(open_session(root).engine)
    assert (topup.key, topup.amount, topup.expires) == (
        "topup:BANK-7",
        D("30.00"),
        date(2026, 10, 20),
    )

    session = open_session(root)
    session.invoice(through=date(2026, 11, 1))
    rating = session.rate(date(2026, 10, 31), {"acme"})
    acme = session.rules.customers["acme"]
    moves = [(m.day, m.kind, m.amount) for m in rating.credits if m.customer == "acme"]
    assert moves == [
        (date(2026, 9, 30), "draw", D("10.00")),
        (date(2026, 10, 20), "breakage", D("20.00")),
    ]
    assert undrawn_credit(rating, rating.grants_of(acme), "acme", date(2026, 10, 1)) == {
        "topup:BANK-7": D("20.00")
    }
    invoices = [i for i in load_invoices(session.engine) if i.customer == "acme"]
    [sold] = [i for i in invoices if i.kind == TOPUP]
    assert (sold.date, sold.total, sold.lines[0].grant) == (
        date(2026, 9, 5),
        D("30.00"),
        "topup:BANK-7",
    )
    assert sorted((i.date, i.total) for i in invoices) == [
        (date(2026, 9, 5), D("30.00")),
        (date(2026, 10, 1), D("0.00")),
        (date(2026, 11, 1), D("5.00")),
    ]
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    after = date(2026, 11, 2)
    assert _posted(entries, "Assets:Receivables:Invoiced:Acme", after) == D("35.00")
    assert _posted(entries, "Liabilities:Deferred-Revenue:Acme", after) == D("0.00")
    assert _posted(entries, "Liabilities:Deferred-Revenue:Acme", date(2026, 10, 1)) == D("-20.00")
    [expiry] = [
        e
        for e in entries
        if isinstance(e, data.Transaction) and e.narration.startswith("Prepaid credit expired")
    ]
    assert (expiry.date, expiry.meta["grant"], expiry.meta["grant_invoice"]) == (
        date(2026, 10, 20),
        "topup:BANK-7",
        sold.number,
    )
    assert _posted(entries, "Income:Credit-Breakage", after) == D("-20.00")


def test_an_automatic_topup_when_usage_draws_the_balance_under_the_level(root: Path) -> None:
    """beta (module docstring): Sep 30's draws leave 5.00 < 10.00, so 50.00 is granted on
    Oct 1 with its own invoice; Oct 31's draws leave 45.00, so no second one."""
    session = open_session(root)
    assert "beta" not in {
        c for c, grants in session.rate(date(2026, 9, 30)).grants.items() if len(grants) > 1
    }
    rating = session.rate(date(2026, 11, 1), {"beta"})
    beta = session.rules.customers["beta"]
    grants = rating.grants_of(beta)
    assert [(g.granted, g.amount) for g in grants] == [
        (date(2026, 9, 1), D("20.00")),
        (date(2026, 10, 1), D("50.00")),
    ]
    moves = [(m.day, m.grant, m.kind, m.amount) for m in rating.credits if m.customer == "beta"]
    assert moves == [
        (date(2026, 9, 30), 0, "draw", D("15.00")),
        (date(2026, 10, 31), 0, "draw", D("5.00")),
        (date(2026, 10, 31), 1, "draw", D("5.00")),
    ]
    assert undrawn_credit(rating, grants, "beta", date(2026, 10, 31)) == {
        "2026-09-01#1": D("0.00"),
        "auto:2026-10-01": D("45.00"),
    }
    session.invoice(through=date(2026, 11, 1))
    invoices = [i for i in load_invoices(session.engine) if i.customer == "beta"]
    assert sorted((i.date, i.kind, i.total) for i in invoices) == [
        (date(2026, 9, 1), "regular", D("20.00")),
        (date(2026, 10, 1), "regular", D("0.00")),
        (date(2026, 10, 1), TOPUP, D("50.00")),
        (date(2026, 11, 1), "regular", D("0.00")),
    ]
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    after = date(2026, 11, 2)
    assert _posted(entries, "Assets:Receivables:Invoiced:Beta", after) == D("70.00")
    assert _posted(entries, "Liabilities:Deferred-Revenue:Beta", after) == D("-45.00")
    # invoicing again issues nothing more: the top-up's invoice is found by its grant
    assert open_session(root).invoice(through=date(2026, 11, 1)) == []


def test_the_topup_command_is_idempotent_and_keeps_the_date_rules(root: Path) -> None:
    """``meterbook topup``: recorded once per reference; after today or into a sealed month it
    is refused with one line (exit 2), nothing stored; a closed month with a top-up checks."""
    ok = run_cli(root, "topup", "acme", "--amount", "25", "--date", "2026-10-10")
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("topup:acme/2026-10-10/25.00  2026-10-10  acme")
    again = run_cli(root, "topup", "acme", "--amount", "25.00", "--date", "2026-10-10")
    assert again.exit_code == 0 and "recorded before; nothing changed" in again.output
    session = open_session(root)
    count = select(func.count()).select_from(topups_table)
    with session.engine.connect() as conn:
        assert conn.execute(count).scalar() == 1

    tomorrow = (session.today() + timedelta(days=1)).isoformat()
    future = run_cli(root, "topup", "acme", "--amount", "5", "--date", tomorrow)
    assert future.exit_code == 2 and len(future.stderr.splitlines()) == 1, future.output
    assert "after today" in future.stderr

    session.invoice(through=date(2026, 11, 1))
    assert run_cli(root, "close", "2026-09").exit_code == 0
    sealed = run_cli(root, "topup", "acme", "--amount", "5", "--date", "2026-09-20")
    assert sealed.exit_code == 2 and len(sealed.stderr.splitlines()) == 1, sealed.output
    assert "sealed months" in sealed.stderr
    bank = root / "sealed.csv"
    bank.write_text(TOPUP_ROW.replace("2026-09-05", "2026-09-20"))
    rejected = run_cli(root, "ingest", str(bank))
    assert rejected.exit_code == 1 and "rejected 1" in rejected.output, rejected.output
    with session.engine.connect() as conn:
        assert conn.execute(count).scalar() == 1

    closed = run_cli(root, "close", "2026-10")
    assert closed.exit_code == 0, closed.output
    assert run_cli(root, "check").exit_code == 0
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    # the 25.00 of Oct 10 (no expiry): Oct 31 draws acme's October usage 5.00 from it
    assert _posted(entries, "Liabilities:Deferred-Revenue:Acme", date(2026, 11, 1)) == D("-20.00")


def test_a_credit_note_takes_part_of_a_topup_back(root: Path, tmp_path: Path) -> None:
    """acme's 30.00 (module docstring) has 20.00 left after Sep 30's draw; a credit note of
    15.00 on its invoice line on Oct 5 takes 15.00 back (deferred 15.00 / receivable
    −15.00), so only 5.00 expires on Oct 20: deferred −30 + 10 + 15 + 5 = 0.00, breakage 5.00,
    receivable 30 − 15 + 5 (Nov 1) = 20.00."""
    csv = tmp_path / "bank.csv"
    csv.write_text(TOPUP_ROW)
    assert run_cli(root, "ingest", str(csv)).exit_code == 0
    session = open_session(root)
    session.invoice(through=date(2026, 10, 1))
    [sold] = [i for i in load_invoices(session.engine) if i.kind == TOPUP and i.customer == "acme"]
    note = open_session(root).credit(
        sold.number, amount="15.00", reason="goodwill", on=date(2026, 10, 5), line=1
    )
    assert [(p.grant, p.deferred) for p in note.parts] == [("topup:BANK-7", D("15.00"))]
    session = open_session(root)
    session.invoice(through=date(2026, 11, 1))
    rating = session.rate(date(2026, 10, 31), {"acme"})
    moves = [(m.day, m.kind, m.amount) for m in rating.credits if m.customer == "acme"]
    assert moves == [
        (date(2026, 9, 30), "draw", D("10.00")),
        (date(2026, 10, 5), "credit_note", D("15.00")),
        (date(2026, 10, 20), "breakage", D("5.00")),
    ]
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    after = date(2026, 11, 2)
    assert _posted(entries, "Liabilities:Deferred-Revenue:Acme", after) == D("0.00")
    assert _posted(entries, "Income:Credit-Breakage", after) == D("-5.00")
    assert _posted(entries, "Assets:Receivables:Invoiced:Acme", after) == D("20.00")


def test_recurring_topups_and_the_wallet_rules(tmp_path: Path) -> None:
    """``wallet: {recurring: {amount: "10.00", every: month, start: 2026-09-01},
    expires_after_days: 45}`` and 50 calls (5.00) a month:

        Sep 1   recurring:2026-09-01 10.00, expires Oct 16
        Sep 30  draws 5.00 → 5.00 left
        Oct 1   recurring:2026-10-01 10.00, expires Nov 15
        Oct 16  the first expires: breakage 5.00
        Oct 31  draws 5.00 from the second → 5.00 left

    A wallet with ``below`` and no ``top_up`` is a rules error, one line naming the key."""
    customers = (
        "customers:\n  rec:\n    currency: USD\n    billing_anchor: calendar\n"
        "    subscriptions: [{plan: u, start: 2026-09-01}]\n"
        '    wallet: {recurring: {amount: "10.00", every: month, start: 2026-09-01}, '
        "expires_after_days: 45}\n"
    )
    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=customers)
    session = open_session(root)
    insert_events(
        session.engine, [*calls("rec", _days(9, 50), "s"), *calls("rec", _days(10, 50), "o")]
    )
    rating = session.rate(date(2026, 10, 31))
    grants = rating.grants_of(session.rules.customers["rec"])
    assert [(g.granted, g.expires) for g in grants] == [
        (date(2026, 9, 1), date(2026, 10, 16)),
        (date(2026, 10, 1), date(2026, 11, 15)),
    ]
    moves = [(m.day, m.grant, m.kind, m.amount) for m in rating.credits]
    assert moves == [
        (date(2026, 9, 30), 0, "draw", D("5.00")),
        (date(2026, 10, 16), 0, "breakage", D("5.00")),
        (date(2026, 10, 31), 1, "draw", D("5.00")),
    ]
    assert undrawn_credit(rating, grants, "rec", date(2026, 10, 31)) == {
        "recurring:2026-09-01": D("0.00"),
        "recurring:2026-10-01": D("5.00"),
    }
    (root / "rules" / "customers.yaml").write_text(
        customers.replace("{recurring:", '{below: "5.00", recurring:')
    )
    bad = run_cli(root, "rate")
    assert bad.exit_code == 2 and len(bad.stderr.splitlines()) == 1, bad.output
    assert "customers.rec.wallet" in bad.stderr and "top_up is missing" in bad.stderr


def test_usage_arriving_after_a_note_on_its_day_draws_only_what_the_note_left(
    root: Path, tmp_path: Path
) -> None:
    """Found by the simulator (seed 84034). acme's 30.00 top-up of Sep 5 (module docstring);
    Sep 30's accrual draws its 100 calls, 10.00, so 20.00 is left; a credit note of 15.00 on
    the top-up, dated Sep 30, takes 15.00 back. Then 100 more calls of Sep 15 arrive: Sep 30
    now has 20.00 of usage, and the wallet holds 30.00 − 15.00 = 15.00 for it: 15.00 drawn,
    5.00 billed. Deferred revenue on Oct 1: −30.00 + 15.00 (the note) + 15.00 (the draw) =
    0.00; unbilled 5.00; usage revenue 20.00. (The draws of Sep 30 came before the note of the
    same day: 20.00 drawn, the grant at −5.00, deferred revenue 5.00 in debit.)"""
    csv = tmp_path / "bank.csv"
    csv.write_text(TOPUP_ROW)
    assert run_cli(root, "ingest", str(csv)).exit_code == 0
    session = open_session(root)
    session.invoice(through=date(2026, 9, 30))
    [sold] = [i for i in load_invoices(session.engine) if i.kind == TOPUP and i.customer == "acme"]
    open_session(root).credit(
        sold.number, amount="15.00", reason="goodwill", on=date(2026, 9, 30), line=1
    )
    insert_events(open_session(root).engine, calls("acme", ["2026-09-15"] * 100, "late"))
    session = open_session(root)
    session.post(date(2026, 9, 30))
    rating = session.rate(date(2026, 9, 30), {"acme"})
    moves = [(m.day, m.kind, m.amount) for m in rating.credits if m.customer == "acme"]
    assert moves == [
        (date(2026, 9, 30), "credit_note", D("15.00")),
        (date(2026, 9, 30), "draw", D("15.00")),
    ]
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    oct_1 = date(2026, 10, 1)
    assert _posted(entries, "Liabilities:Deferred-Revenue:Acme", oct_1) == D("0.00")
    assert _posted(entries, "Assets:Receivables:Unbilled:Acme", oct_1) == D("5.00")
    # acme 20.00 and beta 150 calls, 15.00
    assert _posted(entries, "Income:Usage:Api-Calls", oct_1) == D("-35.00")


class _Rules:
    """What :func:`ledger.topups.problem` and ``record`` read of the rules: the customers."""

    def __init__(self) -> None:
        from ledger.rules import Customer

        self.customers = {
            "acme": Customer(id="acme", currency="USD"),
            "yen": Customer(id="yen", currency="JPY"),
        }


def test_each_topup_is_accepted_or_refused_with_its_one_reason() -> None:
    """Today Oct 10, sealed through Sep 30. Accepted: a 255-character reference, 0.50 dated
    today expiring the next day; 60 yen dated Oct 1, the first open day. Refused, each with its
    reason and line: an empty and a 256-character reference, an unknown customer, EUR for a
    USD customer, 0.00, 60.5 yen (JPY has 0 places), an expiry on the top-up's own date.
    Kills the bounds (255, today, the first open day, 1 for 0, the expiry day), the reasons
    misspelt and the places read for no currency (2, which take 60.5)."""
    from ledger.facts.topups import TopUp
    from ledger.topups import problem

    rules, today, first_open = _Rules(), date(2026, 10, 10), date(2026, 10, 1)

    def judged(reference: str = "BANK-7", customer: str = "acme", **kw: object) -> object:
        fields: dict = {"day": today, "amount": D("0.50"), "currency": "USD", "expires": None}
        fields.update(kw)
        topup = TopUp(
            reference,
            customer,
            fields["day"],
            fields["amount"],
            fields["currency"],
            fields["expires"],
        )
        return problem(rules, topup, today=today, first_open=first_open)

    assert judged("r" * 255, expires=date(2026, 10, 11)) is None
    assert judged(customer="yen", day=first_open, amount=D(60), currency="JPY") is None
    assert judged("") == ("too_long", "reference is 0 characters (1 to 255)")
    assert judged("r" * 256) == ("too_long", "reference is 256 characters (1 to 255)")
    assert judged(customer="nobody") == (
        "unknown_customer",
        "customer 'nobody' is not in customers.yaml",
    )
    assert judged(currency="EUR") == ("currency_mismatch", "currency EUR is not acme's (USD)")
    assert judged(amount=D("0.00")) == ("nonpositive_amount", "amount 0.00 is not positive")
    assert judged(customer="yen", amount=D("60.5"), currency="JPY") == (
        "bad_number",
        "amount 60.5 has more than 0 decimal places for JPY",
    )
    assert judged(day=date(2026, 10, 5), expires=date(2026, 10, 5)) == (
        "bad_date",
        "expires 2026-10-05 is not after the date 2026-10-05",
    )


def test_record_raises_the_error_of_its_reason_and_stores_a_reference_once(tmp_path: Path) -> None:
    """``record`` on a fresh store, today Oct 10, sealed through Sep 30: Oct 11 raises
    AfterTodayError, Sep 30 SealedMonthError, 0.00 BadInput, each with its one line; 5.00 on
    Oct 5 is accepted, recorded at an aware UTC time; the same again is a duplicate; 6.00 under
    the same reference is refused and stores nothing. Kills the reasons' errors looked up by
    none or misspelt, no error for the others, ``datetime.now(None)`` (a naive time) and a
    conflict taken for a duplicate or not refused, and its message changed."""
    from sqlalchemy import select

    from ledger.errors import AfterTodayError, BadInput, SealedMonthError
    from ledger.facts.topups import TopUp
    from ledger.store import open_store
    from ledger.topups import record

    engine = open_store(f"sqlite:///{tmp_path / 'e.sqlite'}")
    rules, today, first_open = _Rules(), date(2026, 10, 10), date(2026, 10, 1)

    def recorded(day: date, amount: str) -> str:
        topup = TopUp("BANK-7", "acme", day, D(amount), "USD")
        return record(engine, rules, topup, today=today, first_open=first_open)  # type: ignore[arg-type]

    with pytest.raises(AfterTodayError) as future:
        recorded(date(2026, 10, 11), "5.00")
    assert str(future.value) == (
        "topup: date 2026-10-11 is after today (2026-10-10); nothing was recorded"
    )
    with pytest.raises(SealedMonthError):
        recorded(date(2026, 9, 30), "5.00")
    with pytest.raises(BadInput) as zero:
        recorded(date(2026, 10, 5), "0.00")
    assert type(zero.value) is BadInput
    assert str(zero.value) == "topup: amount 0.00 is not positive; nothing was recorded"

    assert recorded(date(2026, 10, 5), "5.00") == "accepted"
    assert recorded(date(2026, 10, 5), "5.00") == "duplicates"
    with pytest.raises(BadInput) as conflict:
        recorded(date(2026, 10, 5), "6.00")
    assert str(conflict.value) == (
        "topup: reference 'BANK-7' already records another top-up; give another --reference. "
        "Nothing was recorded"
    )
    with engine.connect() as conn:
        rows = conn.execute(select(topups_table.c.amount, topups_table.c.recorded_at)).all()
    assert [amount for amount, _at in rows] == ["5.00"]
    assert rows[0][1].endswith("+00:00")


def test_wallet_grants_recurring_automatic_and_stored() -> None:
    """w's wallet: 20.00 on Jan 31 and every month before Mar 31, top-ups lasting 30 days,
    50.00 automatically: through Apr 30, the grants of Jan 31 (expiring Mar 2) and Feb 28
    (Mar 30), not Mar 31 (the end); the automatic top-up of Nov 1 expires Dec 1. k's grants
    through Oct 31: its rules credit, then its top-ups dated by then (Oct 31 itself), not
    another customer's. A top-up's invoice line names its expiry if it has one. Kills the end
    day included, the automatic top-up's expiry dropped or from no day, the other customer's
    or the last day's top-ups, and the description's expiry dropped or misspelt."""
    from ledger.facts.topups import TopUp
    from ledger.rules import CreditGrant, Customer, RecurringTopUp, Wallet, WalletGrant
    from ledger.topups import auto_grant, grants_of, recurring_grants, topup_description

    monthly = RecurringTopUp(amount=D("20.00"), start=date(2026, 1, 31), end=date(2026, 3, 31))
    w = Customer(
        id="w",
        currency="USD",
        wallet=Wallet(
            below=D("10.00"), top_up=D("50.00"), recurring=monthly, expires_after_days=30
        ),
    )
    assert recurring_grants(w, date(2026, 4, 30)) == [
        WalletGrant(
            amount=D("20.00"),
            granted=date(2026, 1, 31),
            expires=date(2026, 3, 2),
            key="recurring:2026-01-31",
        ),
        WalletGrant(
            amount=D("20.00"),
            granted=date(2026, 2, 28),
            expires=date(2026, 3, 30),
            key="recurring:2026-02-28",
        ),
    ]
    assert auto_grant(w, date(2026, 11, 1)) == WalletGrant(
        amount=D("50.00"),
        granted=date(2026, 11, 1),
        expires=date(2026, 12, 1),
        key="auto:2026-11-01",
    )

    credit = CreditGrant(amount=D("5.00"), granted=date(2026, 9, 1))
    k = Customer(id="k", currency="USD", credits=(credit,))
    bought = [
        TopUp("LATE", "k", date(2026, 11, 1), D("3.00"), "USD"),
        TopUp("LAST", "k", date(2026, 10, 31), D("2.00"), "USD", date(2027, 10, 31)),
        TopUp("OTHER", "x", date(2026, 10, 1), D("9.00"), "USD"),
    ]
    last = WalletGrant(
        amount=D("2.00"), granted=date(2026, 10, 31), expires=date(2027, 10, 31), key="topup:LAST"
    )
    assert grants_of(k, bought, date(2026, 10, 31)) == [credit, last]
    assert topup_description(last) == "wallet top-up topup:LAST, expires 2027-10-31"
    undated = WalletGrant(amount=D("2.00"), granted=date(2026, 10, 31), key="topup:LAST")
    assert topup_description(undated) == "wallet top-up topup:LAST"
