"""Scalar features of padded diagram collections, as giotto-tda computes them: amplitudes (a diagram's
distance to the empty diagram, per homology dimension) and persistence entropy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.utils.validation import check_is_fitted

from tda_ray.engine import images, vectorize
from tda_ray.engine.learn.base import CollectionTransformer, map_slices
from tda_ray.engine.learn.padded import check_diagrams, diagram_dimensions, subdiagrams
from tda_ray.engine.learn.params import AmplitudeParams, PersistenceEntropyParams
from tda_ray.engine.learn.representations import finite_diagrams, samplings

FloatArray = npt.NDArray[np.float64]

__all__ = ["Amplitude", "PersistenceEntropy", "amplitudes"]


def _norms(values: FloatArray, p: float) -> FloatArray:
    out: FloatArray = np.linalg.norm(values.reshape(values.shape[0], -1), ord=p, axis=1)
    return out


def amplitudes(sub: FloatArray, metric: str, params: Any, grid: Any, step: Any) -> FloatArray:
    """giotto-tda's amplitude of each diagram of one dimension (``(n, k, 2)``), ``params`` the metric's model.

    bottleneck: the largest half-life (death - birth) / 2; wasserstein: the L^p norm of the half-lives (both
    the distance to the empty diagram); betti / landscape / silhouette / persistence_image: the L^p norm of the
    vectorization on the fitted grid, times (grid step)^(1/p) (for images the pixel area).
    """
    if metric == "bottleneck":
        return _norms((sub[:, :, 1] - sub[:, :, 0]) / 2.0, math.inf)
    if metric == "wasserstein":
        return _norms((sub[:, :, 1] - sub[:, :, 0]) / 2.0, params.p)
    if metric == "persistence_image":
        weigh = params.weight_function if params.weight_function is not None else np.ones_like
        weights = np.asarray(weigh(grid[:, 1]), dtype=np.float64)
        ranges = ((grid[0, 0], grid[-1, 0]), (grid[0, 1], grid[-1, 1]))
        pictures = np.stack(
            [images.persistence_image_histogram(d, *ranges, params.n_bins, params.sigma, weights) for d in sub]
        )
        out: FloatArray = _norms(pictures, params.p) * float(np.prod(step)) ** (1 / params.p)
        return out
    if metric == "betti":
        values: FloatArray = vectorize.betti_curves(sub, grid).astype(np.float64)
    elif metric == "landscape":
        values = vectorize.landscapes(sub, grid, params.n_layers)
    else:
        values = vectorize.silhouettes(sub, grid, params.power)
    scaled: FloatArray = _norms(values, params.p) * step ** (1 / params.p)
    return scaled


class Amplitude(CollectionTransformer):
    """The amplitude of each diagram per homology dimension, ``(n_samples, n_dims)``; with ``order`` the L^order
    norm of that vector, ``(n_samples, 1)``.  ``metric_params`` are giotto-tda's (``p``, ``n_bins``,
    ``n_layers``, ``power``, ``sigma``, ``weight_function`` as the metric takes them); its ``heat`` metric is
    not offered."""

    _params = AmplitudeParams

    def __init__(
        self,
        metric: str = "landscape",
        metric_params: dict[str, Any] | None = None,
        order: float | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.metric = metric
        self.metric_params = metric_params
        self.order = order
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any = None) -> Amplitude:
        arr = finite_diagrams(X)
        params = self._checked(AmplitudeParams)
        self._fitted, self._metric = params, params.metric_model()
        self.homology_dimensions_ = diagram_dimensions(arr)
        n_bins = getattr(self._metric, "n_bins", 100)
        self._grids, self._steps = samplings(
            arr, self.homology_dimensions_, n_bins, image=params.metric == "persistence_image"
        )
        self.effective_metric_params_ = self._metric.model_dump()
        return self

    def transform(self, X: Any, y: Any = None) -> FloatArray:
        check_is_fitted(self)
        arr = finite_diagrams(X)
        metric = self._fitted.metric
        columns = []
        for dim in self.homology_dimensions_:
            sub = subdiagrams(arr, dim)
            grid, step = self._grids[dim], self._steps[dim]
            parts = map_slices(lambda part: amplitudes(part, metric, self._metric, grid, step), sub, self.n_jobs)  # noqa: B023
            columns.append(np.concatenate(parts))
        out = np.stack(columns, axis=1)
        if self._fitted.order is not None:
            out = np.linalg.norm(out, axis=1, ord=self._fitted.order).reshape(-1, 1)
        return out


class PersistenceEntropy(CollectionTransformer):
    """Persistence entropy per homology dimension (base 2, giotto-tda's): ``(n_samples, n_dims)``.
    ``normalize`` divides by log2 of the total persistence (giotto-tda's normalization, not persim's log of the
    number of bars); a diagram without positive persistence gives ``nan_fill_value`` (None: NaN)."""

    _params = PersistenceEntropyParams

    def __init__(self, normalize: bool = False, nan_fill_value: float | None = -1.0, n_jobs: int | None = None) -> None:
        self.normalize = normalize
        self.nan_fill_value = nan_fill_value
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any = None) -> PersistenceEntropy:
        arr = check_diagrams(X)
        self._fitted = self._checked(PersistenceEntropyParams)
        self.homology_dimensions_ = diagram_dimensions(arr)
        return self

    def _entropies(self, sub: FloatArray) -> FloatArray:
        out = vectorize.persistence_entropies(sub, base=2)
        if self._fitted.normalize:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = out / np.log2(np.sum(sub[:, :, 1] - sub[:, :, 0], axis=1))
        if self._fitted.nan_fill_value is not None:
            out = np.nan_to_num(out, nan=self._fitted.nan_fill_value)
        return out

    def transform(self, X: Any, y: Any = None) -> FloatArray:
        check_is_fitted(self)
        arr = finite_diagrams(X)
        columns = [
            np.concatenate(map_slices(self._entropies, subdiagrams(arr, dim), self.n_jobs))
            for dim in self.homology_dimensions_
        ]
        return np.stack(columns, axis=1)
