"""Streams in the jobs layer: stream specs (checked once, here), scores and alerts, and the window
workers' computation.

A spec set through ``PUT /v1/streams/{source_id}`` is completed with the defaults of
:class:`~tda_ray.service.settings.StreamSettings`, checked against ``schemas/stream_spec.v1.schema.json``
(the contract with the Flink stream job), published to the compacted specs topic (Flink reads it as
broadcast state: the next windows use it) and recorded in the store.  Scores come from the Flink job
through the score ingester (tda_ray/service/streaming/scores.py) into the store.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tda_ray.engine.params import RunOptions
from tda_ray.engine.windows import window_features
from tda_ray.service.jobs.errors import EventsUnavailable, InvalidRequest, NotFound
from tda_ray.service.settings import Settings, StreamSettings
from tda_ray.service.store import Store
from tda_ray.service.streaming import messages
from tda_ray.service.streaming.events import KeyedPublisher
from tda_ray.service.streaming.kafka import KafkaUnavailable

__all__ = ["StreamService", "StreamSpecIn", "compute_windows", "default_spec", "open_score_store"]

Positive = Annotated[float, Field(gt=0)]


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    unit: Literal["events", "seconds"] | None = Field(default=None, description="Count events or event time.")
    size: Positive | int | None = Field(default=None, description="Events (an integer) or seconds.")
    slide: Positive | int | None = Field(default=None, description="Events (an integer) or seconds.")
    out_of_orderness_s: Annotated[float, Field(ge=0)] | int | None = None
    allowed_lateness_s: Annotated[float, Field(ge=0)] | int | None = None


class EmbeddingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["auto", "delay", "vectors"] = Field(
        default="auto", description="auto: delay for one value per event, vectors for several."
    )
    value_index: Annotated[int, Field(ge=0)] | None = Field(default=None, description="delay: the value embedded.")
    dimension: Annotated[int, Field(ge=1, le=32)] | Literal["auto"] | None = None
    delay: Annotated[int, Field(ge=1, le=1000)] | Literal["auto"] | None = None


class VectorIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["betti_curve", "landscape"] | None = None
    bins: Annotated[int, Field(ge=2, le=512)] | None = None


class ScoringIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    warmup_windows: Annotated[int, Field(ge=2)] | None = None
    baseline_windows: Annotated[int, Field(ge=2)] | None = None
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None


class StreamSpecIn(BaseModel):
    """How a source's events become point clouds and scores; every field left out takes the default."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"window": {"unit": "events", "size": 120, "slide": 20}, "maxdim": 1}]},
    )
    window: WindowIn = Field(default_factory=WindowIn)
    embedding: EmbeddingIn = Field(default_factory=EmbeddingIn)
    maxdim: Annotated[int, Field(ge=0, le=2)] | None = None
    vector: VectorIn = Field(default_factory=VectorIn)
    scoring: ScoringIn = Field(default_factory=ScoringIn)

    @model_validator(mode="after")
    def _consistent(self) -> StreamSpecIn:
        w, e = self.window, self.embedding
        if w.unit == "events":
            for name in ("size", "slide"):
                v = getattr(w, name)
                if v is not None and (not float(v).is_integer()):
                    raise ValueError(f"window.{name} counts events: a whole number, got {v}")
        if w.size is not None and w.slide is not None and w.slide > w.size:
            raise ValueError(f"window.slide ({w.slide}) is larger than window.size ({w.size}): events would be skipped")
        if e.kind == "vectors" and (e.dimension not in (None, "auto") or e.delay not in (None, "auto")):
            raise ValueError("embedding.dimension and embedding.delay are for the delay embedding")
        return self


def default_spec(source_id: str, stream: StreamSettings, version: int = 0) -> dict[str, Any]:
    """The spec a source has until one is set (embedding ``auto``: decided by its events' values)."""
    return {
        "schema_version": 1,
        "source_id": source_id,
        "version": version,
        "window": {
            "unit": stream.window_unit,
            "size": stream.window_size,
            "slide": stream.window_slide,
            "out_of_orderness_s": stream.out_of_orderness_s,
            "allowed_lateness_s": stream.allowed_lateness_s,
        },
        "embedding": {"kind": "auto"},
        "maxdim": stream.maxdim,
        "vector": {"kind": stream.vector_kind, "bins": stream.vector_bins},
        "scoring": {
            "warmup_windows": stream.warmup_windows,
            "baseline_windows": stream.baseline_windows,
            "threshold": stream.threshold,
        },
    }


def complete_spec(source_id: str, given: StreamSpecIn, stream: StreamSettings, version: int) -> dict[str, Any]:
    spec = default_spec(source_id, stream, version)
    for part in ("window", "vector", "scoring"):
        spec[part].update(getattr(given, part).model_dump(exclude_none=True))
    e = given.embedding.model_dump(exclude_none=True)
    if e["kind"] == "delay":
        spec["embedding"] = {"kind": "delay", "value_index": 0, "dimension": "auto", "delay": "auto", **e}
    else:
        spec["embedding"] = e
    if given.maxdim is not None:
        spec["maxdim"] = given.maxdim
    w, emb = spec["window"], spec["embedding"]
    if w["unit"] == "events":
        w["size"], w["slide"] = int(w["size"]), int(w["slide"])
        if w["slide"] > w["size"]:
            raise InvalidRequest(f"window.slide ({w['slide']}) is larger than window.size ({w['size']})")
        d, t = emb.get("dimension"), emb.get("delay")
        if emb["kind"] == "delay" and isinstance(d, int) and isinstance(t, int) and (d - 1) * t >= w["size"]:
            raise InvalidRequest("embedding.dimension and .delay leave no point in a window of window.size events")
    messages.validate_stream_message("stream_spec", spec)
    return spec


def compute_windows(clouds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a window worker computes for each cloud (the engine, one thread each); errors per window."""
    options = RunOptions(n_threads=1)
    out = []
    for cloud in clouds:
        try:
            out.append(window_features(cloud, options))
        except (ValueError, KeyError, TypeError) as exc:  # a window the engine refuses is scored as an error
            out.append({"error": f"{type(exc).__name__}: {exc}"})
    return out


def open_score_store(settings: Settings) -> Store:
    """The score ingester's store (it saves what the Flink job scored)."""
    return Store(settings.database_url, settings.storage_root)


class StreamService:
    """Stream specs, scores and alerts for one ingress replica (it owns a specs publisher)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self._specs = KeyedPublisher(settings.kafka, settings.kafka.specs_topic)

    def close(self) -> None:
        self._specs.close()

    def put_spec(self, source_id: str, given: StreamSpecIn) -> dict[str, Any]:
        _check_source(source_id)
        if not self.settings.kafka.enabled:
            raise EventsUnavailable("Kafka is disabled on this server (TDA_KAFKA_ENABLED=false)")
        previous = self.store.get_spec(source_id)
        version = max(int(time.time() * 1000), (previous[0] + 1) if previous else 0)
        try:
            spec = complete_spec(source_id, given, self.settings.stream, version)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        try:
            self._specs.publish_messages([(source_id, spec)])
        except KafkaUnavailable as exc:
            raise EventsUnavailable(f"the spec was not published: {exc}") from exc
        self.store.save_spec(source_id, version, spec)
        return spec

    def get_spec(self, source_id: str) -> tuple[dict[str, Any], bool]:
        """(spec, whether it is the default one)."""
        _check_source(source_id)
        stored = self.store.get_spec(source_id)
        if stored is None:
            return default_spec(source_id, self.settings.stream), True
        return stored[1], False

    def streams(self) -> list[dict[str, Any]]:
        return self.store.streams()

    def scores(self, source_id: str, since_ms: int | None, limit: int) -> list[dict[str, Any]]:
        _check_source(source_id)
        return self.store.scores(source_id, since_ms=since_ms, limit=limit)

    def alerts(self, since_ms: int | None, limit: int) -> list[dict[str, Any]]:
        return self.store.scores(None, since_ms=since_ms, limit=limit, alerts_only=True)


def _check_source(source_id: str) -> None:
    if not (1 <= len(source_id) <= 128):
        raise NotFound(f"source {source_id!r} not found (ids have 1 to 128 characters)")
