"""Raw data events into Kafka: ``POST /v1/events`` -> ``raw_data_events``, keyed by ``source_id``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaProducer

from tda_ray.service.settings import KafkaSettings
from tda_ray.service.streaming import messages
from tda_ray.service.streaming.kafka import KafkaUnavailable, make_producer, quiet_kafka_logs

__all__ = ["RawEventPublisher"]


class RawEventPublisher:
    """Publishes validated events to raw_data_events and waits for Kafka's acknowledgement.

    One per ingress replica (its job service owns it); the producer is made on first use.
    """

    def __init__(self, cfg: KafkaSettings) -> None:
        self.cfg = cfg
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get(self) -> KafkaProducer:
        if self._producer is None:
            quiet_kafka_logs()
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
