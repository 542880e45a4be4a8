"""Durable state of the service: job records in SQL, arrays as blobs.

Records (point clouds, upload sessions, jobs, results, the Kafka outbox) live in a SQLAlchemy database,
SQLite by default.  Arrays (uploaded clouds, result diagrams) are ``.npy``/``.npz`` blobs under a storage
root (:mod:`~tda_ray.service.store.blobs`).  Nothing is ever pickled: blobs are written and read with
``allow_pickle=False``.

Every write a job task makes is *fenced* by the job's ``attempt`` number and status (``UPDATE ... WHERE
attempt = :a AND status = 'running'``): a task left over from an earlier dispatch, or one whose job was
cancelled, can never overwrite the record.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tda_ray.io.npy import npy_bytes, npy_header_bytes
from tda_ray.service.store.idempotency import IdempotencyKeys
from tda_ray.service.store.outbox import Outbox
from tda_ray.service.store.records import (
    ACTIVE_STATUSES,
    Claim,
    Conflict,
    JobRecord,
    JobStatus,
    NotFound,
    PointCloudRecord,
    ResultRecord,
    check_id,
    new_id,
    utcnow,
)
from tda_ray.service.store.streams import StreamRecords
from tda_ray.service.store.tables import jobs, outbox, pointclouds, results
from tda_ray.service.store.uploads import UploadSessions

__all__ = ["Store"]


def _pc_record(row: Any) -> PointCloudRecord:
    return PointCloudRecord(
        id=row.id,
        name=row.name,
        n_points=row.n_points,
        dim=row.dim,
        source=row.source,
        created_at=row.created_at,
        kind=row.kind or "points",
        shape=tuple(row.shape) if row.shape else None,
    )


def _job_record(row: Any) -> JobRecord:
    return JobRecord(
        id=row.id,
        pointcloud_id=row.pointcloud_id,
        algorithm=row.algorithm,
        params=dict(row.params),
        status=row.status,
        progress=float(row.progress),
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        attempt=row.attempt,
        runs=row.runs,
        dispatcher=row.dispatcher,
        worker_pid=row.worker_pid,
        worker_node=row.worker_node,
        memory_bytes=row.memory_bytes,
    )


class Store(UploadSessions, StreamRecords, IdempotencyKeys, Outbox):
    """Job store: SQL records plus blobs.  Safe to use from many processes at once.

    Each owner (the ingress' job service, the dispatcher, the Kafka sink, a job task) holds its own
    store and so its own connection pool; ``create_schema=False`` skips the schema check for short-lived
    owners, whose deployment created the schema already.
    """

    # --- point clouds ------------------------------------------------------
    def create_pointcloud(
        self,
        points: npt.NDArray[np.float64],
        *,
        name: str | None,
        source: str,
        kind: str = "points",
        n_points: int | None = None,
    ) -> PointCloudRecord:
        """Store an array; ``n_points`` (default: its rows) and ``dim`` (its columns) go into the record (a
        graph's edge list counts its vertices; a 3-D volume's rows are its slices' rows, its shape is kept)."""
        pc_id = new_id()
        key = f"pointclouds/{pc_id}.npy"
        self.blobs.put(key, npy_bytes(np.ascontiguousarray(points, dtype=np.float64)))
        shape = tuple(int(x) for x in points.shape)
        rows = int(np.prod(shape[:-1]))
        n = rows if n_points is None else n_points
        return self._register_pointcloud(
            # Kept where (n_points, dim) does not say it: a volume, or a graph's edge list (rows: edges).
            pc_id,
            key,
            n,
            shape[-1],
            name,
            source,
            kind,
            shape=shape if len(shape) != 2 or n != rows else None,
        )

    def create_pointcloud_from_blocks(
        self, blocks: Iterable[npt.NDArray[np.float64]], *, n_points: int, dim: int, name: str | None, source: str
    ) -> PointCloudRecord:
        """Store a cloud given block by block (never whole in memory) as one float64 row-major ``.npy``.

        ``n_points``/``dim`` are announced up front (they go into the header); blocks that disagree with
        them raise ``ValueError`` and nothing is recorded.
        """
        pc_id = new_id()
        key = f"pointclouds/{pc_id}.npy"
        w = self.blobs.writer(key)
        try:
            w.write(npy_header_bytes(n_points, dim))
            rows = 0
            for block in blocks:
                if block.ndim != 2 or block.shape[1] != dim:
                    raise ValueError(f"a block of shape {block.shape} does not match {dim} coordinates per point")
                rows += block.shape[0]
                if rows > n_points:
                    break
                w.write(np.ascontiguousarray(block, dtype="<f8").tobytes())
            if rows != n_points:
                raise ValueError(f"the data holds {rows}{'+' if rows > n_points else ''} points, its header {n_points}")
            w.commit()
        except BaseException:
            w.abort()
            raise
        return self._register_pointcloud(pc_id, key, n_points, dim, name, source)

    def _register_pointcloud(
        self,
        pc_id: str,
        key: str,
        n_points: int,
        dim: int,
        name: str | None,
        source: str,
        kind: str = "points",
        shape: tuple[int, ...] | None = None,
    ) -> PointCloudRecord:
        rec = PointCloudRecord(
            id=pc_id, name=name, n_points=n_points, dim=dim, source=source, created_at=utcnow(), kind=kind, shape=shape
        )
        with self._write() as conn:
            conn.execute(
                pointclouds.insert().values(
                    id=rec.id,
                    name=rec.name,
                    n_points=rec.n_points,
                    dim=rec.dim,
                    source=rec.source,
                    blob_key=key,
                    kind=rec.kind,
                    shape=list(shape) if shape else None,
                    created_at=rec.created_at,
                )
            )
        return rec

    def pointcloud_uri(self, pointcloud_id: str) -> str:
        """Path or URI of a cloud's ``.npy`` blob, for readers that stream it (Ray Data in landmark jobs)."""
        return self.blobs.uri(self._pointcloud_key(pointcloud_id))

    def _pointcloud_key(self, pointcloud_id: str) -> str:
        check_id(pointcloud_id, "point cloud")
        with self._read() as conn:
            key = conn.execute(sa.select(pointclouds.c.blob_key).where(pointclouds.c.id == pointcloud_id)).scalar()
        if key is None:
            raise NotFound(f"point cloud {pointcloud_id!r} not found")
        return str(key)

    def get_pointcloud(self, pointcloud_id: str) -> PointCloudRecord:
        check_id(pointcloud_id, "point cloud")
        with self._read() as conn:
            row = conn.execute(sa.select(pointclouds).where(pointclouds.c.id == pointcloud_id)).first()
        if row is None:
            raise NotFound(f"point cloud {pointcloud_id!r} not found")
        return _pc_record(row)

    def list_pointclouds(self, *, limit: int = 50, offset: int = 0) -> tuple[list[PointCloudRecord], int]:
        """A page of the point clouds, newest first (id breaks ties, so pages never overlap), and the total."""
        q = (
            sa.select(pointclouds)
            .order_by(pointclouds.c.created_at.desc(), pointclouds.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self._read() as conn:
            rows = conn.execute(q).all()
            total = int(conn.execute(sa.select(sa.func.count()).select_from(pointclouds)).scalar_one())
        return [_pc_record(r) for r in rows], total

    def load_points(self, pointcloud_id: str) -> npt.NDArray[np.float64]:
        arr = np.load(io.BytesIO(self.blobs.get(self._pointcloud_key(pointcloud_id))), allow_pickle=False)
        return np.asarray(arr, dtype=np.float64)

    # --- jobs: API side ------------------------------------------------------
    def create_job(
        self, pointcloud_id: str, algorithm: str, params: dict[str, Any], memory_bytes: int | None = None
    ) -> JobRecord:
        self.get_pointcloud(pointcloud_id)
        now = utcnow()
        job_id = new_id()
        with self._write() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    pointcloud_id=pointcloud_id,
                    algorithm=algorithm,
                    params=params,
                    status=JobStatus.QUEUED.value,
                    progress=0.0,
                    created_at=now,
                    updated_at=now,
                    attempt=0,
                    runs=0,
                    memory_bytes=memory_bytes,
                )
            )
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> JobRecord:
        check_id(job_id, "job")
        with self._read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return _job_record(row)

    def list_jobs(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[JobRecord], int]:
        q = sa.select(jobs)
        count = sa.select(sa.func.count()).select_from(jobs)
        if status is not None:
            q = q.where(jobs.c.status == status)
            count = count.where(jobs.c.status == status)
        q = q.order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit).offset(offset)
        with self._read() as conn:
            rows = conn.execute(q).all()
            total = int(conn.execute(count).scalar_one())
        return [_job_record(r) for r in rows], total

    def cancel_job(self, job_id: str) -> JobRecord:
        """Mark a queued or running job cancelled; the running task notices and stops."""
        check_id(job_id, "job")
        now = utcnow()
        with self._write() as conn:
            res = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status.in_(ACTIVE_STATUSES))
                .values(status=JobStatus.CANCELLED.value, finished_at=now, updated_at=now, error="cancelled by request")
            )
            changed = res.rowcount
        job = self.get_job(job_id)
        if not changed:
            raise Conflict(f"job {job_id} is already {job.status}; only queued or running jobs can be cancelled")
        return job

    def statuses(self, job_ids: list[str]) -> dict[str, str]:
        if not job_ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(sa.select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(job_ids))).all()
        return {r.id: r.status for r in rows}

    # --- jobs: dispatcher side ---------------------------------------------
    def recover(self) -> int:
        """Free every unfinished job for re-dispatch (called when the single dispatcher starts).

        Jobs left ``running`` belonged to a dispatcher that is gone (its tasks die
        with it, and the attempt fence stops any straggler), so they run again.
        """
        now = utcnow()
        with self._write() as conn:
            res = conn.execute(
                jobs.update()
                .where(jobs.c.status.in_(ACTIVE_STATUSES))
                .values(status=JobStatus.QUEUED.value, dispatcher=None, progress=0.0, started_at=None, updated_at=now)
            )
            return int(res.rowcount)

    def claim_queued(self, dispatcher: str, limit: int) -> list[Claim]:
        """Atomically take up to ``limit`` unclaimed queued jobs, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.dispatcher.is_(None))
                .order_by(jobs.c.created_at)
                .limit(limit)
            ).all()
        claims: list[Claim] = []
        for (job_id,) in rows:
            with self._write() as conn:
                res = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value, jobs.c.dispatcher.is_(None))
                    .values(dispatcher=dispatcher, attempt=jobs.c.attempt + 1, updated_at=utcnow())
                )
                if res.rowcount != 1:
                    continue  # someone else got it, or it was cancelled
                row = conn.execute(
                    sa.select(
                        jobs.c.attempt,
                        jobs.c.pointcloud_id,
                        jobs.c.algorithm,
                        jobs.c.params,
                        jobs.c.memory_bytes,
                        pointclouds.c.blob_key,
                        pointclouds.c.kind,
                    )
                    .join(pointclouds, pointclouds.c.id == jobs.c.pointcloud_id)
                    .where(jobs.c.id == job_id)
                ).one()
            claims.append(
                Claim(
                    job_id,
                    row.attempt,
                    row.pointcloud_id,
                    row.algorithm,
                    dict(row.params),
                    str(row.blob_key),
                    row.memory_bytes,
                    row.kind or "points",
                )
            )
        return claims

    def release(self, job_id: str, attempt: int) -> None:
        """Give a claimed but not launched job back to the queue."""
        with self._write() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == JobStatus.QUEUED.value)
                .values(dispatcher=None, updated_at=utcnow())
            )

    # --- jobs: task side (all fenced by attempt) --------------------------------
    def start_run(self, job_id: str, attempt: int, *, pid: int, node: str | None) -> bool:
        """Move the job to running for this attempt; False if it was cancelled or re-dispatched."""
        now = utcnow()
        with self._write() as conn:
            res = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status.in_(ACTIVE_STATUSES))
                .values(
                    status=JobStatus.RUNNING.value,
                    started_at=now,
                    updated_at=now,
                    progress=0.0,
                    runs=jobs.c.runs + 1,
                    worker_pid=pid,
                    worker_node=node,
                )
            )
            return res.rowcount == 1

    def heartbeat(self, job_id: str, attempt: int, progress: float | None) -> bool:
        """Record progress; False once the job is no longer ours to run (cancelled, re-dispatched)."""
        cond = (jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == JobStatus.RUNNING.value)
        if progress is None:
            with self._read() as conn:
                return conn.execute(sa.select(jobs.c.id).where(*cond)).first() is not None
        with self._write() as conn:
            res = conn.execute(
                jobs.update().where(*cond).values(progress=min(max(progress, 0.0), 1.0), updated_at=utcnow())
            )
            return res.rowcount == 1

    def save_result_blob(
        self,
        job_id: str,
        attempt: int,
        diagrams: list[npt.NDArray[np.float64]],
        cocycles: list[list[npt.NDArray[np.int64]]] | None = None,
    ) -> str:
        check_id(job_id, "job")
        key = f"results/{job_id}-{attempt}.npz"
        arrays: dict[str, Any] = {f"arr_{k}": np.asarray(d, dtype=np.float64) for k, d in enumerate(diagrams)}
        for d, of_dim in enumerate(cocycles or []):
            # One array per dimension (rows of all its pairs) and the rows per pair: thousands of small arrays
            # in one npz would cost more than the diagrams.
            rows = [np.asarray(c, dtype=np.int64).reshape(-1, d + 2) for c in of_dim]
            arrays[f"cocycles_{d}"] = np.concatenate(rows) if rows else np.zeros((0, d + 2), dtype=np.int64)
            arrays[f"cocycle_rows_{d}"] = np.array([len(r) for r in rows], dtype=np.int64)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self.blobs.put(key, buf.getvalue())
        return key

    def finish_success(
        self,
        job_id: str,
        attempt: int,
        summary: dict[str, Any],
        blob_key: str,
        message: dict[str, Any] | None = None,
        finished_at: datetime | None = None,
    ) -> bool:
        """Record the result, the job's success and its outbox row (carrying ``message``) in one transaction."""
        now = finished_at or utcnow()
        try:
            with self._write() as conn:
                res = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == JobStatus.RUNNING.value)
                    .values(status=JobStatus.SUCCEEDED.value, progress=1.0, finished_at=now, updated_at=now, error=None)
                )
                if res.rowcount != 1:
                    raise _Fenced
                conn.execute(results.insert().values(job_id=job_id, summary=summary, blob_key=blob_key, created_at=now))
                conn.execute(
                    outbox.insert().values(
                        job_id=job_id, created_at=now, published_at=None, attempts=0, message=message
                    )
                )
        except (_Fenced, IntegrityError):
            self.blobs.delete(blob_key)
            return False
        return True

    def requeue_with_memory(self, job_id: str, attempt: int, memory_bytes: int) -> bool:
        """Queue a running job again with a larger reservation (its engine ran out of the first one)."""
        with self._write() as conn:
            res = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == JobStatus.RUNNING.value)
                .values(
                    status=JobStatus.QUEUED.value,
                    dispatcher=None,
                    progress=0.0,
                    started_at=None,
                    memory_bytes=memory_bytes,
                    updated_at=utcnow(),
                )
            )
            return res.rowcount == 1

    def finish_failure(self, job_id: str, attempt: int, error: str) -> bool:
        now = utcnow()
        with self._write() as conn:
            res = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status.in_(ACTIVE_STATUSES))
                .values(status=JobStatus.FAILED.value, finished_at=now, updated_at=now, error=error[:4000])
            )
            return res.rowcount == 1

    # --- results -----------------------------------------------------------
    def get_result(self, job_id: str) -> ResultRecord:
        """The result of a succeeded job; NotFound for unknown ids, Conflict while not succeeded."""
        job = self.get_job(job_id)
        with self._read() as conn:
            row = conn.execute(sa.select(results).where(results.c.job_id == job_id)).first()
        if row is None:
            if job.status == JobStatus.SUCCEEDED.value:  # pragma: no cover - written in one transaction with the status
                raise NotFound(f"result of job {job_id!r} not found")
            raise Conflict(_not_finished_message(job))
        npz = np.load(io.BytesIO(self.blobs.get(row.blob_key)), allow_pickle=False)
        n_dims = sum(name.startswith("arr_") for name in npz.files)
        diagrams = [np.asarray(npz[f"arr_{k}"], dtype=np.float64).reshape(-1, 2) for k in range(n_dims)]
        cocycles = None
        if "cocycles_0" in npz.files:
            cocycles = []
            for d in range(n_dims):
                rows, counts = np.asarray(npz[f"cocycles_{d}"], dtype=np.int64), npz[f"cocycle_rows_{d}"]
                cocycles.append(list(np.split(rows, np.cumsum(counts)[:-1])) if len(counts) else [])
        return ResultRecord(
            job_id=job_id, summary=dict(row.summary), diagrams=diagrams, created_at=row.created_at, cocycles=cocycles
        )


class _Fenced(Exception):
    pass


def _not_finished_message(job: JobRecord) -> str:
    if job.status == JobStatus.FAILED.value:
        return f"job {job.id} failed: {job.error}"
    if job.status == JobStatus.CANCELLED.value:
        return f"job {job.id} was cancelled; it has no result"
    return f"job {job.id} is {job.status} (progress {job.progress:.0%}); its result is not ready yet"
