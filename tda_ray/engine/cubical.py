"""Cubical persistence of images and volumes: the Python face of the C++ cubical engine.

The sublevel filtration of a 2-D image or a 3-D volume, in one of two cubical complexes:

* ``"V"`` (vertex construction, GUDHI's ``CubicalComplex(vertices=...)``, cripser's default): pixels are the
  vertices, and a cell enters with the largest value of its vertices.
* ``"T"`` (top-cell construction, GUDHI's ``top_dimensional_cells=``, cripser's ``filtration="T"``): pixels are
  the top-dimensional cells, and a cell enters with the smallest value of the top cells around it.

Coefficients are Z/2. Homology is computed in every dimension 0..d-1 of a d-dimensional image (the complex of a
box has no homology in dimension d); the component that never dies is the one essential class of the full
filtration.  With a ``threshold``, cells above it never enter, and classes alive at the threshold are essential.
Diagrams equal GUDHI's and cripser's (tests/test_cubical.py); the engine (``tda_ray._core``) is ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema

from tda_ray import _core
from tda_ray.engine.params import OptionalNonNegativeInt, Params, RunOptions
from tda_ray.engine.result import PersistenceResult
from tda_ray.io.arrays import as_float_grid

__all__ = ["CubicalParams", "check_memory", "cubical_persistence", "run_cubical"]

_CONSTRUCTIONS = {"V": _core.CubicalConstruction.vertex, "T": _core.CubicalConstruction.top_cell}


def _construction(v: Any) -> Any:
    if isinstance(v, str) and v.strip().upper() in _CONSTRUCTIONS:
        return v.strip().upper()
    raise ValueError(f"must be 'V' (pixels are vertices) or 'T' (pixels are top cells), got {v!r}")


def _level(v: Any) -> Any:
    # Image values may be negative, so unlike a Rips threshold any real is a level; inf means none.
    if v is None:
        return v
    numeric = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    if not numeric or math.isnan(v) or v == -math.inf:
        raise ValueError(f"must be a number (or null for none), got {v!r}")
    return None if math.isinf(v) else float(v)


# Dimensions above d - 1 come back empty; the engine's bound keeps that list small.
MAX_MAXDIM = 30


def _at_most_max(v: int | None) -> int | None:
    if v is not None and v > MAX_MAXDIM:
        raise ValueError(f"must be <= {MAX_MAXDIM}, got {v}")
    return v


Construction = Annotated[Literal["V", "T"], BeforeValidator(_construction)]
Level = Annotated[
    float | None, BeforeValidator(_level), WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "null"}]})
]


class CubicalParams(Params):
    """Parameters of a cubical persistence computation (sublevel filtration of an image or a volume)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"maxdim": None, "construction": "V", "threshold": None}]}
    )

    maxdim: Annotated[OptionalNonNegativeInt, AfterValidator(_at_most_max)] = Field(
        default=None,
        description="Highest homology dimension; null = every dimension of the image (1 for 2-D, 2 for 3-D).",
    )
    construction: Construction = Field(
        default="V",
        description="'V': pixels are vertices (a cell takes its largest vertex); 'T': pixels are top cells.",
    )
    threshold: Level = Field(
        default=None, description="Cells with larger values never enter; null = the full filtration."
    )


def estimate_bytes(n_points: int, params: CubicalParams) -> int:
    """The bytes the engine holds up front for an image of ``n_points`` pixels (taken as a square)."""
    side = max(1, math.isqrt(max(0, n_points - 1)) + 1)
    return int(_core.cubical_estimate_bytes([side, side], _CONSTRUCTIONS[params.construction]))


def check_memory(n_points: int, params: CubicalParams, memory_limit: int | None = None) -> None:
    """The engine's up-front refusal, knowing only the number of pixels (as a square image): raises
    :class:`~tda_ray.engine.rips.MemoryLimitError` when the complex cannot fit in the memory limit."""
    need = estimate_bytes(n_points, params)
    limit = memory_limit or int(_core.default_memory_limit())
    if need > limit:
        raise _core.MemoryLimitError(
            f"the cubical complex of {n_points} pixels needs about {need / 2**20:.0f} MiB, above the memory limit "
            f"of {limit / 2**20:.0f} MiB; crop or downsample the image"
        )


def run_cubical(
    image: Any,
    params: CubicalParams,
    options: RunOptions | None = None,
    *,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
) -> PersistenceResult:
    """Cubical persistence of ``image`` with checked parameters (the registry's run function).

    ``n_points`` of the result is the number of pixels (voxels); ``extras`` holds the ``shape``, the
    ``construction`` and, per dimension, the ``pixels`` (flat indices into the image) whose values are each
    pair's birth and death (-1 for the death of an essential class).
    """
    options = options or RunOptions()
    arr = as_float_grid(image, "image")
    maxdim = arr.ndim - 1 if params.maxdim is None else params.maxdim
    threshold = math.inf if params.threshold is None else params.threshold
    out = _core.cubical_persistence(
        arr,
        maxdim,
        _CONSTRUCTIONS[params.construction],
        threshold,
        options.n_threads,
        options.memory_limit or 0,
        progress,
        cancel,
    )
    flat = arr.reshape(-1)
    diagrams = []
    for pixels in out["pairs"]:
        births = flat[pixels[:, 0]]
        deaths = np.where(pixels[:, 1] < 0, np.inf, flat[np.maximum(pixels[:, 1], 0)])
        diagrams.append(np.column_stack([births, deaths]).astype(np.float64).reshape(-1, 2))
    return PersistenceResult(
        diagrams=diagrams,
        maxdim=maxdim,
        coeff=2,
        threshold=params.threshold,
        n_points=int(arr.size),
        extras={
            "shape": tuple(int(n) for n in arr.shape),
            "construction": params.construction,
            "pixels": out["pairs"],
            "estimated_bytes": int(out["estimated_bytes"]),
        },
    )


def cubical_persistence(
    image: Any,
    *,
    maxdim: int | None = None,
    construction: str = "V",
    threshold: float | None = None,
    n_threads: int = 1,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
    memory_limit: int | None = None,
) -> PersistenceResult:
    """Persistent homology (Z/2) of the sublevel filtration of a 2-D image or a 3-D volume.

    ``construction`` is ``"V"`` (pixels are vertices) or ``"T"`` (pixels are top cells); ``maxdim=None``
    computes every dimension of the image; ``threshold`` keeps cells with values up to it.  ``progress``,
    ``cancel`` (a :class:`~tda_ray.engine.rips.CancelToken`) and ``memory_limit`` (bytes; work estimated above
    it is refused with ``MemoryLimitError``) behave as in :func:`~tda_ray.engine.rips.vietoris_rips`.
    ``n_threads`` parallelises the search for apparent pairs of volumes.  ``result.n_points`` is the number
    of pixels.
    """
    params = CubicalParams.parse(maxdim=maxdim, construction=construction, threshold=threshold)
    options = RunOptions.parse(n_threads=n_threads, memory_limit=memory_limit)
    return run_cubical(image, params, options, progress=progress, cancel=cancel)
