"""NumPy ``.npy`` files: the header (checked once for every reader), ranged reads of rows, and writing a
float64 ``.npy`` block by block. Nothing is ever unpickled."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tda_ray.io.arrays import FloatArray, as_float_grid, check_finite
from tda_ray.io.formats import NPY_MAGIC, ZIP_MAGIC

__all__ = ["NpyFile", "load_npy_stream", "npy_bytes", "npy_header_bytes", "read_npy_header", "read_rows"]


def read_npy_header(fh: Any, source: str, grid: bool = False) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` of a 2-D numeric ``.npy`` (with ``grid``, also a 3-D volume) at the
    start of ``fh``, which is left at the first data byte; ValueError naming the problem (pickles, .npz,
    objects, other ranks) otherwise."""
    head = fh.read(len(NPY_MAGIC))
    if head.startswith(ZIP_MAGIC[:2]):
        raise ValueError(f"{source}: an .npz archive, not a single .npy array; save one array with numpy.save")
    if head != NPY_MAGIC:
        raise ValueError(f"{source}: not a .npy file (no NumPy header); pickled data is never loaded")
    fh.seek(0)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except ValueError as exc:
        raise ValueError(f"{source}: corrupt .npy header: {exc}") from exc
    if dtype.hasobject:
        raise ValueError(f"{source}: .npy holds Python objects (dtype object); only numeric arrays are accepted")
    if dtype.kind not in "iuf":
        raise ValueError(f"{source}: .npy dtype {dtype} is not a real numeric type")
    if grid and len(shape) not in (2, 3):
        raise ValueError(f"{source}: expected a 2-D image or a 3-D volume, got shape {tuple(shape)}")
    if not grid and len(shape) != 2:
        raise ValueError(f"{source}: expected a 2-D array (points x coordinates), got shape {tuple(shape)}")
    return tuple(int(n) for n in shape), bool(fortran), dtype


@dataclass(frozen=True)
class NpyFile:
    """Where the rows of a 2-D ``.npy`` file are: its header, read once."""

    rows: int
    cols: int
    dtype: np.dtype[Any]
    fortran: bool
    offset: int  # byte offset of the data after the header

    @classmethod
    def open(cls, fh: Any, source: str) -> NpyFile:
        """The header of a seekable binary file ``fh`` (with ``size()`` or ``seek``); checks it is complete."""
        fh.seek(0)
        (rows, cols), fortran, dtype = read_npy_header(fh, source)
        offset = fh.tell()
        size = fh.size() if hasattr(fh, "size") else fh.seek(0, io.SEEK_END)
        if offset + rows * cols * dtype.itemsize > size:
            raise ValueError(f"{source}: truncated .npy file ({size} bytes for shape {(rows, cols)})")
        return cls(rows, cols, dtype, fortran, offset)


def read_rows(fh: Any, f: NpyFile, start: int, stop: int) -> npt.NDArray[Any]:
    """Rows ``start:stop`` in the file's dtype, with ranged reads (``read_at`` or ``seek`` + ``read``)."""

    def read_at(nbytes: int, offset: int) -> bytes:
        if hasattr(fh, "read_at"):
            return bytes(fh.read_at(nbytes, offset))
        fh.seek(offset)
        return bytes(fh.read(nbytes))

    item = f.dtype.itemsize
    n = stop - start
    if not f.fortran:  # row-major: one contiguous byte range
        return np.frombuffer(read_at(n * f.cols * item, f.offset + start * f.cols * item), dtype=f.dtype).reshape(
            n, f.cols
        )
    arr = np.empty((n, f.cols), dtype=f.dtype)  # column-major: one range per coordinate
    for j in range(f.cols):
        arr[:, j] = np.frombuffer(read_at(n * item, f.offset + (j * f.rows + start) * item), dtype=f.dtype)
    return arr


def load_npy_stream(fh: Any, source: str, grid: bool = False) -> FloatArray:
    """A whole 2-D numeric ``.npy`` (with ``grid``, also 3-D) from a binary file object, as float64; refuses
    pickles and NaN/inf."""
    read_npy_header(fh, source, grid)
    fh.seek(0)
    try:
        arr = np.load(fh, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{source}: unreadable .npy data: {exc}") from exc
    if arr.size == 0:
        raise ValueError(f"{source}: empty array of shape {arr.shape}")
    if grid:
        return as_float_grid(arr, source)
    out = np.ascontiguousarray(arr, dtype=np.float64)
    check_finite(out, source)
    return out


def npy_header_bytes(n_rows: int, n_cols: int) -> bytes:
    """The header of a row-major little-endian float64 ``.npy`` of that shape (the data follows it)."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f8")), "fortran_order": False, "shape": (n_rows, n_cols)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def npy_bytes(arr: npt.NDArray[Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
