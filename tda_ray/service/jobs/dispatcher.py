"""The dispatcher: the single component that turns queued job records into Ray tasks.

It lives in the one-replica ``JobManager`` Serve deployment.  On start-up it re-queues every unfinished
job, because jobs are durable in the store, not in any process.  Claims are made in the database, and each
dispatch bumps the job's ``attempt``: every write of a task is fenced by it, so even an overlapping old
dispatcher (e.g. during a redeploy) can not make a job finish twice.  It never holds a cloud: a task is
told where its job's cloud is stored.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import OutOfMemoryError, TaskCancelledError

from tda_ray.engine.registry import get_algorithm
from tda_ray.service.jobs.admission import Admission
from tda_ray.service.jobs.task import JobSpec, JobTask, job_task_options
from tda_ray.service.settings import Settings
from tda_ray.service.store import JobStatus, Store

__all__ = ["Dispatcher"]

log = logging.getLogger("tda_ray.jobs")

# Open upload sessions are checked for idleness this often at most (seconds).
UPLOAD_EXPIRY_EVERY_S = 300.0
# A completion that has not touched its session for this long belonged to a replica that died.
STALLED_COMPLETION_S = 120.0


@dataclass
class _InFlight:
    job_id: str
    attempt: int
    ref: Any
    memory_bytes: int = 0
    cancelled: bool = False


def _cluster_cpus() -> float | None:
    if not ray.is_initialized():
        return None
    return float(ray.cluster_resources().get("CPU", 0)) or None


class Dispatcher:
    """Moves queued jobs from the store to Ray; exactly one should run per deployment."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url, settings.storage_root)
        self.name = f"dispatcher-{uuid.uuid4().hex[:12]}"
        cpus = _cluster_cpus() or settings.num_cpus or os.cpu_count() or 2
        # Enough queued tasks in Ray to keep every CPU busy, without copying the whole backlog into Ray.
        self.max_in_flight = settings.max_in_flight or max(8, 4 * int(cpus / settings.job_cpus))
        self._in_flight: dict[str, _InFlight] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancels: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._last_expiry = 0.0
        self.admission = Admission(settings)
        self.recovered = self.store.recover()
        if self.recovered:
            log.info("%s: re-queued %d unfinished job(s) from the store", self.name, self.recovered)
        self._thread = threading.Thread(target=self._loop, name="tda-dispatcher", daemon=True)
        self._thread.start()

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
                if self.store.finish_failure(f.job_id, f.attempt, self._failure(exc, f)):
                    log.error("job %s failed: %s", f.job_id, exc)
        return bool(ready)

    def _failure(self, exc: Exception, f: _InFlight) -> str:
        if isinstance(exc, OutOfMemoryError):
            retries = self.settings.job_oom_retries
            return (
                f"killed by Ray's memory monitor: its node ran out of memory (retried {retries} time"
                f"{'' if retries == 1 else 's'}; the job reserved {f.memory_bytes >> 20} MiB). "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            )
        return f"job task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    def _drain_cancels(self) -> None:
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

    def _housekeeping(self) -> None:
        # Abandoned upload sessions would keep their parts for ever; checked a few times per idle period.
        now = time.monotonic()
        if now - self._last_expiry < min(UPLOAD_EXPIRY_EVERY_S, self.settings.upload_session_idle_s / 4):
            return
        self._last_expiry = now
        expired = self.store.expire_uploads(self.settings.upload_session_idle_s)
        if expired:
            log.info("%s: aborted %d idle upload session(s)", self.name, len(expired))
        forgotten = self.store.expire_idempotency(self.settings.idempotency_ttl_s)
        if forgotten:
            log.info("%s: forgot %d idempotency key(s)", self.name, forgotten)
        reopened = self.store.reopen_stalled_completions(STALLED_COMPLETION_S)
        if reopened:
            log.info("%s: reopened %d stalled upload completion(s)", self.name, len(reopened))

    def _scan(self) -> None:
        self._housekeeping()
        # Jobs cancelled through any replica (or a peer process) while in flight here.
        for job_id, status in self.store.statuses(list(self._in_flight)).items():
            f = self._in_flight[job_id]
            if status == JobStatus.CANCELLED.value and not f.cancelled:
                f.cancelled = True
                ray.cancel(f.ref, force=False)
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return
        for claim in self.store.claim_queued(self.name, room):
            memory = claim.memory_bytes or self.admission.cap()  # rows of older versions: the largest
            spec = JobSpec(
                claim.job_id,
                claim.attempt,
                claim.pointcloud_id,
                claim.blob_key,
                claim.algorithm,
                claim.params,
                memory,
                claim.kind,
            )
            try:
                landmarks = get_algorithm(claim.algorithm).parse(claim.params).landmark_count() is not None
                options = job_task_options(self.settings, claim.job_id, landmarks, memory)
                ref = JobTask.options(**options).remote(self.settings, spec)
            except Exception:
                self.store.release(claim.job_id, claim.attempt)
                raise
            self._in_flight[claim.job_id] = _InFlight(claim.job_id, claim.attempt, ref, memory)
