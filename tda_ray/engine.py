"""Python face of the persistent-homology engine.

Validates input, hands it to the C++ core (``tda_ray._core``) and wraps the
diagrams in :class:`PersistenceResult`.  Mirrors ripser.py's call shape so users
can swap engines.  Knows nothing of Ray, HTTP or Kafka.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tda_ray import _core

CancelToken = _core.CancelToken
EngineCancelled = _core.Cancelled
MemoryLimitError = _core.MemoryLimitError

__all__ = [
    "CancelToken",
    "EngineCancelled",
    "MemoryLimitError",
    "PersistenceResult",
    "vietoris_rips",
    "is_prime",
    "ripser",
]

# Largest prime the core packs next to a simplex index; larger fields would
# leave too few index bits for any useful complex.
MAX_COEFF = (1 << 31) - 1
# Relative asymmetry accepted in a distance matrix (rounding in text files).
SYMMETRY_TOLERANCE = 1e-4
# The engine stores filtration values as float32; larger distances would turn into inf.
# Coordinates are bounded so that no distance between two points can exceed it.
MAX_DISTANCE = float(np.finfo(np.float32).max)


def is_prime(p: int) -> bool:
    if p < 2:
        return False
    if p % 2 == 0:
        return p == 2
    f = 3
    while f * f <= p:
        if p % f == 0:
            return False
        f += 2
    return True


@dataclass
class PersistenceResult:
    """Persistence diagrams of one Vietoris–Rips computation.

    ``diagrams[k]`` is a float64 array of shape ``(m, 2)`` of (birth, death)
    pairs in homology dimension ``k``; essential classes have death ``inf``.
    """

    diagrams: list[npt.NDArray[np.float64]]
    maxdim: int
    coeff: int
    threshold: float | None
    n_points: int
    extras: dict[str, Any] = field(default_factory=dict)

    def betti_numbers(self, scale: float) -> npt.NDArray[np.int64]:
        """Betti numbers of the complex at filtration value ``scale``."""
        return np.array(
            [int(np.count_nonzero((d[:, 0] <= scale) & (d[:, 1] > scale))) for d in self.diagrams],
            dtype=np.int64,
        )

    def betti_curve(self, scales: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Betti numbers at each scale: shape ``(len(scales), maxdim + 1)``."""
        s = np.asarray(scales, dtype=np.float64).reshape(-1)
        out = np.zeros((s.size, len(self.diagrams)), dtype=np.int64)
        for k, d in enumerate(self.diagrams):
            if d.size:
                alive = (d[None, :, 0] <= s[:, None]) & (d[None, :, 1] > s[:, None])
                out[:, k] = alive.sum(axis=1)
        return out

    def total_persistence(self, p: float = 1.0) -> npt.NDArray[np.float64]:
        """Sum of (death - birth)^p per dimension over finite pairs."""
        if p <= 0:
            raise ValueError(f"p must be positive, got {p}")
        out = []
        for d in self.diagrams:
            finite = d[np.isfinite(d[:, 1])] if d.size else d
            out.append(float(np.sum((finite[:, 1] - finite[:, 0]) ** p)) if finite.size else 0.0)
        return np.array(out, dtype=np.float64)

    def persistence_entropy(self) -> npt.NDArray[np.float64]:
        """Shannon entropy (natural log) of the finite bar lengths per dimension."""
        out = []
        for d in self.diagrams:
            finite = d[np.isfinite(d[:, 1])] if d.size else d
            lengths = finite[:, 1] - finite[:, 0] if finite.size else np.zeros(0)
            lengths = lengths[lengths > 0]
            total = lengths.sum()
            if total <= 0:
                out.append(0.0)
                continue
            q = lengths / total
            out.append(float(-np.sum(q * np.log(q))))
        return np.array(out, dtype=np.float64)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``death`` is ``None`` for essential classes."""
        diagrams = [
            [[float(b), (float(dd) if math.isfinite(dd) else None)] for b, dd in d.tolist()] for d in self.diagrams
        ]
        return {
            "diagrams": diagrams,
            "maxdim": self.maxdim,
            "coeff": self.coeff,
            "threshold": self.threshold if self.threshold is not None and math.isfinite(self.threshold) else None,
            "n_points": self.n_points,
        }


def _as_float_matrix(X: Any, what: str) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{what} is ragged: rows have different lengths") from exc
    if arr.dtype == object:
        raise ValueError(f"{what} is ragged or holds non-numeric values")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-dimensional, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{what} contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    return arr


def _validate_params(maxdim: int, threshold: float | None, coeff: int, n_threads: int) -> None:
    if isinstance(maxdim, bool) or not isinstance(maxdim, (int, np.integer)) or maxdim < 0:
        raise ValueError(f"maxdim must be a non-negative integer, got {maxdim!r}")
    if isinstance(coeff, bool) or not isinstance(coeff, (int, np.integer)) or not is_prime(int(coeff)):
        raise ValueError(f"coeff must be a prime number, got {coeff!r}")
    if coeff > MAX_COEFF:
        raise ValueError(f"coeff must be a prime below 2^31, got {coeff}")
    if threshold is not None:
        t = float(threshold)
        if math.isnan(t) or t < 0:
            raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")


def vietoris_rips(
    X: Any,
    *,
    maxdim: int = 1,
    threshold: float | None = None,
    coeff: int = 2,
    distance_matrix: bool = False,
    n_threads: int = 1,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
    memory_limit: int | None = None,
) -> PersistenceResult:
    """Persistent homology of the Vietoris–Rips filtration.

    ``X`` is an ``(n, d)`` point cloud, or with ``distance_matrix=True`` an
    ``(n, n)`` symmetric distance matrix (only the lower triangle is read after
    the symmetry check).  ``threshold=None`` computes the full filtration.
    ``progress(fraction)`` is called from the computing thread now and then;
    ``cancel`` is a :class:`CancelToken` whose ``cancel()`` stops the run with
    :class:`EngineCancelled`.  ``memory_limit`` (bytes) overrides the default
    budget (a share of the machine's available memory); work estimated above it
    is refused with :class:`MemoryLimitError` before it starts.
    """
    _validate_params(maxdim, threshold, coeff, n_threads)
    thr = math.inf if threshold is None else float(threshold)
    limit = 0 if memory_limit is None else int(memory_limit)
    if memory_limit is not None and limit <= 0:
        raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit!r}")
    what = "distance matrix" if distance_matrix else "point cloud"
    arr = _as_float_matrix(X, what)
    n = arr.shape[0]
    if n == 0:
        raise ValueError(f"{what} is empty: at least one point is needed")
    largest = float(np.max(np.abs(arr))) if arr.size else 0.0
    bound = largest if distance_matrix else 2.0 * largest * math.sqrt(arr.shape[1])
    if bound > MAX_DISTANCE:
        raise ValueError(
            f"{what} values up to {largest:.3g} give distances beyond the float32 range (3.4e38); rescale the data"
        )
    if distance_matrix:
        if arr.shape[0] != arr.shape[1]:
            raise ValueError(f"distance matrix must be square, got shape {arr.shape}")
        if n and np.any(np.diag(arr) != 0):
            raise ValueError("distance matrix must have a zero diagonal")
        if np.any(arr < 0):
            raise ValueError("distance matrix has negative entries")
        # Text formats round entries, so tiny asymmetries are tolerated; the
        # lower triangle is what the engine reads (as Ripser does).
        scale = float(np.max(arr)) if n else 0.0
        asym = float(np.max(np.abs(arr - arr.T))) if n else 0.0
        if asym > SYMMETRY_TOLERANCE * scale:
            raise ValueError(f"distance matrix is not symmetric (largest |D - D.T| = {asym:.3g})")
        lower = arr[np.tril_indices(n, -1)]
        out = _core.rips_from_lower_distances(
            np.ascontiguousarray(lower), n, int(maxdim), thr, int(coeff), int(n_threads), limit, progress, cancel
        )
    else:
        if arr.shape[1] == 0:
            raise ValueError("point cloud has zero coordinates per point")
        out = _core.rips_from_points(arr, int(maxdim), thr, int(coeff), int(n_threads), limit, progress, cancel)
    return PersistenceResult(
        diagrams=[np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in out["diagrams"]],
        maxdim=int(maxdim),
        coeff=int(coeff),
        threshold=None if threshold is None else float(threshold),
        n_points=n,
        extras={"sparse": out["sparse"], "effective_threshold": out["threshold"]},
    )


def ripser(
    X: Any,
    maxdim: int = 1,
    thresh: float = math.inf,
    coeff: int = 2,
    distance_matrix: bool = False,
    n_threads: int = 1,
) -> dict[str, Any]:
    """Drop-in for ``ripser.ripser``'s common arguments: returns ``{"dgms": [...], "thresh": ...}``.

    Cocycles, greedy permutations and other metrics are not offered; pass a
    distance matrix for non-Euclidean metrics.
    """
    result = vietoris_rips(
        X,
        maxdim=maxdim,
        threshold=None if math.isinf(thresh) else thresh,
        coeff=coeff,
        distance_matrix=distance_matrix,
        n_threads=n_threads,
    )
    return {"dgms": result.diagrams, "thresh": thresh}
