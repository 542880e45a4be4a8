"""Cubical persistence benchmark: tda-ray against GUDHI (``CubicalComplex``) and cripser (CubicalRipser).

Cases: a 1024 x 1024 image and a 128^3 volume of uniform random values (seed 0), in the V-construction (pixels
are vertices) and the T-construction (pixels are top cells), every homology dimension, coefficients Z/2.
Every (engine, case, repeat) runs in a fresh interpreter: the child makes the data, then times the
computation only; memory is the child's peak RSS and its growth over the RSS after the data was made (the
kernel's high-water mark is reset there). Engines are interleaved (their order rotates per repeat) so drifting
machine load hits them alike; medians of the repeats are reported, with min-max, and ratios to the faster peer
taken within each repeat (wall and CPU time: on a loaded machine a run's wall time can be mostly waiting).
The children also report their diagrams' pair counts and sums, which must agree across engines.

    python benchmarks/bench_cubical.py                            # all cases, Markdown to stdout
    python benchmarks/bench_cubical.py --cases volume_128 --engines ours1,cripser1 --repeats 5
    python benchmarks/bench_cubical.py --write                    # also replace the section in BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from bench_common import replace_section

SECTION_START = "<!-- cubical-bench:start -->"
SECTION_END = "<!-- cubical-bench:end -->"


@dataclass(frozen=True)
class Case:
    shape: tuple[int, ...]
    construction: str


CASES = {
    "image_1024": Case((1024, 1024), "V"),
    "image_1024_T": Case((1024, 1024), "T"),
    "volume_128": Case((128, 128, 128), "V"),
    "volume_128_T": Case((128, 128, 128), "T"),
}
ENGINES = {
    "ours1": "tda-ray, n_threads=1",
    "ours2": "tda-ray, n_threads=2",
    "gudhi": "GUDHI CubicalComplex",
    "cripser1": "cripser, n_threads=1",
    "cripser2": "cripser, n_threads=2",
}
OURS = ("ours1", "ours2")
DEFAULT_ENGINES = ["ours1", "ours2", "gudhi", "cripser1"]


# --------------------------------------------------------------------------- child side


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next((int(line.split()[1]) for line in fh if line.startswith(key + ":")), 0)


def _compute(engine: str, case: Case, a: Any) -> list[Any]:
    """Per dimension, the (birth, death) pairs of non-zero length (deaths of essential classes inf)."""
    d = len(case.shape)
    if engine in OURS:
        from tda_ray import cubical_persistence

        res = cubical_persistence(a, construction=case.construction, n_threads=1 if engine == "ours1" else 2)
        return list(res.diagrams)
    if engine == "gudhi":
        import gudhi

        kw = {"vertices": a} if case.construction == "V" else {"top_dimensional_cells": a}
        cc = gudhi.CubicalComplex(**kw)
        cc.persistence(homology_coeff_field=2, min_persistence=0)
        return [cc.persistence_intervals_in_dimension(k) for k in range(d)]
    import cripser

    threads = 1 if engine == "cripser1" else 2
    rows = cripser.compute_ph(a, filtration=case.construction, maxdim=d - 1, n_threads=threads)
    return [rows[rows[:, 0] == k][:, 1:3] for k in range(d)]


def child(engine: str, name: str) -> None:
    import resource
    import time

    import numpy as np

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    case = CASES[name]
    a = np.random.default_rng(0).random(case.shape)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak restarts from the RSS with the data made
    base = _status_kib("VmRSS")
    start, cpu_start = time.perf_counter(), cpu()
    diagrams = _compute(engine, case, a)
    seconds, cpu_seconds = time.perf_counter() - start, cpu() - cpu_start
    peak = _status_kib("VmHWM")
    pairs, sums = [], []
    for dgm in diagrams:
        dgm = np.asarray(dgm, dtype=np.float64).reshape(-1, 2)
        dgm = dgm[dgm[:, 0] != dgm[:, 1]]
        pairs.append(len(dgm))
        sums.append(float(np.sum(dgm[np.isfinite(dgm)])))
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": peak / 1024,
                      "growth_mib": (peak - base) / 1024, "pairs": pairs, "sums": sums}))  # fmt: skip


# --------------------------------------------------------------------------- parent side


def run_one(engine: str, name: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", engine, name]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def check_agreement(name: str, runs: dict[str, list[dict[str, Any]]]) -> str:
    """'ok', or which engine's pair counts or sums differ from the first engine's."""
    firsts = {e: r[0] for e, r in runs.items() if r and "error" not in r[0]}
    if not firsts:
        return "no runs"
    ref_engine, ref = next(iter(firsts.items()))
    for engine, r in firsts.items():
        if r["pairs"] != ref["pairs"]:
            return f"{engine} pair counts {r['pairs']} != {ref_engine} {ref['pairs']}"
        for x, y in zip(r["sums"], ref["sums"], strict=True):
            if abs(x - y) > 1e-9 * max(1.0, abs(y)):
                return f"{engine} sums {r['sums']} != {ref_engine} {ref['sums']}"
    return "ok"


def summarize(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def paired_ratios(
    runs: dict[str, list[dict[str, Any]]], engine: str, engines: list[str], what: str = "seconds"
) -> list[float]:
    """Per repeat: the engine's time over the faster peer's in the same repeat (run back to back with it, so
    drifting machine load cancels out more than in a ratio of medians)."""
    ratios = []
    for i, run in enumerate(runs[engine]):
        peers = [runs[e][i][what] for e in engines if e not in OURS and "error" not in runs[e][i]]
        if "error" not in run and peers:
            ratios.append(run[what] / min(peers))
    return ratios


def ratio_text(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else ""


def table(results: dict[str, dict[str, list[dict[str, Any]]]], engines: list[str]) -> str:
    lines = [
        "| case | engine | seconds, median (min-max) | CPU s | peak MiB | growth MiB | wall / faster peer | "
        "CPU / faster peer | peak / GUDHI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        ok = {e: [r for r in runs[e] if "error" not in r] for e in engines}
        peak = {e: statistics.median(r["peak_mib"] for r in ok[e]) for e in engines if ok[e]}
        for e in engines:
            if not ok[e]:
                error = runs[e][0].get("error", "no runs") if runs[e] else "no runs"
                lines.append(f"| {name} | {ENGINES[e]} | {error} | | | | | | |")
                continue
            growth = statistics.median(r["growth_mib"] for r in ok[e])
            cpu = statistics.median(r["cpu_seconds"] for r in ok[e])
            wall = ratio_text(paired_ratios(runs, e, engines))
            cpu_ratio = ratio_text(paired_ratios(runs, e, engines, "cpu_seconds"))
            mem = f"{peak[e] / peak['gudhi']:.2f}x" if "gudhi" in peak else ""
            lines.append(
                f"| {name} | {ENGINES[e]} | {summarize([r['seconds'] for r in ok[e]])} | {cpu:.3g} | {peak[e]:.0f} | "
                f"{growth:.0f} | {wall} | {cpu_ratio} | {mem} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--write", action="store_true", help="replace the cubical section of BENCHMARKS.md")
    p.add_argument("--child", nargs=2, metavar=("ENGINE", "CASE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return
    cases, engines = args.cases.split(","), args.engines.split(",")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {c: {e: [] for e in engines} for c in cases}
    load = os.getloadavg()
    for rep in range(args.repeats):
        for name in cases:
            for i in range(len(engines)):
                engine = engines[(i + rep) % len(engines)]
                res = run_one(engine, name, args.timeout)
                results[name][engine].append(res)
                print(f"# {name} {engine} rep {rep}: {res}", file=sys.stderr)
    end = os.getloadavg()
    checks = [f"- {name}: diagrams agree across engines: {check_agreement(name, results[name])}" for name in cases]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"Measured {stamp} on {platform.machine()} ({os.cpu_count()} CPUs, shared with other work: load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start, {end[0]:.1f} {end[1]:.1f} {end[2]:.1f} at the "
        f"end), {args.repeats} fresh-process runs per engine "
        f"and case, interleaved. `python benchmarks/bench_cubical.py --repeats {args.repeats}`. Uniform random "
        "values (seed 0), every homology dimension, Z/2; seconds (wall) and CPU s (user + system, all threads) "
        "are the computation only; ratios are taken per repeat against the faster peer (by that measure) of the "
        "repeat, median and range over the repeats (CPU ratios of 2 threads count both threads); peak is the "
        "child's peak RSS (the data made, interpreter and libraries loaded included), growth its rise over the "
        "RSS after the data was made."
    )
    text = "\n\n".join([head, table(results, engines), "\n".join(checks)])
    print(text)
    if args.write:
        replace_section(text, SECTION_START, SECTION_END, heading="## Engine: cubical persistence")


if __name__ == "__main__":
    main()
