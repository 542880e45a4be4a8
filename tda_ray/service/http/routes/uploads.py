"""Upload sessions (/v1/uploads): large clouds as numbered parts, each one bounded request.

Serve's proxy hands a whole request body to the replica, so a multi-GiB single request would sit in its
memory; parts keep every request small.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from tda_ray.service.http.deps import Auth, ServiceDep
from tda_ray.service.http.models import PointCloudOut, UploadIn, UploadOut, UploadPartOut
from tda_ray.service.http.openapi import PART_BODY, PC_LINKS, R401, R404, R409, R413, R422
from tda_ray.service.http.routes.pointclouds import pointcloud_out
from tda_ray.service.jobs import PointCloudRecord, UploadRecord
from tda_ray.service.jobs.uploads import MAX_UPLOAD_PARTS

router = APIRouter(tags=["uploads"], dependencies=Auth)


def upload_out(rec: UploadRecord, max_part_bytes: int) -> UploadOut:
    return UploadOut(
        id=rec.id,
        name=rec.name,
        status=rec.status.value,
        pointcloud_id=rec.pointcloud_id,
        parts=[UploadPartOut(part=n, size=size) for n, size in rec.parts],
        received_bytes=rec.received_bytes,
        max_part_bytes=max_part_bytes,
        error=rec.error,
        created_at=rec.created_at,
    )


@router.post(
    "/v1/uploads",
    status_code=201,
    response_model=UploadOut,
    operation_id="create_upload",
    responses={**R401, **R422},
)
def create_upload(service: ServiceDep, body: UploadIn | None = None) -> UploadOut:
    """Open an upload session; then PUT parts 0, 1, ... (a .npy or Parquet file cut in pieces) and complete."""
    rec = service.uploads.create(body.name if body else None)
    return upload_out(rec, service.settings.max_upload_bytes)


@router.get("/v1/uploads/{upload_id}", response_model=UploadOut, operation_id="get_upload", responses={**R401, **R404})
def get_upload(upload_id: str, service: ServiceDep) -> UploadOut:
    """The session and the parts received so far (to resume an interrupted upload)."""
    return upload_out(service.uploads.get(upload_id), service.settings.max_upload_bytes)


@router.put(
    "/v1/uploads/{upload_id}/parts/{part}",
    response_model=UploadPartOut,
    operation_id="put_upload_part",
    openapi_extra=PART_BODY,
    responses={**R401, **R404, **R409, **R413, **R422},
)
async def put_upload_part(
    upload_id: str,
    part: Annotated[int, PathParam(ge=0, le=MAX_UPLOAD_PARTS - 1)],
    request: Request,
    service: ServiceDep,
) -> UploadPartOut:
    """Store part ``part`` (bytes ``part * size ..``) of the file; sending a part again replaces it."""
    data = await request.body()
    size = await run_in_threadpool(service.uploads.put_part, upload_id, part, data)
    return UploadPartOut(part=part, size=size)


_STILL_COMPLETING: dict[int | str, dict[str, Any]] = {
    202: {"model": UploadOut, "description": "Still completing (a large cloud): poll GET /v1/uploads/{id}"}
}


@router.post(
    "/v1/uploads/{upload_id}/complete",
    status_code=201,
    response_model=PointCloudOut,
    operation_id="complete_upload",
    responses={201: {"links": PC_LINKS}, **_STILL_COMPLETING, **R401, **R404, **R409, **R413, **R422},
)
def complete_upload(upload_id: str, service: ServiceDep) -> Any:
    """Read the parts in order as one file, check and store the cloud; idempotent once done.

    A cloud that takes longer than the server's wait answers 202 with the session (``completing``); the
    session's ``pointcloud_id`` is set once it is done, or it is ``open`` again with ``error`` set.
    """
    out = service.uploads.complete(upload_id)
    if isinstance(out, PointCloudRecord):
        return pointcloud_out(out)
    body = upload_out(out, service.settings.max_upload_bytes)
    return JSONResponse(jsonable_encoder(body), status_code=202)


@router.delete(
    "/v1/uploads/{upload_id}",
    response_model=UploadOut,
    operation_id="abort_upload",
    responses={**R401, **R404, **R409},
)
def abort_upload(upload_id: str, service: ServiceDep) -> UploadOut:
    """Abort an open session and delete its parts."""
    return upload_out(service.uploads.abort(upload_id), service.settings.max_upload_bytes)
