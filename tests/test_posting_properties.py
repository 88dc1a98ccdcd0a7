"""Posting invariants, for random usage (hypothesis), checked through Beancount's loader.

- every transaction balances (Beancount's own check, and the weights summed here);
- the books are byte-identical whatever the ingest order, the chunking and the
  ``post`` runs made in between;
- after each invoice the customer's unbilled and contract-asset balances are
  exactly 0: the accruals of a cycle sum to its invoice.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.books import load_books
from ledger.events import Event, parse_time
from tests.test_posting import _insert, _workspace, balance

CUSTOMERS = ("cal", "ann", "vol", "bf", "cr", "mc")
THROUGH = date(2026, 11, 1)


def _event(n: int, customer: str, day: int, seconds: int, tokens: int) -> Event:
    when = parse_time("2026-09-01T00:00:00Z") + timedelta(days=day, seconds=seconds)
    if customer == "vol":
        return Event.build(source="p", id=f"e{n}", customer=customer, type="llm.completion", time=when,
                           properties={"tokens": str(tokens)})
    return Event.build(source="p", id=f"e{n}", customer=customer, type="api.request", time=when, properties={})


usage = st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.integers(0, 60), st.integers(0, 86399),
                           st.integers(1, 400)), min_size=1, max_size=40)


def _books(session_dir: Path) -> dict[str, bytes]:
    books_dir = session_dir / "ws" / "books"
    return {str(p.relative_to(books_dir)): p.read_bytes() for p in sorted(books_dir.rglob("*")) if p.is_file()}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=usage, order=st.randoms(use_true_random=False), chunk=st.integers(1, 9),
       posts=st.lists(st.integers(0, 60), max_size=2))
def test_books_balance_and_do_not_depend_on_ingest_order_or_chunking(
        tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, int, int, int]],
        order: object, chunk: int, posts: list[int]) -> None:
    events = [_event(n, *row) for n, row in enumerate(rows)]

    reference_dir = tmp_path_factory.mktemp("ref")
    reference = _workspace(reference_dir)
    _insert(reference, events)
    reference.invoice(through=THROUGH)

    shuffled_dir = tmp_path_factory.mktemp("shuffled")
    shuffled = _workspace(shuffled_dir)
    mixed = list(events)
    order.shuffle(mixed)  # type: ignore[attr-defined]
    for i in range(0, len(mixed), chunk):
        _insert(shuffled, mixed[i:i + chunk])
        if posts and i // chunk < len(posts):  # posting in between never changes the outcome
            shuffled.post(through=date(2026, 9, 1) + timedelta(days=posts[i // chunk]))
    shuffled.invoice(through=THROUGH)

    assert _books(shuffled_dir) == _books(reference_dir)

    entries, errors, _ = load_books(reference.workspace.main_file)
    assert errors == []
    for entry in entries:
        if isinstance(entry, data.Transaction):
            totals: dict[str, Decimal] = {}
            for posting in entry.postings:
                totals[posting.units.currency] = totals.get(posting.units.currency, Decimal(0)) \
                    + posting.units.number
            assert all(total == 0 for total in totals.values()), entry
            if "invoice" in entry.meta:
                after = entry.date + timedelta(days=1)
                for posting in entry.postings:
                    if ":Unbilled:" in posting.account or "Contract-Assets" in posting.account:
                        assert balance(entries, posting.account, after) == 0, (entry.meta, posting.account)
