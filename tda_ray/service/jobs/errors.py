"""Errors of the jobs layer; the HTTP layer maps each to a status code (and nothing else)."""

from __future__ import annotations

from tda_ray.service.store import Conflict, NotFound

__all__ = ["Conflict", "EventsUnavailable", "InvalidRequest", "NotFound", "PayloadTooLarge"]


class InvalidRequest(ValueError):
    """Input the service refuses (HTTP 422)."""


class PayloadTooLarge(ValueError):
    """Input over a configured size limit (HTTP 413)."""


class EventsUnavailable(RuntimeError):
    """Kafka is disabled or did not take the events (HTTP 503 with ``Retry-After``); ``published`` and
    ``not_published`` name the events of the batch Kafka did and did not acknowledge."""

    def __init__(self, message: str, published: list[str] | None = None, not_published: list[str] | None = None):
        super().__init__(message)
        self.published = published or []
        self.not_published = not_published or []
