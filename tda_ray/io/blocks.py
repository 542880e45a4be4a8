"""Block readers: point clouds in ``.npy`` / Parquet files read a block of rows at a time.

Used alike by streamed uploads (describe and re-encode a cloud without loading it) and by the Ray Data
datasource of :mod:`tda_ray.distributed` (one read task per block). Sources are local paths or pyarrow
filesystem URIs (``s3://bucket/prefix``); :func:`resolve_filesystem` is the one place that tells them apart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tda_ray.io.arrays import FloatArray, check_finite
from tda_ray.io.npy import NpyFile, read_rows
from tda_ray.io.parquet import table_to_points

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = [
    "BLOCK_BYTES",
    "DEFAULT_ROWS_PER_BLOCK",
    "SourceInfo",
    "iter_file_blocks",
    "iter_point_blocks",
    "list_files",
    "npy_file",
    "probe_file",
    "probe_source",
    "parquet_decoded_bytes",
    "resolve_filesystem",
    "rows_per_block",
]

# Points per block: large enough for vectorised work, small enough that a block is a few MiB even for
# tens of coordinates.
DEFAULT_ROWS_PER_BLOCK = 131_072
# A block's float64 values in bytes at most, whatever the coordinates per point: the readers of uploads
# hold a block (and its stored copy) at a time, so memory follows this, not the cloud's width.
BLOCK_BYTES = 8 * 1024 * 1024


def rows_per_block(dim: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Rows of ``dim`` float64 coordinates that fit in ``block_bytes`` (at least one, at most the default)."""
    return max(1, min(DEFAULT_ROWS_PER_BLOCK, block_bytes // (8 * max(dim, 1))))


def resolve_filesystem(path: str, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a ``scheme://`` URI."""
    import pyarrow.fs as pafs

    if filesystem is not None:
        return filesystem, path
    if "://" in path:
        fs, inner = pafs.FileSystem.from_uri(path)
        return fs, inner
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def list_files(fs: pafs.FileSystem, path: str) -> list[str]:
    """``path`` itself if it is a file, else the files below it (sorted; hidden and ``_`` files skipped)."""
    import pyarrow.fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(2, "No such file or directory", path)
    if info.type == pafs.FileType.File:
        return [path]
    entries = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted(
        e.path for e in entries if e.type == pafs.FileType.File and not os.path.basename(e.path).startswith((".", "_"))
    )


def npy_file(fs: pafs.FileSystem, path: str) -> NpyFile:
    with fs.open_input_file(path) as fh:
        return NpyFile.open(fh, path)


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`probe_source` learns from headers and metadata alone."""

    n_points: int
    dim: int
    format: str  # "npy" or "parquet"
    files: int


def _parquet_shape(fh: Any, source: str) -> tuple[int, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(fh)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{source}: not a readable Parquet file: {exc}") from exc
    rows = pf.metadata.num_rows
    schema = pf.schema_arrow
    first = schema.field(0).type if len(schema) else None
    if len(schema) == 1 and first is not None and pa.types.is_fixed_size_list(first):
        return rows, int(first.list_size)
    if len(schema) == 1 and first is not None and (pa.types.is_list(first) or pa.types.is_large_list(first)):
        batch = next(pf.iter_batches(batch_size=1), None)  # list column: the length of the first row
        return rows, len(batch.column(0)[0]) if batch is not None and batch.num_rows else 0
    return rows, len(schema)


def parquet_decoded_bytes(fh: Any, source: str) -> int:
    """Bytes the column chunks of a Parquet file decode to, from its metadata (before any data is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(fh).metadata
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{source}: not a readable Parquet file: {exc}") from exc
    return sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )


def probe_file(fh: Any, fmt: str, source: str) -> SourceInfo:
    """Points and coordinates of one seekable ``.npy``/Parquet file object, from its header or metadata."""
    if fmt == "npy":
        head = NpyFile.open(fh, source)
        return SourceInfo(head.rows, head.cols, "npy", 1)
    rows, dim = _parquet_shape(fh, source)
    return SourceInfo(rows, dim, "parquet", 1)


def _kind(files: list[str]) -> str | None:
    kinds = {os.path.splitext(f)[1].lower() for f in files}
    if files and kinds <= {".npy"}:
        return "npy"
    if files and kinds <= {".parquet", ".pq"}:
        return "parquet"
    return None


def probe_source(source: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None) -> SourceInfo:
    """Points and coordinates of a ``.npy``/Parquet file or folder, read from headers and metadata only."""
    text = os.fspath(source)
    fs, inner = resolve_filesystem(text, filesystem)
    files = list_files(fs, inner)
    kind = _kind(files)
    if kind is None:
        kinds = sorted({os.path.splitext(f)[1].lower() for f in files})
        raise ValueError(f"{text}: expected .npy or Parquet file(s), found {kinds or 'nothing'}")
    rows, dim = 0, None
    for f in files:
        with fs.open_input_file(f) as fh:
            info = probe_file(fh, kind, f)
        if dim is not None and info.dim != dim and info.n_points:
            raise ValueError(f"{f}: {info.dim} coordinates per point, earlier files have {dim}")
        rows += info.n_points
        dim = info.dim if info.n_points or dim is None else dim
    return SourceInfo(rows, int(dim or 0), kind, len(files))


def iter_file_blocks(fh: Any, fmt: str, source: str, rows: int | None = None) -> Iterator[FloatArray]:
    """The points of one seekable ``.npy``/Parquet file object as float64 ``(rows, d)`` blocks, checked
    (numeric, no nulls, no NaN/inf) with rows numbered from the start of the file.  ``rows`` per block
    (default: :func:`rows_per_block`, so a block is at most :data:`BLOCK_BYTES` of float64)."""
    if fmt == "npy":
        head = NpyFile.open(fh, source)
        step = rows or rows_per_block(head.cols)
        for start in range(0, head.rows, step):
            block = np.asarray(read_rows(fh, head, start, min(start + step, head.rows)), np.float64)
            check_finite(block, source, start)
            yield block
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    offset = 0
    try:
        step = rows or rows_per_block(_parquet_shape(fh, source)[1])
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=step):
            yield table_to_points(pa.Table.from_batches([batch]), source, row_offset=offset)
            offset += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{source}: not a readable Parquet file: {exc}") from exc


def iter_point_blocks(
    source: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None, rows: int | None = None
) -> Iterator[FloatArray]:
    """The points of a ``.npy``/Parquet file or folder as float64 blocks, read in this process.

    Memory stays at one block whatever the size of the source.
    """
    text = os.fspath(source)
    fs, inner = resolve_filesystem(text, filesystem)
    files = list_files(fs, inner)
    kind = _kind(files)
    if kind is None:
        raise ValueError(f"{text}: expected .npy or Parquet file(s)")
    for f in files:
        with fs.open_input_file(f) as fh:
            yield from iter_file_blocks(fh, kind, f, rows)
