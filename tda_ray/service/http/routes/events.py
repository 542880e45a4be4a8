"""POST /v1/events: raw data events into Kafka (``raw_data_events``, keyed by source id)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from tda_ray.service.http.deps import Auth, ServiceDep
from tda_ray.service.http.idempotency import fingerprint, idempotent
from tda_ray.service.http.models import EventsAccepted, EventsNotPublished, EventsRequest
from tda_ray.service.http.openapi import IDEMPOTENCY, R401, R409, R413, R422, R503_EVENTS

router = APIRouter(tags=["streaming"], dependencies=Auth)


@router.post(
    "/v1/events",
    status_code=202,
    response_model=EventsAccepted,
    openapi_extra=IDEMPOTENCY,
    responses={**R401, **R409, **R413, **R422, **R503_EVENTS},
)
async def post_events(body: EventsRequest, request: Request, service: ServiceDep) -> Response:
    """Publish raw data events to Kafka; 202 once every in-sync replica has them (acks=all).

    Every event and the batch are checked against their size limits before anything is sent (413). A 503
    lists the events Kafka did publish (``published``): retry with the same event ids or Idempotency-Key.
    """
    events = [e.model_dump() for e in body.events]
    seed = request.headers.get("Idempotency-Key")

    async def run() -> tuple[int, Any]:
        ids = await run_in_threadpool(service.publish_events, events, seed)
        return 202, EventsAccepted(accepted=len(ids), topic=service.settings.kafka.raw_topic, event_ids=ids)

    return await idempotent(request, service, lambda: fingerprint(body.model_dump_json()), run)


__all__ = ["EventsNotPublished", "router"]
