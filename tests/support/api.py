"""The API tests' workspace and client helpers: plan ``pro`` (0.01 a call, 0.001 a token),
customers ``acme`` (cap 100 calls, 5.00 prepaid credit) and ``beta``, both starting today;
a uvicorn server on a free loopback port; event bodies for ``POST /v1/events``.

``FIVE`` is the five-event body of test_api's worked example: three accepted for acme, one
for an unknown customer, one with a bad time. Shared by test_api and test_api_*.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ledger.api.app import Service, create_app
from ledger.workspace import Workspace

TODAY = datetime.now(UTC).date()
NOW = datetime.now(UTC)
CONFIG = 'store = "sqlite:///var/events.sqlite"\ntimezone = "UTC"\n'


def plans() -> str:
    return """plans:
  pro:
    currency: USD
    charges:
      - {meter: api_calls, model: unit, unit_price: "0.01"}
      - {meter: tokens, model: unit, unit_price: "0.001"}
    max_caps: {api_calls: 1000}
"""


def customers() -> str:
    expires = TODAY + timedelta(days=60)
    return f"""customers:
  acme:
    name: Acme Corp
    currency: USD
    subscriptions: [{{plan: pro, start: {TODAY}}}]
    billing_anchor: start
    caps: {{api_calls: 100}}
    credits: [{{amount: "5.00", granted: {TODAY}, expires: {expires}}}]
  beta:
    currency: USD
    subscriptions: [{{plan: pro, start: {TODAY}}}]
    billing_anchor: start
"""


def stamp(seconds_ago: int) -> str:
    """A time today, ``seconds_ago`` before now (never before midnight)."""
    when = max(
        NOW - timedelta(seconds=seconds_ago), datetime.combine(TODAY, datetime.min.time(), UTC)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(
    root: Path, *, max_body: int = 1 << 20
) -> tuple[str, Service, uvicorn.Server, threading.Thread]:
    service = Service.open(Workspace.load(root), max_body=max_body)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", service, server, thread


def event(
    i: str,
    customer: str = "acme",
    type_: str = "api.request",
    when: str | None = None,
    **props: Any,
) -> dict[str, Any]:
    return {
        "id": i,
        "source": "app",
        "customer": customer,
        "type": type_,
        "time": when or stamp(60),
        "properties": props,
    }


FIVE = [
    event("e-1"),
    event("e-2"),
    event("e-3", type_="llm.completion", tokens=Decimal("1200.5")),
    event("e-4", customer="nobody"),
    event("e-5", when="2026-13-01T00:00:00Z"),
]


def body(events: list[dict[str, Any]]) -> str:
    return json.dumps(events, default=str)


def post(client: httpx.Client, text: str, content_type: str = "application/json") -> httpx.Response:
    return client.post("/v1/events", content=text.encode(), headers={"Content-Type": content_type})
