"""Dependencies of the routes (FastAPI ``Annotated`` style): the job service, the dispatcher, the API key."""

from __future__ import annotations

from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from tda_ray.service.http.middleware import key_matches
from tda_ray.service.jobs.service import JobService
from tda_ray.service.settings import Settings

__all__ = [
    "Auth",
    "ClusterReporter",
    "DispatcherDep",
    "DispatcherLink",
    "KeyPresented",
    "ServiceDep",
    "SettingsDep",
]


class DispatcherLink(Protocol):
    """How the ingress reaches the dispatcher (a Serve handle in production)."""

    def notify(self) -> None: ...

    def cancel(self, job_id: str) -> None: ...

    def stats(self) -> dict[str, Any] | None: ...


@runtime_checkable
class ClusterReporter(Protocol):
    """A dispatcher link that also reports the cluster (Serve's does; a bare in-process dispatcher not)."""

    def cluster(self) -> dict[str, Any]:
        """``{"ray": ..., "serve": ...}``: Ray's nodes and CPUs, Serve's deployments and their replicas."""
        ...


def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def get_dispatcher(request: Request) -> DispatcherLink:
    link: DispatcherLink = request.app.state.dispatcher
    return link


def get_settings(request: Request) -> Settings:
    return get_service(request).settings


ServiceDep = Annotated[JobService, Depends(get_service)]
DispatcherDep = Annotated[DispatcherLink, Depends(get_dispatcher)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when the server has a key.")


def require_key(settings: SettingsDep, key: Annotated[str | None, Depends(key_header)]) -> None:
    # ApiKeyMiddleware refuses a wrong key before the body is read; this declares the scheme in OpenAPI and
    # guards an app mounted without the middleware.
    if settings.api_key is not None and not key_matches(key, settings.api_key):
        raise HTTPException(401, "missing or wrong API key (X-API-Key header)")


def has_key(settings: SettingsDep, key: Annotated[str | None, Depends(key_header)]) -> bool:
    """Whether the request may see more than a route's public part (no server key, or the right one)."""
    return settings.api_key is None or key_matches(key, settings.api_key)


KeyPresented = Annotated[bool, Depends(has_key)]


Auth = [Depends(require_key)]
