"""The HTTP contract: pydantic models of every request and response body.

The job request (:data:`JobIn`) and the result (:data:`ResultOut`) are derived from the algorithm registry
(:mod:`tda_ray.engine.registry`): an algorithm's parameter model is its ``params``, its summary model the
result's numbers.  The first algorithm keeps the component names of the first API version (``JobIn``,
``JobParams``, ``ResultOut``) so that generated clients stay valid.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
    Tag,
    create_model,
    field_validator,
)

from tda_ray.engine.registry import ALGORITHMS, DEFAULT_ALGORITHM, Algorithm
from tda_ray.engine.summary import LandmarkInfo
from tda_ray.service.jobs import ALL_STATUSES

__all__ = [
    "DistanceDimOut",
    "DistanceOut",
    "EventsAccepted",
    "EventsNotPublished",
    "EventsRequest",
    "ErrorOut",
    "HealthOut",
    "HealthStatusOut",
    "JobIn",
    "JobList",
    "JobOut",
    "LandmarksOut",
    "PointCloudIn",
    "PointCloudList",
    "PointCloudOut",
    "ResultOut",
    "ScoreList",
    "ScoreOut",
    "StreamList",
    "StreamOut",
    "UploadIn",
    "UploadOut",
    "UploadPartOut",
    "VectorOut",
    "VectorsOut",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
UploadStatus = Literal["open", "completing", "completed", "aborted"]
assert set(JobStatus.__args__) == set(ALL_STATUSES)  # type: ignore[attr-defined]


class ErrorOut(BaseModel):
    detail: Any = Field(description="What is wrong: a message, or FastAPI's list of validation errors.")


class HealthStatusOut(BaseModel):
    """What a caller without the API key learns (on a server with a key)."""

    status: Literal["ok", "degraded"]


class HealthOut(HealthStatusOut):
    version: str
    database: str
    storage: str
    dispatcher: dict[str, Any] | None = Field(description="Dispatcher state, null when it does not answer.")
    components: dict[str, Any] = Field(
        default_factory=dict,
        description="Ray ('ray': nodes, CPUs), Serve ('serve': applications, deployments, replicas) and companions "
        "such as Kafka ('kafka': broker and sink).",
    )


Coordinate = Annotated[float, Strict()]


DataKind = Literal["points", "distance_matrix", "image", "graph"]


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
    source: str = Field(description="json, npy, point-cloud (text/CSV), distance, lower-distance or parquet")
    created_at: datetime
    kind: DataKind = Field(
        default="points",
        description=(
            "points: one row per point (n_points x dim); distance_matrix: an n_points x n_points matrix of "
            "distances (dim = n_points), for Vietoris–Rips jobs; image: a 2-D image's pixel values (n_points "
            "rows x dim columns) or a 3-D volume's (shape [depth, rows, columns]; n_points = depth x rows), "
            "for cubical jobs; graph: an edge list, rows (u, v, weight) (n_points vertices, dim 3), for "
            "Vietoris–Rips jobs (params.graph_filtration)."
        ),
    )
    shape: list[int] = Field(
        default_factory=list,
        description="The stored array's shape: [n_points, dim]; a volume's [depth, rows, cols]; a graph's [edges, 3]",
    )


class PointCloudList(BaseModel):
    items: list[PointCloudOut]
    total: int
    limit: int
    offset: int


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "lidar-scan-17"}]})
    name: str | None = Field(default=None, max_length=200, description="Name of the point cloud it becomes.")


class UploadPartOut(BaseModel):
    part: int
    size: int = Field(description="Bytes stored for this part.")


class UploadOut(BaseModel):
    id: str
    name: str | None
    status: UploadStatus
    pointcloud_id: str | None = Field(description="The point cloud made from it, once completed.")
    parts: list[UploadPartOut] = Field(description="Parts received so far (while open): resume from here.")
    received_bytes: int
    max_part_bytes: int = Field(description="Largest accepted part body.")
    error: str | None = Field(default=None, description="Why the last completion failed (the session is open again).")
    created_at: datetime


# --------------------------------------------------------------------------- jobs (derived from the registry)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _names(alg: Algorithm) -> tuple[str, str, str]:
    """(job request, parameters, result) component names of an algorithm."""
    if alg.name == DEFAULT_ALGORITHM:
        return "JobIn", "JobParams", "ResultOut"
    return f"{_camel(alg.name)}JobIn", f"{_camel(alg.name)}Params", f"{_camel(alg.name)}ResultOut"


def _job_in(alg: Algorithm) -> type[BaseModel]:
    job_name, params_name, _ = _names(alg)
    params = create_model(params_name, __base__=alg.params, __doc__=alg.params.__doc__)
    default = alg.name if alg.name == DEFAULT_ALGORITHM else ...
    return create_model(
        job_name,
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"A job of algorithm {alg.name!r}: {alg.title}.",
        pointcloud_id=(str, Field(description="Id returned by POST /v1/pointclouds.")),
        algorithm=(Literal[alg.name], default),  # type: ignore[arg-type]
        params=(params, Field(default_factory=params)),
    )


# [birth, death]; a list rather than a tuple, whose "prefixItems" schema trips some OpenAPI 3.0 tools.
Pair = Annotated[list[float | None], Field(min_length=2, max_length=2)]


class LandmarksOut(LandmarkInfo):
    """Landmark jobs: how the cloud was subsampled (the covering radius bounds the error)."""


def _result_out(alg: Algorithm) -> type[BaseModel]:
    _, _, result_name = _names(alg)
    fields: dict[str, Any] = {
        "job_id": (str, ...),
        "algorithm": (str, ...),
        "params": (dict[str, Any], ...),
        "diagrams": (
            list[list[Pair]],
            Field(description="Per homology dimension, [birth, death] pairs; death null = never dies (infinite)."),
        ),
        "finished_at": (datetime | None, ...),
    }
    if "cocycles" in alg.params.model_fields:
        fields["cocycles"] = (
            list[list[list[list[int]]]] | None,
            Field(
                default=None,
                description=(
                    "With params.cocycles: per homology dimension d, per pair of `diagrams` (same order), the "
                    "representative cocycle as rows [d + 1 vertex indices (decreasing), coefficient in 0..p-1]; "
                    "dimension 0 has none. Null without params.cocycles."
                ),
            ),
        )
    if "landmarks" in alg.summary.model_fields:  # the wire name of the landmark report
        info = alg.summary.model_fields["landmarks"]
        fields["landmarks"] = (LandmarksOut | None, Field(default=None, description=info.description))
    return create_model(result_name, __base__=alg.summary, **fields)


JOB_IN_MODELS = {name: _job_in(alg) for name, alg in ALGORITHMS.items()}
RESULT_MODELS = {name: _result_out(alg) for name, alg in ALGORITHMS.items()}


def _algorithm_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("algorithm", DEFAULT_ALGORITHM))
    return str(getattr(value, "algorithm", DEFAULT_ALGORITHM))


if len(ALGORITHMS) == 1:
    JobIn: Any = JOB_IN_MODELS[DEFAULT_ALGORITHM]
    ResultOut: Any = RESULT_MODELS[DEFAULT_ALGORITHM]
else:  # one request body per algorithm, told apart by "algorithm" (the default when it is left out)
    JobIn = Annotated[
        Union[tuple(Annotated[m, Tag(n)] for n, m in JOB_IN_MODELS.items())],  # noqa: UP007
        Discriminator(_algorithm_of),
    ]
    ResultOut = Annotated[
        Union[tuple(Annotated[m, Tag(n)] for n, m in RESULT_MODELS.items())],  # noqa: UP007
        Discriminator(_algorithm_of),
    ]


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


# --------------------------------------------------------------------------- streams


class StreamOut(BaseModel):
    source_id: str
    spec: dict[str, Any] = Field(description="The complete spec (schemas/stream_spec.v1.schema.json).")
    default: bool = Field(description="True while no spec was set: the documented default applies.")


class ScoreReason(BaseModel):
    feature: str
    value: float
    baseline: float = Field(description="The feature's baseline median.")
    z: float = Field(description="Robust z-score of the deviation.")


class ScoreOut(BaseModel):
    """One window's anomaly score (schemas/anomaly_score.v1.schema.json)."""

    model_config = ConfigDict(extra="allow")
    source_id: str
    seq: int = Field(description="The window's number in its source, from 0.")
    # Text, as on the Kafka topic (RFC 3339, UTC, milliseconds): served exactly as the stream job wrote it.
    window_start: str = Field(json_schema_extra={"format": "date-time"}, description="Event time of the start.")
    window_end: str = Field(json_schema_extra={"format": "date-time"}, description="Event time of the end (exclusive).")
    n_events: int = Field(ge=0, description="Events in the window.")
    spec_version: int
    score: float = Field(ge=0, le=1)
    alert: bool
    threshold: float
    warmup: bool
    reasons: list[ScoreReason]
    features: dict[str, float]
    vector: list[float] = Field(
        default_factory=list, description="The window's vectorization: one block of bins per homology dimension."
    )
    error: str | None = None
    timing: dict[str, int] = Field(description="Wall-clock ms of the window's close, features and score.")


class StreamSummaryOut(BaseModel):
    source_id: str
    windows: int = Field(description="Windows scored so far.")
    alerts: int
    latest: ScoreOut | None
    spec_version: int = Field(description="0: the default spec.")


class StreamList(BaseModel):
    items: list[StreamSummaryOut]


class ScoreList(BaseModel):
    items: list[ScoreOut]
    next_since: datetime | None = Field(description="Pass as `since` for the scores after these (null: none).")


# --------------------------------------------------------------------------- events

MAX_EVENTS_PER_REQUEST = 10_000
MAX_VALUES_PER_EVENT = 4096
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_CHARS = 1024
# event_time must lie in this range (UTC): Kafka and the message timestamps are epoch based, and every
# offset of such a time still converts to UTC.
EVENT_TIME_MIN = datetime(1970, 1, 1, tzinfo=timezone.utc)
EVENT_TIME_MAX = datetime(9999, 12, 30, tzinfo=timezone.utc)

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
AttributeText = Annotated[str, StringConstraints(strict=True, max_length=MAX_ATTRIBUTE_CHARS)]
AttributeValue = Union[AttributeText, StrictBool, StrictInt, FiniteFloat, None]  # noqa: UP007 - pydantic on 3.10
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RawEventIn(BaseModel):
    """One raw data event: a measurement (point) from a source."""

    model_config = ConfigDict(extra="forbid")

    source_id: str = Field(min_length=1, max_length=128, description="Sensor / stream id; the Kafka message key.")
    values: list[FiniteFloat] = Field(
        min_length=1, max_length=MAX_VALUES_PER_EVENT, description="The point's coordinates."
    )
    event_time: datetime | None = Field(
        default=None,
        description="When it happened, RFC 3339 (no offset: UTC), between 1970-01-01 and 9999-12-30 UTC "
        "(default: when received).",
    )
    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Downstream consumers drop repeated ids; default: a new UUID (fixed by the Idempotency-Key).",
    )
    attributes: dict[AttributeName, AttributeValue] | None = Field(
        default=None, max_length=MAX_ATTRIBUTES, description=f"Flat metadata; text of at most {MAX_ATTRIBUTE_CHARS}."
    )

    @field_validator("event_time")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        # Compared as instants: converting first would overflow near the ends of the calendar.
        if not EVENT_TIME_MIN <= aware <= EVENT_TIME_MAX:
            raise ValueError(f"event_time must lie between {EVENT_TIME_MIN:%Y-%m-%d} and {EVENT_TIME_MAX:%Y-%m-%d} UTC")
        return aware


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[RawEventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events written to Kafka (acknowledged by all in-sync replicas).")
    topic: str
    event_ids: list[str] = Field(description="The events' ids, in request order (server-made where not given).")


class EventsNotPublished(BaseModel):
    """503: Kafka did not take every event; exactly these were published (retry the rest, or the batch with
    the same event ids or Idempotency-Key: consumers drop repeated event ids)."""

    detail: str
    published: list[str] = Field(description="Ids of the events Kafka acknowledged.")
    not_published: list[str] = Field(description="Ids of the events it did not.")


class VectorOut(BaseModel):
    dim: int
    values: float | list[int] | list[float] | list[list[float]] = Field(
        description="entropy: a number; betti_curve (integers), silhouette: one value per grid point; landscape: "
        "n_layers rows; "
        "image: n_bins rows (persistence, lowest first) of n_bins values (birth)"
    )
    grid: list[float] | None = Field(default=None, description="The filtration values (curves)")
    birth_grid: list[float] | None = Field(default=None, description="image: the birth values (columns)")
    persistence_grid: list[float] | None = Field(default=None, description="image: the persistence values (rows)")
    sigma: float | None = Field(default=None, description="image: the Gaussian width used")


class VectorsOut(BaseModel):
    job_id: str
    kind: str
    params: dict[str, Any] = Field(description="The kind's parameters, defaults included")
    vectors: list[VectorOut]


class DistanceDimOut(BaseModel):
    dim: int
    distance: float | None = Field(description="null when infinite (the numbers of essential classes differ)")
    infinite: bool
    essential: list[int] = Field(description="Essential classes (infinite deaths) of each job in this dimension")


class DistanceOut(BaseModel):
    job_a: str
    job_b: str
    metric: Literal["bottleneck", "wasserstein"]
    p: float | None = Field(description="wasserstein: the exponent q; null for bottleneck")
    internal_p: float | Literal["inf"] | None = Field(description="wasserstein: the ground norm; null for bottleneck")
    distances: list[DistanceDimOut]
