"""A job as a Ray task: load the cloud from storage, run the algorithm, record the result and its message.

Every job kind gets where its cloud is stored, never the cloud: an exact job reads the blob whole, a
landmark job streams it through Ray Data.  ``max_retries`` re-runs the task when its worker dies; a
watcher thread syncs progress to the store and cancels the engine as soon as the job is no longer
``running`` for this attempt (a ``DELETE`` marks it cancelled in the store; the task may run in any
process or node).  The result, the job's success and its Kafka message (in the outbox row) are written in
one transaction.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from tda_ray.distributed.landmarks import run_landmark_rips
from tda_ray.engine.graphs import graph_distance_matrix
from tda_ray.engine.params import Params, RunOptions
from tda_ray.engine.registry import get_algorithm
from tda_ray.engine.result import PersistenceResult
from tda_ray.engine.rips import CancelToken, EngineCancelled, MemoryLimitError
from tda_ray.service.jobs.admission import Admission
from tda_ray.service.settings import Settings
from tda_ray.service.store import Store
from tda_ray.service.store.records import utcnow
from tda_ray.service.streaming.messages import build_result_message

__all__ = ["JobSpec", "JobTask", "job_task_options", "run_job"]

log = logging.getLogger("tda_ray.jobs")


@dataclass(frozen=True)
class JobSpec:
    """What a job's task is given: the job as claimed for one dispatch, and where its cloud is stored."""

    job_id: str
    attempt: int
    pointcloud_id: str
    blob_key: str
    algorithm: str
    params: dict[str, Any]
    memory_bytes: int | None = None  # reserved on the node; the engine's memory limit (None: the largest)
    kind: str = "points"  # what the stored array is: points, or a distance matrix


class _Watcher(threading.Thread):
    """Writes the engine's latest progress to the store; cancels the engine when the job is no longer ours."""

    def __init__(self, store: Store, job_id: str, attempt: int, token: Any, interval: float) -> None:
        super().__init__(name=f"tda-watch-{job_id[:8]}", daemon=True)
        self.store, self.job_id, self.attempt, self.token, self.interval = store, job_id, attempt, token, interval
        self.progress: float | None = None  # set by the engine's callback (a plain store: atomic under the GIL)
        self.done = threading.Event()

    def on_progress(self, fraction: float) -> None:
        self.progress = fraction

    def run(self) -> None:
        sent: float | None = None
        while not self.done.wait(self.interval):
            p = self.progress
            try:
                ours = self.store.heartbeat(self.job_id, self.attempt, p if p != sent else None)
            except Exception:  # a busy or briefly unreachable store must not kill the job
                log.warning("progress sync failed for job %s", self.job_id, exc_info=True)
                continue
            sent = p
            if not ours:
                self.token.cancel()
                return


def _compute(
    st: Store, settings: Settings, spec: JobSpec, params: Params, watcher: _Watcher, token: Any
) -> tuple[PersistenceResult, tuple[int, ...]]:
    """The algorithm's result and the shape of the data it ran on (the whole cloud's)."""
    alg = get_algorithm(spec.algorithm)
    admission = Admission(settings)
    limit = spec.memory_bytes or admission.cap()
    options = RunOptions(n_threads=settings.engine_threads, memory_limit=limit)
    if params.landmark_count() is not None:

        def rips_memory(landmarks: Any) -> int:  # the Rips task on the landmarks reserves what they need
            n, dim = landmarks.shape
            return admission.reserve(alg, params, int(n), int(dim), landmarks)

        # This task reserves no CPU (it coordinates): the shards and the Rips task reserve their own.
        lm = run_landmark_rips(
            st.blobs.uri(spec.blob_key),
            params,  # type: ignore[arg-type]  # landmarks are a Rips parameter
            options,
            n_workers=settings.landmark_workers,
            progress=watcher.on_progress,
            cancel=token,
            rips_cpus=settings.job_cpus,
            rips_memory=rips_memory,
        )
        return lm.result, (lm.sample.n_points, lm.sample.dim)
    with st.blobs.open(spec.blob_key) as fh:
        points = np.load(fh, allow_pickle=False)
    kind, shape = spec.kind, tuple(int(x) for x in points.shape)
    if kind == "graph":  # an edge list: the distance matrix of its filtration, vertices as the record counts them
        n = st.get_pointcloud(spec.pointcloud_id).n_points
        filtration: Any = getattr(params, "graph_filtration", "edge")
        points, kind, shape = (
            graph_distance_matrix(points, n_vertices=n, filtration=filtration),
            "distance_matrix",
            (n, n),
        )
        params = params.model_copy(update={"graph_filtration": "edge"})  # read: the matrix is its filtration
    res = alg.execute(points, params, options, kind=kind, progress=watcher.on_progress, cancel=token)
    return res, shape


def _node_id() -> str | None:
    # get_runtime_context() would start a local Ray in a plain process.
    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None


def run_job(settings: Settings, spec: JobSpec) -> dict[str, Any]:
    """One job (one attempt); writes are fenced by ``spec.attempt``. Returns ``{"job_id", "outcome"}``."""
    st = Store(settings.database_url, settings.storage_root, create_schema=False)
    try:
        return _run(st, settings, spec)
    finally:
        st.close()


def _failed(st: Store, spec: JobSpec, error: str) -> dict[str, Any]:
    st.finish_failure(spec.job_id, spec.attempt, error)
    return {"job_id": spec.job_id, "outcome": "failed"}


def _requeue_with_more_memory(st: Store, settings: Settings, spec: JobSpec, exc: Exception) -> bool:
    """The reduction needed more than the estimate's share: queue the job once more with the largest."""
    larger = Admission(settings).cap()
    exact = get_algorithm(spec.algorithm).parse(spec.params).landmark_count() is None
    if spec.memory_bytes is None or spec.memory_bytes >= larger or not exact:
        return False
    if not st.requeue_with_memory(spec.job_id, spec.attempt, larger):
        return False
    log.info("job %s: %s; queued again reserving %d MiB", spec.job_id, exc, larger >> 20)
    return True


def _run(st: Store, settings: Settings, spec: JobSpec) -> dict[str, Any]:
    if not st.start_run(spec.job_id, spec.attempt, pid=os.getpid(), node=_node_id()):
        return {"job_id": spec.job_id, "outcome": "skipped"}  # cancelled or re-dispatched meanwhile
    alg = get_algorithm(spec.algorithm)
    token = CancelToken()
    watcher = _Watcher(st, spec.job_id, spec.attempt, token, settings.progress_interval_s)
    watcher.start()
    t0 = time.perf_counter()
    try:
        params = alg.parse(spec.params)
        res, shape = _compute(st, settings, spec, params, watcher, token)
    except EngineCancelled:
        return {"job_id": spec.job_id, "outcome": "cancelled"}  # whoever cancelled already wrote the status
    except MemoryLimitError as exc:
        if _requeue_with_more_memory(st, settings, spec, exc):
            return {"job_id": spec.job_id, "outcome": "requeued"}
        return _failed(st, spec, f"memory limit: {exc}")
    except ValueError as exc:
        return _failed(st, spec, f"invalid input: {exc}")
    except OSError as exc:
        return _failed(st, spec, f"cannot read point cloud: {exc}")
    finally:
        watcher.done.set()
        watcher.join()
    summary = alg.summarize(res, shape, time.perf_counter() - t0).model_dump(mode="json")
    finished = utcnow()
    message = build_result_message(
        job_id=spec.job_id,
        pointcloud_id=spec.pointcloud_id,
        algorithm=spec.algorithm,
        params=spec.params,
        summary=summary,
        diagrams=res.diagrams,
        finished_at=finished,
        max_bytes=settings.kafka.max_message_bytes - 64 * 1024,  # headroom for the record batch framing
    )
    key = st.save_result_blob(spec.job_id, spec.attempt, res.diagrams, res.cocycles)
    ok = st.finish_success(spec.job_id, spec.attempt, summary, key, message, finished_at=finished)
    return {"job_id": spec.job_id, "outcome": "succeeded" if ok else "superseded"}


JobTask: Any = ray.remote(run_job)


def job_task_options(settings: Settings, job_id: str, landmarks: bool, memory_bytes: int) -> dict[str, Any]:
    """Ray options of a job's task.

    A landmark job's task only coordinates (Ray Data reads, shard actors, then a Rips task, each with its
    own CPUs), so it reserves none: holding a CPU while it waits could starve its own shards.  Every task
    reserves its memory (Ray's ``memory`` resource, README "Admission"): Ray starts it only where that
    much is unreserved.
    """
    return {
        "name": f"tda-job-{job_id}",
        "num_cpus": 0 if landmarks else settings.job_cpus,
        "memory": memory_bytes,
        "max_retries": settings.job_max_retries,  # re-run when the worker process or node dies
        "retry_exceptions": False,  # an exception is a verdict about the input, not bad luck
    }
