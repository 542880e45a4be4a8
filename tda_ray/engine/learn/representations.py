"""Vectorizations of padded diagram collections as giotto-tda computes them: Betti curves, persistence
landscapes, silhouettes, persistence images.  The numbers come from :mod:`tda_ray.engine.vectorize` and
:mod:`tda_ray.engine.images`; this module holds giotto-tda's grids and output shapes.

Grids (giotto-tda's ``_bin``), fitted per homology dimension over the whole collection passed to ``fit``
(padding triples included, which never widen it): ``n_bins`` values from the smallest birth to the largest
death (for images: birth and persistence ranges separately); where a range is a single value its upper end is
the largest over all dimensions instead.  ``samplings_[dim]`` holds them.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.utils.validation import check_is_fitted

from tda_ray.engine import images, vectorize
from tda_ray.engine.learn.base import CollectionTransformer, map_slices
from tda_ray.engine.learn.padded import check_diagrams, diagram_dimensions, subdiagrams
from tda_ray.engine.learn.params import (
    BettiCurveParams,
    PersistenceImageParams,
    PersistenceLandscapeParams,
    SilhouetteParams,
)

FloatArray = npt.NDArray[np.float64]

__all__ = ["BettiCurve", "PersistenceImage", "PersistenceLandscape", "Silhouette", "finite_diagrams", "samplings"]


def finite_diagrams(X: Any) -> FloatArray:
    """:func:`~tda_ray.engine.learn.padded.check_diagrams`, and no infinite death (a grid cannot hold it)."""
    arr = check_diagrams(X)
    if np.isinf(arr[:, :, 1]).any():
        raise ValueError(
            "diagrams contain infinite deaths: give them a finite death first (VietorisRipsPersistence's "
            "max_edge_length or infinity_values)"
        )
    return arr


def samplings(
    X: FloatArray, dims: tuple[int, ...], n_bins: int, image: bool = False
) -> tuple[dict[int, FloatArray], dict[int, Any]]:
    """giotto-tda's grids and steps per dimension: 1-D grids, or for ``image`` ``(n_bins, 2)`` (birth,
    persistence) samplings with a pair of steps."""
    subs = {dim: subdiagrams(X, dim) for dim in dims}
    if image:
        subs = {dim: np.stack([s[:, :, 0], s[:, :, 1] - s[:, :, 0]], axis=2) for dim, s in subs.items()}
    lows = {dim: s.reshape(-1, 2).min(axis=0) for dim, s in subs.items()}
    highs = {dim: s.reshape(-1, 2).max(axis=0) for dim, s in subs.items()}
    if not image:  # one axis: births to deaths
        lows = {dim: np.full(2, v.min()) for dim, v in lows.items()}
        highs = {dim: np.full(2, v.max()) for dim, v in highs.items()}
    widest = np.max(np.stack(list(highs.values())), axis=0)
    grids, steps = {}, {}
    for dim in dims:
        hi = np.where(highs[dim] != lows[dim], highs[dim], widest)
        grid, step = np.linspace(lows[dim], hi, num=n_bins, retstep=True)
        grids[dim], steps[dim] = (grid, step) if image else (grid[:, 0], step[0])
    return grids, steps


class _DiagramVectorizer(CollectionTransformer):
    """fit: giotto-tda's grids; transform: one vectorization per homology dimension, stacked on axis 1."""

    _image = False

    def fit(self, X: Any, y: Any = None) -> _DiagramVectorizer:
        arr = finite_diagrams(X)
        params = self._checked(self._params)
        self._fitted = params
        self.homology_dimensions_ = diagram_dimensions(arr)
        self._grids, self._steps = samplings(arr, self.homology_dimensions_, params.n_bins, self._image)  # type: ignore[attr-defined]
        self.samplings_ = {dim: (g.T if self._image else g) for dim, g in self._grids.items()}
        return self

    def transform(self, X: Any, y: Any = None) -> Any:
        check_is_fitted(self)
        arr = finite_diagrams(X)
        blocks = []
        for dim in self.homology_dimensions_:
            sub = subdiagrams(arr, dim)
            parts = map_slices(functools.partial(self._vectorize, dim=dim), sub, self.n_jobs)
            blocks.append(np.concatenate(parts, axis=0))
        return self._combine(blocks)

    def _combine(self, blocks: list[Any]) -> Any:
        return np.stack(blocks, axis=1)

    def _vectorize(self, sub: FloatArray, dim: int) -> Any:
        raise NotImplementedError


class BettiCurve(_DiagramVectorizer):
    """Betti curves on ``n_bins`` values per dimension: ``(n_samples, n_dims, n_bins)`` integers."""

    _params = BettiCurveParams

    def __init__(self, n_bins: int = 100, n_jobs: int | None = None) -> None:
        self.n_bins = n_bins
        self.n_jobs = n_jobs

    def _vectorize(self, sub: FloatArray, dim: int) -> Any:
        return vectorize.betti_curves(sub, self._grids[dim])


class PersistenceLandscape(_DiagramVectorizer):
    """The first ``n_layers`` landscapes per dimension: ``(n_samples, n_dims * n_layers, n_bins)``, the layers of
    each dimension together (giotto-tda's tents, without GUDHI's factor sqrt(2))."""

    _params = PersistenceLandscapeParams

    def __init__(self, n_layers: int = 1, n_bins: int = 100, n_jobs: int | None = None) -> None:
        self.n_layers = n_layers
        self.n_bins = n_bins
        self.n_jobs = n_jobs

    def _vectorize(self, sub: FloatArray, dim: int) -> Any:
        return vectorize.landscapes(sub, self._grids[dim], self._fitted.n_layers)  # type: ignore[attr-defined]

    def _combine(self, blocks: list[Any]) -> Any:
        return np.concatenate(blocks, axis=1)


class Silhouette(_DiagramVectorizer):
    """Power-weighted silhouettes per dimension: ``(n_samples, n_dims, n_bins)``."""

    _params = SilhouetteParams

    def __init__(self, power: float = 1.0, n_bins: int = 100, n_jobs: int | None = None) -> None:
        self.power = power
        self.n_bins = n_bins
        self.n_jobs = n_jobs

    def _vectorize(self, sub: FloatArray, dim: int) -> Any:
        return vectorize.silhouettes(sub, self._grids[dim], self._fitted.power)  # type: ignore[attr-defined]


class PersistenceImage(_DiagramVectorizer):
    """giotto-tda's persistence images (:func:`tda_ray.engine.images.persistence_image_histogram`):
    ``(n_samples, n_dims, n_bins, n_bins)``, row 0 the highest persistence, column 0 the lowest birth.
    ``weight_function`` maps persistence values to weights (vectorized; None: 1); ``weights_[dim]`` holds them
    on the persistence sampling."""

    _params = PersistenceImageParams
    _image = True

    def __init__(
        self, sigma: float = 0.1, n_bins: int = 100, weight_function: Any = None, n_jobs: int | None = None
    ) -> None:
        self.sigma = sigma
        self.n_bins = n_bins
        self.weight_function = weight_function
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any = None) -> PersistenceImage:
        super().fit(X, y)
        weigh = self.weight_function if self.weight_function is not None else np.ones_like
        self.weights_ = {dim: np.asarray(weigh(g[:, 1]), dtype=np.float64) for dim, g in self._grids.items()}
        return self

    def _vectorize(self, sub: FloatArray, dim: int) -> Any:
        grid, n = self._grids[dim], self._fitted.n_bins  # type: ignore[attr-defined]
        ranges = ((grid[0, 0], grid[-1, 0]), (grid[0, 1], grid[-1, 1]))
        sigma = self._fitted.sigma  # type: ignore[attr-defined]
        return np.stack(
            [images.persistence_image_histogram(d, *ranges, n, sigma, self.weights_[dim])[::-1] for d in sub]
        )
