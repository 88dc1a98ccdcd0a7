"""Each command reads the issued facts once, rates each day once and loads the books once.

The rerate workspace (:mod:`tests.support.rerate`: plan ``u`` at 1.00 a call, ``acme`` 30
calls in September, 20 in October, 10 in November, ``beta`` 10 in October) run through
``post``, ``invoice``, ``credit``, ``rerate``, ``close``, ``check``, ``trace``, ``statement``
and ``apply`` on a real SQLite store, with
counters wrapped around the engine's own functions by the test (nothing is replaced):

- ``load_facts``: the frozen snapshot of invoices, payments, credit notes, adjustments and
  pins. Once per command, and once more only after the command itself stored a fact that
  a later step reads (``rerate`` stores its credit note, then posts it);
- the single loaders (``load_invoices``, ``load_pins``...) called from anywhere but
  ``load_facts`` inside the engine: never, during a command (a reconciler plugin reading
  the store through ``context.engine`` is its own business);
- ``rating.rate``: never twice for the same (day, customers, pinned or not) in one command;
- ``books.load_books``: once before the command writes the books (``close`` loads them again
  only to check what it wrote: after the close file, after the seal).

And month after month (:func:`test_a_later_months_close_does_no_more_than_the_first`), a
close computes the evidence digests and renders the documents of what is open only: a
cycle's invoice freezes its accruals and their evidence, a sealed document whose file holds
its sealed bytes is not rendered again.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from beancount.core import data

import ledger.books
import ledger.facts
import ledger.rating
from ledger.closing import close_month, invoice_gated
from ledger.rerate import rerate
from tests.support.rerate import CUSTOMERS, PLANS, _calls, make, version
from tests.support.workspaces import (
    METERS_CALLS,
    book_hashes,
    insert_events,
    open_session,
    run_cli,
    write_workspace,
)

LOADERS = (
    "load_invoices",
    "load_payments",
    "load_applications",
    "load_credit_notes",
    "load_adjustments",
    "load_pins",
    "load_grant_reductions",
)


class Reads:
    """Calls of the engine's readers, by name; the single loaders by the module calling them."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.stray: list[str] = []  # single loaders called outside ledger.facts, by the engine
        self.rated: list[tuple[date, frozenset[str] | None, bool]] = []

    def reset(self) -> None:
        self.calls.clear()
        self.stray.clear()
        self.rated.clear()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    """Counters around ``load_facts``, every single loader, ``rating.rate`` and
    ``books.load_books``, wherever a module of the engine bound them."""
    seen = Reads()

    def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.calls[name] += 1
            caller = sys._getframe(1).f_globals.get("__name__", "")
            # the engine's modules; a plugin (``ledger.plugins.*``) reads the store its own way
            engine = caller.startswith("ledger.") and not caller.startswith("ledger.plugins.")
            if name in LOADERS and engine and not caller.startswith("ledger.facts"):
                seen.stray.append(f"{name} from {caller}")
            if name == "rate":
                customers = kwargs.get("customers")
                seen.rated.append(  # rerate rates both as invoiced (pinned) and as now
                    (
                        kwargs["through"],
                        None if customers is None else frozenset(customers),
                        kwargs.get("pins") is not None,
                    )
                )
            return original(*args, **kwargs)

        return wrapper

    originals: dict[str, Any] = {"rate": ledger.rating.rate, "load_books": ledger.books.load_books}
    originals["load_facts"] = ledger.facts.load_facts
    for module in [m for n, m in sys.modules.items() if n.startswith("ledger.facts.")]:
        for name in LOADERS:
            if hasattr(module, name) and getattr(module, name).__module__ == module.__name__:
                originals[name] = getattr(module, name)
    wrappers = {name: counted(name, fn) for name, fn in originals.items()}
    for module_name, module in list(sys.modules.items()):
        if not (module_name == "ledger" or module_name.startswith("ledger.")):
            continue
        for name, fn in originals.items():
            if getattr(module, name, None) is fn:
                monkeypatch.setattr(module, name, wrappers[name])
    yield seen


def _make(tmp_path: Path) -> Path:
    """The rerate workspace with its events stored, nothing invoiced or posted yet."""
    root = write_workspace(
        tmp_path / "ws",
        meters=METERS_CALLS,
        plans=PLANS,
        customers=CUSTOMERS,
        config='store = "sqlite:///var/events.sqlite"\n',
    )
    session = open_session(root)
    insert_events(
        session.engine,
        [
            *_calls("acme", 9, 30),
            *_calls("acme", 10, 20),
            *_calls("acme", 11, 10),
            *_calls("beta", 10, 10),
        ],
    )
    return root


def _once_each(reads: Reads) -> None:
    assert reads.stray == []
    assert len(reads.rated) == len(set(reads.rated)), reads.rated


def test_post_and_invoice_read_the_facts_once(tmp_path: Path, reads: Reads) -> None:
    root = _make(tmp_path)
    session = open_session(root)
    reads.reset()
    session.post(date(2026, 11, 20))
    assert reads.calls["load_facts"] == 1
    assert reads.calls["rate"] == 1  # through Nov 20, every customer
    _once_each(reads)

    reads.reset()
    # the gate runs every reconciler for September and October (the months the drafts bill)
    issued, gate = invoice_gated(session, date(2026, 11, 1))
    assert [i.total for i in issued] and sorted(gate.findings) == ["2026-09", "2026-10"]
    assert reads.calls["load_facts"] == 1  # issuing stores invoices; nothing reads after
    assert reads.calls["load_books"] <= 1  # the gate's reconcilers share one load
    _once_each(reads)


def test_credit_rerate_and_close_read_the_facts_once(tmp_path: Path, reads: Reads) -> None:
    root = make(tmp_path)
    session = open_session(root)

    reads.reset()
    session.credit("INV-2026-000001", amount="5.00", reason="goodwill", on=date(2026, 11, 20))
    assert reads.calls["load_facts"] == 1
    _once_each(reads)

    (root / "rules" / "plans.yaml").write_text(version("0.80"))
    session = open_session(root)
    reads.reset()
    report = rerate(session, date(2026, 10, 1), on=date(2026, 11, 20))
    assert report.documents
    # once to compute the differences, once more by the post of the notes it stored
    assert reads.calls["load_facts"] == 2
    _once_each(reads)

    reads.reset()
    closed = close_month(session, "2026-09")
    assert closed.seal_hash and not closed.refused
    assert reads.calls["load_facts"] == 1  # nothing due to issue: no fact stored
    # once for the reconcilers and the assertions; then to check the close file, the seal
    assert reads.calls["load_books"] == 3
    _once_each(reads)


MONTHLY = """\
customers:
  cal: {currency: USD, billing_anchor: calendar, subscriptions: [{plan: u, start: 2026-01-01}]}
  ann: {currency: USD, billing_anchor: start, subscriptions: [{plan: u, start: 2026-01-15}]}
"""


def test_a_later_months_close_does_no_more_than_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plan ``u`` (1.00 a call), ``cal`` on calendar months from Jan 1 and ``ann`` on cycles
    from the 15th, 3 calls each on the 2nd, 10th and 20th of every month, January to April.
    Each month is invoiced through its last day and closed, as ``meterbook invoice`` and
    ``close`` do.

    Each close digests the evidence of the two accrual points of its month's end (``cal``'s
    cycle ends there, ``ann``'s has its month-end point there): 2. January's close renders no
    document (nothing is dated in January: ``cal``'s first invoice is of Feb 1, ``ann``'s of
    Feb 15); every later close renders the two invoices issued in its month, 2, and no more:
    the invoiced cycles' accruals are frozen with their evidence and the sealed months'
    documents are intact on disk. Before (measured on the previous code, same workspace), the
    closes digested 6, 15, 24 and 33 points and rendered 0, 10, 20 and 30 invoices: every
    accrual point and every invoice since January, several times over.
    """
    import ledger.session
    from ledger.session import Session

    root = write_workspace(tmp_path / "ws", meters=METERS_CALLS, plans=PLANS, customers=MONTHLY)
    session = open_session(root, today=date(2026, 5, 20))
    from ledger.events import Event, parse_time

    events: list[Event] = []

    for customer in ("cal", "ann"):
        for month in range(1, 5):
            for day in (2, 10, 20):
                events += [
                    Event.build(
                        source="t",
                        id=f"{customer}-{month}-{day}-{n}",
                        customer=customer,
                        type="api.request",
                        time=parse_time(f"2026-{month:02d}-{day:02d}T12:00:00Z"),
                        properties={},
                    )
                    for n in range(3)
                ]
    insert_events(session.engine, events)

    counts: Counter[str] = Counter()
    digest, render = Session.digest, ledger.session.invoice_documents

    def counted_digest(self: Session, rated: Any) -> str:
        counts["digests"] += 1
        return digest(self, rated)

    def counted_render(*args: Any, **kwargs: Any) -> dict[str, str]:
        counts["renders"] += 1
        return render(*args, **kwargs)

    monkeypatch.setattr(Session, "digest", counted_digest)
    monkeypatch.setattr(ledger.session, "invoice_documents", counted_render)
    closes: dict[str, Counter[str]] = {}
    for month, end in (("2026-01", 31), ("2026-02", 28), ("2026-03", 31), ("2026-04", 30)):
        day = date(2026, int(month[5:]), end)
        invoice_gated(open_session(root, today=date(2026, 5, 20)), day)
        counts.clear()
        closed = close_month(open_session(root, today=date(2026, 5, 20)), month)
        assert closed.seal_hash, closed.refused
        closes[month] = Counter(counts)
    assert closes["2026-01"] == Counter(digests=2)
    assert (
        closes["2026-02"] == closes["2026-03"] == closes["2026-04"] == Counter(digests=2, renders=2)
    )


def test_a_commands_reads_are_its_threads_only(tmp_path: Path) -> None:
    """The API server's request threads share one session: a command's reads are seen by the
    thread running it, never by another (which reads the store itself)."""
    from threading import Thread

    session = open_session(_make(tmp_path))
    seen: list[object] = []
    with session.command() as reads:
        assert session.reads is reads and session.stored_facts() is session.stored_facts()
        thread = Thread(target=lambda: seen.append(session.reads))
        thread.start()
        thread.join()
    assert seen == [None] and session.reads is None


def test_check_trace_statement_and_apply_read_the_facts_once(tmp_path: Path, reads: Reads) -> None:
    """The rerate workspace (invoiced through Nov 1, BANK-1 paying beta's INV-2026-000003 on
    Nov 5, posted through Nov 20) and a second payment, BANK-2, naming no invoice. ``check``,
    ``trace`` of an invoice and of a cycle, acme's ``statement`` for its October cycle and
    ``apply`` of BANK-2 to INV-2026-000001 each read the issued facts once (before, in this
    workspace: ``check`` 9 times, besides single loaders from audit, rerate and
    subscriptions; ``trace``, ``statement`` and ``apply`` through single loaders)."""
    from ledger.audit import check_books
    from ledger.statements import write_statement
    from ledger.trace import trace

    root = make(tmp_path)
    session = open_session(root)
    (tmp_path / "more.csv").write_text(
        "date,amount,currency,invoice,reference\n2026-11-06,12.00,USD,,BANK-2\n"
    )
    assert run_cli(root, "ingest", str(tmp_path / "more.csv")).exit_code == 0
    session.post(date(2026, 11, 20))

    reads.reset()
    results = check_books(session.workspace)
    assert [r.name for r in results if not r.ok] == []
    assert reads.calls["load_facts"] == 1
    _once_each(reads)

    for ref in ("INV-2026-000001", "^acme-2026-10-01"):
        reads.reset()
        assert trace(open_session(root), ref).verified
        assert reads.calls["load_facts"] == 1, ref
        _once_each(reads)

    reads.reset()
    write_statement(open_session(root), "acme", which="2026-10-15", out=tmp_path / "st")
    assert reads.calls["load_facts"] == 1
    _once_each(reads)

    reads.reset()
    applied, stored = open_session(root).apply("BANK-2", "INV-2026-000001", on=date(2026, 11, 20))
    assert stored and applied.amount == 12
    assert reads.calls["load_facts"] == 1
    _once_each(reads)


def _calls_on(customer: str, day: str, n: int, tag: str = "") -> list[Any]:
    """``n`` calls of ``customer`` at noon UTC on ``day``."""
    from ledger.events import Event, parse_time

    return [
        Event.build(
            source="t",
            id=f"{customer}-{day}-{i}{tag}",
            customer=customer,
            type="api.request",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={},
        )
        for i in range(n)
    ]


#: the day the monthly workspaces are run as of
AUGUST = date(2026, 8, 20)
ENDS = {1: 31, 2: 28, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31}


def _monthly(root: Path, store_url: str | None = None) -> Path:
    """``MONTHLY`` with 3 calls each of ``cal`` and ``ann`` on the 2nd, 10th and 20th of every
    month from January to July, nothing invoiced or posted (in the store at ``store_url``)."""
    root = write_workspace(
        root,
        meters=METERS_CALLS,
        plans=PLANS,
        customers=MONTHLY,
        **({"config": f'store = "{store_url}"\n'} if store_url else {}),
    )
    insert_events(
        open_session(root, today=AUGUST).engine,
        [
            event
            for customer in ("cal", "ann")
            for month in range(1, 8)
            for day in (2, 10, 20)
            for event in _calls_on(customer, f"2026-{month:02d}-{day:02d}", 3)
        ],
    )
    return root


def _month_end(root: Path, month: int) -> None:
    """``meterbook invoice --through`` the month's last day, then ``meterbook close``."""
    invoice_gated(open_session(root, today=AUGUST), date(2026, month, ENDS[month]))
    closed = close_month(open_session(root, today=AUGUST), f"2026-{month:02d}")
    assert closed.seal_hash, closed.refused


def test_a_later_months_invoice_and_close_rate_no_more_than_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    """The workspace of :func:`test_a_later_months_close_does_no_more_than_the_first` (plan
    ``u`` at 1.00 a call; ``cal`` on calendar months from Jan 1, ``ann`` on cycles from the
    15th; 3 calls each on the 2nd, 10th and 20th of every month) invoiced through each month's
    last day and closed, January to June. Counted: the accrual windows metering measures
    (one per cycle, meter and accrual point rated) in each month's invoice + close.

    From February on, every month's work is the same, 10 windows (January: 4, nothing was
    invoiced before): the cycles of the sealed months were invoiced with nothing stored in
    their time since, so they are not rated again (their invoices' frozen accruals are what
    rating would give). Before (the previous code, same workspace) each month measured 6
    more than the last: 10, 16, 22, 28, 34 from February to June.

    Then a late call of ``cal`` dated 2026-02-10, stored after February was invoiced and
    sealed: July's run rates cal's February cycle again (its window got an event after its
    invoice's watermark), and the books post the 1.00 as late usage, as before. On SQLite and
    PostgreSQL (the watermark is the ``pk`` sequence's last value there).
    """
    root = _monthly(tmp_path / "ws", store_url)
    windows: Counter[str] = Counter()
    measure = ledger.rating.measure

    def counted(engine: Any, meter: Any, requested: Any, *args: Any) -> Any:
        windows["measured"] += len(requested)
        return measure(engine, meter, requested, *args)

    monkeypatch.setattr(ledger.rating, "measure", counted)
    done: dict[int, int] = {}
    for month in range(1, 7):
        windows.clear()
        _month_end(root, month)
        done[month] = windows["measured"]
    assert done == {1: 4, 2: 10, 3: 10, 4: 10, 5: 10, 6: 10}

    session = open_session(root, today=AUGUST)
    insert_events(session.engine, _calls_on("cal", "2026-02-10", 1, tag="-late"))
    windows.clear()
    _month_end(root, 7)
    assert windows["measured"] > done[6]  # cal's February cycle is rated again
    entries, errors, _options = ledger.books.load_books(session.workspace.main_file)
    assert errors == []
    late = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and (e.meta or {}).get("late")
        and e.meta.get("customer") == "cal"
    ]
    assert [str(e.meta["usage_date"]) for e in late] == ["2026-02-28"]
    assert sum(p.units.number for e in late for p in e.postings if p.units.number > 0) == 1


def test_settled_cycles_leave_the_books_as_rating_everything_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monthly workspace run January to July twice, with late calls of ``cal`` (Feb 10)
    and ``ann`` (Mar 16) stored after March's close: once as the commands run, the store
    taken back after April's close to the schema before ``invoice_watermarks`` (as an older
    meterbook left it: the invoices issued until then have no watermark, so their cycles are
    rated again), and once with no cycle ever settled (every cycle rated, as before). Every
    book file, close report and document is byte for byte the same."""
    from sqlalchemy import text

    from ledger.session import Session
    from ledger.store import MIGRATIONS, _v_invoice_watermarks, open_store

    def run(root: Path, *, downgrade: bool) -> dict[str, str]:
        for month in range(1, 8):
            if month == 4:
                late = [
                    *_calls_on("cal", "2026-02-10", 1, "-l"),
                    *_calls_on("ann", "2026-03-16", 2),
                ]
                insert_events(open_session(root, today=AUGUST).engine, late)
            _month_end(root, month)
            if downgrade and month == 4:
                engine = open_store(open_session(root, today=AUGUST).workspace.store_url)
                with engine.begin() as conn:
                    conn.exec_driver_sql("DROP TABLE invoice_watermarks")
                    conn.execute(
                        text("UPDATE meta SET value = :v WHERE key = 'schema_version'"),
                        {"v": str(MIGRATIONS.index(_v_invoice_watermarks))},
                    )
                engine.dispose()
        return book_hashes(root / "books")

    settling = run(_monthly(tmp_path / "a"), downgrade=True)
    monkeypatch.setattr(Session, "settled", lambda self, facts: frozenset())
    assert run(_monthly(tmp_path / "b"), downgrade=False) == settling
