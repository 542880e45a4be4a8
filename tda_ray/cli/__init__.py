"""Command-line interface: ``tda-ray SUBCOMMAND ...``.

One module per subcommand, each with ``add_arguments(parser)`` and ``run(args) -> exit code``; listed in
:data:`SUBCOMMANDS`.  ``add_arguments`` stays cheap and imports nothing heavy; ``run`` imports what it needs
(Ray, the service) itself, through :func:`~.common.require_extra` for optional dependencies, so ``tda-ray
rips`` works where only the base package is installed.  The algorithm's parameters become arguments by
themselves (:func:`~.common.add_params_arguments`).

Exit codes: 0 success, 2 bad input (one line on stderr, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from tda_ray import __version__
from tda_ray.cli import analysis, batch, cubical, rips, serve, streams, submit
from tda_ray.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, Subcommand, UsageError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS: list[Subcommand] = [
    Subcommand("rips", "persistent homology of a Vietoris–Rips filtration", rips.add_arguments, rips.run),
    Subcommand(
        "cubical",
        "persistent homology of an image or a volume (sublevel filtration)",
        cubical.add_arguments,
        cubical.run,
    ),
    Subcommand("serve", "run the HTTP service (local Ray + Serve) in the foreground", serve.add_arguments, serve.run),
    Subcommand("submit", "upload a point cloud to a running service and queue a job", submit.add_arguments, submit.run),
    Subcommand("batch", "persistent homology of a collection of clouds with Ray Data", batch.add_arguments, batch.run),
    Subcommand(
        "events", "post events to a running service (replay a CSV)", streams.events_arguments, streams.events_run
    ),
    Subcommand(
        "streams", "stream scores and sources of a running service", streams.streams_arguments, streams.streams_run
    ),
    Subcommand(
        "vectors", "a vectorization of a finished job's diagrams", analysis.vectors_arguments, analysis.vectors_run
    ),
    Subcommand(
        "distance", "distance between two finished jobs' diagrams", analysis.distance_arguments, analysis.distance_run
    ),
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


def _quiet_stdout() -> None:
    # The reader went away (`tda-ray rips ... | head`): send what is left to /dev/null, so the interpreter's
    # final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args._run(args)
    except UsageError as exc:
        return _error(str(exc))
    except ValueError as exc:  # bad data or parameters (loaders, parameter models, memory limit)
        return _error(str(exc))
    except BrokenPipeError:  # before OSError, of which it is one
        _quiet_stdout()
        return EXIT_OK
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
    return code


def _error(message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "invalid input"
    print(f"{PROG}: error: {first}", file=sys.stderr)
    return EXIT_USAGE
