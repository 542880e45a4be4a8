"""POST /v1/events: raw data events into Kafka (``raw_data_events``, keyed by source id)."""

from __future__ import annotations

from fastapi import APIRouter

from tda_ray.service.http.deps import Auth, ServiceDep
from tda_ray.service.http.models import EventsAccepted, EventsRequest
from tda_ray.service.http.openapi import R401, R413, R422, R503

router = APIRouter(tags=["streaming"], dependencies=Auth)


@router.post("/v1/events", status_code=202, response_model=EventsAccepted, responses={**R401, **R413, **R422, **R503})
def post_events(body: EventsRequest, service: ServiceDep) -> EventsAccepted:
    """Publish raw data events to Kafka; 202 once every in-sync replica has them (acks=all)."""
    sent = service.publish_events([e.model_dump() for e in body.events])
    return EventsAccepted(accepted=len(sent), topic=service.settings.kafka.raw_topic)
