"""Persistence images: a diagram in (birth, persistence) coordinates, each pair a weighted Gaussian.

Three discretizations are in use and give different numbers; each is here, named, so that a peer's image can be
reproduced exactly (tests/test_vectorize.py).  All return an array of shape ``(n_persistence, n_birth)``:
row 0 is the lowest persistence, column 0 the lowest birth (``imshow(..., origin="lower")`` draws it upright).

* :func:`persistence_image` — the density ``sum_i w_i N((b, p); (b_i, p_i), sigma^2 I)`` evaluated at grid
  points: GUDHI's ``PersistenceImage(bandwidth=sigma, weight=w, resolution=[nb, np], im_range=[b0, b1, p0, p1])``
  on ``linspace`` grids, flattened row by row.
* :func:`persistence_image_pixels` — the Gaussian mass on each pixel between grid edges: persim's
  ``PersistenceImager`` (its ``kernel_params={"sigma": [[s2, 0], [0, s2]]}`` is a covariance: ``sigma =
  sqrt(s2)``; its default weight is the persistence, ours is 1; its image is indexed [birth, persistence], the
  transpose of ours).
* :func:`persistence_image_histogram` — giotto-tda's: pairs binned into pixels (clipped to the range), weighted
  by the weight of the pixel's persistence, smoothed by a discrete Gaussian filter (``scipy.ndimage``, sigma in
  pixels) and divided by the pixel area.  :class:`tda_ray.PersistenceImage` returns it in giotto-tda's layout
  (highest persistence first).

``weight(births, persistences) -> weights`` is called once with arrays (1 when omitted).  Essential classes
are refused (see :mod:`tda_ray.engine.vectorize`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tda_ray.engine.diagrams import as_pairs, check_pairs

FloatArray = npt.NDArray[np.float64]
Weight = Callable[[FloatArray, FloatArray], Any]

__all__ = ["birth_persistence", "persistence_image", "persistence_image_histogram", "persistence_image_pixels"]


def birth_persistence(dgm: Any) -> FloatArray:
    """(birth, death) pairs as (birth, death - birth), finite deaths only (ValueError otherwise)."""
    arr = as_pairs(dgm)
    check_pairs(arr)
    return np.column_stack([arr[:, 0], arr[:, 1] - arr[:, 0]])


def _sigma(sigma: Any) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if not 0 < sigma < math.inf:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    return float(sigma)


def _weights(bp: FloatArray, weight: Weight | None) -> FloatArray:
    if weight is None:
        return np.ones(bp.shape[0])
    w = np.asarray(weight(bp[:, 0], bp[:, 1]), dtype=np.float64).reshape(-1)
    if w.size != bp.shape[0]:
        raise ValueError(f"weight must return one value per pair ({bp.shape[0]}), got {w.size}")
    return w


def _axis(values: Any, what: str, at_least: int) -> FloatArray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size < at_least or not np.isfinite(a).all():
        raise ValueError(f"{what} must hold at least {at_least} finite values")
    return a


def persistence_image(
    dgm: Any, birth_grid: Any, pers_grid: Any, sigma: float, weight: Weight | None = None
) -> FloatArray:
    """The weighted Gaussian density at the grid points: ``out[i, j]`` at (``birth_grid[j]``, ``pers_grid[i]``)."""
    bp, s = birth_persistence(dgm), _sigma(sigma)
    xb, xp = _axis(birth_grid, "birth_grid", 1), _axis(pers_grid, "pers_grid", 1)
    w = _weights(bp, weight)
    gb = np.exp(-np.square(xb[None, :] - bp[:, [0]]) / (2 * s * s))
    gp = np.exp(-np.square(xp[None, :] - bp[:, [1]]) / (2 * s * s))
    out: FloatArray = (w[:, None] * gp).T @ gb
    return out / (2 * math.pi * s * s)


def persistence_image_pixels(
    dgm: Any, birth_edges: Any, pers_edges: Any, sigma: float, weight: Weight | None = None
) -> FloatArray:
    """The weighted Gaussian mass on each pixel ``[birth_edges[j], birth_edges[j+1]] x [pers_edges[i],
    pers_edges[i+1]]``: shape ``(len(pers_edges) - 1, len(birth_edges) - 1)``."""
    from scipy.special import ndtr  # the normal CDF, accurate in the tails

    bp, s = birth_persistence(dgm), _sigma(sigma)
    eb, ep = _axis(birth_edges, "birth_edges", 2), _axis(pers_edges, "pers_edges", 2)
    w = _weights(bp, weight)
    mass_b = np.diff(ndtr((eb[None, :] - bp[:, [0]]) / s), axis=1)
    mass_p = np.diff(ndtr((ep[None, :] - bp[:, [1]]) / s), axis=1)
    out: FloatArray = (w[:, None] * mass_p).T @ mass_b
    return out


def _range(r: Any, what: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in np.asarray(r, dtype=np.float64).reshape(2))
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{what} must be (low, high) with low <= high, got {r!r}")
    return lo, hi


def persistence_image_histogram(
    dgm: Any,
    birth_range: tuple[float, float],
    pers_range: tuple[float, float],
    n_bins: int,
    sigma: float,
    weights: Any = None,
) -> FloatArray:
    """giotto-tda's image on ``n_bins`` x ``n_bins`` pixels spanning the ranges (``linspace`` samplings):
    pairs counted in their pixel, times ``weights[k]`` (one per persistence sampling value, 1 if omitted), then a
    ``scipy.ndimage.gaussian_filter`` with sigma in pixels, divided by the pixel area.  Zero if a range is empty."""
    from scipy.ndimage import gaussian_filter

    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n = int(n_bins)
    bp, s = birth_persistence(dgm), _sigma(sigma)
    (b0, b1), (p0, p1) = _range(birth_range, "birth_range"), _range(pers_range, "pers_range")
    image = np.zeros((n, n))
    # The samplings' steps exactly as linspace computes them, so pixels split where giotto-tda's do.
    step = np.array([np.linspace(b0, b1, n, retstep=True)[1], np.linspace(p0, p1, n, retstep=True)[1]])
    if (step == 0).any():
        return image
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != n:
        raise ValueError(f"weights must hold one value per persistence pixel ({n}), got {w.size}")
    first = np.array([b0, p0])
    clipped = np.clip(bp, first, [b1, p1])
    clipped = clipped[clipped[:, 1] != 0]  # pairs on the diagonal carry nothing
    pixels = ((clipped - first) / step).astype(int)
    np.add.at(image, (pixels[:, 0], pixels[:, 1]), 1.0)
    image *= w[None, :]
    gaussian_filter(image, [s / step[0], s / step[1]], mode="constant", output=image)
    out: FloatArray = image.T / (step[0] * step[1])
    return out
