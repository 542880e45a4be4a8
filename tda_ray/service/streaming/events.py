"""Publishing to Kafka and waiting for the acknowledgement, keyed by ``source_id``: raw data events
(``POST /v1/events`` -> ``raw_data_events``) and stream specs (``PUT /v1/streams/{id}`` -> the compacted
``tda_stream_specs``).

A batch is encoded and checked against its size limits before anything is sent (:func:`encode_events`), so a
batch Kafka could not take is refused whole.  Kafka has no all-or-nothing write across partitions without
transactions, so when it fails part-way the publisher says exactly which events it acknowledged
(:class:`PartlyPublished`); the event ids make a retry safe for consumers that drop repeated ids.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaProducer

from tda_ray.service.settings import KafkaSettings
from tda_ray.service.streaming import messages
from tda_ray.service.streaming.kafka import KafkaUnavailable, make_producer, quiet_kafka_logs

__all__ = [
    "EncodedEvent",
    "EventsTooLarge",
    "KeyedPublisher",
    "PartlyPublished",
    "RawEventPublisher",
    "encode_events",
]


@dataclass(frozen=True)
class EncodedEvent:
    event_id: str
    key: bytes
    value: bytes


class EventsTooLarge(ValueError):
    """An event, or the batch, encodes to more bytes than its limit; nothing was sent."""


class PartlyPublished(KafkaUnavailable):
    """Kafka took some events of the batch and not the others (``published``/``not_published``: their ids)."""

    def __init__(self, message: str, published: list[str], not_published: list[str]) -> None:
        super().__init__(message)
        self.published, self.not_published = published, not_published


def encode_events(
    events: Iterable[Mapping[str, Any]], max_event_bytes: int, max_batch_bytes: int, ids: list[str] | None = None
) -> list[EncodedEvent]:
    """The batch's Kafka messages (ids from the events, else ``ids``, else new UUIDs); EventsTooLarge if an
    event or the whole batch is over its limit."""
    received = datetime.now(timezone.utc)
    out, total = [], 0
    for i, event in enumerate(events):
        given = dict(event)
        if not given.get("event_id") and ids is not None:
            given["event_id"] = ids[i]
        msg = messages.build_raw_event(given, received_at=received)
        value = messages.encode(msg)
        if len(value) > max_event_bytes:
            raise EventsTooLarge(
                f"event {i} encodes to {len(value)} bytes, above the limit of {max_event_bytes} bytes per event "
                "(TDA_EVENTS_MAX_EVENT_BYTES); nothing was published"
            )
        total += len(value)
        if total > max_batch_bytes:
            raise EventsTooLarge(
                f"the batch encodes to more than {max_batch_bytes} bytes (limit TDA_EVENTS_MAX_REQUEST_BYTES, "
                f"reached at event {i}); send it in smaller batches; nothing was published"
            )
        out.append(EncodedEvent(msg["event_id"], msg["source_id"].encode(), value))
    return out


class KeyedPublisher:
    """One topic's publisher: every message acknowledged by Kafka (acks=all), else KafkaUnavailable, or
    PartlyPublished naming the messages that were.

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

    def publish_messages(self, keyed: Iterable[tuple[str, Mapping[str, Any]]], timeout_s: float = 10.0) -> None:
        """Encode and publish ``(key, message)`` pairs (the message's id: its ``event_id`` or its key)."""
        encoded = [EncodedEvent(str(m.get("event_id") or k), k.encode(), messages.encode(dict(m))) for k, m in keyed]
        self.publish(encoded, timeout_s)

    def publish(self, events: list[EncodedEvent], timeout_s: float = 10.0) -> None:
        """Publish every event, keyed by source id: all acknowledged, KafkaUnavailable when none was, else
        PartlyPublished naming the events that were."""
        with self._lock:  # one batch at a time keeps the failure handling simple
            producer = self._get()
            futures: list[Any] = []
            error: Exception | None = None
            for e in events:
                try:
                    futures.append(producer.send(self.topic, key=e.key, value=e.value))
                except Exception as exc:  # the rest is not sent; what was sent is still flushed and counted
                    error = exc
                    break
            with contextlib.suppress(Exception):
                producer.flush(timeout=timeout_s)
            published, failed = [], []
            for i, e in enumerate(events):
                try:
                    if i >= len(futures):
                        raise error or KafkaUnavailable("not sent")
                    futures[i].get(timeout=0)
                    published.append(e.event_id)
                except Exception as exc:
                    error = error or exc
                    failed.append(e.event_id)
            if not failed:
                return
            # Start over with a fresh producer: its idempotence state may be stale after a failure.
            self._close()
        why = f"Kafka did not accept {len(failed)} of {len(events)} events: {type(error).__name__}: {error}"
        if not published:
            raise KafkaUnavailable(why + "; none was published")
        raise PartlyPublished(why + f"; {len(published)} were published", published, failed)

    def _close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=0)
            self._producer = None

    def close(self) -> None:
        with self._lock:
            self._close()


class RawEventPublisher(KeyedPublisher):
    """Encoded events to raw_data_events.  A batch is at most ``max_batch_bytes`` (checked by
    :func:`encode_events`), so it is flushed within the timeout."""

    def __init__(self, cfg: KafkaSettings, max_batch_bytes: int) -> None:
        super().__init__(cfg, cfg.raw_topic)
        self.max_batch_bytes = max_batch_bytes
