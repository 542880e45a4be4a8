"""``tda-ray serve`` (and ``make run``): start Ray, deploy the application of ``serve_config.yaml``, block
until SIGINT/SIGTERM, then shut Serve and Ray down."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import serve
from ray.serve.schema import ServeDeploySchema

from tda_ray.distributed.session import start_local_ray
from tda_ray.service.deployments import AppArgs, build_app
from tda_ray.service.http.proxy_guard import PROXY_CALLBACK
from tda_ray.service.settings import Settings

__all__ = ["load_serve_config", "run_server"]


class StartupError(RuntimeError):
    pass


def _config_path(settings: Settings, config_path: str | os.PathLike[str] | None) -> Path:
    path = Path(config_path or settings.serve_config)
    if not path.is_file() and not path.is_absolute():
        # Run from elsewhere than the checkout: the repository's own file (editable installs).
        repo_file = Path(__file__).resolve().parents[2] / path
        path = repo_file if repo_file.is_file() else path
    return path


def load_serve_config(settings: Settings, config_path: str | os.PathLike[str] | None = None) -> ServeDeploySchema:
    """serve_config.yaml as Serve's own schema, with host and port from the settings (they win)."""
    path = _config_path(settings, config_path)
    if not path.is_file():
        raise StartupError(f"Serve config {path} not found")
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    raw.setdefault("http_options", {})
    raw["http_options"].update(host=settings.host, port=settings.port)
    try:
        return ServeDeploySchema.model_validate(raw)
    except Exception as exc:
        raise StartupError(f"{path} is not a valid Serve config: {exc}") from exc


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and json.loads(resp.read()).get("status") == "ok":
                    return
        except Exception:
            pass
        time.sleep(0.5)
    raise StartupError(f"the service did not become healthy at {url}")


def _guard_the_proxy(settings: Settings) -> None:
    """Stalled or slow bodies are read in Serve's proxy, never in a replica's request slot (proxy_guard.py).

    Serve applies middlewares to its proxy only through this callback, read from the environment of the
    proxy's process: set here before Ray starts, so every process of a local Ray inherits it.
    """
    os.environ["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = PROXY_CALLBACK
    os.environ["TDA_HTTP_BODY_TIMEOUT_S"] = str(settings.http_body_timeout_s)
    os.environ["TDA_HTTP_MAX_PENDING_BODIES"] = str(settings.http_max_pending_bodies)


def _start_ray(settings: Settings) -> None:
    _guard_the_proxy(settings)
    if settings.ray_address == "local":
        start_local_ray(
            settings.num_cpus,
            loopback_only=settings.loopback_only,
            namespace="serve",
            log_to_driver=True,
            # A task killed by Ray's memory monitor is retried this often, not for ever.
            _system_config={"task_oom_retries": settings.job_oom_retries},
            **({"_memory": settings.ray_memory_bytes} if settings.ray_memory_bytes else {}),
        )
    else:
        ray.init(address=settings.ray_address, namespace="serve")


def _deploy(settings: Settings, config: ServeDeploySchema) -> None:
    """Start Serve's proxies and run each application of the config with its deployment options."""
    serve.start(
        http_options=config.http_options.model_dump(exclude_unset=True),
        proxy_location=config.proxy_location,
    )
    for app in config.applications:
        options = {d.name: d.model_dump(exclude_unset=True, exclude={"name"}) for d in app.deployments}
        target = build_app(AppArgs(settings=settings, deployments=options))
        serve.run(target, name=app.name, route_prefix=app.route_prefix, blocking=False)


def run_server(settings: Settings | None = None, config_path: str | os.PathLike[str] | None = None) -> int:
    """Start Ray and the Serve app; block until SIGINT/SIGTERM; clean up.  Returns a process exit status."""
    settings = (settings or Settings.from_env()).resolved()
    try:
        config = load_serve_config(settings, config_path)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _port_free(settings.host, settings.port):
        print(f"error: {settings.host}:{settings.port} is already in use (set TDA_PORT)", file=sys.stderr)
        return 1
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    stop = {"signal": 0}

    def _on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = signum
        raise KeyboardInterrupt

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started_ray = False
    try:
        _start_ray(settings)
        started_ray = True
        # ray.init installs its own fatal-signal handler, which would kill this process on SIGTERM and
        # orphan Ray's daemons: put ours back so SIGTERM shuts down cleanly.
        for s in old:
            signal.signal(s, _on_signal)
        _deploy(settings, config)
        base = f"http://{settings.host}:{settings.port}"
        _wait_healthy(f"{base}/v1/health", 180)
        print(f"tda-ray serving on {base} (OpenAPI docs: {base}/docs); Ctrl-C stops it", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print(f"tda-ray: {signal.Signals(stop['signal'] or signal.SIGINT).name}, shutting down", flush=True)
        return 0
    except (StartupError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for s in old:
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if started_ray:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
        for s, h in old.items():
            signal.signal(s, h)
