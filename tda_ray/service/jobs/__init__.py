"""The jobs layer: the only code that calls the engine and the store for the service.

* :class:`~.service.JobService` — what the HTTP routes call (point clouds, jobs, results, events, health),
  with :class:`~.uploads.UploadService` for clouds that arrive in pieces.
* :class:`~.dispatcher.Dispatcher` — queued job records -> Ray tasks (one per deployment).
* :func:`~.task.run_job` — the Ray task of one job.
* :func:`~.outbox.open_outbox` — the outbox as the Kafka sink sees it.
"""

from tda_ray.service.jobs.errors import Conflict, EventsUnavailable, InvalidRequest, NotFound, PayloadTooLarge

# The records the jobs layer hands out (the HTTP layer renders them; it never reads the store itself).
from tda_ray.service.store import (
    ALL_STATUSES,
    IdempotentAnswer,
    InProgress,
    JobRecord,
    PointCloudRecord,
    UploadRecord,
)

__all__ = [
    "ALL_STATUSES",
    "Conflict",
    "EventsUnavailable",
    "IdempotentAnswer",
    "InProgress",
    "InvalidRequest",
    "JobRecord",
    "NotFound",
    "PayloadTooLarge",
    "PointCloudRecord",
    "UploadRecord",
]
