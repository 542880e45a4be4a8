"""HTTP API: a Ray Serve application with a FastAPI ingress.

Two deployments, composed by binding (``build_app``):

* ``Ingress`` — the FastAPI app; stateless (everything lives in the store), so
  it scales out (``serve_config.yaml``: autoscaling).  Routes are thin: they
  parse, call :class:`tda_ray.jobs.JobService` and map its typed errors to
  4xx responses.
* ``JobManager`` — hosts the single :class:`tda_ray.jobs.Dispatcher` that
  turns queued job records into Ray tasks; exactly one replica.  The ingress
  only nudges it (``notify``/``cancel``); an accepted job is already durable,
  so it runs even if the nudge is lost.

:func:`run_server` is what ``tda-ray serve`` (and ``make run``) calls: start a
local Ray (or join one), deploy ``serve_config.yaml``, block until
SIGINT/SIGTERM, then shut Serve and Ray down.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
import math
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import tda_ray
from tda_ray.jobs import (
    MAX_UPLOAD_PARTS,
    Conflict,
    InvalidRequest,
    JobService,
    NotFound,
    PayloadTooLarge,
    streamable_format,
)
from tda_ray.messages import EventsAccepted, EventsRequest
from tda_ray.settings import Settings, get_settings
from tda_ray.storage import ALL_STATUSES, JobRecord, PointCloudRecord, UploadRecord

log = logging.getLogger("tda_ray.api")

APP_NAME = "tda"
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
assert set(JobStatus.__args__) == set(ALL_STATUSES)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- models


class ErrorOut(BaseModel):
    detail: Any = Field(description="What is wrong: a message, or FastAPI's list of validation errors.")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: str
    storage: str
    dispatcher: dict[str, Any] | None = Field(description="Dispatcher state, null when it does not answer.")
    components: dict[str, Any] = Field(
        default_factory=dict, description="Optional companions, e.g. the Kafka broker ('broker')."
    )


Coordinate = Annotated[float, Strict()]


class PointCloudIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"points": [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "name": "square"}]
        },
    )
    points: list[list[Coordinate]] = Field(
        min_length=1, description="One row per point, all rows of the same length; finite numbers only."
    )
    name: str | None = Field(default=None, max_length=200)


class PointCloudOut(BaseModel):
    id: str
    n_points: int
    dim: int
    name: str | None
    source: str = Field(description="json, npy, point-cloud (text/CSV) or parquet")
    created_at: datetime


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "lidar-scan-17"}]})
    name: str | None = Field(default=None, max_length=200, description="Name of the point cloud it becomes.")


class UploadPartOut(BaseModel):
    part: int
    size: int = Field(description="Bytes stored for this part.")


class UploadOut(BaseModel):
    id: str
    name: str | None
    status: Literal["open", "completing", "completed", "aborted"]
    pointcloud_id: str | None = Field(description="The point cloud made from it, once completed.")
    parts: list[UploadPartOut] = Field(description="Parts received so far (while open): resume from here.")
    received_bytes: int
    max_part_bytes: int = Field(description="Largest accepted part body.")
    created_at: datetime


class JobParams(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"maxdim": 1, "threshold": None, "coeff": 2}]}
    )
    maxdim: int = Field(default=1, ge=0, description="Largest homology dimension (the server caps it).")
    threshold: float | None = Field(default=None, ge=0, description="Largest edge length; null = full filtration.")
    coeff: int = Field(default=2, ge=2, description="Prime field of coefficients Z/p.")
    landmarks: Annotated[int, Strict(), Field(ge=1)] | Literal["auto"] | None = Field(
        default=None,
        description=(
            'null: exact Vietoris–Rips of the whole cloud. A count N (or "auto": 5000/1000/400/150 for maxdim '
            "0/1/2/3+): Rips on N greedy max-min landmarks chosen with Ray Data; the result reports the covering "
            "radius eps, and its diagrams are within bottleneck distance 2 eps of the whole cloud's."
        ),
    )


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pointcloud_id: str = Field(description="Id returned by POST /v1/pointclouds.")
    algorithm: Literal["vietoris_rips"] = "vietoris_rips"
    params: JobParams = Field(default_factory=JobParams)


class JobOut(BaseModel):
    id: str
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    error: str | None
    pointcloud_id: str
    algorithm: str
    params: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int = Field(description="Dispatches so far (re-dispatched after a service restart).")
    runs: int = Field(description="Task starts so far (Ray retries after a worker died included).")


class JobList(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


# [birth, death]; a list rather than a tuple, whose "prefixItems" schema trips some OpenAPI 3.0 tools.
Pair = Annotated[list[float | None], Field(min_length=2, max_length=2)]


class LandmarksOut(BaseModel):
    requested: int = Field(description='Landmarks asked for ("auto" resolved).')
    count: int = Field(description="Landmarks used: fewer than requested only when every point is one (eps 0).")
    eps: float = Field(description="Covering radius: every point lies within eps of a landmark (exact).")
    bottleneck_bound: float = Field(description="2 eps: bound on the bottleneck distance to the exact diagrams.")
    n_points: int = Field(description="Points of the whole cloud.")
    rounds: int = Field(description="Passes over the data during the selection.")
    workers: int = Field(description="Shard actors that held the cloud.")
    select_s: float = Field(description="Seconds spent choosing landmarks (reading the blocks: read_s).")
    read_s: float
    rips_s: float = Field(description="Seconds of Rips on the landmarks.")
    shard_peak_rss_bytes: int = Field(default=0, description="Largest peak resident memory of a shard process.")


class ResultOut(BaseModel):
    job_id: str
    algorithm: str
    params: dict[str, Any]
    n_points: int
    dim: int
    diagrams: list[list[Pair]] = Field(
        description="Per homology dimension, [birth, death] pairs; death null = never dies (infinite)."
    )
    betti: list[int] = Field(description="Classes alive at the end of the filtration, per dimension.")
    n_pairs: list[int]
    total_persistence: list[float]
    persistence_entropy: list[float]
    elapsed_s: float = Field(description="Engine time of the job in seconds (landmark selection included).")
    landmarks: LandmarksOut | None = Field(default=None, description="Set for landmark jobs: count, eps, timings.")
    finished_at: datetime | None


def _job_out(job: JobRecord) -> JobOut:
    return JobOut(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress,
        error=job.error,
        pointcloud_id=job.pointcloud_id,
        algorithm=job.algorithm,
        params=job.params,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempt=job.attempt,
        runs=job.runs,
    )


def _upload_out(rec: UploadRecord, max_part_bytes: int) -> UploadOut:
    return UploadOut(
        id=rec.id,
        name=rec.name,
        status=rec.status,  # type: ignore[arg-type]
        pointcloud_id=rec.pointcloud_id,
        parts=[UploadPartOut(part=n, size=size) for n, size in rec.parts],
        received_bytes=sum(size for _, size in rec.parts),
        max_part_bytes=max_part_bytes,
        created_at=rec.created_at,
    )


def _pc_out(pc: PointCloudRecord) -> PointCloudOut:
    return PointCloudOut(
        id=pc.id, n_points=pc.n_points, dim=pc.dim, name=pc.name, source=pc.source, created_at=pc.created_at
    )


# --------------------------------------------------------------------------- helpers


class DispatcherLink(Protocol):
    """How the ingress reaches the dispatcher (a Serve handle in production)."""

    def notify(self) -> None: ...

    def cancel(self, job_id: str) -> None: ...

    def stats(self) -> dict[str, Any] | None: ...


class _BodyTooLarge(Exception):
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
                    resp = JSONResponse({"detail": str(_BodyTooLarge(limit))}, status_code=413)
                    await resp(scope, receive, send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return msg

        await self.app(scope, counting_receive, send)


def render_diagram(diagrams: list[npt.NDArray[np.float64]], fmt: Literal["svg", "png"], title: str) -> bytes:
    """The persistence diagram as a picture; essential classes sit on a dashed line marked ∞."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # Figure, not pyplot: no global state shared between threads

    finite = [d[np.isfinite(d[:, 1])] for d in diagrams]
    values = np.concatenate([f.ravel() for f in finite] + [d[:, 0] for d in diagrams] + [np.zeros(1)])
    hi = float(values.max()) if values.size else 1.0
    hi = hi if hi > 0 else 1.0
    top = hi * 1.1
    fig = Figure(figsize=(5.0, 5.0), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, top * 1.05], [0, top * 1.05], color="0.4", lw=0.8)
    if any(np.isinf(d[:, 1]).any() for d in diagrams):
        ax.axhline(top, color="0.4", lw=0.8, ls="--")
        ax.text(0, top, " ∞", va="bottom", ha="left")
    for k, d in enumerate(diagrams):
        if d.size:
            deaths = np.where(np.isinf(d[:, 1]), top, d[:, 1])
            ax.scatter(d[:, 0], deaths, s=14, alpha=0.8, label=f"H{k} ({d.shape[0]})")
    ax.set_xlim(-0.02 * top, top * 1.05)
    ax.set_ylim(-0.02 * top, top * 1.08)
    ax.set_xlabel("birth")
    ax.set_ylabel("death")
    ax.set_title(title, fontsize=9)
    if any(d.size for d in diagrams):
        ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


_Responses = dict[int | str, dict[str, Any]]
_ERR: dict[str, Any] = {"model": ErrorOut}
_R401: _Responses = {401: {**_ERR, "description": "Missing or wrong API key"}}
_R404: _Responses = {404: {**_ERR, "description": "Unknown id"}}
_R409: _Responses = {409: {**_ERR, "description": "Not possible in the job's current state"}}
_R413: _Responses = {413: {**_ERR, "description": "Request body over the size limit"}}
_R415: _Responses = {415: {**_ERR, "description": "Unsupported content type"}}
_R422: _Responses = {422: {**_ERR, "description": "Invalid input"}}
_R503: _Responses = {503: {**_ERR, "description": "Kafka is disabled or unreachable; nothing was published"}}

_POINTS_ADAPTER = TypeAdapter(PointCloudIn)

# OpenAPI links: how a response's id feeds the next call (clients, and schemathesis' stateful phase).
_JOB_ID = {"job_id": "$response.body#/id"}
_PC_LINKS = {
    "GetPointCloud": {"operationId": "get_pointcloud", "parameters": {"pointcloud_id": "$response.body#/id"}},
    "SubmitJob": {"operationId": "submit_job", "requestBody": {"pointcloud_id": "$response.body#/id"}},
}
_JOB_LINKS = {
    "GetJob": {"operationId": "get_job", "parameters": _JOB_ID},
    "GetResult": {"operationId": "get_result", "parameters": _JOB_ID},
    "CancelJob": {"operationId": "cancel_job", "parameters": _JOB_ID},
    "GetDiagramSvg": {"operationId": "diagram_svg", "parameters": _JOB_ID},
    "GetDiagramPng": {"operationId": "diagram_png", "parameters": _JOB_ID},
}

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PointCloudIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".npy (never unpickled), .csv/.txt (one point per line) or .parquet",
                        },
                        "name": {"type": "string", "maxLength": 200},
                    },
                }
            },
            # Raw bodies, streamed to storage; the bytes decide the format (octet-stream: either).
            **{
                t: {"schema": {"type": "string", "format": "binary", "description": "a 2-D .npy or a Parquet file"}}
                for t in ("application/x-npy", "application/vnd.apache.parquet", "application/octet-stream")
            },
        },
    }
}


_PART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}

# --------------------------------------------------------------------------- the FastAPI app

_STREAM_CHUNK = 4 * 1024 * 1024  # bytes handed to storage per write while a body streams in


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_STREAM_CHUNK):
        yield chunk


def extra_health(settings: Settings) -> dict[str, Any]:
    """Health of optional companions for /v1/health ``components``: Kafka broker and outbox sink."""
    from tda_ray import streaming

    try:
        return {"kafka": streaming.health(settings)}
    except Exception as exc:  # a health probe reports, it never fails
        return {"kafka": {"enabled": settings.kafka_enabled, "error": f"{type(exc).__name__}: {exc}"}}


def create_app(service: JobService, dispatcher: DispatcherLink) -> FastAPI:
    """The FastAPI app over a :class:`JobService`; usable inside Serve or on its own."""
    settings = service.settings
    app = FastAPI(
        title="tda-ray",
        version=tda_ray.__version__,
        description='Persistent homology (Vietoris–Rips) jobs on Ray. Errors are JSON {"detail": ...}.',
    )
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_upload_bytes, stream_limit=settings.max_stream_upload_bytes
    )
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when the server has a key.")

    # A default, not Annotated[...]: key_header is local and string annotations resolve in module globals.
    def require_key(key: str | None = Depends(key_header)) -> None:
        expected = settings.api_key
        if expected is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
            raise HTTPException(401, "missing or wrong API key (X-API-Key header)")

    auth = [Depends(require_key)]

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers 400 when a JSON body is not even text; every other body problem is a 422.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return JSONResponse({"detail": "malformed request body: not UTF-8 encoded JSON"}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the offending input; NaN or inf there is not JSON and the reply
        # itself would fail with a 500, so the input is left out.
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0] if exc.args else exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(_: Request, exc: PayloadTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(_BodyTooLarge)
    async def _body_too_large(_: Request, exc: _BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/v1/health", response_model=HealthOut, tags=["service"], operation_id="health")
    def health() -> HealthOut:
        db = storage_state = "ok"
        try:
            service.store.ping()
        except Exception as exc:  # report, never fail the probe itself
            db = storage_state = f"error: {type(exc).__name__}: {exc}"
        try:
            stats = dispatcher.stats()
        except Exception:
            stats = None
        ok = db == "ok" and stats is not None and bool(stats.get("alive"))
        return HealthOut(
            status="ok" if ok else "degraded",
            version=tda_ray.__version__,
            database=db,
            storage=storage_state,
            dispatcher=stats,
            components=extra_health(settings),
        )

    @app.post(
        "/v1/pointclouds",
        status_code=201,
        response_model=PointCloudOut,
        dependencies=auth,
        tags=["pointclouds"],
        operation_id="upload_pointcloud",
        openapi_extra=_UPLOAD_BODY,
        responses={201: {"links": _PC_LINKS}, **_R401, **_R413, **_R415, **_R422},
    )
    async def upload_pointcloud(
        request: Request,
        name: Annotated[str | None, Query(max_length=200, description="Name of a streamed .npy/Parquet body")] = None,
    ) -> PointCloudOut:
        """Upload a point cloud: JSON ``{"points": [...]}``, a multipart ``file``, or a raw .npy/Parquet body.

        .npy and Parquet (raw bodies, or multipart files) are written to storage as they arrive and checked
        block by block, so clouds far larger than the ingress' memory can be uploaded for landmark jobs.
        """
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            body = await request.body()
            try:
                parsed = _POINTS_ADAPTER.validate_json(body)
            except ValidationError as exc:
                errors: list[dict[str, Any]] = []
                for err in exc.errors(include_url=False, include_context=False):
                    e = {**err, "loc": ("body", *err["loc"])}
                    # Echo only small, printable inputs (the body may be huge or not even text).
                    if not isinstance(e.get("input"), (int, float, str, type(None))) or len(str(e["input"])) > 200:
                        e.pop("input", None)
                    errors.append(e)
                raise RequestValidationError(errors) from exc
            rec = await run_in_threadpool(service.create_pointcloud, parsed.points, parsed.name or name)
        elif ctype in STREAM_TYPES:
            rec = await _stream_upload(_body_chunks(request), name, STREAM_TYPES[ctype])
        elif ctype == "multipart/form-data":
            try:
                form = await request.form(max_files=1, max_fields=4)
            except HTTPException:
                raise
            except _BodyTooLarge:
                raise
            except Exception as exc:  # malformed multipart framing
                raise InvalidRequest(f"malformed multipart body: {exc}") from exc
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidRequest("multipart body needs a 'file' field holding the point cloud")
            form_name = form.get("name")
            if form_name is not None and (not isinstance(form_name, str) or len(form_name) > 200):
                raise InvalidRequest("'name' must be text of at most 200 characters")
            filename = upload.filename or "upload"
            head = await upload.read(8)
            await upload.seek(0)
            if streamable_format(filename, head):  # the parser spooled it to disk; copy it on without loading it
                rec = await _stream_upload(_file_chunks(upload), form_name or name or filename, None)
            elif (upload.size or 0) > settings.max_upload_bytes:
                raise PayloadTooLarge(
                    f"{filename} has {upload.size} bytes; text uploads are limited to {settings.max_upload_bytes} "
                    "bytes (send .npy or Parquet for larger clouds)"
                )
            else:
                data = await upload.read()
                rec = await run_in_threadpool(service.create_pointcloud_from_file, data, filename, form_name or name)
        else:
            raise HTTPException(
                415,
                f"send application/json, multipart/form-data, application/x-npy, application/vnd.apache.parquet "
                f"or application/octet-stream, not {ctype or 'no content type'}",
            )
        return _pc_out(rec)

    async def _stream_upload(chunks: AsyncIterator[bytes], name: str | None, expected: str | None) -> PointCloudRecord:
        up = await run_in_threadpool(service.begin_upload)
        try:
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
                if len(buf) >= _STREAM_CHUNK:
                    await run_in_threadpool(up.write, bytes(buf))
                    buf.clear()
            if buf:
                await run_in_threadpool(up.write, bytes(buf))
        except BaseException:
            await run_in_threadpool(up.abort)
            raise
        return await run_in_threadpool(service.finish_upload, up, name, expected)

    # Upload sessions: large clouds as numbered parts (each one bounded request; Serve's proxy buffers a
    # whole request body, so a multi-GiB single request would sit in its memory).
    @app.post(
        "/v1/uploads",
        status_code=201,
        response_model=UploadOut,
        dependencies=auth,
        tags=["uploads"],
        operation_id="create_upload",
        responses={**_R401, **_R422},
    )
    def create_upload(body: UploadIn | None = None) -> UploadOut:
        """Open an upload session; then PUT parts 0, 1, ... (a .npy or Parquet file cut in pieces) and complete."""
        rec = service.create_upload_session(body.name if body else None)
        return _upload_out(rec, settings.max_upload_bytes)

    @app.get(
        "/v1/uploads/{upload_id}",
        response_model=UploadOut,
        dependencies=auth,
        tags=["uploads"],
        operation_id="get_upload",
        responses={**_R401, **_R404},
    )
    def get_upload(upload_id: str) -> UploadOut:
        """The session and the parts received so far (to resume an interrupted upload)."""
        return _upload_out(service.get_upload_session(upload_id), settings.max_upload_bytes)

    @app.put(
        "/v1/uploads/{upload_id}/parts/{part}",
        response_model=UploadPartOut,
        dependencies=auth,
        tags=["uploads"],
        operation_id="put_upload_part",
        openapi_extra=_PART_BODY,
        responses={**_R401, **_R404, **_R409, **_R413, **_R422},
    )
    async def put_upload_part(
        upload_id: str, part: Annotated[int, PathParam(ge=0, le=MAX_UPLOAD_PARTS - 1)], request: Request
    ) -> UploadPartOut:
        """Store part ``part`` (bytes ``part * size ..``) of the file; sending a part again replaces it."""
        data = await request.body()
        size = await run_in_threadpool(service.put_upload_part, upload_id, part, data)
        return UploadPartOut(part=part, size=size)

    @app.post(
        "/v1/uploads/{upload_id}/complete",
        status_code=201,
        response_model=PointCloudOut,
        dependencies=auth,
        tags=["uploads"],
        operation_id="complete_upload",
        responses={201: {"links": _PC_LINKS}, **_R401, **_R404, **_R409, **_R413, **_R422},
    )
    def complete_upload(upload_id: str) -> PointCloudOut:
        """Join the parts in order, check and store the cloud (as a streamed upload); idempotent once done."""
        return _pc_out(service.complete_upload_session(upload_id))

    @app.delete(
        "/v1/uploads/{upload_id}",
        response_model=UploadOut,
        dependencies=auth,
        tags=["uploads"],
        operation_id="abort_upload",
        responses={**_R401, **_R404, **_R409},
    )
    def abort_upload(upload_id: str) -> UploadOut:
        """Abort an open session and delete its parts."""
        return _upload_out(service.abort_upload_session(upload_id), settings.max_upload_bytes)

    @app.get(
        "/v1/pointclouds/{pointcloud_id}",
        response_model=PointCloudOut,
        dependencies=auth,
        tags=["pointclouds"],
        operation_id="get_pointcloud",
        responses={**_R401, **_R404},
    )
    def get_pointcloud(pointcloud_id: str) -> PointCloudOut:
        return _pc_out(service.get_pointcloud(pointcloud_id))

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobOut,
        dependencies=auth,
        tags=["jobs"],
        operation_id="submit_job",
        responses={202: {"links": _JOB_LINKS}, **_R401, **_R404, **_R413, **_R422},
    )
    def submit_job(job: JobIn) -> JobOut:
        """Queue a job; it runs as a Ray task. Poll GET /v1/jobs/{id} (``?wait=`` long-polls)."""
        rec = service.submit(job.pointcloud_id, job.algorithm, job.params.model_dump())
        try:
            dispatcher.notify()
        except Exception:  # the job is durable; the dispatcher's periodic scan picks it up
            log.warning("could not notify the dispatcher", exc_info=True)
        return _job_out(rec)

    @app.get(
        "/v1/jobs",
        response_model=JobList,
        dependencies=auth,
        tags=["jobs"],
        operation_id="list_jobs",
        responses={**_R401, **_R422},
    )
    def list_jobs(
        status: Annotated[JobStatus | None, Query(description="Only jobs in this state")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    ) -> JobList:
        items, total = service.list_jobs(status, limit, offset)
        return JobList(items=[_job_out(j) for j in items], total=total, limit=limit, offset=offset)

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=JobOut,
        dependencies=auth,
        tags=["jobs"],
        operation_id="get_job",
        responses={**_R401, **_R404, **_R422},
    )
    async def get_job(
        job_id: str,
        wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for the job to finish")] = 0,
    ) -> JobOut:
        if wait <= 0:
            return _job_out(await run_in_threadpool(service.get_job, job_id))
        # Long poll without holding a worker thread between looks at the store: often at first (small
        # jobs finish within tens of ms), then every 50 ms (a cheap indexed read).
        deadline = time.monotonic() + wait
        delay = 0.005
        while True:
            job = await run_in_threadpool(service.get_job, job_id)
            left = deadline - time.monotonic()
            if job.finished or left <= 0:
                return _job_out(job)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 1.25, 0.05)

    @app.delete(
        "/v1/jobs/{job_id}",
        response_model=JobOut,
        dependencies=auth,
        tags=["jobs"],
        operation_id="cancel_job",
        responses={**_R401, **_R404, **_R409},
    )
    def cancel_job(job_id: str) -> JobOut:
        """Cancel a queued or running job; it reads ``cancelled`` at once and its task stops within seconds."""
        rec = service.cancel(job_id)
        try:
            dispatcher.cancel(job_id)
        except Exception:  # the running task notices through the store anyway
            log.warning("could not tell the dispatcher about cancelling %s", job_id, exc_info=True)
        return _job_out(rec)

    @app.get(
        "/v1/jobs/{job_id}/result",
        response_model=ResultOut,
        dependencies=auth,
        tags=["jobs"],
        operation_id="get_result",
        responses={**_R401, **_R404, **_R409},
    )
    def get_result(job_id: str) -> ResultOut:
        job, res = service.result(job_id)
        s = res.summary
        diagrams = [
            [[float(b), float(d) if math.isfinite(d) else None] for b, d in dgm.tolist()] for dgm in res.diagrams
        ]
        return ResultOut(
            job_id=job.id,
            algorithm=job.algorithm,
            params=job.params,
            n_points=s["n_points"],
            dim=s["dim"],
            diagrams=diagrams,
            betti=s["betti"],
            n_pairs=s["n_pairs"],
            total_persistence=s["total_persistence"],
            persistence_entropy=s["persistence_entropy"],
            elapsed_s=s["elapsed_s"],
            landmarks=LandmarksOut.model_validate(s["landmarks"]) if s.get("landmarks") else None,
            finished_at=job.finished_at,
        )

    def picture(job_id: str, fmt: Literal["svg", "png"]) -> Response:
        job, res = service.result(job_id)
        title = f"job {job.id[:8]}: {res.summary['n_points']} points, maxdim {job.params['maxdim']}"
        media = "image/svg+xml" if fmt == "svg" else "image/png"
        return Response(render_diagram(res.diagrams, fmt, title), media_type=media)

    @app.get(
        "/v1/jobs/{job_id}/diagram.svg",
        response_class=Response,
        dependencies=auth,
        tags=["jobs"],
        operation_id="diagram_svg",
        responses={200: {"content": {"image/svg+xml": {}}}, **_R401, **_R404, **_R409},
    )
    def diagram_svg(job_id: str) -> Response:
        return picture(job_id, "svg")

    @app.get(
        "/v1/jobs/{job_id}/diagram.png",
        response_class=Response,
        dependencies=auth,
        tags=["jobs"],
        operation_id="diagram_png",
        responses={200: {"content": {"image/png": {}}}, **_R401, **_R404, **_R409},
    )
    def diagram_png(job_id: str) -> Response:
        return picture(job_id, "png")

    # Kafka ingest: validated events go to the raw_data_events topic (keyed by source_id).
    @app.post(
        "/v1/events",
        status_code=202,
        response_model=EventsAccepted,
        dependencies=auth,
        tags=["streaming"],
        responses={**_R401, **_R413, **_R422, **_R503},
    )
    def post_events(body: EventsRequest) -> EventsAccepted:
        """Publish raw data events to Kafka; 202 once every in-sync replica has them (acks=all)."""
        from tda_ray import streaming

        if not settings.kafka_enabled:
            raise HTTPException(503, "Kafka is disabled on this server (TDA_KAFKA_ENABLED=false)")
        try:
            sent = streaming.publish_raw_events(settings, [e.model_dump() for e in body.events])
        except streaming.KafkaUnavailable as exc:
            raise HTTPException(503, f"events not accepted: {exc}") from exc
        return EventsAccepted(accepted=len(sent), topic=settings.kafka_raw_topic)

    return app


# --------------------------------------------------------------------------- Serve deployments

from ray import serve  # noqa: E402  (after the app code: create_app itself needs no Ray)
from ray.serve.handle import DeploymentHandle  # noqa: E402


@serve.deployment(name="JobManager", num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0})
class JobManager:
    """Hosts the one dispatcher; keep ``num_replicas: 1`` (tda_ray.jobs says why a redeploy overlap is safe)."""

    def __init__(self) -> None:
        from tda_ray.jobs import Dispatcher

        self._dispatcher = Dispatcher(get_settings())

    def notify(self) -> None:
        self._dispatcher.notify()

    def cancel(self, job_id: str) -> None:
        self._dispatcher.cancel(job_id)

    def stats(self) -> dict[str, Any]:
        return self._dispatcher.stats()

    def check_health(self) -> None:
        # Serve restarts the replica (and so recovers the queue) if the loop thread died.
        if not self._dispatcher.stats()["alive"]:
            raise RuntimeError("dispatcher loop is not running")

    def __del__(self) -> None:
        d = getattr(self, "_dispatcher", None)
        if d is not None:
            d.stop()


class _HandleLink:
    """DispatcherLink over a Serve handle to JobManager."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = handle

    def notify(self) -> None:
        self._h.notify.remote()  # fire and forget

    def cancel(self, job_id: str) -> None:
        self._h.cancel.remote(job_id)

    def stats(self) -> dict[str, Any] | None:
        result: dict[str, Any] = self._h.stats.remote().result(timeout_s=5)
        return result


@serve.deployment(name="Ingress", max_ongoing_requests=200, ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Ingress:
    def __init__(self, job_manager: DeploymentHandle) -> None:
        self._service = JobService(get_settings())
        self._link = _HandleLink(job_manager)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._service, self._link)


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Serve application builder (``import_path: tda_ray.api:build_app`` in serve_config.yaml).

    Settings come from the ``TDA_*`` environment of the replicas: ``run_server``
    exports its resolved settings before starting Ray, so local replicas and
    tasks inherit them (secrets such as the API key stay out of Serve's config).
    """
    return Ingress.bind(JobManager.bind())  # type: ignore[attr-defined]  # (added by @serve.deployment)


# --------------------------------------------------------------------------- the server process


def export_settings(settings: Settings) -> None:
    """Put resolved settings into this process's environment, for Ray workers to inherit."""
    for name, value in settings.model_dump(mode="json").items():
        key = f"TDA_{name.upper()}"
        if value is None:
            os.environ.pop(key, None)
            if name in ("num_cpus", "memory_limit_bytes"):
                os.environ[key] = "none"
        else:
            os.environ[key] = value if isinstance(value, str) else json.dumps(value)
    get_settings.cache_clear()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_healthy(url: str, deadline: float, failed: Callable[[], str | None]) -> None:
    while time.monotonic() < deadline:
        why = failed()
        if why:
            raise RuntimeError(why)
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and json.loads(resp.read()).get("status") == "ok":
                    return
        except Exception:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the service did not become healthy at {url}")


def run_server(settings: Settings | None = None, config_path: str | os.PathLike[str] | None = None) -> int:
    """Start Ray and the Serve app from ``serve_config.yaml``; block until SIGINT/SIGTERM; clean up.

    Returns a process exit status (0 after a clean shutdown).
    """
    import ray
    import yaml
    from ray.serve._private import api as serve_private_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ApplicationStatus, ServeDeploySchema

    settings = (settings or get_settings()).resolved()
    path = Path(config_path or settings.serve_config)
    if not path.is_file() and not path.is_absolute():
        # Run from elsewhere than the checkout: the repository's own file (editable installs).
        repo_file = Path(__file__).resolve().parents[1] / path
        path = repo_file if repo_file.is_file() else path
    if not path.is_file():
        print(f"error: Serve config {path} not found", file=sys.stderr)
        return 2
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    raw.setdefault("http_options", {})
    raw["http_options"].update(host=settings.host, port=settings.port)  # the settings win over the file
    try:
        config = ServeDeploySchema.model_validate(raw)
    except Exception as exc:
        print(f"error: {path} is not a valid Serve config: {exc}", file=sys.stderr)
        return 2
    if not _port_free(settings.host, settings.port):
        print(f"error: {settings.host}:{settings.port} is already in use (set TDA_PORT)", file=sys.stderr)
        return 1

    export_settings(settings)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    stop = {"signal": 0}

    def _on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = signum
        raise KeyboardInterrupt

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started_ray = False
    try:
        if settings.ray_address == "local":
            ray.init(
                address="local",
                num_cpus=settings.num_cpus,
                include_dashboard=False,
                namespace="serve",
                log_to_driver=True,
                # Advertise and bind loopback: a local run serves this machine only.
                _node_ip_address="127.0.0.1",
            )
        else:
            ray.init(address=settings.ray_address, namespace="serve")
        started_ray = True
        # ray.init installs its own fatal-signal handler, which would kill this process on SIGTERM
        # and orphan Ray's daemons: put ours back so SIGTERM shuts down cleanly.
        for s in old:
            signal.signal(s, _on_signal)
        client = serve_private_api.serve_start(
            http_options=config.http_options.model_dump(),
            proxy_location=config.proxy_location,
            grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
        )
        client.deploy_apps(config, _blocking=False)
        names = [a.name for a in config.applications]

        def failed() -> str | None:
            for name, app in serve.status().applications.items():
                if name in names and app.status == ApplicationStatus.DEPLOY_FAILED:
                    return f"Serve application {name!r} failed to deploy: {app.message}"
            return None

        base = f"http://{settings.host}:{settings.port}"
        _wait_healthy(f"{base}/v1/health", time.monotonic() + 180, failed)
        print(f"tda-ray serving on {base} (OpenAPI docs: {base}/docs); Ctrl-C stops it", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print(f"tda-ray: {signal.Signals(stop['signal'] or signal.SIGINT).name}, shutting down", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for s in old:
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if started_ray:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
        for s, h in old.items():
            signal.signal(s, h)
