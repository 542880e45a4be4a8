"""Point clouds as Ray Datasets: ``.npy`` files cut into row ranges (ranged reads, no file loaded whole),
Parquet through ``ray.data.read_parquet``, every block normalised by the one Parquet normaliser of
:mod:`tda_ray.io.parquet` into float64 columns ``x0..x{d-1}``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from tda_ray import io as tio
from tda_ray.io.blocks import DEFAULT_ROWS_PER_BLOCK, list_files, npy_file, resolve_filesystem
from tda_ray.io.npy import NpyFile, read_rows
from tda_ray.io.parquet import coordinate_table, table_to_points

__all__ = ["READ_TASK_CPUS", "NpyRowsDatasource", "normalise_block", "read_blocks", "read_points"]

# CPUs a Ray Data read task reserves.  Reads are I/O-bound and brief; a small share keeps them schedulable
# next to busy shard actors or inside a job task that already holds CPUs.
READ_TASK_CPUS = 0.25


class NpyRowsDatasource(Datasource):
    """Ray Data datasource over 2-D ``.npy`` files, read as row ranges (ranged reads; no file loaded whole).

    ``paths`` may be local paths or pyarrow filesystem URIs (``s3://...``); every node that runs a read
    task must reach them.  Blocks hold one float64 column ``x{j}`` per coordinate.
    """

    def __init__(
        self,
        paths: Sequence[str],
        filesystem: pafs.FileSystem | None = None,
        rows_per_block: int = DEFAULT_ROWS_PER_BLOCK,
    ) -> None:
        super().__init__()
        if rows_per_block < 1:
            raise ValueError(f"rows_per_block must be positive, got {rows_per_block}")
        self._rows_per_block = int(rows_per_block)
        self._files: list[tuple[pafs.FileSystem, str, NpyFile]] = []
        cols: int | None = None
        for p in paths:
            fs, inner = resolve_filesystem(str(p), filesystem)
            info = npy_file(fs, inner)
            if cols is not None and info.cols != cols:
                raise ValueError(f"{p}: {info.cols} coordinates per point, earlier files have {cols}")
            cols = info.cols
            if info.rows:
                self._files.append((fs, inner, info))
        if not self._files:
            raise ValueError("point cloud is empty: no rows in the .npy input")

    def estimate_inmemory_data_size(self) -> int:
        return sum(f.rows * f.cols * 8 for _, _, f in self._files)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        tasks = []
        step = self._rows_per_block
        for fs, path, f in self._files:
            for start in range(0, f.rows, step):
                stop = min(start + step, f.rows)
                meta = BlockMetadata(
                    num_rows=stop - start, size_bytes=(stop - start) * f.cols * 8, exec_stats=None, input_files=(path,)
                )
                tasks.append(ReadTask(_range_reader(fs, path, f, start, stop), meta))
        return tasks


def _range_reader(fs: pafs.FileSystem, path: str, f: NpyFile, start: int, stop: int) -> Callable[[], list[pa.Table]]:
    def read() -> list[pa.Table]:
        with fs.open_input_file(path) as fh:
            return [coordinate_table(read_rows(fh, f, start, stop))]

    return read


def normalise_block(table: pa.Table, columns: list[str] | None = None) -> pa.Table:
    """A block of points as float64 columns x0..x{d-1}; ValueError naming the problem otherwise."""
    return coordinate_table(table_to_points(table, "point cloud", columns))


def read_points(
    source: Any,
    *,
    columns: list[str] | None = None,
    filesystem: pafs.FileSystem | None = None,
    rows_per_block: int = DEFAULT_ROWS_PER_BLOCK,
) -> ray.data.Dataset:
    """A Ray Dataset of the points of ``source``, in blocks of float64 columns ``x0..x{d-1}``.

    ``source``: a ``.npy`` file, a Parquet file, a folder of either (or a URI such as ``s3://bucket/cloud/``),
    a ``ray.data.Dataset``, or an in-memory ``(n, d)`` array.  Parquet holds one numeric column per
    coordinate (pick them with ``columns``) or one list column of coordinates.  Other files (text/CSV) are
    parsed by :mod:`tda_ray.io` in this process: use ``.npy`` or Parquet for very large clouds.
    """
    return read_blocks(source, columns, filesystem, rows_per_block).map_batches(
        normalise_block,
        batch_format="pyarrow",
        batch_size=None,
        zero_copy_batch=True,
        fn_kwargs={"columns": columns},
        num_cpus=READ_TASK_CPUS,
    )


def _read_files(
    text: str, fs: pafs.FileSystem, files: list[str], columns: list[str] | None, rows_per_block: int
) -> ray.data.Dataset:
    kinds = {os.path.splitext(f)[1].lower() for f in files}
    if files and kinds <= {".npy"}:
        npy: ray.data.Dataset = ray.data.read_datasource(
            NpyRowsDatasource(files, fs, rows_per_block), num_cpus=READ_TASK_CPUS
        )
        return npy
    if files and kinds <= {".parquet", ".pq"}:
        ds = ray.data.read_parquet(files, filesystem=fs, file_extensions=["parquet", "pq"], num_cpus=READ_TASK_CPUS)
        if columns:  # projection pushdown; names are checked first for a clear error
            import pyarrow.parquet as pq

            with fs.open_input_file(files[0]) as fh:
                names = pq.read_schema(fh).names
            missing = [c for c in columns if c not in names]
            if missing:
                raise ValueError(f"{text}: no column(s) {missing}; columns are {names}")
            ds = ds.select_columns(columns)
        return ds
    if len(files) == 1:
        fmt = tio.resolve_format(files[0])
        if tio.is_distance_format(fmt):
            raise ValueError(f"{text}: a distance matrix; landmark sampling needs point coordinates")
        return read_blocks(tio.load(files[0], fmt), None, None, rows_per_block)
    if not files:
        raise ValueError(f"{text}: no files found")
    raise ValueError(f"{text}: a folder must hold only .npy files or only Parquet files, found {sorted(kinds)}")


def read_blocks(
    source: Any, columns: list[str] | None, filesystem: pafs.FileSystem | None, rows_per_block: int
) -> ray.data.Dataset:
    """``source`` as read, block layout not yet normalised (see :func:`read_points`)."""
    if isinstance(source, ray.data.Dataset):
        given: ray.data.Dataset = source
        return given
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        fs, inner = resolve_filesystem(text, filesystem)
        return _read_files(text, fs, list_files(fs, inner), columns, rows_per_block)
    arr = np.asarray(source)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError("point cloud must be a numeric (n, d) array")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"point cloud must be a non-empty (n, d) array, got shape {arr.shape}")
    tables = [coordinate_table(arr[i : i + rows_per_block]) for i in range(0, arr.shape[0], rows_per_block)]
    return ray.data.from_arrow(tables)
