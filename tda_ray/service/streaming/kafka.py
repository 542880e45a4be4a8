"""Apache Kafka: topics, admin and producers. With events.py and sink.py the only modules importing kafka.

Topic strategy (values from :class:`tda_ray.service.settings.KafkaSettings`, env ``TDA_KAFKA_*``; README "Kafka"):

================== ============ ==================== ============================================================
topic              key          cleanup / retention  purpose
================== ============ ==================== ============================================================
raw_data_events    source_id    delete, 24 h         points posted to ``POST /v1/events``; per-source order
tda_feature_results job_id      compact+delete, 7 d  one message per finished job (schemas/tda_feature_result.v1)
tda_feature_stats  (Flink's)    delete, 7 d          windowed statistics written by the Flink job
================== ============ ==================== ============================================================

* Partitions: ``kafka_partitions`` (3 locally) for every topic: a consumer group (the Flink source) can run
  that many readers in parallel; the key hashes to a partition, so one job's / one source's messages stay
  in order. Growing the count later is allowed (``ensure_topics`` does it) but remaps keys.
* Replication: ``kafka_replication_factor`` / ``kafka_min_insync_replicas``: 1/1 on the single local broker,
  3/2 on the docker compose cluster, where ``acks=all`` then survives the loss of one broker.
* Producers are idempotent with ``acks=all``: a retry after a lost ack cannot duplicate or reorder within a
  partition. End to end delivery is at-least-once (outbox -> Kafka -> mark published); a duplicate carries
  the same key, and compaction of tda_feature_results eventually keeps one message per job.

The sink (:mod:`~tda_ray.service.streaming.sink`) publishes the messages the jobs layer put in the
outbox; the raw-event publisher (:mod:`~tda_ray.service.streaming.events`) serves ``POST /v1/events``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from tda_ray.service.settings import KafkaSettings

__all__ = [
    "BrokerHealth",
    "ConsumerStalled",
    "KafkaUnavailable",
    "StallWatch",
    "TopicSpec",
    "ensure_topics",
    "group_lag",
    "make_producer",
    "make_stage_consumer",
    "partition_counts",
    "probe_brokers",
    "topic_configs",
    "topic_specs",
]

log = logging.getLogger("tda_ray.streaming")


class KafkaUnavailable(RuntimeError):
    """Kafka did not take the messages (broker down, timeout, rejected); nothing was acknowledged."""


def quiet_kafka_logs() -> None:
    # kafka-python logs every failed reconnect at ERROR; during an outage the sink reports the state itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    key: str  # what the producers use as message key (documentation, checked by tests)


def topic_specs(cfg: KafkaSettings) -> list[TopicSpec]:
    """The topics the service uses, with their partitions, replication and configs."""
    common = {"min.insync.replicas": str(cfg.min_insync_replicas)}
    return [
        TopicSpec(
            cfg.raw_topic, cfg.partitions, cfg.replication_factor,
            {**common, "cleanup.policy": "delete", "retention.ms": str(cfg.raw_retention_ms)},
            key="source_id",
        ),
        TopicSpec(
            cfg.results_topic, cfg.partitions, cfg.replication_factor,
            {
                **common,
                # Duplicates (same key) collapse on compaction; old results still expire.
                "cleanup.policy": "compact,delete",
                "retention.ms": str(cfg.results_retention_ms),
                "max.message.bytes": str(cfg.max_message_bytes),
            },
            key="job_id",
        ),
        TopicSpec(
            cfg.stats_topic, cfg.partitions, cfg.replication_factor,
            {**common, "cleanup.policy": "delete", "retention.ms": str(cfg.stats_retention_ms)},
            key="none (Flink)",
        ),
        # Streams: specs are configuration (the last one per source is kept for ever); the hand-offs
        # between Flink and Ray are replayable for a day; scores and alerts are kept like results.
        TopicSpec(cfg.specs_topic, cfg.partitions, cfg.replication_factor, {**common, "cleanup.policy": "compact"},
                  key="source_id"),
        *(
            TopicSpec(name, cfg.partitions, cfg.replication_factor,
                      {**common, "cleanup.policy": "delete", "retention.ms": str(retention)}, key=key)
            for name, retention, key in (
                (cfg.clouds_topic, cfg.windows_retention_ms, "none (Flink)"),
                (cfg.features_topic, cfg.windows_retention_ms, "source_id"),
                (cfg.scores_topic, cfg.scores_retention_ms, "none (Flink)"),
                (cfg.alerts_topic, cfg.scores_retention_ms, "none (Flink)"),
            )
        ),
    ]  # fmt: skip


def _admin(cfg: KafkaSettings, timeout_ms: int | None = None) -> KafkaAdminClient:
    t = timeout_ms or cfg.request_timeout_ms
    return KafkaAdminClient(
        bootstrap_servers=cfg.servers,
        client_id=f"{cfg.client_id}-admin",
        request_timeout_ms=t,
        bootstrap_timeout_ms=t,
    )


def ensure_topics(cfg: KafkaSettings, timeout_s: float = 30.0) -> dict[str, str]:
    """Create the topics that are missing (idempotent; safe from several processes at once).

    Returns ``{topic: "created" | "exists" | "grown"}``; an existing topic with fewer partitions than
    configured is grown, other settings of existing topics are left as they are.
    """
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return _ensure_topics_once(cfg)
        except (KafkaError, OSError) as exc:  # broker still starting, or a create race
            last = exc
            time.sleep(0.5)
    raise KafkaUnavailable(f"could not create Kafka topics on {cfg.bootstrap}: {last}")


def _ensure_topics_once(cfg: KafkaSettings) -> dict[str, str]:
    admin = _admin(cfg)
    try:
        outcome: dict[str, str] = {}
        for spec in topic_specs(cfg):
            # Create, and take "already exists" as success: no list-then-create race between processes,
            # and no reliance on a metadata view that may lag a creation made a moment ago elsewhere.
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.configs)],
                    timeout_ms=cfg.request_timeout_ms,
                )
                outcome[spec.name] = "created"
            except TopicAlreadyExistsError:
                outcome[spec.name] = "exists"
        # Brokers learn about new topics from the controller a moment later; return once they are usable.
        names = [s.name for s in topic_specs(cfg)]
        deadline = time.monotonic() + cfg.request_timeout_ms / 1000
        counts = partition_counts(cfg, names, admin=admin)
        while len(counts) < len(names) and time.monotonic() < deadline:
            time.sleep(0.05)
            counts = partition_counts(cfg, names, admin=admin)
        if len(counts) < len(names):
            raise KafkaError(f"topics not visible yet: {sorted(set(names) - set(counts))}")
        grow = {
            s.name: NewPartitions(s.partitions) for s in topic_specs(cfg) if 0 < counts.get(s.name, 0) < s.partitions
        }
        if grow:
            admin.create_partitions(grow, timeout_ms=cfg.request_timeout_ms)
            outcome.update(dict.fromkeys(grow, "grown"))
        return outcome
    finally:
        admin.close()


def partition_counts(
    cfg: KafkaSettings, topics: Sequence[str], admin: KafkaAdminClient | None = None
) -> dict[str, int]:
    """{topic: number of partitions} for the topics that exist."""
    own = admin is None
    client = admin or _admin(cfg)
    try:
        described = client.describe_topics(list(topics))
        return {t["name"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}
    finally:
        if own:
            client.close()


def group_lag(cfg: KafkaSettings, group: str, topic: str, admin: KafkaAdminClient | None = None) -> int | None:
    """Messages of ``topic`` the consumer group ``group`` has not committed yet (None: it committed nothing)."""
    from kafka import KafkaConsumer, TopicPartition

    own = admin is None
    client = admin or _admin(cfg)
    try:
        offsets = client.list_group_offsets({group: None}).get(group, {})
        committed = {tp: om.offset for tp, om in offsets.items() if tp.topic == topic and om.offset >= 0}
    finally:
        if own:
            client.close()
    if not committed:
        return None
    consumer = KafkaConsumer(bootstrap_servers=cfg.servers, request_timeout_ms=max(cfg.request_timeout_ms, 31000))
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
    return int(sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items()))


def topic_configs(cfg: KafkaSettings, topic: str) -> dict[str, str]:
    """The topic-level config values Kafka reports for `topic`."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = _admin(cfg)
    try:
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    entries = res.get("topic", {}).get(topic, {}) if isinstance(res, dict) else {}
    return {k: str(v.get("value")) for k, v in entries.items()}


def make_stage_consumer(cfg: KafkaSettings, topic: str, group_id: str, name: str, **overrides: Any) -> Any:
    """A pipeline stage's consumer of ``topic`` in ``group_id``: offsets committed by the stage after its
    work is safe, from the earliest record of a new group.  The topics are made first: a consumer subscribed
    to a topic that does not exist yet learns of it only at its next metadata refresh (minutes)."""
    from kafka import KafkaConsumer

    ensure_topics(cfg, timeout_s=cfg.request_timeout_ms / 1000)
    conf: dict[str, Any] = {
        "bootstrap_servers": cfg.servers,
        "client_id": f"{cfg.client_id}-{name}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "request_timeout_ms": max(cfg.request_timeout_ms, 31000),  # above the group session timeout
        "metadata_max_age_ms": 30000,
    }
    conf.update(overrides)
    return KafkaConsumer(topic, **conf)


class ConsumerStalled(RuntimeError):
    """A stage's consumer read nothing for a while although its partitions hold records past its position."""


class StallWatch:
    """Notices a consumer that polls nothing while records wait for it, so the stage can reconnect.

    kafka-python's consumer has been seen (rarely, in the suite) to poll empty for minutes under
    ``read_committed`` while its partitions' last stable offsets were far past its position; a new
    consumer resumes from the committed offsets at once.  Redelivered records are harmless: every stage
    is idempotent on its keys."""

    def __init__(self, after_s: float = 15.0, expect_partitions: bool = False) -> None:
        self.after_s, self.expect_partitions = after_s, expect_partitions
        self._since = time.monotonic()

    def progressed(self) -> None:
        self._since = time.monotonic()

    def check(self, consumer: Any) -> None:
        """Raise ConsumerStalled when nothing came for ``after_s`` yet records are there to read."""
        if time.monotonic() - self._since < self.after_s:
            return
        self._since = time.monotonic()
        parts = list(consumer.assignment())
        if not parts:
            if self.expect_partitions:  # the only member of its group, still without partitions
                raise ConsumerStalled(f"no partitions assigned after {self.after_s:.0f} s")
            return
        ends = consumer.end_offsets(parts)
        behind = {str(tp): (consumer.position(tp), ends[tp]) for tp in parts if consumer.position(tp) < ends[tp]}
        if behind:
            raise ConsumerStalled(f"nothing read for {self.after_s:.0f} s at (position, end) {behind}")


def make_producer(cfg: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """An idempotent ``acks=all`` producer; raises KafkaUnavailable when no broker answers."""
    conf: dict[str, Any] = {
        "bootstrap_servers": cfg.servers,
        "client_id": cfg.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,  # idempotence keeps order up to 5
        "linger_ms": 5,
        "compression_type": cfg.compression,
        "max_request_size": cfg.max_message_bytes,
        "request_timeout_ms": cfg.request_timeout_ms,
        "delivery_timeout_ms": cfg.delivery_timeout_ms,
        "max_block_ms": cfg.request_timeout_ms,
        "bootstrap_timeout_ms": cfg.request_timeout_ms,
    }
    conf.update(overrides)
    try:
        return KafkaProducer(**conf)
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(f"no Kafka broker reachable at {cfg.bootstrap}: {exc}") from exc


class BrokerHealth:
    """Reachability of the brokers, probed at most every ``cfg.health_ttl_s`` (owned by the ingress' service)."""

    def __init__(self, cfg: KafkaSettings, timeout_s: float = 1.5) -> None:
        self.cfg, self.timeout_s = cfg, timeout_s
        self._last: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        """``{"state": "up"|"down", "bootstrap", "brokers", "latency_ms", "error"}``."""
        with self._lock:
            if self._last and time.monotonic() - self._last[0] < self.cfg.health_ttl_s:
                return dict(self._last[1])
            out = probe_brokers(self.cfg, self.timeout_s)
            self._last = (time.monotonic(), out)
            return dict(out)


def probe_brokers(cfg: KafkaSettings, timeout_s: float = 1.5) -> dict[str, Any]:
    """One look at the cluster: state, broker count and latency."""
    quiet_kafka_logs()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"bootstrap": cfg.bootstrap}
    try:
        admin = _admin(cfg, timeout_ms=int(timeout_s * 1000))
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        out.update(state="up", brokers=len(cluster.get("brokers", [])), error=None)
    except Exception as exc:  # any failure to talk to the cluster means "down" for health purposes
        out.update(state="down", brokers=0, error=f"{type(exc).__name__}: {exc}")
    out["latency_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return out
