"""API keys: who may push events (``ingest``) and which customer a portal key shows (``portal``).

    $ meterbook keys create --scope portal --customer acme
    created key k3f9a0c21d7e4 (portal, customer acme); shown once, keep it secret:
    mbk_k3f9a0c21d7e4_Qm9i...      (43 random URL-safe characters after the id)

A key is ``mbk_<id>_<secret>``: the id names the key (``keys list``, ``keys revoke``, and
every write it makes), the secret is 32 random bytes (:func:`secrets.token_urlsafe`).
The store keeps only ``sha256(key)``; a presented key is looked up by its id and its
hash compared with :func:`hmac.compare_digest` (constant time). Unknown ids are
compared against a dummy hash, so timing does not tell a known id from an unknown one.

    >>> fake = ApiKey("k000000000001", "portal", "acme", "", "2026-12-04T10:00:00+00:00", None)
    >>> fake.revoked, fake.describe()
    (False, 'k000000000001  portal  acme  created 2026-12-04T10:00:00+00:00')
    >>> parse_key("mbk_k000000000001_" + "a" * 43), parse_key("mbk_k000000000001_abc")
    ('k000000000001', None)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from ledger.errors import BadInput
from ledger.rules import Rules
from ledger.store import api_keys

SCOPES = ("ingest", "portal")
PREFIX = "mbk"
_KEY = re.compile(r"mbk_(k[0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_DUMMY = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret): id, scope, bound customer, label, created and revoked
    times."""

    id: str
    scope: str
    customer: str | None
    label: str
    created_at: str
    revoked_at: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def describe(self) -> str:
        """One line for ``keys list``."""
        line = f"{self.id}  {self.scope}  {self.customer or '-'}  created {self.created_at}"
        if self.label:
            line += f"  {self.label!r}"
        if self.revoked_at:
            line += f"  REVOKED {self.revoked_at}"
        return line


@dataclass(frozen=True)
class NewKey:
    """A key just created: its record and the key text, shown once."""

    key: ApiKey
    secret: str


def key_hash(text: str) -> str:
    """sha256 (hex) of a key's text: the only form of it the store keeps."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_key(text: str) -> str | None:
    """The key id of a well-formed key text, else None."""
    found = _KEY.fullmatch(text)
    return found.group(1) if found else None


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _row(row: sa.Row) -> ApiKey:  # type: ignore[type-arg]
    return ApiKey(row.id, row.scope, row.customer, row.label, row.created_at, row.revoked_at)


def create_key(
    engine: Engine, rules: Rules, scope: str, customer: str | None = None, label: str = ""
) -> NewKey:
    """Create a key; a portal key needs the customer it shows, an ingest key takes none."""
    if scope not in SCOPES:
        raise BadInput(f"--scope: {scope!r} is not one of {', '.join(SCOPES)}")
    if scope == "portal":
        if not customer:
            raise BadInput("--customer: a portal key shows one customer; name it")
        if customer not in rules.customers:
            raise BadInput(f"--customer: unknown customer {customer!r}")
    elif customer:
        raise BadInput("--customer: an ingest key is not bound to a customer (events name theirs)")
    key_id = "k" + secrets.token_hex(6)
    text = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(key_id, scope, customer, label, _stamp(), None)
    with engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                id=key_id,
                scope=scope,
                customer=customer,
                label=label,
                key_hash=key_hash(text),
                created_at=record.created_at,
            )
        )
    return NewKey(record, text)


def list_keys(engine: Engine) -> list[ApiKey]:
    """Every key, oldest first (revoked ones too: writes keep naming them)."""
    c = api_keys.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.id, c.scope, c.customer, c.label, c.created_at, c.revoked_at).order_by(
                c.created_at, c.id
            )
        ).all()
    return [_row(r) for r in rows]


def revoke_key(engine: Engine, key_id: str) -> tuple[ApiKey, bool]:
    """Revoke a key from now on; returns it and whether it was revoked now (False: already)."""
    c = api_keys.c
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(c.id, c.scope, c.customer, c.label, c.created_at, c.revoked_at).where(
                c.id == key_id
            )
        ).first()
        if row is None:
            raise BadInput(f"unknown key {key_id!r} (meterbook keys list)")
        if row.revoked_at is not None:
            return _row(row), False
        stamp = _stamp()
        conn.execute(sa.update(api_keys).where(c.id == key_id).values(revoked_at=stamp))
    key = _row(row)
    return ApiKey(key.id, key.scope, key.customer, key.label, key.created_at, stamp), True


def verify(engine: Engine, text: str) -> ApiKey | None:
    """The key a presented text is, if it is a key of the store and not revoked; else None."""
    key_id = parse_key(text)
    c = api_keys.c
    row = None
    if key_id is not None:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    c.id, c.scope, c.customer, c.label, c.created_at, c.revoked_at, c.key_hash
                ).where(c.id == key_id)
            ).first()
    stored = row.key_hash if row is not None else _DUMMY
    matches = hmac.compare_digest(key_hash(text), stored)
    if row is None or not matches or row.revoked_at is not None:
        return None
    return _row(row)
