"""Parquet point clouds: one numeric column per coordinate, or one column of coordinate lists.

:func:`table_to_points` is the one normaliser: whole files (:func:`load_parquet_source`), streamed uploads
and Ray Data blocks all go through it, so a cloud is accepted or refused by the same rules everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tda_ray.io.arrays import FloatArray, check_finite

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["coordinate_table", "load_parquet_source", "table_to_points"]


def _is_list(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _first_null(col: Any) -> int:
    import pyarrow.compute as pc

    return int(pc.index(pc.is_null(col), True).as_py())


def _list_column(name: str, col: Any, source: str, row_offset: int) -> FloatArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count:
        raise ValueError(f"{source}: column {name!r} has a null at row {_first_null(col) + row_offset}")
    if isinstance(col.type, pa.ExtensionType):  # e.g. Ray Data's tensor column
        try:
            arr = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{source}: column {name!r} must hold equal-length lists of numbers: {exc}") from exc
        if arr.ndim != 2:
            raise ValueError(f"{source}: column {name!r} must hold flat lists of coordinates")
        return arr
    value_type = col.type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        raise ValueError(f"{source}: list column {name!r} holds {value_type}, expected numbers")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if lengths.size == 0:
        return np.zeros((0, 0))
    if (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ValueError(
            f"{source}: column {name!r} row {row + row_offset} has {lengths[row]} coordinates, row 0 has {lengths[0]}"
        )
    if lengths[0] == 0:
        raise ValueError(f"{source}: column {name!r} holds empty coordinate lists")
    flat = col.flatten()
    if flat.null_count:
        raise ValueError(f"{source}: column {name!r} has null coordinates")
    out: FloatArray = flat.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(col), int(lengths[0]))
    return out


def table_to_points(table: pa.Table, source: str, columns: list[str] | None = None, row_offset: int = 0) -> FloatArray:
    """The points of an Arrow table as a float64 ``(rows, d)`` array; ValueError naming the problem otherwise.

    ``columns`` picks the coordinate columns; ``row_offset`` is where the table starts in its file (a block),
    so that messages name rows of the whole cloud.
    """
    import pyarrow as pa

    if columns:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ValueError(f"{source}: no column(s) {missing}; columns are {table.column_names}")
        table = table.select(columns)
    if table.num_columns == 0:
        raise ValueError(f"{source}: the table has no columns")
    first = table.column(0).type
    if table.num_columns == 1 and (_is_list(first) or isinstance(first, pa.ExtensionType)):
        arr = _list_column(table.column_names[0], table.column(0), source, row_offset)
    else:
        parts = []
        for name, col in zip(table.column_names, table.columns, strict=True):
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                raise ValueError(
                    f"{source}: column {name!r} has type {col.type}; expected numeric columns "
                    "(one per coordinate) or a single list column of coordinates"
                )
            if col.null_count:
                raise ValueError(f"{source}: column {name!r} has a null at row {_first_null(col) + row_offset}")
            parts.append(col.to_numpy().astype(np.float64, copy=False))
        arr = np.column_stack(parts) if parts and len(parts[0]) else np.zeros((0, len(parts)))
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    check_finite(arr, source, row_offset)
    return arr


def coordinate_table(arr: Any) -> pa.Table:
    """Points as an Arrow table of float64 columns ``x0..x{d-1}`` (the block layout of Ray Data reads)."""
    import pyarrow as pa

    cols = np.asarray(arr, dtype=np.float64)
    return pa.table({f"x{j}": cols[:, j] for j in range(cols.shape[1])})


def load_parquet_source(src: Any, source: str, columns: list[str] | None = None) -> FloatArray:
    """A whole Parquet file (path, buffer or file object) as float64 points."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(src, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{source}: not a readable Parquet file: {exc}") from exc
    if table.num_columns == 0 or table.num_rows == 0:
        raise ValueError(f"{source}: Parquet table is empty ({table.num_rows} rows, {table.num_columns} columns)")
    return table_to_points(table, source)
