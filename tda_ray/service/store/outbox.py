"""The Kafka outbox in the store: one message per finished job, written in the job's own transaction and
drained by the Kafka sink, which marks each published (or records why not) so none is lost or sent twice."""

from __future__ import annotations

import sqlalchemy as sa

from tda_ray.service.store.db import Database
from tda_ray.service.store.records import OutboxRow, utcnow
from tda_ray.service.store.tables import outbox

__all__ = ["Outbox"]


class Outbox(Database):
    def pending_outbox(self, limit: int = 100) -> list[OutboxRow]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.created_at).limit(limit)
            ).all()
        return [OutboxRow(r.job_id, r.created_at, r.published_at, r.attempts, r.last_error, r.message) for r in rows]

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
