"""GET /v1/health: the service's state; on a server with an API key, callers without it get only ``status``."""

from __future__ import annotations

from typing import Any, Literal, Union

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

import tda_ray
from tda_ray.service.http.deps import ClusterReporter, DispatcherDep, KeyPresented, ServiceDep
from tda_ray.service.http.models import HealthOut, HealthStatusOut

router = APIRouter(tags=["service"])


@router.get("/v1/health", response_model=Union[HealthOut, HealthStatusOut], operation_id="health")  # noqa: UP007
async def health(service: ServiceDep, dispatcher: DispatcherDep, full: KeyPresented) -> HealthOut | HealthStatusOut:
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
    status: Literal["ok", "degraded"] = "ok" if ok else "degraded"
    if not full:  # internals (dispatcher, Kafka address, sink pid) are for key holders only
        return HealthStatusOut(status=status)
    return HealthOut(
        status=status,
        version=tda_ray.__version__,
        database=report["database"],
        storage=report["storage"],
        dispatcher=stats,
        components={**cluster, **report["components"]},
    )
