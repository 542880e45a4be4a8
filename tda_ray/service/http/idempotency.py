"""``Idempotency-Key`` on POST /v1/jobs, /v1/pointclouds and /v1/events: a retry gets the first answer.

A client that lost the answer to a POST (a timeout, a dropped connection, a 503 from a replica that died)
sends the request again with the same key: if the first one succeeded, the stored answer comes back (with
``Idempotent-Replayed: true``) and nothing is done twice.  Only successful answers are kept: a request that
failed runs again.  The same key with a different request is a 422; while the first request with a key
still runs, a second one gets 409 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from tda_ray.service.jobs import InvalidRequest
from tda_ray.service.jobs.service import JobService

__all__ = ["HEADER", "fingerprint", "idempotent"]

HEADER = "Idempotency-Key"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


def fingerprint(*parts: bytes | str | None) -> str:
    """What identifies a request under its key (sha256 of its parts)."""
    h = hashlib.sha256()
    for part in parts:
        data = b"" if part is None else part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY_RE.fullmatch(key):
        raise InvalidRequest(f"{HEADER} must be 1 to 200 printable ASCII characters without spaces")
    return key


async def idempotent(
    request: Request,
    service: JobService,
    request_fingerprint: Callable[[], str],
    run: Callable[[], Awaitable[tuple[int, Any]]],
) -> Response:
    """``run()`` -> (status, body) as a JSON response, or the stored answer of an earlier request with the key."""
    key = _key(request)
    if key is None:
        status, body = await run()
        return JSONResponse(jsonable_encoder(body), status_code=status)
    scope = f"{request.method} {request.url.path}"
    earlier = await run_in_threadpool(service.idempotent_begin, scope, key, request_fingerprint())
    if earlier is not None:
        return Response(
            earlier.body,
            status_code=earlier.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        status, body = await run()
    except BaseException:
        await run_in_threadpool(service.idempotent_abandon, scope, key)  # the retry runs again
        raise
    encoded = jsonable_encoder(body)
    if status < 300:
        await run_in_threadpool(service.idempotent_finish, scope, key, status, json.dumps(encoded))
    else:
        await run_in_threadpool(service.idempotent_abandon, scope, key)
    return JSONResponse(encoded, status_code=status)
