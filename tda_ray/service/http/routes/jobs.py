"""Jobs: submit, list, get (with long polling), cancel, result, and the diagram and barcode as pictures."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from tda_ray.engine.diagrams import to_json
from tda_ray.service.http.deps import Auth, DispatcherDep, ServiceDep
from tda_ray.service.http.idempotency import fingerprint, idempotent
from tda_ray.service.http.models import RESULT_MODELS, JobIn, JobList, JobOut, JobStatus, ResultOut
from tda_ray.service.http.openapi import IDEMPOTENCY, JOB_LINKS, R401, R404, R409, R413, R422
from tda_ray.service.http.pictures import render_barcode, render_diagram
from tda_ray.service.jobs import JobRecord

log = logging.getLogger("tda_ray.http")

router = APIRouter(tags=["jobs"], dependencies=Auth)


def job_out(job: JobRecord) -> JobOut:
    return JobOut.model_validate(job, from_attributes=True)


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobOut,
    operation_id="submit_job",
    openapi_extra=IDEMPOTENCY,
    responses={202: {"links": JOB_LINKS}, **R401, **R404, **R409, **R413, **R422},
)
async def submit_job(job: JobIn, request: Request, service: ServiceDep, dispatcher: DispatcherDep) -> Response:
    """Queue a job; it runs as a Ray task. Poll GET /v1/jobs/{id} (``?wait=`` long-polls).

    Work that can never fit the memory a job may reserve is refused here (422); an admitted job reserves its
    estimate on its node and waits for room.
    """

    async def run() -> tuple[int, Any]:
        rec = await run_in_threadpool(service.submit, job.pointcloud_id, job.algorithm, job.params)
        try:
            dispatcher.notify()
        except Exception:  # the job is durable; the dispatcher's periodic scan picks it up
            log.warning("could not notify the dispatcher", exc_info=True)
        return 202, job_out(rec)

    return await idempotent(request, service, lambda: fingerprint(job.model_dump_json()), run)


@router.get("/v1/jobs", response_model=JobList, operation_id="list_jobs", responses={**R401, **R422})
def list_jobs(
    service: ServiceDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JobList:
    items, total = service.list_jobs(status, limit, offset)
    return JobList(items=[job_out(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, operation_id="get_job", responses={**R401, **R404, **R422})
async def get_job(
    job_id: str,
    service: ServiceDep,
    wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for the job to finish")] = 0,
) -> JobOut:
    if wait <= 0:
        return job_out(await run_in_threadpool(service.get_job, job_id))
    # Long poll without holding a worker thread between looks at the store: often at first (small jobs
    # finish within tens of ms), then every 50 ms (a cheap indexed read).
    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        job = await run_in_threadpool(service.get_job, job_id)
        left = deadline - time.monotonic()
        if job.finished or left <= 0:
            return job_out(job)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.25, 0.05)


@router.delete(
    "/v1/jobs/{job_id}", response_model=JobOut, operation_id="cancel_job", responses={**R401, **R404, **R409}
)
def cancel_job(job_id: str, service: ServiceDep, dispatcher: DispatcherDep) -> JobOut:
    """Cancel a queued or running job; it reads ``cancelled`` at once and its task stops within seconds."""
    rec = service.cancel(job_id)
    try:
        dispatcher.cancel(job_id)
    except Exception:  # the running task notices through the store anyway
        log.warning("could not tell the dispatcher about cancelling %s", job_id, exc_info=True)
    return job_out(rec)


@router.get(
    "/v1/jobs/{job_id}/result",
    response_model=ResultOut,
    operation_id="get_result",
    responses={**R401, **R404, **R409},
)
def get_result(job_id: str, service: ServiceDep) -> Any:
    res = service.result(job_id)
    job = res.job
    model = RESULT_MODELS[job.algorithm]
    return model.model_validate(
        {
            **res.summary.model_dump(),
            "job_id": job.id,
            "algorithm": job.algorithm,
            "params": job.params,
            "diagrams": to_json(res.diagrams),
            "finished_at": job.finished_at,
            **({} if res.cocycles is None else {"cocycles": [[c.tolist() for c in d] for d in res.cocycles]}),
        }
    )


def _picture(service: Any, job_id: str, fmt: Literal["svg", "png"], render: Any = render_diagram) -> Response:
    res = service.result(job_id)
    n_points = getattr(res.summary, "n_points", None)
    title = f"job {res.job.id[:8]}: {n_points} points, maxdim {res.job.params.get('maxdim')}"
    media = "image/svg+xml" if fmt == "svg" else "image/png"
    return Response(render(res.diagrams, fmt, title), media_type=media)


@router.get(
    "/v1/jobs/{job_id}/diagram.svg",
    response_class=Response,
    operation_id="diagram_svg",
    responses={200: {"content": {"image/svg+xml": {}}}, **R401, **R404, **R409},
)
def diagram_svg(job_id: str, service: ServiceDep) -> Response:
    return _picture(service, job_id, "svg")


@router.get(
    "/v1/jobs/{job_id}/diagram.png",
    response_class=Response,
    operation_id="diagram_png",
    responses={200: {"content": {"image/png": {}}}, **R401, **R404, **R409},
)
def diagram_png(job_id: str, service: ServiceDep) -> Response:
    return _picture(service, job_id, "png")


@router.get(
    "/v1/jobs/{job_id}/barcode.svg",
    response_class=Response,
    operation_id="barcode_svg",
    responses={200: {"content": {"image/svg+xml": {}}}, **R401, **R404, **R409},
)
def barcode_svg(job_id: str, service: ServiceDep) -> Response:
    return _picture(service, job_id, "svg", render_barcode)


@router.get(
    "/v1/jobs/{job_id}/barcode.png",
    response_class=Response,
    operation_id="barcode_png",
    responses={200: {"content": {"image/png": {}}}, **R401, **R404, **R409},
)
def barcode_png(job_id: str, service: ServiceDep) -> Response:
    return _picture(service, job_id, "png", render_barcode)
