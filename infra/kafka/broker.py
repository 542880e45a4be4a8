#!/usr/bin/env python3
"""Local single-node Apache Kafka broker (KRaft, combined broker+controller) for development and tests.

Standard library only, so it runs from any interpreter (the project venv, flink/.venv, plain python3).
The jars come from Maven Central via infra/kafka/pom.xml (`make kafka-jars`) into .cache/kafka/libs.

Stable interface (used by mk/kafka.mk, tests/conftest.py, benchmarks/ and the Flink job's tests)
--------------------------------------------------------------------------------------------------
CLI::

    python infra/kafka/broker.py start  [--data-dir DIR] [--port PORT] [--controller-port 9093] [--timeout 120]
    python infra/kafka/broker.py stop   [--data-dir DIR] [--timeout 60]
    python infra/kafka/broker.py status [--data-dir DIR]     # exit 0 if running and answering Metadata, else 1
    python infra/kafka/broker.py check                       # exit 0 if java + jars are present, else 1 + reason

    `start` is idempotent (an already running broker for DIR is left alone); it formats the storage
    (kafka.tools.StorageTool format --standalone) only when DIR has never been formatted, so a restart keeps
    every topic and message. PORT defaults to the port DIR last ran on, else 9092.
    DIR defaults to $TDA_KAFKA_DATA_DIR or <repo>/var/kafka.

Python (load by path: infra/ is not a package)::

    spec = importlib.util.spec_from_file_location("tda_kafka_broker", "<repo>/infra/kafka/broker.py")
    broker_mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(broker_mod)

    b = broker_mod.KafkaBroker(data_dir, port=9092, controller_port=None)  # controller_port None -> a free port
    b.start(timeout=120.0)      # format if needed, launch, wait until the broker answers a Metadata request
    b.bootstrap                 # "127.0.0.1:<port>"
    b.is_running(); b.pid; b.log_file
    b.stop(timeout=60.0)        # SIGTERM (controlled shutdown), wait; SIGKILL only after the timeout
    broker_mod.missing_requirements() -> str | None     # why a broker cannot start here (no java 17+, no jars)
    broker_mod.free_port() -> int                        # a free TCP port on 127.0.0.1
    broker_mod.probe_metadata("127.0.0.1", port, timeout=2.0) -> int   # brokers listed; raises OSError if down

Files under the data dir: server.properties (rendered from server.properties.template), kraft/ (log.dirs),
logs/server.log (log4j2), logs/stdout.log (JVM stdout/stderr), broker.json (pid and ports, written on start).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
LIBS_DIR = Path(os.environ.get("TDA_KAFKA_LIBS_DIR", REPO_ROOT / ".cache" / "kafka" / "libs"))
DEFAULT_DATA_DIR = Path(os.environ.get("TDA_KAFKA_DATA_DIR", REPO_ROOT / "var" / "kafka"))
TEMPLATE = HERE / "server.properties.template"
LOG4J2_CONFIG = HERE / "log4j2.xml"
HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
MIN_JAVA = 17  # Kafka 4.x brokers need Java 17+


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _java_cmd(java: str | None = None) -> str | None:
    if java:
        return shutil.which(java)
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8" style -> 8


def missing_requirements(libs_dir: Path | str = LIBS_DIR, java: str | None = None) -> str | None:
    """None when a broker can start here, else a sentence saying what is missing."""
    jcmd = _java_cmd(java)
    if jcmd is None:
        return "no `java` on PATH (Kafka 4 needs Java 17+; set JAVA_HOME or install a JDK)"
    major = _java_major(jcmd)
    if major is None or major < MIN_JAVA:
        return f"{jcmd} is Java {major}, Kafka 4 needs Java {MIN_JAVA}+"
    libs = Path(libs_dir)
    if not any(libs.glob("kafka_2.13-*.jar")):
        return f"Kafka jars not found in {libs} (run `make kafka-jars`, part of `make setup`)"
    return None


def classpath(libs_dir: Path | str = LIBS_DIR) -> str:
    jars = sorted(str(p) for p in Path(libs_dir).glob("*.jar"))
    if not jars:
        raise FileNotFoundError(f"no jars in {libs_dir}; run `make kafka-jars`")
    return os.pathsep.join(jars)


# --- a minimal Kafka wire-protocol probe (Metadata v4: supported by every 2.x-4.x broker) ----------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf.extend(chunk)
    return bytes(buf)


def probe_metadata(host: str = HOST, port: int = DEFAULT_PORT, timeout: float = 2.0) -> int:
    """Send a Metadata request (no topics) and return how many brokers the cluster lists.

    A KRaft broker accepts connections before it has registered with the controller; it lists itself only
    once it is ready to serve, so `>= 1` means "ready". Raises OSError/ConnectionError when not answering.
    """
    client_id = b"tda-ray-broker-probe"
    corr = 7
    # Request header v1: api_key=3 (Metadata), api_version=4, correlation id, client id.
    header = struct.pack(">hhih", 3, 4, corr, len(client_id)) + client_id
    body = struct.pack(">ib", 0, 0)  # topics: empty array (none), allow_auto_topic_creation: false
    msg = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(msg)) + msg)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    rcorr, _throttle, n_brokers = struct.unpack_from(">iii", data, 0)
    if rcorr != corr:
        raise ConnectionError(f"unexpected correlation id {rcorr}")
    return int(n_brokers)


# --- the broker process -------------------------------------------------------------------------------


def _cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding (22 chars).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a zombie (exited, not yet reaped) is not running
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def _is_our_broker(pid: int, properties: Path) -> bool:
    """Guard against a recycled pid: the process must be kafka.Kafka started with our properties file."""
    if not _pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (non-Linux): trust the pidfile
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in args and str(properties).encode() in args


class KafkaBroker:
    """One local KRaft broker+controller process whose state lives in `data_dir`."""

    def __init__(
        self,
        data_dir: Path | str = DEFAULT_DATA_DIR,
        port: int = DEFAULT_PORT,
        controller_port: int | None = None,
        libs_dir: Path | str = LIBS_DIR,
        java: str | None = None,
        heap: str = "512m",
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = int(port)
        self.controller_port = controller_port
        self.libs_dir = Path(libs_dir)
        self.java = java
        self.heap = heap
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        state = self._read_state()
        if state and self.controller_port is None:
            # Reuse the controller port the storage was formatted with (it is part of the quorum config).
            self.controller_port = int(state["controller_port"])

    # paths
    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.data_dir / "logs" / "stdout.log"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "broker.json"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self._pid is not None:
            return self._pid
        state = self._read_state()
        return int(state["pid"]) if state and state.get("pid") else None

    def _read_state(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return None

    def _write_state(self, pid: int | None) -> None:
        state = {"pid": pid, "port": self.port, "controller_port": self.controller_port, "bootstrap": self.bootstrap}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    def is_running(self) -> bool:
        pid = self.pid
        return pid is not None and _is_our_broker(pid, self.properties_file)

    def answering(self, timeout: float = 2.0) -> bool:
        try:
            return probe_metadata(HOST, self.port, timeout) >= 1
        except (OSError, struct.error):
            return False

    # lifecycle
    def _render_properties(self) -> None:
        text = string.Template(TEMPLATE.read_text()).substitute(
            port=self.port, controller_port=self.controller_port, log_dir=self.log_dir
        )
        self.properties_file.write_text(text)

    def _java_base(self) -> list[str]:
        jcmd = _java_cmd(self.java)
        if jcmd is None:
            raise FileNotFoundError("no java found (Kafka 4 needs Java 17+)")
        return [
            jcmd,
            "-Xms128m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            classpath(self.libs_dir),
        ]

    def _format_if_needed(self) -> None:
        if (self.log_dir / "meta.properties").exists():
            return
        cmd = [
            *self._java_base(),
            "kafka.tools.StorageTool", "format", "--standalone",
            # "=": a random id may start with "-", which would read as an option.
            f"--cluster-id={_cluster_id()}", "-c", str(self.properties_file),
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"kafka storage format failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")

    def start(self, timeout: float = 120.0) -> None:
        """Start the broker (idempotent) and wait until it answers a Metadata request."""
        if self.is_running():
            self._wait_ready(timeout)
            return
        reason = missing_requirements(self.libs_dir, self.java)
        if reason:
            raise RuntimeError(f"cannot start Kafka: {reason}")
        if _port_open(self.port):
            raise RuntimeError(f"port {self.port} on {HOST} is already in use by another process")
        if self.controller_port is None:
            self.controller_port = DEFAULT_CONTROLLER_PORT if self.port == DEFAULT_PORT else free_port()
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._render_properties()
        self._format_if_needed()
        cmd = [*self._java_base(), "kafka.Kafka", str(self.properties_file)]
        with open(self.stdout_file, "ab") as out:
            # Own session: the broker outlives `make kafka-start` and ignores the caller's Ctrl-C.
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._pid = self._proc.pid
        self._write_state(self._pid)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop(timeout=10)
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with code {self._proc.returncode}:\n{self._tail()}")
            if self.answering(timeout=2.0):
                return
            time.sleep(0.2)
        raise TimeoutError(f"Kafka on {self.bootstrap} did not answer within {timeout:.0f}s:\n{self._tail()}")

    def _tail(self, n: int = 40) -> str:
        lines: list[str] = []
        for f in (self.stdout_file, self.log_file):
            with contextlib.suppress(OSError):
                lines += [f"--- {f}", *f.read_text(errors="replace").splitlines()[-n:]]
        return "\n".join(lines)

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM (Kafka then shuts down cleanly), wait; SIGKILL after `timeout`. True if one was stopped."""
        pid = self.pid
        if pid is None or not self.is_running():
            self._reap()
            self._clear_pid()
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self._reap()
        self._clear_pid()
        return True

    def kill(self) -> None:
        """SIGKILL, no clean shutdown (simulates a crash; tests of recovery use it)."""
        pid = self.pid
        if pid is not None and self.is_running():
            os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self._reap()
        self._clear_pid()

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _pid_alive(pid)

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._proc = None

    def _clear_pid(self) -> None:
        self._pid = None
        if self.state_file.exists():
            self._write_state(None)

    def status(self) -> dict[str, Any]:
        running = self.is_running()
        return {
            "running": running,
            "answering": running and self.answering(),
            "pid": self.pid if running else None,
            "bootstrap": self.bootstrap,
            "data_dir": str(self.data_dir),
        }


def _broker_for(data_dir: Path | str, port: int | None = None, controller_port: int | None = None) -> KafkaBroker:
    """A KafkaBroker for `data_dir`, taking the ports from its broker.json when not given."""
    probe = KafkaBroker(data_dir, port=port or DEFAULT_PORT, controller_port=controller_port)
    state = probe._read_state()
    if port is None and state:
        probe.port = int(state["port"])
    return probe


def start(data_dir: Path | str = DEFAULT_DATA_DIR, port: int | None = None, controller_port: int | None = None,
          timeout: float = 120.0) -> KafkaBroker:  # fmt: skip
    """Start (or find running) the broker of `data_dir`; port None -> the one it last ran on, else 9092."""
    b = _broker_for(data_dir, port, controller_port)
    b.start(timeout)
    return b


def stop(data_dir: Path | str = DEFAULT_DATA_DIR, timeout: float = 60.0) -> bool:
    return _broker_for(data_dir).stop(timeout)


def status(data_dir: Path | str = DEFAULT_DATA_DIR) -> dict[str, Any]:
    return _broker_for(data_dir).status()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Local single-node Kafka (KRaft) broker for tda-ray.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="format storage if needed, start, wait until it answers")
    p_stop = sub.add_parser("stop", help="clean shutdown (SIGTERM), wait")
    p_status = sub.add_parser("status", help="exit 0 if running and answering")
    sub.add_parser("check", help="exit 0 if java and the jars are present")
    for p in (p_start, p_stop, p_status):
        p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p_start.add_argument("--port", type=int, default=None, help="default: the port DIR last ran on, else 9092")
    p_start.add_argument("--controller-port", type=int, default=None)
    p_start.add_argument("--timeout", type=float, default=120.0)
    p_stop.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)

    if args.cmd == "check":
        reason = missing_requirements()
        print(reason or "ok: java and Kafka jars present")
        return 1 if reason else 0
    if args.cmd == "start":
        try:
            b = start(args.data_dir, args.port, args.controller_port, args.timeout)
        except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
            print(f"kafka start failed: {exc}", file=sys.stderr)
            return 1
        print(f"kafka running on {b.bootstrap} (pid {b.pid}, data {b.data_dir}, log {b.log_file})")
        return 0
    if args.cmd == "stop":
        stopped = stop(args.data_dir, args.timeout)
        print("kafka stopped" if stopped else "kafka was not running")
        return 0
    st = status(args.data_dir)
    print(json.dumps(st))
    return 0 if st["answering"] else 1


if __name__ == "__main__":
    sys.exit(main())
