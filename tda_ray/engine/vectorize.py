"""Vectorizations of persistence diagrams: Betti curves, persistence landscapes, silhouettes and persistence
entropy (persistence images: :mod:`tda_ray.engine.images`).  NumPy only.

Each function takes one diagram of one homology dimension (a ``(k, 2)`` array of (birth, death) pairs), its
plural form many (a list, or a padded ``(n, k, 2)`` stack), and an explicit grid of filtration values, so that
the numbers do not depend on a hidden default range; :func:`filtration_grid` gives the grids the peers choose.
Pairs below the diagonal and NaN are refused.  Essential classes (death ``inf``) are counted by
:func:`betti_curve` (they are alive from their birth on); every other function refuses them with a ValueError
instead of dropping them silently: use :func:`~tda_ray.engine.diagrams.finite_part` or
:func:`~tda_ray.engine.diagrams.cap_essential` first.

The peers' numbers, exactly (tests/test_vectorize.py checks each):

========================  ==============================================================================
GUDHI ``representations``  ``grid = filtration_grid(dgms, resolution, endpoints=False)`` is the default
                           ``sample_range`` with ``keep_endpoints=False``.  ``BettiCurve`` = ``betti_curve``;
                           ``Landscape(num_landscapes=n)`` = ``sqrt(2) * landscape(d, grid, n).ravel()``
                           (GUDHI measures the tents in the rotated frame); ``Silhouette(weight=w)`` =
                           ``sqrt(2) * silhouette(d, grid, weights=[w(pt) for pt in d])``;
                           ``Entropy(mode="scalar")`` = ``persistence_entropy(d)``.
giotto-tda                 grids per homology dimension: ``filtration_grid(dgms, n_bins)``; ``BettiCurve`` =
                           ``betti_curve``, ``PersistenceLandscape(n_layers)`` = ``landscape`` (no factor),
                           ``Silhouette(power)`` = ``silhouette(d, grid, power)``; ``PersistenceEntropy`` =
                           ``persistence_entropy(d, base=2)`` (its ``normalize`` divides by log2 of the
                           total persistence: see :class:`tda_ray.PersistenceEntropy`).
persim                     ``persistent_entropy(d, normalize=True)`` = ``persistence_entropy(d,
                           normalize=True)`` (divided by log of the number of bars).
========================  ==============================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tda_ray.engine.diagrams import as_pairs, check_pairs

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "betti_curve",
    "betti_curves",
    "filtration_grid",
    "landscape",
    "landscapes",
    "persistence_entropies",
    "persistence_entropy",
    "silhouette",
    "silhouettes",
    "stack",
]


def _grid(grid: Any) -> FloatArray:
    t = np.asarray(grid, dtype=np.float64).reshape(-1)
    if not np.isfinite(t).all():
        raise ValueError("grid values must be finite")
    return t


def _finite_pairs(dgm: Any, name: str = "diagram") -> FloatArray:
    arr = as_pairs(dgm, name)
    check_pairs(arr, name)
    return arr


def filtration_grid(diagrams: Sequence[Any], n_bins: int, *, endpoints: bool = True) -> FloatArray:
    """``n_bins`` evenly spaced values from the smallest birth to the largest finite death of ``diagrams``.

    ``endpoints=False`` keeps the ``n_bins`` interior values of ``n_bins + 2`` (GUDHI's default grid); a range
    of one value gives ``n_bins`` copies of it.
    """
    n_bins = _positive_int(n_bins, "n_bins")
    pairs = [as_pairs(d, f"diagrams[{i}]") for i, d in enumerate(diagrams)]
    values = np.concatenate([p[:, 0] for p in pairs] + [p[np.isfinite(p[:, 1]), 1] for p in pairs] + [np.zeros(0)])
    if values.size == 0:
        raise ValueError("the diagrams have no pairs to place a grid on: give the grid explicitly")
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return np.full(int(n_bins), lo)
    if endpoints:
        return np.linspace(lo, hi, int(n_bins))
    return np.linspace(lo, hi, int(n_bins) + 2)[1:-1]


def stack(dgms: Any, *, essential: bool = False) -> FloatArray:
    """Diagrams of one homology dimension as one ``(n, k, 2)`` array, shorter ones padded with ``(0, 0)`` (a
    pair on the diagonal adds nothing to any vectorization here).  Accepts a list of ``(k_i, 2)`` arrays or a
    ``(n, k, 2)`` array; checked as :func:`~tda_ray.engine.diagrams.check_pairs` checks one diagram."""
    if isinstance(dgms, np.ndarray) and dgms.ndim == 3:
        if dgms.shape[2] != 2:
            raise ValueError(f"a stack of diagrams must have shape (n, k, 2), got {dgms.shape}")
        out = np.asarray(dgms, dtype=np.float64)
        check_pairs(out.reshape(-1, 2), "diagrams", essential=essential)
        return out
    pairs = [as_pairs(d, f"diagrams[{i}]") for i, d in enumerate(dgms)]
    lengths = np.array([p.shape[0] for p in pairs], dtype=np.int64)
    every = np.concatenate(pairs) if pairs else np.zeros((0, 2))
    try:  # one check of all the pairs; per diagram only to name the culprit
        check_pairs(every, "diagrams", essential=essential)
    except ValueError:
        for i, p in enumerate(pairs):
            check_pairs(p, f"diagrams[{i}]", essential=essential)
        raise
    out = np.zeros((len(pairs), int(lengths.max(initial=0)), 2))
    rows = np.repeat(np.arange(len(pairs)), lengths)
    out[rows, np.arange(len(every)) - np.repeat(np.cumsum(lengths) - lengths, lengths)] = every
    return out


def _chunks(n: int, per_sample: int) -> list[slice]:
    # Broadcast products stay near 4M elements (32 MiB of float64) per chunk.
    size = max(1, (1 << 22) // max(per_sample, 1))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def betti_curves(dgms: Any, grid: Any) -> npt.NDArray[np.int64]:
    """:func:`betti_curve` of each diagram: shape ``(n, len(grid))``."""
    st, t = stack(dgms, essential=True), _grid(grid)
    out = np.zeros((st.shape[0], t.size), dtype=np.int64)
    for part in _chunks(st.shape[0], st.shape[1] * t.size):
        b, d = st[part, :, 0, None], st[part, :, 1, None]
        out[part] = np.sum((b <= t) & (t < d), axis=1)
    return out


def betti_curve(dgm: Any, grid: Any) -> npt.NDArray[np.int64]:
    """Number of pairs alive at each grid value ``t``: ``birth <= t < death`` (essential classes included)."""
    arr = as_pairs(dgm)
    check_pairs(arr, essential=True)
    t = _grid(grid)
    births, deaths = np.sort(arr[:, 0]), np.sort(arr[:, 1])
    # Born by t minus dead by t: a pair dead by t was born by t.
    alive = np.searchsorted(births, t, side="right") - np.searchsorted(deaths, t, side="right")
    return alive.astype(np.int64)


def _tents(st: FloatArray, t: FloatArray) -> FloatArray:
    """``max(0, min(t - birth, death - t))``: shape ``(n, len(t), k)``."""
    midpoints = (st[:, None, :, 0] + st[:, None, :, 1]) / 2.0
    heights = (st[:, None, :, 1] - st[:, None, :, 0]) / 2.0
    out = np.subtract(t[None, :, None], midpoints)  # one array of the full size, then in place
    np.abs(out, out=out)
    np.subtract(heights, out, out=out)
    return np.maximum(out, 0, out=out)


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def landscapes(dgms: Any, grid: Any, n_layers: int = 1) -> FloatArray:
    """:func:`landscape` of each diagram: shape ``(n, n_layers, len(grid))``."""
    layers = _positive_int(n_layers, "n_layers")
    st, t = stack(dgms), _grid(grid)
    n, k = st.shape[:2]
    out = np.zeros((n, layers, t.size))
    if k == 0:
        return out
    for part in _chunks(n, k * t.size):
        tents = _tents(st[part], t)
        if k > layers:
            tents = np.partition(tents, k - layers, axis=2)[:, :, k - layers :]
        tents.sort(axis=2)  # increasing: the largest (the first layer) last
        out[part, : tents.shape[2]] = np.transpose(tents[:, :, ::-1], (0, 2, 1))
    return out


def landscape(dgm: Any, grid: Any, n_layers: int = 1) -> FloatArray:
    """The first ``n_layers`` persistence landscapes on ``grid``: shape ``(n_layers, len(grid))``; layer ``k``
    is the ``k``-th largest tent ``max(0, min(t - birth, death - t))`` (zero where fewer pairs are alive)."""
    out: FloatArray = landscapes([as_pairs(dgm)], grid, n_layers)[0]
    return out


def silhouettes(dgms: Any, grid: Any, power: float = 1.0) -> FloatArray:
    """:func:`silhouette` of each diagram (weights ``(death - birth)^power``): shape ``(n, len(grid))``."""
    if isinstance(power, bool) or not isinstance(power, (int, float, np.integer, np.floating)) or not power > 0:
        raise ValueError(f"power must be a positive number, got {power!r}")
    st, t = stack(dgms), _grid(grid)
    lengths = st[:, :, 1] - st[:, :, 0]
    if power > 8 and lengths.size:  # large powers overflow; only the ratios matter
        lengths = lengths / np.maximum(lengths.max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return _weighted_tents(st, t, lengths**power)


def _weighted_tents(st: FloatArray, t: FloatArray, w: FloatArray) -> FloatArray:
    total = np.sum(w, axis=1, keepdims=True)
    # Weights divided by their sum first: tiny pairs' weight * tent would underflow to 0 (1e-274 * 1e-137).
    share = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    out = np.zeros((st.shape[0], t.size))
    for part in _chunks(st.shape[0], st.shape[1] * t.size):
        out[part] = np.sum(share[part, None, :] * _tents(st[part], t), axis=2)
    return out


def silhouette(dgm: Any, grid: Any, power: float = 1.0, weights: Any = None) -> FloatArray:
    """The silhouette: the tents' mean weighted by ``(death - birth)^power`` (or by ``weights``, one per pair);
    zero everywhere when the weights sum to zero."""
    if weights is None:
        one: FloatArray = silhouettes([as_pairs(dgm)], grid, power)[0]
        return one
    st, t = stack([as_pairs(dgm)]), _grid(grid)
    w = np.asarray(weights, dtype=np.float64).reshape(1, -1)
    if w.shape[1] != st.shape[1]:
        raise ValueError(f"weights must hold one value per pair ({st.shape[1]}), got {w.shape[1]}")
    out: FloatArray = _weighted_tents(st, t, w)[0]
    return out


def persistence_entropies(dgms: Any, *, base: float = math.e) -> FloatArray:
    """Shannon entropy of each diagram's bar lengths ``l / sum(l)`` in units of ``log(base)`` (bars of length
    zero contribute nothing); NaN for a diagram without bars of positive length."""
    st = stack(dgms)
    lengths = st[:, :, 1] - st[:, :, 0]
    total = lengths.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = lengths / total
        terms = np.where(q > 0, -q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    out: FloatArray = np.sum(terms, axis=1) / math.log(base)
    out[total[:, 0] <= 0] = np.nan
    return out


def persistence_entropy(dgm: Any, *, normalize: bool = False, base: float = math.e) -> float:
    """Shannon entropy of the bar lengths ``l / sum(l)`` (bars of length zero contribute nothing), in units of
    ``log(base)``; ``normalize`` divides by ``log(number of bars)`` (then the base does not matter).  0.0
    without bars of positive length."""
    arr = _finite_pairs(dgm)
    entropy = float(persistence_entropies([arr], base=base)[0])
    if math.isnan(entropy):
        return 0.0
    if normalize:
        n = int(np.count_nonzero(arr[:, 1] > arr[:, 0]))
        return entropy * math.log(base) / math.log(n) if n > 1 else 0.0
    return entropy
