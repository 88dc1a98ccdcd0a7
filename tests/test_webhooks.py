"""Signed alert webhooks (Standard Webhooks) and ``Retry-After``, against a real HTTP receiver on
127.0.0.1 that verifies every request with the README's receiver code.

Workspace as in ``tests/test_alerts.py``: through 2026-09-08, ``spender`` crossed 50 % of its
4.00 USD spend cap (3.50 spent) and ``capped`` 80 % of its 100-call cap (80 calls): two alerts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from ledger.alerts import pending_deliveries, raise_alerts
from ledger.errors import WorkspaceError
from ledger.plugins.webhook import deliver, signed_headers
from ledger.workspace import AlertsConfig, Workspace
from tests.support.alerts import make_workspace
from tests.support.readme import readme_block

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks specification's example
OTHER = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"  # 24 bytes, another endpoint's secret


def receiver_handle(secret: str) -> Any:
    """The README's receiver example (``handle(body, headers) -> status``) with this secret."""
    namespace: dict[str, Any] = {}
    exec(
        readme_block("<!-- webhook-receiver-example").replace('"whsec_..."', repr(secret)),
        namespace,
    )
    return namespace["handle"]


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if server.script:
            status, extra = server.script.pop(0)
        else:
            status, extra = server.handle(body, headers), {}
        server.requests.append((status, headers, body))
        self.send_response(status)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.requests, server.script = [], []
    server.handle = receiver_handle(SECRET)
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _config(url: str, secrets: str = "") -> str:
    return (
        f'[alerts]\nwebhook_url = "{url}"\noutbox = "var/outbox.jsonl"\nattempts = 3\n'
        f"timeout_seconds = 2\nbackoff_seconds = 0.01\n{secrets}"
    )


def test_the_specifications_test_vector() -> None:
    at = datetime.fromtimestamp(1614265330, UTC)
    headers = signed_headers(
        b'{"test": 2432232314}', "msg_p5jXN8AQM9LWM0D4loKWxJek", Webhook(SECRET), at
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_signed_alerts_verify_at_the_receiver_and_a_tampered_body_does_not(
    tmp_path: Path, receiver: Any
) -> None:
    (tmp_path / "ws" / "secrets").mkdir(parents=True)
    (tmp_path / "ws" / "secrets" / "webhooks.toml").write_text(
        f'"{receiver.url}" = "{SECRET}"\n"https://other.example.com/hook" = "{OTHER}"\n'
    )
    session = make_workspace(
        tmp_path / "ws",
        f"sqlite:///{tmp_path / 'e.sqlite'}",
        alerts=_config(receiver.url, 'webhook_secrets = "secrets/webhooks.toml"\n'),
    )
    run = raise_alerts(session, __import__("datetime").date(2026, 9, 8))
    assert run.failures == () and len(run.new) == 2
    assert [status for status, _h, _b in receiver.requests] == [
        204,
        204,
    ]  # the receiver verified both
    for (_s, headers, body), alert in zip(receiver.requests, run.alerts, strict=True):
        assert headers["webhook-id"] == alert.id == json.loads(body)["id"]
        assert headers["webhook-signature"].startswith("v1,")
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60

    _s, headers, body = receiver.requests[1]
    assert json.loads(body)["value"] == "80"
    tampered = body.replace(b'"value":"80"', b'"value":"8"')
    assert tampered != body
    handle = receiver_handle(SECRET)
    assert handle(body, headers) == 204
    assert handle(tampered, headers) == 401
    assert receiver_handle(OTHER)(body, headers) == 401  # another endpoint's secret
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)
    # the secret is nowhere in the store or the books
    assert SECRET not in (tmp_path / "e.sqlite").read_bytes().decode("latin-1")
    books = session.workspace.root / "books"
    assert not books.exists() or all(
        SECRET not in p.read_text() for p in books.rglob("*") if p.is_file()
    )


def test_an_endpoint_without_a_secret_is_unsigned_and_refused_by_a_verifying_receiver(
    tmp_path: Path, receiver: Any
) -> None:
    config = AlertsConfig(webhook_url=receiver.url, outbox=tmp_path / "o.jsonl", attempts=1)
    result = deliver({"id": "a-1", "message": "m"}, config)
    ((_s, headers, _b),) = receiver.requests
    assert "webhook-signature" not in headers and headers["webhook-id"] == "a-1"
    assert (result.delivered, result.error) == (False, "HTTP 401 Unauthorized")


def test_a_short_retry_after_is_waited_instead_of_the_backoff(
    tmp_path: Path, receiver: Any
) -> None:
    config = AlertsConfig(
        webhook_url=receiver.url,
        outbox=tmp_path / "o.jsonl",
        attempts=3,
        backoff_seconds=0.01,
        webhook_secrets={receiver.url: SECRET},
    )
    receiver.script = [(429, {"Retry-After": "2"}), (503, {})]
    waits: list[float] = []
    result = deliver({"id": "a-2", "message": "m"}, config, sleep=waits.append)
    assert (result.delivered, result.attempts) == (True, 3)
    assert waits == [2.0, 0.02]  # Retry-After's 2 s, then backoff × 2^(2-1)


def test_a_long_retry_after_defers_the_delivery_to_a_later_run(
    tmp_path: Path, receiver: Any
) -> None:
    """503 with ``Retry-After: 2`` and ``max_wait_seconds = 0``: not retried in the run, pending
    (no outbox); a run before then sends nothing; the first run after it delivers."""
    session = make_workspace(
        tmp_path / "ws",
        f"sqlite:///{tmp_path / 'e.sqlite'}",
        alerts=_config(
            receiver.url,
            f'max_wait_seconds = 0\n[alerts.webhook_secrets]\n"{receiver.url}" = "{SECRET}"\n',
        ),
    )
    day = __import__("datetime").date(2026, 9, 5)  # one alert: spender at 50 % (2.00 USD)
    receiver.script = [(503, {"Retry-After": "2"})]
    before = time.time()
    run = raise_alerts(session, day)
    assert len(run.new) == 1 and len(receiver.requests) == 1
    [(alert_id, failure)] = run.failures
    assert failure.error.startswith("RetryLater: retry after ") and "HTTP 503" in failure.error
    [pending] = pending_deliveries(session.engine, ["ledger.plugins.webhook"])
    due = datetime.fromisoformat(pending.last_attempt).timestamp()
    assert before + 1 <= due <= time.time() + 3
    assert not (session.workspace.root / "var" / "outbox.jsonl").exists()

    again = raise_alerts(session, day)  # too early: not claimed, not sent
    assert len(receiver.requests) == 1 and [p.alert for p in again.pending] == [alert_id]

    time.sleep(max(0.0, due - time.time()) + 1.1)
    last = raise_alerts(session, day)
    assert [status for status, _h, _b in receiver.requests] == [503, 204]
    assert last.delivered == ((alert_id, "ledger.plugins.webhook"),) and last.pending == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[alerts.webhook_secrets]\n"https://h.example.com/x" = "whsec_c2hvcnQ="\n',
            'https://h.example.com/x: expected a secret "whsec_<base64 of 24 to 64 bytes>"',
        ),
        (
            '[alerts.webhook_secrets]\n"https://h.example.com/x" = '
            '"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n',
            "expected a secret",
        ),
        (
            '[alerts.webhook_secrets]\n"h.example.com" = '
            '"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n',
            "'h.example.com': expected an http:// or https:// endpoint URL",
        ),
        ('[alerts]\nwebhook_secrets = "missing.toml"\n', "alerts.webhook_secrets: cannot read"),
        (
            "[alerts]\nmax_wait_seconds = 999\n",
            "alerts.max_wait_seconds: expected a number of seconds",
        ),
    ],
)
def test_secrets_config_is_validated_without_echoing_the_secret(
    tmp_path: Path, table: str, message: str
) -> None:
    (tmp_path / "meterbook.toml").write_text(table)
    with pytest.raises(WorkspaceError, match=None) as raised:
        Workspace.load(tmp_path)
    text = str(raised.value)
    assert message in text and len(text.splitlines()) == 1
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in text and "c2hvcnQ" not in text
