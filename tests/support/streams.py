"""The whole streaming stack on loopback: a Kafka broker, the Flink stream job and ``tda-ray serve``.

Each stage can be stopped, killed and started again (the recovery tests do), and the same stream settings
(``TDA_STREAM_*``) reach both the service and the Flink job, as ``make run`` does.  Used by the stream
tests and by ``benchmarks/bench_stream.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from support.kafka import load_broker_module
from support.service import ServiceProcess, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FLINK_PY = REPO_ROOT / "flink" / ".venv" / "bin" / "python"


def load_run_local() -> ModuleType:
    name = "tda_flink_run_local"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "flink" / "run_local.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def missing_requirements() -> str | None:
    """Why the stack cannot run here (None: it can)."""
    reason = load_broker_module().missing_requirements()
    if reason:
        return f"Kafka broker unavailable: {reason}"
    if not FLINK_PY.exists():
        return f"{FLINK_PY} missing (make flink-venv, part of make setup)"
    return None


class StreamStack:
    """Broker + Flink stream job + service in ``root``; ``stream`` holds ``TDA_STREAM_*`` settings by field."""

    def __init__(self, root: Path, *, workers: int = 1, stream: dict[str, Any] | None = None, **service: Any):
        self.root = Path(root)
        bm = load_broker_module()
        self.broker = bm.KafkaBroker(self.root / "kafka", port=bm.free_port())
        self.stream = dict(stream or {})
        self.job = load_run_local().FlinkJob(self.root / "flink", python=FLINK_PY, job="streams")
        self.service = ServiceProcess(
            self.root / "service",
            kafka_enabled=True,
            kafka_bootstrap=self.broker.bootstrap,
            stream_workers=workers,
            **{f"stream_{k}": v for k, v in self.stream.items()},
            **service,
        )

    # --- stages ------------------------------------------------------------------------------------
    def job_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TDA_")}
        env.update({f"TDA_STREAM_{k.upper()}": str(v) for k, v in self.stream.items()})
        env["TDA_KAFKA_BOOTSTRAP"] = self.broker.bootstrap
        env["TDA_FLINK_STREAM_CHECKPOINT_DIR"] = str(self.root / "checkpoints")
        env["FLINK_LOG_DIR"] = str(self.root / "flink" / "jvm-log")
        return env

    def start_job(self, timeout: float = 240) -> None:
        self.job.start([], timeout=timeout, env=self.job_env())

    def kill_job(self) -> None:
        """SIGKILL the job's whole process group: no clean shutdown, no final checkpoint."""
        pid = self.job.pid
        assert pid is not None, "the job is not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not self.job.is_running(), 30, "the killed job to go")
        self.job.stop(timeout=5)  # clears its pid file

    def start(self) -> StreamStack:
        self.broker.start(timeout=120)
        self.service.start(timeout_s=300)
        self.start_job()
        http = self.http()
        try:
            wait_for(lambda: self.workers_up(http), 120, "the window workers")
        finally:
            http.close()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.job.stop(timeout=30)
        with contextlib.suppress(Exception):
            self.service.stop()
        with contextlib.suppress(Exception):
            self.broker.stop()

    def __enter__(self) -> StreamStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- looking at it -----------------------------------------------------------------------------
    def http(self) -> Any:
        return self.service.client(timeout=60)

    def client(self) -> Any:
        from tda_ray.client import Client

        return Client(self.service.base_url, timeout=60)

    def streams_health(self, http: Any) -> dict[str, Any]:
        return dict(http.get("/v1/health").json()["components"]["kafka"].get("streams") or {})

    def workers(self, http: Any) -> list[dict[str, Any] | None]:
        return list((self.streams_health(http).get("window_workers") or {}).get("workers") or [])

    def workers_up(self, http: Any) -> bool:
        workers = self.workers(http)
        return bool(workers) and all(w is not None and w.get("state") == "up" for w in workers)

    def worker_pids(self, http: Any) -> list[int]:
        return [int(w["pid"]) for w in self.workers(http) if w is not None and w.get("pid")]

    def scores(self, http: Any, source_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        since: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 5000, **({"since": since} if since else {})}
            page = http.get(f"/v1/streams/{source_id}/scores", params=params).json()
            out += page["items"]
            if not page["next_since"]:
                return out
            since = page["next_since"]

    def wait_scores(self, http: Any, source_id: str, n: int, timeout_s: float = 180) -> list[dict[str, Any]]:
        """The source's score records once there are at least ``n`` (AssertionError with the job log if not)."""
        deadline = time.monotonic() + timeout_s
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            records = self.scores(http, source_id)
            if len(records) >= n:
                return records
            time.sleep(0.5)
        raise AssertionError(
            f"{source_id}: {len(records)} of {n} scores after {timeout_s:.0f} s\n{self.progress_report(http)}\n"
            f"{self.job.tail(40)}\n{self.service.log_text()[-3000:]}"
        )

    def topic_offsets(self, isolation_level: str = "read_uncommitted") -> dict[str, int | None]:
        """Every topic's end offset summed over its partitions (None: no such topic)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, isolation_level=isolation_level)
        try:
            out: dict[str, int | None] = {}
            for topic in sorted(consumer.topics()):
                parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
                out[topic] = sum(consumer.end_offsets(parts).values()) if parts else None
            return out
        finally:
            consumer.close()

    def progress_report(self, http: Any) -> str:
        """Where the records stopped: each topic's offsets, the job's checkpoints, the stream health."""
        lines = []
        with contextlib.suppress(Exception):
            lines.append(f"end offsets (uncommitted): {self.topic_offsets()}")
            lines.append(f"end offsets (committed): {self.topic_offsets('read_committed')}")
        with contextlib.suppress(Exception):
            lines.append(f"consumer groups (committed offsets): {self.group_offsets()}")
        checkpoints = sorted(p.name for p in (self.root / "checkpoints").glob("*/chk-*"))
        lines.append(f"checkpoints: {len(checkpoints)} (last {checkpoints[-1:]})")
        with contextlib.suppress(Exception):
            lines.append(f"stream health: {self.streams_health(http)}")
        for log in sorted((self.root / "flink" / "jvm-log").glob("*.log")):  # the job's JVM: warnings, errors
            worth = [ln for ln in log.read_text(errors="replace").splitlines() if " WARN " in ln or " ERROR " in ln]
            worth = [ln for ln in worth if "Name collision" not in ln]
            lines += [f"{log.name} ({len(worth)} warnings/errors, last 15):", *(ln[:400] for ln in worth[-15:])]
        return "\n".join(lines)

    def group_offsets(self) -> dict[str, int]:
        """Each consumer group's committed offsets summed over its partitions."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        try:
            out: dict[str, int] = {}
            for group in sorted(g["group_id"] for g in admin.list_groups()):
                for offsets in admin.list_group_offsets(group).values():
                    out[group] = sum(o.offset for o in offsets.values() if o.offset >= 0)
            return out
        finally:
            admin.close()


# Replays for the stream tests: years-old event times, posted as fast as the API takes them.
SIZE, SLIDE = 120, 20  # the default spec's window
START_S = 1_577_836_800  # 2020-01-01: years old, as a replay of history is
N = 3000
ANOMALY = (1800, 2400)  # sine -> square wave of the same mean and variance


def windows_of(n: int) -> int:
    return (n - SIZE) // SLIDE + 1


def shape_change(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    sine = np.sin(2 * np.pi * t / 40)
    inside = (t >= ANOMALY[0]) & (t < ANOMALY[1])
    return np.where(inside, np.sign(sine) / np.sqrt(2), sine) + 0.15 * rng.normal(size=N)


def events(source: str, x: np.ndarray, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
    stop = len(x) if stop is None else stop
    return [
        {
            "source_id": source,
            "event_id": f"e{i}",
            "event_time": datetime.fromtimestamp(START_S + i / 10, tz=timezone.utc).isoformat(),
            "values": [float(x[i])],
        }
        for i in range(start, stop)
    ]


def post(client: Any, evs: list[dict[str, Any]], batch: int = 1000) -> None:
    for i in range(0, len(evs), batch):
        assert client.post_events(evs[i : i + batch], retry_s=120)["accepted"] == len(evs[i : i + batch])
