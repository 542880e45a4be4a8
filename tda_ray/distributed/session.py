"""Connecting to Ray: the cluster this process is already on, one at an address, or a private local one.

A Ray started here listens on loopback only (:func:`start_local_ray`).  Asking for ``127.0.0.1`` is not
enough: Ray swaps a loopback node address for the machine's outward IP
(``ray._private.services.resolve_ip_for_localhost``) unless its single-host switch
(``ray_constants.ENABLE_RAY_CLUSTER``, env ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) is off, and each Serve
replica binds its inter-deployment gRPC server to ``[::]:0`` whatever the node address is.
:func:`keep_ray_on_loopback` turns the switch off here and, through the environment, in every Ray process
started from here; :mod:`tda_ray.ray_worker_setup`, run in every worker process as Ray's
``worker_process_setup_hook``, makes those gRPC servers bind ``127.0.0.1``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import ray

from tda_ray.ray_worker_setup import LOOPBACK, LOOPBACK_FLAG

__all__ = [
    "LOOPBACK",
    "connect_ray",
    "keep_ray_on_loopback",
    "worker_runtime_env",
    "ray_error_cause",
    "start_local_ray",
]

# Ray's switch for single-host clusters; read when `ray` is imported (here and in every Ray process).
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def keep_ray_on_loopback() -> None:
    """Make every Ray process started from this one advertise and bind ``127.0.0.1``."""
    import ray._private.ray_constants as ray_constants

    os.environ[_CLUSTER_SWITCH] = "0"
    os.environ[LOOPBACK_FLAG] = "1"
    ray_constants.ENABLE_RAY_CLUSTER = False


def worker_runtime_env() -> dict[str, Any]:
    """The ``runtime_env`` of a Ray started here: :mod:`tda_ray.ray_worker_setup` in every worker process."""
    return {"worker_process_setup_hook": "tda_ray.ray_worker_setup.setup_worker"}


def start_local_ray(num_cpus: int | None = None, loopback_only: bool = True, **kwargs: Any) -> None:
    """``ray.init`` of a private local Ray (no dashboard); on loopback only unless ``loopback_only=False``."""
    kwargs.setdefault("include_dashboard", False)
    kwargs["runtime_env"] = {**worker_runtime_env(), **(kwargs.pop("runtime_env", None) or {})}
    if loopback_only:
        keep_ray_on_loopback()
        kwargs["_node_ip_address"] = LOOPBACK
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address="local", **kwargs)


@contextlib.contextmanager
def connect_ray(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the Ray this process is already connected to, else connect (``address``) or start one.

    ``address=None`` follows Ray's rules (``RAY_ADDRESS``, else a new local instance on loopback); a Ray
    started here is shut down on exit, one that was already connected is left alone.
    """
    if ray.is_initialized():
        yield
        return
    if address in (None, "", "local") and (address == "local" or not os.environ.get("RAY_ADDRESS")):
        start_local_ray(num_cpus, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def ray_error_cause(exc: BaseException) -> BaseException:
    """The user-level exception inside a Ray task error (Ray wraps it with a remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
