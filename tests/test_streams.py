"""Streams end to end on the real stack: a Kafka broker, the Flink stream job and the service (Ray window
workers, score ingester, HTTP API), each a process of its own on loopback.

One stack serves the module; every test has sources of its own.  Series are replayed with old event
times, as fast as the API takes them: the scores must be those of live arrival (event time only).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from support.service import wait_for
from support.streams import (
    ANOMALY,
    SIZE,
    START_S,
    N,
    StreamStack,
    events,
    missing_requirements,
    post,
    shape_change,
    windows_of,
)

pytestmark = [pytest.mark.kafka, pytest.mark.flink]

WARMUP = 40  # the default spec


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """A score record without what may differ between runs of the same events: the source and wall clock."""
    return {k: v for k, v in record.items() if k not in ("source_id", "timing")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamStack]:
    reason = missing_requirements()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the stream stack cannot start in CI: {reason}")
        pytest.skip(reason)
    with StreamStack(tmp_path_factory.mktemp("streams"), workers=1) as s:
        yield s


@pytest.fixture(scope="module")
def reference(stack: StreamStack) -> list[dict[str, Any]]:
    """The shape-change series replayed once, undisturbed: every other run of it must score the same."""
    client, http = stack.client(), stack.http()
    post(client, events("reference", shape_change()))
    records: list[dict[str, Any]] = stack.wait_scores(http, "reference", windows_of(N))
    return records


@pytest.mark.timeout(600)
def test_a_replayed_series_is_scored_window_by_window(stack: StreamStack, reference: list[dict[str, Any]]) -> None:
    assert [r["seq"] for r in reference] == list(range(windows_of(N)))
    assert sum(r["warmup"] for r in reference) >= WARMUP
    first = reference[0]
    assert first["window_start"] == "2020-01-01T00:00:00.000Z"
    assert first["n_events"] == SIZE and first["spec_version"] == 0
    for r in reference:
        assert 0.0 <= r["score"] <= 1.0 and r["alert"] == (r["score"] >= r["threshold"])
        assert {"betti_1", "max_lifetime_1", "entropy_1", "vector_distance", "mean_0"} <= set(r["features"])


@pytest.mark.timeout(600)
def test_an_injected_anomaly_alerts_and_a_clean_stretch_does_not(reference: list[dict[str, Any]]) -> None:
    t0 = START_S * 1000

    def span(r: dict[str, Any]) -> tuple[int, int]:
        return tuple(
            round(datetime.fromisoformat(r[k]).timestamp() * 1000) - t0 for k in ("window_start", "window_end")
        )

    a, b = ANOMALY[0] * 100, ANOMALY[1] * 100  # ms of event time
    scored = [r for r in reference if not r["warmup"]]
    inside = [r for r in scored if a <= span(r)[0] and span(r)[1] <= b]
    clean = [r for r in scored if span(r)[1] <= a or span(r)[0] >= b]
    assert len(inside) >= 20 and len(clean) >= 40
    alerts = [r for r in inside if r["alert"]]
    assert len(alerts) >= 0.8 * len(inside), [round(r["score"], 6) for r in inside]
    assert all(r["reasons"] for r in alerts)
    assert not [r for r in clean if r["alert"]], [(r["seq"], r["score"], r["reasons"]) for r in clean if r["alert"]]


@pytest.mark.timeout(900)
def test_killing_each_stage_loses_no_window_and_scores_none_twice(
    stack: StreamStack, reference: list[dict[str, Any]]
) -> None:
    from kafka import KafkaConsumer

    client, http = stack.client(), stack.http()
    source = "survivor"
    x = shape_change()
    post(client, events(source, x, 0, 1000))
    stack.wait_scores(http, source, 20)

    stack.kill_job()  # the Flink job, outright: it resumes from its newest retained checkpoint
    post(client, events(source, x, 1000, 1600))
    stack.start_job()
    stack.wait_scores(http, source, windows_of(1600) - 10)

    pid = stack.worker_pids(http)[0]  # a Ray window worker: Ray restarts it, Kafka redelivers its batch
    post(client, events(source, x, 1600, 2200))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: stack.workers_up(http) and pid not in stack.worker_pids(http), 120, "the worker's restart")
    stack.wait_scores(http, source, windows_of(2200) - 10)

    stack.broker.kill()  # the broker, for 30 s: every stage waits for it and carries on
    time.sleep(30)
    stack.broker.start(timeout=120)
    post(client, events(source, x, 2200, N))
    got = stack.wait_scores(http, source, windows_of(N), timeout_s=300)

    assert [identity(r) for r in got] == [identity(r) for r in reference]
    consumer = KafkaConsumer(
        stack.service.settings.get("kafka_scores_topic", "tda_anomaly_scores"),
        bootstrap_servers=stack.broker.bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=5000,
    )
    import json

    seqs = Counter(json.loads(m.value)["seq"] for m in consumer if json.loads(m.value)["source_id"] == source)
    consumer.close()
    assert sorted(seqs) == list(range(windows_of(N)))
    assert max(seqs.values()) == 1, {s: c for s, c in seqs.items() if c > 1}


@pytest.mark.timeout(300)
def test_bad_events_get_422_and_nothing_is_published(stack: StreamStack) -> None:
    http = stack.http()

    def published() -> int:
        return int(stack.topic_offsets()["raw_data_events"] or 0)

    before = published()
    good = events("bad-batch", np.zeros(3))
    for bad, word in (
        ({"source_id": "bad-batch", "values": ["x"]}, "values"),
        ({"source_id": "bad-batch", "values": [float("nan")]}, "values"),
        ({"values": [1.0]}, "source_id"),
        ({"source_id": "bad-batch", "values": [1.0], "event_time": "yesterday"}, "event_time"),
    ):
        text = '{"events": [' + ",".join(_json(e) for e in [*good, bad]) + "]}"
        r = http.post("/v1/events", content=text, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert word in str(r.json()["detail"]), r.text
    assert published() == before


def _json(e: dict[str, Any]) -> str:
    import json

    return json.dumps(e)  # NaN as the bare literal NaN, which Python's JSON parser (the server's) reads


@pytest.mark.timeout(600)
def test_a_spec_change_applies_to_the_next_windows(stack: StreamStack) -> None:
    client, http = stack.client(), stack.http()
    source = "respecified"
    x = np.sin(np.arange(2000) * 2 * np.pi / 30)
    first = client.put_stream(source, {"window": {"unit": "events", "size": 60, "slide": 30}})["spec"]
    time.sleep(5)  # the spec travels through its compacted topic to the job's broadcast state
    post(client, events(source, x, 0, 600))
    scores = stack.wait_scores(http, source, (600 - 60) // 30 + 1)
    assert {r["spec_version"] for r in scores} == {first["version"]}
    assert {r["n_events"] for r in scores} == {60}

    second = client.put_stream(source, {"window": {"unit": "events", "size": 40, "slide": 40}, "maxdim": 0})["spec"]
    assert second["version"] > first["version"]
    wait_for(lambda: client.stream(source)["spec"]["version"] == second["version"], 10, "the stored spec")
    time.sleep(5)
    post(client, events(source, x, 600, 1400))
    later = wait_for(
        lambda: [r for r in stack.scores(http, source) if r["spec_version"] == second["version"]] or None,
        120,
        "windows of the new spec",
    )
    assert {r["n_events"] for r in later} == {40}
    assert not any(k.endswith("_1") for r in later for k in r["features"])  # maxdim 0 now
