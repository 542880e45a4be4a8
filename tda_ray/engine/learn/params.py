"""Hyperparameters of the scikit-learn transformers, checked when they are fitted (giotto-tda's names)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field

from tda_ray.engine.params import (
    AMPLITUDE_METRICS,
    Params,
    PositiveInt,
    PositiveReal,
    Prime,
    _at_least,
    _integer,
    _number,
    _real,
)


def _homology_dimensions(v: Any) -> Any:
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"must be a non-empty list or tuple of non-negative integers, got {v!r}")
    dims = [_at_least(0)(_integer(d)) for d in v]
    if len(set(dims)) != len(dims):
        raise ValueError(f"must not repeat a dimension, got {v!r}")
    return tuple(sorted(dims))


def _non_negative_or_inf(v: float) -> float:
    if not v >= 0:
        raise ValueError(f"must be a non-negative number or inf, got {v!r}")
    return v


def _boolean(v: Any) -> Any:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"must be True or False, got {v!r}")
    return bool(v)


def _one_of(*names: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v not in names:
            raise ValueError(f"must be one of {', '.join(repr(n) for n in names)}; got {v!r}")
        return v

    return check


HomologyDimensions = Annotated[tuple[int, ...], BeforeValidator(_homology_dimensions)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
AmplitudeMetric = Annotated[str, BeforeValidator(_one_of(*AMPLITUDE_METRICS))]


class VietorisRipsPersistenceParams(Params):
    """:class:`tda_ray.VietorisRipsPersistence`'s hyperparameters (giotto-tda's names and defaults)."""

    metric: str | Callable[..., Any] = "euclidean"
    metric_params: dict[str, Any] = Field(default_factory=dict)
    homology_dimensions: HomologyDimensions = (0, 1)
    collapse_edges: Boolean = False
    coeff: Prime = 2
    max_edge_length: Annotated[float, BeforeValidator(_real), AfterValidator(_non_negative_or_inf)] = math.inf
    infinity_values: Annotated[float | None, BeforeValidator(_number)] = None
    reduced_homology: Boolean = True


def _two(v: Any) -> Any:
    if _integer(v) != 2:
        raise ValueError(f"the cubical engine computes over Z/2 only, got {v!r}")
    return 2


def _not_periodic(v: Any) -> Any:
    if v is not None and bool(np.any(np.asarray(v, dtype=bool))):
        raise ValueError(f"periodic boundaries are not supported, got {v!r}")
    return None


class CubicalPersistenceParams(Params):
    """:class:`tda_ray.CubicalPersistence`'s hyperparameters (giotto-tda's names and defaults)."""

    homology_dimensions: HomologyDimensions = (0, 1)
    coeff: Annotated[int, BeforeValidator(_two)] = 2
    periodic_dimensions: Annotated[None, BeforeValidator(_not_periodic)] = None
    infinity_values: Annotated[float | None, BeforeValidator(_number)] = None
    reduced_homology: Boolean = True


class BettiCurveParams(Params):
    n_bins: PositiveInt = 100


class PersistenceLandscapeParams(Params):
    n_layers: PositiveInt = 1
    n_bins: PositiveInt = 100


class SilhouetteParams(Params):
    power: PositiveReal = 1.0
    n_bins: PositiveInt = 100


class PersistenceImageParams(Params):
    sigma: PositiveReal = 0.1
    n_bins: PositiveInt = 100
    weight_function: Callable[..., Any] | None = None


class PersistenceEntropyParams(Params):
    normalize: Boolean = False
    nan_fill_value: Annotated[float | None, BeforeValidator(_number)] = -1.0


class AmplitudeParams(Params):
    metric: AmplitudeMetric = "landscape"
    metric_params: dict[str, Any] | None = None
    order: PositiveReal | None = None

    def metric_model(self) -> Params:
        """The metric's own parameters, checked (unknown names refused)."""
        return AMPLITUDE_METRICS[self.metric].parse(self.metric_params or {})


class SlidingWindowParams(Params):
    size: PositiveInt = 10
    stride: PositiveInt = 1


class TakensEmbeddingParams(Params):
    time_delay: PositiveInt = 1
    dimension: PositiveInt = 2
    stride: PositiveInt = 1
    flatten: Boolean = True
    ensure_last_value: Boolean = True
