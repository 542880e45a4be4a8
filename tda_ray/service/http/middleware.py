"""ASGI middleware of the ingress."""

from __future__ import annotations

import asyncio
import hmac

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "OPEN_PATHS",
    "STREAM_TYPES",
    "ApiKeyMiddleware",
    "BodyLimitMiddleware",
    "BodyTimeout",
    "BodyTooLarge",
    "key_matches",
]

# Paths answered without the API key: the health probe (which then reports only its status) and the docs.
OPEN_PATHS = frozenset({"/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
KEY_HEADER = b"x-api-key"


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")


class BodyTimeout(Exception):
    """A streamed body paused longer than allowed (HTTP 408)."""

    def __init__(self, idle_s: float) -> None:
        super().__init__(f"the request body paused for more than {idle_s:g} s; send it without stalling")


# Raw upload bodies streamed to storage, and the format each announces (octet-stream: sniffed).
STREAM_TYPES = {
    "application/x-npy": "npy",
    "application/vnd.apache.parquet": "parquet",
    "application/octet-stream": None,
}


class BodyLimitMiddleware:
    """Refuses request bodies over the limit with 413, by Content-Length or by counting a streamed body.

    Point-cloud uploads that go to storage as they arrive (``.npy``/Parquet bodies, multipart files) get
    the larger ``stream_limit``; everything parsed in memory gets ``limit``.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        stream_limit: int | None = None,
        events_limit: int | None = None,
        idle_s: float | None = None,
    ) -> None:
        self.app, self.small_limit, self.idle_s = app, limit, idle_s
        self.stream_limit = max(limit, stream_limit or limit)
        self.events_limit = events_limit or limit

    def _limit(self, scope: Scope) -> int:
        if scope.get("method") == "POST" and scope.get("path", "").rstrip("/").endswith("/v1/events"):
            return self.events_limit
        if scope.get("method") == "POST" and scope.get("path", "").rstrip("/").endswith("/v1/pointclouds"):
            for name, value in scope.get("headers", []):
                if name == b"content-type":
                    ctype = value.decode("latin-1").split(";")[0].strip().lower()
                    if ctype in STREAM_TYPES or ctype == "multipart/form-data":
                        return self.stream_limit
        return self.small_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    resp = JSONResponse({"detail": str(BodyTooLarge(limit))}, status_code=413)
                    await resp(scope, receive, send)
                    return
        seen, done = 0, False

        async def counting_receive() -> Message:
            nonlocal seen, done
            if done or not self.idle_s:  # after the body, receive() waits for a disconnect: no deadline
                msg = await receive()
            else:
                try:
                    msg = await asyncio.wait_for(receive(), self.idle_s)
                except asyncio.TimeoutError:
                    raise BodyTimeout(self.idle_s) from None
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                done = not msg.get("more_body", False)
                if seen > limit:
                    raise BodyTooLarge(limit)
            return msg

        await self.app(scope, counting_receive, send)


def key_matches(given: str | bytes | None, expected: str) -> bool:
    """Constant-time comparison of a presented API key with the server's."""
    if given is None:
        return False
    raw = given if isinstance(given, bytes) else given.encode("latin-1", "replace")
    return hmac.compare_digest(raw, expected.encode())


class ApiKeyMiddleware:
    """401 for a request without the right ``X-API-Key`` before anything reads its body (routes, limits)."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        # The key guards the API; the console's page and files and the docs are public (the console asks
        # for the key and sends it with its API calls).
        if self.key is None or scope["type"] != "http" or not path.startswith("/v1/") or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == KEY_HEADER), None)
        if not key_matches(given, self.key):
            resp = JSONResponse(
                {"detail": "missing or wrong API key (X-API-Key header)"},
                status_code=401,
                headers={"WWW-Authenticate": "APIKey"},
            )
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)
