"""Shared fixtures: a real local Kafka broker (infra/kafka/broker.py).

* ``kafka_broker`` (session): one KRaft broker on a free loopback port in a temp data dir, started on first
  use and stopped at the end. Tests must not stop it; use ``kafka_broker_factory`` for outage tests.
* ``kafka_broker_factory`` (function): ``factory()`` -> a new, started broker of its own (stopped at test end).
* ``broker_module``: the loaded infra/kafka/broker.py module (KafkaBroker, free_port, probe_metadata, ...).

Without java 17+ or the broker jars (``make kafka-jars``) these fixtures skip with the reason; under CI
(``CI`` set), where ``make setup`` fetched the jars, a missing requirement fails instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from support.kafka import consume_messages, load_broker_module

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def broker_module() -> ModuleType:
    mod: ModuleType = load_broker_module()
    return mod


def _require_kafka(mod: ModuleType) -> None:
    reason = mod.missing_requirements()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"Kafka broker cannot start in CI: {reason}")
        pytest.skip(f"Kafka broker unavailable: {reason}")


@pytest.fixture(scope="session")
def kafka_broker(broker_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running local broker shared by the session; ``.bootstrap`` is its "127.0.0.1:<port>"."""
    _require_kafka(broker_module)
    broker = broker_module.KafkaBroker(tmp_path_factory.mktemp("kafka-session"), port=broker_module.free_port())
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop(timeout=60)


@pytest.fixture
def kafka_broker_factory(
    broker_module: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], Any]]:
    """Starts private brokers (for tests that stop, kill or restart them); all are stopped afterwards."""
    _require_kafka(broker_module)
    started: list[Any] = []

    def factory() -> Any:
        broker = broker_module.KafkaBroker(tmp_path_factory.mktemp("kafka-own"), port=broker_module.free_port())
        started.append(broker)
        broker.start(timeout=120)
        return broker

    try:
        yield factory
    finally:
        for broker in started:
            broker.stop(timeout=60)


@pytest.fixture
def kafka_consume() -> Callable[..., list[Any]]:
    """``kafka_consume(bootstrap, topic, until=lambda recs: len(recs) >= n, timeout_s=30)`` -> records."""
    consume: Callable[..., list[Any]] = consume_messages
    return consume
