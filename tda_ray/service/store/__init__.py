"""Durable state: job records in SQL (:mod:`~.store`), arrays as blobs (:mod:`~.blobs`), typed records
(:mod:`~.records`).  Only the jobs layer (:mod:`tda_ray.service.jobs`) uses it."""

from tda_ray.service.store.records import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    TERMINAL_STATUSES,
    Claim,
    Conflict,
    JobRecord,
    JobStatus,
    NotFound,
    OutboxRow,
    PointCloudRecord,
    ResultRecord,
    UploadRecord,
    UploadStatus,
    is_valid_id,
    new_id,
)
from tda_ray.service.store.store import Store

__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "TERMINAL_STATUSES",
    "Claim",
    "Conflict",
    "JobRecord",
    "JobStatus",
    "NotFound",
    "OutboxRow",
    "PointCloudRecord",
    "ResultRecord",
    "Store",
    "UploadRecord",
    "UploadStatus",
    "is_valid_id",
    "new_id",
]
