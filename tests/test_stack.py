"""`make run`'s whole stack (infra/run_stack.py: Kafka broker, Flink job, `tda-ray serve`) as a user starts it.

Private ports and folders, otherwise the defaults.  What it exposes: every listening socket of its processes
(the launcher's session with Ray's, the broker's and the Flink job's) is on loopback; Flink's REST API runs
no uploaded jar.  Then SIGTERM, with a job computing and a client long-polling it, stops all of it within 15 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from support.kafka import load_broker_module
from support.service import REPO_ROOT, free_port, session_members
from support.sockets import listeners, with_descendants

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.ray, pytest.mark.timeout(400)]

FLINK_PY = REPO_ROOT / "flink" / ".venv" / "bin" / "python"
STOP_WITHIN_S = 15.0
REFUSED = (400, 403, 404, 405)  # Flink 2.2 answers 400 "POST request not allowed" for a disabled handler


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    base_url: str
    kafka_dir: Path
    flink_dir: Path
    log: Path

    def pids(self) -> set[int]:
        own = set(session_members(self.proc.pid))
        broker = int(json.loads((self.kafka_dir / "broker.json").read_text())["pid"])
        flink = int(json.loads((self.flink_dir / "job.pid").read_text())["pid"])
        found: set[int] = own | with_descendants([broker, flink])
        return found


def _requirements() -> str | None:
    reason = load_broker_module().missing_requirements()
    if reason:
        return f"Kafka broker unavailable: {reason}"
    if not FLINK_PY.exists():
        return "flink/.venv missing (make flink-venv)"
    return None


def _kill_leftovers(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    reason = _requirements()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("stack")
    port, kafka_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TDA_")}
    env.update(
        TDA_PORT=str(port),
        TDA_DATABASE_URL=f"sqlite:///{root / 'tda.db'}",
        TDA_STORAGE_ROOT=str(root / "storage"),
        TDA_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
        TDA_KAFKA_DATA_DIR=str(root / "kafka"),
        TDA_FLINK_STATE_DIR=str(root / "flink"),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    log = root / "stack.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "infra" / "run_stack.py")],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    s = Stack(proc, f"http://127.0.0.1:{port}", root / "kafka", root / "flink", log)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while b"tda-ray serving on" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the stack did not come up:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
        seen = s.pids()
        yield s
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        _kill_leftovers({p for p in seen if psutil.pid_exists(p)} | set(session_members(proc.pid)))


def test_every_listener_of_the_stack_is_loopback(stack: Stack) -> None:
    httpx.get(f"{stack.base_url}/v1/health", timeout=30).raise_for_status()
    found = listeners(stack.pids())
    exposed = [str(x) for x in found if not x.loopback]
    assert not exposed, "listening beyond loopback:\n" + "\n".join(exposed)
    # The check saw the stack: the HTTP port, the broker's, and several of Ray's and Flink's.
    ports = {x.port for x in found}
    assert int(stack.base_url.rsplit(":", 1)[1]) in ports
    assert len(found) >= 10, [str(x) for x in found]


def _flink_rest(stack: Stack) -> str:
    """The embedded cluster's REST endpoint: the port of the Flink job's JVM that answers ``/config``."""
    job = int(json.loads((stack.flink_dir / "job.pid").read_text())["pid"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for item in listeners(with_descendants([job])):
            if "java" not in item.process:
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.get(f"http://127.0.0.1:{item.port}/config", timeout=5)
                if r.status_code == 200 and "flink-version" in r.json():
                    return f"http://127.0.0.1:{item.port}"
        time.sleep(1)
    raise AssertionError(f"no Flink REST API among {[str(x) for x in listeners(with_descendants([job]))]}")


def test_flinks_rest_api_runs_no_uploaded_jar(stack: Stack) -> None:
    rest = _flink_rest(stack)
    features = httpx.get(f"{rest}/config", timeout=5).json()["features"]
    assert features["web-submit"] is False and features["web-cancel"] is False
    jar = {"jarfile": ("evil.jar", b"PK\x03\x04 not really a jar", "application/x-java-archive")}
    upload = httpx.post(f"{rest}/jars/upload", files=jar, timeout=10)
    assert upload.status_code in REFUSED, upload.text
    assert httpx.get(f"{rest}/jars", timeout=5).status_code in REFUSED
    # (Flink 2.2 still accepts PATCH /jobs/{id}?mode=cancel whatever web.cancel.enable says: the REST API
    # answers on loopback only, README "Loopback only".)


def test_sigterm_stops_the_whole_stack_within_15_s(stack: Stack) -> None:
    # Not idle: a job computing and a client long-polling it when the signal comes.
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        pts = np.random.default_rng(0).normal(size=(3000, 3)).tolist()
        pc = http.post("/v1/pointclouds", json={"points": pts}).json()["id"]
        job_id = http.post("/v1/jobs", json={"pointcloud_id": pc, "params": {"maxdim": 1}}).json()["id"]
        deadline = time.monotonic() + 60
        while http.get(f"/v1/jobs/{job_id}").json()["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.2)

    def long_poll() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{stack.base_url}/v1/jobs/{job_id}", params={"wait": 30}, timeout=60)

    poll = threading.Thread(target=long_poll, daemon=True)
    poll.start()
    time.sleep(0.5)
    pids = stack.pids()
    t0 = time.monotonic()
    stack.proc.send_signal(signal.SIGTERM)
    stack.proc.wait(timeout=60)
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        if time.monotonic() - t0 > 60:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left and elapsed < STOP_WITHIN_S, f"{elapsed:.1f} s, still running: {left}"
    assert stack.proc.returncode == 0, stack.log.read_text(errors="replace")[-3000:]
