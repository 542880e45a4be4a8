"""The outbox sink: finished jobs' messages from the job store's outbox to ``tda_feature_results``.

Finished jobs get an outbox row carrying their message in the same transaction as their result (the jobs
layer builds it). :class:`OutboxSink` polls the outbox (every ``outbox_poll_s``) through an :class:`Outbox`
port the jobs layer provides, publishes each message and marks it published only after Kafka
acknowledged it (``acks=all``): at-least-once, a duplicate carries the same key.  When Kafka is down, jobs
still succeed; rows wait and the sink retries with back-off.  It runs inside the detached, named Ray actor
``tda-kafka-sink`` (:func:`start_sink`), which Ray restarts if its process dies; a new incarnation resumes
draining the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import ray
from kafka import KafkaProducer

from tda_ray.service.settings import KafkaSettings, Settings
from tda_ray.service.streaming import messages
from tda_ray.service.streaming.kafka import (
    BrokerHealth,
    KafkaUnavailable,
    ensure_topics,
    group_lag,
    make_producer,
    quiet_kafka_logs,
)

__all__ = [
    "SINK_ACTOR_NAME",
    "Outbox",
    "OutboxItem",
    "OutboxSink",
    "StreamingHealth",
    "get_sink",
    "sink_status",
    "start_sink",
    "stop_sink",
]

log = logging.getLogger("tda_ray.streaming")

SINK_ACTOR_NAME = "tda-kafka-sink"
SINK_NAMESPACE = "tda-ray"


@dataclass(frozen=True)
class OutboxItem:
    job_id: str
    message: dict[str, Any]


class Outbox(Protocol):
    """What the sink needs of the job store's outbox (implemented by the jobs layer)."""

    def pending(self, limit: int) -> list[OutboxItem]: ...

    def mark_published(self, job_id: str) -> bool: ...

    def mark_failed(self, job_id: str, error: str) -> None: ...


@dataclass
class SinkStats:
    state: str = "starting"  # starting | up | down
    published: int = 0
    failed_attempts: int = 0
    pending: int = 0
    last_error: str | None = None
    last_published_at: str | None = None
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class OutboxSink:
    """Drains the outbox into tda_feature_results (a thread; at-least-once)."""

    def __init__(
        self,
        cfg: KafkaSettings,
        outbox: Outbox,
        on_published: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.stats = SinkStats()
        self._producer: KafkaProducer | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._topics_ready = False
        self._on_published = on_published
        self._thread = threading.Thread(target=self._loop, name="tda-kafka-sink", daemon=True)

    def start(self) -> OutboxSink:
        quiet_kafka_logs()
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

    def _ready(self) -> bool:
        """Topics created (the start-up admin step, idempotent) and a producer at hand."""
        if not self._topics_ready:
            try:
                ensure_topics(self.cfg, timeout_s=self.cfg.request_timeout_ms / 1000)
                self._topics_ready = True
            except KafkaUnavailable as exc:
                self._set_down(str(exc))
                return False
        if self._producer is None:
            try:
                self._producer = make_producer(self.cfg)
            except KafkaUnavailable as exc:
                self._set_down(str(exc))
                return False
        return True

    def drain_once(self) -> tuple[bool, bool]:
        """Publish one batch of pending rows. Returns (something was published, no Kafka error)."""
        rows = self.outbox.pending(self.cfg.outbox_batch)
        self.stats.pending = len(rows)
        if not self._ready():
            return False, False
        if not rows:
            self.stats.state, self.stats.last_error = "up", None
            return False, True
        sent = self._send(rows)
        if sent is None:
            return False, False
        published, all_ok = self._confirm(sent)
        if all_ok:
            if self.stats.state != "up":
                log.info("Kafka sink: publishing to %s on %s", self.cfg.results_topic, self.cfg.bootstrap)
            self.stats.state = "up"
            self.stats.last_error = None
        else:
            self._close_producer()  # fresh idempotent producer for the retry
        return published > 0, all_ok

    def _send(self, rows: list[OutboxItem]) -> list[tuple[str, Any, dict[str, Any]]] | None:
        assert self._producer is not None
        sent: list[tuple[str, Any, dict[str, Any]]] = []
        for row in rows:
            msg = {**row.message, "published_at": _now_iso()}
            try:
                fut = self._producer.send(self.cfg.results_topic, key=row.job_id.encode(), value=messages.encode(msg))
            except Exception as exc:  # metadata timeout: the broker is down
                self._close_producer()
                self._set_down(f"{type(exc).__name__}: {exc}")
                return None
            sent.append((row.job_id, fut, msg))
        try:
            self._producer.flush(timeout=self.cfg.delivery_timeout_ms / 1000 + 5)
        except Exception as exc:
            self._close_producer()
            self._set_down(f"{type(exc).__name__}: {exc}")
            return None
        return sent

    def _confirm(self, sent: list[tuple[str, Any, dict[str, Any]]]) -> tuple[int, bool]:
        all_ok = True
        published = 0
        for job_id, fut, msg in sent:
            try:
                fut.get(timeout=0)
            except Exception as exc:
                all_ok = False
                self.outbox.mark_failed(job_id, f"{type(exc).__name__}: {exc}")
                self._set_down(f"{type(exc).__name__}: {exc}")
                continue
            # Only after Kafka acknowledged it (acks=all): a crash in between means a duplicate, never a loss.
            self.outbox.mark_published(job_id)
            self.stats.published += 1
            published += 1
            self.stats.last_published_at = msg["published_at"]
            if self._on_published is not None:
                self._on_published(job_id, msg)
        return published, all_ok


OutboxFactory = Callable[[Settings], Outbox]


class SinkActor:
    """Ray actor body: one OutboxSink per actor process, over the outbox ``outbox_factory`` opens."""

    def __init__(self, settings: Settings, outbox_factory: OutboxFactory) -> None:
        logging.basicConfig(level=logging.INFO)
        self.sink = OutboxSink(settings.kafka, outbox_factory(settings)).start()

    def status(self) -> dict[str, Any]:
        return {**self.sink.status(), "pid": os.getpid()}

    def notify(self) -> None:
        self.sink.notify()

    def shutdown(self) -> None:
        self.sink.stop()


_SinkActorClass: Any = ray.remote(SinkActor)


def start_sink(settings: Settings, outbox_factory: OutboxFactory) -> Any:
    """Start (or find) the detached, named sink actor; returns its handle. Idempotent across processes.

    ``max_restarts=-1``: if the actor's process dies, Ray starts a new one, which resumes the outbox.
    Does not wait for Kafka: the actor creates the topics (retrying until the broker answers), so a broker
    that is down at start-up delays nothing but the publishing.
    """
    return _SinkActorClass.options(
        name=SINK_ACTOR_NAME,
        namespace=SINK_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
        max_concurrency=4,  # status() answers while a notify() or shutdown() is queued
        num_cpus=0,
    ).remote(settings, outbox_factory)


def get_sink() -> Any | None:
    """The running sink actor's handle, or None."""
    try:
        return ray.get_actor(SINK_ACTOR_NAME, namespace=SINK_NAMESPACE)
    except ValueError:
        return None


def sink_status(timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The sink actor's status, or None when it is not running (or does not answer in time)."""
    handle = get_sink()
    if handle is None:
        return None
    try:
        return dict(ray.get(handle.status.remote(), timeout=timeout_s))
    except Exception:
        return None


def stop_sink(timeout_s: float = 10.0) -> None:
    """Stop and remove the sink actor (pending rows stay in the outbox)."""
    handle = get_sink()
    if handle is None:
        return
    with contextlib.suppress(Exception):
        ray.get(handle.shutdown.remote(), timeout=timeout_s)
    ray.kill(handle, no_restart=True)


class StreamingHealth:
    """The Kafka part of ``GET /v1/health``: broker reachability, the sink's view (outbox backlog), and each
    stage of the stream pipeline: its consumer group's backlog (the Flink stages commit their offsets on
    checkpoints, so a growing backlog is a stalled stage), the window workers and the score ingester."""

    def __init__(self, settings: Settings) -> None:
        self.cfg, self.settings = settings.kafka, settings
        self._broker = BrokerHealth(settings.kafka)

    def __call__(self) -> dict[str, Any]:
        if not self.cfg.enabled:
            return {"enabled": False}
        broker = self._broker()
        out: dict[str, Any] = {"enabled": True, "broker": broker, "sink": sink_status()}
        if broker.get("state") == "up":
            out["streams"] = self._streams()
        return out

    def _streams(self) -> dict[str, Any]:
        from tda_ray.service.streaming.scores import score_ingester_status
        from tda_ray.service.streaming.windows import window_workers_status

        flink, stream, k = self.settings.flink, self.settings.stream, self.cfg
        stages = {
            "flink_windows": (f"{flink.stream_group_id}-events", k.raw_topic),
            "window_workers": (stream.worker_group_id, k.clouds_topic),
            "flink_scores": (f"{flink.stream_group_id}-features", k.features_topic),
            "score_ingester": (stream.scores_group_id, k.scores_topic),
        }
        out: dict[str, Any] = {}
        for name, (group, topic) in stages.items():
            try:
                out[name] = {"group": group, "topic": topic, "backlog": group_lag(self.cfg, group, topic)}
            except Exception as exc:  # a health probe reports, it never fails
                out[name] = {"group": group, "topic": topic, "error": f"{type(exc).__name__}: {exc}"}
        out["window_workers"]["workers"] = window_workers_status()
        out["score_ingester"]["actor"] = score_ingester_status()
        return out
