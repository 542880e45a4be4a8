"""Connecting to Ray: the cluster this process is already on, one at an address, or a private local one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import ray

__all__ = ["connect_ray", "ray_error_cause"]


@contextlib.contextmanager
def connect_ray(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the Ray this process is already connected to, else connect (``address``) or start one.

    ``address=None`` follows Ray's rules (``RAY_ADDRESS``, else a new local instance); a Ray started here is
    shut down on exit, one that was already connected is left alone.
    """
    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"log_to_driver": False}
    if address in (None, "", "local"):
        # A local Ray binds and advertises loopback only.
        kwargs.update(
            address="local" if address == "local" else None, include_dashboard=False, _node_ip_address="127.0.0.1"
        )
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    ray.init(**kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def ray_error_cause(exc: BaseException) -> BaseException:
    """The user-level exception inside a Ray task error (Ray wraps it with a remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
