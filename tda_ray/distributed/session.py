"""Connecting to Ray: the cluster this process is already on, one at an address, or a private local one.

A Ray started here listens on loopback only (:func:`start_local_ray`).  Asking for ``127.0.0.1`` is not
enough: Ray swaps a loopback node address for the machine's outward IP
(``ray._private.services.resolve_ip_for_localhost``) unless its single-host switch
(``ray_constants.ENABLE_RAY_CLUSTER``, env ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) is off, and each Serve
replica binds its inter-deployment gRPC server to ``[::]:0`` whatever the node address is.
:func:`keep_ray_on_loopback` turns the switch off here and, through the environment, in every Ray process
started from here; :func:`bind_grpc_to_loopback`, run in every worker process as Ray's
``worker_process_setup_hook``, makes those gRPC servers bind ``127.0.0.1``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import ray

__all__ = [
    "LOOPBACK",
    "bind_grpc_to_loopback",
    "connect_ray",
    "keep_ray_on_loopback",
    "loopback_runtime_env",
    "ray_error_cause",
    "start_local_ray",
]

LOOPBACK = "127.0.0.1"
# Ray's switch for single-host clusters; read when `ray` is imported (here and in every Ray process).
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Marks the worker processes of a loopback-only Ray for the setup hook below.
_LOOPBACK_FLAG = "TDA_RAY_LOOPBACK_ONLY"
_WILDCARD_HOSTS = ("[::]", "0.0.0.0", "::", "")


def keep_ray_on_loopback() -> None:
    """Make every Ray process started from this one advertise and bind ``127.0.0.1``."""
    import ray._private.ray_constants as ray_constants

    os.environ[_CLUSTER_SWITCH] = "0"
    os.environ[_LOOPBACK_FLAG] = "1"
    ray_constants.ENABLE_RAY_CLUSTER = False


def _loopback_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    return f"{LOOPBACK}:{port}" if sep and host in _WILDCARD_HOSTS else address


def bind_grpc_to_loopback() -> None:
    """Worker setup hook: Serve's replica gRPC servers bind loopback instead of every interface.

    Ray 2.60 calls ``add_port_to_grpc_server(server, "[::]:0")`` in ``ray.serve._private.replica``; the
    helper is wrapped where it is defined (before Serve imports it) and where Serve already imported it.
    """
    if os.environ.get(_LOOPBACK_FLAG) != "1":
        return
    import ray._common.tls_utils as tls_utils

    original = getattr(tls_utils.add_port_to_grpc_server, "__wrapped__", tls_utils.add_port_to_grpc_server)

    def add_port(server: Any, address: str) -> int:
        return int(original(server, _loopback_address(address)))

    add_port.__wrapped__ = original  # type: ignore[attr-defined]
    tls_utils.add_port_to_grpc_server = add_port
    replica = sys.modules.get("ray.serve._private.replica")
    if replica is not None:
        replica.add_port_to_grpc_server = add_port  # type: ignore[attr-defined]


def loopback_runtime_env() -> dict[str, Any]:
    """The ``runtime_env`` of a loopback-only Ray: the setup hook above in every worker process."""
    return {"worker_process_setup_hook": f"{__name__}.bind_grpc_to_loopback"}


def start_local_ray(num_cpus: int | None = None, loopback_only: bool = True, **kwargs: Any) -> None:
    """``ray.init`` of a private local Ray (no dashboard); on loopback only unless ``loopback_only=False``."""
    kwargs.setdefault("include_dashboard", False)
    if loopback_only:
        keep_ray_on_loopback()
        kwargs["_node_ip_address"] = LOOPBACK
        env = dict(kwargs.pop("runtime_env", None) or {})
        kwargs["runtime_env"] = {**loopback_runtime_env(), **env}
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
