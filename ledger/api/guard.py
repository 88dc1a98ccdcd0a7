"""Slow and oversized clients: limits every request meets before any route reads it.

* :class:`BodyGuard` (ASGI middleware): a request body larger than its route allows
  (``POST /v1/events``: ``--max-body``; every other route: :data:`SMALL_BODY`, 64 KiB)
  is cut off with 413, and a body that stalls — no byte for :data:`BODY_IDLE` seconds,
  or not complete after :data:`BODY_TOTAL` seconds — with 408, so a client that opens
  a request and trickles its body (slowloris) holds no worker for longer than that.
* :class:`HeaderDeadline` (the uvicorn HTTP protocol): a connection must finish a
  request's headers within :data:`HEADER_TIMEOUT` seconds of opening or of starting the
  request, else it is closed; uvicorn's own keep-alive timeout only covers idle
  connections between requests.
* :func:`cross_site`: a browser's POST to the portal from another site (its
  ``Sec-Fetch-Site`` says so, or, from a browser that sends none, its ``Origin``) is
  refused before the SameSite cookie is even looked at.

    >>> cross_site({"origin": "https://evil.example", "host": "127.0.0.1:8000"})
    True
    >>> cross_site({"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"}), cross_site({})
    (False, False)
    >>> cross_site({"sec-fetch-site": "cross-site"})
    True
    >>> cross_site({"sec-fetch-site": "same-origin", "origin": "null"})
    False
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Largest body of a request other than event ingest (a cap change, the sign-in form).
SMALL_BODY = 64 << 10
#: Seconds a request body may stall between two reads, and in all.
BODY_IDLE = 15.0
BODY_TOTAL = 120.0
#: Seconds from a connection's opening (or a request's first byte) to the end of its headers.
HEADER_TIMEOUT = 15.0


class BodyTooLarge(Exception):
    """The body went over ``limit`` bytes."""

    def __init__(self, limit: int):
        super().__init__(f"the body is over {limit} bytes")
        self.limit = limit


class BodyTimeout(Exception):
    """The body stalled."""


def cross_site(headers: Mapping[str, str]) -> bool:
    """Whether a request says it comes from another site (``Origin`` not this host,
    or ``Sec-Fetch-Site: cross-site`` / ``same-site``)."""
    fetch = headers.get("sec-fetch-site", "")
    if fetch:  # a browser's own word, which a page cannot set; it wins over Origin
        return fetch in ("cross-site", "same-site")
    origin = headers.get("origin", "")
    if not origin:
        return False
    return origin == "null" or urlsplit(origin).netloc != headers.get("host", "")


class BodyGuard:
    """ASGI middleware bounding a request body's size and the time it takes to arrive."""

    def __init__(self, app: Any, *, ingest_limit: int, ingest_path: str = "/v1/events"):
        self.app = app
        self.ingest_limit = ingest_limit
        self.ingest_path = ingest_path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.ingest_limit if scope["path"] == self.ingest_path else SMALL_BODY
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BODY_TOTAL
        state = {"size": 0, "done": False}

        async def bounded() -> Any:
            if state["done"]:
                return await receive()
            wait = min(BODY_IDLE, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.001))
            except TimeoutError:
                raise BodyTimeout(
                    f"the body did not arrive in time ({BODY_IDLE:g} s without a byte, "
                    f"{BODY_TOTAL:g} s in all)"
                ) from None
            if message["type"] == "http.request":
                state["size"] += len(message.get("body", b""))
                if state["size"] > limit:
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    state["done"] = True
            else:
                state["done"] = True
            return message

        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded, tracked)
        except Exception as exc:  # raised through the routes (a middleware may wrap it in a group)
            found = _guard_error(exc)
            if found is None or started:
                raise
            await _answer(send, found)


def _guard_error(exc: BaseException) -> BodyTooLarge | BodyTimeout | None:
    """The guard's own exception in ``exc`` (or in an exception group around it)."""
    if isinstance(exc, BodyTooLarge | BodyTimeout):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _guard_error(inner)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return _guard_error(cause) if cause is not None and cause is not exc else None


async def _answer(send: Any, exc: BodyTooLarge | BodyTimeout) -> None:
    """413 or 408 as JSON; the connection is closed (the rest of the body is never read)."""
    import json

    if isinstance(exc, BodyTooLarge):
        status, body = 413, {"error": "body_too_large", "detail": f"{exc}; send smaller batches"}
    else:
        status, body = 408, {"error": "request_timeout", "detail": str(exc)}
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers are late."""

    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
