"""Vectors of a job's diagrams and distances between two jobs' diagrams: the query models (checked once, by
pydantic, where the HTTP layer reads the query string) and the computations, which call the engine's own
functions (:mod:`tda_ray.engine.vectorize`, :mod:`tda_ray.engine.images`, :mod:`tda_ray.engine.distances`).

Grids: ``n_bins`` evenly spaced values over ``[t_min, t_max]``, by default from the smallest birth to the largest
finite death of that dimension's diagram (:func:`~tda_ray.engine.vectorize.filtration_grid`); an image's columns
span the births instead (``t_min``, ``t_max`` default to the smallest and largest birth), its rows the
persistence from 0 to the largest.  Essential classes
(death ``inf``) count in a Betti curve; every other kind leaves them out
(:func:`~tda_ray.engine.diagrams.finite_part`), since a landscape or an image of an infinite bar is undefined.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tda_ray.engine import vectorize
from tda_ray.engine.diagrams import essential_counts, finite_part
from tda_ray.engine.distances import bottleneck_distance, wasserstein_distance
from tda_ray.engine.images import persistence_image

__all__ = ["DistanceQuery", "VectorKind", "VectorsQuery", "diagram_distances", "diagram_vectors"]

FloatArray = npt.NDArray[np.float64]
VectorKind = Literal["betti_curve", "landscape", "silhouette", "image", "entropy"]
# Parameters that only some kinds take; giving one to another kind is a 422 rather than silently ignored.
KIND_PARAMS: dict[str, tuple[VectorKind, ...]] = {
    "n_bins": ("betti_curve", "landscape", "silhouette", "image"),
    "t_min": ("betti_curve", "landscape", "silhouette", "image"),
    "t_max": ("betti_curve", "landscape", "silhouette", "image"),
    "n_layers": ("landscape",),
    "power": ("silhouette",),
    "sigma": ("image",),
    "normalize": ("entropy",),
}
MAX_BINS = 10_000
MAX_IMAGE_BINS = 200  # an image has n_bins^2 values
PAIRS_X_GRID = 1 << 21  # largest (pairs x grid values) handed to the engine at once: 16 MiB per array


class VectorsQuery(BaseModel):
    """``GET /v1/jobs/{id}/vectors``: which vectorization, of which dimensions, with which parameters."""

    model_config = ConfigDict(extra="forbid")

    kind: VectorKind = Field(description="betti_curve, landscape, silhouette, image (persistence image) or entropy")
    dim: int | None = Field(default=None, ge=0, le=64, description="Homology dimension (default: every one)")
    n_bins: int = Field(default=100, ge=1, le=MAX_BINS, description=f"Grid size (image: per axis, <= {MAX_IMAGE_BINS})")
    t_min: float | None = Field(default=None, allow_inf_nan=False, description="Grid start (default: smallest birth)")
    t_max: float | None = Field(
        default=None, allow_inf_nan=False, description="Grid end (default: largest finite death; image: largest birth)"
    )
    n_layers: int = Field(default=1, ge=1, le=100, description="landscape: how many layers")
    power: float = Field(default=1.0, gt=0, le=64, allow_inf_nan=False, description="silhouette: weight exponent")
    sigma: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="image: Gaussian width (default: 1/20 of the range)"
    )
    normalize: bool = Field(default=False, description="entropy: divide by log(number of bars)")

    @model_validator(mode="after")
    def _fits_kind(self) -> VectorsQuery:
        for name in sorted(self.model_fields_set):
            kinds = KIND_PARAMS.get(name)
            if kinds is not None and self.kind not in kinds:
                raise ValueError(f"{name} does not apply to kind={self.kind} (only to {', '.join(kinds)})")
        if self.t_min is not None and self.t_max is not None and self.t_min > self.t_max:
            raise ValueError(f"t_min must be <= t_max, got {self.t_min} > {self.t_max}")
        if self.kind == "image" and self.n_bins > MAX_IMAGE_BINS:
            raise ValueError(f"n_bins must be <= {MAX_IMAGE_BINS} for kind=image, got {self.n_bins}")
        return self

    def used(self) -> dict[str, Any]:
        """The parameters of this kind, defaults included."""
        return {name: getattr(self, name) for name, kinds in KIND_PARAMS.items() if self.kind in kinds}


class DistanceQuery(BaseModel):
    """``GET /v1/jobs/{a}/distance/{b}``: the metric and its exponents."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["bottleneck", "wasserstein"] = "bottleneck"
    dim: int | None = Field(default=None, ge=0, le=64, description="Homology dimension (default: every one)")
    p: float = Field(default=2.0, ge=1, le=1000, allow_inf_nan=False, description="wasserstein: exponent q")
    internal_p: float = Field(default=math.inf, ge=1, description="wasserstein: L^p ground norm (inf: L-infinity)")

    @model_validator(mode="after")
    def _fits_metric(self) -> DistanceQuery:
        if self.metric == "bottleneck" and self.model_fields_set & {"p", "internal_p"}:
            raise ValueError("p and internal_p apply to metric=wasserstein only")
        if math.isnan(self.internal_p):
            raise ValueError("internal_p must be a number >= 1 or inf, got nan")
        return self


def _dims(n_dims: int, dim: int | None, what: str) -> list[int]:
    if dim is None:
        return list(range(n_dims))
    if dim >= n_dims:
        raise ValueError(f"dim {dim} is not in {what} (dimensions 0..{n_dims - 1})")
    return [dim]


def _linspace(q: VectorsQuery, lo: float, hi: float) -> FloatArray:
    """``n_bins`` values from ``t_min`` to ``t_max``, each defaulting to ``lo`` / ``hi``."""
    lo = q.t_min if q.t_min is not None else lo
    hi = q.t_max if q.t_max is not None else hi
    if lo > hi:
        raise ValueError(f"the grid would run from {lo} down to {hi}: give both t_min and t_max")
    return np.linspace(lo, hi, q.n_bins)


def _grid(dgm: FloatArray, q: VectorsQuery) -> FloatArray:
    default = vectorize.filtration_grid([dgm], q.n_bins) if len(dgm) else np.zeros(q.n_bins)
    return _linspace(q, float(default[0]), float(default[-1]))


def _image(dgm: FloatArray, q: VectorsQuery) -> dict[str, Any]:
    # Columns over the births (t_min, t_max), rows over the persistence from 0 to the largest.
    finite = finite_part(dgm)
    b, top = finite[:, 0], float((finite[:, 1] - finite[:, 0]).max(initial=0.0))  # persistence >= 0
    births = _linspace(q, float(b.min()) if len(b) else 0.0, float(b.max()) if len(b) else 0.0)
    pers = np.linspace(0.0, top, q.n_bins)
    span = max(float(births[-1] - births[0]), top)
    sigma = q.sigma if q.sigma is not None else (span / 20 if span > 0 else 1.0)
    values = persistence_image(finite, births, pers, sigma)
    return {"birth_grid": births, "persistence_grid": pers, "sigma": sigma, "values": values}


def _vector(dgm: FloatArray, q: VectorsQuery) -> dict[str, Any]:
    if q.kind == "entropy":
        return {"values": vectorize.persistence_entropy(finite_part(dgm), normalize=q.normalize)}
    if q.kind == "image":
        return _image(dgm, q)
    if q.kind == "betti_curve":
        grid = _grid(dgm, q)
        return {"grid": grid, "values": vectorize.betti_curve(dgm, grid)}
    finite = finite_part(dgm)
    grid = _grid(finite, q)
    # Both are pointwise in t: computed on pieces of the grid, so that the engine's (pairs x grid) arrays
    # stay small for an H0 of many pairs.
    pieces = np.array_split(grid, max(1, min(grid.size, len(finite) * grid.size // PAIRS_X_GRID)))
    if q.kind == "landscape":
        values = np.hstack([vectorize.landscape(finite, t, q.n_layers) for t in pieces])
    else:
        values = np.hstack([vectorize.silhouette(finite, t, q.power) for t in pieces])
    return {"grid": grid, "values": values}


def _plain(v: Any) -> Any:
    # JSON has no inf or NaN: a vector that overflowed is refused rather than sent unreadable.
    arr = np.asarray(v, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("the vector overflowed (non-finite values): choose a narrower range or other parameters")
    return v.tolist() if isinstance(v, np.ndarray) else v


def diagram_vectors(diagrams: list[FloatArray], q: VectorsQuery) -> list[dict[str, Any]]:
    """One entry per homology dimension: ``{"dim", "values", ...grids}`` (ValueError on bad input)."""
    out = []
    for k in _dims(len(diagrams), q.dim, "the job's result"):
        vec = {name: _plain(v) for name, v in _vector(diagrams[k], q).items()}
        out.append({"dim": k, **vec})
    return out


def diagram_distances(
    a: list[FloatArray], b: list[FloatArray], q: DistanceQuery, max_pairs: int
) -> list[dict[str, Any]]:
    """One entry per homology dimension both results have: ``{"dim", "distance", "infinite", "essential"}``;
    ``distance`` is None (and ``infinite`` true) when the numbers of essential classes differ.  The Wasserstein
    distance is refused on diagrams of more than ``max_pairs`` pairs: its assignment takes cubic time."""
    out = []
    for k in _dims(min(len(a), len(b)), q.dim, "both jobs' results"):
        if q.metric == "wasserstein" and max(len(a[k]), len(b[k])) > max_pairs:
            raise ValueError(
                f"H{k} has {max(len(a[k]), len(b[k]))} pairs, above this server's limit of {max_pairs} for the "
                "Wasserstein distance: ask for another dim or metric=bottleneck"
            )
        if q.metric == "bottleneck":
            d = bottleneck_distance(a[k], b[k])
        else:
            d = wasserstein_distance(a[k], b[k], p=q.p, internal_p=q.internal_p)
        if math.isnan(d) or (math.isinf(d) and essential_counts([a[k]]) == essential_counts([b[k]])):
            raise ValueError("the distance overflowed: choose a smaller p")
        counts = [essential_counts([a[k]])[0], essential_counts([b[k]])[0]]
        out.append(
            {"dim": k, "distance": d if math.isfinite(d) else None, "infinite": math.isinf(d), "essential": counts}
        )
    return out
