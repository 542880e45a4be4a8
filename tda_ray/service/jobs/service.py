"""What the HTTP routes call: point clouds, jobs, results, events and health, for one ingress replica.

Every error is a typed exception (:mod:`~tda_ray.service.jobs.errors`) that the HTTP layer maps to a 4xx
or 503.  Stateless apart from what it owns (a store, a Kafka producer, upload threads), so any number of
ingress replicas can run at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tda_ray import io as tio
from tda_ray.engine.graphs import graph_distance_matrix
from tda_ray.engine.params import Params
from tda_ray.engine.registry import Algorithm, get_algorithm
from tda_ray.engine.rips import check_distance_matrix
from tda_ray.engine.summary import DiagramSummary
from tda_ray.io.arrays import as_float_grid, as_float_matrix
from tda_ray.service.jobs.admission import Admission
from tda_ray.service.jobs.analysis import DistanceQuery, VectorsQuery, diagram_distances, diagram_vectors
from tda_ray.service.jobs.errors import EventsUnavailable, InvalidRequest, PayloadTooLarge
from tda_ray.service.jobs.streams import StreamService
from tda_ray.service.jobs.uploads import UploadService
from tda_ray.service.settings import Settings
from tda_ray.service.store import IdempotencyMismatch, IdempotentAnswer, JobRecord, PointCloudRecord, Store
from tda_ray.service.streaming.events import EventsTooLarge, PartlyPublished, RawEventPublisher, encode_events
from tda_ray.service.streaming.kafka import KafkaUnavailable
from tda_ray.service.streaming.sink import StreamingHealth

__all__ = ["JobResult", "JobService", "validate_points"]

# What each kind of upload is, in messages.
_KINDS = {
    "points": "a point cloud",
    "distance_matrix": "a distance matrix",
    "image": "an image",
    "graph": "a graph",
}
# A pending idempotency key older than this belonged to a request lost with its replica: it runs again.
IDEMPOTENCY_STALE_S = 120.0
# Server-made event ids of a request with an idempotency key: uuid5 of (key, position) in this namespace.
EVENT_ID_NAMESPACE = uuid.UUID("5b0d3c3e-7f43-4a8e-9a55-0e1b6f0f5c21")


def validate_points(points: Any, settings: Settings, source: str = "point cloud") -> npt.NDArray[np.float64]:
    """A finite, non-empty ``(n, d)`` float64 array, or :class:`InvalidRequest` naming the problem."""
    try:
        arr = as_float_matrix(points, source)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if arr.size == 0:
        raise InvalidRequest(f"{source} is empty: at least one point with at least one coordinate is needed")
    if arr.shape[0] > settings.max_points:
        raise PayloadTooLarge(f"{source} has {arr.shape[0]} points; the limit is {settings.max_points}")
    return arr


@dataclass(frozen=True)
class JobResult:
    job: JobRecord
    summary: DiagramSummary
    diagrams: list[npt.NDArray[np.float64]]
    cocycles: list[list[npt.NDArray[np.int64]]] | None = None


class JobService:
    """Operations behind the HTTP routes."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url, settings.storage_root)
        self.uploads = UploadService(settings, self.store)
        self.streams = StreamService(settings, self.store)
        self.admission = Admission(settings)
        self._events = RawEventPublisher(settings.kafka, settings.events_max_request_bytes)
        self._streaming_health = StreamingHealth(settings)

    def close(self) -> None:
        self.uploads.close()
        self.streams.close()
        self._events.close()
        self.store.close()

    # --- health ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``database``/``storage``: ``ok`` or the error; ``components``: Kafka broker and sink."""
        state = "ok"
        try:
            self.store.ping()
        except Exception as exc:  # report, never fail the probe itself
            state = f"error: {type(exc).__name__}: {exc}"
        try:
            kafka = self._streaming_health()
        except Exception as exc:
            kafka = {"enabled": self.settings.kafka.enabled, "error": f"{type(exc).__name__}: {exc}"}
        return {"database": state, "storage": state, "components": {"kafka": kafka}}

    # --- point clouds ----------------------------------------------------------------------------
    def create_pointcloud(
        self, points: Any, name: str | None, source: str = "json", kind: str = "points"
    ) -> PointCloudRecord:
        """A point cloud, or with ``kind="distance_matrix"`` a square matrix of distances between points
        (``graph``: an edge list; ``image``: a 2-D image or a 3-D volume)."""
        what = _KINDS[kind].split(" ", 1)[1]
        if kind == "graph":
            return self._create_graph(points, name, source)
        if kind == "image":
            try:
                grid = as_float_grid(points, what)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from exc
            return self.store.create_pointcloud(grid, name=name, source=source, kind=kind)
        arr = validate_points(points, self.settings, what)
        if kind == "distance_matrix":
            try:
                check_distance_matrix(arr)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from exc
        return self.store.create_pointcloud(arr, name=name, source=source, kind=kind)

    def _create_graph(self, edges: Any, name: str | None, source: str) -> PointCloudRecord:
        """An edge list (rows u, v, weight): stored as it is; n_points counts its vertices (dim is 3)."""
        try:
            arr = as_float_matrix(edges, "edge list")
            if arr.shape[1] != 3:
                raise ValueError(f"an edge list has rows (u, v, weight), got {arr.shape[1]} columns")
            n = graph_distance_matrix(arr).shape[0]  # every check of the graph
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        if n > self.settings.max_points:
            raise PayloadTooLarge(f"the graph has {n} vertices; the limit is {self.settings.max_points}")
        return self.store.create_pointcloud(arr, name=name, source=source, kind="graph", n_points=n)

    def create_pointcloud_from_file(
        self, data: bytes, filename: str, name: str | None, kind: str | None = None
    ) -> PointCloudRecord:
        """An uploaded file; Ripser's distance matrix formats are distance matrices, PNG/TIFF images."""
        fmt = tio.detect_format(filename, data[:8])
        implied = "distance_matrix" if tio.is_distance_format(fmt) else "image" if fmt == "image" else None
        if implied is not None:
            if kind not in (None, implied):
                raise InvalidRequest(f"{filename} is {_KINDS[implied]} by its format, not {_KINDS[kind]}")
            kind = implied
        try:
            arr = tio.load_grid_bytes(data, fmt, filename) if kind == "image" else tio.load_bytes(data, fmt, filename)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        return self.create_pointcloud(arr, name or filename, source=fmt, kind=kind or "points")

    def get_pointcloud(self, pointcloud_id: str) -> PointCloudRecord:
        return self.store.get_pointcloud(pointcloud_id)

    def list_pointclouds(self, limit: int, offset: int) -> tuple[list[PointCloudRecord], int]:
        return self.store.list_pointclouds(limit=limit, offset=offset)

    # --- jobs ----------------------------------------------------------------------------------
    def submit(self, pointcloud_id: str, algorithm: str, params: Params | Mapping[str, Any]) -> JobRecord:
        try:
            alg = get_algorithm(algorithm)
            clean = params if isinstance(params, alg.params) else alg.parse(dict(params))
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        maxdim = getattr(clean, "maxdim", None)
        if maxdim is not None and maxdim > self.settings.max_maxdim:
            raise InvalidRequest(f"maxdim {maxdim} is above this server's limit of {self.settings.max_maxdim}")
        pc = self.store.get_pointcloud(pointcloud_id)  # 404 before anything is recorded
        self._check_kind(alg, pc, clean)
        memory = self._admit(alg, pc, clean)
        return self.store.create_job(pointcloud_id, algorithm, clean.model_dump(mode="json"), memory_bytes=memory)

    @staticmethod
    def _check_kind(alg: Algorithm, pc: PointCloudRecord, params: Params) -> None:
        """InvalidRequest unless the algorithm and its parameters apply to this kind of data."""
        try:
            alg.check_input(pc.kind)
        except ValueError as exc:
            raise InvalidRequest(f"{pc.id}: {exc}") from exc
        what = _KINDS.get(pc.kind, pc.kind)
        if getattr(params, "graph_filtration", "edge") != "edge" and pc.kind != "graph":
            raise InvalidRequest(f"{pc.id} is {what}: graph_filtration applies to graph uploads only")
        if pc.kind not in ("distance_matrix", "graph"):
            return
        if getattr(params, "metric", "euclidean") != "euclidean":
            raise InvalidRequest(f"{pc.id} is {what}: metric applies to point clouds only")
        if params.landmark_count() is not None:
            raise InvalidRequest(f"{pc.id} is {what}: landmarks are chosen among points in Euclidean space")

    def _admit(self, alg: Algorithm, pc: PointCloudRecord, params: Params) -> int:
        """The job's memory reservation; InvalidRequest for work that can never fit (README "Admission")."""
        try:
            if alg.data == "grid":
                # An image (the stored array's values on its grid): the engine sees its pixels, and the point
                # limit of exact Vietoris–Rips does not apply.
                return self.admission.reserve(alg, params, pc.n_points * pc.dim, 1, None)
            count = params.landmark_count(pc.n_points)
            if count is None and pc.n_points > self.settings.max_points:
                raise InvalidRequest(
                    f"point cloud has {pc.n_points} points, above the limit of {self.settings.max_points} for "
                    'exact Vietoris–Rips; ask for landmarks (params.landmarks: a count or "auto")'
                )
            if count is not None:  # its task coordinates; the Rips task on the landmarks reserves its own
                self.admission.reserve(alg, params, count, pc.dim, None)
                return self.settings.job_memory_min_bytes
            # The up-front estimate reads points; a distance matrix has the closed-form one only.
            wants = pc.kind == "points" and self.admission.needs_points(pc.n_points, params)
            points = self.store.load_points(pc.id) if wants else None
            return self.admission.reserve(alg, params, pc.n_points, pc.dim, points)
        except InvalidRequest:
            raise
        except ValueError as exc:
            # The engine's own refusal at submit rather than as a failed job: MemoryLimitError, or the cloud
            # itself (a zero row under the cosine metric).
            raise InvalidRequest(str(exc)) from exc

    def get_job(self, job_id: str) -> JobRecord:
        return self.store.get_job(job_id)

    def list_jobs(self, status: str | None, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        return self.store.list_jobs(status=status, limit=limit, offset=offset)

    def cancel(self, job_id: str) -> JobRecord:
        return self.store.cancel_job(job_id)

    def result(self, job_id: str) -> JobResult:
        job = self.store.get_job(job_id)
        res = self.store.get_result(job_id)
        summary = get_algorithm(job.algorithm).summary.model_validate(res.summary)
        return JobResult(job=job, summary=summary, diagrams=res.diagrams, cocycles=res.cocycles)

    def vectors(self, job_id: str, query: VectorsQuery) -> list[dict[str, Any]]:
        """The finished job's diagrams vectorized (:mod:`~.analysis`); Conflict before it succeeded."""
        diagrams = self.store.get_result(job_id).diagrams
        try:
            return diagram_vectors(diagrams, query)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc

    def distance(self, job_a: str, job_b: str, query: DistanceQuery) -> list[dict[str, Any]]:
        """Per-dimension distances between two succeeded jobs' diagrams; Conflict unless both succeeded."""
        a, b = self.store.get_result(job_a).diagrams, self.store.get_result(job_b).diagrams
        try:
            return diagram_distances(a, b, query, self.settings.max_wasserstein_pairs)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc

    # --- idempotency keys ---------------------------------------------------------------------
    def idempotent_begin(self, scope: str, key: str, fingerprint: str) -> IdempotentAnswer | None:
        """The stored answer of ``key``, or None: the caller runs the request (then finish or abandon)."""
        try:
            return self.store.begin_idempotent(scope, key, fingerprint, stale_after_s=IDEMPOTENCY_STALE_S)
        except IdempotencyMismatch as exc:
            raise InvalidRequest(str(exc)) from exc

    def idempotent_finish(self, scope: str, key: str, status_code: int, body: str) -> None:
        self.store.finish_idempotent(scope, key, status_code, body)

    def idempotent_abandon(self, scope: str, key: str) -> None:
        self.store.abandon_idempotent(scope, key)

    # --- events --------------------------------------------------------------------------------
    def publish_events(self, events: Sequence[Mapping[str, Any]], ids_seed: str | None = None) -> list[str]:
        """Publish raw events to Kafka and return their ids; every one acknowledged, or EventsUnavailable
        naming those that were.  An event or batch over its size limit is refused before anything is sent
        (PayloadTooLarge).  ``ids_seed`` (the request's idempotency key) fixes the ids the server assigns, so
        a retried batch repeats them."""
        ids = None
        if ids_seed is not None:
            ids = [str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{ids_seed}/{i}")) for i in range(len(events))]
        try:
            encoded = encode_events(
                events, self.settings.events_max_event_bytes, self.settings.events_max_request_bytes, ids
            )
        except EventsTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        if not self.settings.kafka.enabled:  # after the checks: a bad batch is a 4xx whatever Kafka's state
            ids = [e.event_id for e in encoded]
            raise EventsUnavailable("Kafka is disabled on this server (TDA_KAFKA_ENABLED=false)", [], ids)
        try:
            self._events.publish(encoded)
        except PartlyPublished as exc:
            raise EventsUnavailable(str(exc), exc.published, exc.not_published) from exc
        except KafkaUnavailable as exc:
            raise EventsUnavailable(f"events not accepted: {exc}", [], [e.event_id for e in encoded]) from exc
        return [e.event_id for e in encoded]
