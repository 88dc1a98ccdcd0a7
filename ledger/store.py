"""The event store: SQLAlchemy 2 Core tables, schema versions, engine setup.

One row per accepted usage event, keyed by ``(source, event_id)``::

    events(pk, source, event_id, customer, type, time_us, properties, numbers, payload_hash, batch_id)

- ``time_us``: event time as UTC microseconds since the epoch (cut-offs compare integers).
- ``properties``: canonical JSON object, every value a string (meter filters compare text).
- ``numbers``: canonical JSON object of the numeric properties as ``[units, nanos]``
  pairs (see :mod:`ledger.money`), so SQL sums are exact on SQLite and PostgreSQL.
- ``payload_hash``: sha256 of the canonical payload; same id + same hash is a
  duplicate, same id + another hash a conflict (quarantined in ``conflicts``).

Rejected rows live in ``rejects`` with the raw row and reason; every import is
a row of ``batches`` with its counts. ``meta`` holds ``schema_version``;
:func:`upgrade` applies forward migrations in order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from ledger.errors import StoreError

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

batches = Table(
    "batches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("importer", String(64), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40)),
    Column("received", BigInteger, nullable=False, default=0),
    Column("accepted", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("conflicts", BigInteger, nullable=False, default=0),
    Column("rejected", BigInteger, nullable=False, default=0),
    Column("reasons", Text, nullable=False, default="{}"),
)

events = Table(
    "events", metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("customer", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("properties", Text, nullable=False),
    Column("numbers", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    UniqueConstraint("source", "event_id", name="uq_events_source_id"),
    Index("ix_events_type_customer_time", "type", "customer", "time_us"),
)

conflicts = Table(
    "conflicts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("stored_hash", String(64), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
)

rejects = Table(
    "rejects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("raw", Text, nullable=False),
    Column("importer", String(64), nullable=False, default=""),
    # set when `ingest --retry-rejected` ran the row again and it got another outcome
    Column("resolved_batch_id", Integer),
    # the row as an event object (JSON) when it could be read; what --retry-rejected runs again
    Column("record", Text),
)


# Issued invoices and credit notes are facts, not derived: the books are
# regenerated around them. Amounts are decimal text (exact on every engine).
invoices = Table(
    "invoices", metadata,
    Column("number", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("customer", String(255), nullable=False),
    Column("date", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", Text, nullable=False),
    # the whole invoice (lines, quantities, tiers, credits) as canonical JSON
    Column("document", Text, nullable=False),
    # what makes issuing twice impossible: one invoice per customer and invoice date
    Column("key", String(300), nullable=False, unique=True),
)

credit_notes = Table(
    "credit_notes", metadata,
    Column("number", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("invoice", String(32), ForeignKey("invoices.number"), nullable=False),
    Column("customer", String(255), nullable=False),
    Column("date", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("document", Text, nullable=False),
)

# Payments received (a bank or processor export), one row per payment reference:
# same reference + same payload hash is a duplicate, another hash a conflict kept
# aside in ``payment_conflicts`` (never overwritten). Amounts are decimal text.
payments = Table(
    "payments", metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("reference", String(255), nullable=False, unique=True),
    Column("date", String(10), nullable=False),
    Column("amount", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("invoice", String(255), nullable=False, default=""),
    Column("payload_hash", String(64), nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
)

payment_conflicts = Table(
    "payment_conflicts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(255), nullable=False),
    Column("stored_hash", String(64), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
)


# Reconciliation findings accepted at close (``meterbook close --accept ID --reason TEXT``):
# remembered across refused runs, and written into the close file when the month is sealed.
acceptances = Table(
    "acceptances", metadata,
    Column("period", String(7), primary_key=True),
    Column("finding", String(255), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("accepted_at", String(40), nullable=False),
)


def _v1(conn: Connection) -> None:
    for table in (meta, batches, events, conflicts, rejects):
        table.create(conn, checkfirst=True)


#: Forward migrations; the schema version is the number applied. Append, never edit.
def _v2(conn: Connection) -> None:
    for table in (invoices, credit_notes):
        table.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    # rejects.record: the readable form of a rejected row, for `ingest --retry-rejected`
    from sqlalchemy import inspect

    if "record" not in {c["name"] for c in inspect(conn).get_columns("rejects")}:
        conn.exec_driver_sql("ALTER TABLE rejects ADD COLUMN record TEXT")


def _v4(conn: Connection) -> None:
    for table in (payments, payment_conflicts):
        table.create(conn, checkfirst=True)


def _v5(conn: Connection) -> None:
    acceptances.create(conn, checkfirst=True)


def _v6(conn: Connection) -> None:
    # metering reads numbers for every event of a window: on SQLite a covering index
    # turns millions of random table-page lookups into one index range scan. Not on
    # PostgreSQL, whose btree entries are capped at ~2.7 kB (numbers is unbounded).
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_events_metering "
                             "ON events (type, customer, time_us, numbers)")


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]


def open_store(url: str, *, upgrade_schema: bool = True) -> Engine:
    """Open (and create or upgrade) the store at a SQLAlchemy URL.

    SQLite gets WAL, a busy timeout and foreign keys; its directory is created.
    """
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(f"store URL {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if upgrade_schema:
        try:
            upgrade(engine)
        except OperationalError as exc:
            raise StoreError(f"store {engine.url.render_as_string(hide_password=True)}: {exc.orig}") from None
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def schema_version(conn: Connection) -> int:
    """The number of migrations applied (0 for an empty database)."""
    if not conn.dialect.has_table(conn, "meta"):
        return 0
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0


def upgrade(engine: Engine) -> int:
    """Apply pending migrations in one transaction; return the schema version."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # one upgrader at a time when several processes open a new store
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7242001)")
        current = schema_version(conn)
        if current > len(MIGRATIONS):
            raise StoreError(
                f"store schema version {current} is newer than this meterbook ({len(MIGRATIONS)}); upgrade meterbook")
        for number in range(current, len(MIGRATIONS)):
            MIGRATIONS[number](conn)
        if current != len(MIGRATIONS):
            version = str(len(MIGRATIONS))
            if current == 0:
                conn.execute(meta.insert().values(key="schema_version", value=version))
            else:
                conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=version))
    return len(MIGRATIONS)
