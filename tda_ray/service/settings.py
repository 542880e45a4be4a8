"""Every setting of the service, with its default, in one place.

Each field can be set through an environment variable ``TDA_<FIELD>`` (upper case), e.g.
``TDA_DATABASE_URL``; the sub-models read ``TDA_KAFKA_<FIELD>`` and ``TDA_FLINK_<FIELD>`` (``TDA_KAFKA_BOOTSTRAP``,
``TDA_FLINK_WINDOW_SECONDS``), the same variables the Flink job reads, so one environment configures both.
Defaults give a self-contained local run (local Ray, SQLite and a storage folder under ``var/``).

``tda-ray serve`` resolves the settings once (:meth:`Settings.from_env`) and hands them to the Serve
application builder, the deployments and every job task as arguments; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["FlinkSettings", "KafkaSettings", "Settings", "StreamSettings"]

HOUR_MS = 3600 * 1000


def _default_var_dir() -> Path:
    # In a source checkout (editable install) keep state in the repo's ignored var/;
    # an installed package falls back to ./var of the working directory.
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "var"
    return Path.cwd() / "var"


class KafkaSettings(BaseModel):
    """Kafka: the broker, the topics (names, partitions, retention) and the producers (``TDA_KAFKA_*``)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(default=False, description="Publish job results to Kafka through the outbox.")
    bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers (comma separated).")
    client_id: str = Field(default="tda-ray", description="Kafka client id.")
    raw_topic: str = Field(default="raw_data_events", description="Topic of points posted to /v1/events.")
    results_topic: str = Field(default="tda_feature_results", description="Topic of finished job results.")
    stats_topic: str = Field(default="tda_feature_stats", description="Topic of Flink's windowed statistics.")
    specs_topic: str = Field(default="tda_stream_specs", description="Compacted topic of the stream specs.")
    clouds_topic: str = Field(default="tda_window_clouds", description="Windows as point clouds (Flink -> Ray).")
    features_topic: str = Field(default="tda_window_features", description="Windows' features (Ray -> Flink).")
    scores_topic: str = Field(default="tda_anomaly_scores", description="Every window's anomaly score (Flink).")
    alerts_topic: str = Field(default="tda_alerts", description="The scores that are alerts (Flink).")
    partitions: int = Field(default=3, ge=1, description="Partitions of each topic.")
    replication_factor: int = Field(default=1, ge=1, description="Replication factor of each topic.")
    min_insync_replicas: int = Field(default=1, ge=1, description="min.insync.replicas of each topic.")
    raw_retention_ms: int = Field(default=24 * HOUR_MS, gt=0, description="Retention of raw events.")
    results_retention_ms: int = Field(default=7 * 24 * HOUR_MS, gt=0, description="Retention of results.")
    stats_retention_ms: int = Field(default=7 * 24 * HOUR_MS, gt=0, description="Retention of statistics.")
    windows_retention_ms: int = Field(
        default=24 * HOUR_MS, gt=0, description="Retention of window clouds and features (replayable a day)."
    )
    scores_retention_ms: int = Field(default=7 * 24 * HOUR_MS, gt=0, description="Retention of scores and alerts.")
    max_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="Largest Kafka message.")
    outbox_poll_s: float = Field(default=0.2, gt=0, description="How often the sink polls the outbox.")
    outbox_batch: int = Field(default=200, ge=1, description="Outbox rows the sink publishes per round.")
    request_timeout_ms: int = Field(default=5000, gt=0, description="Producer and admin request timeout.")
    delivery_timeout_ms: int = Field(default=15000, gt=0, description="Producer delivery timeout.")
    compression: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(
        default="gzip", description="Compression of result messages."
    )
    health_ttl_s: float = Field(default=2.0, ge=0, description="How long a broker health probe is reused.")

    @field_validator("compression", mode="before")
    @classmethod
    def _none_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in ("", "none") else v

    @model_validator(mode="after")
    def _insync_fits(self) -> KafkaSettings:
        if not self.min_insync_replicas <= self.replication_factor:
            raise ValueError(
                f"kafka min.insync.replicas ({self.min_insync_replicas}) must be at most the replication factor "
                f"({self.replication_factor}), or acks=all writes can never succeed"
            )
        return self

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]


class FlinkSettings(BaseModel):
    """The Flink feature-stats job (``TDA_FLINK_*``; flink/feature_stats.py reads the same variables)."""

    model_config = ConfigDict(frozen=True)

    dead_letter_topic: str = Field(default="tda_feature_results_dlq", description="Malformed messages.")
    group_id: str = Field(default="tda-flink-feature-stats", description="Consumer group of the job.")
    window_seconds: float = Field(default=10.0, gt=0, description="Tumbling window size.")
    out_of_orderness_seconds: float = Field(default=2.0, ge=0, description="Allowed out-of-orderness.")
    idle_close_seconds: float = Field(default=2.0, gt=0, description="Wall-clock wait before a quiet window closes.")
    dedup_ttl_seconds: int = Field(default=3600, ge=0, description="How long a job id is remembered.")
    checkpoint_interval_seconds: float = Field(default=5.0, gt=0, description="Checkpoint interval.")
    checkpoint_dir: str = Field(default="", description="Durable checkpoint storage URI; empty: memory.")
    starting_offsets: Literal["committed", "earliest", "latest"] = Field(default="committed")
    parallelism: int = Field(default=1, ge=1, description="Operator parallelism.")
    log_level: str = Field(default="INFO", description="Python log level of the job.")
    stream_group_id: str = Field(default="tda-flink-streams", description="Consumer group of the stream job.")
    stream_dead_letter_topic: str = Field(
        default="tda_stream_dead_letters", description="Malformed and late events, malformed specs and features."
    )
    stream_checkpoint_interval_seconds: float = Field(
        default=1.0, gt=0, description="Checkpoints of the stream job (its score sinks commit on them)."
    )
    stream_idle_close_seconds: float = Field(
        default=5.0, gt=0, description="A source quiet this long (wall clock) has its covered windows emitted."
    )
    stream_checkpoint_dir: str = Field(
        default="", description="Retained checkpoints of the stream job; empty: var/flink-streams/checkpoints."
    )
    stream_restore: str = Field(
        default="latest", description="latest (resume from the newest retained checkpoint), none, or a path."
    )


class StreamSettings(BaseModel):
    """Streams (``TDA_STREAM_*``): the default stream spec and the Ray window workers.

    The Flink stream job reads the same variables for the spec of a source that has none
    (flink/stream_job.py; tests/test_architecture.py checks the defaults agree).
    """

    model_config = ConfigDict(frozen=True)

    window_unit: Literal["events", "seconds"] = Field(default="events", description="Default window unit.")
    window_size: float = Field(default=120, gt=0, description="Default window size (events or seconds).")
    window_slide: float = Field(default=20, gt=0, description="Default window slide (events or seconds).")
    out_of_orderness_s: float = Field(default=2.0, ge=0, description="How late a source's events may arrive.")
    allowed_lateness_s: float = Field(default=1.0, ge=0, description="Grace after the watermark passes a window.")
    maxdim: int = Field(default=1, ge=0, le=2, description="Homology dimensions of window features.")
    vector_kind: Literal["betti_curve", "landscape"] = Field(default="betti_curve", description="Vectorization.")
    vector_bins: int = Field(default=32, ge=2, le=512, description="Points of the vectorization grid.")
    warmup_windows: int = Field(default=40, ge=2, description="Windows that form a source's first baseline.")
    baseline_windows: int = Field(default=200, ge=2, description="Windows in the rolling baseline.")
    threshold: float = Field(default=0.99999, gt=0, lt=1, description="Score that raises an alert.")
    workers: int | None = Field(default=None, description="Ray window workers (None: half the cluster's CPUs).")
    worker_cpus: float = Field(default=0.5, gt=0, description="CPUs a window worker reserves.")
    worker_batch: int = Field(default=256, ge=1, description="Windows a worker takes from Kafka at a time.")
    worker_group_id: str = Field(default="tda-window-workers", description="Consumer group of the workers.")
    scores_group_id: str = Field(default="tda-score-ingest", description="Consumer group of the score ingester.")

    @field_validator("workers", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in ("", "none", "auto") else v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TDA_", env_nested_delimiter="_", env_nested_max_split=1, extra="ignore", frozen=True
    )

    # --- persistence -----------------------------------------------------
    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{_default_var_dir() / 'tda.db'}",
        description="SQLAlchemy URL of the job store (SQLite file by default).",
    )
    storage_root: str = Field(
        default_factory=lambda: str(_default_var_dir() / "storage"),
        description="Folder or pyarrow filesystem URI (s3://bucket/prefix, gs://...) for uploads and result blobs.",
    )

    # --- network ---------------------------------------------------------
    loopback_only: bool = Field(
        default=True,
        description=(
            "Ray (node address, every Ray and Serve listener, metrics) and the Flink job listen on 127.0.0.1 "
            "only; false opens them for a real cluster, which must then be protected by the network (README)."
        ),
    )

    # --- HTTP ------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the Serve HTTP proxy binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the Serve HTTP proxy.")
    api_key: str | None = Field(default=None, description="When set, requests must carry it in the X-API-Key header.")
    http_body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A body of up to 1 MiB must arrive within this (408); a streamed body may pause this long.",
    )
    http_max_pending_bodies: int = Field(
        default=2000, ge=1, description="Request bodies Serve's proxy awaits at once (503 with Retry-After above)."
    )
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, gt=0, description="Largest accepted request body.")
    max_points: int = Field(
        default=1_000_000, gt=0, description="Largest cloud parsed in the ingress (JSON, text) and for exact jobs."
    )
    max_stream_upload_bytes: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Largest single-request .npy/Parquet upload (Serve's proxy buffers a request body).",
    )
    max_session_upload_bytes: int = Field(
        default=16 * 1024**3, gt=0, description="Largest cloud sent as an upload session (parts, /v1/uploads)."
    )
    upload_session_idle_s: float = Field(
        default=24 * 3600, gt=0, description="Open upload sessions without a new part this long are aborted."
    )
    upload_complete_wait_s: float = Field(
        default=20.0, ge=0, description="How long POST .../complete waits before answering 202 (still completing)."
    )
    max_stream_points: int = Field(
        default=200_000_000,
        gt=0,
        description="Largest streamed .npy/Parquet cloud (rows); above max_points only landmark jobs.",
    )
    max_decoded_ratio: float = Field(
        default=32.0,
        gt=0,
        description="A Parquet upload may decode to at most this many times its own size as float64 (bombs).",
    )
    max_maxdim: int = Field(default=3, ge=0, description="Largest homology dimension a job may ask for.")
    max_wasserstein_pairs: int = Field(
        default=5000,
        ge=1,
        description="Most pairs per diagram for GET .../distance?metric=wasserstein (an assignment: cubic time).",
    )
    events_max_request_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Largest batch of /v1/events, as encoded Kafka messages (413)."
    )
    events_max_event_bytes: int = Field(
        default=64 * 1024, gt=0, description="Largest single event of /v1/events, as an encoded message (413)."
    )
    idempotency_ttl_s: float = Field(
        default=24 * 3600, gt=0, description="How long the answer to a request with an Idempotency-Key is kept."
    )
    serve_config: str = Field(
        default="serve_config.yaml", description="Serve config (import path, route prefix, replicas/autoscaling)."
    )

    # --- Ray / jobs ------------------------------------------------------
    ray_address: str = Field(
        default="local", description="Ray address; 'local' starts a private local Ray, 'auto' joins a cluster."
    )
    num_cpus: int | None = Field(default=2, description="CPUs of a local Ray (None: all); one job uses job_cpus.")
    job_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved by one job task.")
    engine_threads: int = Field(default=1, ge=1, description="Engine threads per job.")
    job_max_retries: int = Field(default=3, ge=0, description="Ray retries of a job task whose worker died.")
    job_oom_retries: int = Field(
        default=1, ge=0, description="Retries of a job task killed by Ray's memory monitor (a local Ray's setting)."
    )
    memory_limit_bytes: int | None = Field(
        default=None,
        description="Largest memory one job may reserve and use (None: the largest node's Ray memory resource).",
    )
    job_memory_headroom: float = Field(
        default=2.0, ge=1.0, description="A job reserves this many times the engine's up-front estimate."
    )
    job_memory_min_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="Least memory a job reserves (interpreter, cloud, result)."
    )
    ray_memory_bytes: int | None = Field(
        default=None, description="Memory a local Ray lends to tasks (its 'memory' resource; None: Ray's default)."
    )
    landmark_workers: int | None = Field(
        default=None, description="Shard actors per landmark job (None: one per CPU of the cluster)."
    )
    progress_interval_s: float = Field(default=0.25, gt=0, description="How often a running job syncs with the store.")
    dispatch_interval_s: float = Field(default=0.5, gt=0, description="How often the dispatcher scans the store.")
    max_in_flight: int | None = Field(
        default=None, description="Job tasks the dispatcher keeps in Ray at once (None: 4 per job slot, at least 8)."
    )

    # --- companions --------------------------------------------------------
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka (TDA_KAFKA_*).")
    flink: FlinkSettings = Field(default_factory=FlinkSettings, description="The Flink jobs (TDA_FLINK_*).")
    stream: StreamSettings = Field(default_factory=StreamSettings, description="Streams (TDA_STREAM_*).")

    @field_validator("api_key")
    @classmethod
    def _empty_key_is_none(cls, v: str | None) -> str | None:
        return v or None

    @field_validator(
        "num_cpus", "memory_limit_bytes", "landmark_workers", "max_in_flight", "ray_memory_bytes", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in ("", "none", "all") else v

    @classmethod
    def env_names(cls) -> set[str]:
        """Every environment variable the settings read (``TDA_HOST``, ``TDA_KAFKA_BOOTSTRAP``, ...)."""
        names = set()
        for name, field in cls.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                names |= {f"TDA_{name}_{inner}".upper() for inner in sub.model_fields}
            else:
                names.add(f"TDA_{name}".upper())
        return names

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from the environment (``TDA_*``) and ``overrides``, local paths made absolute."""
        return cls(**overrides).resolved()

    def resolved(self) -> Settings:
        """Copy with relative local paths made absolute, so Ray workers in other cwd's agree."""
        updates: dict[str, Any] = {}
        root = self.storage_root
        if "://" not in root:
            updates["storage_root"] = str(Path(root).expanduser().resolve())
        if self.database_url.startswith("sqlite:///") and not self.database_url.startswith("sqlite:////"):
            rel = self.database_url[len("sqlite:///") :]
            if rel and not rel.startswith(":memory:"):
                updates["database_url"] = f"sqlite:///{Path(rel).expanduser().resolve()}"
        return self.model_copy(update=updates) if updates else self
