"""ASGI middleware of the ingress."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["STREAM_TYPES", "BodyLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")


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

    def __init__(self, app: ASGIApp, limit: int, stream_limit: int | None = None) -> None:
        self.app, self.small_limit = app, limit
        self.stream_limit = max(limit, stream_limit or limit)

    def _limit(self, scope: Scope) -> int:
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
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return msg

        await self.app(scope, counting_receive, send)
