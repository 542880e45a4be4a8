"""Checks every reader and the engine apply to numeric arrays: shape, dtype, finiteness."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

__all__ = ["FloatArray", "as_float_grid", "as_float_matrix", "check_finite", "first_non_finite"]


def first_non_finite(arr: npt.NDArray[Any]) -> tuple[int, int] | None:
    """(row, column) of the first NaN or inf of a 2-D array, or None."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    row, col = (int(i) for i in np.argwhere(bad)[0])
    return row, col


def check_finite(arr: npt.NDArray[Any], source: str, row_offset: int = 0) -> None:
    """ValueError naming the first NaN/inf (its row counted from ``row_offset``) of a 2-D array."""
    where = first_non_finite(arr)
    if where is not None:
        row, col = where
        raise ValueError(
            f"{source} contains NaN or inf: non-finite value {arr[row, col]} at row {row + row_offset}, column {col}"
        )


def as_float_matrix(X: Any, what: str) -> FloatArray:
    """A C-contiguous, finite float64 2-D array from ``X``; ValueError naming what is wrong otherwise."""
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # NumPy refuses ragged nested sequences
        raise ValueError(f"{what} is ragged: rows have different lengths") from exc
    if arr.dtype == object:
        raise ValueError(f"{what} is ragged or holds non-numeric values")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-dimensional, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    check_finite(out, what)
    return out


def as_float_grid(X: Any, what: str) -> FloatArray:
    """A C-contiguous, finite float64 image (2-D) or volume (3-D) from ``X``; ValueError naming what is wrong."""
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # NumPy refuses ragged nested sequences
        raise ValueError(f"{what} is ragged: rows have different lengths") from exc
    if arr.dtype == object:
        raise ValueError(f"{what} is ragged or holds non-numeric values")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"{what} must be a 2-D image or a 3-D volume, got {arr.ndim} dimensions (shape {arr.shape})")
    if arr.size == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape}): every axis needs at least one pixel")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} contains NaN or inf: non-finite value {out[where]} at index {where}")
    return out
