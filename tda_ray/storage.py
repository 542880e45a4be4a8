"""Durable state of the service: job records in SQL, arrays as blobs.

Records (point clouds, jobs, results, the Kafka outbox) live in a SQLAlchemy
database, SQLite by default.  Arrays (uploaded clouds, result diagrams) are
``.npy``/``.npz`` blobs under a storage root reached through ``pyarrow.fs``, a
local folder or any pyarrow URI (``s3://bucket/prefix``) so that several nodes
share them.  Nothing is ever pickled: blobs are written and read with
``allow_pickle=False``.

Every write a job task makes is *fenced* by the job's ``attempt`` number and
status (``UPDATE ... WHERE attempt = :a AND status = 'running'``): a task left
over from an earlier dispatch, or one whose job was cancelled, can never
overwrite the record.
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.fs as pafs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from tda_ray.settings import Settings

ID_RE = re.compile(r"^[0-9a-f]{32}$")

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE_STATUSES = (QUEUED, RUNNING)
TERMINAL_STATUSES = (SUCCEEDED, FAILED, CANCELLED)
ALL_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES


class NotFound(LookupError):
    """An id that names nothing (or is not a valid id at all)."""


class Conflict(RuntimeError):
    """The request does not fit the record's current state (e.g. cancelling a finished job)."""


def new_id() -> str:
    return uuid.uuid4().hex


def is_valid_id(value: str) -> bool:
    return bool(ID_RE.fullmatch(value))


def _check_id(value: str, what: str) -> str:
    # Ids end up in blob paths: only our own uuid4-hex shape may get that far.
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise NotFound(f"{what} {value!r} not found")
    return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, also on SQLite (which stores them naive)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = sa.MetaData()

pointclouds = sa.Table(
    "pointclouds",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("n_points", sa.Integer, nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("blob_key", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Upload sessions: a large cloud sent as numbered parts (each one bounded request), assembled on completion.
# The parts are blobs under upload-sessions/<id>/; the row says what became of the session.
uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # open | completing | completed | aborted
    sa.Column("pointcloud_id", sa.String(32), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pointcloud_id", sa.String(32), sa.ForeignKey("pointclouds.id"), nullable=False),
    sa.Column("algorithm", sa.String(64), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Dispatch fence: bumped on every dispatch; tasks write only while it matches.
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    # Task starts, Ray retries after a worker death included.
    sa.Column("runs", sa.Integer, nullable=False, default=0),
    # Dispatcher that claimed the job (NULL: free to claim).
    sa.Column("dispatcher", sa.String(64), nullable=True),
    sa.Column("worker_pid", sa.Integer, nullable=True),
    sa.Column("worker_node", sa.String(64), nullable=True),
)

results = sa.Table(
    "results",
    metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("blob_key", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Transactional outbox: a row is written in the same transaction that records
# a job's result, so a consumer (the Kafka sink) never misses or invents one.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("published_at", UTCDateTime, nullable=True, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class PointCloudRecord:
    id: str
    name: str | None
    n_points: int
    dim: int
    source: str
    created_at: datetime


@dataclass(frozen=True)
class UploadRecord:
    id: str
    name: str | None
    status: str
    pointcloud_id: str | None
    created_at: datetime
    parts: list[tuple[int, int]]  # (part number, bytes) of the parts received so far


@dataclass(frozen=True)
class JobRecord:
    id: str
    pointcloud_id: str
    algorithm: str
    params: dict[str, Any]
    status: str
    progress: float
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    attempt: int
    runs: int
    dispatcher: str | None
    worker_pid: int | None
    worker_node: str | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class ResultRecord:
    job_id: str
    summary: dict[str, Any]
    diagrams: list[npt.NDArray[np.float64]]
    created_at: datetime


@dataclass(frozen=True)
class OutboxRow:
    job_id: str
    created_at: datetime
    published_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class Claim:
    """A job handed to one dispatcher for one dispatch (``attempt``)."""

    job_id: str
    attempt: int
    pointcloud_id: str
    algorithm: str
    params: dict[str, Any]


class BlobWriter:
    """One blob written piece by piece (a streamed upload); readers see it only after :meth:`commit`."""

    def __init__(self, fs: pafs.FileSystem, path: str, local: bool) -> None:
        self._fs, self._path = fs, path
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        # Local files are written under a temporary name and renamed; object stores publish a PUT atomically.
        self._tmp = f"{path}.tmp-{uuid.uuid4().hex}" if local else path
        self._out = fs.open_output_stream(self._tmp)
        self.size = 0
        self.head = b""  # the first bytes, for format sniffing

    def write(self, data: bytes) -> None:
        if len(self.head) < 16:
            self.head += data[: 16 - len(self.head)]
        self._out.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self._out.close()
        if self._tmp != self._path:
            self._fs.move(self._tmp, self._path)

    def abort(self) -> None:
        with suppress(Exception):
            self._out.close()
        with suppress(Exception):
            self._fs.delete_file(self._tmp)


class BlobStore:
    """Bytes under a storage root, through pyarrow's filesystem layer."""

    def __init__(self, root: str) -> None:
        if "://" in root:
            fs, base = pafs.FileSystem.from_uri(root)
        else:
            fs, base = pafs.LocalFileSystem(), os.path.abspath(root)
        self.fs: pafs.FileSystem = fs
        self.base = base.rstrip("/")
        self._local = fs.type_name == "local"
        self._scheme = root.split("://", 1)[0] if "://" in root and not self._local else None
        self.fs.create_dir(self.base, recursive=True)

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def uri(self, key: str) -> str:
        """Where other processes and nodes read the blob: a local path or a ``scheme://`` URI."""
        return self._path(key) if self._scheme is None else f"{self._scheme}://{self._path(key)}"

    def writer(self, key: str) -> BlobWriter:
        return BlobWriter(self.fs, self._path(key), self._local)

    def put(self, key: str, data: bytes) -> None:
        w = self.writer(key)
        try:
            w.write(data)
            w.commit()
        except BaseException:
            w.abort()
            raise

    def get(self, key: str) -> bytes:
        with self.fs.open_input_stream(self._path(key)) as f:
            return bytes(f.readall())

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of the blobs under ``prefix`` (a folder key), sorted by key."""
        sel = pafs.FileSelector(self._path(prefix), allow_not_found=True)
        out = [
            (info.path[len(self.base) + 1 :], int(info.size or 0))
            for info in self.fs.get_file_info(sel)
            if info.type == pafs.FileType.File
        ]
        return sorted(out)

    def chunks(self, key: str, size: int = 4 * 1024 * 1024) -> Iterator[bytes]:
        with self.fs.open_input_stream(self._path(key)) as f:
            while chunk := f.read(size):
                yield bytes(chunk)

    def delete_dir(self, prefix: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.delete_dir(self._path(prefix))

    def rename(self, key: str, new_key: str) -> None:
        self.fs.move(self._path(key), self._path(new_key))

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.delete_file(self._path(key))

    def ping(self) -> None:
        self.fs.get_file_info(self.base)


def npy_bytes(arr: npt.NDArray[Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Write transactions take the write lock up front: a deferred transaction
        # that reads first and then writes fails at once with SQLITE_BUSY under WAL.
        immediate = conn.get_execution_options().get("tda_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_ENGINES: dict[str, Engine] = {}


def _engine_for(url: str) -> Engine:
    # One engine (connection pool) per URL per process: worker processes run many tasks.
    eng = _ENGINES.get(url)
    if eng is None:
        if url.startswith("sqlite"):
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            eng = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _configure_sqlite(eng)
        else:
            eng = sa.create_engine(url, pool_pre_ping=True)
        _ENGINES[url] = eng
    return eng


def _pc_record(row: Any) -> PointCloudRecord:
    return PointCloudRecord(
        id=row.id, name=row.name, n_points=row.n_points, dim=row.dim, source=row.source, created_at=row.created_at
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
    )


class Store:
    """Job store: SQL records plus blobs.  Safe to use from many processes at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = _engine_for(settings.database_url)
        self.blobs = BlobStore(settings.storage_root)
        self._create_schema()

    def _create_schema(self) -> None:
        # Several processes may start at once; a lost "CREATE TABLE" race is harmless.
        for delay in (0.05, 0.2, 0.5, 1.0, None):
            try:
                metadata.create_all(self.engine)
                return
            except OperationalError:
                if delay is None:
                    raise
                time.sleep(delay)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(tda_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))
        self.blobs.ping()

    # --- point clouds ------------------------------------------------------
    def create_pointcloud(self, points: npt.NDArray[np.float64], *, name: str | None, source: str) -> PointCloudRecord:
        pc_id = new_id()
        key = f"pointclouds/{pc_id}.npy"
        self.blobs.put(key, npy_bytes(np.ascontiguousarray(points, dtype=np.float64)))
        return self._register_pointcloud(pc_id, key, int(points.shape[0]), int(points.shape[1]), name, source)

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
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f8")), "fortran_order": False}
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, {**header, "shape": (n_points, dim)})
            w.write(buf.getvalue())
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
        self, pc_id: str, key: str, n_points: int, dim: int, name: str | None, source: str
    ) -> PointCloudRecord:
        rec = PointCloudRecord(id=pc_id, name=name, n_points=n_points, dim=dim, source=source, created_at=utcnow())
        with self._write() as conn:
            conn.execute(
                pointclouds.insert().values(
                    id=rec.id,
                    name=rec.name,
                    n_points=rec.n_points,
                    dim=rec.dim,
                    source=rec.source,
                    blob_key=key,
                    created_at=rec.created_at,
                )
            )
        return rec

    def pointcloud_uri(self, pointcloud_id: str) -> str:
        """Path or URI of a cloud's ``.npy`` blob, for readers that stream it (Ray Data in landmark jobs)."""
        return self.blobs.uri(self._pointcloud_key(pointcloud_id))

    def _pointcloud_key(self, pointcloud_id: str) -> str:
        _check_id(pointcloud_id, "point cloud")
        with self._read() as conn:
            key = conn.execute(sa.select(pointclouds.c.blob_key).where(pointclouds.c.id == pointcloud_id)).scalar()
        if key is None:
            raise NotFound(f"point cloud {pointcloud_id!r} not found")
        return str(key)

    def get_pointcloud(self, pointcloud_id: str) -> PointCloudRecord:
        _check_id(pointcloud_id, "point cloud")
        with self._read() as conn:
            row = conn.execute(sa.select(pointclouds).where(pointclouds.c.id == pointcloud_id)).first()
        if row is None:
            raise NotFound(f"point cloud {pointcloud_id!r} not found")
        return _pc_record(row)

    def load_points(self, pointcloud_id: str) -> npt.NDArray[np.float64]:
        arr = np.load(io.BytesIO(self.blobs.get(self._pointcloud_key(pointcloud_id))), allow_pickle=False)
        return np.asarray(arr, dtype=np.float64)

    # --- upload sessions ------------------------------------------------------
    PART_RE = re.compile(r"^\d{8}\.part$")

    def create_upload(self, name: str | None) -> UploadRecord:
        now = utcnow()
        up_id = new_id()
        with self._write() as conn:
            conn.execute(
                uploads.insert().values(
                    id=up_id, name=name, status="open", pointcloud_id=None, created_at=now, updated_at=now
                )
            )
        return UploadRecord(up_id, name, "open", None, now, [])

    def get_upload(self, upload_id: str) -> UploadRecord:
        _check_id(upload_id, "upload")
        with self._read() as conn:
            row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()
        if row is None:
            raise NotFound(f"upload {upload_id!r} not found")
        parts = []
        if row.status in ("open", "completing"):
            for key, size in self.blobs.list(f"upload-sessions/{upload_id}"):
                leaf = key.rsplit("/", 1)[-1]
                if self.PART_RE.match(leaf):
                    parts.append((int(leaf[:8]), size))
        return UploadRecord(row.id, row.name, row.status, row.pointcloud_id, row.created_at, parts)

    def put_upload_part(self, upload_id: str, part: int, data: bytes) -> None:
        """Store (or replace: a retried part) one part of an open session; marks the session active."""
        self.get_upload(upload_id)  # 404 for unknown ids
        if not self._touch_upload(upload_id):
            raise Conflict(f"upload {upload_id} is no longer open")
        key = f"upload-sessions/{upload_id}/{part:08d}.part"
        self.blobs.put(key, data)
        if self.get_upload(upload_id).status not in ("open", "completing"):  # expired or aborted meanwhile
            self.blobs.delete(key)
            raise Conflict(f"upload {upload_id} is no longer open")

    def _touch_upload(self, upload_id: str) -> bool:
        with self._write() as conn:
            res = conn.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.status == "open")
                .values(updated_at=utcnow())
            )
        return bool(res.rowcount == 1)

    def expire_uploads(self, idle_s: float) -> list[str]:
        """Abort open sessions with no part for ``idle_s`` seconds (their parts are deleted); their ids."""
        cutoff = utcnow() - timedelta(seconds=idle_s)
        with self._read() as conn:
            ids = conn.execute(
                sa.select(uploads.c.id).where(uploads.c.status == "open", uploads.c.updated_at < cutoff)
            ).scalars()
            stale = [str(i) for i in ids]
        return [i for i in stale if self.set_upload_status(i, "aborted", expect=("open",))]

    def upload_part_chunks(self, upload_id: str, part: int) -> Iterator[bytes]:
        return self.blobs.chunks(f"upload-sessions/{upload_id}/{part:08d}.part")

    def set_upload_status(
        self, upload_id: str, status: str, *, expect: tuple[str, ...], pointcloud_id: str | None = None
    ) -> bool:
        """Move a session to ``status`` if it is in one of ``expect`` (a compare-and-set: one completer wins)."""
        with self._write() as conn:
            res = conn.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.status.in_(expect))
                .values(status=status, pointcloud_id=pointcloud_id, updated_at=utcnow())
            )
        if status in ("completed", "aborted") and res.rowcount == 1:
            self.blobs.delete_dir(f"upload-sessions/{upload_id}")
        return bool(res.rowcount == 1)

    # --- jobs: API side ------------------------------------------------------
    def create_job(self, pointcloud_id: str, algorithm: str, params: dict[str, Any]) -> JobRecord:
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
                    status=QUEUED,
                    progress=0.0,
                    created_at=now,
                    updated_at=now,
                    attempt=0,
                    runs=0,
                )
            )
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> JobRecord:
        _check_id(job_id, "job")
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
        _check_id(job_id, "job")
        now = utcnow()
        with self._write() as conn:
            res = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status.in_(ACTIVE_STATUSES))
                .values(status=CANCELLED, finished_at=now, updated_at=now, error="cancelled by request")
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
                .values(status=QUEUED, dispatcher=None, progress=0.0, started_at=None, updated_at=now)
            )
            return int(res.rowcount)

    def claim_queued(self, dispatcher: str, limit: int) -> list[Claim]:
        """Atomically take up to ``limit`` unclaimed queued jobs, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.status == QUEUED, jobs.c.dispatcher.is_(None))
                .order_by(jobs.c.created_at)
                .limit(limit)
            ).all()
        claims: list[Claim] = []
        for (job_id,) in rows:
            with self._write() as conn:
                res = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.status == QUEUED, jobs.c.dispatcher.is_(None))
                    .values(dispatcher=dispatcher, attempt=jobs.c.attempt + 1, updated_at=utcnow())
                )
                if res.rowcount != 1:
                    continue  # someone else got it, or it was cancelled
                row = conn.execute(
                    sa.select(jobs.c.attempt, jobs.c.pointcloud_id, jobs.c.algorithm, jobs.c.params).where(
                        jobs.c.id == job_id
                    )
                ).one()
            claims.append(Claim(job_id, row.attempt, row.pointcloud_id, row.algorithm, dict(row.params)))
        return claims

    def release(self, job_id: str, attempt: int) -> None:
        """Give a claimed but not launched job back to the queue."""
        with self._write() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == QUEUED)
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
                    status=RUNNING,
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
        cond = (jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == RUNNING)
        if progress is None:
            with self._read() as conn:
                return conn.execute(sa.select(jobs.c.id).where(*cond)).first() is not None
        with self._write() as conn:
            res = conn.execute(
                jobs.update().where(*cond).values(progress=min(max(progress, 0.0), 1.0), updated_at=utcnow())
            )
            return res.rowcount == 1

    def save_result_blob(self, job_id: str, attempt: int, diagrams: list[npt.NDArray[np.float64]]) -> str:
        _check_id(job_id, "job")
        key = f"results/{job_id}-{attempt}.npz"
        buf = io.BytesIO()
        np.savez(buf, *[np.asarray(d, dtype=np.float64) for d in diagrams])  # arr_0 = H0, arr_1 = H1, ...
        self.blobs.put(key, buf.getvalue())
        return key

    def finish_success(self, job_id: str, attempt: int, summary: dict[str, Any], blob_key: str) -> bool:
        """Record the result, the job's success and its outbox row in one transaction."""
        now = utcnow()
        try:
            with self._write() as conn:
                res = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == RUNNING)
                    .values(status=SUCCEEDED, progress=1.0, finished_at=now, updated_at=now, error=None)
                )
                if res.rowcount != 1:
                    raise _Fenced
                conn.execute(results.insert().values(job_id=job_id, summary=summary, blob_key=blob_key, created_at=now))
                conn.execute(outbox.insert().values(job_id=job_id, created_at=now, published_at=None, attempts=0))
        except (_Fenced, IntegrityError):
            self.blobs.delete(blob_key)
            return False
        return True

    def finish_failure(self, job_id: str, attempt: int, error: str) -> bool:
        now = utcnow()
        with self._write() as conn:
            res = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status.in_(ACTIVE_STATUSES))
                .values(status=FAILED, finished_at=now, updated_at=now, error=error[:4000])
            )
            return res.rowcount == 1

    # --- results -----------------------------------------------------------
    def get_result(self, job_id: str) -> ResultRecord:
        """The result of a succeeded job; NotFound for unknown ids, Conflict while not succeeded."""
        job = self.get_job(job_id)
        with self._read() as conn:
            row = conn.execute(sa.select(results).where(results.c.job_id == job_id)).first()
        if row is None:
            if job.status == SUCCEEDED:  # pragma: no cover - written in one transaction with the status
                raise NotFound(f"result of job {job_id!r} not found")
            raise Conflict(_not_finished_message(job))
        npz = np.load(io.BytesIO(self.blobs.get(row.blob_key)), allow_pickle=False)
        n_dims = len(npz.files)
        diagrams = [np.asarray(npz[f"arr_{k}"], dtype=np.float64).reshape(-1, 2) for k in range(n_dims)]
        return ResultRecord(job_id=job_id, summary=dict(row.summary), diagrams=diagrams, created_at=row.created_at)

    # --- outbox (drained by the Kafka sink) ------------------------------------
    def pending_outbox(self, limit: int = 100) -> list[OutboxRow]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.created_at).limit(limit)
            ).all()
        return [OutboxRow(r.job_id, r.created_at, r.published_at, r.attempts, r.last_error) for r in rows]

    def mark_outbox_published(self, job_id: str) -> bool:
        with self._write() as conn:
            res = conn.execute(
                outbox.update()
                .where(outbox.c.job_id == job_id, outbox.c.published_at.is_(None))
                .values(published_at=utcnow(), attempts=outbox.c.attempts + 1, last_error=None)
            )
            return res.rowcount == 1

    def mark_outbox_failed(self, job_id: str, error: str) -> None:
        with self._write() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.job_id == job_id, outbox.c.published_at.is_(None))
                .values(attempts=outbox.c.attempts + 1, last_error=error[:4000])
            )


class _Fenced(Exception):
    pass


def _not_finished_message(job: JobRecord) -> str:
    if job.status == FAILED:
        return f"job {job.id} failed: {job.error}"
    if job.status == CANCELLED:
        return f"job {job.id} was cancelled; it has no result"
    return f"job {job.id} is {job.status} (progress {job.progress:.0%}); its result is not ready yet"
