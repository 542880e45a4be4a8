"""Readers for the input formats users already have.

Every loader returns a C-contiguous float64 array and raises :class:`ValueError`
naming the source and, for text, the 1-based line of the first problem.  Text is
parsed by NumPy's C parsers; the slow line-by-line pass runs only after the fast
path has failed, to say exactly where.

Formats (``FORMATS``):

``point-cloud``
    one point per line, coordinates separated by whitespace, tabs or commas;
    blank lines and lines starting with ``#`` are skipped.
``lower-distance``
    Ripser's lower-triangular distance matrix: line *i* holds the distances from
    point *i* to points ``0..i-1``, separated by commas and/or whitespace (a
    trailing comma is allowed); the first, empty line may be omitted.  Returns
    the full symmetric ``(n, n)`` matrix.
``distance``
    full ``(n, n)`` distance matrix as text.  As in Ripser only the strictly
    lower triangle is read, so rounding noise in the upper half is harmless.
``npy``
    a NumPy ``.npy`` array (never unpickled).
``parquet``
    one numeric column per coordinate, or a single list column of coordinates.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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
    "load_parquet",
    "load_point_cloud",
    "resolve_format",
]

FloatArray = npt.NDArray[np.float64]
PathLike = str | os.PathLike[str]

FORMATS = ("point-cloud", "lower-distance", "distance", "npy", "parquet")
DISTANCE_FORMATS = frozenset({"lower-distance", "distance"})

_EXTENSIONS = {
    ".npy": "npy",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".lower_distance_matrix": "lower-distance",
    ".distance_matrix": "distance",
}
_NPY_MAGIC = b"\x93NUMPY"
_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_SHOWN = 40  # characters of an offending token quoted in messages


def is_distance_format(fmt: str) -> bool:
    """Whether ``fmt`` yields a distance matrix rather than a point cloud."""
    return fmt in DISTANCE_FORMATS


def detect_format(name: str, head: bytes = b"") -> str:
    """Format implied by a file name's extension, else by the first bytes, else ``point-cloud``."""
    lower = name.lower()
    for ext, fmt in _EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    return "point-cloud"


def _check_format(fmt: str) -> None:
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of: auto, {', '.join(FORMATS)}")


def resolve_format(path: PathLike, format: str = "auto") -> str:
    """``format`` itself, or for ``auto`` the one :func:`detect_format` infers from the file."""
    _check_format(format)
    if format != "auto":
        return format
    p = Path(path)
    with p.open("rb") as fh:
        return detect_format(p.name, fh.read(8))


def load(path: PathLike, format: str = "auto") -> FloatArray:
    """Load ``path`` in ``format`` (``auto`` picks it from the extension or magic bytes)."""
    p = Path(path)
    format = resolve_format(p, format)
    if format == "npy":
        return load_npy(p)
    if format == "parquet":
        return load_parquet(p)
    return _parse_text(format, _read_text(p), str(p))


def load_bytes(data: bytes, format: str = "auto", name: str = "<upload>") -> FloatArray:
    """Like :func:`load` for in-memory content (an upload); ``name`` is used for ``auto`` and in messages."""
    _check_format(format)
    if format == "auto":
        format = detect_format(name, data[:8])
    if format == "npy":
        return _load_npy_stream(io.BytesIO(data), name)
    if format == "parquet":
        import pyarrow as pa

        return _load_parquet_source(pa.BufferReader(data), name, None)
    return _parse_text(format, _decode(data, name), name)


def load_point_cloud(path: PathLike) -> FloatArray:
    """``(n, d)`` points from delimited text."""
    return _parse_point_cloud(_read_text(Path(path)), str(path))


def load_lower_distance_matrix(path: PathLike) -> FloatArray:
    """Full symmetric ``(n, n)`` matrix from Ripser's lower-triangular text format."""
    return _parse_lower_distance(_read_text(Path(path)), str(path))


def load_distance_matrix(path: PathLike) -> FloatArray:
    """Symmetric ``(n, n)`` matrix built from the strictly lower triangle of a full text matrix."""
    return _parse_distance(_read_text(Path(path)), str(path))


def load_npy(path: PathLike) -> FloatArray:
    """A 2-D numeric array from a ``.npy`` file; pickled/object data is refused, never unpickled."""
    with Path(path).open("rb") as fh:
        return _load_npy_stream(fh, str(path))


def load_parquet(path: PathLike, columns: list[str] | None = None) -> FloatArray:
    """``(n, d)`` points from Parquet: numeric columns (all, or ``columns``) or one list-of-numbers column."""
    return _load_parquet_source(str(path), str(path), columns)


# --------------------------------------------------------------------------- text


def _read_text(path: Path) -> str:
    return _decode(path.read_bytes(), str(path))


def _decode(data: bytes, source: str) -> str:
    if data.startswith((_NPY_MAGIC, _PARQUET_MAGIC, _ZIP_MAGIC)):
        raise ValueError(f"{source}: binary file given as text; use --format npy or parquet")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{source}: not UTF-8 text (byte {exc.start}); binary input needs --format npy or parquet"
        ) from exc
    # Normalise Windows/old-Mac line ends so line numbers and parsing agree.
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _parse_text(fmt: str, text: str, source: str) -> FloatArray:
    if fmt == "point-cloud":
        return _parse_point_cloud(text, source)
    if fmt == "lower-distance":
        return _parse_lower_distance(text, source)
    if fmt == "distance":
        return _parse_distance(text, source)
    raise ValueError(f"{source}: format {fmt!r} is not a text format")


_TRAILING_COMMA = re.compile(r",[ \t]*$", re.MULTILINE)


def _shown(token: str) -> str:
    return repr(token if len(token) <= _MAX_SHOWN else token[:_MAX_SHOWN] + "...")


def _data_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped content) of lines that hold data in table formats."""
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield lineno, line


def _split(line: str, comma: bool) -> list[str]:
    if comma:
        return [t.strip() for t in line.rstrip(", \t").split(",")]
    return line.split()


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _diagnose_table(text: str, comma: bool, source: str, what: str) -> ValueError:
    """Find the first malformed line of a table that NumPy refused."""
    width = None
    for lineno, line in _data_lines(text):
        tokens = _split(line, comma)
        for col, tok in enumerate(tokens, start=1):
            if tok == "":
                return ValueError(f"{source}: line {lineno}, column {col}: empty field")
            if not _is_number(tok):
                return ValueError(f"{source}: line {lineno}, column {col}: {_shown(tok)} is not a number")
        if width is None:
            width = len(tokens)
        elif len(tokens) != width:
            return ValueError(
                f"{source}: line {lineno}: expected {width} values like the first {what} row, found {len(tokens)}"
            )
    return ValueError(f"{source}: could not parse as a {what}")


def _nth_data_line(text: str, row: int) -> int:
    for i, (lineno, _) in enumerate(_data_lines(text)):
        if i == row:
            return lineno
    return -1


def _read_table(text: str, source: str, what: str) -> FloatArray:
    comma = "," in text
    body = _TRAILING_COMMA.sub("", text) if comma else text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below
            arr = np.loadtxt(
                io.StringIO(body), delimiter="," if comma else None, comments="#", ndmin=2, dtype=np.float64
            )
    except ValueError as exc:
        raise _diagnose_table(text, comma, source, what) from exc
    if arr.size == 0:
        raise ValueError(f"{source}: no data (empty {what})")
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{source}: line {_nth_data_line(text, row)}, column {col + 1}: non-finite value {arr[row, col]}"
        )
    return np.ascontiguousarray(arr)


def _parse_point_cloud(text: str, source: str) -> FloatArray:
    return _read_table(text, source, "point cloud")


def _parse_distance(text: str, source: str) -> FloatArray:
    arr = _read_table(text, source, "distance matrix")
    n, m = arr.shape
    if n != m:
        raise ValueError(f"{source}: a full distance matrix must be square, got {n} rows of {m} values")
    return _symmetric_from_lower(arr[np.tril_indices(n, -1)], n, source, lambda k: _nth_data_line(text, _tri_row(k)))


_EMPTY_FIELD = re.compile(r"(^|,)[ \t]*,", re.MULTILINE)


def _parse_lower_distance(text: str, source: str) -> FloatArray:
    m = _EMPTY_FIELD.search(text)
    if m is not None:
        raise ValueError(f"{source}: line {text.count(chr(10), 0, m.end()) + 1}: empty field (two commas in a row)")
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{source}: no data (empty lower-triangular distance matrix)")
    cleaned = [ln.replace(",", " ") for ln in lines]
    counts = np.fromiter((len(ln.split()) for ln in cleaned), dtype=np.int64, count=len(cleaned))
    # Row i of the matrix holds i values; the file may start at row 0 (empty line) or row 1.
    first_row = 0 if counts[0] == 0 else 1
    expected = np.arange(first_row, first_row + len(counts))
    wrong = np.flatnonzero(counts != expected)
    if wrong.size:
        i = int(wrong[0])
        raise ValueError(
            f"{source}: line {i + 1}: expected {expected[i]} distances (row {expected[i]} of a lower-triangular "
            f"matrix), found {counts[i]}"
        )
    n = len(counts) + first_row
    if n < 2:
        raise ValueError(f"{source}: a distance matrix needs at least two points")
    total = int(counts.sum())
    try:
        with warnings.catch_warnings():
            # On a bad token NumPy either stops early with a DeprecationWarning or (newer) raises.
            warnings.simplefilter("ignore", DeprecationWarning)
            values = np.fromstring("\n".join(cleaned), dtype=np.float64, sep=" ")
    except ValueError:
        values = np.empty(0)
    if values.size != total:
        for lineno, ln in enumerate(cleaned, start=1):
            for col, tok in enumerate(ln.split(), start=1):
                if not _is_number(tok):
                    raise ValueError(f"{source}: line {lineno}, value {col}: {_shown(tok)} is not a number")
        raise ValueError(f"{source}: could not parse as a lower-triangular distance matrix")

    return _symmetric_from_lower(values, n, source, lambda k: _tri_row(k) - first_row + 1)


def _tri_row(k: int) -> int:
    """Matrix row holding entry ``k`` of the row-major strictly lower triangle (row r starts at r(r-1)/2)."""
    r = (1 + math.isqrt(1 + 8 * k)) // 2
    while r * (r - 1) // 2 > k:
        r -= 1
    return r


def _symmetric_from_lower(lower: FloatArray, n: int, source: str, line_of: Callable[[int], int]) -> FloatArray:
    bad = np.flatnonzero(~np.isfinite(lower) | (lower < 0))
    if bad.size:
        k = int(bad[0])
        kind = "negative distance" if np.isfinite(lower[k]) else "non-finite distance"
        raise ValueError(f"{source}: line {line_of(k)}: {kind} {lower[k]}")
    full = np.zeros((n, n), dtype=np.float64)
    full[np.tril_indices(n, -1)] = lower
    full += full.T
    return full


# --------------------------------------------------------------------------- binary


def read_npy_header(fh: Any, source: str) -> tuple[tuple[int, int], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` of a 2-D numeric ``.npy`` at the start of ``fh``, which is left at the
    first data byte; ValueError naming the problem (pickles, .npz, objects, other ranks) otherwise."""
    head = fh.read(len(_NPY_MAGIC))
    if head.startswith(_ZIP_MAGIC[:2]):
        raise ValueError(f"{source}: an .npz archive, not a single .npy array; save one array with numpy.save")
    if head != _NPY_MAGIC:
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
    if len(shape) != 2:
        raise ValueError(f"{source}: expected a 2-D array (points x coordinates), got shape {tuple(shape)}")
    return (int(shape[0]), int(shape[1])), bool(fortran), dtype


def _load_npy_stream(fh: Any, source: str) -> FloatArray:
    read_npy_header(fh, source)
    fh.seek(0)
    try:
        arr = np.load(fh, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{source}: unreadable .npy data: {exc}") from exc
    if arr.size == 0:
        raise ValueError(f"{source}: empty array of shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{source}: non-finite value {out[row, col]} at row {row}, column {col}")
    return out


def _load_parquet_source(src: Any, source: str, columns: list[str] | None) -> FloatArray:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(src, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{source}: not a readable Parquet file: {exc}") from exc
    if table.num_columns == 0 or table.num_rows == 0:
        raise ValueError(f"{source}: Parquet table is empty ({table.num_rows} rows, {table.num_columns} columns)")

    def nulls(name: str, col: Any) -> None:
        if col.null_count:
            row = int(pc.index(pc.is_null(col), True).as_py())
            raise ValueError(f"{source}: column {name!r} has a null at row {row}")

    first = table.column(0).type
    if table.num_columns == 1 and (
        pa.types.is_list(first) or pa.types.is_large_list(first) or pa.types.is_fixed_size_list(first)
    ):
        name = table.column_names[0]
        col = table.column(0).combine_chunks()
        nulls(name, col)
        if not (pa.types.is_integer(col.type.value_type) or pa.types.is_floating(col.type.value_type)):
            raise ValueError(f"{source}: list column {name!r} holds {col.type.value_type}, expected numbers")
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if (lengths != lengths[0]).any():
            row = int(np.flatnonzero(lengths != lengths[0])[0])
            raise ValueError(
                f"{source}: column {name!r} row {row} has {lengths[row]} coordinates, row 0 has {lengths[0]}"
            )
        if lengths[0] == 0:
            raise ValueError(f"{source}: column {name!r} holds empty coordinate lists")
        flat = col.flatten()
        if flat.null_count:
            raise ValueError(f"{source}: column {name!r} has null coordinates")
        arr = flat.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(col), int(lengths[0]))
    else:
        parts = []
        for name, col in zip(table.column_names, table.columns, strict=True):
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                raise ValueError(
                    f"{source}: column {name!r} has type {col.type}; expected numeric columns "
                    "(one per coordinate) or a single list column of coordinates"
                )
            nulls(name, col)
            parts.append(col.to_numpy().astype(np.float64, copy=False))
        arr = np.column_stack(parts)
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, c = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{source}: non-finite value {arr[row, c]} at row {row}, coordinate {c}")
    return arr
