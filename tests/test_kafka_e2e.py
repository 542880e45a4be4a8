"""End to end: the real service (`tda-ray serve`: local Ray + Serve) publishing to a real Kafka broker.

* a job submitted over HTTP shows up on tda_feature_results within 2 s of finishing, keyed by job id;
* a broker outage during jobs loses nothing (jobs succeed, results wait in the outbox, then arrive);
* killing the sink actor's process: Ray restarts it and it resumes the outbox;
* POST /v1/events round-trips through raw_data_events; invalid bodies get a 4xx;
* GET /v1/health reports the broker state.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from support.service import ServiceProcess, wait_for

from tda_ray.service.streaming import messages

pytestmark = [pytest.mark.kafka, pytest.mark.ray, pytest.mark.timeout(600)]

RESULTS, RAW = "tda_feature_results", "raw_data_events"


class Server:
    def __init__(self, service: ServiceProcess, broker: Any) -> None:
        self.service, self.broker = service, broker
        self.http = service.client()

    def health(self) -> dict[str, Any]:
        r = self.http.get("/v1/health")
        assert r.status_code == 200
        return dict(r.json())

    def run_job(self, seed: int, wait: bool = True) -> dict[str, Any]:
        pts = np.random.default_rng(seed).normal(size=(40, 2)).tolist()
        pc = self.http.post("/v1/pointclouds", json={"points": pts})
        assert pc.status_code == 201, pc.text
        job = self.http.post("/v1/jobs", json={"pointcloud_id": pc.json()["id"], "params": {"maxdim": 1}})
        assert job.status_code == 202, job.text
        return self.wait_job(job.json()["id"]) if wait else dict(job.json())

    def wait_job(self, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.http.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                assert job["status"] == "succeeded", job
                return dict(job)
        raise AssertionError(f"job {job_id} did not finish in {timeout_s}s")


@pytest.fixture(scope="module")
def server(broker_module, tmp_path_factory) -> Iterator[Server]:
    reason = broker_module.missing_requirements()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"Kafka broker cannot start in CI: {reason}")
        pytest.skip(f"Kafka broker unavailable: {reason}")
    # A broker of our own: the outage test stops and restarts it.
    broker = broker_module.KafkaBroker(tmp_path_factory.mktemp("kafka-e2e"), port=broker_module.free_port())
    broker.start(timeout=120)
    service = ServiceProcess(tmp_path_factory.mktemp("service"), kafka_enabled=True, kafka_bootstrap=broker.bootstrap)
    try:
        service.start(timeout_s=240)
        srv = Server(service, broker)
        # The sink actor reports "up" once it has created the topics.
        wait_for(lambda: (srv.health()["components"]["kafka"].get("sink") or {}).get("state") == "up", 90, "the sink")
        yield srv
        srv.http.close()
    finally:
        service.stop()
        broker.stop()


def _keys(records) -> set[str]:
    return {r.key.decode() for r in records}


def test_health_reports_the_broker(server):
    kafka = server.health()["components"]["kafka"]
    assert kafka["enabled"] is True
    assert kafka["broker"]["state"] == "up" and kafka["broker"]["bootstrap"] == server.broker.bootstrap
    assert kafka["sink"]["state"] == "up" and kafka["sink"]["alive"] is True


def test_topics_exist_with_the_configured_partitions(server):
    from tda_ray.service.settings import KafkaSettings
    from tda_ray.service.streaming.kafka import partition_counts, topic_specs

    cfg = KafkaSettings(bootstrap=server.broker.bootstrap)
    names = [t.name for t in topic_specs(cfg)]
    assert names[:3] == [RAW, RESULTS, "tda_feature_stats"]
    streams = ["tda_stream_specs", "tda_window_clouds", "tda_window_features", "tda_anomaly_scores", "tda_alerts"]
    assert names[3:] == streams
    assert partition_counts(cfg, names) == dict.fromkeys(names, cfg.partitions)


def test_job_message_arrives_within_2s_of_finishing(server):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(RESULTS, bootstrap_servers=server.broker.bootstrap, auto_offset_reset="latest")
    wait_for(lambda: consumer.poll(timeout_ms=100) == {} and consumer.assignment(), 30, "the consumer to join")
    seen: dict[str, tuple[float, Any]] = {}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=50).values():
                for r in batch:
                    seen.setdefault(r.key.decode(), (time.time(), r))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        job = server.run_job(seed=1)
        wait_for(lambda: job["id"] in seen, 30, "the job's message")
    finally:
        stop.set()
        reader.join()
        consumer.close()
    seen_at, record = seen[job["id"]]
    finished = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).timestamp()
    assert seen_at - finished < 2.0, f"message visible {seen_at - finished:.2f}s after the job finished"
    msg = json.loads(record.value)
    messages.validate_result_message(msg)
    assert msg["job_id"] == job["id"] == record.key.decode()
    result = server.http.get(f"/v1/jobs/{job['id']}/result").json()
    assert msg["n_features"] == result["n_pairs"] and msg["betti"] == result["betti"]


def test_broker_outage_during_jobs_loses_nothing(server, kafka_consume):
    server.broker.stop()
    wait_for(lambda: server.health()["components"]["kafka"]["broker"]["state"] == "down", 30, "health: down")
    jobs = [server.run_job(seed=10 + i) for i in range(3)]  # they still succeed
    assert all(j["status"] == "succeeded" for j in jobs)
    wait_for(lambda: server.health()["components"]["kafka"]["sink"]["state"] == "down", 60, "the sink to report down")
    server.broker.start(timeout=120)
    ids = {j["id"] for j in jobs}
    records = kafka_consume(server.broker.bootstrap, RESULTS, until=lambda r: _keys(r) >= ids, timeout_s=120)
    assert _keys(records) >= ids
    wait_for(lambda: server.health()["components"]["kafka"]["sink"]["state"] == "up", 30, "the sink to recover")


def test_killed_sink_actor_resumes_the_outbox(server, kafka_consume):
    before = server.health()["components"]["kafka"]["sink"]
    os.kill(before["pid"], signal.SIGKILL)  # the actor's worker process dies; Ray restarts the actor
    jobs = [server.run_job(seed=20 + i, wait=False) for i in range(2)]
    ids = {server.wait_job(j["id"])["id"] for j in jobs}
    records = kafka_consume(server.broker.bootstrap, RESULTS, until=lambda r: _keys(r) >= ids, timeout_s=120)
    assert _keys(records) >= ids
    after = wait_for(lambda: server.health()["components"]["kafka"]["sink"], 30, "the restarted sink")
    assert after["pid"] != before["pid"]


def test_raw_events_round_trip(server, kafka_consume):
    events = [
        {"source_id": "sensor-a", "values": [0.0, 1.0], "event_id": "e1"},
        {"source_id": "sensor-b", "values": [2.0, 3.0], "event_id": "e2", "attributes": {"unit": "m"}},
        {"source_id": "sensor-a", "values": [4.0, 5.0], "event_id": "e3", "event_time": "2026-01-01T00:00:00Z"},
    ]
    r = server.http.post("/v1/events", json={"events": events})
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 3, "topic": RAW, "event_ids": ["e1", "e2", "e3"]}
    records = kafka_consume(
        server.broker.bootstrap,
        RAW,
        until=lambda rs: {"e1", "e2", "e3"} <= {json.loads(x.value)["event_id"] for x in rs},
    )
    mine = [r for r in records if json.loads(r.value)["event_id"] in {"e1", "e2", "e3"}]
    for rec in mine:
        msg = json.loads(rec.value)
        messages.validate_raw_event(msg)
        assert rec.key.decode() == msg["source_id"]
    a = [json.loads(x.value)["event_id"] for x in mine if x.key == b"sensor-a"]
    assert a == ["e1", "e3"]  # per-source order kept
    assert len({x.partition for x in mine if x.key == b"sensor-a"}) == 1
    e3 = next(json.loads(x.value) for x in mine if json.loads(x.value)["event_id"] == "e3")
    assert e3["event_time"] == "2026-01-01T00:00:00Z" and e3["values"] == [4.0, 5.0]


def _event_ids(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["event_id"] for r in records]


def test_refused_batches_publish_nothing(server, kafka_consume):
    """The probe's F1-F3: out-of-range times (once a 500), a 40 MB batch and a 2 MiB attribute (once a 503
    after publishing): each a 4xx with a detail, and not one of their events reaches the topic."""
    tag = f"refused-{time.time_ns()}"
    batches = {
        "late": [
            {"source_id": tag, "values": [1.0], "event_id": f"{tag}-a", "event_time": "9999-12-31T23:59:59-14:00"}
        ],
        "early": [
            {"source_id": tag, "values": [1.0], "event_id": f"{tag}-b", "event_time": "0001-01-01T00:00:00+14:00"}
        ],
        "attribute": [
            {"source_id": tag, "values": [1.0], "event_id": f"{tag}-c"},
            {"source_id": tag, "values": [2.0], "event_id": f"{tag}-d", "attributes": {"blob": "x" * (2 << 20)}},
        ],
        "big": [{"source_id": tag, "values": [0.1234567] * 400, "event_id": f"{tag}-big-{i}"} for i in range(10_000)],
    }
    for name, events in batches.items():
        r = server.http.post("/v1/events", json={"events": events})
        assert r.status_code in (413, 422), (name, r.status_code, r.text[:300])
        assert r.json()["detail"], name
    marker = f"{tag}-marker"
    ok = server.http.post("/v1/events", json={"events": [{"source_id": tag, "values": [0.0], "event_id": marker}]})
    assert ok.status_code == 202, ok.text
    records = kafka_consume(server.broker.bootstrap, RAW, until=lambda rs: marker in _event_ids(rs), timeout_s=60)
    mine = [e for e in _event_ids(records) if e.startswith(tag)]
    assert mine == [marker]


def test_a_retried_batch_is_counted_once(server, kafka_consume):
    tag = f"retry-{time.time_ns()}"
    batch = [{"source_id": f"{tag}-{i % 2}", "values": [float(i)]} for i in range(5)]
    # Under one Idempotency-Key the retry gets the first answer; nothing is published twice.
    first = server.http.post("/v1/events", json={"events": batch}, headers={"Idempotency-Key": tag})
    again = server.http.post("/v1/events", json={"events": batch}, headers={"Idempotency-Key": tag})
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    ids = first.json()["event_ids"]
    # With its own event ids, a batch sent twice is published twice and counted once by id downstream.
    named = [{**e, "event_id": f"{tag}-named-{i}"} for i, e in enumerate(batch)]
    for _ in range(2):
        assert server.http.post("/v1/events", json={"events": named}).status_code == 202
    names = {e["event_id"] for e in named}
    want = set(ids) | names
    records = kafka_consume(server.broker.bootstrap, RAW, until=lambda rs: want <= set(_event_ids(rs)), timeout_s=60)
    seen = [e for e in _event_ids(records) if e in want]
    assert sorted(e for e in seen if e in ids) == sorted(ids)  # each exactly once
    assert len([e for e in seen if e in names]) == 10 and set(seen) >= names


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"{}",
        b'{"events": []}',
        b'{"events": [{"source_id": "s", "values": [NaN]}]}',
        b'{"events": [{"source_id": "s", "values": []}]}',
        b'{"events": [{"values": [1.0]}]}',
        b'{"events": [{"source_id": "s", "values": [1.0], "bogus": true}]}',
    ],
)
def test_invalid_event_bodies_get_4xx(server, body):
    r = server.http.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert "detail" in r.json()
