"""Result and raw-event messages: built from real engine output, checked against the JSON Schemas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from tda_ray.engine import vietoris_rips
from tda_ray.engine.registry import get_algorithm
from tda_ray.service.http.models import EventsRequest
from tda_ray.service.streaming import messages


def _circle(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    return np.c_[np.cos(t), np.sin(t)] + rng.normal(0, 0.02, (n, 2))


def _message(landmarks=None, **kw):
    pts = _circle()
    res = vietoris_rips(pts, maxdim=1)
    summary = get_algorithm("vietoris_rips").summarize(res, pts.shape, 0.01).model_dump()
    summary["landmarks"] = landmarks
    args: dict = {
        "job_id": "a" * 32,
        "pointcloud_id": "b" * 32,
        "algorithm": "vietoris_rips",
        "params": {"maxdim": 1, "threshold": None, "coeff": 2},
        "summary": summary,
        "diagrams": res.diagrams,
        "finished_at": "2026-01-02T03:04:05+00:00",
    }
    args.update(kw)
    return messages.build_result_message(**args), res


def test_schema_file_is_valid_draft_2020_12():
    schema = messages.load_result_schema()
    messages.check_schema(schema)  # raises on an invalid schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    required = set(schema["required"])
    assert {"schema_version", "job_id", "pointcloud_id", "algorithm", "params", "betti", "n_features"} <= required
    assert {"total_persistence", "diagrams", "finished_at"} <= required


def test_result_message_matches_engine_output_and_validates():
    msg, res = _message()
    messages.validate_result_message(msg)
    # A round trip through the wire format changes nothing.
    wire = json.loads(messages.encode(msg))
    assert wire == msg
    messages.validate_result_message(wire)
    assert msg["n_features"] == [len(d) for d in res.diagrams]
    assert msg["betti"] == [int(np.isinf(d[:, 1]).sum()) for d in res.diagrams]
    assert msg["betti"][0] == 1  # one connected component never dies
    assert msg["betti"][1] == 0
    assert msg["n_features"][1] >= 1  # the circle's loop
    np.testing.assert_allclose(msg["total_persistence"], res.total_persistence(1.0), rtol=1e-12)
    # Essential classes: death is null, every other death is a finite number >= birth.
    deaths0 = [d for _, d in msg["diagrams"][0]]
    assert deaths0.count(None) == 1
    for dgm in msg["diagrams"]:
        for b, d in dgm:
            assert d is None or (math.isfinite(d) and d >= b)
    assert msg["finished_at"] == "2026-01-02T03:04:05Z"
    assert msg["diagrams_truncated"] is False


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda m: m.pop("job_id"), "job_id"),
        (lambda m: m.update(schema_version=2), "schema_version"),
        (lambda m: m.update(betti=[1]), "betti"),
        (lambda m: m.update(diagrams=[[[0.0, "x"]], []]), "diagrams"),
        (lambda m: m.update(finished_at="yesterday"), "finished_at"),
        (lambda m: m.update(n_features=[m["n_features"][0] + 1, m["n_features"][1]]), "n_features"),
        (lambda m: m.update(unknown_field=1), "unknown_field"),
    ],
)
def test_invalid_messages_are_rejected_with_the_field_named(mutate, where):
    msg, _ = _message()
    mutate(msg)
    with pytest.raises(ValueError, match=where):
        messages.validate_result_message(msg)


def test_nan_in_a_diagram_is_refused():
    summary = {"betti": [0], "n_pairs": [1], "total_persistence": [0.0]}
    with pytest.raises(ValueError, match="NaN"):
        messages.build_result_message(
            job_id="j", pointcloud_id=None, algorithm="vietoris_rips", params={"maxdim": 0}, summary=summary,
            diagrams=[np.array([[0.0, np.nan]])], finished_at=None,
        )  # fmt: skip


def test_oversized_result_keeps_most_persistent_pairs():
    full, _ = _message()
    size = len(messages.encode(full))
    cut, _ = _message(max_bytes=size // 2)
    assert len(messages.encode(cut)) <= size // 2
    assert cut["diagrams_truncated"] is True
    messages.validate_result_message(cut)
    # Summaries still describe the full diagrams.
    assert cut["n_features"] == full["n_features"] and cut["total_persistence"] == full["total_persistence"]
    # The kept H0 pairs are the most persistent ones (the essential class first of all).
    kept = cut["diagrams"][0]
    assert 0 < len(kept) < len(full["diagrams"][0])
    assert any(d is None for _, d in kept)
    finite_full = sorted((d - b for b, d in full["diagrams"][0] if d is not None), reverse=True)
    finite_kept = sorted((d - b for b, d in kept if d is not None), reverse=True)
    assert finite_kept == finite_full[: len(finite_kept)]


def test_raw_event_model_and_message():
    body = EventsRequest.model_validate(
        {"events": [{"source_id": "s-1", "values": [1.0, 2.5], "attributes": {"unit": "m", "ok": True}}]}
    )
    msg = messages.build_raw_event(body.events[0].model_dump())
    messages.validate_raw_event(msg)
    assert msg["source_id"] == "s-1" and msg["values"] == [1.0, 2.5]
    assert msg["event_time"] == msg["received_at"]
    assert len(msg["event_id"]) == 36


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"events": []},
        {"events": [{"values": [1.0]}]},
        {"events": [{"source_id": "", "values": [1.0]}]},
        {"events": [{"source_id": "s", "values": []}]},
        {"events": [{"source_id": "s", "values": ["a"]}]},
        {"events": [{"source_id": "s", "values": [float("nan")]}]},
        {"events": [{"source_id": "s", "values": [1.0], "extra": 1}]},
        {"events": [{"source_id": "s", "values": [1.0], "attributes": {"nested": {"a": 1}}}]},
    ],
)
def test_raw_event_model_rejects_bad_input(bad):
    with pytest.raises(ValidationError):
        EventsRequest.model_validate(bad)


def test_landmark_jobs_carry_eps_and_the_bound():
    info = {"requested": 400, "count": 40, "eps": 0.125, "bottleneck_bound": 0.25, "rounds": 3, "rips_s": 0.01}
    msg, _ = _message(params={"maxdim": 1, "threshold": None, "coeff": 2, "landmarks": 400}, landmarks=info)
    messages.validate_result_message(msg)
    # Only the documented fields travel; timings stay in the HTTP result.
    assert msg["landmarks"] == {"requested": 400, "count": 40, "eps": 0.125, "bottleneck_bound": 0.25}
    assert "landmarks" not in _message()[0]  # exact jobs: no landmarks object
    bad = {**msg, "landmarks": {"count": 40, "eps": -1.0, "bottleneck_bound": 0.0}}
    with pytest.raises(ValueError, match="eps"):
        messages.validate_result_message(bad)
