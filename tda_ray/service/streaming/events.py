"""Publishing to Kafka and waiting for the acknowledgement: raw data events (``POST /v1/events`` ->
``raw_data_events``) and stream specs (``PUT /v1/streams/{id}`` -> the compacted ``tda_stream_specs``),
both keyed by ``source_id``."""

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

__all__ = ["KeyedPublisher", "RawEventPublisher"]


class KeyedPublisher:
    """One topic's publisher: every message acknowledged by Kafka (acks=all), or KafkaUnavailable.

    Owned by the job service of one ingress replica; the producer is made on first use.
    """

    def __init__(self, cfg: KafkaSettings, topic: str) -> None:
        self.cfg, self.topic = cfg, topic
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get(self) -> KafkaProducer:
        if self._producer is None:
            quiet_kafka_logs()
            self._producer = make_producer(self.cfg, compression_type=None)
        return self._producer

    def publish(self, keyed: Iterable[tuple[str, Mapping[str, Any]]], timeout_s: float = 10.0) -> None:
        with self._lock:  # one batch at a time keeps the failure handling simple
            producer = self._get()
            try:
                futures = [
                    producer.send(self.topic, key=key.encode(), value=messages.encode(msg)) for key, msg in keyed
                ]
                producer.flush(timeout=timeout_s)
                for f in futures:
                    f.get(timeout=0)
            except Exception as exc:
                # Start over with a fresh producer: its idempotence state may be stale after a failure.
                self._close()
                raise KafkaUnavailable(f"Kafka did not accept the messages: {type(exc).__name__}: {exc}") from exc

    def _close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=0)
            self._producer = None

    def close(self) -> None:
        with self._lock:
            self._close()


class RawEventPublisher(KeyedPublisher):
    """Validated events to raw_data_events."""

    def __init__(self, cfg: KafkaSettings) -> None:
        super().__init__(cfg, cfg.raw_topic)

    def publish_events(self, events: Iterable[Mapping[str, Any]], timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Publish every event (already validated), keyed by source id; returns the messages sent."""
        received = datetime.now(timezone.utc)
        msgs = [messages.build_raw_event(e, received_at=received) for e in events]
        self.publish(((m["source_id"], m) for m in msgs), timeout_s)
        return msgs
