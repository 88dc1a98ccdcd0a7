"""One writer at a time per workspace: the lock every writing command holds.

Two locks, taken in this order and held until the command ends:

1. an OS file lock (``flock``) on the workspace folder itself: it
   serialises everything written under the workspace — the books, the
   documents, a SQLite store — between processes on this machine. The kernel
   releases it when the process ends, however it ends (``kill -9`` included),
   so a crashed command never leaves a stale lock behind. A folder that holds
   files cannot be deleted or replaced under a holder, as a lock file could be
   (deleted while held, the next command would create and lock a new one and
   write beside the holder). ``<workspace>/.meterbook.lock`` is only the label
   naming the holder: written through no symbolic link and into no file with
   another name (hard link), so a planted link cannot make a command empty a
   file elsewhere.
2. for a PostgreSQL store, a session advisory lock
   (``pg_try_advisory_lock(28002, hashtext(current_schema()))``) on a
   connection of its own: two workspaces (two checkouts, two machines) that
   share one PostgreSQL store still write one at a time. PostgreSQL releases
   it when that connection closes, a crashed command's included.

A command that finds the workspace locked waits, saying so once on stderr,
and gives up after ``METERBOOK_LOCK_TIMEOUT`` seconds (default 60) with one
line naming the holder, exit 2, nothing written::

    meterbook: error: the workspace /srv/billing is locked by `meterbook close` (pid 4242, since 2026-12-04T18:30:01Z); gave up after 60 s (METERBOOK_LOCK_TIMEOUT sets the wait)

``meterbook check`` takes the file lock shared: any number of checks run
together, but never while a writer is half-way through a close.
"""  # noqa: E501

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ledger.errors import BadInput

LOCK_FILE = ".meterbook.lock"
TIMEOUT_ENV = "METERBOOK_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
#: First key of meterbook's PostgreSQL advisory locks ("mb"); the second is the schema's hash.
ADVISORY_CLASS = 28002
_POLL = 0.05


class LockTimeout(BadInput):
    """Another command held the workspace (or its PostgreSQL store) for longer than the timeout."""


def timeout_seconds() -> float:
    """``METERBOOK_LOCK_TIMEOUT`` (seconds, ≥ 0), else :data:`DEFAULT_TIMEOUT`."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:
        raise BadInput(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds from 0 to 86400")
    return value


def holder_text(command: str) -> str:
    """What the lock file says while ``command`` holds it:
    ``meterbook <command> (pid N, since …)``."""
    since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"`meterbook {command}` (pid {os.getpid()} on {socket.gethostname()}, since {since})"


def _describe_holder(path: Path) -> str:
    """The label's first line (read through no symbolic link), else a generic holder."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            text = os.read(fd, 300).decode("utf-8", "replace").strip().splitlines()
        finally:
            os.close(fd)
        if text and text[0].startswith("`meterbook "):
            return text[0]
    return "another meterbook command"


@contextlib.contextmanager
def workspace_lock(
    root: Path,
    command: str,
    *,
    store_url: str = "",
    shared: bool = False,
    timeout: float | None = None,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the workspace lock (and, for a PostgreSQL ``store_url``, the store's advisory lock).

    ``shared``: a reader's lock (``check``): many at once, none while a writer holds it.
    ``waiting`` is told once, with a one-line message, when the command has to wait.
    Raises :class:`LockTimeout` after ``timeout`` seconds (default :func:`timeout_seconds`).
    """
    limit = timeout_seconds() if timeout is None else timeout
    path = root / LOCK_FILE
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BadInput(f"{root}: cannot lock the workspace: {exc.strerror or exc}") from None
    try:
        _acquire(
            fd,
            fcntl.LOCK_SH if shared else fcntl.LOCK_EX,
            limit,
            waiting,
            lambda: f"the workspace {root} is locked by {_describe_holder(path)}",
        )
        label = None if shared else _open_label(path)
        try:
            if label is not None:
                with contextlib.suppress(OSError):  # a full disk must not stop the lock: a label
                    os.ftruncate(label, 0)
                    os.pwrite(label, (holder_text(command) + "\n").encode(), 0)
            with (
                _store_lock(store_url, command, limit, waiting)
                if not shared
                else contextlib.nullcontext()
            ):
                yield
        finally:
            if label is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(label, 0)
                os.close(label)
    finally:
        os.close(fd)  # releases the flock


def _open_label(path: Path) -> int | None:
    """The label file, opened for writing, when it is a plain file of its own: not through a
    symbolic link (``O_NOFOLLOW``), not a file with other names (hard links), not a device or
    FIFO; else None (the lock holds without its label). Emptying what a planted link points
    to — a file outside the workspace — is what this refuses."""
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        label = os.open(path, flags, 0o644)
    except OSError:  # a symbolic link (ELOOP), a read-only workspace, …
        return None
    info = os.fstat(label)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(label)
        return None
    return label


def _acquire(
    fd: int,
    mode: int,
    limit: float,
    waiting: Callable[[str], None] | None,
    describe: Callable[[], str],
) -> None:
    deadline = time.monotonic() + limit
    told = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"{describe()}; gave up after {limit:g} s ({TIMEOUT_ENV} sets the wait)"
            )
        if not told and waiting is not None:
            waiting(f"waiting: {describe()}")
            told = True
        time.sleep(_POLL)


@contextlib.contextmanager
def _store_lock(
    store_url: str, command: str, limit: float, waiting: Callable[[str], None] | None
) -> Iterator[None]:
    """PostgreSQL: a session advisory lock on a connection of its own; other stores: nothing."""
    if not store_url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    from ledger.errors import StoreError
    from ledger.store import missing_driver, safe_url

    name = f"meterbook {command} (pid {os.getpid()} on {socket.gethostname()})"[:63]
    try:
        engine = create_engine(
            store_url, poolclass=NullPool, connect_args={"application_name": name}
        )
    except ImportError as exc:  # psycopg is the postgresql extra
        raise missing_driver(store_url, exc) from None
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        engine.dispose()
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise StoreError(f"store {safe_url(store_url)} cannot be opened: {first}") from None
    try:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        key = "hashtext(current_schema())"

        def describe() -> str:
            holder = conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    f"WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {ADVISORY_CLASS} "
                    f"AND l.objid = ({key})::oid AND l.objsubid = 2"
                )
            ).scalar()
            return (
                f"the store {safe_url(store_url)} is locked by "
                f"{'`' + holder + '`' if holder else 'another meterbook command'}"
            )

        deadline = time.monotonic() + limit
        told = False
        while not conn.execute(
            text(f"SELECT pg_try_advisory_lock({ADVISORY_CLASS}, {key})")
        ).scalar():
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"{describe()}; gave up after {limit:g} s ({TIMEOUT_ENV} sets the wait)"
                )
            if not told and waiting is not None:
                waiting(f"waiting: {describe()}")
                told = True
            time.sleep(_POLL)
        yield
        with contextlib.suppress(DBAPIError):
            conn.execute(text(f"SELECT pg_advisory_unlock({ADVISORY_CLASS}, {key})"))
    finally:
        conn.close()
        engine.dispose()
