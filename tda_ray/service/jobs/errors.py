"""Errors of the jobs layer; the HTTP layer maps each to a status code (and nothing else)."""

from __future__ import annotations

from tda_ray.service.store import Conflict, NotFound

__all__ = ["Conflict", "EventsUnavailable", "InvalidRequest", "NotFound", "PayloadTooLarge"]


class InvalidRequest(ValueError):
    """Input the service refuses (HTTP 422)."""


class PayloadTooLarge(ValueError):
    """Input over a configured size limit (HTTP 413)."""


class EventsUnavailable(RuntimeError):
    """Kafka is disabled or did not take the events; nothing was published (HTTP 503)."""
