"""Idempotency keys in the store: the first answer of a POST, replayed when it is retried with its key.

A row is ``pending`` while the first request runs and ``done`` with its answer afterwards.  A request that
fails with a server error leaves no row (:meth:`IdempotencyKeys.abandon_idempotent`), so its retry runs
again; a pending row whose request was lost with its replica is taken over after ``stale_after_s``.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tda_ray.service.store.db import Database
from tda_ray.service.store.records import IdempotencyMismatch, IdempotentAnswer, InProgress, utcnow
from tda_ray.service.store.tables import idempotency

__all__ = ["IdempotencyKeys"]


class IdempotencyKeys(Database):
    def begin_idempotent(self, scope: str, key: str, fingerprint: str, stale_after_s: float) -> IdempotentAnswer | None:
        """The stored answer for ``key``, or None when the caller is now to run the request (and then to
        :meth:`finish_idempotent` or :meth:`abandon_idempotent`).

        Raises :class:`IdempotencyMismatch` when the key was used with another request, :class:`InProgress`
        while the first request with it still runs.
        """
        now = utcnow()
        where = (idempotency.c.scope == scope, idempotency.c.key == key)
        try:
            with self._write() as conn:
                row = conn.execute(sa.select(idempotency).where(*where)).first()
                if row is None:
                    conn.execute(
                        idempotency.insert().values(
                            scope=scope,
                            key=key,
                            fingerprint=fingerprint,
                            state="pending",
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    return None
                if row.fingerprint != fingerprint:
                    raise IdempotencyMismatch(
                        f"Idempotency-Key {key!r} was used with a different request; use a new key for a new request"
                    )
                if row.state == "done":
                    return IdempotentAnswer(int(row.status_code), str(row.body))
                if now - row.updated_at < timedelta(seconds=stale_after_s):
                    raise InProgress(f"a request with Idempotency-Key {key!r} is still in progress; retry shortly")
                conn.execute(idempotency.update().where(*where).values(updated_at=now))  # its replica is gone
                return None
        except IntegrityError:  # a concurrent first use inserted the row a moment earlier
            raise InProgress(f"a request with Idempotency-Key {key!r} is still in progress; retry shortly") from None

    def finish_idempotent(self, scope: str, key: str, status_code: int, body: str) -> None:
        with self._write() as conn:
            conn.execute(
                idempotency.update()
                .where(idempotency.c.scope == scope, idempotency.c.key == key)
                .values(state="done", status_code=status_code, body=body, updated_at=utcnow())
            )

    def abandon_idempotent(self, scope: str, key: str) -> None:
        """Forget a pending key (its request failed on the server's side): a retry runs it again."""
        with self._write() as conn:
            conn.execute(
                idempotency.delete().where(
                    idempotency.c.scope == scope, idempotency.c.key == key, idempotency.c.state == "pending"
                )
            )

    def expire_idempotency(self, older_than_s: float) -> int:
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self._write() as conn:
            return int(conn.execute(idempotency.delete().where(idempotency.c.created_at < cutoff)).rowcount)
