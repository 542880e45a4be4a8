"""Plain-Python core of the feature-stats stream job: message validation, window assignment, aggregation.

No PyFlink import here, so the logic is testable from any venv with ``jsonschema``;
``feature_stats_job.py`` wires it into a Flink DataStream job. Nothing is imported from ``tda_ray``:
the only contract with the producer is the JSON Schema file ``schemas/tda_feature_result.v1.schema.json``.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import ValidationError, best_match

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA_PATH = REPO_ROOT / "schemas" / "tda_feature_result.v1.schema.json"
OUTPUT_SCHEMA_VERSION = 1
MAX_RAW_IN_DEAD_LETTER = 4096  # characters of the offending message kept in a dead letter


class InvalidMessage(ValueError):
    """A tda_feature_results message that cannot be counted; the text says why."""


@dataclass(frozen=True)
class FeatureResult:
    """The fields of one result message that the statistics need."""

    job_id: str
    algorithm: str
    finished_at_ms: int
    n_features: tuple[int, ...]
    total_persistence: tuple[float, ...]


DEFAULT_JAR_GLOB = str(REPO_ROOT / ".cache" / "flink" / "jars" / "*.jar")


def flag(text: str) -> bool:
    """A boolean option or environment variable: true/false, 1/0, yes/no, on/off."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


LOOPBACK = "127.0.0.1"
# The embedded cluster's listeners (REST, RPC, blob server and data ports follow the bind hosts) on loopback.
LOOPBACK_CONFIG = {
    "rest.address": LOOPBACK,
    "rest.bind-address": LOOPBACK,
    "jobmanager.rpc.address": LOOPBACK,
    "jobmanager.bind-host": LOOPBACK,
    "taskmanager.host": LOOPBACK,
    "taskmanager.bind-host": LOOPBACK,
    # Python functions run in the task manager's JVM (PEMJA): in process mode Flink's copy of Beam's gRPC
    # server factory binds the Python workers' control, data, state and logging servers to every interface.
    "python.execution-mode": "thread",
}
# The REST API has no authentication: it must never run uploaded jars or cancel the job.
REST_LOCKDOWN = {"web.submit.enable": "false", "web.cancel.enable": "false"}

# (option, env var, default, type, help); every option can come from its environment variable.
OPTIONS: list[tuple[str, str, str, type, str]] = [
    ("--bootstrap", "TDA_KAFKA_BOOTSTRAP", "127.0.0.1:9092", str, "Kafka bootstrap servers"),
    # Same variables and defaults as the service's settings (tda_ray/service/settings.py: kafka, flink), so one
    # environment configures both; tests/test_architecture.py checks the defaults agree.
    ("--input-topic", "TDA_KAFKA_RESULTS_TOPIC", "tda_feature_results", str, "result messages"),
    ("--output-topic", "TDA_KAFKA_STATS_TOPIC", "tda_feature_stats", str, "window statistics"),
    ("--topic-partitions", "TDA_KAFKA_PARTITIONS", "3", int, "partitions of an output topic the job creates"),
    ("--topic-replication", "TDA_KAFKA_REPLICATION_FACTOR", "1", int, "its replication factor"),
    ("--dead-letter-topic", "TDA_FLINK_DEAD_LETTER_TOPIC", "tda_feature_results_dlq", str,
     "malformed messages; empty: log only"),
    ("--group-id", "TDA_FLINK_GROUP_ID", "tda-flink-feature-stats", str,
     "consumer group; a restarted job resumes from its committed offsets"),
    ("--window-seconds", "TDA_FLINK_WINDOW_SECONDS", "10", float, "tumbling window size"),
    ("--out-of-orderness-seconds", "TDA_FLINK_OUT_OF_ORDERNESS_SECONDS", "2", float,
     "how far Kafka publish times may be out of order within a partition"),
    ("--idle-close-seconds", "TDA_FLINK_IDLE_CLOSE_SECONDS", "2", float,
     "wall-clock wait after a window's end before it is reported when no newer result arrives"),
    ("--dedup-ttl-seconds", "TDA_FLINK_DEDUP_TTL_SECONDS", "3600", int,
     "how long a job_id is remembered to drop duplicate deliveries; 0 disables"),
    ("--checkpoint-interval-seconds", "TDA_FLINK_CHECKPOINT_INTERVAL_SECONDS", "5", float,
     "checkpoints commit the consumed offsets to Kafka"),
    ("--checkpoint-dir", "TDA_FLINK_CHECKPOINT_DIR", "", str,
     "durable checkpoint storage URI (file:///..., s3://...); empty: job manager memory"),
    ("--starting-offsets", "TDA_FLINK_STARTING_OFFSETS", "committed", str,
     "committed (earliest where the group has none), earliest or latest"),
    ("--parallelism", "TDA_FLINK_PARALLELISM", "1", int, "operator parallelism"),
    ("--schema", "TDA_FLINK_SCHEMA", str(DEFAULT_SCHEMA_PATH), str, "JSON Schema of the input messages"),
    ("--jars", "TDA_FLINK_JARS", DEFAULT_JAR_GLOB, str, "glob of the connector jars (make flink-jars)"),
    ("--python-executable", "TDA_FLINK_PYTHON", "", str,
     "interpreter of the Python workers; default: this one when run directly, -pyexec under `flink run`"),
    ("--log-level", "TDA_FLINK_LOG_LEVEL", "INFO", str, "Python log level"),
    ("--loopback-only", "TDA_LOOPBACK_ONLY", "true", flag,
     "embedded cluster and Python worker pool listen on 127.0.0.1 only (shared with the service)"),
]  # fmt: skip


def load_schema(path: Path | str = DEFAULT_SCHEMA_PATH) -> dict[str, Any]:
    """The producer's JSON Schema, read from the repo's schemas/ folder."""
    p = Path(path)
    try:
        schema = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"message schema not found: {p}") from exc
    if not isinstance(schema, dict):
        raise ValueError(f"{p} is not a JSON Schema object")
    return schema


def consumer_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as a tolerant consumer applies it.

    The schema's description asks consumers to ignore fields they do not know, while its top level forbids
    extra properties (that guards producers). Dropping that one keyword lets a v1 producer add fields without
    sending every message of theirs to the dead-letter topic.
    """
    relaxed = copy.deepcopy(schema)
    relaxed.pop("additionalProperties", None)
    return relaxed


def parse_timestamp_ms(value: str) -> int:
    """RFC 3339 date-time (offset required) to epoch milliseconds."""
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidMessage(f"finished_at is not an RFC 3339 date-time: {value!r}") from exc
    if dt.tzinfo is None:
        raise InvalidMessage(f"finished_at has no UTC offset: {value!r}")
    return round(dt.timestamp() * 1000)


def format_timestamp_ms(ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC with millisecond precision, e.g. 2026-01-02T03:04:05.000Z."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class ResultParser:
    """Validates raw tda_feature_results values against the schema and extracts a FeatureResult."""

    def __init__(self, schema: dict[str, Any]) -> None:
        relaxed = consumer_schema(schema)
        cls = validators.validator_for(relaxed)
        cls.check_schema(relaxed)  # a broken schema file fails the job at submission, not per message
        self._validator = cls(relaxed)

    def parse(self, raw: str | bytes | None) -> FeatureResult:
        if raw is None:
            raise InvalidMessage("message has no value (tombstone)")
        try:
            msg = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidMessage(f"value is not JSON: {exc}") from exc
        error = self._first_error(msg)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise InvalidMessage(f"schema violation at {where}: {error.message}")

        # Checks the schema cannot express: one entry per dimension 0..maxdim, finite numbers.
        n_dims = int(msg["params"]["maxdim"]) + 1
        for name in ("n_features", "total_persistence", "betti", "diagrams"):
            if len(msg[name]) != n_dims:
                raise InvalidMessage(f"{name} has {len(msg[name])} entries, params.maxdim={n_dims - 1} needs {n_dims}")
        persistence = tuple(float(v) for v in msg["total_persistence"])
        if not all(math.isfinite(v) for v in persistence):
            raise InvalidMessage("total_persistence has a non-finite entry")
        return FeatureResult(
            job_id=msg["job_id"],
            algorithm=msg["algorithm"],
            finished_at_ms=parse_timestamp_ms(msg["finished_at"]),
            n_features=tuple(int(v) for v in msg["n_features"]),
            total_persistence=persistence,
        )

    def _first_error(self, msg: Any) -> ValidationError | None:
        # best_match picks the most relevant of all errors, so the dead letter names the real problem.
        return best_match(self._validator.iter_errors(msg))


def window_start_ms(ts_ms: int, size_ms: int) -> int:
    """Start of the epoch-aligned tumbling window holding ts_ms (same alignment as Flink's windows)."""
    return ts_ms - ts_ms % size_ms


@dataclass
class WindowStats:
    """Running totals of one tumbling window."""

    window_start_ms: int
    window_end_ms: int
    jobs: int = 0
    features_per_dim: list[int] = field(default_factory=list)
    total_persistence_per_dim: list[float] = field(default_factory=list)
    jobs_per_algorithm: dict[str, int] = field(default_factory=dict)

    def add(self, result: FeatureResult) -> None:
        self.jobs += 1
        self.jobs_per_algorithm[result.algorithm] = self.jobs_per_algorithm.get(result.algorithm, 0) + 1
        # Jobs of one window may have different maxdim: pad to the largest dimension seen.
        n = max(len(self.features_per_dim), len(result.n_features))
        self.features_per_dim += [0] * (n - len(self.features_per_dim))
        self.total_persistence_per_dim += [0.0] * (n - len(self.total_persistence_per_dim))
        for d, count in enumerate(result.n_features):
            self.features_per_dim[d] += count
        for d, value in enumerate(result.total_persistence):
            self.total_persistence_per_dim[d] += value

    # Flink state holds a plain tuple, so a savepoint does not depend on this class's pickled layout.
    def to_state(self) -> tuple[Any, ...]:
        return (
            self.window_start_ms,
            self.window_end_ms,
            self.jobs,
            list(self.features_per_dim),
            list(self.total_persistence_per_dim),
            dict(self.jobs_per_algorithm),
        )

    @classmethod
    def from_state(cls, state: tuple[Any, ...]) -> WindowStats:
        start, end, jobs, features, persistence, algorithms = state
        return cls(int(start), int(end), int(jobs), list(features), list(persistence), dict(algorithms))

    def to_record(self, *, late: bool, emitted_at_ms: int) -> dict[str, Any]:
        return {
            "schema_version": OUTPUT_SCHEMA_VERSION,
            "window_start": format_timestamp_ms(self.window_start_ms),
            "window_end": format_timestamp_ms(self.window_end_ms),
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "jobs": self.jobs,
            "features_per_dim": list(self.features_per_dim),
            "total_persistence_per_dim": list(self.total_persistence_per_dim),
            "jobs_per_algorithm": dict(sorted(self.jobs_per_algorithm.items())),
            "late": late,
            "emitted_at": format_timestamp_ms(emitted_at_ms),
        }


def dead_letter(raw: str | bytes | None, error: str, received_at_ms: int) -> dict[str, Any]:
    """The dead-letter record for a message that failed validation."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    text = raw if raw is not None else ""
    return {
        "error": error,
        "raw": text[:MAX_RAW_IN_DEAD_LETTER],
        "raw_truncated": len(text) > MAX_RAW_IN_DEAD_LETTER,
        "received_at": format_timestamp_ms(received_at_ms),
    }
