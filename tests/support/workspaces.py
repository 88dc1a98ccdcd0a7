"""Building blocks the test modules share: small workspaces, events put straight into the
store, the CLI in-process, balances read from loaded entries.

Ingest has its own tests; the posting, rating, close and payment tests insert
events directly (one batch row, then the rows) so each states only its data.
Plans, customers and events stay in each test module, next to the numbers
computed from them, unless several modules share a workspace (then it has its
own module in this package); only the meters most workspaces count with live here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path

from beancount.core import data
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from ledger.cli import cli
from ledger.events import Event, parse_time
from ledger.session import Session
from ledger.store import batches
from ledger.store import insert_events as store_events
from ledger.workspace import Workspace

#: The repository's root (its README, rules/ and books/).
REPO = Path(__file__).resolve().parents[2]
STORE = 'store = "sqlite:///var/events.sqlite"\n'


def module_scope(fixture_name: str, config: object) -> str:
    """The scope of a fixture shared by a module's tests: ``"module"``, but ``"function"`` while
    mutmut maps tests to functions (``python3 tasks.py mutation``: ``MUTANT_UNDER_TEST=stats``).

    mutmut records, test by test, which functions each test calls; a module fixture is built
    in the first test's setup only, so the module's other tests would never be run against
    the mutants of what the fixture calls (and those mutants would "survive" tests that catch
    them). Built per test while mapping, each test is mapped to everything it depends on;
    against a mutant the fixture is shared again, built once for the tests selected.
    """
    return "function" if os.environ.get("MUTANT_UNDER_TEST") == "stats" else "module"


#: ``api_calls`` counts ``api.request`` events.
METERS_CALLS = "meters:\n  api_calls: {event_type: api.request, aggregation: count, unit: call}\n"
#: ``api_calls`` as above, and ``tokens`` sums the ``tokens`` property of ``llm.completion`` events.
METERS_CALLS_TOKENS = (
    METERS_CALLS
    + "  tokens: {event_type: llm.completion, aggregation: sum, value: tokens, unit: token}\n"
)


def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store URL for a file in ``tmp_path``."""
    return f"sqlite:///{tmp_path / 'events.sqlite'}"


def write_workspace(
    root: Path,
    *,
    meters: str,
    plans: str,
    customers: str,
    config: str = STORE,
    plugins: Mapping[str, str] | None = None,
) -> Path:
    """A workspace directory with these rules (YAML text) and optional ``plugins/<name>.py``
    files."""
    (root / "rules").mkdir(parents=True)
    # plugins_dir first: ``config`` may end inside a TOML table such as ``[alerts]``
    (root / "meterbook.toml").write_text(
        ('plugins_dir = "plugins"\n' if plugins is not None else "") + config
    )
    (root / "rules" / "meters.yaml").write_text(meters)
    (root / "rules" / "plans.yaml").write_text(plans)
    (root / "rules" / "customers.yaml").write_text(customers)
    if plugins is not None:
        (root / "plugins").mkdir()
        for name, source in plugins.items():
            (root / "plugins" / f"{name}.py").write_text(source)
    return root


def open_session(root: Path, *, today: date | None = None) -> Session:
    """The workspace at ``root`` opened for work, as of ``today`` (default: the clock's day).

    The engine refuses writes dated after today: a test that writes books or issues
    documents after the clock's day opens its session as of a later day."""
    return Session.open(Workspace.load(root), today=today)


def insert_events(engine: Engine, rows: Iterable[Event]) -> None:
    """Store ``rows`` as one batch, without going through ingest."""
    values = None
    with engine.begin() as conn:
        batch = conn.execute(
            batches.insert().values(file="t", sha256="0" * 64, importer="test", started_at="now")
        ).inserted_primary_key[0]
        values = [e.row(batch) for e in rows]
        store_events(conn, values)


def calls(customer: str, days: Iterable[str], prefix: str = "") -> list[Event]:
    """One ``api.request`` event at noon UTC per day given (ids ``<customer>-<prefix><n>``)."""
    return [
        Event.build(
            source="t",
            id=f"{customer}-{prefix}{i}",
            customer=customer,
            type="api.request",
            time=parse_time(f"{day}T12:00:00Z"),
            properties={},
        )
        for i, day in enumerate(days)
    ]


def run_cli(root: Path | None, *args: str) -> Result:
    """``meterbook --workspace <root> <args>`` in-process (no ``--workspace`` when ``root`` is
    None)."""
    prefix = ["--workspace", str(root)] if root is not None else []
    return CliRunner().invoke(cli, [*prefix, *args])


def balance(
    entries: Iterable[data.Directive], account: str, on: date, currency: str | None = None
) -> Decimal:
    """Balance of ``account`` at the start of ``on`` (like a Beancount balance assertion), in
    ``currency`` only when one is given."""
    return sum(
        (
            p.units.number
            for e in entries
            if isinstance(e, data.Transaction) and e.date < on
            for p in e.postings
            if p.account == account and (currency is None or p.units.currency == currency)
        ),
        Decimal(0),
    )


def book_hashes(books_dir: Path) -> dict[str, str]:
    """SHA-256 of every file below ``books_dir``, keyed by its path relative to it: equal before and
    after means nothing in the books was written."""
    return {
        p.relative_to(books_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(books_dir.rglob("*"))
        if p.is_file()
    }
