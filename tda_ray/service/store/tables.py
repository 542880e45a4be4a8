"""The job store's SQL schema (SQLAlchemy Core), and the one migration it has needed."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = [
    "idempotency",
    "jobs",
    "metadata",
    "migrate",
    "outbox",
    "pointclouds",
    "results",
    "stream_scores",
    "stream_specs",
    "uploads",
]


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
    # What the stored array is: "points" (rows are points) or "distance_matrix"; null in rows of older versions.
    sa.Column("kind", sa.String(16), nullable=True),
    # A volume's grid (depth, rows, columns), stored as rows = depth * rows; null for 2-D arrays.
    sa.Column("shape", sa.JSON, nullable=True),
    # Indexed for GET /v1/pointclouds (newest first).
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
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
    # Why the last completion failed (the session is open again), for clients polling a long completion.
    sa.Column("error", sa.Text, nullable=True),
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
    # Memory the job reserves on its node (Ray's `memory` resource) and its engine may use; NULL: rows of
    # older versions (dispatched with the largest reservation).
    sa.Column("memory_bytes", sa.BigInteger, nullable=True),
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
    # The message itself, built by the job's task with its result: the sink publishes it as it is.
    sa.Column("message", sa.JSON, nullable=True),
)

# Streams: the spec of each source (what the service published to the specs topic) and every score the
# Flink job produced (ingested from tda_anomaly_scores; the key makes a redelivery a no-op).
stream_specs = sa.Table(
    "stream_specs",
    metadata,
    sa.Column("source_id", sa.String(128), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

stream_scores = sa.Table(
    "stream_scores",
    metadata,
    sa.Column("source_id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("window_end", sa.BigInteger, nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("alert", sa.Boolean, nullable=False, index=True),
    sa.Column("record", sa.JSON, nullable=False),
    sa.Column("ingested_at", UTCDateTime, nullable=False),
)


# Idempotency keys of POST requests: the first answer, replayed for a retry with the same key.  A row is
# `pending` while its request runs (a concurrent duplicate gets 409), `done` with the answer afterwards.
idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),  # the operation, e.g. "POST /v1/jobs"
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 of the request it was first used with
    sa.Column("state", sa.String(16), nullable=False),  # pending | done
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("body", sa.Text, nullable=True),  # the JSON answer
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Columns added since the first release: (table, column, SQL type).
ADDED_COLUMNS = [
    ("outbox", "message", "JSON"),
    ("uploads", "error", "TEXT"),
    ("jobs", "memory_bytes", "BIGINT"),
    ("pointclouds", "kind", "VARCHAR(16)"),
    ("pointclouds", "shape", "JSON"),
]


def migrate(engine: Engine) -> None:
    """Bring a database made by an older version up to this schema (tables, columns and indexes added since)."""
    metadata.create_all(engine, tables=[idempotency, stream_specs, stream_scores])
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        for table, column, kind in ADDED_COLUMNS:
            if column not in {c["name"] for c in inspector.get_columns(table)}:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
        # create_all makes no index on a table that exists already.
        for index in pointclouds.indexes:
            index.create(conn, checkfirst=True)
