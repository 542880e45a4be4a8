"""Admission across jobs: every job reserves its memory on its node, so admitted jobs never exceed a node.

At submit the engine's up-front estimate (:func:`tda_ray.engine.rips.estimate_memory`: the same choices and
refusals as a run, computed from the points without a distance matrix) decides:

* work the engine would refuse under the largest reservation a job may have (``memory_limit_bytes``, else
  the largest node's Ray ``memory`` resource) can never fit: 422 at submit;
* otherwise the job reserves ``headroom x estimate`` (plus its cloud, at least ``job_memory_min_bytes``, at
  most that largest reservation) as Ray's ``memory`` resource on its task, and its engine is given the same
  number as its memory limit.  Ray starts a task only on a node with that much unreserved, so concurrent
  jobs wait instead of exhausting a node; a job whose reduction needs more than its share is queued once
  more with the largest reservation (:func:`tda_ray.service.jobs.task.run_job`).

A cloud too large to examine cheaply (a dense matrix of more than ``ESTIMATE_MAX_PAIRS`` pairs) reserves a
closed-form bound instead: the distance matrix plus every pair as an edge for ``maxdim`` <= 1, else the
largest reservation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import ray

from tda_ray.engine import cubical
from tda_ray.engine.cubical import CubicalParams
from tda_ray.engine.params import Params
from tda_ray.engine.registry import Algorithm
from tda_ray.engine.rips import ESTIMATE_MAX_PAIRS, MemoryEstimate, default_memory_limit
from tda_ray.service.settings import Settings

__all__ = ["Admission", "largest_node_memory"]

# Bytes per pair of the up-front charges beyond the dense matrix for H0/H1: the edge list and the columns.
EDGE_BYTES = 32
NODE_MEMORY_TTL_S = 10.0
# Concurrent estimates per process (each examines up to ESTIMATE_MAX_PAIRS pairs on a request thread).
ESTIMATES_AT_ONCE = 2

_node_memory: tuple[float, int | None] = (0.0, None)
_node_lock = threading.Lock()


def largest_node_memory() -> int | None:
    """The largest ``memory`` resource of a live Ray node (what one job could ever reserve); None off Ray."""
    global _node_memory
    if not ray.is_initialized():
        return None
    with _node_lock:
        at, value = _node_memory
        if time.monotonic() - at > NODE_MEMORY_TTL_S or value is None:
            sizes = [int(n["Resources"].get("memory", 0)) for n in ray.nodes() if n.get("Alive")]
            value = max(sizes, default=0) or None
            _node_memory = (time.monotonic(), value)
        return value


class Admission:
    """How much memory a job reserves, and whether it can ever fit."""

    def __init__(self, settings: Settings, node_memory: Callable[[], int | None] = largest_node_memory) -> None:
        self.settings = settings
        self._node_memory = node_memory
        self._estimates = threading.BoundedSemaphore(ESTIMATES_AT_ONCE)

    def cap(self) -> int:
        """The most one job may reserve (and so the engine's memory limit for a job that is refused)."""
        limits = [x for x in (self.settings.memory_limit_bytes, self._node_memory()) if x]
        return min(limits) if limits else default_memory_limit()

    def needs_points(self, n_points: int, params: Any) -> bool:
        """Whether the estimate can examine the cloud (else a closed-form bound is used without reading it)."""
        pairs = n_points * (n_points - 1) / 2
        threshold = getattr(params, "threshold", None)
        sweep = threshold is not None and pairs * 4 > 0.25 * self.cap()
        return sweep or pairs <= ESTIMATE_MAX_PAIRS

    def reserve(
        self, alg: Algorithm, params: Params, n_points: int, dim: int, points: npt.NDArray[np.float64] | None
    ) -> int:
        """The job's reservation in bytes; raises MemoryLimitError for work that can never fit."""
        cap = self.cap()
        alg.check_memory(n_points, params, cap)  # the closed-form refusal first (no data read)
        if isinstance(params, CubicalParams):  # an image: its complex's up-front bytes, from the pixels
            want = n_points * 8 + self.settings.job_memory_headroom * cubical.estimate_bytes(n_points, params)
            return int(min(cap, max(self.settings.job_memory_min_bytes, want)))
        estimate: MemoryEstimate | None = None
        if points is not None and alg.estimate is not None:
            with self._estimates:
                estimate = alg.estimate(points, params, cap)
        return self._bytes(estimate, n_points, dim, params, cap)

    def _bytes(self, estimate: MemoryEstimate | None, n_points: int, dim: int, params: Any, cap: int) -> int:
        if estimate is not None and estimate.complete:
            need = float(estimate.bytes)
        elif getattr(params, "maxdim", 99) <= 1 and (estimate is None or not estimate.sparse):
            pairs = n_points * (n_points - 1) / 2
            need = pairs * (4 + EDGE_BYTES)
        else:
            return cap
        want = n_points * dim * 8 + self.settings.job_memory_headroom * need
        return int(min(cap, max(self.settings.job_memory_min_bytes, want)))
