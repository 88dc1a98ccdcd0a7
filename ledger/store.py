"""The event store: SQLAlchemy 2 Core tables, schema versions, engine setup.

One row per accepted usage event, keyed by ``(source, event_id)``::

    events(pk, source, event_id, customer, type, time_us, properties, numbers, payload_hash,
           batch_id)

- ``time_us``: event time as UTC microseconds since the epoch (cut-offs compare integers).
- ``properties``: canonical JSON object, every value a string (meter filters compare text).
- ``numbers``: canonical JSON object of the numeric properties as ``[units, nanos]``
  pairs (see :mod:`ledger.money`), so SQL sums are exact on SQLite and PostgreSQL.
- ``payload_hash``: sha256 of the canonical payload; same id + same hash is a
  duplicate, same id + another hash a conflict (quarantined in ``conflicts``).
- ``q_name``, ``q_units``, ``q_nanos``: the quantity metering reads, typed
  (PostgreSQL), where ``events`` is partitioned by month and ``event_keys`` keeps
  ``(source, event_id)`` unique (see "events at scale" below).

Rejected rows live in ``rejects`` with the raw row and reason; every import is
a row of ``batches`` with its counts. ``meta`` holds ``schema_version``;
:func:`upgrade` applies forward migrations in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
    func,
    select,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from ledger.errors import StoreError
from ledger.period import Month

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

batches = Table(
    "batches",
    metadata,
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
    "events",
    metadata,
    Column(
        "pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("source", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("customer", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("properties", Text, nullable=False),
    Column("numbers", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    # the quantity metering reads, typed (PostgreSQL; NULL on SQLite): one numeric property
    # of the event (``q_name``) as [units, nanos] when its units fit 64 bits (see _v_pg_events)
    Column("q_name", String(255)),
    Column("q_units", BigInteger),
    Column("q_nanos", BigInteger),
    UniqueConstraint("source", "event_id", name="uq_events_source_id"),
)

conflicts = Table(
    "conflicts",
    metadata,
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
    "rejects",
    metadata,
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
    "invoices",
    metadata,
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
    "credit_notes",
    metadata,
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
    "payments",
    metadata,
    Column(
        "pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
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
    "payment_conflicts",
    metadata,
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
    "acceptances",
    metadata,
    Column("period", String(7), primary_key=True),
    Column("finding", String(255), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("accepted_at", String(40), nullable=False),
)

# Live meter totals (``importers/live_totals.py``, ``ledger.live_totals``): what the
# product's own meter reported per day, the dual-track check's other record. One row
# per (source, date, customer, meter); the quantity as exact [units, nanos] columns so
# SQL sums are exact. The same key with another quantity is a conflict kept aside.
live_totals = Table(
    "live_totals",
    metadata,
    Column(
        "pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("source", String(255), nullable=False),
    Column("date", String(10), nullable=False),
    Column("customer", String(255), nullable=False),
    Column("meter", String(255), nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("nanos", BigInteger, nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
    UniqueConstraint("source", "date", "customer", "meter", name="uq_live_totals_key"),
    Index("ix_live_totals_date", "date", "meter"),
)

live_total_conflicts = Table(
    "live_total_conflicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("date", String(10), nullable=False),
    Column("customer", String(255), nullable=False),
    Column("meter", String(255), nullable=False),
    Column("stored_quantity", Text, nullable=False),
    Column("quantity", Text, nullable=False),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
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
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ix_events_metering "
            "ON events (type, customer, time_us, numbers)"
        )


def _v_live_totals(conn: Connection) -> None:
    for table in (live_totals, live_total_conflicts):
        table.create(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
MIGRATIONS.append(_v_live_totals)


# Cap alerts raised (``ledger.alerts``, ``meterbook alerts``): one row per crossing id,
# so each crossing is raised (and notified) once. Figures are decimal text.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(600), primary_key=True),  # usage-cap:acme:api_calls:2026-10-15:80
    Column("kind", String(32), nullable=False),
    Column("customer", String(255), nullable=False),
    Column("meter", String(255), nullable=False, default=""),
    Column("cycle", String(21), nullable=False),
    Column("threshold", Text, nullable=False),
    Column("cap", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("date", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("raised_at", String(40), nullable=False),
    # the meter's unit or the currency, so a delivery retried later sends the alert as raised;
    # NULL on alerts raised before the column existed (they have no delivery left to retry)
    Column("unit", String(255)),
)


def _v_alerts(conn: Connection) -> None:
    alerts.create(conn, checkfirst=True)


MIGRATIONS.append(_v_alerts)


# Re-rating (``ledger.rerate``, ``meterbook rerate``). ``cycle_terms``: the plan version
# each issued cycle was invoiced under (usage: at its arrears invoice; fee: at its
# advance base-fee invoice), as the version's effective date ("" = original terms).
# ``rerates``: one row per invoice line a rerate run changed, with the credit note
# (CN-…) or debit adjustment (DA-…) that carries it. Amounts are decimal text.
# Each pin also keeps the invoice that set it and a sha256 of the pinned version's
# terms as they were then (``ledger.rerate.terms_digest``), so a version edited in
# place afterwards is found; rows pinned before these columns existed have NULL
# there: their terms at invoicing are unknown.
cycle_terms = Table(
    "cycle_terms",
    metadata,
    Column("link", String(300), primary_key=True),  # acme-2026-10-01
    Column("plan", String(255), nullable=False),
    Column("usage_version", String(10)),
    Column("fee_version", String(10)),
    Column("usage_digest", String(64)),
    Column("fee_digest", String(64)),
    Column("usage_invoice", String(32)),  # INV-2026-000002
    Column("fee_invoice", String(32)),
)

rerates = Table(
    "rerates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", Integer, nullable=False),
    Column("document", String(32), nullable=False),  # CN-2026-000004 | DA-2026-000001
    Column("customer", String(255), nullable=False),
    Column("invoice", String(32), ForeignKey("invoices.number"), nullable=False),
    Column(
        "line", Integer, nullable=False
    ),  # 1-based invoice line, 0: a line the invoice did not have
    Column(
        "line_key", String(300), nullable=False
    ),  # usage:api_calls | commitment | base_fee:advance | …
    Column("kind", String(32), nullable=False),
    Column("meter", String(255), nullable=False, default=""),
    Column("link", String(300), nullable=False),
    Column("cycle", String(21), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("invoiced", Text, nullable=False),
    Column("rerated", Text, nullable=False),
    Column(
        "amount", Text, nullable=False
    ),  # the difference posted: rerated − pinned − earlier runs
    Column("date", String(10), nullable=False),
    Column("since", String(10), nullable=False),
    Column("rules", String(64), nullable=False),
    Index("ix_rerates_invoice", "invoice", "line_key"),
)


def _v_rerate(conn: Connection) -> None:
    for table in (cycle_terms, rerates):
        table.create(conn, checkfirst=True)


MIGRATIONS.append(_v_rerate)


def _v_terms_digest(conn: Connection) -> None:
    # cycle_terms: the invoice and terms digest of each pin; existing pins keep NULL (unknown)
    from sqlalchemy import inspect

    present = {c["name"] for c in inspect(conn).get_columns("cycle_terms")}
    for name, width in (
        ("usage_digest", 64),
        ("fee_digest", 64),
        ("usage_invoice", 32),
        ("fee_invoice", 32),
    ):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE cycle_terms ADD COLUMN {name} VARCHAR({width})")


MIGRATIONS.append(_v_terms_digest)


# Alert deliveries not made yet (``ledger.alerts``): one row per raised alert and
# notification plugin, written with the alert and deleted when that plugin takes it, so a
# plugin that failed is retried alone and the others never hear the alert twice.
# ``last_attempt`` NULL: never called; set with ``error`` NULL: a call in progress (claimed
# by one run); ``error`` set: the last call failed, the next run claims it again.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("alert_id", String(600), ForeignKey("alerts.id"), primary_key=True),
    Column(
        "plugin", String(255), primary_key=True
    ),  # meterbook_local.mailer, ledger.plugins.webhook
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("last_attempt", String(40)),  # ISO 8601 UTC, seconds
)


def _v_alert_deliveries(conn: Connection) -> None:
    # alerts.unit: what a retried delivery needs to rebuild the alert; earlier alerts keep NULL
    from sqlalchemy import inspect

    if "unit" not in {c["name"] for c in inspect(conn).get_columns("alerts")}:
        conn.exec_driver_sql("ALTER TABLE alerts ADD COLUMN unit VARCHAR(255)")
    alert_deliveries.create(conn, checkfirst=True)


MIGRATIONS.append(_v_alert_deliveries)


def open_store(url: str, *, upgrade_schema: bool = True) -> Engine:
    """Open (and create or upgrade) the store at a SQLAlchemy URL.

    SQLite gets WAL, a busy timeout and foreign keys; its directory is created.
    Every way opening can fail (a bad URL, a driver not installed, a server not
    reachable, a file that is not a database, an unknown schema version) is one
    :class:`StoreError` line naming the URL with its password hidden.
    """
    shown = safe_url(url)
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url[len("sqlite:///") :])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"store {shown}: cannot create its folder {path.parent}: {exc.strerror or exc}"
            ) from None
        if path.is_dir():
            raise StoreError(f"store {shown}: {path} is a directory, not a database file")
    try:
        engine = create_engine(url, future=True)
    except ImportError as exc:
        raise missing_driver(url, exc) from None
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(f"store URL {shown}: {one_line(exc)}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if upgrade_schema:
        try:
            upgrade(engine)
        except (
            DBAPIError
        ) as exc:  # OperationalError (unreachable, locked), DatabaseError (not a database), …
            engine.dispose()
            raise StoreError(f"store {shown}: {one_line(exc.orig)}") from None
        except (
            ImportError,
            OSError,
        ) as exc:  # a driver that fails only on connecting; a socket error
            engine.dispose()
            raise StoreError(f"store {shown}: {one_line(exc)}") from None
    return engine


def missing_driver(url: str, exc: ImportError) -> StoreError:
    """The one line for a store URL whose database driver cannot be imported: psycopg is the
    ``postgresql`` extra, so a SQLite-only install names the extra to install."""
    if (exc.name or "").split(".")[0] in ("psycopg", "psycopg_binary"):
        return StoreError(
            f"store {safe_url(url)}: the PostgreSQL driver psycopg is not installed; "
            "install it with: pip install 'meterbook[postgresql]'"
        )
    return StoreError(f"store URL {safe_url(url)}: {one_line(exc)}")


def safe_url(url: str) -> str:
    """The URL as it may be printed: the password hidden.

    >>> safe_url("postgresql+psycopg://me:secret@db:5432/meter")
    'postgresql+psycopg://me:***@db:5432/meter'
    """
    from sqlalchemy import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("://", 1)[0] + "://…" if "@" in url else url


def one_line(error: object) -> str:
    """An error's text as one line: drivers (psycopg) explain a failed connection over several.

    >>> one_line(Exception("connection failed: refused\\nIs the server running?\\n"))
    'connection failed: refused; Is the server running?'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


#: Every SQLite connection of the store. A 32 MiB page cache (default 2 MiB) keeps
#: the index pages an import writes to in memory instead of spilling and re-reading them.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA cache_size=-32768",
)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def schema_version(conn: Connection) -> int:
    """The number of migrations applied (0 for an empty database)."""
    if not conn.dialect.has_table(conn, "meta"):
        return 0
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    if value is None:
        return 0
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise StoreError(
            f"store schema_version {value!r} is not a version number (meta.schema_version); "
            "this store was damaged or not made by meterbook"
        )
    return number


def upgrade(engine: Engine) -> int:
    """Apply pending migrations in one transaction; return the schema version."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # one upgrader at a time when several processes open a new store
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7242001)")
        current = schema_version(conn)
        if current > len(MIGRATIONS):
            raise StoreError(
                f"store schema version {current} is newer than this meterbook "
                f"({len(MIGRATIONS)}); upgrade meterbook"
            )
        for number in range(current, len(MIGRATIONS)):
            MIGRATIONS[number](conn)
        if current != len(MIGRATIONS):
            version = str(len(MIGRATIONS))
            if current == 0:
                conn.execute(meta.insert().values(key="schema_version", value=version))
            else:
                conn.execute(
                    meta.update().where(meta.c.key == "schema_version").values(value=version)
                )
    return len(MIGRATIONS)


# The live API (``ledger.api``, ``meterbook api``, ``meterbook keys``). ``api_keys``: one row
# per key, only a sha256 of the key (the key itself is shown once, at creation); ``scope``
# ingest or portal, a portal key bound to one ``customer``. ``api_batches``: the key that
# made each ingest batch (also in ``batches.file``, ``api:<key id>:<request id>``), written
# with the batch's live counters in one transaction, so each batch is counted exactly once.
# ``api_counters``: the API's live totals per customer, meter and local day (the dual-track
# reconciler's live record), exact ``units``/``nanos``; ``latest_us`` the time of the event
# behind a ``latest`` meter's figure. ``cap_changes``: self-service usage caps, one dated
# fact per change, with the key that made it; the last change on or before a day applies.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("customer", String(255)),
    Column("key_hash", String(64), nullable=False),
    Column("label", Text, nullable=False, default=""),
    Column("created_at", String(40), nullable=False),
    Column("revoked_at", String(40)),
)

api_batches = Table(
    "api_batches",
    metadata,
    Column("batch_id", Integer, ForeignKey("batches.id"), primary_key=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("counted_at", String(40), nullable=False),
)

api_counters = Table(
    "api_counters",
    metadata,
    Column("customer", String(255), primary_key=True),
    Column("meter", String(255), primary_key=True),
    Column("date", String(10), primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("nanos", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("latest_us", BigInteger, nullable=False, default=0),
)

cap_changes = Table(
    "cap_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer", String(255), nullable=False),
    Column("meter", String(255), nullable=False),
    Column("cap", Text, nullable=False),
    Column("previous", Text, nullable=False),
    Column("effective", String(10), nullable=False),
    Column("changed_at", String(40), nullable=False),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Index("ix_cap_changes_customer", "customer", "meter", "effective"),
)


def _v_api(conn: Connection) -> None:
    for table in (api_keys, api_batches, api_counters, cap_changes):
        table.create(conn, checkfirst=True)


MIGRATIONS.append(_v_api)


# --- cash application (issue 12) --------------------------------------------------------
#
# ``cash_applications``: cash already received, applied or paid out later
# (``ledger.payments``, ``meterbook apply`` / ``meterbook refund``). ``source`` is the
# payment reference whose unapplied cash, or the credit note number whose credit balance
# (refund liability), it draws on; ``invoice`` the invoice an application pays ("" for a
# refund); ``reference`` its own key (a refund: the payout's bank reference). Amounts are
# decimal text, dates ISO days.
cash_applications = Table(
    "cash_applications",
    metadata,
    Column("reference", String(255), primary_key=True),
    Column("kind", String(8), nullable=False),  # apply | refund
    Column("date", String(10), nullable=False),
    Column("source", String(255), nullable=False),
    Column("invoice", String(255), nullable=False, default=""),
    Column("amount", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("recorded_at", String(40), nullable=False),
)


def _v_cash_applications(conn: Connection) -> None:
    cash_applications.create(conn, checkfirst=True)


MIGRATIONS.append(_v_cash_applications)


# --- events at scale (issue 13) ---------------------------------------------------------
#
# SQLite keeps ``events`` as one table; ``ix_events_type_customer_time`` was a prefix of the
# covering metering index (type, customer, time_us, numbers) and only cost inserts: dropped.
#
# PostgreSQL: ``events`` is partitioned by month (declarative RANGE partitions on
# ``time_us``, one table ``events_yYYYYmMM`` per UTC month, created when an import or
# :func:`insert_events` first needs it, see :func:`ensure_partitions`), and
# ``(source, event_id)`` is kept unique by ``event_keys``, a table of its own: a
# unique index of a partitioned table must contain the partition key, and
# ``(source, event_id, time_us)`` would let the same id arrive twice at two times.
# ``event_keys`` holds the key, the payload hash, the batch and the time of each stored
# event (one b-tree, plain, so ``ON CONFLICT DO NOTHING`` on it is exact across months);
# an event is written to ``event_keys`` and ``events`` in the same transaction.
# ``ix_events_metering (type, customer, time_us) INCLUDE (q_name, q_units, q_nanos)``
# serves the metering query from the index (``q_*``: the typed quantity, see ``events``).

#: Microseconds of a UTC day.
_DAY_US = 86_400_000_000

event_keys = Table(
    "event_keys",
    metadata,
    Column("source", String(255), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("payload_hash", String(64), nullable=False),
    Column("batch_id", Integer, nullable=False),
    Column("time_us", BigInteger, nullable=False),
)

#: The typed quantity of rows already stored (no rules at hand): the event's first
#: numeric property by name, when its units fit 64 bits. ``{n}``: the numbers column.
_Q_OF_NUMBERS = """
    SELECT q.k AS q_name, (q.v ->> 0)::bigint AS q_units, (q.v ->> 1)::bigint AS q_nanos
    FROM (SELECT k, v FROM jsonb_each(({n})::jsonb) AS e(k, v) ORDER BY k COLLATE "C" LIMIT 1) AS q
    WHERE (q.v ->> 0)::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
"""


def _v_pg_events(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_events_type_customer_time")
        from sqlalchemy import inspect

        present = {c["name"] for c in inspect(conn).get_columns("events")}
        typed = (("q_name", "VARCHAR(255)"), ("q_units", "BIGINT"), ("q_nanos", "BIGINT"))
        for name, kind in typed:
            if name not in present:
                conn.exec_driver_sql(f"ALTER TABLE events ADD COLUMN {name} {kind}")
        return
    run = conn.exec_driver_sql
    # the table as it was (plain, unique (source, event_id)) moves aside, its rows are copied over
    run("ALTER TABLE events RENAME TO events_unpartitioned")
    run("ALTER SEQUENCE events_pk_seq OWNED BY NONE")
    run(
        'CREATE TABLE event_keys (source VARCHAR(255) COLLATE "C" NOT NULL, '
        'event_id VARCHAR(255) COLLATE "C" NOT NULL, payload_hash VARCHAR(64) NOT NULL, '
        "batch_id INTEGER NOT NULL, time_us BIGINT NOT NULL, PRIMARY KEY (source, event_id))"
    )
    run(
        "CREATE TABLE events (pk BIGINT NOT NULL DEFAULT nextval('events_pk_seq'), "
        "source VARCHAR(255) NOT NULL, event_id VARCHAR(255) NOT NULL, "
        "customer VARCHAR(255) NOT NULL, "
        "type VARCHAR(255) NOT NULL, time_us BIGINT NOT NULL, properties TEXT NOT NULL, "
        "numbers TEXT NOT NULL, payload_hash VARCHAR(64) NOT NULL, batch_id INTEGER NOT NULL, "
        "q_name VARCHAR(255), q_units BIGINT, q_nanos BIGINT) PARTITION BY RANGE (time_us)"
    )
    run("ALTER SEQUENCE events_pk_seq OWNED BY events.pk")
    run(
        "CREATE INDEX ix_events_metering ON events (type, customer, time_us) "
        "INCLUDE (q_name, q_units, q_nanos)"
    )
    days = [
        int(d)
        for (d,) in run(
            f"SELECT DISTINCT div(time_us, {_DAY_US}) - "
            f"CASE WHEN mod(time_us, {_DAY_US}) < 0 THEN 1 ELSE 0 END "
            "FROM events_unpartitioned"
        )
    ]
    ensure_partitions(conn, months_of_days(days))
    run(
        "INSERT INTO event_keys (source, event_id, payload_hash, batch_id, time_us) "
        "SELECT source, event_id, payload_hash, batch_id, time_us FROM events_unpartitioned"
    )
    run(
        "INSERT INTO events (pk, source, event_id, customer, type, time_us, properties, numbers, "
        "payload_hash, batch_id, q_name, q_units, q_nanos) "
        "SELECT o.pk, o.source, o.event_id, o.customer, o.type, o.time_us, o.properties, "
        "o.numbers, "
        "o.payload_hash, o.batch_id, q.q_name, q.q_units, q.q_nanos FROM events_unpartitioned AS o "
        f"LEFT JOIN LATERAL ({_Q_OF_NUMBERS.format(n='o.numbers')}) AS q ON true ORDER BY o.pk"
    )
    run("DROP TABLE events_unpartitioned")


MIGRATIONS.append(_v_pg_events)


# Wallet top-ups (``ledger.topups``): prepaid credit bought at any time, from a payments
# file's ``topup`` row or ``meterbook topup``. ``reference`` is the idempotency key (the
# row's reference, or the command's ``--reference``): the same reference with the same
# ``payload_hash`` is a duplicate, with another a conflict (refused, nothing stored).
# ``expires`` is an ISO day or ""; ``source`` where it came from (``file:line`` or
# ``command``). Amounts are decimal text, dates ISO days.
topups = Table(
    "topups",
    metadata,
    Column("reference", String(255), primary_key=True),
    Column("customer", String(255), nullable=False),
    Column("date", String(10), nullable=False),
    Column("amount", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("expires", String(10), nullable=False, default=""),
    Column("payload_hash", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("recorded_at", String(40), nullable=False),
)


def _v_topups(conn: Connection) -> None:
    topups.create(conn, checkfirst=True)


MIGRATIONS.append(_v_topups)


# --- month-end work proportional to what is open (issue 13) ----------------------------
#
# ``invoice_watermarks``: per issued invoice, the highest ``events.pk`` stored when the run
# that issued it began rating (the invoice's frozen accruals hold every event up to it). An
# invoiced cycle that no event with a higher ``pk`` falls into is not rated again
# (:meth:`ledger.session.Session.settled`): its frozen figures are what rating would give.
# Invoices issued before this table existed have no row and are rated as before.
invoice_watermarks = Table(
    "invoice_watermarks",
    metadata,
    Column("number", String(32), ForeignKey("invoices.number"), primary_key=True),
    Column("events_pk", BigInteger, nullable=False),
)


def _v_invoice_watermarks(conn: Connection) -> None:
    invoice_watermarks.create(conn, checkfirst=True)


MIGRATIONS.append(_v_invoice_watermarks)


def events_watermark(conn: Connection) -> int:
    """The highest ``events.pk`` stored (0: none). Every writer of events holds the workspace
    lock (:mod:`ledger.lock`), so under it no event with a lower ``pk`` commits later. On
    PostgreSQL the ``pk`` sequence's last value (``events`` has no index on ``pk``; a value
    taken by a transaction rolled back is a gap, never an event)."""
    if conn.dialect.name == "postgresql":
        row = conn.exec_driver_sql("SELECT last_value, is_called FROM events_pk_seq").one()
        return int(row[0]) if row[1] else 0
    return int(conn.execute(select(func.max(events.c.pk))).scalar() or 0)


def arrived_after(
    conn: Connection, watermark: int, start_us: int, end_us: int
) -> dict[str, tuple[int, int]]:
    """Per customer, the earliest and latest time in ``[start_us, end_us)`` of the events
    stored after ``watermark`` (``events.pk`` above it): the rowid range on SQLite, the
    months' partitions of that time range on PostgreSQL."""
    rows = conn.execute(
        select(events.c.customer, func.min(events.c.time_us), func.max(events.c.time_us))
        .where(events.c.pk > watermark)
        .where(events.c.time_us >= start_us)
        .where(events.c.time_us < end_us)
        .group_by(events.c.customer)
    )
    return {customer: (int(first), int(last)) for customer, first, last in rows}


def months_of_days(days: Iterable[int]) -> list[tuple[int, int]]:
    """The UTC months ``(year, month)`` of day numbers (days since 1970-01-01), sorted.

    >>> months_of_days([0, 30, 31, 20727])
    [(1970, 1), (1970, 2), (2026, 10)]
    """
    from datetime import date, timedelta

    epoch = date(1970, 1, 1)
    return sorted({(d.year, d.month) for d in (epoch + timedelta(days=n) for n in set(days))})


def month_range_us(year: int, month: int) -> tuple[int, int]:
    """``[start, end)`` of a UTC month in microseconds since the epoch.

    >>> month_range_us(2026, 10)
    (1790812800000000, 1793491200000000)
    """
    from datetime import UTC, datetime

    def us(y: int, m: int) -> int:
        delta = datetime(y, m, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000

    after = Month(year, month).next()
    return us(year, month), us(after.year, after.number)


def ensure_partitions(conn: Connection, months: Iterable[tuple[int, int]]) -> list[str]:
    """Create the monthly partitions of ``events`` that ``months`` lack (PostgreSQL), in the
    caller's transaction; return the names created.

    Each new month is created as a table of its own and attached (``ATTACH PARTITION``
    locks ``events`` in SHARE UPDATE EXCLUSIVE mode: metering and other imports go on;
    two imports creating the same month wait for each other, and the second finds it
    made). Rolled back with the import that needed it, so a killed import leaves nothing.
    """
    if conn.dialect.name != "postgresql":
        return []
    wanted = [(y, m, f"events_y{y:04d}m{m:02d}") for y, m in months]
    exists = "SELECT to_regclass(%(name)s) IS NOT NULL"

    def missing() -> list[tuple[int, int, str]]:
        return [w for w in wanted if not conn.exec_driver_sql(exists, {"name": w[2]}).scalar_one()]

    if not missing():
        return []
    conn.exec_driver_sql("LOCK TABLE events IN SHARE UPDATE EXCLUSIVE MODE")
    created = []
    for year, month, name in missing():  # again, under the lock: another import may have made it
        start, end = month_range_us(year, month)
        conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
        conn.exec_driver_sql(
            f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
        )
        created.append(name)
    return created


def partitions(conn: Connection) -> list[str]:
    """The monthly partitions of ``events`` (PostgreSQL; none on SQLite), by name."""
    if conn.dialect.name != "postgresql":
        return []
    return sorted(
        conn.exec_driver_sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('events')"
        ).scalars()
    )


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store ``events`` rows (:meth:`ledger.events.Event.row`) as they are, bypassing ingest's
    row accounting (tests, benchmarks): on PostgreSQL the months' partitions are made, the
    keys written to ``event_keys`` (a key already there is left as it is) and the typed
    quantity filled in."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(events.insert(), list(rows))
        return
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    ensure_partitions(conn, months_of_days({int(r["time_us"]) // _DAY_US for r in rows}))
    conn.execute(
        pg_insert(event_keys).on_conflict_do_nothing(),
        [
            {k: r[k] for k in ("source", "event_id", "payload_hash", "batch_id", "time_us")}
            for r in rows
        ],
    )
    conn.execute(events.insert(), [{**r, **typed_quantity(str(r["numbers"]))} for r in rows])


def typed_quantity(numbers: str) -> dict[str, Any]:
    """``q_name``, ``q_units``, ``q_nanos`` of a ``numbers`` column when no rules say which
    property metering reads: the first numeric property by name, if its units fit 64 bits.

    >>> typed_quantity('{"b":[2,0],"a":[1,500000000]}')
    {'q_name': 'a', 'q_units': 1, 'q_nanos': 500000000}
    >>> typed_quantity('{"a":[100000000000000000000,0]}')["q_name"] is None
    True
    """
    import json

    pairs = json.loads(numbers)
    if pairs:
        name = min(pairs)
        units, nanos = pairs[name]
        if -(1 << 63) <= units < (1 << 63):
            return {"q_name": name, "q_units": units, "q_nanos": nanos}
    return {"q_name": None, "q_units": None, "q_nanos": None}
