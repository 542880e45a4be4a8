"""``tda-ray vectors JOB`` and ``tda-ray distance JOB_A JOB_B``: the analysis routes of a running service
(README "Analysis"), printed as JSON.  The server checks the parameters; its 422 becomes exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from tda_ray.cli.common import EXIT_OK, PROG, fail

KINDS = ("betti_curve", "landscape", "silhouette", "image", "entropy")


def _server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="http://127.0.0.1:8000", help="service URL (default: http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=None, help="API key (default: $TDA_API_KEY)")
    p.add_argument("--dim", type=int, default=None, help="homology dimension (default: every one)")


def vectors_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="id of a succeeded job")
    p.add_argument("--kind", required=True, choices=KINDS, help="the vectorization")
    _server_arguments(p)
    p.add_argument("--n-bins", type=int, default=None, help="grid size (image: per axis; default 100)")
    p.add_argument("--t-min", type=float, default=None, help="grid start (default: smallest birth)")
    p.add_argument("--t-max", type=float, default=None, help="grid end (default: largest finite death)")
    p.add_argument("--n-layers", type=int, default=None, help="landscape: number of layers (default 1)")
    p.add_argument("--power", type=float, default=None, help="silhouette: weight exponent (default 1)")
    p.add_argument("--sigma", type=float, default=None, help="image: Gaussian width (default: 1/20 of the range)")
    p.add_argument("--normalize", action="store_true", default=None, help="entropy: divide by log(number of bars)")


def distance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job_a", help="id of a succeeded job")
    p.add_argument("job_b", help="id of another succeeded job")
    p.add_argument("--metric", default="bottleneck", choices=("bottleneck", "wasserstein"), help="default: bottleneck")
    _server_arguments(p)
    p.add_argument("--p", type=float, default=None, help="wasserstein: exponent q (default 2)")
    p.add_argument("--internal-p", type=float, default=None, help="wasserstein: ground norm (default inf)")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    # Only what was given: the server refuses a parameter of another kind rather than ignoring it.
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _call(args: argparse.Namespace, ask: Callable[[Any], dict[str, Any]]) -> int:
    import httpx

    from tda_ray.client import ApiError, Client

    key = args.api_key or os.environ.get("TDA_API_KEY") or None
    try:
        with Client(args.server, api_key=key) as client:
            print(json.dumps(ask(client)))
            return EXIT_OK
    except ApiError as exc:
        if exc.status_code < 500:
            fail(str(exc))
        print(f"{PROG}: server error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"{PROG}: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1


def vectors_run(args: argparse.Namespace) -> int:
    params = _given(args, ("dim", "n_bins", "t_min", "t_max", "n_layers", "power", "sigma", "normalize"))
    return _call(args, lambda c: c.vectors(args.job, args.kind, **params))


def distance_run(args: argparse.Namespace) -> int:
    params = _given(args, ("dim", "p", "internal_p"))
    return _call(args, lambda c: c.distance(args.job_a, args.job_b, args.metric, **params))
