"""Real Ray clusters on this machine for the scale-out tests, on loopback only.

* :func:`loopback_ray` — context in which Ray keeps ``127.0.0.1`` addresses: by default Ray swaps a
  loopback address for the host's outward IP (``resolve_ip_for_localhost``), which would make every node
  of a test cluster listen beyond loopback.  Ray's own switch for single-host clusters turns that off, in
  this process and (through the environment) in every Ray process it starts.
* :func:`local_ray` — a private local Ray (2 CPUs) on loopback.
* :func:`three_node_cluster` — ``ray.cluster_utils.Cluster``: a head and two workers, 1 CPU each.
* :class:`FakeAutoscalingCluster` — the autoscaler with Ray's fake multi-node provider, as
  ``ray.cluster_utils.AutoscalingCluster`` sets it up, but with its own config (the Ray wheel lacks the
  example file that class reads), a private port and temp dir, and a shutdown that ends only its own
  process group (``AutoscalingCluster`` runs ``ray stop --force``, which would end every Ray on the host).

Every helper shuts down what it started, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep loopback addresses (see module docstring)
    "RAY_USAGE_STATS_ENABLED": "0",
}


def _token_auth() -> None:
    """Token authentication on both ends, as a plain local ``ray.init`` sets it up.

    Ray enables it for ``ray.init()`` and for ``ray start`` when a token file exists, but a driver joining
    by explicit address only follows ``RAY_AUTH_MODE`` — read once per process.  Setting the mode, refreshing
    Ray's config and creating the token file if missing (what ``ray.init`` itself does) makes every cluster
    here and every process it starts agree, whatever ran earlier in this process.
    """
    from ray._private.authentication import authentication_token_setup as auth

    auth._enable_token_auth()
    auth.ensure_token_if_auth_enabled(None, create_token_if_missing=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def loopback_ray() -> Iterator[None]:
    import ray
    import ray._private.ray_constants as ray_constants

    saved_env = {k: os.environ.get(k) for k in _ENV}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    if ray.is_initialized():  # the cluster tests need a connection of their own
        ray.shutdown()
    os.environ.update(_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    _token_auth()
    try:
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[None]:
    import ray

    with loopback_ray():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address=LOOPBACK,
        )
        yield


@contextlib.contextmanager
def three_node_cluster(dashboard_port: int | None = None, head_cpus: int = 1) -> Iterator[Any]:
    """A head and two worker nodes of 1 CPU each; the driver is connected while the context lasts."""
    import ray
    from ray.cluster_utils import Cluster

    with loopback_ray():
        # The agent's HTTP port defaults to a fixed number (52365) that another Ray on the host may hold.
        head: dict[str, Any] = {
            "num_cpus": head_cpus,
            "node_ip_address": LOOPBACK,
            "dashboard_agent_listen_port": free_port(),
        }
        if dashboard_port is None:
            head["include_dashboard"] = False
        else:
            head.update(include_dashboard=True, dashboard_host=LOOPBACK, dashboard_port=dashboard_port)
        cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            for _ in range(2):
                cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK, dashboard_agent_listen_port=free_port())
            cluster.wait_for_nodes(timeout=120)
            ray.init(address=cluster.address, log_to_driver=False)
            yield cluster
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()


def _fake_provider_config(port: int, worker_cpus: int, max_workers: int, idle_timeout_minutes: float) -> dict[str, Any]:
    """Autoscaler config for the fake multi-node provider: a CPU-0 head and one autoscaling worker type."""
    return {
        "cluster_name": "tda-fake",
        "max_workers": max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": f"{LOOPBACK}:{port}",
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "cpu_worker": {
                "resources": {"CPU": worker_cpus},
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


class FakeAutoscalingCluster:
    """A CPU-0 head whose autoscaler adds and removes fake worker nodes (real raylets on this host)."""

    def __init__(self, worker_cpus: int = 1, max_workers: int = 2, idle_timeout_minutes: float = 0.1) -> None:
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.config = _fake_provider_config(self.port, worker_cpus, max_workers, idle_timeout_minutes)
        self.tmp = Path(tempfile.mkdtemp(prefix="tdafake-", dir="/tmp"))  # short: Ray's socket paths
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        import ray

        cfg = self.tmp / "autoscaling.json"
        cfg.write_text(json.dumps(self.config))
        env = dict(os.environ, **_ENV, AUTOSCALER_UPDATE_INTERVAL_S="1", RAY_FAKE_CLUSTER="1")
        ray_cli = str(Path(sys.executable).with_name("ray"))
        cmd = [
            ray_cli,
            "start",
            "--head",
            "--block",  # stays in the foreground: its process group is the whole cluster
            f"--port={self.port}",
            f"--node-ip-address={LOOPBACK}",
            "--num-cpus=0",
            f"--autoscaling-config={cfg}",
            "--include-dashboard=false",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--temp-dir={self.tmp / 'ray'}",
            "--disable-usage-stats",
        ]
        with open(self.tmp / "head.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                ray.init(address=self.address, log_to_driver=False)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def log_tail(self, chars: int = 2000) -> str:
        path = self.tmp / "head.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if self.proc is not None:
            pgid = self.proc.pid  # start_new_session: the group id is the head's pid
            for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, sig)
                try:
                    self.proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # Raylets of fake workers may outlive the head briefly; end whatever is left in the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def fake_autoscaling_cluster(**kwargs: Any) -> Iterator[FakeAutoscalingCluster]:
    with loopback_ray():
        cluster = FakeAutoscalingCluster(**kwargs)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.shutdown()


def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]
