"""Apache Kafka: topics, producers, the raw-event publisher and the result sink. The only module importing kafka.

Topic strategy (values from :class:`tda_ray.settings.Settings`, env ``TDA_KAFKA_*``; see README "Kafka"):

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

The sink: finished jobs get an ``outbox`` row in the job store in the same transaction as their result
(:meth:`tda_ray.storage.Store.finish_success`). :class:`OutboxSink` polls the outbox (every
``kafka_outbox_poll_s``), publishes each row's message and marks it published only after Kafka acknowledged
it. When Kafka is down, jobs still succeed; rows wait and the sink retries with back-off. It runs inside the
detached, named Ray actor ``tda-kafka-sink`` (:func:`start_sink`), which Ray restarts if its process dies;
a new incarnation simply resumes draining the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from tda_ray import messages
from tda_ray.settings import Settings

log = logging.getLogger("tda_ray.streaming")

SINK_ACTOR_NAME = "tda-kafka-sink"
SINK_NAMESPACE = "tda-ray"
HOUR_MS = 3600 * 1000


class KafkaUnavailable(RuntimeError):
    """Kafka did not take the messages (broker down, timeout, rejected); nothing was acknowledged."""


def _quiet_kafka_logs() -> None:
    # kafka-python logs every failed reconnect at ERROR; during an outage the sink reports the state itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------- configuration and topics


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    key: str  # what the producers use as message key (documentation, checked by tests)


@dataclass(frozen=True)
class KafkaConfig:
    """Everything streaming needs, resolved from :class:`Settings` (the one place settings live)."""

    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "tda-ray"
    raw_topic: str = "raw_data_events"
    results_topic: str = "tda_feature_results"
    stats_topic: str = "tda_feature_stats"
    partitions: int = 3
    replication_factor: int = 1
    min_insync_replicas: int = 1
    raw_retention_ms: int = 24 * HOUR_MS
    results_retention_ms: int = 7 * 24 * HOUR_MS
    stats_retention_ms: int = 7 * 24 * HOUR_MS
    max_message_bytes: int = 8 * 1024 * 1024
    outbox_poll_s: float = 0.2
    outbox_batch: int = 200
    request_timeout_ms: int = 5000
    delivery_timeout_ms: int = 15000
    compression: str | None = "gzip"

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"kafka partitions must be >= 1, got {self.partitions}")
        if self.replication_factor < 1:
            raise ValueError(f"kafka replication factor must be >= 1, got {self.replication_factor}")
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise ValueError(
                f"kafka min.insync.replicas ({self.min_insync_replicas}) must be between 1 and the replication "
                f"factor ({self.replication_factor}), or acks=all writes can never succeed"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConfig:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            client_id=settings.kafka_client_id,
            raw_topic=settings.kafka_raw_topic,
            results_topic=settings.kafka_results_topic,
            stats_topic=settings.kafka_stats_topic,
            partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
            raw_retention_ms=settings.kafka_raw_retention_ms,
            results_retention_ms=settings.kafka_results_retention_ms,
            stats_retention_ms=settings.kafka_stats_retention_ms,
            max_message_bytes=settings.kafka_max_message_bytes,
            outbox_poll_s=settings.kafka_outbox_poll_s,
        )

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    def topics(self) -> list[TopicSpec]:
        common = {"min.insync.replicas": str(self.min_insync_replicas)}
        return [
            TopicSpec(
                self.raw_topic, self.partitions, self.replication_factor,
                {**common, "cleanup.policy": "delete", "retention.ms": str(self.raw_retention_ms)},
                key="source_id",
            ),
            TopicSpec(
                self.results_topic, self.partitions, self.replication_factor,
                {
                    **common,
                    # Duplicates (same key) collapse on compaction; old results still expire.
                    "cleanup.policy": "compact,delete",
                    "retention.ms": str(self.results_retention_ms),
                    "max.message.bytes": str(self.max_message_bytes),
                },
                key="job_id",
            ),
            TopicSpec(
                self.stats_topic, self.partitions, self.replication_factor,
                {**common, "cleanup.policy": "delete", "retention.ms": str(self.stats_retention_ms)},
                key="window key (Flink)",
            ),
        ]  # fmt: skip


def _admin(cfg: KafkaConfig, timeout_ms: int | None = None) -> KafkaAdminClient:
    t = timeout_ms or cfg.request_timeout_ms
    return KafkaAdminClient(
        bootstrap_servers=cfg.servers,
        client_id=f"{cfg.client_id}-admin",
        request_timeout_ms=t,
        bootstrap_timeout_ms=t,
    )


def ensure_topics(cfg: KafkaConfig, timeout_s: float = 30.0) -> dict[str, str]:
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


def _ensure_topics_once(cfg: KafkaConfig) -> dict[str, str]:
    admin = _admin(cfg)
    try:
        outcome: dict[str, str] = {}
        for spec in cfg.topics():
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
        names = [s.name for s in cfg.topics()]
        deadline = time.monotonic() + cfg.request_timeout_ms / 1000
        counts = partition_counts(cfg, names, admin=admin)
        while len(counts) < len(names) and time.monotonic() < deadline:
            time.sleep(0.05)
            counts = partition_counts(cfg, names, admin=admin)
        if len(counts) < len(names):
            raise KafkaError(f"topics not visible yet: {sorted(set(names) - set(counts))}")
        grow = {s.name: NewPartitions(s.partitions) for s in cfg.topics() if 0 < counts.get(s.name, 0) < s.partitions}
        if grow:
            admin.create_partitions(grow, timeout_ms=cfg.request_timeout_ms)
            outcome.update(dict.fromkeys(grow, "grown"))
        return outcome
    finally:
        admin.close()


def partition_counts(cfg: KafkaConfig, topics: Sequence[str], admin: KafkaAdminClient | None = None) -> dict[str, int]:
    """{topic: number of partitions} for the topics that exist."""
    own = admin is None
    client = admin or _admin(cfg)
    try:
        described = client.describe_topics(list(topics))
        return {t["name"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}
    finally:
        if own:
            client.close()


def topic_configs(cfg: KafkaConfig, topic: str) -> dict[str, str]:
    """The topic-level config values Kafka reports for `topic`."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = _admin(cfg)
    try:
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    entries = res.get("topic", {}).get(topic, {}) if isinstance(res, dict) else {}
    return {k: str(v.get("value")) for k, v in entries.items()}


# --------------------------------------------------------------------------- producers and health


def make_producer(cfg: KafkaConfig, **overrides: Any) -> KafkaProducer:
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


_HEALTH_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}
_HEALTH_TTL_S = 2.0


def broker_health(cfg: KafkaConfig, timeout_s: float = 1.5, max_age_s: float = _HEALTH_TTL_S) -> dict[str, Any]:
    """``{"state": "up"|"down", "bootstrap", "brokers", "latency_ms", "error"}``, cached for `max_age_s`."""
    hit = _HEALTH_CACHE.get(cfg.bootstrap)
    if hit and time.monotonic() - hit[0] < max_age_s:
        return dict(hit[1])
    _quiet_kafka_logs()
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
    _HEALTH_CACHE[cfg.bootstrap] = (time.monotonic(), out)
    return dict(out)


# --------------------------------------------------------------------------- raw events


class RawEventPublisher:
    """Publishes validated events to raw_data_events and waits for Kafka's acknowledgement (per process)."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get(self) -> KafkaProducer:
        if self._producer is None:
            _quiet_kafka_logs()
            self._producer = make_producer(self.cfg, compression_type=None)
        return self._producer

    def publish(self, events: Iterable[Mapping[str, Any]], timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Publish every event (already validated), keyed by source id; all or KafkaUnavailable."""
        received = datetime.now(timezone.utc)
        msgs = [messages.build_raw_event(e, received_at=received) for e in events]
        with self._lock:  # one batch at a time keeps the failure handling simple
            producer = self._get()
            try:
                futures = [
                    producer.send(self.cfg.raw_topic, key=m["source_id"].encode(), value=messages.encode(m))
                    for m in msgs
                ]
                producer.flush(timeout=timeout_s)
                for f in futures:
                    f.get(timeout=0)
            except Exception as exc:
                # Start over with a fresh producer: its idempotence state may be stale after a failure.
                self._close()
                raise KafkaUnavailable(f"Kafka did not accept the events: {type(exc).__name__}: {exc}") from exc
        return msgs

    def _close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=0)
            self._producer = None

    def close(self) -> None:
        with self._lock:
            self._close()


_RAW_PUBLISHERS: dict[KafkaConfig, RawEventPublisher] = {}
_RAW_LOCK = threading.Lock()


def publish_raw_events(settings: Settings, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Publish events (dicts of :class:`tda_ray.messages.RawEventIn` fields); returns the messages sent."""
    cfg = KafkaConfig.from_settings(settings)
    with _RAW_LOCK:
        pub = _RAW_PUBLISHERS.get(cfg)
        if pub is None:
            pub = _RAW_PUBLISHERS[cfg] = RawEventPublisher(cfg)
    return pub.publish(events)


# --------------------------------------------------------------------------- the outbox sink


def result_message(store: Any, job_id: str, max_bytes: int) -> dict[str, Any]:
    """The tda_feature_results message of a succeeded job, built from the job store."""
    job = store.get_job(job_id)
    res = store.get_result(job_id)
    return messages.build_result_message(
        job_id=job.id,
        pointcloud_id=job.pointcloud_id,
        algorithm=job.algorithm,
        params=job.params,
        diagrams=res.diagrams,
        finished_at=job.finished_at,
        n_points=res.summary.get("n_points"),
        landmarks=res.summary.get("landmarks"),
        max_bytes=max_bytes - 64 * 1024,  # headroom for the record batch framing
    )


@dataclass
class SinkStats:
    state: str = "starting"  # starting | up | down
    published: int = 0
    failed_attempts: int = 0
    pending: int = 0
    last_error: str | None = None
    last_published_at: str | None = None
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


class OutboxSink:
    """Drains the job store's outbox into tda_feature_results (a thread; at-least-once)."""

    def __init__(
        self,
        settings: Settings,
        store: Any = None,
        on_published: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        from tda_ray.storage import Store

        self.settings = settings
        self.cfg = KafkaConfig.from_settings(settings)
        self.store = store if store is not None else Store(settings)
        self.stats = SinkStats()
        self._producer: KafkaProducer | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._topics_ready = False
        self._on_published = on_published
        self._thread = threading.Thread(target=self._loop, name="tda-kafka-sink", daemon=True)

    def start(self) -> OutboxSink:
        _quiet_kafka_logs()
        self._thread.start()
        return self

    def notify(self) -> None:
        """Drain now instead of at the next poll (e.g. right after a job finished)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)
        self._close_producer(timeout=timeout_s)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "state": s.state,
            "published": s.published,
            "pending": s.pending,
            "failed_attempts": s.failed_attempts,
            "last_error": s.last_error,
            "last_published_at": s.last_published_at,
            "started_at": s.started_at,
            "alive": self.alive(),
        }

    def _close_producer(self, timeout: float = 0.0) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=timeout)
            self._producer = None

    def _set_down(self, error: str) -> None:
        if self.stats.state != "down":
            log.warning("Kafka sink: broker unavailable (%s); results wait in the outbox", error)
        self.stats.state = "down"
        self.stats.last_error = error
        self.stats.failed_attempts += 1

    def _loop(self) -> None:
        backoff = self.cfg.outbox_poll_s
        while not self._stop.is_set():
            try:
                had_work, ok = self.drain_once()
            except Exception as exc:  # e.g. the store is briefly locked: log, back off, go on
                log.exception("Kafka sink: drain failed")
                had_work, ok = False, False
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if ok:
                backoff = self.cfg.outbox_poll_s
                if had_work:
                    continue  # more rows may be waiting: no pause while catching up
                wait = self.cfg.outbox_poll_s
            else:
                backoff = min(backoff * 2, 5.0)
                wait = backoff
            self._wake.wait(wait)
            self._wake.clear()

    def drain_once(self) -> tuple[bool, bool]:
        """Publish one batch of pending rows. Returns (something was published, no Kafka error)."""
        reached_kafka = False
        if not self._topics_ready:
            # The start-up admin step: create the topics (idempotent) before anything is published.
            try:
                ensure_topics(self.cfg, timeout_s=self.cfg.request_timeout_ms / 1000)
                self._topics_ready = reached_kafka = True
            except KafkaUnavailable as exc:
                self._set_down(str(exc))
                self.stats.pending = len(self.store.pending_outbox(limit=self.cfg.outbox_batch))
                return False, False
        rows = self.store.pending_outbox(limit=self.cfg.outbox_batch)
        self.stats.pending = len(rows)
        if not rows:
            if reached_kafka:
                self.stats.state, self.stats.last_error = "up", None
            return False, True
        try:
            if self._producer is None:
                self._producer = make_producer(self.cfg)
        except KafkaUnavailable as exc:
            self._close_producer()
            self._set_down(str(exc))
            return False, False
        sent: list[tuple[str, Any, dict[str, Any]]] = []
        for row in rows:
            try:
                msg = result_message(self.store, row.job_id, self.cfg.max_message_bytes)
            except Exception as exc:  # a broken row must not block the others; it stays pending
                log.error("Kafka sink: cannot build the message of job %s: %s", row.job_id, exc)
                self.store.mark_outbox_failed(row.job_id, f"build: {type(exc).__name__}: {exc}")
                continue
            msg["published_at"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
            try:
                fut = self._producer.send(self.cfg.results_topic, key=row.job_id.encode(), value=messages.encode(msg))
            except Exception as exc:  # metadata timeout: the broker is down
                self._close_producer()
                self._set_down(f"{type(exc).__name__}: {exc}")
                return False, False
            sent.append((row.job_id, fut, msg))
        try:
            self._producer.flush(timeout=self.cfg.delivery_timeout_ms / 1000 + 5)
        except Exception as exc:
            self._close_producer()
            self._set_down(f"{type(exc).__name__}: {exc}")
            return False, False
        all_ok = True
        published = 0
        for job_id, fut, msg in sent:
            try:
                fut.get(timeout=0)
            except Exception as exc:
                all_ok = False
                self.store.mark_outbox_failed(job_id, f"{type(exc).__name__}: {exc}")
                self._set_down(f"{type(exc).__name__}: {exc}")
                continue
            # Only after Kafka acknowledged it (acks=all): a crash in between means a duplicate, never a loss.
            self.store.mark_outbox_published(job_id)
            self.stats.published += 1
            published += 1
            self.stats.last_published_at = msg["published_at"]
            if self._on_published is not None:
                self._on_published(job_id, msg)
        if all_ok:
            if self.stats.state != "up":
                log.info("Kafka sink: publishing to %s on %s", self.cfg.results_topic, self.cfg.bootstrap)
            self.stats.state = "up"
            self.stats.last_error = None
        else:
            self._close_producer()  # fresh idempotent producer for the retry
        return published > 0, all_ok


class SinkActor:
    """Ray actor body: one OutboxSink per actor process. Created by :func:`start_sink`."""

    def __init__(self, settings: Settings) -> None:
        logging.basicConfig(level=logging.INFO)
        self.sink = OutboxSink(settings).start()

    def status(self) -> dict[str, Any]:
        import os

        return {**self.sink.status(), "pid": os.getpid()}

    def notify(self) -> None:
        self.sink.notify()

    def shutdown(self) -> None:
        self.sink.stop()


def start_sink(settings: Settings) -> Any:
    """Start (or find) the detached, named sink actor; returns its handle. Idempotent across processes.

    ``max_restarts=-1``: if the actor's process dies, Ray starts a new one, which resumes the outbox.
    """
    import ray

    cls = ray.remote(SinkActor)
    return cls.options(
        name=SINK_ACTOR_NAME,
        namespace=SINK_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
        max_concurrency=4,  # status() answers while a notify() or shutdown() is queued
        num_cpus=0,
    ).remote(settings)


def get_sink() -> Any | None:
    """The running sink actor's handle, or None."""
    import ray

    try:
        return ray.get_actor(SINK_ACTOR_NAME, namespace=SINK_NAMESPACE)
    except ValueError:
        return None


def sink_status(timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The sink actor's status, or None when it is not running (or does not answer in time)."""
    import ray

    handle = get_sink()
    if handle is None:
        return None
    try:
        return dict(ray.get(handle.status.remote(), timeout=timeout_s))
    except Exception:
        return None


def stop_sink(timeout_s: float = 10.0) -> None:
    """Stop and remove the sink actor (pending rows stay in the outbox)."""
    import ray

    handle = get_sink()
    if handle is None:
        return
    with contextlib.suppress(Exception):
        ray.get(handle.shutdown.remote(), timeout=timeout_s)
    ray.kill(handle, no_restart=True)


def startup_hook(settings: Settings) -> None:
    """For :func:`tda_ray.jobs.startup_hooks`: start the sink actor when Kafka is enabled.

    Does not wait for Kafka: the actor creates the topics (retrying until the broker answers), so a
    broker that is down at start-up delays nothing but the publishing.
    """
    if settings.kafka_enabled:
        start_sink(settings)


def health(settings: Settings) -> dict[str, Any]:
    """Kafka part of GET /v1/health: broker reachability plus the sink's view (outbox backlog)."""
    if not settings.kafka_enabled:
        return {"enabled": False}
    cfg = KafkaConfig.from_settings(settings)
    return {"enabled": True, "broker": broker_health(cfg), "sink": sink_status()}
