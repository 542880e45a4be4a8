"""Landmark subsampling of large point clouds, distributed with Ray, then Vietoris–Rips on the landmarks.

The Rips complex of a million points is out of reach, so :func:`landmark_rips` computes it on ``N``
landmarks ``L`` chosen from the cloud ``X`` by greedy max-min (farthest-point) sampling.  Every point
lies within the covering radius ``eps = max_x min_l |x - l|`` of a landmark; as ``L`` is a subset of
``X``, the Gromov–Hausdorff distance between them is at most ``eps`` and stability of Rips persistence
bounds the bottleneck distance between the two diagrams by ``2 * eps``.  ``eps`` is reported with every
result and is exact, not an estimate.

How the sampling runs (:func:`farthest_point_sample`):

1. Ray Data reads the cloud in blocks from storage — an ``.npy`` file is cut into row ranges read with
   ranged reads (:class:`NpyRowsDatasource`), Parquet goes through ``ray.data.read_parquet`` — and every
   block is normalised to float64 coordinate columns ``x0..x{d-1}`` (NaN/inf refused).
2. The blocks are spread over ``W`` shard actors, each placed, where possible, on the node that holds its
   blocks.  A shard keeps its blocks coordinate-major plus, per point, the squared distance to the nearest
   landmark so far.  No process ever holds the whole cloud; the driver holds landmarks and candidates.
3. Rounds: the driver sends the landmarks chosen in the previous round; each shard folds them into its
   running minima and answers its ``k`` farthest points (candidates) and ``tau``, the largest distance
   among its other points.  The driver then takes candidates greedily — the farthest candidate (its
   distance updated with the landmarks taken so far this round) becomes the next landmark while that
   distance is still ``>= max(tau)``: no point outside the candidate lists can then be farther, so the
   outcome equals sequential greedy max-min while passing over the data far fewer times than ``N``.
4. After the last landmark is folded in, ``eps`` is the square root of the largest running minimum.

The first landmark is the lexicographically smallest point, so the landmark set does not depend on how
the cloud is split into blocks (up to exact ties in distance).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from tda_ray.engine import EngineCancelled, PersistenceResult, vietoris_rips

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import ray.data

__all__ = [
    "AUTO_LANDMARKS",
    "LandmarkResult",
    "LandmarkSample",
    "NpyRowsDatasource",
    "SourceInfo",
    "connect_ray",
    "farthest_point_sample",
    "iter_point_blocks",
    "landmark_rips",
    "probe_source",
    "read_points",
    "resolve_landmarks",
]

FloatArray = npt.NDArray[np.float64]
LandmarkCount = int | Literal["auto"]

# Landmarks used for "auto", by maxdim (the last entry for anything higher).  Chosen so that Rips on the
# landmarks takes seconds to a minute on one core for typical data: the complex grows like N^(maxdim+2).
AUTO_LANDMARKS = (5000, 1000, 400, 150)
# Points per block read from storage (and per shard array): large enough for vectorised updates, small
# enough that a block is a few MiB even for tens of coordinates.
DEFAULT_ROWS_PER_BLOCK = 131_072
# Candidates each shard reports per round.  More candidates accept more landmarks per pass but cost more
# driver work; 64 keeps a 1,000-landmark selection to a few dozen passes on ordinary data.
DEFAULT_CANDIDATES = 64
# CPUs a Ray Data read task reserves.  Reads are I/O-bound and brief; a small share keeps them schedulable
# next to busy shard actors or inside a job task that already holds CPUs.
READ_TASK_CPUS = 0.25


def resolve_landmarks(n_landmarks: Any, maxdim: int) -> int:
    """The landmark count for ``n_landmarks`` (a positive integer, or ``"auto"`` chosen by ``maxdim``)."""
    if isinstance(n_landmarks, str):
        if n_landmarks.strip().lower() == "auto":
            return AUTO_LANDMARKS[min(max(int(maxdim), 0), len(AUTO_LANDMARKS) - 1)]
        raise ValueError(f"landmarks must be a positive integer or 'auto', got {n_landmarks!r}")
    if isinstance(n_landmarks, bool) or not isinstance(n_landmarks, (int, np.integer)) or n_landmarks < 1:
        raise ValueError(f"landmarks must be a positive integer or 'auto', got {n_landmarks!r}")
    return int(n_landmarks)


# --------------------------------------------------------------------------- Ray session


@contextlib.contextmanager
def connect_ray(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the Ray this process is already connected to, else connect (``address``) or start one.

    ``address=None`` follows Ray's rules (``RAY_ADDRESS``, else a new local instance); a Ray started here is
    shut down on exit, one that was already connected is left alone.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"log_to_driver": False}
    if address in (None, "", "local"):
        # A local Ray binds and advertises loopback only.
        kwargs.update(
            address="local" if address == "local" else None, include_dashboard=False, _node_ip_address="127.0.0.1"
        )
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    ray.init(**kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def _ray_error_cause(exc: BaseException) -> BaseException:
    """The user-level exception inside a Ray task error (Ray wraps it with a remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


# --------------------------------------------------------------------------- reading blocks


def _filesystem(path: str, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    import pyarrow.fs as pafs

    if filesystem is not None:
        return filesystem, path
    if "://" in path:
        fs, inner = pafs.FileSystem.from_uri(path)
        return fs, inner
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


@dataclass(frozen=True)
class _NpyFile:
    path: str
    rows: int
    cols: int
    dtype: np.dtype[Any]
    fortran: bool
    offset: int  # byte offset of the data after the header


def _read_npy_header(fs: pafs.FileSystem, path: str) -> _NpyFile:
    from tda_ray.loaders import read_npy_header

    with fs.open_input_file(path) as fh:
        (rows, cols), fortran, dtype = read_npy_header(fh, path)
        offset = fh.tell()
        size = fh.size()
    if offset + rows * cols * dtype.itemsize > size:
        raise ValueError(f"{path}: truncated .npy file ({size} bytes for shape {(rows, cols)})")
    return _NpyFile(path, rows, cols, dtype, fortran, offset)


def _coordinate_table(arr: npt.NDArray[Any]) -> pa.Table:
    """One float64 column per coordinate (the common block layout)."""
    import pyarrow as pa

    cols = np.asarray(arr, dtype=np.float64)
    return pa.table({f"x{j}": cols[:, j] for j in range(cols.shape[1])})


class _NpyRowsDatasourceBase:
    """Implementation of :class:`NpyRowsDatasource`; mixed with Ray's ``Datasource`` on first use."""

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
        self._files: list[tuple[pafs.FileSystem, _NpyFile]] = []
        cols: int | None = None
        for p in paths:
            fs, inner = _filesystem(str(p), filesystem)
            info = _read_npy_header(fs, inner)
            if cols is not None and info.cols != cols:
                raise ValueError(f"{p}: {info.cols} coordinates per point, earlier files have {cols}")
            cols = info.cols
            if info.rows:
                self._files.append((fs, info))
        if not self._files:
            raise ValueError("point cloud is empty: no rows in the .npy input")

    def estimate_inmemory_data_size(self) -> int:
        return sum(f.rows * f.cols * 8 for _, f in self._files)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[Any]:
        from ray.data.block import BlockMetadata
        from ray.data.datasource import ReadTask

        tasks = []
        step = self._rows_per_block
        for fs, f in self._files:
            for start in range(0, f.rows, step):
                stop = min(start + step, f.rows)
                meta = BlockMetadata(
                    num_rows=stop - start,
                    size_bytes=(stop - start) * f.cols * 8,
                    exec_stats=None,
                    input_files=(f.path,),
                )
                tasks.append(ReadTask(_npy_range_reader(fs, f, start, stop), meta))
        return tasks


def _npy_rows(fs: pafs.FileSystem, f: _NpyFile, start: int, stop: int) -> npt.NDArray[Any]:
    """Rows ``start:stop`` of a 2-D ``.npy`` file, read with ranged reads, in the file's dtype."""
    item = f.dtype.itemsize
    n = stop - start
    with fs.open_input_file(f.path) as fh:
        if not f.fortran:  # row-major: one contiguous byte range
            buf = fh.read_at(n * f.cols * item, f.offset + start * f.cols * item)
            return np.frombuffer(buf, dtype=f.dtype).reshape(n, f.cols)
        arr = np.empty((n, f.cols), dtype=f.dtype)  # column-major: one range per coordinate
        for j in range(f.cols):
            buf = fh.read_at(n * item, f.offset + (j * f.rows + start) * item)
            arr[:, j] = np.frombuffer(buf, dtype=f.dtype)
        return arr


def _npy_range_reader(fs: pafs.FileSystem, f: _NpyFile, start: int, stop: int) -> Callable[[], list[pa.Table]]:
    def read() -> list[pa.Table]:
        return [_coordinate_table(_npy_rows(fs, f, start, stop))]

    return read


_DATASOURCE_CLASS: Any = None


def NpyRowsDatasource(
    paths: Sequence[str], filesystem: pafs.FileSystem | None = None, rows_per_block: int = DEFAULT_ROWS_PER_BLOCK
) -> Any:
    """Ray Data datasource over 2-D ``.npy`` files, read as row ranges (ranged reads; no file loaded whole).

    ``paths`` may be local paths or pyarrow filesystem URIs (``s3://...``); every node that runs a read
    task must reach them.  Blocks hold one float64 column ``x{j}`` per coordinate.
    """
    global _DATASOURCE_CLASS
    if _DATASOURCE_CLASS is None:
        from ray.data.datasource import Datasource

        _DATASOURCE_CLASS = type("NpyRowsDatasource", (_NpyRowsDatasourceBase, Datasource), {})
    return _DATASOURCE_CLASS(paths, filesystem, rows_per_block)


_NON_FINITE = "point cloud contains non-finite values (NaN or inf)"


def _normalise_block(table: pa.Table, columns: list[str] | None = None) -> pa.Table:
    """A block of points as float64 columns x0..x{d-1}; ValueError naming the problem otherwise."""
    import pyarrow as pa

    if columns:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ValueError(f"point cloud has no column(s) {missing}; columns are {table.column_names}")
        table = table.select(columns)
    if table.num_columns == 0:
        raise ValueError("point cloud has no columns")
    first_type = table.column(0).type
    if table.num_columns == 1 and (
        pa.types.is_list(first_type)
        or pa.types.is_large_list(first_type)
        or pa.types.is_fixed_size_list(first_type)
        or isinstance(first_type, pa.ExtensionType)
    ):
        # A single column of coordinate lists (or a tensor column).
        name = table.column_names[0]
        col = table.column(0)
        if col.null_count:
            raise ValueError(f"point cloud column {name!r} has null rows")
        values = col.to_numpy(zero_copy_only=False)
        try:
            arr = np.stack([np.asarray(v, dtype=np.float64) for v in values]) if len(values) else np.zeros((0, 0))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"point cloud column {name!r} must hold equal-length lists of numbers: {exc}") from exc
        if arr.ndim != 2:
            raise ValueError(f"point cloud column {name!r} must hold flat lists of coordinates")
    else:
        parts = []
        for name, col in zip(table.column_names, table.columns, strict=True):
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                raise ValueError(
                    f"point cloud column {name!r} has type {col.type}; expected numeric columns (one per "
                    "coordinate) or a single list column of coordinates"
                )
            if col.null_count:
                raise ValueError(f"point cloud column {name!r} has nulls")
            parts.append(col.to_numpy().astype(np.float64, copy=False))
        arr = np.column_stack(parts) if parts else np.zeros((0, 0))
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(_NON_FINITE)
    return _coordinate_table(arr)


def _list_files(fs: pafs.FileSystem, path: str) -> list[str]:
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
    coordinate (pick them with ``columns``) or one list column of coordinates.  Other files (text/CSV)
    are parsed by :mod:`tda_ray.loaders` in this process: use ``.npy`` or Parquet for very large clouds.
    """
    return _read_blocks(source, columns, filesystem, rows_per_block).map_batches(
        _normalise_block,
        batch_format="pyarrow",
        batch_size=None,
        zero_copy_batch=True,
        fn_kwargs={"columns": columns},
        num_cpus=READ_TASK_CPUS,
    )


def _read_blocks(
    source: Any, columns: list[str] | None, filesystem: pafs.FileSystem | None, rows_per_block: int
) -> ray.data.Dataset:
    """``source`` as read, block layout not yet normalised (see :func:`read_points`)."""
    import ray.data

    if isinstance(source, ray.data.Dataset):
        ds = source
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        fs, inner = _filesystem(text, filesystem)
        files = _list_files(fs, inner)
        kinds = {os.path.splitext(f)[1].lower() for f in files}
        if files and kinds <= {".npy"}:
            ds = ray.data.read_datasource(NpyRowsDatasource(files, fs, rows_per_block), num_cpus=READ_TASK_CPUS)
        elif files and kinds <= {".parquet", ".pq"}:
            ds = ray.data.read_parquet(files, filesystem=fs, file_extensions=["parquet", "pq"], num_cpus=READ_TASK_CPUS)
            if columns:  # projection pushdown; names are checked first for a clear error
                import pyarrow.parquet as pq

                with fs.open_input_file(files[0]) as fh:
                    names = pq.read_schema(fh).names
                missing = [c for c in columns if c not in names]
                if missing:
                    raise ValueError(f"{text}: no column(s) {missing}; columns are {names}")
                ds = ds.select_columns(columns)
        elif len(files) == 1:
            from tda_ray import loaders

            fmt = loaders.resolve_format(text if "://" not in text else inner)
            if loaders.is_distance_format(fmt):
                raise ValueError(f"{text}: a distance matrix; landmark sampling needs point coordinates")
            return _read_blocks(loaders.load(inner, fmt), None, None, rows_per_block)
        elif not files:
            raise ValueError(f"{text}: no files found")
        else:
            raise ValueError(f"{text}: a folder must hold only .npy files or only Parquet files, found {sorted(kinds)}")
    else:
        arr = np.asarray(source)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ValueError("point cloud must be a numeric (n, d) array")
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"point cloud must be a non-empty (n, d) array, got shape {arr.shape}")
        tables = [_coordinate_table(arr[i : i + rows_per_block]) for i in range(0, arr.shape[0], rows_per_block)]
        ds = ray.data.from_arrow(tables)
    return ds


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`probe_source` learns from headers and metadata alone."""

    n_points: int
    dim: int
    format: str  # "npy" or "parquet"
    files: int


def probe_source(source: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None) -> SourceInfo:
    """Points and coordinates of a ``.npy``/Parquet file or folder, read from headers and metadata only.

    Meant for ingress code that stores an upload as it streams in and must describe it without loading it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = os.fspath(source)
    fs, inner = _filesystem(text, filesystem)
    files = _list_files(fs, inner)
    kinds = {os.path.splitext(f)[1].lower() for f in files}
    if files and kinds <= {".npy"}:
        heads = [_read_npy_header(fs, f) for f in files]
        dims = {h.cols for h in heads}
        if len(dims) != 1:
            raise ValueError(f"{text}: files disagree on the number of coordinates: {sorted(dims)}")
        return SourceInfo(sum(h.rows for h in heads), dims.pop(), "npy", len(files))
    if files and kinds <= {".parquet", ".pq"}:
        rows, dim = 0, None
        for f in files:
            with fs.open_input_file(f) as fh:
                try:
                    pf = pq.ParquetFile(fh)
                except (pa.ArrowException, OSError) as exc:
                    raise ValueError(f"{f}: not a readable Parquet file: {exc}") from exc
                rows += pf.metadata.num_rows
                schema = pf.schema_arrow
                if len(schema) == 1 and pa.types.is_fixed_size_list(schema.field(0).type):
                    d = schema.field(0).type.list_size
                elif len(schema) == 1 and (
                    pa.types.is_list(schema.field(0).type) or pa.types.is_large_list(schema.field(0).type)
                ):
                    first = next(pf.iter_batches(batch_size=1), None)  # list column: length of the first row
                    d = len(first.column(0)[0]) if first is not None and first.num_rows else 0
                else:
                    d = len(schema)
            if dim is not None and d != dim and pf.metadata.num_rows:
                raise ValueError(f"{f}: {d} coordinates per point, earlier files have {dim}")
            dim = d if pf.metadata.num_rows or dim is None else dim
        return SourceInfo(rows, int(dim or 0), "parquet", len(files))
    raise ValueError(f"{text}: expected .npy or Parquet file(s), found {sorted(kinds) or 'nothing'}")


def iter_point_blocks(
    source: str | os.PathLike[str],
    filesystem: pafs.FileSystem | None = None,
    rows_per_block: int = DEFAULT_ROWS_PER_BLOCK,
) -> Iterator[FloatArray]:
    """The points of a ``.npy``/Parquet file or folder as float64 ``(rows, d)`` blocks, read in this process.

    Memory stays at one block whatever the size of the source; every block is checked like a Ray Data
    block (numeric, no nulls, no NaN/inf).  Used to re-encode a streamed upload without loading it.
    """
    import pyarrow.parquet as pq

    text = os.fspath(source)
    fs, inner = _filesystem(text, filesystem)
    for f in _list_files(fs, inner):
        if f.lower().endswith(".npy"):
            head = _read_npy_header(fs, f)
            for start in range(0, head.rows, rows_per_block):
                block = np.asarray(_npy_rows(fs, head, start, min(start + rows_per_block, head.rows)), np.float64)
                if not np.isfinite(block).all():
                    raise ValueError(_NON_FINITE)
                yield block
        else:
            import pyarrow as pa

            with fs.open_input_file(f) as fh:
                try:
                    batches = pq.ParquetFile(fh).iter_batches(batch_size=rows_per_block)
                    for batch in batches:
                        yield _block_array(_normalise_block(pa.Table.from_batches([batch])))
                except (pa.ArrowException, OSError) as exc:
                    raise ValueError(f"{f}: not a readable Parquet file: {exc}") from exc


def _block_array(table: pa.Table) -> FloatArray:
    if table.num_rows == 0:
        return np.zeros((0, table.num_columns))
    return np.column_stack([c.to_numpy() for c in table.columns])


# --------------------------------------------------------------------------- shards and rounds


def _sq_dist(coords: FloatArray, point: FloatArray, out: FloatArray, tmp: FloatArray) -> FloatArray:
    """Squared distances from the columns of ``coords`` (d, m) to ``point``, summed coordinate by coordinate.

    Both the shards and the driver compute distances through this function, so equal inputs give
    bit-identical distances wherever they are computed (the driver's acceptance test relies on it).
    """
    np.subtract(coords[0], point[0], out=out)
    np.multiply(out, out, out=out)
    for j in range(1, coords.shape[0]):
        np.subtract(coords[j], point[j], out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        np.add(out, tmp, out=out)
    return out


def _lexmin_column(coords: FloatArray) -> int:
    """Index of the lexicographically smallest column of ``coords`` (d, m)."""
    idx = np.flatnonzero(coords[0] == coords[0].min())
    for j in range(1, coords.shape[0]):
        if idx.size == 1:
            break
        sub = coords[j, idx]
        idx = idx[sub == sub.min()]
    return int(idx[0])


class _Shard:
    """A share of the cloud (coordinate-major blocks) with each point's squared distance to the nearest landmark."""

    def __init__(self) -> None:
        self.blocks: list[FloatArray] = []
        self.mind: list[FloatArray] = []
        self._buf: tuple[FloatArray, FloatArray] | None = None

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def load(self, refs: list[Any], columns: list[str] | None) -> dict[str, Any]:
        """Fetch this shard's blocks one at a time, check them and keep them coordinate-major."""
        import ray

        dims = set()
        for ref in refs:
            table = ray.get(ref)
            if table.num_rows == 0:
                continue
            # Checked here rather than in a Ray Data UDF: errors raised in an actor keep their type and
            # message for the caller, those in a UDF arrive only as text inside a UserCodeException.
            table = _normalise_block(table, columns)
            coords = np.stack([table.column(j).to_numpy() for j in range(table.num_columns)]).astype(np.float64)
            del table
            dims.add(coords.shape[0])
            self.blocks.append(np.ascontiguousarray(coords))
            self.mind.append(np.full(coords.shape[1], np.inf))
        if len(dims) > 1:
            raise ValueError(f"point cloud blocks disagree on the number of coordinates: {sorted(dims)}")
        first = None
        if self.blocks:
            mins = [b[:, _lexmin_column(b)] for b in self.blocks]
            first = np.stack(mins, axis=1)[:, _lexmin_column(np.stack(mins, axis=1))].copy()
        largest = max((b.shape[1] for b in self.blocks), default=0)
        self._buf = (np.empty(largest), np.empty(largest))
        return {"n": sum(b.shape[1] for b in self.blocks), "dim": dims.pop() if dims else 0, "first": first}

    def peak_rss(self) -> int:
        """This process's peak resident memory in bytes (Linux reports KiB)."""
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    def fold(self, landmarks: FloatArray, k: int) -> tuple[FloatArray, FloatArray, float, float]:
        """Fold new landmarks (B, d) into the minima; return (candidates (c, d), their d², tau², max d²)."""
        assert self._buf is not None
        out, tmp = self._buf
        top_vals, top_idx = [], []
        for b, (coords, md) in enumerate(zip(self.blocks, self.mind, strict=True)):
            m = coords.shape[1]
            o, t = out[:m], tmp[:m]
            for point in landmarks:
                np.minimum(md, _sq_dist(coords, point, o, t), out=md)
            # This block's k+1 largest: the shard's k+1 largest are among the blocks' k+1 largest.
            idx = np.argpartition(md, m - (k + 1))[m - (k + 1) :] if m > k + 1 else np.arange(m)
            top_vals.append(md[idx])
            top_idx.append(np.stack([np.full(idx.size, b), idx]))
        if not top_vals:
            d = landmarks.shape[1]
            return np.zeros((0, d)), np.zeros(0), -1.0, -1.0
        vals = np.concatenate(top_vals)
        where = np.concatenate(top_idx, axis=1)
        order = np.argsort(-vals, kind="stable")
        chosen = order[:k]
        tau = float(vals[order[k]]) if vals.size > k else -1.0
        cands = np.stack([self.blocks[int(where[0, i])][:, int(where[1, i])] for i in chosen])
        return cands, vals[chosen].copy(), tau, float(vals[order[0]])


@dataclass(frozen=True)
class LandmarkSample:
    """Greedy max-min landmarks of a cloud and their covering radius."""

    landmarks: FloatArray  # (N, d), in selection order
    eps: float  # max over all points of the distance to the nearest landmark (exact)
    n_points: int  # points in the whole cloud
    dim: int
    rounds: int  # passes over the data after loading
    n_workers: int
    read_s: float
    select_s: float
    shard_peak_rss: tuple[int, ...] = ()  # bytes, per shard process

    @property
    def n_landmarks(self) -> int:
        return int(self.landmarks.shape[0])


def _accept(pool: FloatArray, d2: FloatArray, tau: float, quota: int) -> list[FloatArray]:
    """Exact greedy picks from the candidate pool (rows of ``pool``, current squared distances ``d2``).

    The first pick is the global farthest point (every shard's farthest points are in the pool).  Later
    picks stay exact while the best updated candidate distance is at least ``tau``, the largest distance
    of any point left out of the pool, which can only have shrunk since.
    """
    picked: list[FloatArray] = []
    if pool.shape[0] == 0:
        return picked
    d2 = d2.copy()
    cols = np.ascontiguousarray(pool.T)
    out, tmp = np.empty(pool.shape[0]), np.empty(pool.shape[0])
    while len(picked) < quota:
        i = int(np.argmax(d2))
        if d2[i] <= 0 or (picked and d2[i] < tau):
            break
        point = pool[i].copy()
        picked.append(point)
        np.minimum(d2, _sq_dist(cols, point, out, tmp), out=d2)
        d2[i] = -1.0
    return picked


def _assign_blocks(block_nodes: list[str | None], worker_nodes: list[str], sizes: list[int]) -> list[list[int]]:
    """Blocks per worker: balanced by rows, preferring a worker on the node that already holds the block."""
    n_workers = len(worker_nodes)
    load = [0] * n_workers
    target = sum(sizes) / max(n_workers, 1)
    out: list[list[int]] = [[] for _ in range(n_workers)]
    for b in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        local = [w for w in range(n_workers) if worker_nodes[w] == block_nodes[b]]
        best_local = min(local, key=lambda w: load[w]) if local else None
        if best_local is not None and load[best_local] + sizes[b] <= 1.25 * target:
            w = best_local
        else:
            w = min(range(n_workers), key=lambda w: load[w])
        out[w].append(b)
        load[w] += sizes[b]
    return out


def _plan_workers(n_workers: int | None, worker_cpus: float) -> tuple[int, float]:
    """(shards, CPUs per shard) for the connected cluster.

    By default one shard per ``worker_cpus`` of the cluster.  An explicit count larger than the cluster's
    CPUs allow gets a smaller CPU share per shard, so every shard can be scheduled (otherwise the rounds
    would wait for ever).  A task blocked in ``ray.get`` lends its CPUs, so a job task that calls this
    does not starve its own shards; on an autoscaling cluster with no CPUs yet, one shard starts the
    scale-up.
    """
    import ray

    if worker_cpus <= 0:
        raise ValueError(f"worker_cpus must be positive, got {worker_cpus}")
    total = float(ray.cluster_resources().get("CPU", 0.0))
    if n_workers is None:
        n = max(1, min(64, int(total // worker_cpus)))
    elif isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    else:
        n = n_workers
    cpus = worker_cpus if total <= 0 or n * worker_cpus <= total else total / n
    return n, cpus


def farthest_point_sample(
    source: Any,
    n_landmarks: int,
    *,
    columns: list[str] | None = None,
    n_workers: int | None = None,
    worker_cpus: float = 1.0,
    candidates: int = DEFAULT_CANDIDATES,
    rows_per_block: int = DEFAULT_ROWS_PER_BLOCK,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
) -> LandmarkSample:
    """Greedy max-min landmarks of ``source`` (see :func:`read_points`), computed on the connected Ray cluster.

    Returns at most ``n_landmarks`` landmarks: fewer only when every point coincides with one (eps = 0).
    ``progress(fraction)`` reports landmarks chosen / requested; ``cancel`` (a ``CancelToken``) stops the
    selection between rounds with ``EngineCancelled``.
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    n_landmarks = resolve_landmarks(n_landmarks, 1)
    if candidates < 1:
        raise ValueError(f"candidates must be positive, got {candidates}")
    workers_n, shard_cpus = _plan_workers(n_workers, worker_cpus)
    t0 = time.perf_counter()
    ds = _read_blocks(source, columns, None, rows_per_block)
    try:
        refs = ds.to_arrow_refs()  # the blocks stay in the object store, spread over the cluster
    except Exception as exc:
        raise _ray_error_cause(exc) from None
    workers_n = max(1, min(workers_n, len(refs)))
    shard_cls: Any = ray.remote(_Shard)
    locations = ray.experimental.get_object_locations(refs)
    block_nodes: list[str | None] = []
    sizes: list[int] = []
    for r in refs:
        loc = locations.get(r) or {}
        nodes = loc.get("node_ids") or []
        block_nodes.append(nodes[0] if nodes else None)
        sizes.append(int(loc.get("object_size") or 1))
    # The shards are reserved together as one placement group, spread over the nodes: all of them or none.
    # Shards started one by one could deadlock two selections running at once (each holding some shards
    # and waiting for CPUs the other holds); a pending group also asks an autoscaler for the whole set.
    pg = placement_group([{"CPU": shard_cpus}] * workers_n, strategy="SPREAD")
    workers: list[Any] = []
    try:
        ready = pg.ready()
        while True:  # ray.get (not ray.wait): a job task blocked in it lends its own CPUs to the group
            try:
                ray.get(ready, timeout=0.5)
                break
            except ray.exceptions.GetTimeoutError:
                if cancel is not None and cancel.cancelled:
                    raise EngineCancelled("landmark selection cancelled") from None
        for i in range(workers_n):
            strategy = PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=i)
            workers.append(shard_cls.options(num_cpus=shard_cpus, scheduling_strategy=strategy).remote())
        worker_nodes = ray.get([w.node_id.remote() for w in workers])
        plan = _assign_blocks(block_nodes, worker_nodes, sizes)
        try:
            infos = ray.get(
                [w.load.remote([refs[b] for b in blocks], columns) for w, blocks in zip(workers, plan, strict=True)]
            )
        except Exception as exc:
            raise _ray_error_cause(exc) from None
        del refs, ds  # the shards own the data now
        n_points = sum(int(i["n"]) for i in infos)
        dims = {int(i["dim"]) for i in infos if i["n"]}
        if n_points == 0:
            raise ValueError("point cloud is empty: at least one point is needed")
        if len(dims) != 1:
            raise ValueError(f"point cloud blocks disagree on the number of coordinates: {sorted(dims)}")
        dim = dims.pop()
        firsts = np.stack([i["first"] for i in infos if i["n"]], axis=1)
        first = firsts[:, _lexmin_column(firsts)].copy()
        read_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        chosen = [first]
        new = [first]
        rounds = 0
        while True:
            if cancel is not None and cancel.cancelled:
                raise EngineCancelled("landmark selection cancelled")
            batch = np.stack(new)
            answers = ray.get([w.fold.remote(batch, candidates) for w in workers])
            rounds += 1
            max_d2 = max(a[3] for a in answers)
            if progress is not None:
                progress(min(len(chosen) / n_landmarks, 1.0))
            if len(chosen) >= n_landmarks or max_d2 <= 0:
                break
            pool = np.concatenate([a[0] for a in answers if a[0].shape[0]])
            d2 = np.concatenate([a[1] for a in answers if a[0].shape[0]])
            tau = max(a[2] for a in answers)
            new = _accept(pool, d2, tau, n_landmarks - len(chosen))
            chosen.extend(new)
        select_s = time.perf_counter() - t1
        peaks = tuple(int(p) for p in ray.get([w.peak_rss.remote() for w in workers]))
    finally:
        for w in workers:
            ray.kill(w)
        remove_placement_group(pg)
    return LandmarkSample(
        landmarks=np.stack(chosen),
        eps=math.sqrt(max(max_d2, 0.0)),
        n_points=n_points,
        dim=dim,
        rounds=rounds,
        n_workers=len(workers),
        read_s=read_s,
        select_s=select_s,
        shard_peak_rss=peaks,
    )


# --------------------------------------------------------------------------- landmarks + Rips


@dataclass
class LandmarkResult:
    """Rips persistence of the landmarks, with what bounds its distance to the full cloud's diagrams."""

    result: PersistenceResult  # diagrams of the landmarks' Rips filtration
    sample: LandmarkSample
    requested: int
    rips_s: float

    @property
    def diagrams(self) -> list[FloatArray]:
        return self.result.diagrams

    @property
    def n_landmarks(self) -> int:
        return self.sample.n_landmarks

    @property
    def eps(self) -> float:
        return self.sample.eps

    @property
    def bottleneck_bound(self) -> float:
        """Upper bound on the bottleneck distance to the full cloud's diagrams (2 eps)."""
        return 2.0 * self.sample.eps

    def landmark_info(self) -> dict[str, Any]:
        s = self.sample
        return {
            "requested": self.requested,
            "count": s.n_landmarks,
            "eps": s.eps,
            "bottleneck_bound": self.bottleneck_bound,
            "n_points": s.n_points,
            "rounds": s.rounds,
            "workers": s.n_workers,
            "read_s": s.read_s,
            "select_s": s.select_s,
            "rips_s": self.rips_s,
            "shard_peak_rss_bytes": max(s.shard_peak_rss, default=0),
        }

    def to_json_dict(self) -> dict[str, Any]:
        """The engine's JSON form for the whole cloud (``n_points``) plus a ``landmarks`` object."""
        out = self.result.to_json_dict()
        out["n_points"] = self.sample.n_points
        out["landmarks"] = self.landmark_info()
        return out


def landmark_rips(
    source: Any,
    n_landmarks: LandmarkCount = "auto",
    *,
    maxdim: int = 1,
    threshold: float | None = None,
    coeff: int = 2,
    n_threads: int = 1,
    memory_limit: int | None = None,
    columns: list[str] | None = None,
    n_workers: int | None = None,
    worker_cpus: float = 1.0,
    candidates: int = DEFAULT_CANDIDATES,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
    address: str | None = None,
    rips_cpus: float | None = None,
) -> LandmarkResult:
    """Vietoris–Rips persistence of ``source`` through ``n_landmarks`` greedy max-min landmarks.

    ``source`` is anything :func:`read_points` reads (``.npy``/Parquet path, folder or URI; Dataset; array).
    The selection runs on Ray (the connected cluster, else ``address``, else a local instance started and
    stopped here); Rips on the landmarks runs in this process.  ``progress`` gets 0..0.5 for the selection
    and 0.5..1 for Rips; ``cancel`` stops either.  The result reports ``eps`` and the ``2 * eps`` bound.

    ``rips_cpus``: run the Rips step as a Ray task reserving that many CPUs instead of in this process —
    for callers that are themselves zero-CPU Ray tasks coordinating the selection (the service's jobs).
    """
    requested = resolve_landmarks(n_landmarks, maxdim)
    # Engine parameters are checked before any data is read.
    from tda_ray.engine import _validate_params

    _validate_params(maxdim, threshold, coeff, n_threads)

    def half(offset: float) -> Callable[[float], None] | None:
        if progress is None:
            return None
        return lambda f: progress(offset + 0.5 * min(max(float(f), 0.0), 1.0))

    rips: dict[str, Any] = {"maxdim": maxdim, "threshold": threshold, "coeff": coeff, "n_threads": n_threads}
    with connect_ray(address):
        sample = farthest_point_sample(
            source,
            requested,
            columns=columns,
            n_workers=n_workers,
            worker_cpus=worker_cpus,
            candidates=candidates,
            progress=half(0.0),
            cancel=cancel,
        )
        t0 = time.perf_counter()
        if rips_cpus is not None:
            res = _rips_in_task(sample.landmarks, rips, memory_limit, rips_cpus, cancel)
    if rips_cpus is None:
        t0 = time.perf_counter()
        res = vietoris_rips(sample.landmarks, progress=half(0.5), cancel=cancel, memory_limit=memory_limit, **rips)
    out = LandmarkResult(result=res, sample=sample, requested=requested, rips_s=time.perf_counter() - t0)
    res.extras["landmarks"] = out.landmark_info()
    return out


def _rips_remote(landmarks: FloatArray, rips: dict[str, Any], memory_limit: int | None) -> PersistenceResult:
    return vietoris_rips(landmarks, memory_limit=memory_limit, **rips)


def _rips_in_task(
    landmarks: FloatArray, rips: dict[str, Any], memory_limit: int | None, cpus: float, cancel: Any | None
) -> PersistenceResult:
    """Rips of the landmarks as a Ray task holding ``cpus``; ``cancel`` cancels the task."""
    import ray

    ref = ray.remote(_rips_remote).options(num_cpus=cpus, max_retries=1).remote(landmarks, rips, memory_limit)
    while True:
        try:
            out: PersistenceResult = ray.get(ref, timeout=0.25)
            return out
        except ray.exceptions.GetTimeoutError:
            if cancel is not None and cancel.cancelled:
                ray.cancel(ref, force=True)
                raise EngineCancelled("cancelled during Rips on the landmarks") from None
        except ray.exceptions.RayTaskError as exc:
            raise _ray_error_cause(exc) from None
