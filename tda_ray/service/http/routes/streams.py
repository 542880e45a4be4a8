"""Streams: each source's spec (PUT applies to its next windows), the sources, their scores and alerts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool

from tda_ray.service.http.deps import Auth, ServiceDep
from tda_ray.service.http.models import ScoreList, ScoreOut, StreamList, StreamOut
from tda_ray.service.http.openapi import R401, R404, R422, R503
from tda_ray.service.jobs.streams import StreamSpecIn

router = APIRouter(tags=["streams"], dependencies=Auth)

SourceId = Annotated[str, Path(min_length=1, max_length=128, description="The events' source_id.")]
Since = Annotated[
    datetime | None, Query(description="Only windows ending at or after this event time (RFC 3339, or ms)")
]
Limit = Annotated[int, Query(ge=1, le=5000)]


def _ms(when: datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _page(records: list[dict[str, Any]], limit: int) -> ScoreList:
    items = [ScoreOut.model_validate(r) for r in records]
    last = datetime.fromisoformat(items[-1].window_end) if len(records) == limit else None
    # Windows end in event time; the next page starts right after the last end seen.
    nxt = None if last is None else last + timedelta(milliseconds=1)
    return ScoreList(items=items, next_since=nxt)


@router.put(
    "/v1/streams/{source_id}", response_model=StreamOut, operation_id="put_stream", responses={**R401, **R422, **R503}
)
def put_stream(source_id: SourceId, body: StreamSpecIn, service: ServiceDep) -> StreamOut:
    """Set how the source's events become windows and scores; its next windows use it (a new warm-up)."""
    return StreamOut(source_id=source_id, spec=service.streams.put_spec(source_id, body), default=False)


@router.get("/v1/streams/{source_id}", response_model=StreamOut, operation_id="get_stream", responses={**R401})
def get_stream(source_id: SourceId, service: ServiceDep) -> StreamOut:
    spec, default = service.streams.get_spec(source_id)
    return StreamOut(source_id=source_id, spec=spec, default=default)


@router.get("/v1/streams", response_model=StreamList, operation_id="list_streams", responses={**R401})
async def list_streams(service: ServiceDep) -> StreamList:
    """Every source with a spec or a scored window, with its latest score."""
    return StreamList.model_validate({"items": await run_in_threadpool(service.streams.streams)})


@router.get(
    "/v1/streams/{source_id}/scores",
    response_model=ScoreList,
    operation_id="stream_scores",
    responses={**R401, **R404, **R422},
)
async def stream_scores(source_id: SourceId, service: ServiceDep, since: Since = None, limit: Limit = 500) -> ScoreList:
    """The source's window scores in event-time order (warm-up windows included, marked)."""
    return _page(await run_in_threadpool(service.streams.scores, source_id, _ms(since), limit), limit)


@router.get("/v1/alerts", response_model=ScoreList, operation_id="list_alerts", responses={**R401, **R422})
async def list_alerts(service: ServiceDep, since: Since = None, limit: Limit = 500) -> ScoreList:
    """Alerts of every source in event-time order."""
    return _page(await run_in_threadpool(service.streams.alerts, _ms(since), limit), limit)
