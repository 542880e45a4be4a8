"""Ray window workers: ``tda_window_clouds`` -> persistent homology -> ``tda_window_features``.

A pool of detached, named Ray actors (``tda-window-worker-<i>``, restarted by Ray when their process dies)
in one Kafka consumer group, so the clouds' partitions are shared among them and a dead worker's partitions
move to the others.  Each takes up to ``worker_batch`` windows at a time, computes them with the function it
was given (the jobs layer's: this package never calls the engine itself), publishes every features message,
waits for Kafka's acknowledgement and only then commits the consumed offsets: at least once, a redelivered
window is scored once by the Flink stage (it dedupes by ``(source_id, seq)``).  A window that cannot be
computed gets a features message with ``error`` set, so its source's scoring never waits for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from kafka import KafkaConsumer, KafkaProducer

from tda_ray.service.settings import Settings
from tda_ray.service.streaming import messages
from tda_ray.service.streaming.kafka import StallWatch, make_producer, make_stage_consumer, quiet_kafka_logs

__all__ = ["WINDOW_WORKER_PREFIX", "start_window_workers", "stop_window_workers", "window_workers_status"]

log = logging.getLogger("tda_ray.streaming")

WINDOW_WORKER_PREFIX = "tda-window-worker"
NAMESPACE = "tda-ray"
# compute(list of window_cloud messages) -> one {"features", "vector", "n_points"} or {"error"} per cloud
WindowCompute = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class WindowWorker:
    """Ray actor body: a consumer thread taking window clouds in batches."""

    def __init__(self, settings: Settings, compute: WindowCompute, index: int) -> None:
        logging.basicConfig(level=logging.INFO)
        quiet_kafka_logs()
        self.cfg, self.stream, self.compute, self.index = settings.kafka, settings.stream, compute, index
        self.stats: dict[str, Any] = {
            "windows": 0,
            "errors": 0,
            "batches": 0,
            "last_batch_s": None,
            "state": "starting",
        }
        self._watch = StallWatch()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tda-window-worker", daemon=True)
        self._thread.start()

    def status(self) -> dict[str, Any]:
        return {**self.stats, "alive": self._thread.is_alive(), "pid": os.getpid(), "index": self.index}

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _connect(self) -> tuple[KafkaConsumer, KafkaProducer]:
        consumer = make_stage_consumer(
            self.cfg,
            self.cfg.clouds_topic,
            self.stream.worker_group_id,
            f"window-worker-{self.index}",
            max_poll_records=self.stream.worker_batch,
        )
        return consumer, make_producer(self.cfg)

    def _loop(self) -> None:
        consumer: KafkaConsumer | None = None
        producer: KafkaProducer | None = None
        while not self._stop.is_set():
            try:
                if consumer is None or producer is None:
                    consumer, producer = self._connect()
                    self.stats["state"] = "up"
                    self._watch.progressed()
                self._step(consumer, producer)
            except Exception as exc:  # broker gone: drop the clients, back off, reconnect (nothing committed)
                self.stats.update(state="down", last_error=f"{type(exc).__name__}: {exc}")
                log.warning("window worker %d: %s", self.index, exc)
                for client in (consumer, producer):
                    with contextlib.suppress(Exception):
                        client.close()  # type: ignore[union-attr]
                consumer = producer = None
                self._stop.wait(1.0)
        for client in (consumer, producer):
            with contextlib.suppress(Exception):
                client.close()  # type: ignore[union-attr]

    def _step(self, consumer: KafkaConsumer, producer: KafkaProducer) -> None:
        batch = consumer.poll(timeout_ms=200, max_records=self.stream.worker_batch)
        records = [r for part in batch.values() for r in part]
        if not records:
            self._watch.check(consumer)
            return
        self._watch.progressed()
        t0 = time.perf_counter()
        clouds, bad = [], 0
        for r in records:
            try:
                clouds.append(json.loads(r.value))
            except (ValueError, TypeError):
                bad += 1  # not a window (the Flink job writes only valid ones); nothing to score
        results = self.compute(clouds) if clouds else []
        now = int(time.time() * 1000)
        futures = []
        for cloud, computed in zip(clouds, results, strict=True):
            msg = messages.build_window_features(cloud, computed, now)
            self.stats["errors"] += 1 if msg.get("error") else 0
            futures.append(
                producer.send(self.cfg.features_topic, key=msg["source_id"].encode(), value=messages.encode(msg))
            )
        producer.flush(timeout=self.cfg.delivery_timeout_ms / 1000 + 5)
        for f in futures:
            f.get(timeout=0)
        consumer.commit()  # only after Kafka has every features message: a crash before means a redelivery
        self.stats["windows"] += len(clouds)
        self.stats["errors"] += bad
        self.stats["batches"] += 1
        self.stats["last_batch_s"] = round(time.perf_counter() - t0, 4)


_WorkerClass: Any = ray.remote(WindowWorker)


def pool_size(settings: Settings) -> int:
    if settings.stream.workers is not None:
        return max(1, settings.stream.workers)
    cpus = float(ray.cluster_resources().get("CPU", 0)) if ray.is_initialized() else 0.0
    return max(1, int(cpus // 2))


def start_window_workers(settings: Settings, compute: WindowCompute) -> list[Any]:
    """Start (or find) the pool of detached, named window workers; idempotent across processes."""
    handles = []
    for i in range(pool_size(settings)):
        handles.append(
            _WorkerClass.options(
                name=f"{WINDOW_WORKER_PREFIX}-{i}",
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                max_restarts=-1,
                max_task_retries=-1,
                max_concurrency=4,  # status() answers while the consumer thread works
                num_cpus=settings.stream.worker_cpus,
            ).remote(settings, compute, i)
        )
    return handles


def _workers() -> list[Any]:
    out = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == NAMESPACE and actor["name"].startswith(WINDOW_WORKER_PREFIX):
            with contextlib.suppress(ValueError):
                out.append(ray.get_actor(actor["name"], namespace=NAMESPACE))
    return out


def window_workers_status(timeout_s: float = 2.0) -> list[dict[str, Any] | None]:
    """Each worker's status (None for one that does not answer in time)."""
    out: list[dict[str, Any] | None] = []
    for handle in _workers():
        try:
            out.append(dict(ray.get(handle.status.remote(), timeout=timeout_s)))
        except Exception:
            out.append(None)
    return out


def stop_window_workers(timeout_s: float = 10.0) -> None:
    for handle in _workers():
        with contextlib.suppress(Exception):
            ray.get(handle.shutdown.remote(), timeout=timeout_s)
        ray.kill(handle, no_restart=True)
