"""Topic strategy: the three topics, created idempotently with the configured partitions and settings."""

from __future__ import annotations

import threading
import uuid

import pytest
from pydantic import ValidationError

from tda_ray.service.settings import KafkaSettings, Settings
from tda_ray.service.streaming.kafka import (
    ConsumerStalled,
    KafkaUnavailable,
    StallWatch,
    ensure_topics,
    make_producer,
    partition_counts,
    topic_configs,
    topic_specs,
)

pytestmark = pytest.mark.kafka


def _cfg(bootstrap: str, **kw) -> KafkaSettings:
    # Unique names: the session broker is shared with other tests.
    tag = uuid.uuid4().hex[:8]
    names = {f: f"{f.removesuffix('_topic')}_{tag}" for f in KafkaSettings.model_fields if f.endswith("_topic")}
    return KafkaSettings(bootstrap=bootstrap, **{**names, **kw})


def test_settings_give_the_documented_topics():
    cfg = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1")).kafka
    assert (cfg.raw_topic, cfg.results_topic, cfg.stats_topic) == (
        "raw_data_events",
        "tda_feature_results",
        "tda_feature_stats",
    )
    assert cfg.partitions >= 3
    assert cfg.bootstrap == "127.0.0.1:1"
    keys = {t.name: t.key for t in topic_specs(cfg)}
    assert keys["raw_data_events"] == "source_id"
    assert keys["tda_feature_results"] == "job_id"


def test_default_bootstrap_is_local(monkeypatch):
    monkeypatch.delenv("TDA_KAFKA_BOOTSTRAP", raising=False)
    assert Settings().kafka.bootstrap == "127.0.0.1:9092"
    monkeypatch.setenv("TDA_KAFKA_BOOTSTRAP", "127.0.0.1:19999")
    assert Settings().kafka.bootstrap == "127.0.0.1:19999"


def test_min_isr_above_replication_is_refused():
    with pytest.raises(ValidationError, match=r"min.insync.replicas"):
        KafkaSettings(replication_factor=1, min_insync_replicas=2)
    with pytest.raises(ValidationError, match="partitions"):
        KafkaSettings(partitions=0)


def test_ensure_topics_creates_with_strategy_and_is_idempotent(kafka_broker):
    cfg = _cfg(kafka_broker.bootstrap, partitions=4)
    names = [t.name for t in topic_specs(cfg)]
    assert ensure_topics(cfg) == dict.fromkeys(names, "created")
    assert ensure_topics(cfg) == dict.fromkeys(names, "exists")
    assert partition_counts(cfg, names) == dict.fromkeys(names, 4)

    results = topic_configs(cfg, cfg.results_topic)
    assert results["cleanup.policy"] == "compact,delete"
    assert results["retention.ms"] == str(cfg.results_retention_ms)
    assert results["max.message.bytes"] == str(cfg.max_message_bytes)
    assert results["min.insync.replicas"] == "1"
    raw = topic_configs(cfg, cfg.raw_topic)
    assert raw["cleanup.policy"] == "delete"
    assert raw["retention.ms"] == str(cfg.raw_retention_ms)


def test_ensure_topics_concurrent_callers_agree(kafka_broker):
    # Several replicas start at once: every caller must succeed and the topics exist once.
    cfg = _cfg(kafka_broker.bootstrap)
    outcomes: list[dict[str, str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcomes.append(ensure_topics(cfg))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(outcomes) == 3
    for name in (cfg.raw_topic, cfg.results_topic, cfg.stats_topic):
        assert sum(o[name] == "created" for o in outcomes) <= 1
    assert partition_counts(cfg, [cfg.results_topic]) == {cfg.results_topic: cfg.partitions}


def test_ensure_topics_grows_partitions(kafka_broker):
    cfg = _cfg(kafka_broker.bootstrap, partitions=3)
    ensure_topics(cfg)
    bigger = cfg.model_copy(update={"partitions": 5})
    out = ensure_topics(bigger)
    assert set(out.values()) == {"grown"}
    assert set(partition_counts(bigger, [t.name for t in topic_specs(bigger)]).values()) == {5}


def test_ensure_topics_without_broker_fails_clearly(broker_module):
    cfg = KafkaSettings(bootstrap=f"127.0.0.1:{broker_module.free_port()}", request_timeout_ms=500)
    with pytest.raises(KafkaUnavailable, match="could not create Kafka topics"):
        ensure_topics(cfg, timeout_s=1.5)


def test_a_stalled_consumer_is_noticed_and_a_caught_up_one_is_not(kafka_broker):
    from kafka import KafkaConsumer, TopicPartition

    cfg = _cfg(kafka_broker.bootstrap, partitions=1)
    ensure_topics(cfg)
    producer = make_producer(cfg)
    for i in range(5):
        producer.send(cfg.scores_topic, value=str(i).encode())
    producer.flush(timeout=30)
    producer.close()
    tp = TopicPartition(cfg.scores_topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=cfg.servers, enable_auto_commit=False)
    try:
        with pytest.raises(ConsumerStalled, match="no partitions"):
            StallWatch(after_s=0, expect_partitions=True).check(consumer)
        StallWatch(after_s=0).check(consumer)  # one of several group members may hold no partition
        consumer.assign([tp])
        consumer.seek(tp, 1)
        patient = StallWatch(after_s=3600)
        patient.check(consumer)  # behind, but not for long
        with pytest.raises(ConsumerStalled, match="position, end"):
            StallWatch(after_s=0).check(consumer)
        consumer.seek(tp, 5)
        StallWatch(after_s=0).check(consumer)  # at the end: nothing is waiting
    finally:
        consumer.close()
