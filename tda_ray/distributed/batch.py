"""Persistent homology of whole collections of point clouds with Ray Data (``tda-ray batch``).

:func:`run_batch` reads a collection — a folder of cloud files (``.npy``, ``.csv``/``.txt`` point clouds,
Ripser distance matrices) or a Parquet dataset with one cloud per row — with Ray Data, runs the engine on
every cloud in ``map_batches`` tasks spread over the cluster, and streams the results into one Parquet
file with a row per cloud (:data:`OUTPUT_SCHEMA`):

``source``     file path, or the Parquet row's ``source`` column (else ``<input>#<row>``)
``n_points``   points in the cloud (null when it could not be read)
``diagrams``   per homology dimension, a list of ``[birth, death]`` pairs; ``death`` is ``inf`` for
               classes that never die
``betti``      per dimension, classes alive at the end of the filtration (death ``inf``)
``node_id``    the Ray node that computed the row
``error``      null, or why this cloud failed (``ValueError: ...``); a bad cloud fails its row only
``elapsed_s``  engine seconds for the cloud

Rows come out in input order.  :func:`tda_ray.distributed.ray_jobs.submit_batch` sends the same work to a
cluster as a Ray Job.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import ray.data

from tda_ray import io as tio
from tda_ray.distributed.session import connect_ray
from tda_ray.engine import diagrams as dg
from tda_ray.engine.params import PositiveInt, RipsParams, RunOptions
from tda_ray.engine.rips import run_rips
from tda_ray.io.blocks import list_files, resolve_filesystem

__all__ = [
    "CLOUD_EXTENSIONS",
    "OUTPUT_SCHEMA",
    "BatchInput",
    "BatchSummary",
    "BatchOptions",
    "discover_input",
    "iter_results",
    "run_batch",
]

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("n_points", pa.int64()),
        pa.field("diagrams", pa.list_(pa.list_(pa.list_(pa.float64(), 2)))),
        pa.field("betti", pa.list_(pa.int64())),
        pa.field("node_id", pa.string()),
        pa.field("error", pa.string()),
        pa.field("elapsed_s", pa.float64()),
    ]
)
# File extensions read from a folder of clouds (formats as in tda_ray.loaders).
CLOUD_EXTENSIONS = (".npy", ".csv", ".txt", ".lower_distance_matrix", ".distance_matrix")
_PARQUET_EXTENSIONS = (".parquet", ".pq")
# Names looked for in a Parquet dataset: the cloud column and the optional identifier column.
POINTS_COLUMNS = ("points", "cloud", "point_cloud")
SOURCE_COLUMNS = ("source", "id", "name")
# Clouds handed to one engine call batch (small clouds: amortises per-call overhead).
DEFAULT_BATCH_SIZE = 32
# Clouds per read block (Ray task) once there are enough blocks for every CPU.
CLOUDS_PER_BLOCK = 200
# Without a terminal (job logs, CI), progress is a plain line this often.
LOG_PROGRESS_EVERY_S = 5.0


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class BatchInput:
    """What :func:`discover_input` found: cloud files, or Parquet files with one cloud per row."""

    kind: str  # "files" or "parquet"
    paths: list[str]  # paths inside ``filesystem``
    filesystem: pafs.FileSystem
    n_clouds: int
    label: str  # the INPUT as given (row sources of unnamed Parquet rows are "<label>#<row>")
    points_column: str | None = None
    source_column: str | None = None


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _parquet_columns(schema: pa.Schema, where: str) -> tuple[str, str | None]:
    """(cloud column, source column or None) of a Parquet dataset with one cloud per row."""
    names = schema.names
    points = next((c for c in POINTS_COLUMNS if c in names), None)
    if points is None:
        nested = [f.name for f in schema if _is_list(f.type) and _is_list(f.type.value_type)]
        if len(nested) != 1:
            raise ValueError(
                f"{where}: expected one cloud per row in a column named {' or '.join(POINTS_COLUMNS)} "
                f"(a list of coordinate lists); columns are {names}"
            )
        points = nested[0]
    t = schema.field(points).type
    if not (_is_list(t) and _is_list(t.value_type)):
        raise ValueError(f"{where}: column {points!r} has type {t}; expected a list of coordinate lists per row")
    source = next((c for c in SOURCE_COLUMNS if c in names), None)
    return points, source


def discover_input(input: str) -> BatchInput:
    """Resolve INPUT: a folder of cloud files, a Parquet file, or a folder of Parquet files (a dataset)."""
    fs, inner = resolve_filesystem(input)
    try:
        files = list_files(fs, inner)
    except FileNotFoundError:
        raise FileNotFoundError(2, "No such file or directory", input) from None
    parquet = [f for f in files if f.lower().endswith(_PARQUET_EXTENSIONS)]
    clouds = [f for f in files if f.lower().endswith(CLOUD_EXTENSIONS)]
    if parquet and clouds:
        raise ValueError(f"{input}: holds both Parquet files and cloud files; give one kind per batch")
    if parquet:
        total = 0
        columns: tuple[str, str | None] | None = None
        for f in parquet:
            with fs.open_input_file(f) as fh:
                try:
                    pf = pq.ParquetFile(fh)
                except (pa.ArrowException, OSError) as exc:
                    raise ValueError(f"{f}: not a readable Parquet file: {exc}") from exc
                total += pf.metadata.num_rows
                cols = _parquet_columns(pf.schema_arrow, f)
            if columns is not None and cols != columns:
                raise ValueError(f"{f}: columns {cols} differ from the other files' {columns}")
            columns = cols
        assert columns is not None
        return BatchInput("parquet", parquet, fs, total, input, columns[0], columns[1])
    if not clouds:
        raise ValueError(
            f"{input}: no point clouds found (expected files ending in {', '.join(CLOUD_EXTENSIONS)}, "
            "or Parquet with one cloud per row)"
        )
    return BatchInput("files", clouds, fs, len(clouds), input)


# --------------------------------------------------------------------------- the per-cloud work (Ray tasks)


def _node_id() -> str | None:
    # get_runtime_context() would start a local Ray in a plain process (direct calls in tests).
    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None


def compute_row(
    source: str, load: Callable[[], tuple[Any, bool]], params: RipsParams, options: RunOptions, node: str | None
) -> dict[str, Any]:
    """One output row; any failure to read or compute this cloud becomes its ``error``."""
    row: dict[str, Any] = {
        "source": source,
        "n_points": None,
        "diagrams": None,
        "betti": None,
        "node_id": node,
        "error": None,
        "elapsed_s": None,
    }
    try:
        X, distance = load()
        arr = np.asarray(X)
        if arr.ndim == 2:
            row["n_points"] = int(arr.shape[0])
        t0 = time.perf_counter()
        res = run_rips(arr, params, options, distance_matrix=distance)
        row["elapsed_s"] = time.perf_counter() - t0
        row["diagrams"] = [d.tolist() for d in res.diagrams]
        row["betti"] = dg.essential_counts(res.diagrams)
    except Exception as exc:  # a bad cloud fails its row, never the batch
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _file_batch(
    batch: pa.Table, params: RipsParams, options: RunOptions, filesystem: pafs.FileSystem, scheme: str
) -> pa.Table:
    """map_batches over cloud files (column ``path``): each file is read and parsed here, so a file that
    cannot be read or parsed fails its own row only."""
    node = _node_id()
    rows = []
    for path in batch.column("path").to_pylist():

        def load(path: str = path) -> tuple[Any, bool]:
            with filesystem.open_input_stream(path) as f:
                data = f.readall()
            fmt = tio.detect_format(path, data[:8])
            return tio.load_bytes(data, fmt, name=os.path.basename(path)), tio.is_distance_format(fmt)

        rows.append(compute_row(scheme + path, load, params, options, node))
    return pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)


def _cloud_from_cell(cell: Any) -> np.ndarray[Any, Any]:
    if cell is None:
        raise ValueError("the cloud is null")
    rows = list(cell)
    if not rows:
        raise ValueError("point cloud is empty: at least one point is needed")
    if any(r is None for r in rows):
        raise ValueError("point cloud has a null point")
    try:
        return np.stack([np.asarray(r, dtype=np.float64) for r in rows])
    except ValueError as exc:
        raise ValueError(f"point cloud is ragged: {exc}") from exc


def _parquet_batch(
    batch: pa.Table, params: RipsParams, options: RunOptions, points_column: str, source_column: str | None
) -> pa.Table:
    """map_batches over Parquet rows, one cloud each; rows without a source get it from the driver."""
    node = _node_id()
    clouds = batch.column(points_column).to_numpy(zero_copy_only=False)
    sources = batch.column(source_column).to_pylist() if source_column else [None] * len(clouds)
    rows = []
    for src, cell in zip(sources, clouds, strict=True):

        def load(cell: Any = cell) -> tuple[Any, bool]:
            return _cloud_from_cell(cell), False

        rows.append(compute_row("" if src is None else str(src), load, params, options, node))
    return pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)


def _block_count(n_clouds: int) -> int:
    """Read blocks (one task each): a few per CPU so every node gets work, else about CLOUDS_PER_BLOCK each.

    Every block costs a Ray task; with one per handful of tiny clouds, scheduling dominates the run.
    """
    cpus = int(ray.cluster_resources().get("CPU", 0)) if ray.is_initialized() else 0
    return max(1, min(n_clouds, max(4 * max(cpus, 2), math.ceil(n_clouds / CLOUDS_PER_BLOCK))))


def build_dataset(
    inp: BatchInput, params: RipsParams, options: RunOptions, batch_size: int = DEFAULT_BATCH_SIZE
) -> ray.data.Dataset:
    """The lazy Ray Dataset of output rows for ``inp`` (in input order)."""
    common: dict[str, Any] = {"batch_format": "pyarrow", "batch_size": batch_size, "num_cpus": 1}
    blocks = _block_count(inp.n_clouds)
    if inp.kind == "files":
        # Paths, not contents, go into the dataset: the tasks read their files themselves, which costs far
        # less per file than Ray's file datasource for many small clouds.
        ds: ray.data.Dataset = ray.data.from_items([{"path": p} for p in inp.paths], override_num_blocks=blocks)
        scheme = inp.label.split("://", 1)[0] + "://" if "://" in inp.label else ""
        file_fn: Any = _file_batch  # Ray's stubs do not model fn_kwargs
        ds = ds.map_batches(
            file_fn,
            fn_kwargs={"params": params, "options": options, "filesystem": inp.filesystem, "scheme": scheme},
            **common,
        )
    else:
        assert inp.points_column is not None
        cols = [inp.points_column] + ([inp.source_column] if inp.source_column else [])
        ds = ray.data.read_parquet(
            inp.paths, filesystem=inp.filesystem, file_extensions=["parquet", "pq"], override_num_blocks=blocks
        ).select_columns(cols)
        parquet_fn: Any = _parquet_batch
        ds = ds.map_batches(
            parquet_fn,
            fn_kwargs={
                "params": params,
                "options": options,
                "points_column": inp.points_column,
                "source_column": inp.source_column,
            },
            **common,
        )
    ds.context.execution_options.preserve_order = True  # output rows in input order: reproducible files
    return ds


# --------------------------------------------------------------------------- the driver


@dataclass
class BatchSummary:
    output: str
    n_clouds: int
    n_failed: int
    nodes: dict[str, int] = field(default_factory=dict)  # rows computed per Ray node id
    elapsed_s: float = 0.0

    def line(self) -> str:
        return (
            f"{self.n_clouds} clouds, {self.n_failed} failed, on {len(self.nodes)} node(s) "
            f"in {self.elapsed_s:.1f} s -> {self.output}"
        )


class _Progress:
    """A tqdm bar on a terminal, else a plain line every few seconds (readable in job logs)."""

    def __init__(self, total: int, enabled: bool, stream: TextIO) -> None:
        self.total, self.stream, self.done, self.failed = total, stream, 0, 0
        self.tty = enabled and stream.isatty()
        self.enabled = enabled
        self.bar: Any = None
        self.last = time.monotonic()
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="cloud", file=stream, dynamic_ncols=True)

    def update(self, n: int, failed: int) -> None:
        self.done += n
        self.failed += failed
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(failed=self.failed, refresh=False)
        elif self.enabled and (time.monotonic() - self.last >= LOG_PROGRESS_EVERY_S or self.done == self.total):
            self.last = time.monotonic()
            print(f"batch: {self.done}/{self.total} clouds ({self.failed} failed)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class BatchOptions(RunOptions):
    """Run options of a batch: those of every engine run, plus the clouds per engine batch."""

    batch_size: PositiveInt = DEFAULT_BATCH_SIZE


def parse_batch_call(kwargs: dict[str, Any]) -> tuple[RipsParams, BatchOptions]:
    """Rips parameters and batch options from keyword arguments (each checked once, by its model)."""
    run = {k: kwargs.pop(k) for k in list(kwargs) if k in BatchOptions.model_fields}
    params = RipsParams.parse(kwargs)
    if params.landmarks is not None:
        raise ValueError("landmarks is not a parameter of batches (every cloud is computed exactly)")
    return params, BatchOptions.parse(run)


def iter_results(input: str, **kwargs: Any) -> Iterator[pa.Table]:
    """Output tables (rows in input order) of the collection ``input`` on the connected Ray cluster.

    Keywords: the Rips parameters (``maxdim``, ``threshold``, ``coeff``) and :class:`BatchOptions`.
    """
    params, options = parse_batch_call(kwargs)
    yield from _tables(discover_input(input), params, options)


def _tables(inp: BatchInput, params: RipsParams, options: BatchOptions) -> Iterator[pa.Table]:
    engine_options = RunOptions.parse(options.model_dump(include=set(RunOptions.model_fields)))
    row = 0
    batches: Iterable[Any] = build_dataset(inp, params, engine_options, options.batch_size).iter_batches(
        batch_format="pyarrow", batch_size=None
    )
    for table in batches:
        if inp.kind == "parquet":  # unnamed rows are named by their position in the input
            given = table.column("source").to_pylist()
            names = [s or f"{inp.label}#{row + i}" for i, s in enumerate(given)]
            table = table.set_column(0, OUTPUT_SCHEMA.field("source"), pa.array(names, pa.string()))
        row += table.num_rows
        yield table.cast(OUTPUT_SCHEMA)


def run_batch(
    input: str,
    output: str,
    *,
    address: str | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
    **kwargs: Any,
) -> BatchSummary:
    """Compute every cloud of ``input`` and write ``output`` (one Parquet file, replaced atomically).

    Keywords: the Rips parameters (``maxdim``, ``threshold``, ``coeff``) and :class:`BatchOptions`
    (``memory_limit`` per cloud, ``batch_size``).  Runs on the connected Ray cluster, else the one at
    ``address`` (``auto``, ``ray://...``, ``HOST:PORT``), else a local instance.  Failed clouds are rows with
    an ``error``; the summary counts them.
    """
    params, options = parse_batch_call(kwargs)
    inp = discover_input(input)  # bad INPUT fails before any cluster work
    fs, out_path = resolve_filesystem(output)
    parent = out_path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    tmp = f"{out_path}.tmp-{uuid.uuid4().hex}"
    stream = stream or sys.stderr
    t0 = time.perf_counter()
    nodes: Counter[str] = Counter()
    failed = total = 0
    with connect_ray(address):
        _quiet_ray_data()
        bar = _Progress(inp.n_clouds, progress, stream)
        try:
            with fs.open_output_stream(tmp) as sink, pq.ParquetWriter(sink, OUTPUT_SCHEMA) as writer:
                for table in _tables(inp, params, options):
                    writer.write_table(table)
                    bad = table.num_rows - table.column("error").null_count
                    nodes.update(n for n in table.column("node_id").to_pylist() if n)
                    failed += bad
                    total += table.num_rows
                    bar.update(table.num_rows, bad)
        except BaseException:
            with contextlib.suppress(OSError):
                fs.delete_file(tmp)
            raise
        finally:
            bar.close()
    fs.move(tmp, out_path)
    return BatchSummary(output, total, failed, dict(nodes), time.perf_counter() - t0)


def _quiet_ray_data() -> None:
    """Our own progress replaces Ray Data's bars and per-operator log lines."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
