"""The score ingester: ``tda_anomaly_scores`` -> the job store, for ``GET /v1/streams/{id}/scores`` and
``GET /v1/alerts``.

A detached, named Ray actor (``tda-score-ingester``, restarted by Ray when its process dies) reads the
scores the Flink job committed (``isolation.level=read_committed``), hands each batch to the store through
the port the jobs layer provides (keyed by ``(source_id, seq)``, so a redelivery changes nothing) and
commits the offsets only then.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

import ray
from kafka import KafkaConsumer

from tda_ray.service.settings import Settings
from tda_ray.service.streaming.kafka import StallWatch, make_stage_consumer, quiet_kafka_logs

__all__ = ["SCORE_INGESTER_NAME", "ScoreStore", "score_ingester_status", "start_score_ingester"]

log = logging.getLogger("tda_ray.streaming")

SCORE_INGESTER_NAME = "tda-score-ingester"
NAMESPACE = "tda-ray"


class ScoreStore(Protocol):
    def save_scores(self, records: list[dict[str, Any]]) -> int: ...


ScoreStoreFactory = Callable[[Settings], ScoreStore]


IDLE_WAIT_S = 0.1


class ScoreIngester:
    def __init__(self, settings: Settings, store_factory: ScoreStoreFactory) -> None:
        logging.basicConfig(level=logging.INFO)
        quiet_kafka_logs()
        self.cfg, self.stream = settings.kafka, settings.stream
        self.store = store_factory(settings)
        self.stats: dict[str, Any] = {
            "ingested": 0,
            "redelivered": 0,
            "reconnects": 0,
            "state": "starting",
            "last_error": None,
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tda-score-ingester", daemon=True)
        self._thread.start()

    def status(self) -> dict[str, Any]:
        return {**self.stats, "alive": self._thread.is_alive(), "pid": os.getpid()}

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        consumer: KafkaConsumer | None = None
        watch = StallWatch(expect_partitions=True)  # the group's only member
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = make_stage_consumer(
                        self.cfg,
                        self.cfg.scores_topic,
                        self.stream.scores_group_id,
                        "score-ingester",
                        isolation_level="read_committed",
                    )
                    self.stats["state"] = "up"
                    watch.progressed()
                batch = consumer.poll(timeout_ms=200, max_records=500)
                records = [json.loads(r.value) for part in batch.values() for r in part if r.value]
                if not records:
                    # Under read_committed the broker answers a fetch at once while the Flink job's transaction
                    # is open (that is, nearly always), so an empty poll would spin: wait a little instead.
                    self._stop.wait(IDLE_WAIT_S)
                    watch.check(consumer)
                    continue
                watch.progressed()
                new = self.store.save_scores(records)
                self.stats["ingested"] += new
                self.stats["redelivered"] += len(records) - new
                consumer.commit()
            except Exception as exc:  # broker or store briefly gone: reconnect; uncommitted scores come again
                self.stats.update(state="down", last_error=f"{type(exc).__name__}: {exc}")
                self.stats["reconnects"] += 1
                log.warning("score ingester: %s", exc)
                with contextlib.suppress(Exception):
                    consumer.close()  # type: ignore[union-attr]
                consumer = None
                self._stop.wait(1.0)
        with contextlib.suppress(Exception):
            consumer.close()  # type: ignore[union-attr]


_IngesterClass: Any = ray.remote(ScoreIngester)


def start_score_ingester(settings: Settings, store_factory: ScoreStoreFactory) -> Any:
    return _IngesterClass.options(
        name=SCORE_INGESTER_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
        max_concurrency=4,
        num_cpus=0,
    ).remote(settings, store_factory)


def score_ingester_status(timeout_s: float = 2.0) -> dict[str, Any] | None:
    try:
        handle = ray.get_actor(SCORE_INGESTER_NAME, namespace=NAMESPACE)
        return dict(ray.get(handle.status.remote(), timeout=timeout_s))
    except Exception:
        return None
