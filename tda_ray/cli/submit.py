"""``tda-ray submit FILE``: upload a point cloud to a running service and queue a job (``--wait``: its result)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tda_ray.cli.common import EXIT_OK, PROG, add_params_arguments, fail, non_negative_float, params_from_args
from tda_ray.engine.registry import DEFAULT_ALGORITHM, get_algorithm

ALGORITHM = get_algorithm(DEFAULT_ALGORITHM)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="point cloud file (.npy, .csv/.txt, .parquet), parsed by the server")
    p.add_argument(
        "--distance-matrix",
        action="store_true",
        help="the file is a square distance matrix (implied for *.distance_matrix, *.lower_distance_matrix)",
    )
    p.add_argument(
        "--graph",
        action="store_true",
        help="the file is a weighted graph's edge list, rows u v weight (see --graph-filtration)",
    )
    p.add_argument("--server", default="http://127.0.0.1:8000", help="service URL (default: http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=None, help="API key (default: $TDA_API_KEY)")
    add_params_arguments(p, ALGORITHM.params)
    p.add_argument("--wait", action="store_true", help="wait for the result (progress bar on stderr) and print it")
    p.add_argument(
        "--timeout", type=non_negative_float, default=None, help="with --wait: give up after this many seconds"
    )


def run(args: argparse.Namespace) -> int:
    import httpx

    from tda_ray.client import ApiError, Client, JobFailed

    key = args.api_key or os.environ.get("TDA_API_KEY") or None
    params = params_from_args(args, ALGORITHM.params)
    try:
        with Client(args.server, api_key=key) as client:
            kind = "distance_matrix" if args.distance_matrix else "graph" if args.graph else None
            pc = client.upload_file(args.file, progress=sys.stderr.isatty(), kind=kind)
            job = client.submit(pc["id"], algorithm=ALGORITHM.name, **params)
            if not args.wait:
                print(json.dumps(job))
                return EXIT_OK
            print(f"{PROG}: job {job['id']} queued", file=sys.stderr)
            try:
                client.wait(job["id"], timeout=args.timeout, progress=sys.stderr.isatty())
            except KeyboardInterrupt:
                client.cancel(job["id"])
                raise
            print(json.dumps(client.result_json(job["id"])))
            return EXIT_OK
    except ApiError as exc:
        if exc.status_code < 500:
            fail(str(exc))
        print(f"{PROG}: server error: {exc}", file=sys.stderr)
        return 1
    except (JobFailed, TimeoutError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"{PROG}: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1
