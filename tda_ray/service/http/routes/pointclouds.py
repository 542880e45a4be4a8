"""POST /v1/pointclouds (JSON, multipart file, or a raw .npy/Parquet body), GET /v1/pointclouds[/{id}]."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from tda_ray.io.formats import BINARY_FORMATS, detect_format
from tda_ray.service.http.deps import Auth, ServiceDep
from tda_ray.service.http.idempotency import fingerprint, idempotent
from tda_ray.service.http.middleware import STREAM_TYPES, BodyTimeout, BodyTooLarge
from tda_ray.service.http.models import DataKind, PointCloudIn, PointCloudList, PointCloudOut
from tda_ray.service.http.openapi import IDEMPOTENCY, PC_LINKS, R401, R404, R409, R413, R415, R422, UPLOAD_BODY
from tda_ray.service.jobs import InvalidRequest, PayloadTooLarge, PointCloudRecord
from tda_ray.service.jobs.service import JobService

router = APIRouter(tags=["pointclouds"], dependencies=Auth)

_POINTS = TypeAdapter(PointCloudIn)
STREAM_CHUNK = 4 * 1024 * 1024  # bytes handed to storage per write while a body streams in


def pointcloud_out(pc: PointCloudRecord) -> PointCloudOut:
    return PointCloudOut.model_validate({**vars(pc), "shape": list(pc.grid_shape)})


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(STREAM_CHUNK):
        yield chunk


async def stream_upload(
    service: JobService, chunks: AsyncIterator[bytes], name: str | None, expected: str | None
) -> PointCloudRecord:
    """A body copied to storage as it arrives (never whole in memory), then checked and re-encoded."""
    up = await run_in_threadpool(service.uploads.begin)
    try:
        buf = bytearray()
        async for chunk in chunks:
            buf += chunk
            if len(buf) >= STREAM_CHUNK:
                await run_in_threadpool(up.write, bytes(buf))
                buf.clear()
        if buf:
            await run_in_threadpool(up.write, bytes(buf))
    except BaseException:
        await run_in_threadpool(up.abort)
        raise
    return await run_in_threadpool(service.uploads.finish, up, name, expected)


async def _json_upload(service: JobService, body: bytes, name: str | None, kind: str) -> PointCloudRecord:
    try:
        parsed = _POINTS.validate_json(body)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = []
        for err in exc.errors(include_url=False, include_context=False):
            e = {**err, "loc": ("body", *err["loc"])}
            # Echo only small, printable inputs (the body may be huge or not even text).
            if not isinstance(e.get("input"), (int, float, str, type(None))) or len(str(e["input"])) > 200:
                e.pop("input", None)
            errors.append(e)
        raise RequestValidationError(errors) from exc
    return await run_in_threadpool(service.create_pointcloud, parsed.points, parsed.name or name, "json", kind)


async def _multipart_upload(
    service: JobService, request: Request, name: str | None, kind: str | None
) -> PointCloudRecord:
    try:
        form = await request.form(max_files=1, max_fields=4)
    except (HTTPException, BodyTooLarge, BodyTimeout):
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
    # Spooled to disk by the parser: copy it on unread. A distance matrix is checked whole (it is bounded by
    # the point limit squared), so it takes the in-memory path below.
    if detect_format(filename, head) in BINARY_FORMATS and kind in (None, "points"):
        return await stream_upload(service, _file_chunks(upload), form_name or name or filename, None)
    limit = service.settings.max_upload_bytes
    if (upload.size or 0) > limit:
        raise PayloadTooLarge(
            f"{filename} has {upload.size} bytes; text uploads are limited to {limit} bytes "
            "(send .npy or Parquet for larger clouds)"
        )
    data = await upload.read()
    return await run_in_threadpool(service.create_pointcloud_from_file, data, filename, form_name or name, kind)


async def _whole_body(service: JobService, request: Request) -> bytes:
    """A raw body read into memory, refused above the text upload limit."""
    limit, buf = service.settings.max_upload_bytes, bytearray()
    async for chunk in _body_chunks(request):
        buf += chunk
        if len(buf) > limit:
            raise PayloadTooLarge(f"a distance matrix upload is limited to {limit} bytes")
    return bytes(buf)


@router.post(
    "/v1/pointclouds",
    status_code=201,
    response_model=PointCloudOut,
    operation_id="upload_pointcloud",
    openapi_extra={**UPLOAD_BODY, **IDEMPOTENCY},
    responses={201: {"links": PC_LINKS}, **R401, **R409, **R413, **R415, **R422},
)
async def upload_pointcloud(
    request: Request,
    service: ServiceDep,
    name: Annotated[str | None, Query(max_length=200, description="Name of a streamed .npy/Parquet body")] = None,
    kind: Annotated[
        DataKind | None,
        Query(
            description=(
                "points (default); distance_matrix: the upload is a square matrix of distances (checked: "
                "symmetric, non-negative, zero diagonal); image: an array of pixel values for cubical jobs; "
                "graph: a weighted graph's edge list, rows (u, v, weight), vertices 0..n-1 (also a sparse "
                "distance matrix's stored entries). "
                "Files named *.distance_matrix or "
                "*.lower_distance_matrix (Ripser's formats) are distance matrices, PNG/TIFF files images, without it."
            )
        ),
    ] = None,
) -> Response:
    """Upload a point cloud: JSON ``{"points": [...]}``, a multipart ``file``, or a raw .npy/Parquet body.

    With ``kind=distance_matrix`` (or a file in Ripser's distance matrix formats) the upload is a distance
    matrix instead, whose rows are read as its points' distances; Vietoris–Rips jobs take it as such.

    .npy and Parquet (raw bodies, or multipart files) are written to storage as they arrive and checked
    block by block, so clouds far larger than the ingress' memory can be uploaded for landmark jobs.  Under
    an Idempotency-Key a streamed body is identified by its type, length and name, a JSON body by its bytes.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "multipart/form-data", *STREAM_TYPES):
        raise HTTPException(
            415,
            f"send application/json, multipart/form-data, application/x-npy, application/vnd.apache.parquet "
            f"or application/octet-stream, not {ctype or 'no content type'}",
        )
    body = await request.body() if ctype == "application/json" else None

    async def run() -> tuple[int, Any]:
        if ctype == "application/json":
            rec = await _json_upload(service, body or b"", name, kind or "points")
        elif ctype in STREAM_TYPES and kind not in (None, "points"):
            data = await _whole_body(service, request)
            filename = "upload.parquet" if data.startswith(b"PAR1") else "upload.npy"  # by its magic bytes
            rec = await run_in_threadpool(service.create_pointcloud_from_file, data, filename, name, kind)
        elif ctype in STREAM_TYPES:
            rec = await stream_upload(service, _body_chunks(request), name, STREAM_TYPES[ctype])
        else:
            rec = await _multipart_upload(service, request, name, kind)
        return 201, pointcloud_out(rec)

    def request_fingerprint() -> str:
        return fingerprint(ctype, body, request.headers.get("content-length"), name, *([kind] if kind else []))

    return await idempotent(request, service, request_fingerprint, run)


@router.get(
    "/v1/pointclouds", response_model=PointCloudList, operation_id="list_pointclouds", responses={**R401, **R422}
)
def list_pointclouds(
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> PointCloudList:
    """The point clouds' metadata, newest first, a page at a time (like GET /v1/jobs)."""
    items, total = service.list_pointclouds(limit, offset)
    return PointCloudList(items=[pointcloud_out(p) for p in items], total=total, limit=limit, offset=offset)


@router.get(
    "/v1/pointclouds/{pointcloud_id}",
    response_model=PointCloudOut,
    operation_id="get_pointcloud",
    responses={**R401, **R404},
)
def get_pointcloud(pointcloud_id: str, service: ServiceDep) -> PointCloudOut:
    return pointcloud_out(service.get_pointcloud(pointcloud_id))
