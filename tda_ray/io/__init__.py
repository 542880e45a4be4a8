"""Readers for the input formats users already have; NumPy and pyarrow only.

Every loader returns a C-contiguous float64 array and raises :class:`ValueError` naming the source and, for
text, the 1-based line of the first problem.

Formats (``FORMATS``):

``point-cloud``
    one point per line, coordinates separated by whitespace, tabs or commas; blank lines and lines starting
    with ``#`` are skipped.
``lower-distance``
    Ripser's lower-triangular distance matrix: line *i* holds the distances from point *i* to points
    ``0..i-1``, separated by commas and/or whitespace (a trailing comma is allowed); the first, empty line
    may be omitted.  Returns the full symmetric ``(n, n)`` matrix.
``distance``
    full ``(n, n)`` distance matrix as text.  As in Ripser only the strictly lower triangle is read, so
    rounding noise in the upper half is harmless.
``npy``
    a NumPy ``.npy`` array (never unpickled).
``parquet``
    one numeric column per coordinate, or a single list column of coordinates.
``image``
    a PNG or TIFF image (Pillow, imported on first use): its pixel values, ``(height, width)``, or
    ``(pages, height, width)`` for a TIFF stack; colour becomes luminance (:mod:`~tda_ray.io.images`).

Modules: :mod:`~tda_ray.io.formats` (detection), :mod:`~tda_ray.io.text`, :mod:`~tda_ray.io.npy`,
:mod:`~tda_ray.io.parquet`, :mod:`~tda_ray.io.blocks` (block readers for uploads and Ray Data).
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

from tda_ray.io.arrays import FloatArray
from tda_ray.io.formats import (
    DISTANCE_FORMATS,
    FORMATS,
    check_format,
    detect_format,
    is_distance_format,
    resolve_format,
)
from tda_ray.io.images import load_image_bytes
from tda_ray.io.npy import load_npy_stream
from tda_ray.io.parquet import load_parquet_source
from tda_ray.io.text import decode, parse_distance, parse_lower_distance, parse_point_cloud, parse_text, read_text

__all__ = [
    "DISTANCE_FORMATS",
    "FORMATS",
    "detect_format",
    "is_distance_format",
    "load",
    "load_bytes",
    "load_distance_matrix",
    "load_lower_distance_matrix",
    "load_npy",
    "load_grid",
    "load_grid_bytes",
    "load_parquet",
    "load_point_cloud",
    "resolve_format",
]

PathLike = str | os.PathLike[str]


def load(path: PathLike, format: str = "auto") -> FloatArray:
    """Load ``path`` in ``format`` (``auto`` picks it from the extension or magic bytes)."""
    p = Path(path)
    format = resolve_format(p, format)
    if format == "npy":
        return load_npy(p)
    if format == "parquet":
        return load_parquet(p)
    if format == "image":
        return load_image_bytes(p.read_bytes(), str(p))
    return parse_text(format, read_text(p), str(p))


def load_bytes(data: bytes, format: str = "auto", name: str = "<upload>") -> FloatArray:
    """Like :func:`load` for in-memory content (an upload); ``name`` is used for ``auto`` and in messages."""
    check_format(format)
    if format == "auto":
        format = detect_format(name, data[:8])
    if format == "npy":
        return load_npy_stream(_io.BytesIO(data), name)
    if format == "parquet":
        import pyarrow as pa

        return load_parquet_source(pa.BufferReader(data), name)
    if format == "image":
        return load_image_bytes(data, name)
    return parse_text(format, decode(data, name), name)


def load_grid(path: PathLike, format: str = "auto") -> FloatArray:
    """Like :func:`load` for cubical persistence: a 2-D image or a 3-D volume (a TIFF stack, a 3-D ``.npy``)."""
    p = Path(path)
    format = resolve_format(p, format)
    if format == "npy":
        with p.open("rb") as fh:
            return load_npy_stream(fh, str(p), grid=True)
    return load(p, format)


def load_grid_bytes(data: bytes, format: str = "auto", name: str = "<upload>") -> FloatArray:
    """Like :func:`load_grid` for in-memory content (an upload)."""
    check_format(format)
    if format == "auto":
        format = detect_format(name, data[:8])
    if format == "npy":
        return load_npy_stream(_io.BytesIO(data), name, grid=True)
    return load_bytes(data, format, name)


def load_point_cloud(path: PathLike) -> FloatArray:
    """``(n, d)`` points from delimited text."""
    return parse_point_cloud(read_text(Path(path)), str(path))


def load_lower_distance_matrix(path: PathLike) -> FloatArray:
    """Full symmetric ``(n, n)`` matrix from Ripser's lower-triangular text format."""
    return parse_lower_distance(read_text(Path(path)), str(path))


def load_distance_matrix(path: PathLike) -> FloatArray:
    """Symmetric ``(n, n)`` matrix built from the strictly lower triangle of a full text matrix."""
    return parse_distance(read_text(Path(path)), str(path))


def load_npy(path: PathLike) -> FloatArray:
    """A 2-D numeric array from a ``.npy`` file; pickled/object data is refused, never unpickled."""
    with Path(path).open("rb") as fh:
        return load_npy_stream(fh, str(path))


def load_parquet(path: PathLike, columns: list[str] | None = None) -> FloatArray:
    """``(n, d)`` points from Parquet: numeric columns (all, or ``columns``) or one list-of-numbers column."""
    return load_parquet_source(str(path), str(path), columns)
