"""``tda-ray cubical FILE``: persistent homology of the sublevel filtration of an image or a volume."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tda_ray import io as tio
from tda_ray.cli.common import (
    EXIT_OK,
    add_params_arguments,
    add_progress_argument,
    fail,
    format_intervals,
    params_from_args,
    parse_size,
    positive_int,
    run_cancellable,
)
from tda_ray.engine.cubical import CubicalParams
from tda_ray.engine.params import RunOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="image or volume: .png/.tif/.tiff (a TIFF stack is a volume), .npy, or text rows")
    p.add_argument(
        "--format",
        choices=("auto", "image", "npy", "point-cloud"),
        default="auto",
        help="input format (default: auto, from the extension or the first bytes)",
    )
    add_params_arguments(p, CubicalParams)
    p.add_argument("--threads", type=positive_int, default=1, help="worker threads (default: 1)")
    p.add_argument("--memory-limit", type=parse_size, default=None, help="refuse work estimated above this (e.g. 4G)")
    p.add_argument("--json", action="store_true", help="print JSON (death null for essential classes)")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    import sys

    from tda_ray.engine.cubical import run_cubical

    params = CubicalParams.parse(params_from_args(args, CubicalParams))
    options = RunOptions(n_threads=args.threads, memory_limit=args.memory_limit)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    fmt_name = tio.resolve_format(args.file, args.format)
    if tio.is_distance_format(fmt_name):
        fail(f"{args.file} is a distance matrix: use tda-ray rips")
    image: Any = tio.load_grid(args.file, fmt_name)
    result = run_cancellable(
        lambda token, on_progress: run_cubical(image, params, options, cancel=token, progress=on_progress), show
    )
    if args.json:
        doc = {**result.to_json_dict(), "shape": list(result.extras["shape"])}
        print(json.dumps(doc, allow_nan=False))
    else:
        print(format_intervals(result).replace(" points,", f" pixels {result.extras['shape']},", 1))
    return EXIT_OK
