"""A usage event in its canonical form: what the store keeps and hashes.

    >>> e = Event.build(source="app", id="e-1", customer="acme", type="api.request",
    ...                 time=parse_time("2026-10-05T08:30:00+02:00"), properties={"gb": "12.50"})
    >>> e.time_us                     # UTC microseconds since the epoch
    1791181800000000
    >>> e.properties_json, e.numbers_json
    ('{"gb":"12.50"}', '{"gb":[12,500000000]}')
    >>> e.canonical_payload()
    '{"customer":"acme","id":"e-1","properties":{"gb":"12.50"},"source":"app","time_us":1791181800000000,"type":"api.request"}'

Two rows are the *same* event when ``(source, id)`` match; they are duplicates
when their canonical payloads (hence ``payload_hash``) match too, and a
conflict otherwise. The time is compared as an instant, so ``08:30+02:00`` and
``06:30Z`` are the same; property values are compared as the text given.

Every property value is kept as a string; values that parse as a finite
decimal with at most 9 places are also kept in ``numbers`` as ``[units,
nanos]`` (see :mod:`ledger.money`), which is what metering sums in SQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from ledger.money import DecimalError, to_units_nanos

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeError(ValueError):
    """A timestamp is not RFC 3339 with an offset."""


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; the offset is required (``Z`` or ``±hh:mm``)."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise TimeError(f"{text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None or "T" not in text.upper():
        raise TimeError(f"{text!r} has no UTC offset (write Z or +hh:mm)")
    return value


def to_us(value: datetime) -> int:
    """UTC microseconds since the epoch, exactly (no float)."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """The UTC datetime of :func:`to_us`."""
    from datetime import timedelta

    return EPOCH + timedelta(microseconds=us)


def number_of(text: str) -> tuple[int, int] | None:
    """``[units, nanos]`` of a property value, or None if it is not an exact number."""
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not value.is_finite() or abs(value.adjusted()) > 30:
        return None
    try:
        return to_units_nanos(value)
    except DecimalError:
        return None


def dumps(value: object) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Event:
    """One accepted usage event, canonical."""

    source: str
    id: str
    customer: str
    type: str
    time_us: int
    properties: Mapping[str, str]

    @classmethod
    def build(cls, *, source: str, id: str, customer: str, type: str, time: datetime,
              properties: Mapping[str, str]) -> Event:
        return cls(source=source, id=id, customer=customer, type=type, time_us=to_us(time),
                   properties=dict(properties))

    @property
    def properties_json(self) -> str:
        return dumps(self.properties)

    @property
    def numbers_json(self) -> str:
        numbers = {}
        for key, text in self.properties.items():
            pair = number_of(text)
            if pair is not None:
                numbers[key] = list(pair)
        return dumps(numbers)

    def canonical_payload(self) -> str:
        return dumps({"customer": self.customer, "id": self.id, "properties": self.properties,
                      "source": self.source, "time_us": self.time_us, "type": self.type})

    @property
    def payload_hash(self) -> str:
        return hashlib.sha256(self.canonical_payload().encode("utf-8")).hexdigest()

    def row(self, batch_id: int) -> dict[str, object]:
        """The ``events`` table row (see :mod:`ledger.store`)."""
        return {"source": self.source, "event_id": self.id, "customer": self.customer,
                "type": self.type, "time_us": self.time_us, "properties": self.properties_json,
                "numbers": self.numbers_json, "payload_hash": self.payload_hash, "batch_id": batch_id}
