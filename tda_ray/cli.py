"""Command-line interface: ``tda-ray SUBCOMMAND ...``.

Subcommands live in ``SUBCOMMANDS``: each is a name, a one-line help and two
functions, ``add_arguments(parser)`` and ``run(args) -> exit code``.  To add one,
write the two functions and append a :class:`Subcommand`.  ``add_arguments``
must stay cheap and import nothing heavy; ``run`` imports what it needs (Ray,
the service) itself, through :func:`require_extra` for optional dependencies, so
``tda-ray rips`` keeps working where only the base package is installed.

Exit codes: 0 success, 2 bad input (one line on stderr, never a traceback),
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn

import numpy as np

from tda_ray import __version__
from tda_ray.loaders import DISTANCE_FORMATS, FORMATS

PROG = "tda-ray"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input detected by a subcommand; reported as one line with exit code 2."""


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def require_extra(module: str, extra: str = "server") -> ModuleType:
    """Import an optional dependency or fail with an install hint instead of a traceback."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"{module} is not installed ({exc.name}); install tda-ray[{extra}]") from exc


def fail(message: str) -> NoReturn:
    raise UsageError(message)


# --------------------------------------------------------------------------- rips

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from '2G', '512M', '1.5GiB' or a plain number."""
    m = _SIZE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 2G, 512M, 1073741824)")
    scale = 1024 ** " kmgt".index(m.group(2).lower() or " ")
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, got 0")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text!r}")
    return value


def _rips_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="input file")
    p.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="input format (default: auto, from the extension: .npy, .parquet, .lower_distance_matrix, "
        ".distance_matrix, else point-cloud)",
    )
    p.add_argument(
        "--distance-matrix",
        action="store_true",
        help="treat an npy/parquet input as a square distance matrix instead of a point cloud",
    )
    p.add_argument("--maxdim", type=_non_negative_int, default=1, help="highest homology dimension (default: 1)")
    p.add_argument("--threshold", type=_finite_float, default=None, help="largest edge length (default: none)")
    p.add_argument("--coeff", type=int, default=2, help="prime field of coefficients (default: 2)")
    p.add_argument("--threads", type=_positive_int, default=1, help="worker threads (default: 1)")
    p.add_argument("--memory-limit", type=parse_size, default=None, help="refuse work estimated above this (e.g. 4G)")
    p.add_argument("--json", action="store_true", help="print JSON (death null for essential classes)")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only when stderr is a terminal)",
    )
    p.add_argument(
        "--landmarks",
        type=_landmark_count,
        default=None,
        metavar="N|auto",
        help="Rips on N greedy max-min landmarks chosen with Ray (.npy/Parquet are read in blocks, never whole); "
        "reports the covering radius eps (bottleneck distance to the full diagram <= 2 eps)",
    )
    p.add_argument("--address", default=None, help="with --landmarks: Ray cluster to use (default: a local Ray)")


def _landmark_count(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    return _positive_int(text)


def _fmt(x: float) -> str:
    """Shortest text that reads back to the same value; float32-valued results print as float32."""
    if math.isinf(x):
        return "inf"
    single = np.float32(x)
    return str(single) if float(single) == x else repr(float(x))


def format_intervals(result: Any) -> str:
    """Human-readable diagrams: one header per dimension, one ``[birth, death)`` line per interval."""
    thr = "inf" if result.threshold is None else _fmt(result.threshold)
    lines = [f"# {result.n_points} points, maxdim {result.maxdim}, coeff {result.coeff}, threshold {thr}"]
    for dim, dgm in enumerate(result.diagrams):
        lines.append(f"dim {dim}: {len(dgm)} interval{'s' if len(dgm) != 1 else ''}")
        lines.extend(f"  [{_fmt(b)}, {_fmt(d)})" for b, d in dgm.tolist())
    return "\n".join(lines)


def _compute_with_progress(X: Any, show_progress: bool, **kwargs: Any) -> Any:
    """Run the engine in a worker thread so Ctrl-C in the main thread can cancel it cleanly."""
    from tqdm import tqdm

    from tda_ray.engine import CancelToken, vietoris_rips

    token = CancelToken()
    outcome: dict[str, Any] = {}
    bar = tqdm(
        total=100,
        unit="%",
        file=sys.stderr,
        disable=not show_progress,
        leave=False,
        bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
    )

    def on_progress(fraction: float) -> None:
        target = min(max(float(fraction), 0.0), 1.0) * 100
        if target > bar.n:
            bar.update(target - bar.n)

    def work() -> None:
        try:
            outcome["result"] = vietoris_rips(
                X, cancel=token, progress=on_progress if show_progress else None, **kwargs
            )
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc
        finally:
            done.set()

    # Waiting on an Event, not Thread.join: on CPython 3.11 a KeyboardInterrupt inside join() can leave the
    # thread marked stopped while it still runs, and the interpreter would then exit under the engine.
    done = threading.Event()
    threading.Thread(target=work, name="tda-ray-rips", daemon=True).start()
    interrupted = False
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        interrupted = True
        token.cancel()
        while True:  # the engine polls the token often; never leave it running while the interpreter exits
            try:
                done.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        bar.close()
    if interrupted:
        raise KeyboardInterrupt
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _rips_run(args: argparse.Namespace) -> int:
    from tda_ray import loaders

    if args.landmarks is not None:
        return _landmark_rips_run(args)
    fmt = loaders.resolve_format(args.file, args.format)
    X = loaders.load(args.file, fmt)
    distance = fmt in DISTANCE_FORMATS or args.distance_matrix
    show = sys.stderr.isatty() if args.progress is None else args.progress
    result = _compute_with_progress(
        X,
        show,
        maxdim=args.maxdim,
        threshold=args.threshold,
        coeff=args.coeff,
        distance_matrix=distance,
        n_threads=args.threads,
        memory_limit=args.memory_limit,
    )
    if args.json:
        print(json.dumps(result.to_json_dict(), allow_nan=False))
    else:
        print(format_intervals(result))
    return EXIT_OK


def _landmark_rips_run(args: argparse.Namespace) -> int:
    from tda_ray import loaders

    if args.distance_matrix or loaders.resolve_format(args.file, args.format) in DISTANCE_FORMATS:
        fail("--landmarks needs point coordinates, not a distance matrix")
    require_extra("ray.data")
    from tqdm import tqdm

    from tda_ray.landmarks import landmark_rips

    show = sys.stderr.isatty() if args.progress is None else args.progress
    with tqdm(total=100, unit="%", file=sys.stderr, disable=not show, leave=False) as bar:

        def on_progress(fraction: float) -> None:
            target = min(max(float(fraction), 0.0), 1.0) * 100
            if target > bar.n:
                bar.update(target - bar.n)

        res = landmark_rips(
            args.file,
            args.landmarks,
            maxdim=args.maxdim,
            threshold=args.threshold,
            coeff=args.coeff,
            n_threads=args.threads,
            memory_limit=args.memory_limit,
            address=args.address,
            progress=on_progress,
        )
    if args.json:
        print(json.dumps(res.to_json_dict(), allow_nan=False))
    else:
        s = res.sample
        print(
            f"# {s.n_landmarks} landmarks of {s.n_points} points, covering radius eps {_fmt(s.eps)} "
            f"(bottleneck distance to the full diagram <= {_fmt(res.bottleneck_bound)})"
        )
        print(format_intervals(res.result))
    return EXIT_OK


# --------------------------------------------------------------------------- serve / submit (the HTTP service)


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="Serve config (default: $TDA_SERVE_CONFIG or serve_config.yaml)")
    p.add_argument("--host", default=None, help="bind address (default: $TDA_HOST or 127.0.0.1)")
    p.add_argument("--port", type=_positive_int, default=None, help="port (default: $TDA_PORT or 8000)")
    p.add_argument("--num-cpus", type=_positive_int, default=None, help="CPUs of the local Ray (default: 2)")
    p.add_argument("--ray-address", default=None, help="'local' (default) starts Ray here; 'auto' joins a cluster")


def _serve_run(args: argparse.Namespace) -> int:
    require_extra("ray.serve")
    from tda_ray.api import run_server
    from tda_ray.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "num_cpus": args.num_cpus,
            "ray_address": args.ray_address,
            "serve_config": args.config,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValueError as exc:  # pydantic's ValidationError names the field
        fail(f"invalid settings: {exc}")
    return run_server(settings)


def _submit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="point cloud file (.npy, .csv/.txt, .parquet), parsed by the server")
    p.add_argument("--server", default="http://127.0.0.1:8000", help="service URL (default: http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=None, help="API key (default: $TDA_API_KEY)")
    p.add_argument("--maxdim", type=_non_negative_int, default=1, help="highest homology dimension (default: 1)")
    p.add_argument("--threshold", type=_finite_float, default=None, help="largest edge length (default: none)")
    p.add_argument("--coeff", type=int, default=2, help="prime field of coefficients (default: 2)")
    p.add_argument(
        "--landmarks",
        type=_landmark_count,
        default=None,
        metavar="N|auto",
        help="Rips on N greedy max-min landmarks, chosen on the server's Ray cluster (default: exact)",
    )
    p.add_argument("--wait", action="store_true", help="wait for the result (progress bar on stderr) and print it")
    p.add_argument("--timeout", type=_finite_float, default=None, help="with --wait: give up after this many seconds")


def _submit_run(args: argparse.Namespace) -> int:
    import os

    from tda_ray.client import ApiError, Client, JobFailed

    key = args.api_key or os.environ.get("TDA_API_KEY") or None
    try:
        with Client(args.server, api_key=key) as client:
            pc = client.upload_file(args.file, progress=sys.stderr.isatty())
            job = client.submit(
                pc["id"], maxdim=args.maxdim, threshold=args.threshold, coeff=args.coeff, landmarks=args.landmarks
            )
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
    except JobFailed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except TimeoutError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import httpx

        if isinstance(exc, httpx.HTTPError):
            print(f"{PROG}: cannot reach {args.server}: {exc}", file=sys.stderr)
            return 1
        raise


# --------------------------------------------------------------------------- batch (collections on Ray Data)


def _batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder of .npy/.csv/.txt clouds, or Parquet (file or folder) with one cloud per row")
    p.add_argument("--output", required=True, help="Parquet file written with one row per cloud (path or URI)")
    p.add_argument("--maxdim", type=_non_negative_int, default=1, help="highest homology dimension (default: 1)")
    p.add_argument("--threshold", type=_finite_float, default=None, help="largest edge length (default: none)")
    p.add_argument("--coeff", type=int, default=2, help="prime field of coefficients (default: 2)")
    p.add_argument("--memory-limit", type=parse_size, default=None, help="per-cloud engine memory limit (e.g. 4G)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="clouds per engine batch (default: 32)")
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
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="progress on stderr: a bar on a terminal, else a line every few seconds (default: on)",
    )


def _batch_run(args: argparse.Namespace) -> int:
    require_extra("ray.data")
    from tda_ray import batch

    if args.submit:
        env = None
        if args.runtime_env_json:
            try:
                env = json.loads(args.runtime_env_json)
            except json.JSONDecodeError as exc:
                fail(f"--runtime-env-json is not valid JSON: {exc}")
            if not isinstance(env, dict):
                fail("--runtime-env-json must be a JSON object")
        try:
            submitted = batch.submit_batch(
                args.submit,
                args.input,
                args.output,
                maxdim=args.maxdim,
                threshold=args.threshold,
                coeff=args.coeff,
                memory_limit=args.memory_limit,
                batch_size=args.batch_size,
                runtime_env=env,
            )
        except ConnectionError as exc:
            print(f"{PROG}: cannot reach {args.submit}: {exc}", file=sys.stderr)
            return 1
        print(f"{PROG}: Ray job {submitted.job_id} {submitted.status}", file=sys.stderr)
        return EXIT_OK if submitted.succeeded else 1
    summary = batch.run_batch(
        args.input,
        args.output,
        maxdim=args.maxdim,
        threshold=args.threshold,
        coeff=args.coeff,
        memory_limit=args.memory_limit,
        batch_size=args.batch_size,
        address=args.address,
        progress=args.progress,
    )
    print(f"{PROG}: {summary.line()}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- registry

SUBCOMMANDS: list[Subcommand] = [
    Subcommand("rips", "persistent homology of a Vietoris–Rips filtration", _rips_arguments, _rips_run),
    Subcommand("serve", "run the HTTP service (local Ray + Serve) in the foreground", _serve_arguments, _serve_run),
    Subcommand("submit", "upload a point cloud to a running service and queue a job", _submit_arguments, _submit_run),
    Subcommand("batch", "persistent homology of a collection of clouds with Ray Data", _batch_arguments, _batch_run),
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as a single line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Distributed persistent homology (Vietoris–Rips).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for cmd in SUBCOMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args._run(args)
    except UsageError as exc:
        return _error(str(exc))
    except ValueError as exc:  # bad data or parameters (loaders, engine validation, memory limit)
        return _error(str(exc))
    except FileNotFoundError as exc:
        return _error(f"no such file: {exc.filename}")
    except IsADirectoryError as exc:
        return _error(f"is a directory, not a file: {exc.filename}")
    except PermissionError as exc:
        return _error(f"permission denied: {exc.filename}")
    except OSError as exc:
        return _error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK
    return code


def _error(message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "invalid input"
    print(f"{PROG}: error: {first}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
