"""Time series to point clouds, as giotto-tda does it: sliding windows and time-delay (Takens) embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from tda_ray.engine.learn.base import CollectionTransformer
from tda_ray.engine.learn.params import SlidingWindowParams, TakensEmbeddingParams

__all__ = ["SlidingWindow", "TakensEmbedding"]


def _numeric(X: Any, what: str, min_ndim: int) -> npt.NDArray[Any]:
    """scikit-learn's checks of an array (numeric, finite, not sparse, not empty), at least ``min_ndim``-D."""
    arr: npt.NDArray[Any] = check_array(X, ensure_2d=min_ndim >= 2, allow_nd=True, input_name=what)
    return arr


def _starts(n: int, length: int, stride: int, aligned_to_end: bool, what: str) -> npt.NDArray[np.intp]:
    """First index of each window of ``length`` taken every ``stride``; the last window ends at ``n - 1``
    when ``aligned_to_end``."""
    count, offset = divmod(n - length, stride)
    if n < length:
        raise ValueError(what)
    return np.arange(count + 1) * stride + (offset if aligned_to_end else 0)


class SlidingWindow(CollectionTransformer):
    """Windows of ``size`` consecutive samples every ``stride`` samples, the last one ending at the last sample:
    ``(n_windows, size, ...)``.  ``resample(y)`` gives the target at each window's last sample."""

    _params = SlidingWindowParams
    _two_d_input = True

    def __init__(self, size: int = 10, stride: int = 1) -> None:
        self.size = size
        self.stride = stride

    def fit(self, X: Any, y: Any = None) -> SlidingWindow:
        _numeric(X, "X", 1)
        self._fitted = self._checked(SlidingWindowParams)
        self.is_fitted_ = True
        return self

    def _windows(self, n: int) -> npt.NDArray[np.intp]:
        size, stride = self._fitted.size, self._fitted.stride
        msg = f"X has {n} samples, fewer than the window size ({size})"
        return _starts(n, size, stride, True, msg)[:, None] + np.arange(size)

    def transform(self, X: Any, y: Any = None) -> npt.NDArray[Any]:
        check_is_fitted(self)
        arr = _numeric(X, "X", 1)
        return arr[self._windows(arr.shape[0])]

    def resample(self, y: Any, X: Any = None) -> npt.NDArray[Any]:
        check_is_fitted(self)
        yr = np.asarray(column_or_1d(y))
        out: npt.NDArray[Any] = yr[self._windows(yr.shape[0])[:, -1]]
        return out

    def transform_resample(self, X: Any, y: Any) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        return self.transform(X), self.resample(y)


class TakensEmbedding(CollectionTransformer):
    """Time-delay embedding of each series of a collection (``(n_samples, n_timestamps)``, or a list of 1-D
    series of any lengths): points ``(x[t], x[t + time_delay], ..., x[t + (dimension - 1) time_delay])`` every
    ``stride`` steps, the last ones ending at the last timestamp when ``ensure_last_value``.  A 2-D collection
    gives ``(n_samples, n_points, dimension)``; a list, a list of ``(n_points_i, dimension)`` arrays.  Series
    with more axes (``(n_samples, ..., n_timestamps)``) embed each channel; ``flatten`` puts the channels of a
    point side by side."""

    _params = TakensEmbeddingParams
    _two_d_input = True

    def __init__(
        self,
        time_delay: int = 1,
        dimension: int = 2,
        stride: int = 1,
        flatten: bool = True,
        ensure_last_value: bool = True,
    ) -> None:
        self.time_delay = time_delay
        self.dimension = dimension
        self.stride = stride
        self.flatten = flatten
        self.ensure_last_value = ensure_last_value

    def fit(self, X: Any, y: Any = None) -> TakensEmbedding:
        if isinstance(X, (list, tuple)):
            for i, x in enumerate(X):
                _numeric(x, f"X[{i}]", 1)
        else:
            _numeric(X, "X", 2)
        self._fitted = self._checked(TakensEmbeddingParams)
        self.is_fitted_ = True
        return self

    def _embed(self, arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
        p = self._fitted
        n = arr.shape[-1]
        span = p.time_delay * (p.dimension - 1) + 1
        msg = f"{n} time stamps cannot give a point of dimension {p.dimension} with time delay {p.time_delay}"
        idx = _starts(n, span, p.stride, p.ensure_last_value, msg)[:, None] + np.arange(p.dimension) * p.time_delay
        out = arr[..., idx]  # (n_samples, ..., n_points, dimension)
        if p.flatten and arr.ndim > 2:
            axes = (0, *range(1, arr.ndim)[::-1], arr.ndim)
            out = np.transpose(out, axes).reshape(arr.shape[0], -1, p.dimension * int(np.prod(arr.shape[1:-1])))
        return out

    def transform(self, X: Any, y: Any = None) -> Any:
        check_is_fitted(self)
        if isinstance(X, (list, tuple)):
            return [self._embed(_numeric(x, f"X[{i}]", 1)[None, ...])[0] for i, x in enumerate(X)]
        return self._embed(_numeric(X, "X", 2))
