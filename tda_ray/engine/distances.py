"""Distances between persistence diagrams: bottleneck and q-Wasserstein, exact, computed in the C++ core.

Conventions (GUDHI's and Hera's):

* A diagram is a ``(k, 2)`` array of (birth, death) pairs of one homology dimension (a list of pairs may spell an
  infinite death ``None``).  Pairs on the diagonal (death == birth) cost nothing and are ignored.  NaN, infinite
  births and pairs below the diagonal are refused with ValueError.
* The finite parts are matched with the diagonal available; the essential classes (death ``inf``) only among
  themselves, by birth (sorted order is optimal on a line).  **Diagrams with different numbers of essential
  classes are infinitely far apart**: both functions return ``inf`` then.  Empty diagrams are fine.
* Bottleneck: the L-infinity ground metric; a pair's distance to the diagonal is (death - birth) / 2.
* q-Wasserstein: ``(sum of ||x - y||^q over the optimal matching)^(1/q)``, ``||.||`` the L^p norm of
  ``internal_p`` (``inf``: L-infinity, GUDHI's default; 2: Euclidean).  A pair's distance to the diagonal is
  its distance to the nearest diagonal point, ((death - birth) / 2) * 2^(1/p).

Both are exact (no relative error ``delta`` as in Hera): the bottleneck is the smallest candidate value at which
a perfect matching exists (Hopcroft–Karp on the pairs within that distance); the Wasserstein cost is a
minimum-cost assignment (shortest augmenting paths).  They are our own rather than wrapped GUDHI/Hera/POT:
measured faster on typical diagrams and equal to Hera (bottleneck, ``delta=0``) and POT (Wasserstein) up to
float rounding in the tests (BENCHMARKS.md, "Analysis toolkit"), so gudhi is not a runtime dependency.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tda_ray import _core
from tda_ray.engine.diagrams import as_pairs
from tda_ray.engine.params import WassersteinParams

__all__ = ["bottleneck_distance", "pairwise_distances", "wasserstein_distance"]


def bottleneck_distance(dgm_a: Any, dgm_b: Any) -> float:
    """Exact bottleneck distance between two diagrams of one homology dimension (``inf`` if their numbers of
    essential classes differ)."""
    return float(_core.bottleneck_distance(as_pairs(dgm_a, "dgm_a"), as_pairs(dgm_b, "dgm_b")))


@functools.lru_cache(maxsize=64)
def _exponents(p: float, internal_p: float) -> WassersteinParams:
    return WassersteinParams.parse(p=p, internal_p=internal_p)


def _checked_exponents(p: Any, internal_p: Any) -> WassersteinParams:
    # Checked once per distinct pair: a call on small diagrams costs a few microseconds.
    if type(p) in (int, float) and type(internal_p) in (int, float):
        return _exponents(p, internal_p)
    return WassersteinParams.parse(p=p, internal_p=internal_p)


def wasserstein_distance(dgm_a: Any, dgm_b: Any, p: float = 2.0, internal_p: float = math.inf) -> float:
    """Exact q-Wasserstein distance (``q = p``) with the L^``internal_p`` ground norm (``inf`` if the numbers
    of essential classes differ)."""
    params = _checked_exponents(p, internal_p)
    return float(
        _core.wasserstein_distance(as_pairs(dgm_a, "dgm_a"), as_pairs(dgm_b, "dgm_b"), params.p, params.internal_p)
    )


def pairwise_distances(
    dgms_a: Sequence[Any],
    dgms_b: Sequence[Any] | None = None,
    metric: Literal["bottleneck", "wasserstein"] = "bottleneck",
    **kwargs: Any,
) -> npt.NDArray[np.float64]:
    """The ``(len(dgms_a), len(dgms_b))`` matrix of distances (``dgms_b=None``: among ``dgms_a``, symmetric with
    a zero diagonal, each pair computed once).  ``kwargs`` go to :func:`wasserstein_distance`."""
    if metric == "bottleneck":
        if kwargs:
            raise ValueError(f"the bottleneck distance takes no parameters, got {sorted(kwargs)}")
        dist = bottleneck_distance
    elif metric == "wasserstein":
        params = WassersteinParams.parse(kwargs)
        dist = functools.partial(wasserstein_distance, p=params.p, internal_p=params.internal_p)
    else:
        raise ValueError(f"metric must be 'bottleneck' or 'wasserstein', got {metric!r}")
    a = [as_pairs(d, f"dgms_a[{i}]") for i, d in enumerate(dgms_a)]
    if dgms_b is None:
        out = np.zeros((len(a), len(a)))
        for i in range(len(a)):
            for j in range(i):
                out[i, j] = out[j, i] = dist(a[i], a[j])
        return out
    b = [as_pairs(d, f"dgms_b[{j}]") for j, d in enumerate(dgms_b)]
    return np.array([[dist(x, y) for y in b] for x in a], dtype=np.float64).reshape(len(a), len(b))
