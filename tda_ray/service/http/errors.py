"""How errors become responses: every error is ``{"detail": ...}`` with a 4xx, or 503 for Kafka (which also
names the events that were published)."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tda_ray.service.http.middleware import BodyTimeout, BodyTooLarge
from tda_ray.service.jobs import Conflict, EventsUnavailable, InProgress, InvalidRequest, NotFound, PayloadTooLarge

__all__ = ["install_error_handlers"]

# Typed errors of the jobs layer -> status codes.
STATUS = {
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    BodyTooLarge: 413,
    BodyTimeout: 408,
    InvalidRequest: 422,
}
# Seconds a client should wait before it retries a 409 of a running idempotent request, or a 503.
RETRY_AFTER_S = 1


def _detail(exc: Exception) -> str:
    # KeyError-like exceptions (NotFound is a LookupError) would quote their message.
    return str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)


def install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        # FastAPI answers 400 when a JSON body is not even text; every other body problem is a 422.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return JSONResponse({"detail": "malformed request body: not UTF-8 encoded JSON"}, status_code=422)
        return await http_exception_handler(request, exc)

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # FastAPI's default echoes the offending input; NaN or inf there is not JSON and the reply itself
        # would fail with a 500, so the input is left out.
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    def typed(status: int):  # type: ignore[no-untyped-def]
        async def handler(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": _detail(exc)}, status_code=status)

        return handler

    async def in_progress(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409, headers={"Retry-After": str(RETRY_AFTER_S)})

    async def events_unavailable(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EventsUnavailable)
        body = {"detail": str(exc), "published": exc.published, "not_published": exc.not_published}
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(InProgress, in_progress)
    app.add_exception_handler(EventsUnavailable, events_unavailable)
    app.add_exception_handler(RequestValidationError, validation)
    for kind, status in STATUS.items():
        app.add_exception_handler(kind, typed(status))
