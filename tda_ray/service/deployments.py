"""The Serve application: two deployments composed by binding, built from typed arguments.

* ``Ingress`` — the FastAPI app (:func:`tda_ray.service.http.app.create_app`); stateless (everything lives
  in the store), so it scales out.  Routes only nudge the dispatcher (``notify``/``cancel``); an accepted
  job is already durable, so it runs even if the nudge is lost.
* ``JobManager`` — hosts the single :class:`~tda_ray.service.jobs.dispatcher.Dispatcher` and starts the
  Kafka outbox sink; exactly one replica (jobs are claimed in the store and fenced by attempt, so an
  overlap during a redeploy cannot finish a job twice).

Replicas, autoscaling and actor options live in ``serve_config.yaml`` only.  ``import_path:
tda_ray.service.deployments:build_app`` there; ``tda-ray serve`` passes its resolved settings and the
file's deployment options as :class:`AppArgs`, while ``serve deploy`` applies the file itself and the
replicas read their nodes' ``TDA_*`` environment.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from fastapi import FastAPI
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from tda_ray.service.http.app import create_app
from tda_ray.service.jobs.dispatcher import Dispatcher
from tda_ray.service.jobs.outbox import open_outbox
from tda_ray.service.jobs.service import JobService
from tda_ray.service.jobs.streams import compute_windows, open_score_store
from tda_ray.service.settings import Settings
from tda_ray.service.streaming.scores import start_score_ingester
from tda_ray.service.streaming.sink import start_sink
from tda_ray.service.streaming.windows import start_window_workers

__all__ = ["AppArgs", "Ingress", "JobManager", "build_app"]

log = logging.getLogger("tda_ray.service")


class AppArgs(BaseModel):
    """Arguments of the application builder (``args`` in serve_config.yaml)."""

    settings: Settings | None = Field(
        default=None, description="The service's settings; None: the replicas' TDA_* environment."
    )
    deployments: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options per deployment name, as in serve_config.yaml (set by `tda-ray serve`).",
    )


@serve.deployment(name="JobManager")
class JobManager:
    """Hosts the one dispatcher and starts the Kafka sink; keep one replica."""

    def __init__(self, settings: Settings) -> None:
        self._dispatcher = Dispatcher(settings)
        if settings.kafka.enabled:
            # The companions of the service on Ray: the outbox sink, the stream pipeline's window workers
            # and its score ingester, each given the jobs layer's side of its port.
            for name, start in (
                ("the Kafka sink", lambda: start_sink(settings, open_outbox)),
                ("the window workers", lambda: start_window_workers(settings, compute_windows)),
                ("the score ingester", lambda: start_score_ingester(settings, open_score_store)),
            ):
                try:
                    start()
                except Exception:  # what they consume waits in Kafka (or the outbox); the next start retries
                    log.exception("could not start %s", name)

    def notify(self) -> None:
        self._dispatcher.notify()

    def cancel(self, job_id: str) -> None:
        self._dispatcher.cancel(job_id)

    def stats(self) -> dict[str, Any]:
        return self._dispatcher.stats()

    def cluster(self) -> dict[str, Any]:
        return cluster_report()

    def check_health(self) -> None:
        # Serve restarts the replica (and so recovers the queue) if the loop thread died.
        if not self._dispatcher.stats()["alive"]:
            raise RuntimeError("dispatcher loop is not running")

    def __del__(self) -> None:
        d = getattr(self, "_dispatcher", None)
        if d is not None:
            d.stop()


def _name(state: Any) -> str:
    """A Serve state as its plain name (``HEALTHY``), whether Serve hands over the enum or its value."""
    return str(getattr(state, "value", state))


def cluster_report() -> dict[str, Any]:
    """Ray's nodes and CPUs, and Serve's applications with their deployments' replicas (GET /v1/health)."""
    report: dict[str, Any] = {}
    try:
        total, free = ray.cluster_resources(), ray.available_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        report["ray"] = {
            "status": "ok",
            "nodes": len(nodes),
            "cpus": total.get("CPU", 0.0),
            "cpus_free": free.get("CPU", 0.0),
            "memory_bytes": int(total.get("memory", 0)),
        }
    except Exception as exc:  # reported, never raised: this feeds a health probe
        report["ray"] = {"status": f"error: {type(exc).__name__}: {exc}"}
    try:
        st = serve.status()
        report["serve"] = {
            name: {
                "status": _name(app.status),
                "deployments": {
                    d: {"status": _name(ds.status), "replicas": {_name(k): v for k, v in ds.replica_states.items()}}
                    for d, ds in app.deployments.items()
                },
            }
            for name, app in st.applications.items()
        }
    except Exception as exc:
        report["serve"] = {"status": f"error: {type(exc).__name__}: {exc}"}
    return report


class _HandleLink:
    """The ingress' link to the dispatcher, over a Serve handle to JobManager."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._h = handle

    def notify(self) -> None:
        self._h.notify.remote()  # fire and forget

    def cancel(self, job_id: str) -> None:
        self._h.cancel.remote(job_id)

    def stats(self) -> dict[str, Any] | None:
        result: dict[str, Any] = self._h.stats.remote().result(timeout_s=5)
        return result

    def cluster(self) -> dict[str, Any]:
        result: dict[str, Any] = self._h.cluster.remote().result(timeout_s=5)
        return result


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    def __init__(self, job_manager: DeploymentHandle, settings: Settings) -> None:
        self._service = JobService(settings)
        self._link = _HandleLink(job_manager)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._service, self._link)

    def __del__(self) -> None:
        service = getattr(self, "_service", None)
        if service is not None:
            service.close()


def build_app(args: AppArgs) -> Application:
    """The application: ``Ingress`` bound to ``JobManager``, both given the same settings."""
    settings = args.settings or Settings.from_env()
    opts = args.deployments
    manager = JobManager.options(**opts.get("JobManager", {})).bind(settings)  # type: ignore[attr-defined]
    return Ingress.options(**opts.get("Ingress", {})).bind(manager, settings)  # type: ignore[attr-defined,no-any-return]
