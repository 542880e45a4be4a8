"""``tda-ray rips FILE``: persistent homology of a Vietoris–Rips filtration, here or (landmarks) on Ray."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tda_ray import io as tio
from tda_ray.cli.common import (
    EXIT_OK,
    PROG,
    add_params_arguments,
    add_progress_argument,
    fail,
    fmt,
    format_intervals,
    fraction_bar,
    params_from_args,
    parse_size,
    positive_int,
    require_extra,
    run_cancellable,
)
from tda_ray.engine.params import RipsParams, RunOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="input file")
    p.add_argument(
        "--format",
        choices=("auto", *tio.FORMATS),
        default="auto",
        help="input format (default: auto, from the extension: .npy, .parquet, .lower_distance_matrix, "
        ".distance_matrix, else point-cloud)",
    )
    p.add_argument(
        "--distance-matrix",
        action="store_true",
        help="treat an npy/parquet input as a square distance matrix instead of a point cloud",
    )
    p.add_argument(
        "--graph",
        choices=("edge", "shortest_path"),
        default=None,
        help="the input is a weighted graph's edge list (rows: u v weight; vertices 0..n-1): Rips of its flag "
        "filtration (edge) or of its shortest-path metric (shortest_path)",
    )
    add_params_arguments(p, RipsParams, exclude=("graph_filtration",))  # --graph says it here
    p.add_argument("--threads", type=positive_int, default=1, help="worker threads (default: 1)")
    p.add_argument("--memory-limit", type=parse_size, default=None, help="refuse work estimated above this (e.g. 4G)")
    p.add_argument("--json", action="store_true", help="print JSON (death null for essential classes)")
    add_progress_argument(p)
    p.add_argument(
        "--address", default=None, help="with --landmarks: Ray cluster to join (default: a local Ray started here)"
    )


def _compute_with_progress(X: Any, params: RipsParams, options: RunOptions, distance: bool, show: bool) -> Any:
    from tda_ray.engine.rips import run_rips

    return run_cancellable(
        lambda token, on_progress: run_rips(
            X, params, options, distance_matrix=distance, cancel=token, progress=on_progress
        ),
        show,
    )


def run(args: argparse.Namespace) -> int:
    params = RipsParams.parse(params_from_args(args, RipsParams, exclude=("graph_filtration",)))
    options = RunOptions(n_threads=args.threads, memory_limit=args.memory_limit)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    fmt_name = tio.resolve_format(args.file, args.format)
    distance = tio.is_distance_format(fmt_name) or args.distance_matrix or args.graph is not None
    if params.landmarks is not None:
        if distance:
            fail("--landmarks needs point coordinates, not a distance matrix or a graph")
        return _landmark_run(args, params, options, show)
    if fmt_name == "image":
        fail(f"{args.file} is an image: use {PROG} cubical")
    X = tio.load(args.file, fmt_name)
    if args.graph is not None:
        from tda_ray.engine.graphs import graph_distance_matrix

        X = graph_distance_matrix(X, filtration=args.graph)
    result = _compute_with_progress(X, params, options, distance, show)
    print(json.dumps(result.to_json_dict(), allow_nan=False) if args.json else format_intervals(result))
    return EXIT_OK


def _landmark_run(args: argparse.Namespace, params: RipsParams, options: RunOptions, show: bool) -> int:
    require_extra("ray.data")
    from tda_ray.distributed.landmarks import run_landmark_rips

    bar, on_progress = fraction_bar(show)
    try:
        res = run_landmark_rips(args.file, params, options, address=args.address, progress=on_progress)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(res.to_json_dict(), allow_nan=False))
        return EXIT_OK
    s = res.sample
    print(
        f"# {s.n_landmarks} landmarks of {s.n_points} points, covering radius eps {fmt(s.eps)} "
        f"(bottleneck distance to the full diagram <= {fmt(res.bottleneck_bound)})"
    )
    print(format_intervals(res.result))
    return EXIT_OK
