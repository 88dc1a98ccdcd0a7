"""Alert webhook: POST every new alert as JSON to the URL in ``meterbook.toml``.

Configuration (``[alerts]`` in ``meterbook.toml``; a customer's ``webhook:`` in
customers.yaml overrides the URL for that customer's alerts)::

    [alerts]
    webhook_url = "https://hooks.example.com/meterbook"
    outbox = "var/alerts-outbox.jsonl"
    attempts = 3
    timeout_seconds = 5
    backoff_seconds = 0.5

Each alert is one ``POST`` of :meth:`ledger.alerts.Alert.payload` with
``Content-Type: application/json`` and ``Idempotency-Key: <alert id>``::

    {"cap": "100", "customer": "acme", "cycle": "2026-09-01/2026-10-01", "date": "2026-09-08",
     "id": "usage-cap:acme:api_calls:2026-09-01:80", "kind": "usage_cap", "level": "80",
     "message": "acme: api_calls usage reached 80 % of the cap (80 of 100 call) on 2026-09-08: ...",
     "meter": "api_calls", "threshold": "0.8", "unit": "call", "value": "80"}

A 2xx answer is delivered. Anything else (connection refused, timeout, 5xx,
408, 429) is retried after ``backoff × 2^(n-1)`` seconds, up to ``attempts``
POSTs; another 4xx is not retried. After the last failure the alert is
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
from dataclasses import dataclass
from typing import Any

from ledger.hookspecs import hookimpl
from ledger.workspace import AlertsConfig

#: Status codes worth another try; every other 4xx will fail the same way again.
RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Delivery:
    """How one alert went: delivered after ``attempts`` POSTs, or put in the outbox."""

    delivered: bool
    attempts: int
    error: str = ""


@hookimpl
def meterbook_alert(alert: Any) -> None:
    """POST the alert to its webhook; on the last failure, append it to the outbox."""
    config = getattr(alert, "delivery", None)
    if not isinstance(config, AlertsConfig) or not config.webhook_url:
        return
    deliver(alert.payload(), config)


def deliver(payload: dict[str, Any], config: AlertsConfig, *, sleep: Any = time.sleep) -> Delivery:
    """POST ``payload`` with retries and backoff; after the last failure append it to the outbox."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    error = ""
    attempt = 0
    for attempt in range(1, config.attempts + 1):
        retry, error = _post(config.webhook_url, body, str(payload.get("id", "")), config.timeout_seconds)
        if not error:
            return Delivery(delivered=True, attempts=attempt)
        if not retry or attempt == config.attempts:
            break
        sleep(config.backoff_seconds * 2 ** (attempt - 1))
    line = json.dumps({"alert": payload, "attempts": attempt, "error": error, "url": config.webhook_url},
                      sort_keys=True, separators=(",", ":")) + "\n"
    _append(config.outbox, line)
    return Delivery(delivered=False, attempts=attempt, error=error)


def _post(url: str, body: bytes, key: str, timeout: float) -> tuple[bool, str]:
    """One POST: ``(retry?, error)``; the error is "" on a 2xx answer."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "meterbook-webhook", "Idempotency-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code >= 500 or exc.code in RETRYABLE_4XX, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, DNS, timeout, bad URL
        reason = getattr(exc, "reason", exc)
        return True, f"{type(exc).__name__}: {reason}"
    if 200 <= status < 300:
        return False, ""
    return True, f"HTTP {status}"


def _append(path: Any, line: str) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor (no torn lines)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
