"""All service settings in one place.

Every field can be set through an environment variable ``TDA_<FIELD>`` (upper
case), e.g. ``TDA_DATABASE_URL`` or ``TDA_KAFKA_BOOTSTRAP``; defaults give a
self-contained local run (local Ray, SQLite and a storage folder under
``var/``).  The Serve app, the job tasks and the Kafka sink all read the same
:class:`Settings`; the ``tda-ray serve`` driver resolves them once and passes
them to the Serve application so every replica and task sees identical values.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_var_dir() -> Path:
    # In a source checkout (editable install) keep state in the repo's ignored var/;
    # an installed package falls back to ./var of the working directory.
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").is_file():
        return repo / "var"
    return Path.cwd() / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TDA_", extra="ignore", frozen=True)

    # --- persistence -----------------------------------------------------
    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{_default_var_dir() / 'tda.db'}",
        description="SQLAlchemy URL of the job store (SQLite file by default).",
    )
    storage_root: str = Field(
        default_factory=lambda: str(_default_var_dir() / "storage"),
        description="Folder or pyarrow filesystem URI (s3://bucket/prefix, gs://...) for uploads and result blobs.",
    )

    # --- HTTP ------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the Serve HTTP proxy binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the Serve HTTP proxy.")
    api_key: str | None = Field(default=None, description="When set, requests must carry it in the X-API-Key header.")
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
    max_stream_points: int = Field(
        default=200_000_000,
        gt=0,
        description="Largest streamed .npy/Parquet cloud (rows); above max_points only landmark jobs.",
    )
    max_maxdim: int = Field(default=3, ge=0, description="Largest homology dimension a job may ask for.")
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
    memory_limit_bytes: int | None = Field(
        default=None, description="Engine memory budget per job (None: the engine's default share of RAM)."
    )
    landmark_workers: int | None = Field(
        default=None, description="Shard actors per landmark job (None: one per CPU of the cluster)."
    )
    progress_interval_s: float = Field(default=0.25, gt=0, description="How often a running job syncs with the store.")
    dispatch_interval_s: float = Field(default=0.5, gt=0, description="How often the dispatcher scans the store.")

    # --- Kafka (read by tda_ray.streaming; see its docstring for the topic strategy) ---
    kafka_enabled: bool = Field(default=False, description="Publish job results to Kafka through the outbox.")
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers (comma separated).")
    kafka_client_id: str = Field(default="tda-ray", description="Kafka client id.")
    kafka_raw_topic: str = Field(default="raw_data_events", description="Topic of points posted to /v1/events.")
    kafka_results_topic: str = Field(default="tda_feature_results", description="Topic of finished job results.")
    kafka_stats_topic: str = Field(default="tda_feature_stats", description="Topic of Flink's windowed statistics.")
    kafka_partitions: int = Field(default=3, ge=1, description="Partitions of each topic.")
    kafka_replication_factor: int = Field(default=1, ge=1, description="Replication factor of each topic.")
    kafka_min_insync_replicas: int = Field(default=1, ge=1, description="min.insync.replicas of each topic.")
    kafka_raw_retention_ms: int = Field(default=24 * 3600 * 1000, gt=0, description="Retention of raw events.")
    kafka_results_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, gt=0, description="Retention of results.")
    kafka_stats_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, gt=0, description="Retention of statistics.")
    kafka_max_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="Largest Kafka message.")
    kafka_outbox_poll_s: float = Field(default=0.2, gt=0, description="How often the sink polls the outbox.")

    @field_validator("api_key")
    @classmethod
    def _empty_key_is_none(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("num_cpus", "memory_limit_bytes", "landmark_workers", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in ("", "none", "all") else v

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment (cached; tests build :class:`Settings` directly)."""
    return Settings().resolved()
