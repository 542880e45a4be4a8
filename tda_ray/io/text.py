"""Text formats: point clouds (one point per line) and Ripser's distance-matrix files.

Parsed by NumPy's C parsers; the slow line-by-line pass runs only after the fast path has failed, to say
exactly where (1-based line numbers in every message).
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tda_ray.io.arrays import FloatArray, first_non_finite
from tda_ray.io.formats import NPY_MAGIC, PARQUET_MAGIC, ZIP_MAGIC

__all__ = ["decode", "parse_distance", "parse_lower_distance", "parse_point_cloud", "parse_text", "read_text"]

_MAX_SHOWN = 40  # characters of an offending token quoted in messages


def read_text(path: Path) -> str:
    return decode(path.read_bytes(), str(path))


def decode(data: bytes, source: str) -> str:
    if data.startswith((NPY_MAGIC, PARQUET_MAGIC, ZIP_MAGIC)):
        raise ValueError(f"{source}: binary file given as text; use --format npy or parquet")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{source}: not UTF-8 text (byte {exc.start}); binary input needs --format npy or parquet"
        ) from exc
    # Normalise Windows/old-Mac line ends so line numbers and parsing agree.
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def parse_text(fmt: str, text: str, source: str) -> FloatArray:
    if fmt == "point-cloud":
        return parse_point_cloud(text, source)
    if fmt == "lower-distance":
        return parse_lower_distance(text, source)
    if fmt == "distance":
        return parse_distance(text, source)
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
    where = first_non_finite(arr)
    if where is not None:
        row, col = where
        raise ValueError(
            f"{source}: line {_nth_data_line(text, row)}, column {col + 1}: non-finite value {arr[row, col]}"
        )
    return np.ascontiguousarray(arr)


def parse_point_cloud(text: str, source: str) -> FloatArray:
    return _read_table(text, source, "point cloud")


def parse_distance(text: str, source: str) -> FloatArray:
    arr = _read_table(text, source, "distance matrix")
    n, m = arr.shape
    if n != m:
        raise ValueError(f"{source}: a full distance matrix must be square, got {n} rows of {m} values")
    return _symmetric_from_lower(arr[np.tril_indices(n, -1)], n, source, lambda k: _nth_data_line(text, _tri_row(k)))


_EMPTY_FIELD = re.compile(r"(^|,)[ \t]*,", re.MULTILINE)


def parse_lower_distance(text: str, source: str) -> FloatArray:
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
