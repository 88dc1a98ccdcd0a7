"""Alert webhook: POST every new alert as JSON to the URL in ``meterbook.toml``.

Configuration (``[alerts]`` in ``meterbook.toml``; a customer's ``webhook:`` in
customers.yaml overrides the URL for that customer's alerts)::

    [alerts]
    webhook_url = "https://hooks.example.com/meterbook"
    outbox = "var/alerts-outbox.jsonl"
    attempts = 3
    timeout_seconds = 5
    backoff_seconds = 0.5
    max_wait_seconds = 30

    [alerts.webhook_secrets]            # or webhook_secrets = "secrets/webhooks.toml"
    "https://hooks.example.com/meterbook" = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Each alert is one ``POST`` of :meth:`ledger.alerts.Alert.payload` with
``Content-Type: application/json``, ``Idempotency-Key: <alert id>`` and the
`Standard Webhooks <https://www.standardwebhooks.com>`_ headers: ``webhook-id``
(the alert id, the same on every retry), ``webhook-timestamp`` (Unix seconds of
this attempt) and, when the endpoint has a secret, ``webhook-signature:
v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`` (signed by
the ``standardwebhooks`` library; a receiver verifies with the same library or
any Standard Webhooks implementation)::

    {"cap": "100", "customer": "acme", "cycle": "2026-09-01/2026-10-01", "date": "2026-09-08",
     "id": "usage-cap:acme:api_calls:2026-09-01:80", "kind": "usage_cap", "level": "80",
     "message": "acme: api_calls usage reached 80 % of the cap (80 of 100 call) on 2026-09-08: ...",
     "meter": "api_calls", "threshold": "0.8", "unit": "call", "value": "80"}

A 2xx answer is delivered. Anything else (connection refused, timeout, 5xx,
408, 429) is retried after ``backoff × 2^(n-1)`` seconds, up to ``attempts``
POSTs; another 4xx is not retried. An answer with ``Retry-After`` (seconds or
an HTTP date, as a 429 or 503 sends) sets the wait instead: up to
``max_wait_seconds`` it is waited; longer, or on the last attempt, the plugin
raises :class:`ledger.alerts.RetryLater` and the delivery stays pending until
then (``meterbook alerts`` lists it; the first run after that time retries it).
After the last failure otherwise the alert is
appended to the outbox as one JSON line ``{"alert": {...}, "attempts": 3,
"error": "...", "url": "..."}`` for a later replay. With no URL the plugin does
nothing: the store's ``alerts`` table is the record either way.

The plugin reads its configuration from the alert (``alert.delivery``, the
workspace's ``[alerts]`` table resolved by :mod:`ledger.workspace`), so it
keeps no global state and uses no private door into the engine.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from standardwebhooks import Webhook

from ledger.alerts import RetryLater
from ledger.hookspecs import AlertView, hookimpl
from ledger.workspace import AlertsConfig

#: Status codes worth another try; every other 4xx will fail the same way again.
RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Delivery:
    """How one alert went: delivered after ``attempts`` POSTs, put in the outbox, or deferred
    to ``retry_at`` by the receiver's ``Retry-After``."""

    delivered: bool
    attempts: int
    error: str = ""
    retry_at: datetime | None = None


@hookimpl
def meterbook_alert(alert: AlertView) -> None:
    """POST the alert to its webhook; on the last failure, append it to the outbox; told to
    come back later, raise :class:`ledger.alerts.RetryLater` (the delivery stays pending)."""
    config = getattr(alert, "delivery", None)
    if not isinstance(config, AlertsConfig) or not config.webhook_url:
        return
    result = deliver(alert.payload(), config)
    if result.retry_at is not None:
        raise RetryLater(result.retry_at, result.error)


def deliver(
    payload: Mapping[str, object],
    config: AlertsConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Delivery:
    """POST ``payload`` with retries and backoff (or the receiver's ``Retry-After``); after the
    last failure append it to the outbox, or defer it when the receiver asked for later."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    signer = Webhook(secret) if (secret := config.secret_for(config.webhook_url)) else None
    error = ""
    attempt = 0
    for attempt in range(1, config.attempts + 1):
        answer = _post(
            config.webhook_url,
            body,
            str(payload.get("id", "")),
            config.timeout_seconds,
            signer,
            now(),
        )
        error = answer.error
        if not error:
            return Delivery(delivered=True, attempts=attempt)
        if not answer.retry:
            break
        wait = answer.retry_after
        if wait is not None and (wait > config.max_wait_seconds or attempt == config.attempts):
            return Delivery(
                delivered=False,
                attempts=attempt,
                error=error,
                retry_at=now() + timedelta(seconds=wait),
            )
        if attempt == config.attempts:
            break
        sleep(config.backoff_seconds * 2 ** (attempt - 1) if wait is None else wait)
    line = (
        json.dumps(
            {"alert": payload, "attempts": attempt, "error": error, "url": config.webhook_url},
            sort_keys=True,
            separators=(",", ":"),
        )
        + "\n"
    )
    _append(config.outbox, line)
    return Delivery(delivered=False, attempts=attempt, error=error)


@dataclass(frozen=True)
class _Answer:
    """One POST's outcome: ``error`` is "" on a 2xx answer; ``retry_after`` in seconds when the
    receiver sent a usable ``Retry-After``."""

    retry: bool
    error: str
    retry_after: float | None = None


def signed_headers(
    body: bytes, message_id: str, signer: Webhook | None, at: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (``webhook-signature`` only with a secret).

    >>> signer = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")  # the specification's example
    >>> signed_headers(b'{"test": 2432232314}', "msg_p5jXN8AQM9LWM0D4loKWxJek", signer,
    ...                datetime.fromtimestamp(1614265330, UTC))["webhook-signature"]
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
    """
    headers = {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp()))}
    if signer is not None:
        headers["webhook-signature"] = signer.sign(message_id, at, body)
    return headers


def retry_after(value: str | None, at: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None.

    >>> at = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    >>> [retry_after(value, at) for value in ("120", "Fri, 04 Dec 2026 18:05:00 GMT", "soon")]
    [120.0, 300.0, None]
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - at).total_seconds())


def _post(
    url: str, body: bytes, key: str, timeout: float, signer: Webhook | None, at: datetime
) -> _Answer:
    """One POST, signed when the endpoint has a secret."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "meterbook-webhook",
            "Idempotency-Key": key,
            **signed_headers(body, key, signer, at),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        wait = retry_after(exc.headers.get("Retry-After") if exc.headers else None, at)
        exc.close()
        return _Answer(
            exc.code >= 500 or exc.code in RETRYABLE_4XX, f"HTTP {exc.code} {exc.reason}", wait
        )
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, DNS, timeout, bad URL
        reason = getattr(exc, "reason", exc)
        return _Answer(True, f"{type(exc).__name__}: {reason}")
    if 200 <= status < 300:
        return _Answer(False, "")
    return _Answer(True, f"HTTP {status}")


def _append(path: Any, line: str) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor (no torn lines)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
