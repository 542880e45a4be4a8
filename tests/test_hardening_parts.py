"""The hardening's parts on their own (no Ray cluster, no broker): the proxy guard against stalled bodies,
admission's reservations, idempotency records and the migration of old databases, honest partial event
publishing, client retries, and the corrections applied to Serve in every Ray worker."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import sys
import textwrap
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from tda_ray import ray_worker_setup
from tda_ray.client import ApiError, Client
from tda_ray.engine.params import RipsParams
from tda_ray.engine.registry import get_algorithm
from tda_ray.engine.rips import MemoryLimitError
from tda_ray.service.http.proxy_guard import ProxyGuard
from tda_ray.service.jobs.admission import Admission
from tda_ray.service.settings import KafkaSettings, Settings
from tda_ray.service.store import Conflict, IdempotencyMismatch, Store
from tda_ray.service.streaming import events as raw_events

MiB = 2**20


# --------------------------------------------------------------------------- the proxy guard


class Recorder:
    """An ASGI app that records the body it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        msg = await receive()
        self.bodies.append(msg["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _scope(length: int) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/jobs",
        "headers": [(b"content-length", str(length).encode())],
    }


async def _call(guard: ProxyGuard, scope: dict[str, Any], chunks: list[bytes], stall: bool) -> list[dict[str, Any]]:
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or stall} for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a stalled client
        raise AssertionError

    async def send(msg: MutableMapping[str, Any]) -> None:
        sent.append(dict(msg))

    await guard(scope, receive, send)
    return sent


def test_a_stalled_small_body_gets_408_without_reaching_the_app() -> None:
    app = Recorder()
    guard = ProxyGuard(app, body_timeout_s=0.2)
    sent = asyncio.run(_call(guard, _scope(100_000), [b'{"a":1'], stall=True))
    assert sent[0]["status"] == 408 and app.bodies == [] and guard.pending == 0


def test_a_whole_small_body_is_handed_on_in_one_piece() -> None:
    app = Recorder()
    guard = ProxyGuard(app, body_timeout_s=1.0)
    sent = asyncio.run(_call(guard, _scope(6), [b"abc", b"def"], stall=False))
    assert sent[0]["status"] == 200 and app.bodies == [b"abcdef"]


def test_too_many_pending_bodies_get_503_and_large_ones_pass_through() -> None:
    app = Recorder()
    guard = ProxyGuard(app, body_timeout_s=1.0, max_pending=0)
    sent = asyncio.run(_call(guard, _scope(10), [b"x" * 10], stall=False))
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    sent = asyncio.run(_call(guard, _scope(50 * MiB), [b"streamed"], stall=False))  # not buffered here
    assert sent[0]["status"] == 200 and app.bodies == [b"streamed"]


# --------------------------------------------------------------------------- admission


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'tda.db'}", storage_root=str(tmp_path / "s"), **kw)


def test_admission_reserves_the_estimate_within_the_floor_and_the_cap(tmp_path: Path) -> None:
    adm = Admission(_settings(tmp_path, memory_limit_bytes=4 << 30), node_memory=lambda: 3 << 30)
    assert adm.cap() == 3 << 30  # the largest node lends less than the per-job limit
    alg, rng = get_algorithm("vietoris_rips"), np.random.default_rng(0)
    small = rng.normal(size=(100, 2))
    assert adm.reserve(alg, RipsParams.parse(maxdim=1), 100, 2, small) == 256 * MiB  # the floor
    X = rng.normal(size=(5000, 3))
    est = alg.estimate(X, RipsParams.parse(maxdim=1), 3 << 30)  # type: ignore[misc]
    want = 5000 * 3 * 8 + 2.0 * est.bytes
    assert adm.reserve(alg, RipsParams.parse(maxdim=1), 5000, 3, X) == int(want)
    # Too large to examine at submit: the closed-form bound (matrix and every pair as an edge), capped.
    assert adm.reserve(alg, RipsParams.parse(maxdim=1), 20_000, 3, None) == 3 << 30
    with pytest.raises(MemoryLimitError):
        adm.reserve(alg, RipsParams.parse(maxdim=3), 3000, 3, rng.normal(size=(3000, 3)))


# --------------------------------------------------------------------------- idempotency records, migration


def test_idempotency_records_replay_refuse_and_expire(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'tda.db'}", str(tmp_path / "s"))
    assert store.begin_idempotent("POST /v1/jobs", "k", "f1", stale_after_s=60) is None
    with pytest.raises(Conflict):  # the first request with the key still runs
        store.begin_idempotent("POST /v1/jobs", "k", "f1", stale_after_s=60)
    assert store.begin_idempotent("POST /v1/jobs", "k", "f1", stale_after_s=0) is None  # its replica died
    store.finish_idempotent("POST /v1/jobs", "k", 202, '{"id": "x"}')
    answer = store.begin_idempotent("POST /v1/jobs", "k", "f1", stale_after_s=60)
    assert answer is not None and (answer.status_code, answer.body) == (202, '{"id": "x"}')
    with pytest.raises(IdempotencyMismatch):
        store.begin_idempotent("POST /v1/jobs", "k", "f2", stale_after_s=60)
    assert store.begin_idempotent("POST /v1/events", "k", "f2", stale_after_s=60) is None  # another operation
    store.abandon_idempotent("POST /v1/events", "k")
    assert store.begin_idempotent("POST /v1/events", "k", "f3", stale_after_s=60) is None
    assert store.expire_idempotency(older_than_s=0) == 2


def test_a_database_of_the_previous_version_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    Store(f"sqlite:///{db}", str(tmp_path / "s")).close()
    with sqlite3.connect(db) as conn:  # what the previous version made: no reservations, no idempotency
        conn.execute("ALTER TABLE jobs DROP COLUMN memory_bytes")
        conn.execute("DROP TABLE idempotency")
    store = Store(f"sqlite:///{db}", str(tmp_path / "s"))
    pc = store.create_pointcloud(np.eye(3), name=None, source="json")
    job = store.create_job(pc.id, "vietoris_rips", {"maxdim": 1}, memory_bytes=123)
    assert store.get_job(job.id).memory_bytes == 123
    assert store.begin_idempotent("POST /v1/jobs", "k", "f", stale_after_s=60) is None


# --------------------------------------------------------------------------- events: exactly what was published


@dataclass
class _Future:
    ok: bool

    def get(self, timeout: float = 0) -> None:
        if not self.ok:
            raise TimeoutError("not acknowledged")


class _Producer:
    def __init__(self, fail: set[int], raise_at: int | None) -> None:
        self.fail, self.raise_at, self.sent = fail, raise_at, 0

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        if self.raise_at is not None and self.sent == self.raise_at:
            raise BufferError("buffer full")
        self.sent += 1
        return _Future(self.sent - 1 not in self.fail)

    def flush(self, timeout: float) -> None: ...

    def close(self, timeout: float = 0) -> None: ...


@pytest.mark.parametrize(("fail", "raise_at", "published"), [({1, 3}, None, [0, 2, 4]), (set(), 2, [0, 1])])
def test_a_partial_publish_names_exactly_the_events_kafka_took(
    monkeypatch: pytest.MonkeyPatch, fail: set[int], raise_at: int | None, published: list[int]
) -> None:
    producer = _Producer(fail, raise_at)
    monkeypatch.setattr(raw_events, "make_producer", lambda *a, **k: producer)
    batch = [{"source_id": "s", "values": [float(i)], "event_id": f"e{i}"} for i in range(5)]
    encoded = raw_events.encode_events(batch, 10_000, 100_000)
    with pytest.raises(raw_events.PartlyPublished) as info:
        raw_events.RawEventPublisher(KafkaSettings(), 100_000).publish(encoded)
    assert info.value.published == [f"e{i}" for i in published]
    assert info.value.not_published == [f"e{i}" for i in range(5) if i not in published]


def test_server_made_event_ids_repeat_under_one_idempotency_key(tmp_path: Path) -> None:
    from tda_ray.service.jobs import EventsUnavailable
    from tda_ray.service.jobs.service import JobService

    svc = JobService(_settings(tmp_path))  # Kafka off: the 503 names the ids the batch was given

    def ids(seed: str | None) -> list[str]:
        batch = [{"source_id": "s", "values": [1.0]}, {"source_id": "s", "values": [2.0], "event_id": "mine"}]
        with pytest.raises(EventsUnavailable) as info:
            svc.publish_events(batch, seed)
        return info.value.not_published

    first = ids("key-1")
    assert ids("key-1") == first and first[1] == "mine"
    assert ids("key-2")[0] != first[0] and ids(None)[0] != ids(None)[0]
    svc.close()


# --------------------------------------------------------------------------- the client retries safely


def test_the_client_retries_a_post_under_one_key() -> None:
    seen: list[httpx.Request] = []
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "replica died"}),
            httpx.Response(409, headers={"Retry-After": "0"}, json={"detail": "in progress"}),
            httpx.Response(202, json={"id": "j1", "status": "queued"}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        return next(answers)

    with Client("http://x", transport=httpx.MockTransport(handler), retries=3) as c:
        assert c.submit("a" * 32, maxdim=1)["id"] == "j1"
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(seen) == 4 and len(keys) == 1


def test_the_client_does_not_retry_an_unsafe_post() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"detail": "down"})

    with Client("http://x", transport=httpx.MockTransport(handler), retries=3) as c, pytest.raises(ApiError):
        c._request("POST", "/v1/uploads", json={})
    assert len(calls) == 1


# --------------------------------------------------------------------------- Serve, corrected in every worker


def test_a_dead_replica_is_a_503_with_retry_after() -> None:
    from ray.exceptions import ActorDiedError, RayTaskError
    from ray.serve._private import proxy

    original = proxy.get_http_response_status
    try:
        ray_worker_setup._replica_gone_is_503(proxy)
        died = proxy.get_http_response_status(ActorDiedError(), None, "req-1")
        assert died.code == 503 and died.headers == [(b"retry-after", b"1")]
        other = proxy.get_http_response_status(ValueError("bug"), None, "req-2")
        assert str(other.code) == "500"
        assert issubclass(RayTaskError, Exception)
    finally:
        proxy.get_http_response_status = original


def test_patches_wait_for_their_module_to_be_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for ray.serve._private.replica: the patch is applied once it is imported, not before.
    code = "bound = []\ndef add_port_to_grpc_server(server, address):\n    bound.append(address)\n    return 7\n"
    (tmp_path / "tda_fake_serve_mod.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tda_fake_serve_mod" not in sys.modules
    ray_worker_setup._after_import("tda_fake_serve_mod", ray_worker_setup._bind_replica_grpc_to_loopback)
    try:
        mod = importlib.import_module("tda_fake_serve_mod")
        assert mod.add_port_to_grpc_server(None, "[::]:0") == 7
        mod.add_port_to_grpc_server(None, "10.0.0.1:5")
        assert mod.bound == ["127.0.0.1:0", "10.0.0.1:5"]
    finally:
        sys.modules.pop("tda_fake_serve_mod", None)


def test_an_oom_kill_is_reported_with_its_retries() -> None:
    from ray.exceptions import OutOfMemoryError

    from tda_ray.service.jobs.dispatcher import Dispatcher

    fake = SimpleNamespace(settings=SimpleNamespace(job_oom_retries=1))
    killed = OutOfMemoryError("Task was killed due to the node running low on memory.")
    msg = Dispatcher._failure(fake, killed, SimpleNamespace(memory_bytes=512 * MiB))  # type: ignore[arg-type]
    assert "memory monitor" in msg and "retried 1 time" in msg and "512 MiB" in msg
