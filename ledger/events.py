"""A usage event in its canonical form: what the store keeps and hashes.

    >>> e = Event.build(source="app", id="e-1", customer="acme", type="api.request",
    ...                 time=parse_time("2026-10-05T08:30:00+02:00"), properties={"gb": "12.50"})
    >>> e.time_us                     # UTC microseconds since the epoch
    1791181800000000
    >>> e.properties_json, e.numbers_json
    ('{"gb":"12.50"}', '{"gb":[12,500000000]}')
    >>> payload = e.canonical_payload()      # sorted keys, no spaces; shown in two pieces
    >>> payload[:58]
    '{"customer":"acme","id":"e-1","properties":{"gb":"12.50"},'
    >>> payload[58:]
    '"source":"app","time_us":1791181800000000,"type":"api.request"}'

Two rows are the *same* event when ``(source, id)`` match; they are duplicates
when their canonical payloads (hence ``payload_hash``) match too, and a
conflict otherwise. The time is compared as an instant, so ``08:30+02:00`` and
``06:30Z`` are the same; property values are compared as the text given.

Every property value is kept as a string; values that parse as a finite
decimal with at most 9 places are also kept in ``numbers`` as ``[units,
nanos]`` (see :mod:`ledger.money`), which is what metering sums in SQL.

**Input grammar** (strict: what a row may say, nothing Python would also take).
A time is RFC 3339 with seconds and an offset, ``T``/``Z`` in either case, from
1970-01-01T00:00:00Z on; fractions finer than a microsecond are truncated::

    >>> parse_time("2026-10-05t08:30:00.5z").isoformat()
    '2026-10-05T08:30:00.500000+00:00'
    >>> parse_time("2026-01-05T10:00Z")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ledger.events.TimeError: '2026-01-05T10:00Z' is not an RFC 3339 time
        (YYYY-MM-DDTHH:MM:SS, Z or ±hh:mm)

A number is ASCII digits with an optional ``-``, ``.fraction`` and exponent, at
most 10**15 in absolute value, at most 9 decimal places (:func:`number_of`)::

    >>> number_of("1.5e3"), number_of("1_000"), number_of(" 5"), number_of("1e16")
    ((1500, 0), None, None, None)
    >>> number_problem("1e16")
    "'1e16' is too large (at most 10**15 in absolute value)"

A day is ``YYYY-MM-DD`` from 1970-01-01 on (:func:`parse_day`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from ledger.money import QUANTITY_PLACES, DecimalError, to_units_nanos, within_magnitude

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The first day an input row may name (times are kept as microseconds since the epoch).
FIRST_DAY = date(1970, 1, 1)
#: RFC 3339 ``date-time`` (section 5.6): full-date "T" full-time, ``T`` and ``Z`` in either case.
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]"
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)
_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
#: A number as input rows may write it: ``-`` optional, ASCII digits, ``.digits``, exponent.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_OFFSETS: dict[tuple[str, int, int], timezone] = {}


class TimeError(ValueError):
    """A timestamp is not RFC 3339 with an offset, or is before the epoch."""


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp strictly: ``YYYY-MM-DDTHH:MM:SS``, an optional
    ``.fraction`` (truncated to microseconds), and ``Z`` or ``±hh:mm``; ``t`` and
    ``z`` may be lower case (RFC 3339 §5.6). No spaces, no week dates, no basic
    format, no leap second; the instant is 1970-01-01T00:00:00Z or later.
    """
    match = _TIME.fullmatch(text)
    if match is None:
        raise TimeError(f"{text!r} is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS, Z or ±hh:mm)")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if not zulu and not sign:
        raise TimeError(f"{text!r} has no UTC offset (write Z or +hh:mm)")
    if zulu:
        zone: timezone = UTC
    else:
        key = (sign, int(off_h), int(off_m))
        found = _OFFSETS.get(key)
        if found is None:
            if key[1] > 23 or key[2] > 59:
                raise TimeError(f"{text!r} has an impossible UTC offset")
            delta = timedelta(hours=key[1], minutes=key[2])
            found = _OFFSETS.setdefault(key, timezone(-delta if sign == "-" else delta))
        zone = found
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError as exc:
        raise TimeError(f"{text!r} is not a valid time: {exc}") from None
    if value < EPOCH:
        raise TimeError(f"{text!r} is before 1970-01-01T00:00:00Z")
    return value


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` day (ISO 8601 calendar date, nothing else), 1970-01-01 or later.

    >>> parse_day("2026-10-20")
    datetime.date(2026, 10, 20)
    >>> parse_day("0001-01-01")
    Traceback (most recent call last):
    ValueError: '0001-01-01' is before 1970-01-01
    """
    match = _DAY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        day = date(*(int(part) for part in match.groups()))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if day < FIRST_DAY:
        raise ValueError(f"{text!r} is before 1970-01-01")
    return day


def to_us(value: datetime) -> int:
    """UTC microseconds since the epoch, exactly (no float)."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """The UTC datetime of :func:`to_us`."""
    from datetime import timedelta

    return EPOCH + timedelta(microseconds=us)


def number_of(text: str) -> tuple[int, int] | None:
    """``[units, nanos]`` of a property value, or None if it is not a number as
    input rows may write it (see :func:`number_problem` for why)."""
    if not isinstance(text, str):  # an int given to Event.build by code, not read from a row
        if not isinstance(text, int) or isinstance(text, bool):
            return None
        text = str(text)
    if _NUMBER.fullmatch(text) is None:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if value.adjusted() < -30 or not within_magnitude(value):
        return None
    try:
        return to_units_nanos(value)
    except DecimalError:
        return None


def parse_number(text: str) -> Decimal:
    """A number as input rows may write it (the grammar of :func:`number_of`, any
    number of places), at most 10**15 in absolute value; ValueError naming why not.

    >>> parse_number("60.00"), parse_number("-1.5e3")
    (Decimal('60.00'), Decimal('-1.5E+3'))
    >>> parse_number("1_000")
    Traceback (most recent call last):
    ValueError: '1_000' is not a plain decimal number (such as 12, -0.5 or 1.5e3)
    """
    value = _decimal(text)
    if value is None or not within_magnitude(value):
        raise ValueError(number_problem(text))
    return value


def number_problem(text: str) -> str:
    """Why :func:`number_of` refuses ``text`` (for a reject's detail; long text is cut).

    >>> number_problem("1e99999999999999999999"), number_problem("0.0000000001")
    ("'1e99999999999999999999' is out of range", "'0.0000000001' has more than 9 decimal places")
    """
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "…"
    if _NUMBER.fullmatch(text) is None:
        return f"{shown} is not a plain decimal number (such as 12, -0.5 or 1.5e3)"
    value = _decimal(text)
    if value is None:  # an exponent beyond what a decimal holds
        return f"{shown} is out of range"
    if value.adjusted() >= 0 and not within_magnitude(value):
        return f"{shown} is too large (at most 10**15 in absolute value)"
    return f"{shown} has more than {QUANTITY_PLACES} decimal places"


def _decimal(text: str) -> Decimal | None:
    """``Decimal(text)`` for text of the input grammar, None when it is not (or out of range)."""
    if _NUMBER.fullmatch(text) is None:
        return None
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
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
    def build(
        cls,
        *,
        source: str,
        id: str,
        customer: str,
        type: str,
        time: datetime,
        properties: Mapping[str, str],
    ) -> Event:
        return cls(
            source=source,
            id=id,
            customer=customer,
            type=type,
            time_us=to_us(time),
            properties=dict(properties),
        )

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
        return dumps(
            {
                "customer": self.customer,
                "id": self.id,
                "properties": self.properties,
                "source": self.source,
                "time_us": self.time_us,
                "type": self.type,
            }
        )

    @property
    def payload_hash(self) -> str:
        return hashlib.sha256(self.canonical_payload().encode("utf-8")).hexdigest()

    def row(self, batch_id: int) -> dict[str, object]:
        """The ``events`` table row (see :mod:`ledger.store`)."""
        return {
            "source": self.source,
            "event_id": self.id,
            "customer": self.customer,
            "type": self.type,
            "time_us": self.time_us,
            "properties": self.properties_json,
            "numbers": self.numbers_json,
            "payload_hash": self.payload_hash,
            "batch_id": batch_id,
        }
