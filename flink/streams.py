"""Plain-Python glue of the stream job: its options, the default spec, and parsing of its inputs.

No PyFlink import.  The contracts with the service are the JSON Schemas in ``schemas/`` (raw_data_event,
stream_spec, window_cloud, window_features, anomaly_score); every input is checked against its schema and a
bad one becomes a dead letter, never a failed job.  The option defaults are the service's (the same
``TDA_*`` variables; tests/test_architecture.py checks they agree).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from feature_stats import flag
from jsonschema import validators
from jsonschema.exceptions import best_match
from stream_windows import Event

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO_ROOT / "schemas"
MAX_RAW_IN_DEAD_LETTER = 4096

# (option, env var, default, type, help); every option can come from its environment variable.
OPTIONS: list[tuple[str, str, str, type, str]] = [
    ("--bootstrap", "TDA_KAFKA_BOOTSTRAP", "127.0.0.1:9092", str, "Kafka bootstrap servers"),
    ("--raw-topic", "TDA_KAFKA_RAW_TOPIC", "raw_data_events", str, "events (input)"),
    ("--specs-topic", "TDA_KAFKA_SPECS_TOPIC", "tda_stream_specs", str, "stream specs (compacted; broadcast)"),
    ("--clouds-topic", "TDA_KAFKA_CLOUDS_TOPIC", "tda_window_clouds", str, "window clouds (to Ray)"),
    ("--features-topic", "TDA_KAFKA_FEATURES_TOPIC", "tda_window_features", str, "window features (from Ray)"),
    ("--scores-topic", "TDA_KAFKA_SCORES_TOPIC", "tda_anomaly_scores", str, "every window's score"),
    ("--alerts-topic", "TDA_KAFKA_ALERTS_TOPIC", "tda_alerts", str, "alerts only"),
    ("--dead-letter-topic", "TDA_FLINK_STREAM_DEAD_LETTER_TOPIC", "tda_stream_dead_letters", str,
     "malformed and late events, malformed specs and features"),
    ("--topic-partitions", "TDA_KAFKA_PARTITIONS", "3", int, "partitions of a topic the job creates"),
    ("--topic-replication", "TDA_KAFKA_REPLICATION_FACTOR", "1", int, "its replication factor"),
    ("--group-id", "TDA_FLINK_STREAM_GROUP_ID", "tda-flink-streams", str, "consumer group of the job"),
    ("--checkpoint-interval-seconds", "TDA_FLINK_STREAM_CHECKPOINT_INTERVAL_SECONDS", "1", float,
     "checkpoints (state, offsets; the score sinks commit on them)"),
    ("--idle-close-seconds", "TDA_FLINK_STREAM_IDLE_CLOSE_SECONDS", "5", float,
     "a source quiet this long has the windows it covers emitted"),
    ("--checkpoint-dir", "TDA_FLINK_STREAM_CHECKPOINT_DIR", "", str,
     "retained checkpoints (a path or URI); empty: var/flink-streams/checkpoints"),
    ("--restore", "TDA_FLINK_STREAM_RESTORE", "latest", str,
     "latest: resume from the newest retained checkpoint there is; none: start afresh; or a checkpoint path"),
    ("--parallelism", "TDA_FLINK_PARALLELISM", "1", int, "operator parallelism"),
    ("--window-unit", "TDA_STREAM_WINDOW_UNIT", "events", str, "default spec: events or seconds"),
    ("--window-size", "TDA_STREAM_WINDOW_SIZE", "120", float, "default spec: window size"),
    ("--window-slide", "TDA_STREAM_WINDOW_SLIDE", "20", float, "default spec: window slide"),
    ("--out-of-orderness-s", "TDA_STREAM_OUT_OF_ORDERNESS_S", "2", float, "default spec: out-of-orderness"),
    ("--allowed-lateness-s", "TDA_STREAM_ALLOWED_LATENESS_S", "1", float, "default spec: allowed lateness"),
    ("--maxdim", "TDA_STREAM_MAXDIM", "1", int, "default spec: homology dimensions"),
    ("--vector-kind", "TDA_STREAM_VECTOR_KIND", "betti_curve", str, "default spec: vectorization"),
    ("--vector-bins", "TDA_STREAM_VECTOR_BINS", "32", int, "default spec: vectorization grid points"),
    ("--warmup-windows", "TDA_STREAM_WARMUP_WINDOWS", "40", int, "default spec: windows of the first baseline"),
    ("--baseline-windows", "TDA_STREAM_BASELINE_WINDOWS", "200", int, "default spec: rolling baseline windows"),
    ("--threshold", "TDA_STREAM_THRESHOLD", "0.99999", float, "default spec: score that raises an alert"),
    ("--log-level", "TDA_FLINK_LOG_LEVEL", "INFO", str, "Python log level"),
    ("--loopback-only", "TDA_LOOPBACK_ONLY", "true", flag,
     "embedded cluster listens on 127.0.0.1 only; Python functions in thread mode (in the JVM)"),
]  # fmt: skip


class InvalidMessage(ValueError):
    """An input that cannot be used; the text says why."""


SCHEMA_NAMES = ("raw_data_event", "stream_spec", "window_features")


def load_schemas(schema_dir: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """The schemas of the job's inputs, read where the job is submitted (its functions carry them to the
    task managers, where the repository may not be)."""
    return {n: json.loads((schema_dir / f"{n}.v1.schema.json").read_text()) for n in SCHEMA_NAMES}


def _validator(schema: dict[str, Any]) -> Any:
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


class Parser:
    """JSON + schema checks of the job's inputs."""

    def __init__(self, schemas: dict[str, dict[str, Any]] | None = None) -> None:
        schemas = schemas if schemas is not None else load_schemas()
        self._v = {n: _validator(schemas[n]) for n in SCHEMA_NAMES}

    def _parse(self, name: str, raw: str | bytes | None) -> dict[str, Any]:
        if raw is None:
            raise InvalidMessage("empty message")
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessage(f"not JSON: {exc}") from None
        err = best_match(self._v[name].iter_errors(msg))
        if err is not None:
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            raise InvalidMessage(f"{name} invalid at {where}: {err.message}")
        return dict(msg)

    def event(self, raw: str | bytes | None) -> tuple[str, Event]:
        msg = self._parse("raw_data_event", raw)
        ts = parse_time_ms(msg["event_time"])
        return msg["source_id"], Event(ts, msg["event_id"], [float(v) for v in msg["values"]])

    def spec(self, raw: str | bytes | None) -> dict[str, Any]:
        return self._parse("stream_spec", raw)

    def features(self, raw: str | bytes | None) -> dict[str, Any]:
        return self._parse("window_features", raw)


def parse_time_ms(text: str) -> int:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidMessage(f"{text!r} is not an RFC 3339 date-time") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return round(ts.timestamp() * 1000)


def resolve_spec(spec: dict[str, Any], n_values: int) -> dict[str, Any]:
    """The spec with an ``auto`` embedding made concrete for events of ``n_values`` values."""
    if spec["embedding"]["kind"] != "auto":
        return spec
    return {**spec, "embedding": auto_embedding(n_values)}


def auto_embedding(n_values: int) -> dict[str, Any]:
    if n_values == 1:
        return {"kind": "delay", "value_index": 0, "dimension": "auto", "delay": "auto"}
    return {"kind": "vectors"}


def default_spec(source_id: str, n_values: int, args: Any) -> dict[str, Any]:
    """The spec of a source that has none: one value per event -> delay embedding; several -> vectors."""
    embedding = auto_embedding(n_values)
    return {
        "schema_version": 1,
        "source_id": source_id,
        "version": 0,
        "window": {
            "unit": args.window_unit,
            "size": args.window_size,
            "slide": args.window_slide,
            "out_of_orderness_s": args.out_of_orderness_s,
            "allowed_lateness_s": args.allowed_lateness_s,
        },
        "embedding": embedding,
        "maxdim": args.maxdim,
        "vector": {"kind": args.vector_kind, "bins": args.vector_bins},
        "scoring": {
            "warmup_windows": args.warmup_windows,
            "baseline_windows": args.baseline_windows,
            "threshold": args.threshold,
        },
    }


def dead_letter(raw: Any, reason: str, stage: str, at_ms: int) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace") if isinstance(raw, bytes) else repr(raw)
    body = {"stage": stage, "reason": reason, "at_ms": at_ms, "message": text[:MAX_RAW_IN_DEAD_LETTER]}
    return json.dumps(body, separators=(",", ":"))
