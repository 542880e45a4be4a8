"""The FastAPI application of the service: routes, error handlers and middleware around a job service."""

from __future__ import annotations

from fastapi import FastAPI

import tda_ray
from tda_ray.service.http.deps import DispatcherLink
from tda_ray.service.http.errors import install_error_handlers
from tda_ray.service.http.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from tda_ray.service.http.routes import (
    analysis,
    console,
    events,
    health,
    jobs,
    pointclouds,
    streams,
    uploads,
)
from tda_ray.service.jobs.service import JobService

__all__ = ["create_app"]


def create_app(service: JobService, dispatcher: DispatcherLink) -> FastAPI:
    """The FastAPI app over a :class:`JobService`; usable inside Serve or on its own."""
    settings = service.settings
    app = FastAPI(
        title="tda-ray",
        version=tda_ray.__version__,
        description='Persistent homology (Vietoris–Rips) jobs on Ray. Errors are JSON {"detail": ...}.',
    )
    app.state.service = service
    app.state.dispatcher = dispatcher
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_upload_bytes,
        stream_limit=settings.max_stream_upload_bytes,
        # An events body is about its encoded messages' size: refused by size before it is parsed.
        events_limit=min(settings.max_upload_bytes, 2 * settings.events_max_request_bytes),
        idle_s=settings.http_body_timeout_s,
    )
    # Added last, so it runs first: a request without the key is refused before its body is read.
    app.add_middleware(ApiKeyMiddleware, key=settings.api_key)
    install_error_handlers(app)
    for module in (health, pointclouds, uploads, jobs, analysis, events, streams, console):
        app.include_router(module.router)
    return app
