"""Building blocks the test modules share: small workspaces and events put straight into the store.

Ingest has its own tests; the posting, rating, close and payment tests insert
events directly (one batch row, then the rows) so each states only its data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy import Engine

from ledger.events import Event, parse_time
from ledger.session import Session
from ledger.store import batches, events
from ledger.workspace import Workspace

STORE = 'store = "sqlite:///var/events.sqlite"\n'


def write_workspace(root: Path, *, meters: str, plans: str, customers: str, config: str = STORE,
                    plugins: Mapping[str, str] | None = None) -> Path:
    """A workspace directory with these rules (YAML text) and optional ``plugins/<name>.py`` files."""
    (root / "rules").mkdir(parents=True)
    (root / "meterbook.toml").write_text(config + ('plugins_dir = "plugins"\n' if plugins is not None else ""))
    (root / "rules" / "meters.yaml").write_text(meters)
    (root / "rules" / "plans.yaml").write_text(plans)
    (root / "rules" / "customers.yaml").write_text(customers)
    if plugins is not None:
        (root / "plugins").mkdir()
        for name, source in plugins.items():
            (root / "plugins" / f"{name}.py").write_text(source)
    return root


def open_session(root: Path) -> Session:
    return Session.open(Workspace.load(root))


def insert_events(engine: Engine, rows: Iterable[Event]) -> None:
    """Store ``rows`` as one batch, without going through ingest."""
    values = None
    with engine.begin() as conn:
        batch = conn.execute(batches.insert().values(
            file="t", sha256="0" * 64, importer="test", started_at="now")).inserted_primary_key[0]
        values = [e.row(batch) for e in rows]
        if values:
            conn.execute(events.insert(), values)


def calls(customer: str, days: Iterable[str], prefix: str = "") -> list[Event]:
    """One ``api.request`` event at noon UTC per day given (ids ``<customer>-<prefix><n>``)."""
    return [Event.build(source="t", id=f"{customer}-{prefix}{i}", customer=customer, type="api.request",
                        time=parse_time(f"{day}T12:00:00Z"), properties={}) for i, day in enumerate(days)]
