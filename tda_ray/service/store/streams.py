"""Streams in the store: each source's spec and every window's anomaly score."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tda_ray.service.store.db import Database
from tda_ray.service.store.records import utcnow
from tda_ray.service.store.tables import stream_scores, stream_specs

__all__ = ["StreamRecords"]


def _event_ms(when: str | int) -> int:
    """A score record's window bound (RFC 3339 text) as ms since the epoch, the column's unit."""
    if isinstance(when, str):
        return round(datetime.fromisoformat(when).timestamp() * 1000)
    return int(when)


class StreamRecords(Database):
    def save_spec(self, source_id: str, version: int, spec: dict[str, Any]) -> None:
        now = utcnow()
        with self._write() as conn:
            updated = conn.execute(
                stream_specs.update()
                .where(stream_specs.c.source_id == source_id)
                .values(version=version, spec=spec, updated_at=now)
            )
            if updated.rowcount == 0:
                conn.execute(
                    stream_specs.insert().values(source_id=source_id, version=version, spec=spec, updated_at=now)
                )

    def get_spec(self, source_id: str) -> tuple[int, dict[str, Any], datetime] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(stream_specs).where(stream_specs.c.source_id == source_id)).first()
        return None if row is None else (int(row.version), dict(row.spec), row.updated_at)

    def save_scores(self, records: list[dict[str, Any]]) -> int:
        """Store score records; one already stored (a redelivery) is left as it is. Returns how many were new."""
        now = utcnow()
        new = 0
        with self._write() as conn:
            for r in records:
                key = (stream_scores.c.source_id == r["source_id"]) & (stream_scores.c.seq == int(r["seq"]))
                if conn.execute(sa.select(stream_scores.c.seq).where(key)).first() is not None:
                    continue
                conn.execute(
                    stream_scores.insert().values(
                        source_id=r["source_id"], seq=int(r["seq"]), window_start=_event_ms(r["window_start"]),
                        window_end=_event_ms(r["window_end"]), score=float(r["score"]), alert=bool(r["alert"]),
                        record=r, ingested_at=now,
                    )
                )  # fmt: skip
                new += 1
        return new

    def scores(
        self, source_id: str | None, *, since_ms: int | None, limit: int, alerts_only: bool = False
    ) -> list[dict[str, Any]]:
        """Score records by window end (event time) from ``since_ms``, oldest first."""
        q = sa.select(stream_scores.c.record)
        if source_id is not None:
            q = q.where(stream_scores.c.source_id == source_id)
        if since_ms is not None:
            q = q.where(stream_scores.c.window_end >= since_ms)
        if alerts_only:
            q = q.where(stream_scores.c.alert.is_(True))
        q = q.order_by(stream_scores.c.window_end, stream_scores.c.source_id, stream_scores.c.seq).limit(limit)
        with self._read() as conn:
            return [dict(r) for (r,) in conn.execute(q)]

    def streams(self) -> list[dict[str, Any]]:
        """Every source with a spec or a score: its windows, alerts and latest score."""
        with self._read() as conn:
            counts = conn.execute(
                sa.select(
                    stream_scores.c.source_id,
                    sa.func.count(),
                    sa.func.sum(sa.case((stream_scores.c.alert.is_(True), 1), else_=0)),
                    sa.func.max(stream_scores.c.seq),
                ).group_by(stream_scores.c.source_id)
            ).all()
            specs = {r.source_id: r for r in conn.execute(sa.select(stream_specs)).all()}
            latest: dict[str, Any] = {}
            for source_id, _, _, seq in counts:
                row = conn.execute(
                    sa.select(stream_scores.c.record).where(
                        (stream_scores.c.source_id == source_id) & (stream_scores.c.seq == seq)
                    )
                ).first()
                latest[source_id] = dict(row[0]) if row else None
        out = []
        by_source = {c[0]: c for c in counts}
        for source_id in sorted(set(by_source) | set(specs)):
            c = by_source.get(source_id)
            spec = specs.get(source_id)
            out.append(
                {
                    "source_id": source_id,
                    "windows": int(c[1]) if c else 0,
                    "alerts": int(c[2] or 0) if c else 0,
                    "latest": latest.get(source_id),
                    "spec_version": int(spec.version) if spec else 0,
                }
            )
        return out
