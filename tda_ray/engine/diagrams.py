"""Persistence diagrams as arrays, and their JSON form — written once for the whole package.

A diagram of homology dimension ``k`` is a float64 array of shape ``(m, 2)`` of (birth, death) pairs;
a class that never dies (an essential class) has death ``inf``.  JSON has no infinity: there the death of
an essential class is ``null``.  NumPy only: the HTTP client reads results with this module too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
JsonPair = list[float | None]
JsonDiagram = list[JsonPair]

__all__ = [
    "as_diagram",
    "as_pairs",
    "cap_essential",
    "betti_curve",
    "betti_numbers",
    "essential_counts",
    "finite_part",
    "check_pairs",
    "from_json",
    "pair_counts",
    "persistence_entropy",
    "to_json",
    "total_persistence",
]


def as_diagram(pairs: Any) -> FloatArray:
    """An ``(m, 2)`` float64 array from an array or a list of pairs (``None`` deaths read as ``inf``)."""
    if isinstance(pairs, np.ndarray):
        return np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    rows = [(b, np.inf if d is None else d) for b, d in pairs]
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def as_pairs(dgm: Any, name: str = "diagram") -> FloatArray:
    """One diagram as a float64 ``(k, 2)`` array; ValueError naming ``name`` for any other shape.

    Lists of pairs may spell an infinite death ``None`` (the JSON form); an empty input is a ``(0, 2)`` array.
    Values are not checked here (the distances check them in the core, the vectorizations in
    :func:`check_pairs`).
    """
    if isinstance(dgm, np.ndarray) and dgm.dtype == np.float64 and dgm.ndim == 2 and dgm.shape[1] == 2:
        return dgm
    try:
        arr = np.asarray(dgm, dtype=np.float64) if isinstance(dgm, np.ndarray) else as_diagram(dgm)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (k, 2) array of (birth, death) pairs: {exc}") from None
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be a (k, 2) array of (birth, death) pairs, got shape {arr.shape}")
    return arr


def check_pairs(arr: FloatArray, name: str = "diagram", *, essential: bool = False) -> None:
    """ValueError for NaN, infinite births, pairs below the diagonal and (unless ``essential``) infinite deaths."""
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if np.isinf(arr[:, 0]).any():
        raise ValueError(f"{name}: births must be finite")
    below = arr[:, 1] < arr[:, 0]
    if below.any():
        i = int(np.argmax(below))
        raise ValueError(f"{name}: pair {i} ({arr[i, 0]:g}, {arr[i, 1]:g}) lies below the diagonal (death < birth)")
    if not essential and np.isinf(arr[:, 1]).any():
        raise ValueError(
            f"{name} has {int(np.isinf(arr[:, 1]).sum())} essential classes (death inf), which this vectorization "
            "cannot place: drop them (finite_part) or give them a death (cap_essential)"
        )


def finite_part(dgm: Any) -> FloatArray:
    """The pairs of a diagram with finite death (essential classes dropped)."""
    arr = as_pairs(dgm)
    out: FloatArray = arr[np.isfinite(arr[:, 1])]
    return out


def cap_essential(dgm: Any, death: float) -> FloatArray:
    """The diagram with every infinite death replaced by ``death`` (a copy)."""
    arr: FloatArray = np.array(as_pairs(dgm), dtype=np.float64)
    arr[np.isinf(arr[:, 1]), 1] = death
    return arr


def from_json(diagrams: Sequence[Sequence[Sequence[float | None]]]) -> list[FloatArray]:
    """Diagrams from their JSON form (``null`` deaths become ``inf``)."""
    return [as_diagram(d) for d in diagrams]


def to_json(diagrams: Sequence[Any]) -> list[JsonDiagram]:
    """JSON-ready diagrams: ``null`` for infinite deaths; ValueError for NaN, infinite births or ``-inf`` deaths."""
    out = []
    for k, d in enumerate(diagrams):
        arr = as_diagram(d)
        if not np.isfinite(arr[:, 0]).all():
            raise ValueError(f"diagram {k}: births must be finite (no NaN or inf)")
        deaths = arr[:, 1]
        if np.isnan(deaths).any():
            raise ValueError(f"diagram {k}: a death is NaN")
        if (deaths == -np.inf).any():
            raise ValueError(f"diagram {k}: a death is -inf")
        essential = np.isinf(deaths)
        rows: JsonDiagram = arr.tolist()
        for i in np.flatnonzero(essential):
            rows[i][1] = None
        out.append(rows)
    return out


def essential_counts(diagrams: Sequence[FloatArray]) -> list[int]:
    """Classes alive at the end of the filtration (death ``inf``), per dimension."""
    return [int(np.count_nonzero(np.isinf(d[:, 1]))) for d in diagrams]


def pair_counts(diagrams: Sequence[FloatArray]) -> list[int]:
    return [int(d.shape[0]) for d in diagrams]


def betti_numbers(diagrams: Sequence[FloatArray], scale: float) -> npt.NDArray[np.int64]:
    """Betti numbers of the complex at filtration value ``scale``."""
    return np.array([int(np.count_nonzero((d[:, 0] <= scale) & (d[:, 1] > scale))) for d in diagrams], dtype=np.int64)


def betti_curve(diagrams: Sequence[FloatArray], scales: Any) -> npt.NDArray[np.int64]:
    """Betti numbers at each scale: shape ``(len(scales), len(diagrams))``."""
    s = np.asarray(scales, dtype=np.float64).reshape(-1)
    out = np.zeros((s.size, len(diagrams)), dtype=np.int64)
    for k, d in enumerate(diagrams):
        if d.size:
            alive = (d[None, :, 0] <= s[:, None]) & (d[None, :, 1] > s[:, None])
            out[:, k] = alive.sum(axis=1)
    return out


def _finite(d: FloatArray) -> FloatArray:
    return d[np.isfinite(d[:, 1])] if d.size else d.reshape(0, 2)


def total_persistence(diagrams: Sequence[FloatArray], p: float = 1.0) -> npt.NDArray[np.float64]:
    """Sum of (death - birth)^p per dimension over finite pairs."""
    if p <= 0:
        raise ValueError(f"p must be positive, got {p}")
    out = []
    for d in diagrams:
        f = _finite(d)
        out.append(float(np.sum((f[:, 1] - f[:, 0]) ** p)) if f.size else 0.0)
    return np.array(out, dtype=np.float64)


def persistence_entropy(diagrams: Sequence[FloatArray]) -> npt.NDArray[np.float64]:
    """Shannon entropy (natural log) of the finite bar lengths per dimension."""
    out = []
    for d in diagrams:
        f = _finite(d)
        lengths = f[:, 1] - f[:, 0]
        lengths = lengths[lengths > 0]
        total = lengths.sum()
        if total <= 0:
            out.append(0.0)
            continue
        q = lengths / total
        out.append(float(-np.sum(q * np.log(q))))
    return np.array(out, dtype=np.float64)
