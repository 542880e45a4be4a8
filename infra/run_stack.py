#!/usr/bin/env python3
"""`make run`: the whole local stack in the foreground, stopped together.

Starts, in order, the local Kafka broker (infra/kafka/broker.py), the Flink jobs (flink/run_local.py:
the feature-stats job and the stream job) and the HTTP service (`tda-ray serve`: local Ray + the Serve app
on http://127.0.0.1:8000, which starts the outbox sink, the window workers and the score ingester).
Ctrl-C or SIGTERM stops the service, then the Flink jobs, then the broker: only what this launcher
started. Standard library only.

Environment: TDA_KAFKA_ENABLED (default true here; `false` serves without Kafka and Flink),
TDA_KAFKA_DATA_DIR, TDA_FLINK_STATE_DIR, TDA_KAFKA_BOOTSTRAP (a single 127.0.0.1:PORT also sets the local
broker's port) and every TDA_* setting of the service (README).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
BROKER = [sys.executable, str(REPO / "infra" / "kafka" / "broker.py")]
FLINK = [sys.executable, str(REPO / "flink" / "run_local.py")]


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _broker_port(bootstrap: str | None) -> list[str]:
    # One loopback bootstrap server names the local broker's port; anything else leaves broker.py's default.
    host, _, port = (bootstrap or "").strip().rpartition(":")
    return ["--port", port] if host in ("127.0.0.1", "localhost") and port.isdigit() else []


def main() -> int:
    env = dict(os.environ)
    env.setdefault("TDA_KAFKA_ENABLED", "true")
    streaming = env["TDA_KAFKA_ENABLED"].lower() in ("1", "true", "yes", "on")
    started: list[list[str]] = []  # stop commands, run in reverse
    serve: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        # The service shuts Ray down on SIGINT/SIGTERM; the finally block stops the rest.
        if serve is not None and serve.poll() is None:
            serve.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        if streaming:
            _run([*BROKER, "start", *_broker_port(env.get("TDA_KAFKA_BOOTSTRAP"))])
            started.append([*BROKER, "stop"])
            for job in ("feature_stats", "streams"):
                _run([*FLINK, "start", "--job", job])
                started.append([*FLINK, "stop", "--job", job])
        serve = subprocess.Popen([str(VENV_BIN / "tda-ray"), "serve"], cwd=REPO, env=env)
        while True:
            try:
                return serve.wait()
            except KeyboardInterrupt:  # a second Ctrl-C while waiting
                continue
    except subprocess.CalledProcessError as exc:
        print(f"run_stack: {' '.join(exc.cmd[1:])} failed with status {exc.returncode}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if serve is not None and serve.poll() is None:
            serve.terminate()
            serve.wait()
        for cmd in reversed(started):
            subprocess.run(cmd, cwd=REPO, check=False)


if __name__ == "__main__":
    sys.exit(main())
