"""Persistence diagrams of a collection of point clouds or distance matrices, as giotto-tda computes them.

:class:`PersistenceTransformer` holds what does not depend on the filtration: checked hyperparameters, one
engine run per sample through joblib, giotto-tda's post-processing (the one infinite bar of H0 dropped when
``reduced_homology``, infinite deaths replaced by ``infinity_values_``, pairs on the diagonal dropped) and its
padding (:mod:`~tda_ray.engine.learn.padded`).  A filtration is a subclass naming its parameter model and
computing one sample's diagrams: :class:`VietorisRipsPersistence` and :class:`CubicalPersistence` (images and
volumes, on :mod:`tda_ray.engine.cubical`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.utils.validation import check_is_fitted

from tda_ray.engine.cubical import CubicalParams, run_cubical
from tda_ray.engine.learn.base import CollectionTransformer, map_slices
from tda_ray.engine.learn.padded import pad
from tda_ray.engine.learn.params import CubicalPersistenceParams, VietorisRipsPersistenceParams
from tda_ray.engine.params import Params, RipsParams
from tda_ray.engine.rips import run_rips

FloatArray = npt.NDArray[np.float64]

__all__ = ["CubicalPersistence", "PersistenceTransformer", "VietorisRipsPersistence"]


def _collection(X: Any, what: str, sample_ndim: tuple[int, ...] = (2,)) -> list[Any]:
    """The samples of a 3-D array or of a list of 2-D arrays (or, with ``sample_ndim``, of other ranks)."""
    if hasattr(X, "tocsr") or any(hasattr(x, "tocsr") for x in (X if isinstance(X, (list, tuple)) else [])):
        raise ValueError(f"{what}: sparse matrices are not supported; pass dense arrays")
    ranks = " or ".join(f"{n}-D" for n in sample_ndim)
    stacks = " or ".join(f"{n + 1}-D" for n in sample_ndim)
    if isinstance(X, np.ndarray):
        if X.ndim - 1 not in sample_ndim:
            hint = " (a single one? X[None, :, :])" if X.ndim in sample_ndim else ""
            raise ValueError(f"{what} must be a {stacks} array or a list of {ranks} arrays, got shape {X.shape}{hint}")
        return list(X)
    if not isinstance(X, Sequence) or isinstance(X, str) or len(X) == 0:
        raise ValueError(f"{what} must be a non-empty {stacks} array or list of {ranks} arrays")
    samples = []
    for i, x in enumerate(X):
        arr = np.asarray(x)
        if arr.ndim not in sample_ndim:
            raise ValueError(f"{what}[{i}] must be {ranks.replace('-D', '-dimensional')}, got shape {arr.shape}")
        samples.append(arr)
    return samples


class PersistenceTransformer(CollectionTransformer):
    """Diagrams of each sample, padded: ``transform`` returns ``(n_samples, n_points, 3)`` (birth, death, dim).

    Subclasses set ``_params`` (a model with ``homology_dimensions``, ``infinity_values``, ``reduced_homology``)
    and implement ``_check_sample`` and ``_sample_diagrams``.
    """

    _what: ClassVar[str] = "X"
    _sample_ndim: ClassVar[tuple[int, ...]] = (2,)

    def fit(self, X: Any, y: Any = None) -> PersistenceTransformer:
        """Check the hyperparameters and the collection's shape; set ``homology_dimensions_`` and
        ``infinity_values_`` (the death given to classes still alive at the end)."""
        params = self._checked(self._params)
        samples = _collection(X, self._what, self._sample_ndim)
        for i, x in enumerate(samples):
            self._check_sample(x, params, f"{self._what}[{i}]")
        self._fitted = params
        self.homology_dimensions_: tuple[int, ...] = params.homology_dimensions  # type: ignore[attr-defined]
        self.infinity_values_ = self._infinity_values(params, samples)
        return self

    def transform(self, X: Any, y: Any = None) -> FloatArray:
        check_is_fitted(self)
        params = self._fitted
        samples = list(enumerate(_collection(X, self._what, self._sample_ndim)))
        parts = map_slices(
            lambda part: [self._diagrams(i, x, params) for i, x in part], samples, self.n_jobs, "threads"
        )
        return pad([d for part in parts for d in part], self.homology_dimensions_)

    def _diagrams(self, index: int, x: Any, params: Any) -> dict[int, FloatArray]:
        name = f"{self._what}[{index}]"
        self._check_sample(x, params, name)
        try:
            raw = self._sample_diagrams(x, params)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        out = {}
        for dim in params.homology_dimensions:
            pairs = np.asarray(raw[dim], dtype=np.float64).reshape(-1, 2) if dim < len(raw) else np.zeros((0, 2))
            if dim == 0 and params.reduced_homology:
                pairs = _without_first_essential(pairs)
            pairs = pairs.copy()
            pairs[np.isposinf(pairs[:, 1]), 1] = self.infinity_values_
            out[dim] = pairs[pairs[:, 0] < pairs[:, 1]]
        return out

    def _infinity_values(self, params: Any, samples: list[Any]) -> float:
        return float(params.infinity_values)

    def _check_sample(self, x: Any, params: Any, name: str) -> None:
        raise NotImplementedError

    def _sample_diagrams(self, x: Any, params: Any) -> Sequence[Any]:
        """One sample's diagrams, indexed by homology dimension (essential classes with death inf)."""
        raise NotImplementedError


def _without_first_essential(pairs: FloatArray) -> FloatArray:
    """The diagram less its earliest-born essential class (reduced homology in degree 0)."""
    essential = np.flatnonzero(np.isinf(pairs[:, 1]))
    if essential.size == 0:
        return pairs
    drop = essential[np.argmin(pairs[essential, 0])]
    return np.delete(pairs, drop, axis=0)


class VietorisRipsPersistence(PersistenceTransformer):
    """Vietoris–Rips persistence of each point cloud (or distance matrix, ``metric="precomputed"``), computed by
    the tda-ray engine (:func:`tda_ray.engine.rips.run_rips`); giotto-tda's parameters and output.

    ``metric``: ``"euclidean"`` runs the engine on the points; ``"precomputed"`` takes distance matrices
    (symmetric, zero diagonal: giotto-tda's vertex weights on the diagonal are not supported); any other name
    or callable goes to :func:`sklearn.metrics.pairwise_distances` with ``metric_params``.
    ``collapse_edges`` is accepted for giotto-tda's signature: edge collapses change no diagram, and the engine
    does not need them.  ``n_jobs`` runs samples in parallel through joblib (threads by default: the engine
    releases the GIL; a Ray cluster with :func:`tda_ray.distributed.joblib.ray_backend`).
    """

    _params = VietorisRipsPersistenceParams

    def __init__(
        self,
        metric: Any = "euclidean",
        metric_params: dict[str, Any] | None = None,
        homology_dimensions: Sequence[int] = (0, 1),
        collapse_edges: bool = False,
        coeff: int = 2,
        max_edge_length: float = math.inf,
        infinity_values: float | None = None,
        reduced_homology: bool = True,
        n_jobs: int | None = None,
    ) -> None:
        self.metric = metric
        self.metric_params = metric_params
        self.homology_dimensions = homology_dimensions
        self.collapse_edges = collapse_edges
        self.coeff = coeff
        self.max_edge_length = max_edge_length
        self.infinity_values = infinity_values
        self.reduced_homology = reduced_homology
        self.n_jobs = n_jobs

    def _checked(self, model: type[Any]) -> Any:
        values = {k: v for k, v in self.get_params(deep=False).items() if k != "n_jobs"}
        if values["metric_params"] is None:
            values["metric_params"] = {}
        return model.parse(values)

    def _infinity_values(self, params: Params, samples: list[Any]) -> float:
        p: Any = params
        return float(p.max_edge_length if p.infinity_values is None else p.infinity_values)

    def _check_sample(self, x: Any, params: Any, name: str) -> None:
        if params.metric == "precomputed" and x.shape[0] != x.shape[1]:
            raise ValueError(f"{name}: a distance matrix must be square, got shape {x.shape}")

    def _sample_diagrams(self, x: Any, params: Any) -> Sequence[Any]:
        rips = RipsParams.parse(
            maxdim=max(params.homology_dimensions),
            threshold=None if math.isinf(params.max_edge_length) else params.max_edge_length,
            coeff=params.coeff,
        )
        data, precomputed = x, params.metric == "precomputed"
        if not precomputed and (params.metric != "euclidean" or params.metric_params):
            from sklearn.metrics import pairwise_distances

            data, precomputed = pairwise_distances(x, metric=params.metric, **params.metric_params), True
        return run_rips(data, rips, distance_matrix=precomputed).diagrams


class CubicalPersistence(PersistenceTransformer):
    """Persistence of the sublevel filtration of each image (2-D) or volume (3-D), pixels as top cells (the
    T-construction, GUDHI's ``CubicalComplex`` as giotto-tda uses it), computed by the tda-ray engine
    (:func:`tda_ray.engine.cubical.run_cubical`); giotto-tda's parameters and output.

    Over Z/2 only (``coeff`` other than 2 is refused) and without periodic boundaries.  ``infinity_values``
    None gives classes alive at the end the largest pixel value of the collection passed to ``fit``.
    ``n_jobs`` runs samples in parallel through joblib.
    """

    _params = CubicalPersistenceParams
    _what = "X"
    _sample_ndim = (2, 3)

    def __init__(
        self,
        homology_dimensions: Sequence[int] = (0, 1),
        coeff: int = 2,
        periodic_dimensions: Any = None,
        infinity_values: float | None = None,
        reduced_homology: bool = True,
        n_jobs: int | None = None,
    ) -> None:
        self.homology_dimensions = homology_dimensions
        self.coeff = coeff
        self.periodic_dimensions = periodic_dimensions
        self.infinity_values = infinity_values
        self.reduced_homology = reduced_homology
        self.n_jobs = n_jobs

    def _infinity_values(self, params: Any, samples: list[Any]) -> float:
        if params.infinity_values is not None:
            return float(params.infinity_values)
        return float(max(np.max(np.asarray(x, dtype=np.float64)) for x in samples))

    def _check_sample(self, x: Any, params: Any, name: str) -> None:
        if np.asarray(x).size == 0:
            raise ValueError(f"{name}: an image needs at least one pixel")

    def _sample_diagrams(self, x: Any, params: Any) -> Sequence[Any]:
        image = np.asarray(x, dtype=np.float64)
        maxdim = min(max(params.homology_dimensions), image.ndim - 1)
        return run_cubical(image, CubicalParams.parse(maxdim=maxdim, construction="T")).diagrams
