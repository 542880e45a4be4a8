"""ASGI middleware of Serve's HTTP proxy: slow and stalled clients never take an ingress replica's slot.

Serve hands a request to a replica as soon as its headers arrive; the replica then waits for the body.  A
client that announces a body and stalls (or trickles it) would hold one of the replica's
``max_ongoing_requests`` slots, and a few hundred such clients starve every other request, health
probes included.  So in the proxy, before routing:

* a body of at most ``buffer_bytes`` (every JSON request: jobs, events, small clouds) is read whole first,
  within ``body_timeout_s``; a client that does not send it in time gets 408 and never reaches a replica;
* at most ``max_pending`` bodies are awaited at once; beyond, 503 with ``Retry-After``;
* larger (streamed) bodies go through as they arrive; the ingress' own middleware bounds the pause between
  their chunks (:class:`tda_ray.service.http.middleware.BodyLimitMiddleware`).

Serve applies middlewares to its proxy only through its proxy callback: ``tda-ray serve`` sets
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` to :data:`PROXY_CALLBACK` before it starts Ray; with
``serve deploy``, set it on the nodes (with ``TDA_HTTP_BODY_TIMEOUT_S`` and ``TDA_HTTP_MAX_PENDING_BODIES``;
cluster.yaml does).  Starlette only.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tda_ray.ray_worker_setup import correct_the_proxy

__all__ = ["PROXY_CALLBACK", "ProxyGuard", "proxy_middlewares"]

PROXY_CALLBACK = "tda_ray.service.http.proxy_guard.proxy_middlewares"
BUFFER_BYTES = 1024 * 1024
_WITH_BODY = ("POST", "PUT", "PATCH")


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class ProxyGuard:
    def __init__(
        self, app: ASGIApp, body_timeout_s: float = 10.0, max_pending: int = 2000, buffer_bytes: int = BUFFER_BYTES
    ) -> None:
        self.app, self.body_timeout_s, self.max_pending, self.buffer_bytes = (
            app,
            body_timeout_s,
            max_pending,
            buffer_bytes,
        )
        self.pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = _content_length(scope) if scope["type"] == "http" else None
        if (
            scope["type"] != "http"
            or scope.get("method") not in _WITH_BODY
            or length is None
            or length > self.buffer_bytes
        ):
            await self.app(scope, receive, send)
            return
        if self.pending >= self.max_pending:
            await _answer(
                send, 503, "too many requests are sending their bodies; retry shortly", [(b"retry-after", b"1")]
            )
            return
        self.pending += 1
        try:
            body = await asyncio.wait_for(self._read(receive), self.body_timeout_s)
        except asyncio.TimeoutError:
            await _answer(send, 408, f"the request body did not arrive within {self.body_timeout_s:g} s")
            return
        finally:
            self.pending -= 1
        if body is None:  # the client went away
            return
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()  # then: the client's disconnect

        await self.app(scope, replayed, send)

    async def _read(self, receive: Receive) -> bytes | None:
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body += msg.get("body", b"")  # never more than Content-Length: the HTTP parser enforces it
            if not msg.get("more_body", False):
                return bytes(body)


def proxy_middlewares() -> list[Middleware]:
    """Serve's HTTP proxy callback (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``): the guard, from TDA_* env.

    Runs in the proxy's process, so it also makes a replica that dies mid-request a 503 there
    (:func:`tda_ray.ray_worker_setup.correct_the_proxy`).
    """
    correct_the_proxy()
    options: dict[str, Any] = {}
    if "TDA_HTTP_BODY_TIMEOUT_S" in os.environ:
        options["body_timeout_s"] = float(os.environ["TDA_HTTP_BODY_TIMEOUT_S"])
    if "TDA_HTTP_MAX_PENDING_BODIES" in os.environ:
        options["max_pending"] = int(os.environ["TDA_HTTP_MAX_PENDING_BODIES"])
    return [Middleware(ProxyGuard, **options)]
