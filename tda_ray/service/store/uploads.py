"""Upload sessions in the store: a large cloud sent as numbered parts, each one bounded request.

The parts are blobs under ``upload-sessions/<id>/``; the row says what became of the session.
"""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from tda_ray.service.store.db import Database
from tda_ray.service.store.records import Conflict, NotFound, UploadRecord, UploadStatus, check_id, new_id, utcnow
from tda_ray.service.store.tables import uploads

__all__ = ["UploadSessions"]

_LIVE_UPLOAD = (UploadStatus.OPEN.value, UploadStatus.COMPLETING.value)


class UploadSessions(Database):
    PART_RE = re.compile(r"^\d{8}\.part$")

    def create_upload(self, name: str | None) -> UploadRecord:
        now = utcnow()
        up_id = new_id()
        with self._write() as conn:
            conn.execute(
                uploads.insert().values(
                    id=up_id,
                    name=name,
                    status=UploadStatus.OPEN.value,
                    pointcloud_id=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        return UploadRecord(up_id, name, UploadStatus.OPEN, None, now, [])

    def get_upload(self, upload_id: str) -> UploadRecord:
        check_id(upload_id, "upload")
        with self._read() as conn:
            row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()
        if row is None:
            raise NotFound(f"upload {upload_id!r} not found")
        status = UploadStatus(row.status)
        parts = []
        if status in (UploadStatus.OPEN, UploadStatus.COMPLETING):
            for key, size in self.blobs.list(f"upload-sessions/{upload_id}"):
                leaf = key.rsplit("/", 1)[-1]
                if self.PART_RE.match(leaf):
                    parts.append((int(leaf[:8]), size))
        return UploadRecord(row.id, row.name, status, row.pointcloud_id, row.created_at, parts, row.error)

    def put_upload_part(self, upload_id: str, part: int, data: bytes) -> None:
        """Store (or replace: a retried part) one part of an open session; marks the session active."""
        self.get_upload(upload_id)  # 404 for unknown ids
        if not self._touch_upload(upload_id):
            raise Conflict(f"upload {upload_id} is no longer open")
        key = self.upload_part_key(upload_id, part)
        self.blobs.put(key, data)
        if self.get_upload(upload_id).status not in (UploadStatus.OPEN, UploadStatus.COMPLETING):  # expired/aborted
            self.blobs.delete(key)
            raise Conflict(f"upload {upload_id} is no longer open")

    def touch_upload(self, upload_id: str) -> bool:
        """Mark an open or completing session active now (a completion in progress keeps itself alive)."""
        return self._touch_upload(upload_id)

    def _touch_upload(self, upload_id: str) -> bool:
        with self._write() as conn:
            res = conn.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.status.in_(_LIVE_UPLOAD))
                .values(updated_at=utcnow())
            )
        return bool(res.rowcount == 1)

    def _idle(self, status: UploadStatus, idle_s: float) -> list[str]:
        cutoff = utcnow() - timedelta(seconds=idle_s)
        with self._read() as conn:
            ids = conn.execute(
                sa.select(uploads.c.id).where(uploads.c.status == status.value, uploads.c.updated_at < cutoff)
            ).scalars()
            return [str(i) for i in ids]

    def expire_uploads(self, idle_s: float) -> list[str]:
        """Abort open sessions with no part for ``idle_s`` seconds (their parts are deleted); their ids."""
        stale = self._idle(UploadStatus.OPEN, idle_s)
        return [i for i in stale if self.set_upload_status(i, UploadStatus.ABORTED, expect=(UploadStatus.OPEN,))]

    def reopen_stalled_completions(self, idle_s: float) -> list[str]:
        """Sessions left ``completing`` by a process that died (no progress for ``idle_s``) go back to open."""
        stalled = self._idle(UploadStatus.COMPLETING, idle_s)
        return [i for i in stalled if self.set_upload_status(i, UploadStatus.OPEN, expect=(UploadStatus.COMPLETING,))]

    def upload_part_key(self, upload_id: str, part: int) -> str:
        return f"upload-sessions/{upload_id}/{part:08d}.part"

    def set_upload_status(
        self,
        upload_id: str,
        status: UploadStatus,
        *,
        expect: tuple[UploadStatus, ...],
        pointcloud_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Move a session to ``status`` if it is in one of ``expect`` (a compare-and-set: one completer wins)."""
        with self._write() as conn:
            res = conn.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.status.in_([s.value for s in expect]))
                .values(status=status.value, pointcloud_id=pointcloud_id, error=error, updated_at=utcnow())
            )
        if status in (UploadStatus.COMPLETED, UploadStatus.ABORTED) and res.rowcount == 1:
            self.blobs.delete_dir(f"upload-sessions/{upload_id}")
        return bool(res.rowcount == 1)
