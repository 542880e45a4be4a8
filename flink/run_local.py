#!/usr/bin/env python3
"""Start, stop and check a Flink job in the background on the embedded mini-cluster.

Standard library only, so any interpreter can run it (``make run`` uses it through ``mk/flink.mk``)::

    python3 flink/run_local.py start [--job feature_stats|streams] [--state-dir DIR] [--timeout 180] [-- JOB OPTIONS...]
    python3 flink/run_local.py stop  [--job ...] [--state-dir DIR] [--timeout 30]
    python3 flink/run_local.py status [--job ...] [--state-dir DIR]     # exit 0 when running

Jobs: ``feature_stats`` (feature_stats_job.py, state dir var/flink or $TDA_FLINK_STATE_DIR) and ``streams``
(stream_job.py, var/flink-streams or $TDA_FLINK_STREAMS_STATE_DIR).

``start`` returns once the job reports it is running (idempotent: a running job is left alone); the job
reads its settings from the environment (TDA_KAFKA_BOOTSTRAP, TDA_FLINK_*), options after ``--`` override
them. Files in the state dir: ``job.pid`` (JSON), ``job.log`` (job stdout/stderr, including the stats and
dead-letter log sinks) and ``log/`` (the embedded cluster's JVM log).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
VENV_PYTHON = HERE / ".venv" / "bin" / "python"
# job -> (script, line it logs once running, default state dir)
JOBS = {
    "feature_stats": (
        HERE / "feature_stats_job.py",
        "tda-feature-stats started:",
        Path(os.environ.get("TDA_FLINK_STATE_DIR", REPO_ROOT / "var" / "flink")),
    ),
    "streams": (
        HERE / "stream_job.py",
        "tda-streams started:",
        Path(os.environ.get("TDA_FLINK_STREAMS_STATE_DIR", REPO_ROOT / "var" / "flink-streams")),
    ),
}
JOB_SCRIPT, READY_MARKER, DEFAULT_STATE_DIR = JOBS["feature_stats"]


class FlinkJob:
    """The background job whose pid file and logs live in ``state_dir``."""

    def __init__(
        self, state_dir: Path | str = DEFAULT_STATE_DIR, python: Path | str = VENV_PYTHON, job: str = "feature_stats"
    ) -> None:
        self.script, self.ready_marker, _ = JOBS[job]
        self.state_dir = Path(state_dir).resolve()
        self.python = Path(python)
        self.pid_file = self.state_dir / "job.pid"
        self.log_file = self.state_dir / "job.log"
        self.jvm_log_dir = self.state_dir / "log"

    def _state(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.pid_file.read_text()))
        except (OSError, ValueError):
            return None

    @property
    def pid(self) -> int | None:
        state = self._state()
        return int(state["pid"]) if state else None

    def is_running(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            # A recycled pid must not count: the process has to be our job script.
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return self.script.name.encode() in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"

    def start(self, job_args: list[str], timeout: float = 180.0, env: dict[str, str] | None = None) -> int:
        """Launch the job and wait for its ready line; returns the pid. Raises RuntimeError/TimeoutError."""
        if self.is_running():
            pid = self.pid
            assert pid is not None
            return pid
        if not self.python.exists():
            raise RuntimeError(f"{self.python} not found: run `make flink-venv` (part of `make setup`)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.jvm_log_dir.mkdir(parents=True, exist_ok=True)
        run_env = dict(os.environ if env is None else env)
        run_env.setdefault("FLINK_LOG_DIR", str(self.jvm_log_dir))
        run_env["PYTHONUNBUFFERED"] = "1"
        run_env.pop("PYFLINK_GATEWAY_PORT", None)  # always the embedded cluster, never a foreign gateway
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as log:
            # Own session: stop() signals the whole group (the job, its JVM and the Python UDF workers).
            proc = subprocess.Popen(
                [str(self.python), str(self.script), *job_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT, env=run_env, start_new_session=True,
            )  # fmt: skip
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "args": job_args, "started_at": time.time()}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._clear()
                raise RuntimeError(f"Flink job exited with code {proc.returncode}:\n{self.tail()}")
            if self.ready_marker in self._log_since(offset):
                return proc.pid
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"Flink job not running after {timeout:.0f}s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the job's process group, SIGKILL after ``timeout``. True if a job was stopped."""
        pid = self.pid
        if pid is None or not self.is_running():
            self._clear()
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if _group_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _group_alive(pid):
                _reap(pid)
                time.sleep(0.05)
        _reap(pid)
        self._clear()
        return True

    def _clear(self) -> None:
        self.pid_file.unlink(missing_ok=True)

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 60) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join(lines)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies of our own children keep the group "alive" for kill(); treat a group of zombies as gone.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the tda-ray feature-stats Flink job in the background.")
    ap.add_argument("command", choices=("start", "stop", "status"))
    ap.add_argument("--job", choices=sorted(JOBS), default="feature_stats", help="which job (default: feature_stats)")
    ap.add_argument("--state-dir", type=Path, default=None, help="pid file and logs (default: per job)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds (start: 180, stop: 30)")
    ap.epilog = "Options after -- go to the job's script."
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    job_args = argv[split + 1 :]
    job = FlinkJob(args.state_dir or JOBS[args.job][2], job=args.job)
    if args.command == "start":
        if job.is_running():
            print(f"flink job already running (pid {job.pid}, log {job.log_file})")
            return 0
        try:
            pid = job.start(job_args, timeout=args.timeout or 180.0)
        except (RuntimeError, TimeoutError) as exc:
            print(f"flink job start failed: {exc}", file=sys.stderr)
            return 1
        print(f"flink job running (pid {pid}, log {job.log_file})")
        return 0
    if args.command == "stop":
        print("flink job stopped" if job.stop(timeout=args.timeout or 30.0) else "flink job was not running")
        return 0
    running = job.is_running()
    print(json.dumps({"running": running, "pid": job.pid if running else None, "log": str(job.log_file)}))
    return 0 if running else 1


if __name__ == "__main__":
    sys.exit(main())
