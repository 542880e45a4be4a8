"""The hardened service for real (`tda-ray serve`: local Ray + Serve), one server for the module.

* 1,000 clients that announce a body and stall do not starve the service: /v1/health keeps answering
  (p95 under 1 s) and the stalled requests get 408 once the body deadline passes;
* two jobs that fit a node alone but not together run one after the other (each reserves its memory as
  Ray's ``memory`` resource) and both succeed; work that can never fit is a 422 at submit.

The node is made small on purpose (``TDA_RAY_MEMORY_BYTES``), so admission shows without filling RAM.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import numpy as np
import pytest
from support.service import ServiceProcess, wait_done

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

KEY = "hardening-key"
GiB = 2**30
STALLED = 1000
BODY_TIMEOUT_S = 8.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * STALLED))  # this process and the server (it inherits the limit)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 2 * STALLED + 200:
        pytest.skip(f"the open-file limit ({hard}) is too low for {STALLED} connections")
    svc = ServiceProcess(
        tmp_path_factory.mktemp("hardened"),
        api_key=KEY,
        ray_memory_bytes=int(1.5 * GiB),
        job_memory_min_bytes=1 * GiB,  # any two jobs together exceed the node
        http_body_timeout_s=BODY_TIMEOUT_S,
    )
    svc.start()
    yield svc
    assert svc.stop() == 0, svc.log_text()[-3000:]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client(timeout=30) as c:
        yield c


def _stall(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {KEY}\r\nContent-Length: 100000\r\n\r\n"
    )
    s.sendall(head.encode() + b'{"poi')  # 6 of the announced 100000 bytes, then silence
    return s


def test_health_answers_while_a_thousand_clients_stall(service: ServiceProcess, http: httpx.Client) -> None:
    socks = [_stall(service.port) for _ in range(STALLED)]
    try:
        t_open = time.monotonic()
        latencies: list[float] = []
        with httpx.Client(base_url=service.base_url, timeout=20) as probe:
            while time.monotonic() - t_open < BODY_TIMEOUT_S - 2 or len(latencies) < 20:
                t0 = time.perf_counter()
                r = probe.get("/v1/health", headers={"X-API-Key": KEY})
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["status"] == "ok"
                time.sleep(0.1)
        p95 = float(np.percentile(latencies, 95))
        assert p95 < 1.0, f"health p95 {p95:.2f} s with {STALLED} stalled clients"
        # Once the deadline passes, the stalled requests are answered 408 (they never reached a replica).
        answered = 0
        for s in socks[:: STALLED // 20]:
            s.settimeout(BODY_TIMEOUT_S + 20)
            with contextlib.suppress(OSError):
                answered += s.recv(64).startswith(b"HTTP/1.1 408")
        assert answered == 20
    finally:
        for s in socks:
            s.close()
    assert http.get("/v1/health").json()["status"] == "ok"


def _upload(http: httpx.Client, X: np.ndarray) -> str:
    r = http.post("/v1/pointclouds", json={"points": X.tolist()})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _interval(job: dict[str, object]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(str(job["started_at"])), datetime.fromisoformat(str(job["finished_at"]))


def test_jobs_that_fit_alone_but_not_together_run_one_after_the_other(http: httpx.Client) -> None:
    # Two CPU slots would run both at once; the node's memory (1.5 GiB) holds one reservation (1 GiB).
    rng = np.random.default_rng(11)
    ids = []
    for _ in range(2):
        pc = _upload(http, rng.normal(size=(1500, 3)))
        r = http.post("/v1/jobs", json={"pointcloud_id": pc, "params": {"maxdim": 1}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    done = [wait_done(http, j, timeout_s=300) for j in ids]
    assert all(d["status"] == "succeeded" and d["runs"] == 1 for d in done), done  # no worker was killed
    (s1, f1), (s2, f2) = sorted(_interval(d) for d in done)
    assert s2 >= f1, f"the jobs overlapped: {s1}-{f1} and {s2}-{f2}"


def test_work_that_can_never_fit_is_a_422_at_submit(http: httpx.Client) -> None:
    pc = _upload(http, np.random.default_rng(12).normal(size=(3000, 3)))
    t0 = time.perf_counter()
    r = http.post("/v1/jobs", json={"pointcloud_id": pc, "params": {"maxdim": 3}})
    assert r.status_code == 422 and "memory limit" in r.json()["detail"], r.text
    assert time.perf_counter() - t0 < 10
