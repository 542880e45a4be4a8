"""What the subcommands share: exit codes, argument types, the algorithm's parameters as arguments
(derived from its parameter model), progress bars and the interval printout."""

from __future__ import annotations

import argparse
import importlib
import math
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn

import numpy as np

from tda_ray.engine.params import Params

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


# --------------------------------------------------------------------------- argument types

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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text!r}")
    return value


_INT = re.compile(r"^[+-]?\d+$")


def scalar(text: str) -> Any:
    """A command-line word as the JSON value it spells: an integer, a number, null, true, false, or the text."""
    if _INT.match(text.strip()):
        return int(text)
    if text.strip().lower() in ("null", "none"):
        return None
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- parameters from the registry


def _metavar(schema: dict[str, Any]) -> str:
    kinds = schema.get("anyOf", [schema])
    words = []
    for k in kinds:
        if "const" in k:
            words.append(str(k["const"]))
        elif k.get("type") == "integer":
            words.append("N")
        elif k.get("type") == "number":
            words.append("X")
        elif k.get("type") == "boolean":
            words.append("true|false")
    return "|".join(words) or "VALUE"


def _checker(model: type[Params], name: str, flag: str) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        try:
            return model.check_field(name, scalar(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    check.__name__ = flag  # argparse names the type in some messages
    return check


def add_params_arguments(p: argparse.ArgumentParser, model: type[Params], exclude: Iterable[str] = ()) -> None:
    """One ``--name`` argument per field of the parameter model (checked by the model as it is parsed)."""
    schema = model.model_json_schema()["properties"]
    skip = set(exclude)
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        default = "none" if field.default is None else field.default
        text = f"{field.description or name} (default: {default})"
        if field.annotation is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        p.add_argument(flag, type=_checker(model, name, flag), default=None, metavar=_metavar(schema[name]), help=text)


def params_from_args(args: argparse.Namespace, model: type[Params], exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The parameters given on the command line (those left out take the model's defaults)."""
    skip = set(exclude)
    return {n: getattr(args, n) for n in model.model_fields if n not in skip and getattr(args, n, None) is not None}


def add_progress_argument(p: argparse.ArgumentParser, default: bool | None = None, text: str | None = None) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=default,
        help=text or "progress bar on stderr (default: only when stderr is a terminal)",
    )


def fraction_bar(show: bool) -> tuple[Any, Callable[[float], None]]:
    """A tqdm bar in percent on stderr and the ``progress(fraction)`` callback that moves it."""
    from tqdm import tqdm

    bar = tqdm(
        total=100,
        unit="%",
        file=sys.stderr,
        disable=not show,
        leave=False,
        bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
    )

    def on_progress(fraction: float) -> None:
        target = min(max(float(fraction), 0.0), 1.0) * 100
        if target > bar.n:
            bar.update(target - bar.n)

    return bar, on_progress


# --------------------------------------------------------------------------- output


def fmt(x: float) -> str:
    """Shortest text that reads back to the same value; float32-valued results print as float32."""
    if math.isinf(x):
        return "inf"
    single = np.float32(x)
    return str(single) if float(single) == x else repr(float(x))


def format_intervals(result: Any) -> str:
    """Human-readable diagrams: one header per dimension, one ``[birth, death)`` line per interval."""
    thr = "inf" if result.threshold is None else fmt(result.threshold)
    lines = [f"# {result.n_points} points, maxdim {result.maxdim}, coeff {result.coeff}, threshold {thr}"]
    cocycles = getattr(result, "cocycles", None)
    for dim, dgm in enumerate(result.diagrams):
        lines.append(f"dim {dim}: {len(dgm)} interval{'s' if len(dgm) != 1 else ''}")
        for i, (b, d) in enumerate(dgm.tolist()):
            line = f"  [{fmt(b)}, {fmt(d)})"
            if cocycles is not None and dim >= 1:  # simplex (vertices joined by '-') : coefficient
                rows = cocycles[dim][i].tolist()
                line += "  cocycle " + " ".join("-".join(map(str, r[:-1])) + f":{r[-1]}" for r in rows)
            lines.append(line)
    return "\n".join(lines)


def run_cancellable(compute: Callable[[Any, Callable[[float], None] | None], Any], show: bool) -> Any:
    """``compute(cancel_token, progress)`` in a worker thread, so Ctrl-C in the main thread cancels it cleanly
    (a progress bar on stderr when ``show``)."""
    from tda_ray.engine.rips import CancelToken

    token = CancelToken()
    outcome: dict[str, Any] = {}
    bar, on_progress = fraction_bar(show)

    def work() -> None:
        try:
            outcome["result"] = compute(token, on_progress if show else None)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc
        finally:
            done.set()

    # Waiting on an Event, not Thread.join: on CPython 3.11 a KeyboardInterrupt inside join() can leave the
    # thread marked stopped while it still runs, and the interpreter would then exit under the engine.
    done = threading.Event()
    threading.Thread(target=work, name="tda-ray-engine", daemon=True).start()
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
