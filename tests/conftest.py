"""Shared fixtures: a real local Kafka broker (infra/kafka/broker.py).

* ``kafka_broker`` (session): one KRaft broker on a free loopback port in a temp data dir, started on first
  use and stopped at the end. Tests must not stop it; use ``kafka_broker_factory`` for outage tests.
* ``kafka_broker_factory`` (function): ``factory()`` -> a new, started broker of its own (stopped at test end).
* ``broker_module``: the loaded infra/kafka/broker.py module (KafkaBroker, free_port, probe_metadata, ...).

Without java 17+ or the broker jars (``make kafka-jars``) these fixtures skip with the reason; under CI
(``CI`` set), where ``make setup`` fetched the jars, a missing requirement fails instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO_ROOT = Path(__file__).resolve().parents[1]
_BROKER_PY = REPO_ROOT / "infra" / "kafka" / "broker.py"


def _load_broker_module() -> ModuleType:
    name = "tda_kafka_broker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _BROKER_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def broker_module() -> ModuleType:
    return _load_broker_module()


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


def consume_messages(
    bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    """Read `topic` from the beginning until ``until(records)`` is true or the timeout passes."""
    import time

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(records):
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


@pytest.fixture
def kafka_consume() -> Callable[..., list[Any]]:
    """``kafka_consume(bootstrap, topic, until=lambda recs: len(recs) >= n, timeout_s=30)`` -> records."""
    return consume_messages
