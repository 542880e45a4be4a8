"""The outbox sink against a real broker and a real job store (no Ray: the sink thread runs in-process).

Proves: every finished job's message reaches tda_feature_results keyed by job id and valid against the
schema; a broker outage during jobs loses nothing; a new sink resumes what an old one left in the outbox.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import numpy as np
import pytest
import sqlalchemy as sa

from tda_ray.service.jobs.outbox import open_outbox
from tda_ray.service.jobs.task import JobSpec, run_job
from tda_ray.service.settings import KafkaSettings, Settings
from tda_ray.service.store import JobStatus, Store
from tda_ray.service.store.tables import outbox
from tda_ray.service.streaming import messages
from tda_ray.service.streaming.kafka import ensure_topics, topic_specs
from tda_ray.service.streaming.sink import OutboxSink

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _settings(tmp_path, bootstrap: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'tda.db'}",
        storage_root=str(tmp_path / "storage"),
        kafka=KafkaSettings(
            enabled=True,
            bootstrap=bootstrap,
            raw_topic=f"raw_{tag}",
            results_topic=f"results_{tag}",
            stats_topic=f"stats_{tag}",
        ),
        progress_interval_s=0.05,
    ).resolved()


def _store(settings: Settings) -> Store:
    return Store(settings.database_url, settings.storage_root)


def _sink(settings: Settings) -> OutboxSink:
    return OutboxSink(settings.kafka, open_outbox(settings)).start()


def _finish_jobs(settings: Settings, n: int, seed: int = 0) -> list[str]:
    """Run n real jobs through the job task itself (called in-process): result, success and message at once."""
    st = _store(settings)
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(n):
        pc = st.create_pointcloud(rng.normal(size=(30, 2)), name=None, source="test")
        job = st.create_job(pc.id, "vietoris_rips", {"maxdim": 1, "threshold": None, "coeff": 2, "landmarks": None})
        (claim,) = [c for c in st.claim_queued("test-dispatcher", 10) if c.job_id == job.id]
        spec = JobSpec(job.id, claim.attempt, pc.id, claim.blob_key, claim.algorithm, claim.params)
        assert run_job(settings, spec)["outcome"] == "succeeded"
        ids.append(job.id)
    return ids


def _by_key(records) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in records:
        out.setdefault(r.key.decode(), []).append(r)
    return out


def _pending(settings: Settings) -> list[str]:
    return [r.job_id for r in _store(settings).pending_outbox(limit=1000)]


def _wait(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_finished_jobs_are_published_keyed_by_job_id(tmp_path, kafka_broker, kafka_consume):
    settings = _settings(tmp_path, kafka_broker.bootstrap)
    cfg = settings.kafka
    ensure_topics(cfg)
    sink = _sink(settings)
    try:
        ids = _finish_jobs(settings, 3)
        records = kafka_consume(cfg.bootstrap, cfg.results_topic, until=lambda r: len(_by_key(r)) >= 3)
        _wait(lambda: not _pending(settings), 10, "outbox to drain")
    finally:
        sink.stop()
    by_key = _by_key(records)
    assert set(by_key) == set(ids)
    st = _store(settings)
    for job_id in ids:
        msg = json.loads(by_key[job_id][0].value)
        messages.validate_result_message(msg)
        assert msg["job_id"] == job_id
        job, res = st.get_job(job_id), st.get_result(job_id)
        assert msg["pointcloud_id"] == job.pointcloud_id
        assert msg["n_features"] == [len(d) for d in res.diagrams]
        assert msg["n_points"] == 30
        assert datetime.fromisoformat(msg["finished_at"].replace("Z", "+00:00")) == job.finished_at
        # Diagrams as stored, with inf as null.
        for k, dgm in enumerate(res.diagrams):
            got = np.array([[b, np.inf if d is None else d] for b, d in msg["diagrams"][k]]).reshape(-1, 2)
            np.testing.assert_array_equal(got, dgm)
    # Same key -> same partition: every message of a job is on one partition.
    assert all(len({r.partition for r in recs}) == 1 for recs in by_key.values())
    assert sink.status()["published"] >= 3


def test_broker_outage_loses_nothing(tmp_path, kafka_broker_factory, kafka_consume):
    broker = kafka_broker_factory()
    settings = _settings(tmp_path, broker.bootstrap)
    cfg = settings.kafka
    ensure_topics(cfg)
    sink = _sink(settings)
    try:
        before = _finish_jobs(settings, 2, seed=1)
        _wait(lambda: not _pending(settings), 30, "the first jobs to be published")

        broker.stop()
        during = _finish_jobs(settings, 4, seed=2)  # jobs still succeed while Kafka is down
        assert all(_store(settings).get_job(j).status == JobStatus.SUCCEEDED.value for j in during)
        _wait(lambda: sink.status()["state"] == "down", 60, "the sink to notice the outage")
        assert set(_pending(settings)) == set(during)

        broker.start()
        _wait(lambda: not _pending(settings), 90, "the outbox to drain after the broker came back")
        assert sink.status()["state"] == "up"
    finally:
        sink.stop()
    want = set(before) | set(during)
    records = kafka_consume(cfg.bootstrap, cfg.results_topic, until=lambda r: set(_by_key(r)) >= want)
    assert set(_by_key(records)) == want
    for r in records:
        messages.validate_result_message(json.loads(r.value))


def test_new_sink_resumes_the_outbox(tmp_path, kafka_broker, kafka_consume):
    settings = _settings(tmp_path, kafka_broker.bootstrap)
    cfg = settings.kafka
    ensure_topics(cfg)
    first = _sink(settings)
    ids = _finish_jobs(settings, 1, seed=3)
    _wait(lambda: not _pending(settings), 30, "the first sink to publish")
    first.stop()

    later = _finish_jobs(settings, 3, seed=4)  # no sink running: rows wait
    time.sleep(0.5)
    assert set(_pending(settings)) == set(later)
    second = _sink(settings)
    try:
        _wait(lambda: not _pending(settings), 30, "the second sink to resume")
    finally:
        second.stop()
    records = kafka_consume(cfg.bootstrap, cfg.results_topic, until=lambda r: len(_by_key(r)) >= 4)
    assert set(_by_key(records)) == set(ids) | set(later)


def test_redelivery_is_a_same_key_duplicate(tmp_path, kafka_broker, kafka_consume):
    """At-least-once: a row published again (ack lost before the store was updated) repeats key and content."""
    settings = _settings(tmp_path, kafka_broker.bootstrap)
    cfg = settings.kafka
    ensure_topics(cfg)
    sink = _sink(settings)
    try:
        (job_id,) = _finish_jobs(settings, 1, seed=5)
        _wait(lambda: not _pending(settings), 30, "publication")
        st = _store(settings)
        with st.engine.begin() as conn:  # what a crash between the ack and the store update leaves behind
            conn.execute(sa.update(outbox).values(published_at=None))
        sink.notify()
        records = kafka_consume(cfg.bootstrap, cfg.results_topic, until=lambda r: len(r) >= 2)
    finally:
        sink.stop()
    assert [r.key.decode() for r in records] == [job_id, job_id]
    a, b = (json.loads(r.value) for r in records)
    a.pop("published_at"), b.pop("published_at")
    assert a == b


def test_sink_started_before_the_broker_creates_topics_and_catches_up(tmp_path, kafka_broker_factory, kafka_consume):
    from tda_ray.service.streaming.kafka import partition_counts

    broker = kafka_broker_factory()
    broker.stop()  # Kafka is down when the service (and its sink) start
    settings = _settings(tmp_path, broker.bootstrap)
    cfg = settings.kafka
    sink = _sink(settings)
    try:
        ids = _finish_jobs(settings, 2, seed=6)
        _wait(lambda: sink.status()["state"] == "down", 30, "the sink to report the broker down")
        _wait(lambda: sink.status()["pending"] == 2, 30, "the sink to count the waiting rows")
        broker.start()
        _wait(lambda: not _pending(settings), 90, "the outbox to drain")
    finally:
        sink.stop()
    names = [t.name for t in topic_specs(cfg)]
    assert partition_counts(cfg, names) == dict.fromkeys(names, cfg.partitions)
    records = kafka_consume(cfg.bootstrap, cfg.results_topic, until=lambda r: len(_by_key(r)) >= 2)
    assert set(_by_key(records)) == set(ids)


def test_the_sink_publishes_the_message_written_with_the_result(tmp_path, kafka_broker, kafka_consume):
    """The outbox row carries the message the job's task built: the sink reads nothing else (here the
    result blobs are even deleted before it starts, and every message still goes out, equal to the row's)."""
    settings = _settings(tmp_path, kafka_broker.bootstrap)
    cfg = settings.kafka
    ensure_topics(cfg)
    ids = _finish_jobs(settings, 2, seed=7)
    st = _store(settings)
    rows = {r.job_id: r.message or {} for r in st.pending_outbox(limit=10)}
    assert set(rows) == set(ids) and all(rows.values())
    for job_id in ids:
        messages.validate_result_message(rows[job_id])
        result = st.get_result(job_id)
        assert rows[job_id]["betti"] == result.summary["betti"]
        assert rows[job_id]["n_features"] == result.summary["n_pairs"]
    for blob in (tmp_path / "storage" / "results").iterdir():
        blob.unlink()
    sink = _sink(settings)
    try:
        records = kafka_consume(cfg.bootstrap, cfg.results_topic, until=lambda r: len(_by_key(r)) >= 2)
        _wait(lambda: not _pending(settings), 10, "outbox to drain")
    finally:
        sink.stop()
    for job_id, recs in _by_key(records).items():
        published = json.loads(recs[0].value)
        assert published.pop("published_at")
        assert published == rows[job_id]
