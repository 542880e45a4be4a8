"""The local Kafka broker of infra/kafka/broker.py (not a package: loaded by path) and a consumer helper."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
_BROKER_PY = REPO_ROOT / "infra" / "kafka" / "broker.py"


def load_broker_module() -> ModuleType:
    name = "tda_kafka_broker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _BROKER_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def consume_messages(
    bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    """Read `topic` from the beginning until ``until(records)`` is true or the timeout passes."""
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
