"""The store's database connection: a SQLAlchemy engine per owner, SQLite tuned for many processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from tda_ray.service.store.blobs import BlobStore
from tda_ray.service.store.tables import metadata, migrate

__all__ = ["Database", "make_engine"]


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


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine (connection pool) for the job store at ``url``."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        eng = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(eng)
        return eng
    return sa.create_engine(url, pool_pre_ping=True)


class Database:
    """A database engine and a blob store, owned by one object (never shared through module state)."""

    def __init__(self, database_url: str, storage_root: str, *, create_schema: bool = True) -> None:
        self.engine = make_engine(database_url)
        self.blobs = BlobStore(storage_root)
        if create_schema:
            self._create_schema()

    def close(self) -> None:
        self.engine.dispose()

    def _create_schema(self) -> None:
        # Several processes may start at once; a lost "CREATE TABLE" race is harmless.
        for delay in (0.05, 0.2, 0.5, 1.0, None):
            try:
                metadata.create_all(self.engine)
                migrate(self.engine)
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
