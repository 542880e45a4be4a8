"""The outbox as the Kafka sink sees it (:class:`tda_ray.service.streaming.sink.Outbox`), over the store."""

from __future__ import annotations

import logging

from tda_ray.engine.registry import get_algorithm
from tda_ray.service.settings import Settings
from tda_ray.service.store import OutboxRow, Store
from tda_ray.service.streaming.messages import DEFAULT_MAX_MESSAGE_BYTES, build_result_message
from tda_ray.service.streaming.sink import OutboxItem

__all__ = ["StoreOutbox", "open_outbox", "result_message"]

log = logging.getLogger("tda_ray.jobs")


def result_message(
    store: Store, job_id: str, summary: dict[str, object] | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> dict[str, object]:
    """The tda_feature_results message of a succeeded job, from its records (rows of older versions)."""
    job = store.get_job(job_id)
    res = store.get_result(job_id)
    summary_model = get_algorithm(job.algorithm).summary.model_validate(summary or res.summary)
    return build_result_message(
        job_id=job.id,
        pointcloud_id=job.pointcloud_id,
        algorithm=job.algorithm,
        params=job.params,
        summary=summary_model.model_dump(),
        diagrams=res.diagrams,
        finished_at=job.finished_at,
        max_bytes=max_bytes,
    )


class StoreOutbox:
    """Pending outbox rows with their messages; marks what the sink published or failed to publish."""

    def __init__(self, store: Store, max_message_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_message_bytes - 64 * 1024  # headroom for the record batch framing

    def pending(self, limit: int) -> list[OutboxItem]:
        items = []
        for row in self.store.pending_outbox(limit=limit):
            message = row.message or self._legacy(row)
            if message is not None:
                items.append(OutboxItem(row.job_id, message))
        return items

    def _legacy(self, row: OutboxRow) -> dict[str, object] | None:
        # Rows written before messages were built with the result: built once here from the records.
        try:
            return result_message(self.store, row.job_id, max_bytes=self.max_bytes)
        except Exception as exc:  # a broken row must not block the others; it stays pending
            log.error("Kafka sink: cannot build the message of job %s: %s", row.job_id, exc)
            self.store.mark_outbox_failed(row.job_id, f"build: {type(exc).__name__}: {exc}")
            return None

    def mark_published(self, job_id: str) -> bool:
        return self.store.mark_outbox_published(job_id)

    def mark_failed(self, job_id: str, error: str) -> None:
        self.store.mark_outbox_failed(job_id, error)


def open_outbox(settings: Settings) -> StoreOutbox:
    """The sink actor's outbox (its own store), given to :func:`~tda_ray.service.streaming.sink.start_sink`."""
    return StoreOutbox(Store(settings.database_url, settings.storage_root), settings.kafka.max_message_bytes)
