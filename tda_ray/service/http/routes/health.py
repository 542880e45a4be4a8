"""GET /v1/health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

import tda_ray
from tda_ray.service.http.deps import ClusterReporter, DispatcherDep, ServiceDep
from tda_ray.service.http.models import HealthOut

router = APIRouter(tags=["service"])


@router.get("/v1/health", response_model=HealthOut, operation_id="health")
async def health(service: ServiceDep, dispatcher: DispatcherDep) -> HealthOut:
    report = await run_in_threadpool(service.health)
    try:
        stats = await run_in_threadpool(dispatcher.stats)
    except Exception:  # a health probe reports, it never fails
        stats = None
    cluster: dict[str, Any] = {}
    if isinstance(dispatcher, ClusterReporter):
        try:
            cluster = await run_in_threadpool(dispatcher.cluster)
        except Exception as exc:
            cluster = {"ray": {"status": f"error: no answer from the job manager ({type(exc).__name__})"}}
    ok = report["database"] == "ok" and stats is not None and bool(stats.get("alive"))
    return HealthOut(
        status="ok" if ok else "degraded",
        version=tda_ray.__version__,
        database=report["database"],
        storage=report["storage"],
        dispatcher=stats,
        components={**cluster, **report["components"]},
    )
