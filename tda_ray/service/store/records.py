"""What the store holds, as typed records: point clouds, upload sessions, jobs, results, outbox rows."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "TERMINAL_STATUSES",
    "Claim",
    "Conflict",
    "IdempotencyMismatch",
    "IdempotentAnswer",
    "InProgress",
    "JobRecord",
    "JobStatus",
    "NotFound",
    "OutboxRow",
    "PointCloudRecord",
    "ResultRecord",
    "UploadRecord",
    "UploadStatus",
    "check_id",
    "is_valid_id",
    "new_id",
    "utcnow",
]

ID_RE = re.compile(r"^[0-9a-f]{32}$")


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class UploadStatus(str, Enum):
    OPEN = "open"
    COMPLETING = "completing"
    COMPLETED = "completed"
    ABORTED = "aborted"


ACTIVE_STATUSES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
TERMINAL_STATUSES = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)
ALL_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES


class NotFound(LookupError):
    """An id that names nothing (or is not a valid id at all)."""


class Conflict(RuntimeError):
    """The request does not fit the record's current state (e.g. cancelling a finished job)."""


class InProgress(Conflict):
    """The first request with an idempotency key is still running (HTTP 409 with Retry-After)."""


class IdempotencyMismatch(ValueError):
    """An idempotency key presented with a request other than the one it was first used with."""


def new_id() -> str:
    return uuid.uuid4().hex


def is_valid_id(value: str) -> bool:
    return bool(ID_RE.fullmatch(value))


def check_id(value: str, what: str) -> str:
    # Ids end up in blob paths: only our own uuid4-hex shape may get that far.
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise NotFound(f"{what} {value!r} not found")
    return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class PointCloudRecord:
    id: str
    name: str | None
    n_points: int
    dim: int
    source: str
    created_at: datetime
    kind: str = "points"  # or "distance_matrix": a square matrix of distances between n points
    shape: tuple[int, ...] | None = None  # a volume's (depth, rows, columns); None: (n_points, dim)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """The stored array's shape."""
        return self.shape or (self.n_points, self.dim)


@dataclass(frozen=True)
class UploadRecord:
    id: str
    name: str | None
    status: UploadStatus
    pointcloud_id: str | None
    created_at: datetime
    parts: list[tuple[int, int]]  # (part number, bytes) of the parts received so far
    error: str | None = None  # why the last completion failed (the session is open again)

    @property
    def received_bytes(self) -> int:
        return sum(size for _, size in self.parts)


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
    memory_bytes: int | None = None  # reserved on its node (None: rows of older versions)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class ResultRecord:
    job_id: str
    summary: dict[str, Any]
    diagrams: list[npt.NDArray[np.float64]]
    created_at: datetime
    # Per dimension, one (k, d + 2) int64 array per pair; None when the job did not ask for cocycles.
    cocycles: list[list[npt.NDArray[np.int64]]] | None = None


@dataclass(frozen=True)
class OutboxRow:
    job_id: str
    created_at: datetime
    published_at: datetime | None
    attempts: int
    last_error: str | None
    message: dict[str, Any] | None  # the Kafka message, built with the result (None: rows of older versions)


@dataclass(frozen=True)
class Claim:
    """A job handed to one dispatcher for one dispatch (``attempt``)."""

    job_id: str
    attempt: int
    pointcloud_id: str
    algorithm: str
    params: dict[str, Any]
    blob_key: str  # where the job's cloud is stored
    memory_bytes: int | None = None  # what the job reserves on its node (None: rows of older versions)
    kind: str = "points"  # what the stored array is (PointCloudRecord.kind)


@dataclass(frozen=True)
class IdempotentAnswer:
    """The stored answer of a request made with an idempotency key."""

    status_code: int
    body: str  # JSON
