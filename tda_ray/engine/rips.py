"""Vietoris–Rips persistence: the Python face of the C++ core.

Parameters are checked by :class:`~tda_ray.engine.params.RipsParams`, the input by
:func:`~tda_ray.io.arrays.as_float_matrix`; the core (``tda_ray._core``) computes.  Mirrors ripser.py's call
shape so users can swap engines.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tda_ray import _core
from tda_ray.engine.params import RipsParams, RunOptions
from tda_ray.engine.result import PersistenceResult
from tda_ray.io.arrays import as_float_matrix

__all__ = [
    "ESTIMATE_MAX_PAIRS",
    "CancelToken",
    "EngineCancelled",
    "MemoryEstimate",
    "MemoryLimitError",
    "check_distance_matrix",
    "check_memory",
    "default_memory_limit",
    "estimate_memory",
    "ripser",
    "run_rips",
    "vietoris_rips",
]

CancelToken = _core.CancelToken
EngineCancelled = _core.Cancelled
MemoryLimitError = _core.MemoryLimitError

# Point pairs an estimate examines per pass at most (a few tenths of a second); larger clouds get a lower bound.
ESTIMATE_MAX_PAIRS = 30_000_000
# Relative asymmetry accepted in a distance matrix (rounding in text files).
SYMMETRY_TOLERANCE = 1e-4
# The engine stores filtration values as float32; larger distances would turn into inf.
MAX_DISTANCE = float(np.finfo(np.float32).max)
_COLLAPSE = {True: _core.CollapseMode.on, False: _core.CollapseMode.off, "auto": _core.CollapseMode.auto}


def _metric_args(params: RipsParams) -> tuple[Any, float]:
    return getattr(_core.Metric, params.metric), params.metric_p


def _distance_bound(largest: float, dimension: int, metric: str) -> float:
    """An upper bound of the distances between points with coordinates up to ``largest`` in absolute value."""
    if metric == "cosine":
        return 2.0
    span = 2.0 * largest
    if metric == "chebyshev":
        return span
    # Every L^p norm (p >= 1) is at most the L^1 norm; the Euclidean one at most sqrt(d) times the largest entry.
    return span * (math.sqrt(dimension) if metric == "euclidean" else dimension)


def default_memory_limit() -> int:
    """The memory budget of a run without ``memory_limit``: a share of what this process may still use."""
    return int(_core.default_memory_limit())


def check_memory(n_points: int, params: RipsParams, memory_limit: int | None = None) -> None:
    """The engine's first up-front refusal, knowing only the cloud's size: without a threshold the dense
    float32 distance matrix (n(n-1)/2 entries) must fit.  Raises :class:`MemoryLimitError`."""
    if params.threshold is not None:
        return
    need = n_points * (n_points - 1) / 2 * 4
    limit = memory_limit or default_memory_limit()
    if need > limit:
        raise MemoryLimitError(
            f"the distance matrix of {n_points} points needs {need / 2**20:.0f} MiB, above the memory limit of "
            f"{limit / 2**20:.0f} MiB; give a threshold (sparse neighbour lists) or use fewer points"
        )


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run of the engine holds before it reduces (its up-front charges), known before it runs."""

    bytes: int  # distance structure, edge list and simplices; a lower bound when not complete
    complete: bool  # False: the cloud is too large to examine cheaply (bytes counts the distance matrix only)
    sparse: bool
    threshold: float  # the threshold the reduction would use (the enclosing radius without one)


def estimate_memory(
    X: Any, params: RipsParams, memory_limit: int | None = None, *, max_pairs: int = ESTIMATE_MAX_PAIRS
) -> MemoryEstimate:
    """The engine's up-front memory estimate of Rips on the point cloud ``X``, without running it.

    Makes the same choices (dense or sparse, threshold) and the same refusals as :func:`run_rips` before it
    reduces — :class:`MemoryLimitError` for work over ``memory_limit`` (default: :func:`default_memory_limit`),
    ``ValueError`` for bad input — but holds no distance matrix: distances are computed on the fly, and at
    most ``max_pairs`` point pairs are examined per pass (beyond, the estimate is a lower bound).
    """
    arr = as_float_matrix(X, "point cloud")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("point cloud is empty: at least one point with one coordinate is needed")
    thr = math.inf if params.threshold is None else params.threshold
    out = _core.estimate_rips_from_points(
        arr, params.maxdim, thr, params.coeff, memory_limit or 0, max_pairs, None, *_metric_args(params)
    )
    return MemoryEstimate(
        bytes=int(out["bytes"]), complete=bool(out["complete"]), sparse=bool(out["sparse"]), threshold=out["threshold"]
    )


def check_distance_matrix(arr: np.ndarray[Any, Any]) -> None:
    """ValueError unless ``arr`` is a square, symmetric (up to text rounding), non-negative matrix with a zero
    diagonal."""
    n = arr.shape[0]
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"distance matrix must be square, got shape {arr.shape}")
    if np.any(np.diag(arr) != 0):
        raise ValueError("distance matrix must have a zero diagonal")
    if np.any(arr < 0):
        raise ValueError("distance matrix has negative entries")
    # Text formats round entries, so tiny asymmetries are tolerated; the lower triangle is what the engine
    # reads (as Ripser does).
    scale = float(np.max(arr)) if n else 0.0
    asym = float(np.max(np.abs(arr - arr.T))) if n else 0.0
    if asym > SYMMETRY_TOLERANCE * scale:
        raise ValueError(f"distance matrix is not symmetric (largest |D - D.T| = {asym:.3g})")


def _is_sparse(X: Any) -> bool:
    # A scipy.sparse matrix or array; scipy is loaded wherever one exists, so it is not imported here.
    module = sys.modules.get("scipy.sparse")
    return module is not None and bool(module.issparse(X))


def _sparse_entries(X: Any) -> tuple[int, Any, Any, Any]:
    """``(n, rows, cols, values)`` of a square scipy.sparse distance matrix, duplicates summed (scipy's meaning)."""
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise ValueError(f"distance matrix must be square, got shape {X.shape}")
    coo = X.tocoo(copy=True)
    coo.sum_duplicates()
    values = np.asarray(coo.data)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"distance matrix must be numeric, got dtype {values.dtype}")
    values = np.ascontiguousarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]  # the core names a non-finite entry
    if finite.size and float(np.max(np.abs(finite))) > MAX_DISTANCE:
        raise ValueError("distance matrix values lie beyond the float32 range (3.4e38); rescale the data")
    rows = np.ascontiguousarray(coo.row, dtype=np.int64)
    cols = np.ascontiguousarray(coo.col, dtype=np.int64)
    return int(X.shape[0]), rows, cols, values


def _run_core(
    X: Any, params: RipsParams, options: RunOptions, distance_matrix: bool, progress: Any, cancel: Any
) -> tuple[int, Any]:
    """The points (or vertices) and the core's answer for ``X``."""
    what = "distance matrix" if distance_matrix else "point cloud"
    if distance_matrix and params.metric != "euclidean":
        raise ValueError(f"metric applies to a point cloud, not to a distance matrix; got metric {params.metric!r}")
    thr = math.inf if params.threshold is None else params.threshold
    args = (params.maxdim, thr, params.coeff, options.n_threads, options.memory_limit or 0, progress, cancel)
    collapse = _COLLAPSE[params.collapse_edges]
    if distance_matrix and _is_sparse(X):
        n, rows, cols, values = _sparse_entries(X)
        if n == 0:
            raise ValueError("distance matrix is empty: at least one point is needed")
        return n, _core.rips_from_sparse(rows, cols, values, n, *args, collapse, cocycles=params.cocycles)
    arr = as_float_matrix(X, what)
    n = arr.shape[0]
    if n == 0:
        raise ValueError(f"{what} is empty: at least one point is needed")
    largest = float(np.max(np.abs(arr))) if arr.size else 0.0
    bound = largest if distance_matrix else _distance_bound(largest, arr.shape[1], params.metric)
    if bound > MAX_DISTANCE:
        raise ValueError(
            f"{what} values up to {largest:.3g} give distances beyond the float32 range (3.4e38); rescale the data"
        )
    if distance_matrix:
        check_distance_matrix(arr)
        lower = np.ascontiguousarray(arr[np.tril_indices(n, -1)])
        return n, _core.rips_from_lower_distances(lower, n, *args, collapse, cocycles=params.cocycles)
    if arr.shape[1] == 0:
        raise ValueError("point cloud has zero coordinates per point")
    return n, _core.rips_from_points(arr, *args, collapse, *_metric_args(params), cocycles=params.cocycles)


def run_rips(
    X: Any,
    params: RipsParams,
    options: RunOptions | None = None,
    *,
    distance_matrix: bool = False,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
) -> PersistenceResult:
    """Vietoris–Rips persistence of ``X`` with checked parameters (the registry's run function).

    ``X`` is a point cloud (distances by ``params.metric``) or, with ``distance_matrix``, a dense or
    scipy.sparse distance matrix (a sparse one's absent entries are no edge).
    """
    if params.landmarks is not None:
        raise ValueError("landmarks are chosen with Ray before the engine runs (tda_ray.distributed.landmark_rips)")
    if params.graph_filtration != "edge":
        raise ValueError("graph_filtration reads an edge list: call tda_ray.vietoris_rips_graph(edges, filtration=...)")
    n, out = _run_core(X, params, options or RunOptions(), distance_matrix, progress, cancel)
    return PersistenceResult(
        diagrams=[np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in out["diagrams"]],
        maxdim=params.maxdim,
        coeff=params.coeff,
        threshold=params.threshold,
        n_points=n,
        extras={"sparse": out["sparse"], "effective_threshold": out["threshold"]},
        stats=out["stats"],
        cocycles=out["cocycles"],
    )


def vietoris_rips(
    X: Any,
    *,
    maxdim: int = 1,
    threshold: float | None = None,
    coeff: int = 2,
    collapse_edges: bool | str = "auto",
    distance_matrix: bool = False,
    metric: str = "euclidean",
    metric_p: float = 2.0,
    n_threads: int = 1,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
    memory_limit: int | None = None,
    cocycles: bool = False,
) -> PersistenceResult:
    """Persistent homology of the Vietoris–Rips filtration.

    ``X`` is an ``(n, d)`` point cloud, its distances computed by the engine under ``metric`` ("euclidean",
    "manhattan", "chebyshev", "cosine" = 1 - cosine similarity, or "minkowski" with exponent ``metric_p`` >= 1)
    without an ``n x n`` array in Python.  With ``distance_matrix=True`` ``X`` is an ``(n, n)`` symmetric
    distance matrix (only the lower triangle is read after the symmetry check), or a scipy.sparse one whose
    absent entries are no edge (a pair may be stored in either triangle or both; the diagonal must be zero).
    ``threshold=None`` computes the full filtration.  ``progress(fraction)`` is called from the computing
    thread now and then; ``cancel`` is a :class:`CancelToken` whose ``cancel()`` stops the run with
    :class:`EngineCancelled`.  ``memory_limit`` (bytes) overrides the default budget (a share of the machine's
    available memory); work estimated above it is refused with :class:`MemoryLimitError` before it starts.
    ``collapse_edges`` (True, False or ``"auto"``) removes dominated edges before the reduction without
    changing the diagrams; the result's ``stats`` say what the run did and where its time went.
    ``cocycles=True`` also returns a representative cocycle of every pair of dimension >= 1 (see
    :attr:`PersistenceResult.cocycles`); the collapse is then off (``True`` is refused).
    """
    params = RipsParams.parse(
        maxdim=maxdim,
        threshold=threshold,
        coeff=coeff,
        collapse_edges=collapse_edges,
        metric=metric,
        metric_p=metric_p,
        cocycles=cocycles,
    )
    options = RunOptions.parse(n_threads=n_threads, memory_limit=memory_limit)
    return run_rips(X, params, options, distance_matrix=distance_matrix, progress=progress, cancel=cancel)


# ripser.py hands its metric to scikit-learn's pairwise_distances; these are that function's names for ours.
_SKLEARN_METRICS = {"l1": "manhattan", "cityblock": "manhattan", "l2": "euclidean"}


def ripser(
    X: Any,
    maxdim: int = 1,
    thresh: float = math.inf,
    coeff: int = 2,
    distance_matrix: bool = False,
    n_threads: int = 1,
    *,
    metric: str = "euclidean",
    metric_p: float = 2.0,
    do_cocycles: bool = False,
) -> dict[str, Any]:
    """Drop-in for ``ripser.ripser``'s common arguments: returns ``{"dgms": [...], "cocycles": [...], "thresh": ...}``.

    ``X`` may be a scipy.sparse distance matrix (``distance_matrix=True``), as in ripser.py.  ``metric``
    takes ripser.py's (scikit-learn's) names for the engine's metrics — "euclidean"/"l2",
    "manhattan"/"cityblock"/"l1", "chebyshev", "cosine", "minkowski" (``metric_p``, 2 as in scikit-learn) —
    and "precomputed" (``X`` is a distance matrix); as in ripser.py it is ignored for a distance matrix.
    ``do_cocycles`` gives ripser.py's ``cocycles`` (per dimension, one (k, d + 2) array per pair; empty lists
    without it).  Greedy permutations and callable metrics are not offered.
    """
    name = metric.lower() if isinstance(metric, str) else metric
    if name == "precomputed":
        distance_matrix = True
    if distance_matrix:
        name, metric_p = "euclidean", 2.0
    result = vietoris_rips(
        X,
        maxdim=maxdim,
        threshold=None if math.isinf(thresh) else thresh,
        coeff=coeff,
        distance_matrix=distance_matrix,
        metric=_SKLEARN_METRICS.get(name, name) if isinstance(name, str) else name,
        metric_p=metric_p,
        n_threads=n_threads,
        cocycles=do_cocycles,
    )
    cocycles = result.cocycles if result.cocycles is not None else [[] for _ in result.diagrams]
    return {"dgms": result.diagrams, "cocycles": cocycles, "thresh": thresh}
