"""What every worker process of a Ray started by tda-ray runs first (Ray's ``worker_process_setup_hook``).

Two corrections to Ray Serve 2.60, each applied when Serve's module is imported (so a job's worker, which
never imports Serve, pays nothing).  Standard library only at import: it runs in every worker process, and
``tda_ray.distributed`` would import Ray Data there.

* Loopback only (``TDA_RAY_LOOPBACK_ONLY=1``, set by :func:`tda_ray.distributed.session.keep_ray_on_loopback`):
  each replica's inter-deployment gRPC server binds ``[::]:0`` whatever the node address is
  (``ray.serve._private.replica``); it binds ``127.0.0.1`` instead.
* A replica that dies while it handles a request (``RayActorError``) makes the HTTP proxy answer 500; it
  answers ``503`` with ``Retry-After: 1`` instead, which clients may retry (``ray.serve._private.proxy``).
  Serve's proxy callback (:mod:`tda_ray.service.http.proxy_guard`) applies this one too, so it holds on a
  cluster whose nodes set only that callback.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["LOOPBACK_FLAG", "REPLICA_GONE_RETRY_AFTER_S", "correct_the_proxy", "setup_worker"]

LOOPBACK = "127.0.0.1"
LOOPBACK_FLAG = "TDA_RAY_LOOPBACK_ONLY"
REPLICA_GONE_RETRY_AFTER_S = 1
_WILDCARD_HOSTS = ("[::]", "0.0.0.0", "::", "")


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, patch: Callable[[ModuleType], None]) -> None:
        self._loader, self._patch = loader, patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``patch(module)`` right after ``name`` is imported, once."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name, self.patch = name, patch

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # the other finders locate the module itself
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader, self.patch)
        return spec


def _after_import(name: str, patch: Callable[[ModuleType], None]) -> None:
    module = sys.modules.get(name)
    if module is not None:
        patch(module)
    else:
        sys.meta_path.insert(0, _AfterImport(name, patch))


def _loopback_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    return f"{LOOPBACK}:{port}" if sep and host in _WILDCARD_HOSTS else address


def _bind_replica_grpc_to_loopback(replica: ModuleType) -> None:
    original = replica.add_port_to_grpc_server

    def add_port(server: Any, address: str) -> int:
        return int(original(server, _loopback_address(address)))

    replica.add_port_to_grpc_server = add_port  # type: ignore[attr-defined]


def _replica_gone_is_503(proxy: ModuleType) -> None:
    from ray.exceptions import RayActorError, RayTaskError

    original = proxy.get_http_response_status
    if getattr(original, "_tda_503", False):  # applied already (the hook and the proxy callback both may)
        return

    def status(exc: BaseException, request_timeout_s: float | None, request_id: str) -> Any:
        out = original(exc, request_timeout_s, request_id)
        if isinstance(exc, RayActorError) and not isinstance(exc, RayTaskError) and str(out.code) == "500":
            retry = [(b"retry-after", str(REPLICA_GONE_RETRY_AFTER_S).encode())]
            message = f"Request {request_id} was cut short: the replica handling it died; retry it."
            return dataclasses.replace(out, code=503, message=message, headers=retry)
        return out

    status._tda_503 = True  # type: ignore[attr-defined]
    proxy.get_http_response_status = status  # type: ignore[attr-defined]


def correct_the_proxy() -> None:
    """The 503 correction in this process (Serve's proxy callback runs it in the proxy, on any cluster)."""
    _after_import("ray.serve._private.proxy", _replica_gone_is_503)


def setup_worker() -> None:
    """The hook: ``runtime_env={"worker_process_setup_hook": "tda_ray.ray_worker_setup.setup_worker"}``."""
    if os.environ.get(LOOPBACK_FLAG) == "1":
        _after_import("ray.serve._private.replica", _bind_replica_grpc_to_loopback)
    _after_import("ray.serve._private.proxy", _replica_gone_is_503)
