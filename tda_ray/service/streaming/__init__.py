"""Streaming: Kafka topics and producers (:mod:`~.kafka`), raw events (:mod:`~.events`), the outbox sink
(:mod:`~.sink`) and the message payloads (:mod:`~.messages`, no Kafka import).  The only place in the
package that imports Kafka."""
