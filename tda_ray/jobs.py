"""Jobs layer: the only code that calls the engine and the store for the service.

* :class:`JobService` — what the HTTP ingress calls: validate input, record
  point clouds and jobs, read results.  Stateless, so any number of ingress
  replicas can use it at once.
* :class:`Dispatcher` — the single component that turns queued job records
  into Ray tasks (it lives in the one-replica ``JobManager`` Serve deployment).
  On start-up it re-queues every unfinished job, because jobs are durable in the
  store, not in any process.  Claims are made in the database, and each
  dispatch bumps the job's ``attempt``: every write of a task is fenced by it,
  so even an overlapping old dispatcher (e.g. during a redeploy) can not make a
  job finish twice.
* :func:`run_job` — the Ray task: load nothing but the point cloud handed over
  through the object store, run the engine with a progress callback and a
  cancel token, write the result.  ``max_retries`` re-runs it when its worker
  dies; a watcher thread syncs progress to the store and cancels the engine
  as soon as the job is no longer ``running`` for this attempt (a ``DELETE``
  marks it cancelled in the store; the task may run in any process or node).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tda_ray import storage
from tda_ray.settings import Settings
from tda_ray.storage import Conflict, JobRecord, NotFound, PointCloudRecord, ResultRecord, Store, UploadRecord

log = logging.getLogger("tda_ray.jobs")

ALGORITHMS = ("vietoris_rips",)

__all__ = [
    "ALGORITHMS",
    "Conflict",
    "Dispatcher",
    "InvalidRequest",
    "JobService",
    "NotFound",
    "PayloadTooLarge",
    "run_job",
    "startup_hooks",
]


class InvalidRequest(ValueError):
    """Input the service refuses (maps to HTTP 422)."""


class PayloadTooLarge(ValueError):
    """Input over a configured size limit (maps to HTTP 413)."""


_STORES: dict[tuple[str, str], Store] = {}
_STORES_LOCK = threading.Lock()


def store_for(settings: Settings) -> Store:
    """One :class:`Store` per (database, storage root) per process; worker processes run many tasks."""
    key = (settings.database_url, settings.storage_root)
    with _STORES_LOCK:
        st = _STORES.get(key)
        if st is None:
            st = _STORES[key] = Store(settings)
        return st


def startup_hooks(settings: Settings) -> list[Callable[[Settings], None]]:
    """Functions the dispatcher runs once it has started and recovered the queue.

    This is where long-lived companions of the service are started (the Kafka
    outbox sink: ``tda_ray.streaming``).  A failing hook is logged, not fatal.
    """
    from tda_ray import streaming  # no-op unless settings.kafka_enabled

    hooks: list[Callable[[Settings], None]] = [streaming.startup_hook]
    return hooks


# --------------------------------------------------------------------------- validation


def validate_points(points: Any, settings: Settings, source: str = "point cloud") -> npt.NDArray[np.float64]:
    """A finite, non-empty ``(n, d)`` float64 array, or :class:`InvalidRequest` naming the problem."""
    try:
        arr = np.asarray(points)
    except ValueError as exc:  # NumPy refuses ragged nested lists
        raise InvalidRequest(f"{source} is ragged: rows have different lengths") from exc
    if arr.dtype == object:
        raise InvalidRequest(f"{source} is ragged or holds non-numeric values")
    if arr.dtype.kind not in "iuf":
        raise InvalidRequest(f"{source} must hold numbers, got {arr.dtype}")
    if arr.size == 0:
        raise InvalidRequest(f"{source} is empty: at least one point with at least one coordinate is needed")
    if arr.ndim != 2:
        raise InvalidRequest(f"{source} must be a list of points (2-D), got shape {list(arr.shape)}")
    if arr.shape[0] > settings.max_points:
        raise PayloadTooLarge(f"{source} has {arr.shape[0]} points; the limit is {settings.max_points}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidRequest(f"{source} contains NaN or inf (first at row {row}, column {col})")
    return out


def validate_params(algorithm: str, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Normalised job parameters, or :class:`InvalidRequest` naming the problem."""
    if algorithm not in ALGORITHMS:
        raise InvalidRequest(f"unknown algorithm {algorithm!r}; supported: {', '.join(ALGORITHMS)}")
    maxdim = params.get("maxdim", 1)
    coeff = params.get("coeff", 2)
    threshold = params.get("threshold")
    if isinstance(maxdim, bool) or not isinstance(maxdim, int) or maxdim < 0:
        raise InvalidRequest(f"maxdim must be a non-negative integer, got {maxdim!r}")
    if maxdim > settings.max_maxdim:
        raise InvalidRequest(f"maxdim {maxdim} is above this server's limit of {settings.max_maxdim}")
    from tda_ray.engine import MAX_COEFF, is_prime

    if isinstance(coeff, bool) or not isinstance(coeff, int) or not (coeff <= MAX_COEFF and is_prime(coeff)):
        raise InvalidRequest(f"coeff must be a prime number below 2^31, got {coeff!r}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise InvalidRequest(f"threshold must be a number or null, got {threshold!r}")
        if not math.isfinite(threshold) or threshold < 0:
            raise InvalidRequest(f"threshold must be a finite non-negative number or null, got {threshold!r}")
        threshold = float(threshold)
    landmarks = params.get("landmarks")
    if landmarks is not None:
        from tda_ray.landmarks import resolve_landmarks

        try:
            resolve_landmarks(landmarks, maxdim)
        except ValueError as exc:
            raise InvalidRequest(f"{exc} (or null for the exact computation)") from exc
        landmarks = "auto" if isinstance(landmarks, str) else int(landmarks)
    return {"maxdim": maxdim, "threshold": threshold, "coeff": coeff, "landmarks": landmarks}


def landmark_count(params: dict[str, Any], n_points: int) -> int | None:
    """Points the engine will see for a job: the landmarks (at most the cloud), or None for exact jobs."""
    if params.get("landmarks") is None:
        return None
    from tda_ray.landmarks import resolve_landmarks

    return min(resolve_landmarks(params["landmarks"], params["maxdim"]), n_points)


MAX_UPLOAD_PARTS = 100_000
STREAM_FORMATS = {"npy": b"\x93NUMPY", "parquet": b"PAR1"}


def streamable_format(filename: str, head: bytes) -> str | None:
    """``npy``/``parquet`` when an uploaded file can go to storage without being parsed in memory."""
    from tda_ray import loaders

    fmt = loaders.detect_format(filename, head)
    return fmt if fmt in STREAM_FORMATS else None


class Upload:
    """A point cloud arriving in pieces (a streamed .npy/Parquet body): written to storage as it comes."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self.key = f"uploads/{storage.new_id()}"
        self._writer = store.blobs.writer(self.key)
        self._max_bytes = max_bytes

    @property
    def size(self) -> int:
        return self._writer.size

    @property
    def head(self) -> bytes:
        return self._writer.head

    def write(self, data: bytes) -> None:
        if self._writer.size + len(data) > self._max_bytes:
            self.abort()
            raise PayloadTooLarge(f"upload is larger than the limit of {self._max_bytes} bytes")
        self._writer.write(data)

    def commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


# --------------------------------------------------------------------------- API-facing service


class JobService:
    """Operations behind the HTTP routes; every error is a typed exception the API maps to a 4xx."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = store_for(settings)

    def ping(self) -> None:
        self.store.ping()

    def create_pointcloud(self, points: Any, name: str | None, source: str = "json") -> PointCloudRecord:
        arr = validate_points(points, self.settings)
        return self.store.create_pointcloud(arr, name=name, source=source)

    def create_pointcloud_from_file(self, data: bytes, filename: str, name: str | None) -> PointCloudRecord:
        from tda_ray import loaders

        fmt = loaders.detect_format(filename, data[:8])
        if loaders.is_distance_format(fmt):
            raise InvalidRequest(f"{filename}: distance matrices are not accepted here; upload a point cloud")
        try:
            arr = loaders.load_bytes(data, fmt, name=filename)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        return self.create_pointcloud(arr, name or filename, source=fmt)

    def begin_upload(self) -> Upload:
        """Start a streamed ``.npy``/Parquet upload; feed it with ``write`` and end with :meth:`finish_upload`."""
        return Upload(self.store, self.settings.max_stream_upload_bytes)

    def finish_upload(self, upload: Upload, name: str | None, expected: str | None = None) -> PointCloudRecord:
        """Check and re-encode a streamed upload block by block (float64 ``.npy``); never loads it whole.

        ``expected`` (``npy``/``parquet``) is the format the content type announced; the bytes decide.
        """
        from pyarrow import ArrowException

        from tda_ray import landmarks

        # Whatever fails while decoding the uploaded bytes is a verdict on them (422), not a server fault.
        undecodable = (ValueError, TypeError, ArrowException)

        upload.commit()
        try:
            fmt = next((f for f, magic in STREAM_FORMATS.items() if upload.head.startswith(magic)), None)
            if fmt is None or (expected is not None and fmt != expected):
                want = f"a {expected} file" if expected else "a .npy or Parquet file"
                # A pickle protocol header: say so, it is a common mistake (np.save(allow_pickle=True) of objects).
                hint = "; pickled data is never loaded" if upload.head[:1] == b"\x80" else ""
                raise InvalidRequest(f"the body is not {want} (its first bytes are {upload.head[:8]!r}){hint}")
            # Named by its format so that the readers pick the right decoder.
            typed = f"{upload.key}.{fmt}"
            self.store.blobs.rename(upload.key, typed)
            upload.key = typed
            where = self.store.blobs.uri(typed)
            try:
                info = landmarks.probe_source(where)
            except undecodable as exc:
                raise InvalidRequest(str(exc).replace(where, f"uploaded {fmt}")) from exc
            if info.n_points == 0 or info.dim == 0:
                raise InvalidRequest(f"point cloud is empty: {info.n_points} points with {info.dim} coordinates")
            if info.n_points > self.settings.max_stream_points:
                limit = self.settings.max_stream_points
                raise PayloadTooLarge(f"point cloud has {info.n_points} points; the limit is {limit}")
            try:
                return self.store.create_pointcloud_from_blocks(
                    landmarks.iter_point_blocks(where), n_points=info.n_points, dim=info.dim, name=name, source=fmt
                )
            except undecodable as exc:
                raise InvalidRequest(str(exc).replace(where, f"uploaded {fmt}")) from exc
        finally:
            self.store.blobs.delete(upload.key)

    # Upload sessions: a cloud sent as numbered parts, each a bounded request (no proxy or replica ever
    # holds more than one part), assembled and checked like a streamed upload on completion.
    def create_upload_session(self, name: str | None) -> UploadRecord:
        return self.store.create_upload(name)

    def get_upload_session(self, upload_id: str) -> UploadRecord:
        return self.store.get_upload(upload_id)

    def put_upload_part(self, upload_id: str, part: int, data: bytes) -> int:
        if not 0 <= part < MAX_UPLOAD_PARTS:
            raise InvalidRequest(f"part numbers run from 0 to {MAX_UPLOAD_PARTS - 1}, got {part}")
        if not data:
            raise InvalidRequest("a part must not be empty")
        rec = self.store.get_upload(upload_id)
        total = sum(size for n, size in rec.parts if n != part) + len(data)
        if total > self.settings.max_session_upload_bytes:
            raise PayloadTooLarge(
                f"upload would hold {total} bytes; the limit is {self.settings.max_session_upload_bytes}"
            )
        self.store.put_upload_part(upload_id, part, data)
        return len(data)

    def complete_upload_session(self, upload_id: str) -> PointCloudRecord:
        rec = self.store.get_upload(upload_id)
        if rec.status == "completed" and rec.pointcloud_id:  # a retried completion
            return self.store.get_pointcloud(rec.pointcloud_id)
        if rec.status != "open":
            raise Conflict(f"upload {upload_id} is {rec.status}")
        numbers = [n for n, _ in rec.parts]
        if not numbers:
            raise InvalidRequest("upload has no parts")
        missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
        if missing:
            raise InvalidRequest(f"upload is missing part(s) {missing[:10]} (parts are numbered from 0)")
        if not self.store.set_upload_status(upload_id, "completing", expect=("open",)):
            raise Conflict(f"upload {upload_id} is already being completed")
        try:
            up = Upload(self.store, self.settings.max_session_upload_bytes)
            try:
                for n in numbers:
                    for chunk in self.store.upload_part_chunks(upload_id, n):
                        up.write(chunk)
            except BaseException:
                up.abort()
                raise
            pc = self.finish_upload(up, rec.name)
        except BaseException:
            # Still open: the client may replace a bad part and complete again, or abort.
            self.store.set_upload_status(upload_id, "open", expect=("completing",))
            raise
        self.store.set_upload_status(upload_id, "completed", expect=("completing",), pointcloud_id=pc.id)
        return pc

    def abort_upload_session(self, upload_id: str) -> UploadRecord:
        rec = self.store.get_upload(upload_id)
        if not self.store.set_upload_status(upload_id, "aborted", expect=("open",)):
            raise Conflict(f"upload {upload_id} is {rec.status}")
        return self.store.get_upload(upload_id)

    def get_pointcloud(self, pointcloud_id: str) -> PointCloudRecord:
        return self.store.get_pointcloud(pointcloud_id)

    def submit(self, pointcloud_id: str, algorithm: str, params: dict[str, Any]) -> JobRecord:
        clean = validate_params(algorithm, params, self.settings)
        pc = self.store.get_pointcloud(pointcloud_id)  # 404 before anything is recorded
        engine_points = landmark_count(clean, pc.n_points)
        if engine_points is None and pc.n_points > self.settings.max_points:
            raise InvalidRequest(
                f"point cloud has {pc.n_points} points, above the limit of {self.settings.max_points} for exact "
                'Vietoris–Rips; ask for landmarks (params.landmarks: a count or "auto")'
            )
        self._memory_preflight(pc.n_points if engine_points is None else engine_points, clean)
        return self.store.create_job(pointcloud_id, algorithm, clean)

    def memory_limit(self) -> int:
        if self.settings.memory_limit_bytes is not None:
            return self.settings.memory_limit_bytes
        from tda_ray import _core

        return int(_core.default_memory_limit())

    def _memory_preflight(self, n_points: int, params: dict[str, Any]) -> None:
        # The engine's up-front refusal, checked here so the client gets a 422 instead of a failed job:
        # without a threshold it needs the dense float32 distance matrix (n(n-1)/2 entries).
        if params["threshold"] is not None:
            return
        need = n_points * (n_points - 1) / 2 * 4
        limit = self.memory_limit()
        if need > limit:
            raise InvalidRequest(
                f"the distance matrix of {n_points} points needs {need / 2**20:.0f} MiB, above the memory limit of "
                f"{limit / 2**20:.0f} MiB; give a threshold (sparse neighbour lists) or use fewer points"
            )

    def get_job(self, job_id: str) -> JobRecord:
        return self.store.get_job(job_id)

    def list_jobs(self, status: str | None, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        return self.store.list_jobs(status=status, limit=limit, offset=offset)

    def cancel(self, job_id: str) -> JobRecord:
        return self.store.cancel_job(job_id)

    def result(self, job_id: str) -> tuple[JobRecord, ResultRecord]:
        job = self.store.get_job(job_id)
        return job, self.store.get_result(job_id)


# --------------------------------------------------------------------------- the Ray task


def _summary(res: Any, n_points: int, dim: int, params: dict[str, Any], elapsed: float) -> dict[str, Any]:
    diagrams = res.diagrams
    out = {
        "algorithm": "vietoris_rips",
        "maxdim": params["maxdim"],
        "coeff": params["coeff"],
        "threshold": params["threshold"],
        "n_points": n_points,
        "dim": dim,
        # Classes alive at the end of the filtration (death = inf) per dimension.
        "betti": [int(np.count_nonzero(np.isinf(d[:, 1]))) for d in diagrams],
        "n_pairs": [int(d.shape[0]) for d in diagrams],
        "total_persistence": [float(x) for x in res.total_persistence(1.0)],
        "persistence_entropy": [float(x) for x in res.persistence_entropy()],
        "elapsed_s": elapsed,
    }
    if "landmarks" in res.extras:
        out["landmarks"] = res.extras["landmarks"]
    return out


class _Watcher(threading.Thread):
    """Writes the engine's latest progress to the store; cancels the engine when the job is no longer ours."""

    def __init__(self, store: Store, job_id: str, attempt: int, token: Any, interval: float) -> None:
        super().__init__(name=f"tda-watch-{job_id[:8]}", daemon=True)
        self.store, self.job_id, self.attempt, self.token, self.interval = store, job_id, attempt, token, interval
        self.progress: float | None = None  # set by the engine's callback (a plain store: atomic under the GIL)
        self.done = threading.Event()
        self.lost = False

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
                self.lost = True
                self.token.cancel()
                return


def _run_job(
    settings: Settings,
    job_id: str,
    attempt: int,
    points: npt.NDArray[np.float64] | str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """One job: ``points`` is the cloud itself (exact jobs) or where it is stored (landmark jobs)."""
    from tda_ray.engine import CancelToken, EngineCancelled, MemoryLimitError, vietoris_rips

    st = store_for(settings)
    node = None
    try:
        import ray

        # get_runtime_context() would start a local Ray in a plain process.
        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except Exception:  # not inside Ray (direct call): no node id
        pass
    if not st.start_run(job_id, attempt, pid=os.getpid(), node=node):
        return {"job_id": job_id, "outcome": "skipped"}  # cancelled or re-dispatched meanwhile
    token = CancelToken()
    watcher = _Watcher(st, job_id, attempt, token, settings.progress_interval_s)
    watcher.start()
    t0 = time.perf_counter()
    try:
        if isinstance(points, str):
            from tda_ray.landmarks import landmark_rips

            # This task reserves no CPU (it coordinates): the shards and the Rips task reserve their own.
            lm = landmark_rips(
                points,
                params["landmarks"],
                maxdim=params["maxdim"],
                threshold=params["threshold"],
                coeff=params["coeff"],
                n_threads=settings.engine_threads,
                memory_limit=settings.memory_limit_bytes,
                n_workers=settings.landmark_workers,
                progress=watcher.on_progress,
                cancel=token,
                rips_cpus=settings.job_cpus,
            )
            res, n_points, dim = lm.result, lm.sample.n_points, lm.sample.dim
        else:
            res = vietoris_rips(
                points,
                maxdim=params["maxdim"],
                threshold=params["threshold"],
                coeff=params["coeff"],
                n_threads=settings.engine_threads,
                progress=watcher.on_progress,
                cancel=token,
                memory_limit=settings.memory_limit_bytes,
            )
            n_points, dim = int(points.shape[0]), int(points.shape[1])
    except EngineCancelled:
        return {"job_id": job_id, "outcome": "cancelled"}  # whoever cancelled already wrote the status
    except MemoryLimitError as exc:
        st.finish_failure(job_id, attempt, f"memory limit: {exc}")
        return {"job_id": job_id, "outcome": "failed"}
    except ValueError as exc:
        st.finish_failure(job_id, attempt, f"invalid input: {exc}")
        return {"job_id": job_id, "outcome": "failed"}
    except OSError as exc:  # a landmark job reads the stored cloud itself
        st.finish_failure(job_id, attempt, f"cannot read point cloud: {exc}")
        return {"job_id": job_id, "outcome": "failed"}
    finally:
        watcher.done.set()
        watcher.join()
    elapsed = time.perf_counter() - t0
    key = st.save_result_blob(job_id, attempt, res.diagrams)
    ok = st.finish_success(job_id, attempt, _summary(res, n_points, dim, params, elapsed), key)
    return {"job_id": job_id, "outcome": "succeeded" if ok else "superseded"}


_remote_run_job: Any = None


def run_job(settings: Settings, job_id: str, landmarks: bool = False) -> Any:
    """The Ray remote function for one job, with this deployment's retry and CPU options.

    A landmark job's task only coordinates (Ray Data reads, shard actors, then a Rips task, each with its
    own CPUs), so it reserves none: holding a CPU while it waits could starve its own shards.
    """
    global _remote_run_job
    import ray

    if _remote_run_job is None:
        _remote_run_job = ray.remote(_run_job)
    return _remote_run_job.options(
        name=f"tda-job-{job_id}",
        num_cpus=0 if landmarks else settings.job_cpus,
        max_retries=settings.job_max_retries,  # re-run when the worker process or node dies
        retry_exceptions=False,  # an exception is a verdict about the input, not bad luck
    )


# --------------------------------------------------------------------------- dispatcher


def _cluster_cpus() -> float | None:
    try:
        import ray

        return float(ray.cluster_resources().get("CPU", 0)) or None
    except Exception:  # not connected to Ray
        return None


@dataclass
class _InFlight:
    job_id: str
    attempt: int
    ref: Any
    points_ref: Any
    cancelled: bool = False


class Dispatcher:
    """Moves queued jobs from the store to Ray; exactly one should run per deployment."""

    def __init__(self, settings: Settings, max_in_flight: int | None = None) -> None:
        self.settings = settings
        self.store = store_for(settings)
        self.name = f"dispatcher-{uuid.uuid4().hex[:12]}"
        cpus = _cluster_cpus() or settings.num_cpus or os.cpu_count() or 2
        # Enough queued tasks in Ray to keep every CPU busy, without copying the whole backlog into the object store.
        self.max_in_flight = max_in_flight or max(8, 4 * int(cpus / settings.job_cpus))
        self._in_flight: dict[str, _InFlight] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancels: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._last_expiry = 0.0
        self.recovered = self.store.recover()
        if self.recovered:
            log.info("%s: re-queued %d unfinished job(s) from the store", self.name, self.recovered)
        self._thread = threading.Thread(target=self._loop, name="tda-dispatcher", daemon=True)
        self._thread.start()
        for hook in startup_hooks(settings):
            try:
                hook(settings)
            except Exception:
                log.exception("start-up hook %r failed", hook)

    # Called from request threads.
    def notify(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        self._cancels.put(job_id)
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in_flight": len(self._in_flight),
            "max_in_flight": self.max_in_flight,
            "alive": self._thread.is_alive(),
            "recovered": self.recovered,
        }

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    # The loop thread owns _in_flight and makes every Ray call.
    def _loop(self) -> None:
        last_scan = 0.0
        while not self._stop.is_set():
            try:
                freed = self._collect()
                self._drain_cancels()
                now = time.monotonic()
                if self._wake.is_set() or freed or now - last_scan >= self.settings.dispatch_interval_s:
                    self._wake.clear()
                    last_scan = now
                    self._scan()
            except Exception:
                log.exception("dispatcher tick failed")
                time.sleep(1.0)
            # Poll completions often while busy; otherwise sleep until notified.
            self._wake.wait(0.05 if self._in_flight else self.settings.dispatch_interval_s)

    def _collect(self) -> bool:
        import ray
        from ray.exceptions import TaskCancelledError

        if not self._in_flight:
            return False
        by_ref = {f.ref: f for f in self._in_flight.values()}
        ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        for ref in ready:
            f = by_ref[ref]
            del self._in_flight[f.job_id]
            try:
                ray.get(ref)
            except TaskCancelledError:
                pass
            except Exception as exc:  # worker died more often than max_retries, or a bug in the task
                msg = f"job task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if self.store.finish_failure(f.job_id, f.attempt, msg):
                    log.error("job %s failed: %s", f.job_id, exc)
        return bool(ready)

    def _drain_cancels(self) -> None:
        import ray

        while True:
            try:
                job_id = self._cancels.get_nowait()
            except queue.Empty:
                return
            f = self._in_flight.get(job_id)
            if f is not None and not f.cancelled:
                f.cancelled = True
                # Drops the task if it has not started; a running one is stopped by its watcher.
                ray.cancel(f.ref, force=False)

    def _expire_uploads(self) -> None:
        # Abandoned upload sessions would keep their parts for ever; checked a few times per idle period.
        now = time.monotonic()
        if now - self._last_expiry < min(300.0, self.settings.upload_session_idle_s / 4):
            return
        self._last_expiry = now
        expired = self.store.expire_uploads(self.settings.upload_session_idle_s)
        if expired:
            log.info("%s: aborted %d idle upload session(s)", self.name, len(expired))

    def _scan(self) -> None:
        import ray

        self._expire_uploads()

        # Jobs cancelled through any replica (or a peer process) while in flight here.
        statuses = self.store.statuses(list(self._in_flight))
        for job_id, status in statuses.items():
            f = self._in_flight[job_id]
            if status == storage.CANCELLED and not f.cancelled:
                f.cancelled = True
                ray.cancel(f.ref, force=False)
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return
        for claim in self.store.claim_queued(self.name, room):
            landmark_job = claim.params.get("landmarks") is not None
            try:
                # A landmark job reads the stored cloud in blocks itself; an exact job gets it whole.
                if landmark_job:
                    points: Any = self.store.pointcloud_uri(claim.pointcloud_id)
                else:
                    points = self.store.load_points(claim.pointcloud_id)
            except Exception as exc:  # e.g. the blob was deleted behind our back
                self.store.finish_failure(claim.job_id, claim.attempt, f"cannot load point cloud: {exc}")
                continue
            try:
                points_ref = None if landmark_job else ray.put(points)
                ref = run_job(self.settings, claim.job_id, landmark_job).remote(
                    self.settings, claim.job_id, claim.attempt, points if landmark_job else points_ref, claim.params
                )
            except Exception:
                self.store.release(claim.job_id, claim.attempt)
                raise
            self._in_flight[claim.job_id] = _InFlight(claim.job_id, claim.attempt, ref, points_ref)
