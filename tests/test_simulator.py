"""The operations simulator (``python -m ledger.bench simulate``) in CI: a bounded number of
random operational histories through the CLI, every invariant checked (see
:mod:`ledger.bench.simulate`). Eight histories of 30 operations take about 20 s here;
the long runs and their report are in docs/reliability.md "Simulator"."""

from __future__ import annotations

import random
import shutil
from decimal import Decimal

import pytest

from ledger.bench import simulate


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23, 37, 41, 53, 67, 79, 97])
def test_random_histories_keep_every_invariant(seed: int) -> None:
    ops = simulate.generate(random.Random(seed), 30)
    message = simulate.failure_of(ops, check_every=15)
    assert message is None, f"seed {seed}:\n{simulate.describe(ops)}\n\n{message}"


def test_a_broken_invariant_is_reported_and_shrunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker can fail: with the rebuild made to differ, a history fails, and shrinking
    keeps only what the failure needs (a post, so there are books to rebuild)."""

    def broken(world: simulate.World) -> None:
        raise simulate.Failure("a rebuild from the store changed ['2026/2026-09.beancount']")

    monkeypatch.setattr(simulate, "_rebuild", broken)
    ops = [
        ("advance", (0.9, 0, 0, 0)),
        ("usage", (0.0, 0.5, 0.0, 0.0)),
        ("post", (0, 0, 0, 0)),
        ("advance", (0.5, 0, 0, 0)),
    ]
    assert (
        simulate.failure_of(ops, check_every=0)
        == "a rebuild from the store changed ['2026/2026-09.beancount']"
    )
    small, message = simulate.shrink(list(ops), 0, deadline=float("inf"))
    assert small == [] and message.startswith("a rebuild")


def test_the_customer_equation_and_fee_checks_report_a_planted_break() -> None:
    """The direct checks on a real history's books and store. cal (basic: 31.00 a month in
    advance, 0.10 a call) makes 4 calls on Sep 1 and the clock runs to Oct 4: INV-2026-000001
    (Sep 1) bills September's fee 31.00, INV-2026-000003 (Oct 1) the calls 0.40 and October's
    fee 31.00. Store: invoiced 62.40 − credited 0 = books: recognized 31.00 + 0.40 (September)
    + 3 × 1.00 (Oct 1–3 of October's fee, 31.00 ÷ 31 a day) + deferred 28.00 − unbilled 0.

    Planted breaks: the books' Oct 1 invoice putting 1.00 more on receivable and deferred
    revenue (62.40 ≠ 63.40); September's accrual gone (its fee billed, 31.00 never
    recognized)."""
    from beancount.core import data

    ops = [("usage", (0.0, 0.5, 0.0, 0.0))] + [("advance", (0.9, 0, 0, 0))] * 3
    world = simulate.run_history(ops, check_every=0, keep=True)
    try:
        assert world.clock.isoformat() == "2026-10-04" and world.posted_through is not None
        entries = simulate.load(world)
        txns = [e for e in entries if isinstance(e, data.Transaction)]
        invoices = simulate._invoices(world)
        notes = simulate._store_rows(world, "notes")
        adjustments = simulate._store_rows(world, "adjustments")
        through = world.posted_through
        cal = [inv for inv in invoices if inv.customer == "cal"]
        assert [(inv.date.isoformat(), str(inv.total)) for inv in cal] == [
            ("2026-09-01", "31.00"),
            ("2026-10-01", "31.40"),
        ]
        simulate._customer_equation(txns, invoices, notes, through)
        simulate._fees_recognized(txns, invoices, notes, adjustments, through)

        def inflated(txn: data.Transaction) -> data.Transaction:
            one = Decimal("1.00")
            return txn._replace(
                postings=[
                    p._replace(units=p.units._replace(number=p.units.number + one))
                    if p.account.startswith("Assets:Receivables:Invoiced:")
                    else p._replace(units=p.units._replace(number=p.units.number - one))
                    if p.account.startswith("Liabilities:Deferred-Revenue:")
                    else p
                    for p in txn.postings
                ]
            )

        planted = [
            inflated(t) if (t.meta or {}).get("invoice") == cal[1].number else t for t in txns
        ]
        with pytest.raises(simulate.Failure) as equation:
            simulate._customer_equation(planted, invoices, notes, through)
        assert "('cal', 'USD'): (Decimal('62.40'), Decimal('63.40'))" in str(equation.value)
        no_accrual = [
            t
            for t in txns
            if not (t.date.isoformat() == "2026-09-30" and "cal-2026-09-01" in (t.links or ()))
        ]
        with pytest.raises(simulate.Failure) as fees:
            simulate._fees_recognized(no_accrual, invoices, notes, adjustments, through)
        assert "'cal-2026-09-01': Decimal('31.00')" in str(fees.value)
    finally:
        shutil.rmtree(world.root.parent, ignore_errors=True)
