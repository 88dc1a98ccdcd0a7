"""Posting invariants, for random usage (hypothesis) that goes through real ingest, checked
through Beancount's loader.

The usage is written as CSV files and imported with :func:`ledger.ingest.ingest_files` (what
``meterbook ingest`` runs), with duplicates, conflicting re-sends and rejected rows mixed in.
Part of it is imported before an invoice run in the middle of the range (``invoice --through
MID``) and the rest after, so usage arriving for cycles already invoiced becomes late
adjustments. Then:

- every transaction balances (Beancount's own check, and the weights summed here);
- the books are byte-identical whatever the order of the rows, how they are cut into files
  and the ``post`` runs made in between;
- each invoice settles exactly its customer's unbilled and contract-asset balances at the
  start of its date (the accruals of its cycles, and late usage posted before it);
- the same events give the same bytes on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ledger.books import load_books
from ledger.ingest import ImportReport, ingest_files, open_for_ingest
from ledger.session import Session
from tests.support.posting import CUSTOMERS as CUSTOMERS_YAML
from tests.support.posting import PLANS
from tests.support.workspaces import METERS_CALLS_TOKENS, balance, open_session, write_workspace

CUSTOMERS = ("cal", "ann", "vol", "bf", "cr", "mc")
START = datetime(2026, 9, 1, tzinfo=UTC)
THROUGH = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)  # ingest's clock: no event is in the future
HEADER = "id,source,customer,type,time,tokens\n"
#: Rows every ingest rejects, one reason each: unknown customer, bad time, negative quantity,
#: missing id.
BAD = (
    "x1,p,nobody,api.request,2026-09-05T12:00:00Z,",
    "x2,p,cal,api.request,2026-09-31T12:00:00Z,",
    "x3,p,vol,llm.completion,2026-09-05T12:00:00Z,-5",
    ",p,cal,api.request,2026-09-05T12:00:00Z,",
)

#: One usage event: customer, day (0 = Sep 1), second of the day, tokens (``vol``), imported
#: after MID.
Use = tuple[str, int, int, int, bool]


def _line(n: int, use: Use, *, shift: int = 0) -> str:
    """The CSV row of event ``e<n>``; ``shift`` seconds later is another payload (a conflict)."""
    customer, day, seconds, tokens, _late = use
    time = (START + timedelta(days=day, seconds=seconds + shift)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if customer == "vol":
        return f"e{n},p,vol,llm.completion,{time},{tokens}"
    return f"e{n},p,{customer},api.request,{time},"


class Feed:
    """The rows of both imports (before and after the mid-range invoice run) and what ingest must
    count.

    A use of ``copies`` stands for that many events, a second apart (so a few uses pass the
    free tier); ``duplicates``, ``conflicts`` and ``bad`` pick rows to re-send, re-send with
    another payload, and rows ingest rejects.
    """

    def __init__(
        self,
        uses: Sequence[Use],
        duplicates: Sequence[int],
        conflicts: Sequence[int],
        bad: Sequence[int],
        copies: Sequence[int] = (),
    ) -> None:
        events = [
            (c, day, seconds + j, tokens, late)
            for (c, day, seconds, tokens, late), n in zip(
                uses, [*copies, *[1] * len(uses)], strict=False
            )
            for j in range(n)
        ]
        early = [n for n, use in enumerate(events) if not use[4]]
        self.before = [_line(n, events[n]) for n in early]
        self.after = [_line(n, use) for n, use in enumerate(events) if use[4]]
        for k, i in enumerate(duplicates):  # a re-sent row, before or after MID (same payload)
            n = i % len(events)
            (self.after if k % 2 or events[n][4] else self.before).append(_line(n, events[n]))
        # a re-send with another payload comes after the row it conflicts with:
        # the first stored wins
        self.conflicts = (
            [_line(n, events[n], shift=1) for n in (early[i % len(early)] for i in conflicts)]
            if early
            else []
        )
        self.after += self.conflicts
        for k, i in enumerate(bad):
            (self.after if k % 2 else self.before).append(BAD[i % len(BAD)])
        self.expected = {
            "received": len(self.before) + len(self.after),
            "accepted": len(events),
            "duplicates": len(duplicates),
            "conflicts": len(self.conflicts),
            "rejected": len(bad),
        }


def _ingest(
    session: Session, lines: list[str], directory: Path, *, cut: int
) -> Iterator[ImportReport]:
    """Write ``lines`` as files of ``cut`` rows and import them the way ``meterbook ingest`` does,
    one file at a time: the caller may post between two files."""
    directory.mkdir(parents=True, exist_ok=True)
    start = len(list(directory.iterdir()))
    paths = []
    for k, i in enumerate(range(0, len(lines), cut)):
        path = directory / f"usage-{start + k:03d}.csv"
        path.write_text(HEADER + "".join(line + "\n" for line in lines[i : i + cut]))
        paths.append(path)
    rules, engine, importers, kinds = open_for_ingest(session.workspace)
    try:
        yield from ingest_files(engine, rules, paths, importers, now=NOW, kinds=kinds)
    finally:
        engine.dispose()


def build(
    session: Session,
    feed: Feed,
    mid: date,
    *,
    shuffle: random.Random | None = None,
    cut: int = 10**6,
    posts: Sequence[int] = (),
) -> dict[str, int]:
    """Import ``feed.before``, ``invoice --through mid``, import ``feed.after``, ``invoice --through
    THROUGH``; with ``shuffle``, each import in a random order, ``cut`` rows a file, and a ``post``
    through Sep 1 + ``posts[k]`` days after the k-th file. Returns the summed import counts."""
    totals = dict.fromkeys(("received", "accepted", "duplicates", "conflicts", "rejected"), 0)
    files = session.workspace.root / "incoming"
    for lines, through in ((feed.before, mid), (feed.after, THROUGH)):
        lines = list(lines)
        if shuffle is not None:
            shuffle.shuffle(lines)
        for k, report in enumerate(_ingest(session, lines, files, cut=cut)):
            assert (
                report.received
                == report.accepted + report.duplicates + report.conflicts + report.rejected
            )
            for key in totals:
                totals[key] += getattr(report, key)
            if k < len(posts):  # posting in between never changes the outcome
                session.post(through=START.date() + timedelta(days=posts[k]))
        session.invoice(through=through)
    return totals


def books_bytes(session: Session) -> dict[str, bytes]:
    books_dir = session.workspace.books_dir
    return {
        str(p.relative_to(books_dir)): p.read_bytes()
        for p in sorted(books_dir.rglob("*"))
        if p.is_file()
    }


def _workspace(root: Path, store: str | None = None) -> Session:
    config = f'store = "{store}"\n' if store else 'store = "sqlite:///var/events.sqlite"\n'
    return open_session(
        write_workspace(
            root, meters=METERS_CALLS_TOKENS, plans=PLANS, customers=CUSTOMERS_YAML, config=config
        )
    )


def check_books(session: Session) -> list[data.Directive]:
    """Load the books with Beancount; check the invariants of the module docstring but the bytes."""
    entries, errors, _ = load_books(session.workspace.main_file)
    assert errors == []
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        totals: dict[str, Decimal] = {}
        for posting in entry.postings:
            totals[posting.units.currency] = (
                totals.get(posting.units.currency, Decimal(0)) + posting.units.number
            )
        assert all(total == 0 for total in totals.values()), entry
        if "invoice" in entry.meta:
            customer = entry.meta["customer"]
            for kind in ("unbilled", "contract_asset"):
                account = session.rules.account(kind, customer=customer)
                settled = -sum(
                    (p.units.number for p in entry.postings if p.account == account), Decimal(0)
                )
                assert balance(entries, account, entry.date) == settled, (
                    entry.meta["invoice"],
                    account,
                )
    return entries


uses = st.lists(
    st.tuples(
        st.sampled_from(CUSTOMERS),
        st.integers(0, 60),
        st.integers(0, 86399),
        st.integers(1, 400),
        st.booleans(),
    ),
    min_size=3,
    max_size=30,
)
indices = st.lists(st.integers(0, 10**6), max_size=4)
copies = st.lists(st.integers(1, 15), max_size=30)
#: Usage every example starts with (11 calls each, imported before MID): past the free tier of
#: the graduated plans, so a late call in an invoiced cycle changes its amount.
BASE: list[Use] = [
    ("cal", 1, 3600, 1, False),
    ("cr", 1, 3600, 1, False),
    ("mc", 1, 3600, 1, False),
    ("ann", 15, 3600, 1, False),
    ("ann", 45, 3600, 1, False),
]
#: Invoice runs through these days (Sep 15, Oct 1, Oct 15) end cycles; any day in between too.
mids = st.one_of(st.sampled_from([14, 30, 44]), st.integers(14, 60))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(
    rows=[
        ("cal", 5, 100, 1, True),
        ("vol", 3, 5, 50, False),
        ("vol", 4, 5, 50, True),
        ("mc", 10, 0, 1, True),
        ("ann", 20, 0, 1, True),
        ("cr", 40, 0, 1, True),
    ],
    copies=[3],
    duplicates=[0, 3],
    conflicts=[1],
    bad=[0, 1, 2, 3],
    mid=30,
    order=random.Random(7),
    cut=2,
    posts=[10, 40],
)  # late usage: cal, mc, vol
@example(
    rows=[("vol", 8, 0, 91, False), ("vol", 10, 0, 17, True), ("vol", 16, 0, 30, False)],
    copies=[],
    duplicates=[],
    conflicts=[],
    bad=[],
    mid=44,
    order=random.Random(0),
    cut=1,
    posts=[],
)  # vol's late usage arrives after its Oct 15 invoice (test_posting: dated where it waits)
@given(
    rows=uses,
    copies=copies,
    duplicates=indices,
    conflicts=indices,
    bad=indices,
    mid=mids,
    order=st.randoms(use_true_random=False),
    cut=st.integers(1, 9),
    posts=st.lists(st.integers(0, 60), max_size=2),
)
def test_books_balance_and_do_not_depend_on_ingest_order_or_chunking(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[Use],
    copies: list[int],
    duplicates: list[int],
    conflicts: list[int],
    bad: list[int],
    mid: int,
    order: random.Random,
    cut: int,
    posts: list[int],
) -> None:
    """The books of the rows imported in file order, one file per import, equal those of the same
    rows shuffled, cut into ``cut``-row files and posted in between; both balance."""
    copies = [*[11] * len(BASE), *copies[: len(rows)], *[1] * (len(rows) - len(copies))]
    feed = Feed([*BASE, *rows], duplicates, conflicts, bad, copies)
    mid_day = START.date() + timedelta(days=mid)

    reference = _workspace(tmp_path_factory.mktemp("ref") / "ws")
    assert build(reference, feed, mid_day) == feed.expected

    shuffled = _workspace(tmp_path_factory.mktemp("shuffled") / "ws")
    assert build(shuffled, feed, mid_day, shuffle=order, cut=cut, posts=posts) == feed.expected

    assert books_bytes(shuffled) == books_bytes(reference)
    entries = check_books(reference)
    late = any(isinstance(e, data.Transaction) and e.meta.get("late") is True for e in entries)
    event(f"late adjustments: {late}")


# Fixed usage for the store comparison: an event a day per customer, Sep 1 – Oct 31; every
# fifth day's (Sep 4, 9, …) arrives after an invoice run through Oct 10 (late adjustments).
FIXED: list[Use] = [
    (customer, day, 3600 * (day % 24), 25 + 10 * day, day % 5 == 3)
    for customer in CUSTOMERS
    for day in range(61)
]


def test_books_are_the_same_bytes_on_sqlite_and_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The same files imported and invoiced the same way on each store give the same books, byte
    for byte."""
    feed = Feed(FIXED, duplicates=[0, 5, 17, 40], conflicts=[1, 9], bad=[0, 1, 2, 3])
    sessions = []
    try:
        for name, store in (("sqlite", None), ("postgresql", pg_url)):
            session = _workspace(tmp_path / name, store)
            assert build(session, feed, date(2026, 10, 10)) == feed.expected
            sessions.append(session)
        assert [s.engine.dialect.name for s in sessions] == ["sqlite", "postgresql"]
        assert books_bytes(sessions[0]) == books_bytes(sessions[1])
        entries = check_books(sessions[0])
        late = [
            e for e in entries if isinstance(e, data.Transaction) and e.meta.get("late") is True
        ]
        assert {e.meta["customer"] for e in late} >= {"cal", "ann", "vol", "mc"}
    finally:
        for session in sessions:
            session.engine.dispose()
