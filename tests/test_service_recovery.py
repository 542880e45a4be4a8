"""Durability of jobs: a restart of the whole app keeps jobs and results and re-runs unfinished work; a
worker process killed mid-job is retried by Ray and the job still succeeds; killed Serve replicas (the
dispatcher's, the ingress's) lose no job.  Also the API key.

Real local Ray + Serve over real HTTP; the worker is killed with SIGKILL.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.service import ServiceProcess, session_members, wait_for

from tda_ray.client import Client
from tda_ray.engine import vietoris_rips
from tda_ray.service.store import Store

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

API_KEY = "test-key-5f2c"


def cloud(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


def submit(http: httpx.Client, X: np.ndarray, maxdim: int = 1) -> str:
    r = http.post("/v1/pointclouds", json={"points": X.tolist()})
    assert r.status_code == 201, r.text
    r = http.post("/v1/jobs", json={"pointcloud_id": r.json()["id"], "params": {"maxdim": maxdim}})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def job(http: httpx.Client, job_id: str, wait: float = 0) -> dict[str, Any]:
    r = http.get(f"/v1/jobs/{job_id}", params={"wait": wait} if wait else None)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def wait_done(http: httpx.Client, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        j = job(http, job_id, wait=5)
        if j["status"] in ("succeeded", "failed", "cancelled"):
            return j
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def diagrams_of(http: httpx.Client, job_id: str) -> list[np.ndarray]:
    res = http.get(f"/v1/jobs/{job_id}/result").json()
    return [
        np.array([[b, math.inf if d is None else d] for b, d in dgm], dtype=np.float64).reshape(-1, 2)
        for dgm in res["diagrams"]
    ]


def assert_equal_to_engine(http: httpx.Client, job_id: str, X: np.ndarray, maxdim: int = 1) -> None:
    for got, want in zip(diagrams_of(http, job_id), vietoris_rips(X, maxdim=maxdim).diagrams, strict=True):
        np.testing.assert_array_equal(got, want)


def _store(service: ServiceProcess) -> Store:
    """The server's own database and storage (to read what the API does not show)."""
    return Store(service.settings["database_url"], service.settings["storage_root"])


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path / "state", api_key=API_KEY)
    yield svc
    svc.stop()


def assert_api_key_required(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.base_url, timeout=30) as anon:
        health = anon.get("/v1/health")  # probes stay open, and learn nothing but the status
        assert health.status_code == 200 and set(health.json()) == {"status"}
        for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", f"/v1/jobs/{'a' * 32}")]:
            r = anon.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 401 and "API key" in r.json()["detail"], (method, path, r.text)
        assert anon.get("/v1/jobs", headers={"X-API-Key": "wrong"}).status_code == 401
    with service.client() as http:
        assert http.get("/v1/jobs").status_code == 200


def test_restart_keeps_jobs_and_results_and_reruns_unfinished(service: ServiceProcess) -> None:
    service.start()
    assert_api_key_required(service)
    # The long jobs (~10 s each here) must still be running when the app goes down.
    X_done, X_long, X_busy, X_queued = cloud(150, seed=1), cloud(6000, seed=2), cloud(6000, seed=4), cloud(100, seed=3)
    with service.client() as http:
        done_id = submit(http, X_done)
        assert wait_done(http, done_id)["status"] == "succeeded"
        before = http.get(f"/v1/jobs/{done_id}/result").json()
        long_id = submit(http, X_long)
        wait_for(lambda: job(http, long_id)["status"] == "running", 60, "the long job to start")
        # Fill the second CPU too, so one more job is still queued when the app goes down.
        busy_id = submit(http, X_busy)
        wait_for(lambda: job(http, busy_id)["status"] == "running", 60, "the second long job to start")
        queued_id = submit(http, X_queued)
        assert job(http, queued_id)["status"] == "queued"

    assert service.stop() == 0, service.log_text()[-3000:]
    unfinished = [j for j in (long_id, busy_id, queued_id) if _store(service).get_job(j).status != "succeeded"]
    assert len(unfinished) == 3, "jobs finished before the shutdown: make them longer"
    service.start()

    with service.client() as http:
        health = http.get("/v1/health").json()
        assert health["dispatcher"]["recovered"] >= 3
        # The finished job and its result survived unchanged.
        assert job(http, done_id)["status"] == "succeeded"
        assert http.get(f"/v1/jobs/{done_id}/result").json() == before
        # The interrupted and the queued jobs ran again, to the engine's answer.
        for job_id in (long_id, queued_id, busy_id):
            final = wait_done(http, job_id)
            assert final["status"] == "succeeded", final
            assert final["attempt"] >= (1 if job_id == queued_id else 2)  # re-dispatched after the restart
        for job_id, X in [(long_id, X_long), (queued_id, X_queued)]:  # (the busy one is the same kind of work)
            assert_equal_to_engine(http, job_id, X)
        assert_api_key_required(service)
        listed = {j["id"] for j in http.get("/v1/jobs", params={"limit": 500}).json()["items"]}
        assert {done_id, long_id, busy_id, queued_id} <= listed


def test_worker_killed_mid_job_is_retried(service: ServiceProcess) -> None:
    service.start()
    store = _store(service)
    X = cloud(4000, seed=5)
    with service.client() as http:
        job_id = submit(http, X)
        wait_for(lambda: job(http, job_id)["status"] == "running", 60, "the job to start")
        rec = wait_for(lambda: (r := store.get_job(job_id)).worker_pid and r, 30, "the worker pid")
        victim = rec.worker_pid
        assert victim != os.getpid()
        os.kill(victim, signal.SIGKILL)
        final = wait_done(http, job_id)
        assert final["status"] == "succeeded", final
        assert final["runs"] >= 2 and final["attempt"] == 1  # Ray retried the same dispatch
        assert store.get_job(job_id).worker_pid != victim
        assert_equal_to_engine(http, job_id, X)


def _replica_pids(service: ServiceProcess, deployment: str) -> list[int]:
    """Processes of one Serve deployment's replicas in the server's process session."""
    assert service.proc is not None
    out = []
    for pid in session_members(service.proc.pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"ServeReplica:tda:{deployment}" in cmd:
            out.append(pid)
    return out


class Load:
    """Clients submitting jobs while replicas die: the library client (Idempotency-Key, retries) on one
    cloud, bare POSTs on another, every answer's status recorded."""

    def __init__(self, service: ServiceProcess, http: httpx.Client) -> None:
        self.service = service
        self.keyed_pc = http.post("/v1/pointclouds", json={"points": cloud(20, seed=8).tolist()}).json()["id"]
        self.bare_pc = http.post("/v1/pointclouds", json={"points": cloud(20, seed=9).tolist()}).json()["id"]
        self.keyed: list[str] = []
        self.errors: list[BaseException] = []
        self.statuses: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._keyed), threading.Thread(target=self._bare)]

    def _keyed(self) -> None:
        with Client(self.service.base_url, api_key=API_KEY, timeout=30, retries=8) as c:
            while not self._stop.is_set():
                try:
                    self.keyed.append(c.submit(self.keyed_pc, maxdim=0)["id"])
                except Exception as exc:  # a submit the client could not get through
                    self.errors.append(exc)
                time.sleep(0.05)

    def _bare(self) -> None:
        body = {"pointcloud_id": self.bare_pc, "params": {"maxdim": 0}}
        with self.service.client(timeout=30) as http:
            while not self._stop.is_set():
                try:
                    r = http.post("/v1/jobs", json=body)
                    self.statuses.append((r.status_code, r.headers.get("Retry-After")))
                except httpx.TransportError:
                    self.statuses.append((0, None))
                time.sleep(0.05)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)


def test_replica_deaths_lose_no_job(service: ServiceProcess) -> None:
    """The dispatcher's replica killed mid-job, then the ingress replica under load: Serve replaces both,
    jobs finish; a request cut short by the dying replica is a 503 with Retry-After (never a 500), and the
    client's retries under its Idempotency-Key create every job exactly once."""
    service.start()
    X = cloud(4000, seed=6)
    with service.client() as http:
        running_id = submit(http, X)
        wait_for(lambda: job(http, running_id)["status"] == "running", 60, "the job to start")
        (manager,) = _replica_pids(service, "JobManager")
        os.kill(manager, signal.SIGKILL)
        # Accepted while the dispatcher is down: durable in the store, dispatched once it is back.
        queued_id = submit(http, cloud(100, seed=7))
        with Load(service, http) as load:
            time.sleep(2)
            (ingress,) = _replica_pids(service, "Ingress")
            os.kill(ingress, signal.SIGKILL)
            wait_for(lambda: _healthy(service), 120, "Serve to replace both replicas")
            time.sleep(2)
        for job_id in (running_id, queued_id):
            final = wait_done(http, job_id)
            assert final["status"] == "succeeded", final
        assert job(http, running_id)["attempt"] >= 2  # re-dispatched by the new dispatcher
        assert_equal_to_engine(http, running_id, X)
    codes = [code for code, _ in load.statuses]
    assert codes.count(202) > 0 and 500 not in codes, codes
    assert all(after for code, after in load.statuses if code == 503), load.statuses
    assert not load.errors and load.keyed, load.errors
    store = _store(service)
    made = [j.id for j in store.list_jobs(limit=500)[0] if j.pointcloud_id == load.keyed_pc]
    assert sorted(made) == sorted(load.keyed)  # one job per submit, retries included


def _healthy(service: ServiceProcess) -> bool:
    try:
        with service.client(timeout=10) as http:
            return bool(http.get("/v1/health").json().get("status") == "ok")
    except (httpx.HTTPError, ValueError):
        return False
