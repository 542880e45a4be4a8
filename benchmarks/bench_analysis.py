"""Analysis toolkit benchmark: diagram distances and vectorizations on 10,000 diagram pairs, tda-ray next to the
peers (GUDHI, Hera through gudhi.hera, POT through gudhi.wasserstein, persim; giotto-tda in its own virtualenv
when `make giotto-venv` made one), each measurement in a process of its own.

    python benchmarks/bench_analysis.py                    # 10,000 pairs, 3 rounds, Markdown to stdout
    python benchmarks/bench_analysis.py --pairs 2000 --rounds 1 --only bottleneck_h1
    python benchmarks/bench_analysis.py --write            # also replace the section in BENCHMARKS.md

The diagrams: Vietoris–Rips (tda-ray's engine, maxdim 1) of 20,000 clouds of 50 uniform points in the unit
square, made once and cached in .cache/bench_analysis/; pair i is (diagram 2i, diagram 2i+1).  H0 diagrams
hold 49 finite pairs and one essential class, H1 diagrams 0 to ~15 pairs.  A task is one computation over all
pairs (distances) or all 20,000 diagrams of a dimension (vectorizations); each (task, tool) runs in a fresh
process that loads the data, computes once untimed (imports, first-call costs), then times one pass.  Rounds
interleave the tools in a shuffled order; figures are medians over rounds, with min-max, and ratios
tda-ray / peer (< 1: tda-ray faster).  `check` is the largest relative difference of a tool's results from
tda-ray's (the tests check exactness; here it shows the tools computed the same thing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache" / "bench_analysis"
GIOTTO_PYTHON = Path(os.environ.get("TDA_GIOTTO_PYTHON", REPO_ROOT / ".cache" / "giotto" / "venv" / "bin" / "python"))
SECTION_START = "<!-- analysis-bench:start -->"
SECTION_END = "<!-- analysis-bench:end -->"
N_BINS = 100


# --------------------------------------------------------------------------- data


def make_data(n_pairs: int, seed: int = 0) -> Path:
    """Diagrams of 2 * n_pairs clouds, cached as .npz: per dimension a (n, k, 2) stack and the lengths."""
    path = CACHE / f"rips_{n_pairs}_{seed}.npz"
    if path.exists():
        return path
    import tda_ray

    rng = np.random.default_rng(seed)
    per_dim: list[list[np.ndarray]] = [[], []]
    for _ in range(2 * n_pairs):
        dgms = tda_ray.vietoris_rips(rng.random((50, 2)), maxdim=1).diagrams
        for k in (0, 1):
            per_dim[k].append(dgms[k])
    out: dict[str, Any] = {}
    for k, dgms in enumerate(per_dim):
        lengths = np.array([len(d) for d in dgms])
        stack = np.zeros((len(dgms), max(lengths.max(), 1), 2))
        for i, d in enumerate(dgms):
            stack[i, : len(d)] = d
        out[f"h{k}"], out[f"h{k}_lengths"] = stack, lengths
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return path


def load(path: Path, dim: int) -> list[np.ndarray]:
    data = np.load(path)
    stack, lengths = data[f"h{dim}"], data[f"h{dim}_lengths"]
    return [np.ascontiguousarray(stack[i, :n]) for i, n in enumerate(lengths)]


def padded(path: Path) -> np.ndarray:
    """giotto-tda's form: H0 (finite part) and H1 as one padded (n, points, 3) array."""
    blocks = []
    for dim in (0, 1):
        dgms = [d[np.isfinite(d[:, 1])] for d in load(path, dim)]
        width = max(len(d) for d in dgms)
        fill = min(float(d[:, 0].min()) for d in dgms if len(d))
        block = np.full((len(dgms), width, 3), fill)
        block[:, :, 2] = dim
        for i, d in enumerate(dgms):
            block[i, : len(d), :2] = d
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


# --------------------------------------------------------------------------- tasks: tool -> (setup, run)


def _pairs(dgms: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(zip(dgms[0::2], dgms[1::2], strict=True))


def _finite(dgms: list[np.ndarray]) -> list[np.ndarray]:
    return [d[np.isfinite(d[:, 1])] for d in dgms]


def distance_tools(dim: int, metric: str) -> dict[str, Callable[[Path], Callable[[], Any]]]:
    """Each tool: data path -> a thunk computing every pair's distance (a list of floats)."""

    def ours(path: Path) -> Callable[[], Any]:
        import tda_ray

        pairs = _pairs(load(path, dim))
        if metric == "bottleneck":
            return lambda: [tda_ray.bottleneck_distance(a, b) for a, b in pairs]
        q = 1.0 if metric == "w1" else 2.0
        return lambda: [tda_ray.wasserstein_distance(a, b, p=q) for a, b in pairs]

    def gudhi_cgal(path: Path) -> Callable[[], Any]:
        import gudhi

        pairs = _pairs(load(path, dim))
        return lambda: [gudhi.bottleneck_distance(a, b) for a, b in pairs]

    def hera(path: Path) -> Callable[[], Any]:
        import gudhi.hera as h

        pairs = _pairs(load(path, dim))
        if metric == "bottleneck":
            return lambda: [h.bottleneck_distance(a, b, delta=0) for a, b in pairs]
        q = 1.0 if metric == "w1" else 2.0
        return lambda: [h.wasserstein_distance(a, b, order=q) for a, b in pairs]

    def pot(path: Path) -> Callable[[], Any]:
        import gudhi.wasserstein as gw

        pairs = _pairs(load(path, dim))
        q = 1.0 if metric == "w1" else 2.0
        return lambda: [gw.wasserstein_distance(a, b, order=q) for a, b in pairs]

    def persim(path: Path) -> Callable[[], Any]:
        import warnings

        import persim as ps

        warnings.simplefilter("ignore")  # persim warns that it drops the essential classes
        pairs = _pairs(_finite(load(path, dim)))
        if metric == "bottleneck":
            return lambda: [ps.bottleneck(a, b) for a, b in pairs]
        return lambda: [ps.wasserstein(a, b) for a, b in pairs]

    tools: dict[str, Callable[[Path], Callable[[], Any]]] = {"tda-ray": ours}
    if metric == "bottleneck":
        tools |= {"gudhi (CGAL)": gudhi_cgal, "gudhi.hera (delta=0)": hera, "persim": persim}
    elif metric == "w1":
        tools |= {"gudhi.wasserstein (POT)": pot, "gudhi.hera (delta=0.01)": hera, "persim": persim}
    else:
        tools |= {"gudhi.wasserstein (POT)": pot, "gudhi.hera (delta=0.01)": hera}
    return tools


def vectorization_tools(kind: str) -> dict[str, Callable[[Path], Callable[[], Any]]]:
    """Each tool: data path -> a thunk vectorizing every finite H1 diagram (20,000) on the same grid, in the
    peer's convention (GUDHI's landscapes and silhouettes carry a factor sqrt(2): ours are scaled to match)."""

    def grid(dgms: list[np.ndarray], n: int) -> np.ndarray:
        lo = min(float(d[:, 0].min()) for d in dgms if len(d))
        hi = max(float(d[:, 1].max()) for d in dgms if len(d))
        return np.linspace(lo, hi, n + 2)[1:-1]  # GUDHI's default grid

    def ranges(dgms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        bp = np.concatenate([np.column_stack([d[:, 0], d[:, 1] - d[:, 0]]) for d in dgms])
        return bp.min(axis=0), bp.max(axis=0)

    def ours(path: Path) -> Callable[[], Any]:
        from tda_ray.engine import images
        from tda_ray.engine import vectorize as vz

        dgms = _finite(load(path, 1))
        g, root2 = grid(dgms, N_BINS), np.sqrt(2)
        if kind == "landscape":
            return lambda: root2 * vz.landscapes(dgms, g, 5)
        if kind == "betti":
            return lambda: vz.betti_curves(dgms, g)
        if kind == "silhouette":
            return lambda: root2 * vz.silhouettes(dgms, g, 1.0)
        if kind == "entropy":
            return lambda: vz.persistence_entropies(dgms)
        if kind == "image_density":
            lo, hi = ranges(dgms)
            gb, gp = np.linspace(lo[0], hi[0], 20), np.linspace(lo[1], hi[1], 20)
            return lambda: [images.persistence_image(d, gb, gp, 0.05) for d in dgms]
        eb, ep = _persim_edges(dgms)
        return lambda: [images.persistence_image_pixels(d, eb, ep, 0.05, weight=lambda b, p: p) for d in dgms]

    def gudhi(path: Path) -> Callable[[], Any]:
        import gudhi.representations as gr

        dgms = _finite(load(path, 1))
        est: Any = {
            "landscape": gr.Landscape(num_landscapes=5, resolution=N_BINS),
            "betti": gr.BettiCurve(resolution=N_BINS),
            "silhouette": gr.Silhouette(resolution=N_BINS, weight=lambda p: p[1] - p[0]),
            "entropy": gr.Entropy(),
            "image_density": gr.PersistenceImage(bandwidth=0.05, resolution=[20, 20]),
        }[kind]
        return lambda: est.fit_transform(dgms)

    def persim(path: Path) -> Callable[[], Any]:
        from persim.persistent_entropy import persistent_entropy

        dgms = _finite(load(path, 1))
        if kind == "entropy":
            return lambda: persistent_entropy(dgms)
        imager = _persim_imager(dgms)
        return lambda: imager.transform(dgms)

    if kind == "image_pixels":
        return {"tda-ray": ours, "persim": persim}
    tools: dict[str, Callable[[Path], Callable[[], Any]]] = {"tda-ray": ours, "gudhi.representations": gudhi}
    if kind == "entropy":
        tools["persim"] = persim
    return tools


def _persim_imager(dgms: list[np.ndarray]) -> Any:
    from persim import PersistenceImager

    imager = PersistenceImager(pixel_size=0.05, kernel_params={"sigma": [[0.0025, 0.0], [0.0, 0.0025]]})
    imager.fit(dgms)
    return imager


def _persim_edges(dgms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """persim's pixel edges for these diagrams (its fit rounds the ranges up to whole pixels)."""
    imager = _persim_imager(dgms)
    return imager._bpnts, imager._ppnts


def transformer_tools(name: str) -> dict[str, Callable[[Path], Callable[[], Any]]]:
    """giotto-tda's transformer against ours on the padded collection (H0 finite part and H1)."""
    params: dict[str, dict[str, Any]] = {
        "BettiCurve": {},
        "PersistenceLandscape": {"n_layers": 5},
        "PersistenceImage": {"n_bins": 30},
    }
    params |= {"Amplitude": {"metric": "wasserstein"}, "PersistenceEntropy": {}}

    def ours(path: Path) -> Callable[[], Any]:
        import tda_ray

        X = padded(path)
        return lambda: getattr(tda_ray, name)(**params[name]).fit_transform(X)

    def giotto(path: Path) -> Callable[[], Any]:
        import gtda.diagrams

        X = padded(path)
        return lambda: getattr(gtda.diagrams, name)(**params[name]).fit_transform(X)

    return {"tda-ray": ours, "giotto-tda": giotto}


TASKS: dict[str, tuple[str, Callable[[], dict[str, Callable[[Path], Callable[[], Any]]]]]] = {
    "bottleneck_h0": ("bottleneck, H0 pairs (49 finite + 1 essential each)", lambda: distance_tools(0, "bottleneck")),
    "bottleneck_h1": ("bottleneck, H1 pairs", lambda: distance_tools(1, "bottleneck")),
    "w1_h0": ("1-Wasserstein (L-inf), H0 pairs", lambda: distance_tools(0, "w1")),
    "w1_h1": ("1-Wasserstein (L-inf), H1 pairs", lambda: distance_tools(1, "w1")),
    "w2_h0": ("2-Wasserstein (L-inf), H0 pairs", lambda: distance_tools(0, "w2")),
    "w2_h1": ("2-Wasserstein (L-inf), H1 pairs", lambda: distance_tools(1, "w2")),
    "landscape": ("5 landscapes, 100 values, 20,000 H1 diagrams", lambda: vectorization_tools("landscape")),
    "betti": ("Betti curve, 100 values, 20,000 H1 diagrams", lambda: vectorization_tools("betti")),
    "silhouette": ("silhouette (power 1), 100 values, 20,000 H1", lambda: vectorization_tools("silhouette")),
    "image_density": (
        "image 20x20 (Gaussians at grid points), 20,000 H1",
        lambda: vectorization_tools("image_density"),
    ),
    "image_pixels": (
        "image, 0.05 pixels (Gaussian mass per pixel), 20,000 H1",
        lambda: vectorization_tools("image_pixels"),
    ),
    "entropy": ("persistence entropy, 20,000 H1 diagrams", lambda: vectorization_tools("entropy")),
    **{
        f"gtda_{name}": (f"transformer {name}, 20,000 padded H0+H1", functools.partial(transformer_tools, name))
        for name in ("BettiCurve", "PersistenceLandscape", "PersistenceImage", "Amplitude", "PersistenceEntropy")
    },
}


# --------------------------------------------------------------------------- one measurement (child process)


def _summary(result: Any) -> list[float]:
    arr = (
        np.asarray(result, dtype=np.float64)
        if not isinstance(result, list)
        else np.array([np.asarray(r, dtype=np.float64).sum() for r in result])
    )
    return [float(x) for x in arr.reshape(arr.shape[0], -1).sum(axis=1)] if arr.ndim else [float(arr)]


def child(task: str, tool: str, path: Path) -> dict[str, Any]:
    thunk = TASKS[task][1]()[tool](path)
    thunk()  # untimed: imports and first-call costs
    start = time.perf_counter()
    result = thunk()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "values": _summary(result)}


def run_child(task: str, tool: str, path: Path) -> dict[str, Any]:
    python = str(GIOTTO_PYTHON) if tool == "giotto-tda" else sys.executable
    proc = subprocess.run(
        [python, __file__, "--child", task, tool, str(path)], capture_output=True, text=True, timeout=3600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{task} / {tool} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- rounds and report


def _check(values: list[float], ref: list[float]) -> float:
    a, b = np.asarray(values), np.asarray(ref)
    if a.shape != b.shape:
        return float("nan")
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(a[finite] - b[finite]) / np.maximum(np.abs(b[finite]), 1e-12)))


def measure(tasks: list[str], path: Path, rounds: int, seed: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(seed)
    results: dict[str, dict[str, Any]] = {t: {} for t in tasks}
    for r in range(rounds):
        for task in tasks:
            tools = [t for t in TASKS[task][1]() if t != "giotto-tda" or GIOTTO_PYTHON.exists()]
            rng.shuffle(tools)
            for tool in tools:
                out = run_child(task, tool, path)
                entry = results[task].setdefault(tool, {"seconds": [], "values": out["values"]})
                entry["seconds"].append(out["seconds"])
                print(f"round {r + 1} {task:24s} {tool:26s} {out['seconds']:8.3f} s", file=sys.stderr, flush=True)
    return results


def report(results: dict[str, dict[str, Any]], n_pairs: int, rounds: int, command: str) -> str:
    load = os.getloadavg()
    lines = [
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({os.cpu_count()} CPUs, shared; load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}). "
        f"`{command}`: {n_pairs:,} pairs, {rounds} rounds, one process per measurement, figures are the "
        "medians of the rounds (min-max); ratio = tda-ray / tool (< 1: tda-ray faster).",
        "",
        "| task | tool | seconds (median) | min-max | per item | tda-ray / tool | check |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, tools in results.items():
        ours = statistics.median(tools["tda-ray"]["seconds"])
        items = n_pairs if task.startswith(("bottleneck", "w1", "w2")) else 2 * n_pairs
        for tool, entry in tools.items():
            s = entry["seconds"]
            med = statistics.median(s)
            ratio = "—" if tool == "tda-ray" else f"{ours / med:.3f}"
            check = "—" if tool == "tda-ray" else f"{_check(entry['values'], tools['tda-ray']['values']):.1e}"
            lines.append(
                f"| {TASKS[task][0]} | {tool} | {med:.3f} | {min(s):.3f}-{max(s):.3f} | "
                f"{med / items * 1e6:.1f} µs | {ratio} | {check} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", nargs="*", default=None, help="tasks to run (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    p.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    p.add_argument("--child", nargs=3, metavar=("TASK", "TOOL", "DATA"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        task, tool, data = args.child
        print(json.dumps(child(task, tool, Path(data))))
        return 0
    tasks = args.only or list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f"unknown tasks {unknown}; choose from {list(TASKS)}")
    path = make_data(args.pairs, args.seed)
    results = measure(tasks, path, args.rounds, args.seed)
    command = " ".join([".venv/bin/python", "benchmarks/bench_analysis.py", *(argv or sys.argv[1:])])
    text = report(results, args.pairs, args.rounds, command)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_common import replace_section

        replace_section(
            text, SECTION_START, SECTION_END, heading="## Analysis toolkit: diagram distances and vectorizations"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
