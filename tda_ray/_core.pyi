"""Type stub for the compiled engine module (cpp_core/bindings/module.cpp)."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

class InputError(ValueError): ...
class MemoryLimitError(ValueError): ...
class Cancelled(RuntimeError): ...

class CancelToken:
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

class CollapseMode:
    off: CollapseMode
    on: CollapseMode
    auto: CollapseMode

class Metric:
    euclidean: Metric
    manhattan: Metric
    chebyshev: Metric
    cosine: Metric
    minkowski: Metric

def default_memory_limit() -> int: ...
def rips_from_points(
    points: npt.NDArray[np.float64],
    maxdim: int,
    threshold: float,
    coeff: int,
    n_threads: int,
    memory_limit: int,
    progress: Callable[[float], None] | None = None,
    cancel: CancelToken | None = None,
    collapse: CollapseMode = ...,
    metric: Metric = ...,
    metric_p: float = 2.0,
    cocycles: bool = False,
) -> dict[str, Any]: ...
def rips_from_lower_distances(
    lower: npt.NDArray[np.float64],
    n: int,
    maxdim: int,
    threshold: float,
    coeff: int,
    n_threads: int,
    memory_limit: int,
    progress: Callable[[float], None] | None = None,
    cancel: CancelToken | None = None,
    collapse: CollapseMode = ...,
    cocycles: bool = False,
) -> dict[str, Any]: ...
def rips_from_sparse(
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    n: int,
    maxdim: int,
    threshold: float,
    coeff: int,
    n_threads: int,
    memory_limit: int,
    progress: Callable[[float], None] | None = None,
    cancel: CancelToken | None = None,
    collapse: CollapseMode = ...,
    cocycles: bool = False,
) -> dict[str, Any]: ...
def estimate_rips_from_points(
    points: npt.ArrayLike,
    maxdim: int,
    threshold: float,
    coeff: int,
    memory_limit: int,
    max_pairs: int,
    cancel: CancelToken | None = None,
    metric: Metric = ...,
    metric_p: float = 2.0,
) -> dict[str, Any]: ...

class CubicalConstruction:
    vertex: CubicalConstruction
    top_cell: CubicalConstruction

def cubical_estimate_bytes(shape: list[int], construction: CubicalConstruction) -> int: ...
def cubical_persistence(
    image: npt.NDArray[np.float64],
    maxdim: int,
    construction: CubicalConstruction,
    threshold: float,
    n_threads: int,
    memory_limit: int,
    progress: Callable[[float], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]: ...
def bottleneck_distance(dgm_a: npt.NDArray[np.float64], dgm_b: npt.NDArray[np.float64]) -> float: ...
def wasserstein_distance(
    dgm_a: npt.NDArray[np.float64], dgm_b: npt.NDArray[np.float64], order: float, internal_p: float
) -> float: ...
