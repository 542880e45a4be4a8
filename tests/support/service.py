"""Start and stop the real service (`tda-ray serve`: local Ray + Serve + HTTP) for tests and benchmarks.

The server runs as a child process in its own session, with its database and storage in a temp folder
and a free loopback port, configured only through ``TDA_*`` environment variables like a real deployment.
``stop()`` sends SIGTERM (the server shuts Serve and Ray down itself) and, if that hangs, kills the
whole process group, so no Ray daemon outlives a test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Ray workers get their own process groups but keep the session)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


class ServiceProcess:
    def __init__(self, state_dir: Path, port: int | None = None, **settings: Any) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = {
            "database_url": f"sqlite:///{self.state_dir / 'tda.db'}",
            "storage_root": str(self.state_dir / "storage"),
            "host": "127.0.0.1",
            "port": self.port,
            "num_cpus": 2,
            **settings,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.state_dir / f"server-{self.starts}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TDA_")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        env["PYTHONUNBUFFERED"] = "1"
        for key, value in self.settings.items():
            env[f"TDA_{key.upper()}"] = "none" if value is None else str(value)
        return env

    def start(self, timeout_s: float = 180.0) -> ServiceProcess:
        assert self.proc is None, "already running"
        self.starts += 1
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tda_ray.cli", "serve"],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ray's daemons join this group: stop() can reap them all
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log_text()
                self.proc = None
                raise RuntimeError(f"server exited early:\n{text[-4000:]}")
            if b"tda-ray serving on" in self.log_path.read_bytes():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server did not come up in {timeout_s} s:\n{self.log_text()[-4000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, wait for the clean shutdown, then make sure nothing of the group is left."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        pgid = proc.pid  # start_new_session: the group id is the leader's pid
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        # Whatever is still in the session (a stuck Ray daemon or worker) goes now.
        for pid in session_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if code is None:
            proc.wait(timeout=10)
        return code

    def client(self, api_key: str | None = None, timeout: float = 60.0) -> httpx.Client:
        key = api_key if api_key is not None else self.settings.get("api_key")
        headers = {"X-API-Key": str(key)} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(cond: Any, timeout_s: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval)


def wait_done(http: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """The job's record once it is finished (long-polling), or AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s")
