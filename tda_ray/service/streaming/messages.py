"""Kafka message payloads: builders and validators, with no Kafka (or Ray) import.

The jobs layer builds a job's result message with the result (it goes into the outbox row in the same
transaction); the sink only publishes it.

The layouts are written down as JSON Schemas in ``schemas/`` at the repository root; the Flink job reads the
same files. Builders return plain dicts; :func:`encode` turns one into the bytes that go on the wire.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from tda_ray.engine.diagrams import to_json as diagrams_to_json

RESULT_SCHEMA_VERSION = 1
RAW_EVENT_SCHEMA_VERSION = 1


def _schema_dir() -> Path:
    # Source checkout / editable install: <repo>/schemas (the copy the Flink job reads too).
    # Installed wheel or container image: the copy installed in the package (tda_ray/schemas).
    package = Path(__file__).resolve().parents[2]
    for candidate in (package.parent / "schemas", package / "schemas"):
        if (candidate / "tda_feature_result.v1.schema.json").is_file():
            return candidate
    return package.parent / "schemas"


SCHEMA_DIR = _schema_dir()
RESULT_SCHEMA_FILE = SCHEMA_DIR / f"tda_feature_result.v{RESULT_SCHEMA_VERSION}.schema.json"
RAW_EVENT_SCHEMA_FILE = SCHEMA_DIR / f"raw_data_event.v{RAW_EVENT_SCHEMA_VERSION}.schema.json"
# The stream pipeline's messages (schemas/*.v1.schema.json): the contract with the Flink stream job.
STREAM_SCHEMAS = {name: SCHEMA_DIR / f"{name}.v1.schema.json" for name in (
    "stream_spec", "window_cloud", "window_features", "anomaly_score")}  # fmt: skip

# Default cap of one result message (bytes of JSON before compression); matches the results topic's
# max.message.bytes set by tda_ray.streaming, with headroom for the record batch overhead.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024 - 64 * 1024


@lru_cache(maxsize=4)
def _validator(path: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(Path(path).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise if `schema` is not a valid JSON Schema (draft 2020-12)."""
    jsonschema.Draft202012Validator.check_schema(schema)


def load_result_schema() -> dict[str, Any]:
    return dict(json.loads(RESULT_SCHEMA_FILE.read_text()))


def _iso(ts: datetime | str | None) -> str:
    if ts is None:
        ts = datetime.now(timezone.utc)
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:  # the job store keeps naive UTC timestamps
        ts = ts.replace(tzinfo=timezone.utc)
    try:
        utc = ts.astimezone(timezone.utc)
    except OverflowError:  # an offset that pushes the instant past year 1 or 9999
        raise ValueError(f"{ts.isoformat()} is outside the representable range of UTC times") from None
    return utc.isoformat().replace("+00:00", "Z")


def _persistence(pair: list[float | None]) -> float:
    birth, death = pair
    return math.inf if death is None or birth is None else death - birth


def _truncate(diagrams: list[list[list[float | None]]], keep: int) -> list[list[list[float | None]]]:
    """Per dimension, the `keep` most persistent pairs (essential ones first), in their original order."""
    out = []
    for dgm in diagrams:
        if len(dgm) <= keep:
            out.append(dgm)
            continue
        ranked = sorted(range(len(dgm)), key=lambda i: _persistence(dgm[i]), reverse=True)[:keep]
        out.append([dgm[i] for i in sorted(ranked)])
    return out


def encode(message: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/inf are refused (they are not JSON)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def build_result_message(
    *,
    job_id: str,
    pointcloud_id: str | None,
    algorithm: str,
    params: Mapping[str, Any],
    summary: Mapping[str, Any],
    diagrams: Sequence[Any],
    finished_at: datetime | str | None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> dict[str, Any]:
    """The tda_feature_results message of one finished job (see schemas/tda_feature_result.v1.schema.json).

    ``summary`` is the result's summary (:mod:`tda_ray.engine.summary`): its Betti numbers, pair counts and
    total persistence describe the full diagrams.  When the encoded message would exceed ``max_bytes``, the
    diagrams are cut to each dimension's most persistent pairs and ``diagrams_truncated`` is set, so an
    oversized result never blocks the outbox.
    """
    dgms = diagrams_to_json(diagrams)
    params = dict(params)
    if params.get("maxdim") is None:
        # A cubical job's maxdim may be left to the image ("every dimension"): the message names the dimensions
        # its diagrams cover, as consumers read the per-dimension arrays by it.
        params["maxdim"] = len(dgms) - 1
    msg: dict[str, Any] = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "job_id": str(job_id),
        "pointcloud_id": None if pointcloud_id is None else str(pointcloud_id),
        "algorithm": algorithm,
        "params": params,
        "n_points": summary.get("n_points"),
        "betti": list(summary["betti"]),
        "n_features": list(summary["n_pairs"]),
        "total_persistence": list(summary["total_persistence"]),
        "diagrams": dgms,
        "diagrams_truncated": False,
        "finished_at": _iso(finished_at),
    }
    landmarks = summary.get("landmarks")
    if landmarks is not None:
        keys = ("requested", "count", "eps", "bottleneck_bound")
        msg["landmarks"] = {k: landmarks[k] for k in keys if k in landmarks}
    if len(encode(msg)) > max_bytes:
        keep = max((len(d) for d in dgms), default=0)
        while keep > 0:
            keep //= 2
            msg["diagrams"] = _truncate(dgms, keep)
            if len(encode(msg)) <= max_bytes:
                break
        msg["diagrams_truncated"] = True
    return msg


def _check_timestamps(message: Mapping[str, Any], fields: Sequence[str], what: str) -> None:
    # jsonschema checks "format": "date-time" only with optional extra packages; check it here.
    for name in fields:
        value = message.get(name)
        if value is None:
            continue
        try:
            ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what} invalid at {name}: {value!r} is not an RFC 3339 date-time") from None
        if ts.tzinfo is None:
            raise ValueError(f"{what} invalid at {name}: {value!r} has no time zone")


def _check_against(schema_file: Path, message: Mapping[str, Any], what: str, timestamps: Sequence[str]) -> None:
    v = _validator(str(schema_file))
    err = jsonschema.exceptions.best_match(v.iter_errors(message))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise ValueError(f"{what} invalid at {where}: {err.message}")
    _check_timestamps(message, timestamps, what)


def validate_result_message(message: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first problem if `message` is not a valid v1 result message."""
    _check_against(RESULT_SCHEMA_FILE, message, "result message", ("finished_at", "published_at"))
    # What JSON Schema cannot say: every per-dimension array covers dimensions 0..maxdim.
    dims = int(message["params"]["maxdim"]) + 1
    for field in ("betti", "n_features", "total_persistence", "diagrams"):
        if len(message[field]) != dims:
            raise ValueError(f"result message invalid: {field} has {len(message[field])} entries, maxdim+1 = {dims}")
    if not message["diagrams_truncated"]:
        for k, dgm in enumerate(message["diagrams"]):
            if len(dgm) != message["n_features"][k]:
                raise ValueError(f"result message invalid: n_features[{k}] != pairs in diagrams[{k}]")


def build_raw_event(event: Mapping[str, Any], received_at: datetime | None = None) -> dict[str, Any]:
    """The raw_data_events message of one accepted event (fields already checked by the API model)."""
    received = _iso(received_at)
    msg: dict[str, Any] = {
        "schema_version": RAW_EVENT_SCHEMA_VERSION,
        "event_id": str(event.get("event_id") or uuid.uuid4()),
        "source_id": str(event["source_id"]),
        "values": [float(x) for x in event["values"]],
        "event_time": _iso(event["event_time"]) if event.get("event_time") else received,
        "received_at": received,
    }
    if event.get("attributes"):
        msg["attributes"] = dict(event["attributes"])
    return msg


def validate_raw_event(message: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first problem if `message` is not a valid v1 raw event."""
    _check_against(RAW_EVENT_SCHEMA_FILE, message, "raw event", ("event_time", "received_at"))


def validate_stream_message(kind: str, message: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first problem if ``message`` is not a valid v1 ``kind`` message
    (``stream_spec``, ``window_cloud``, ``window_features`` or ``anomaly_score``)."""
    _check_against(STREAM_SCHEMAS[kind], message, kind.replace("_", " "), ())


def _moments(cloud: Mapping[str, Any]) -> dict[str, float]:
    m = cloud.get("moments") or {}
    out = {f"mean_{j}": float(v) for j, v in enumerate(m.get("mean", []))}
    out.update({f"std_{j}": float(v) for j, v in enumerate(m.get("std", []))})
    return out


def build_window_features(cloud: Mapping[str, Any], computed: Mapping[str, Any], computed_at_ms: int) -> dict[str, Any]:
    """The tda_window_features message of one window from its cloud message and the computed features
    (``{"features", "vector", "n_points"}``, or ``{"error"}`` when the window could not be computed)."""
    msg: dict[str, Any] = {
        "schema_version": 1,
        "source_id": cloud["source_id"],
        "seq": int(cloud["seq"]),
        "window_start": int(cloud["window_start"]),
        "window_end": int(cloud["window_end"]),
        "spec_version": int(cloud["spec_version"]),
        "scale_final": bool(cloud.get("scale_final", True)),
        "n_events": int(cloud.get("events", 0)),
        "n_points": int(computed.get("n_points", 0)),
        "features": {**dict(computed.get("features") or {}), **_moments(cloud)} if not computed.get("error") else {},
        "vector": list(computed.get("vector") or []),
        "closed_at_ms": int(cloud.get("closed_at_ms") or 0),
        "computed_at_ms": int(computed_at_ms),
    }
    if computed.get("error"):
        msg["error"] = str(computed["error"])
    return msg
