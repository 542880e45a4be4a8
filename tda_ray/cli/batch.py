"""``tda-ray batch INPUT --output OUT``: persistent homology of a collection of clouds with Ray Data."""

from __future__ import annotations

import argparse
import json
import sys

from tda_ray.cli.common import (
    EXIT_OK,
    PROG,
    add_params_arguments,
    add_progress_argument,
    fail,
    params_from_args,
    parse_size,
    positive_int,
    require_extra,
)
from tda_ray.engine.params import RipsParams

# Every cloud of a batch is computed exactly.
EXCLUDED = ("landmarks",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder of .npy/.csv/.txt clouds, or Parquet (file or folder) with one cloud per row")
    p.add_argument("--output", required=True, help="Parquet file written with one row per cloud (path or URI)")
    add_params_arguments(p, RipsParams, exclude=EXCLUDED)
    p.add_argument("--memory-limit", type=parse_size, default=None, help="per-cloud engine memory limit (e.g. 4G)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="clouds per engine batch (default: 32)")
    p.add_argument(
        "--address", default=None, help="Ray cluster to join (auto, HOST:PORT, ray://...; default: a local Ray)"
    )
    p.add_argument(
        "--submit",
        metavar="DASHBOARD_URL",
        default=None,
        help="run as a Ray Job on the cluster at this dashboard URL (http://HEAD:8265); paths are the cluster's",
    )
    p.add_argument(
        "--runtime-env-json", default=None, help="with --submit: Ray runtime_env as JSON (e.g. pip, env_vars)"
    )
    add_progress_argument(
        p, default=True, text="progress on stderr: a bar on a terminal, else a line every few seconds (default: on)"
    )


def _runtime_env(text: str | None) -> dict[str, object] | None:
    if not text:
        return None
    try:
        env = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--runtime-env-json is not valid JSON: {exc}")
    if not isinstance(env, dict):
        fail("--runtime-env-json must be a JSON object")
    return env


def run(args: argparse.Namespace) -> int:
    require_extra("ray.data")
    params = params_from_args(args, RipsParams, exclude=EXCLUDED)
    options = {"memory_limit": args.memory_limit, "batch_size": args.batch_size}
    if args.submit:
        from tda_ray.distributed.ray_jobs import submit_batch

        env = _runtime_env(args.runtime_env_json)
        try:
            submitted = submit_batch(args.submit, args.input, args.output, runtime_env=env, **params, **options)
        except ConnectionError as exc:
            print(f"{PROG}: cannot reach {args.submit}: {exc}", file=sys.stderr)
            return 1
        print(f"{PROG}: Ray job {submitted.job_id} {submitted.status}", file=sys.stderr)
        return EXIT_OK if submitted.succeeded else 1
    from tda_ray.distributed.batch import run_batch

    summary = run_batch(args.input, args.output, address=args.address, progress=args.progress, **params, **options)
    print(f"{PROG}: {summary.line()}", file=sys.stderr)
    return EXIT_OK
