"""Engine benchmark: the shared Vietoris–Rips suite, ours against ripser.py, giotto-ph and (optionally) GUDHI.

Every (engine, case, repeat) runs in a fresh interpreter, so import caches, allocator state and peak RSS are
its own. The child loads the data first, then times the computation only; memory is the peak RSS of the
child and its growth over the post-load RSS (the kernel's high-water mark is reset after loading). Engines
are interleaved (their order rotates per repeat and case) so drifting machine load hits them alike; the
median of the repeats is reported.

    python benchmarks/run_suite.py                          # the CI-sized suite, Markdown to stdout
    python benchmarks/run_suite.py --cases o3_4096,clifford_torus_50000 --engines ours1,ripser
    python benchmarks/run_suite.py --gudhi --repeats 5 --timeout 300 --write   # also append to BENCHMARKS.md

Peers with an edge collapse run with it off and on (``gph1c``, ``gph2c``, ``gudhic``); ours collapses by its
``"auto"`` rule (``ours1nc``: never). Our runs also report the engine's own counters (``PersistenceResult.stats``),
printed in a table beside the times: where the time went and what the reduction did.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vr_cases import CASES, LARGE, Case

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
SECTION_START = "<!-- engine-benchmarks:start -->"
SECTION_END = "<!-- engine-benchmarks:end -->"


DEFAULT_CASES = [n for n in CASES if n not in LARGE]

ENGINES = {
    "ours1": "tda-ray, n_threads=1",
    "ours2": "tda-ray, n_threads=2",
    "ours1nc": "tda-ray, n_threads=1, collapse_edges=False",
    "ours1cc": "tda-ray, n_threads=1, cocycles=True",
    "ripser": "ripser.py",
    "ripsercc": "ripser.py, do_cocycles=True",
    "gph1": "giotto-ph, n_threads=1",
    "gph2": "giotto-ph, n_threads=2",
    "gph1c": "giotto-ph, n_threads=1, collapse_edges=True",
    "gph2c": "giotto-ph, n_threads=2, collapse_edges=True",
    "gudhi": "GUDHI RipsComplex + SimplexTree",
    "gudhic": "GUDHI RipsComplex + SimplexTree.collapse_edges() + expansion",
}
DEFAULT_ENGINES = ["ours1", "ours2", "ripser", "gph1", "gph2", "gph1c", "gph2c"]
OURS = ("ours1", "ours2", "ours1nc", "ours1cc")
# Peers that run on more than one thread (left out of the "best 1-thread peer").
MULTI_THREAD = ("gph2", "gph2c")


def datasets_dir() -> Path:
    return Path(os.environ.get("TDA_DATASETS", REPO.parent / "shared" / "datasets"))


# --------------------------------------------------------------------------- child side


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    """Resets the kernel's RSS high-water mark (Linux >= 4.0), so the peak measured is the computation's."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _load(case: Case) -> Any:
    import numpy as np

    from tda_ray import io as tio

    X = tio.load(datasets_dir() / case.file)
    if case.file == "fractal_r.distance_matrix":
        # Its text rounds entries (asymmetries of 1e-5): every engine gets the same symmetric lower triangle.
        L = np.tril(X, -1)
        X = L + L.T
    return X


def _neighbour_matrix(X: Any, threshold: float) -> Any:
    """Pairs within the threshold as a sparse matrix, for peers that would otherwise build an n x n matrix
    (part of their timed work: a user of theirs must do it)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(X)
    return tree.sparse_distance_matrix(tree, threshold, output_type="coo_matrix")


def _compute(engine: str, case: Case, X: Any, stats_out: dict[str, Any]) -> list[Any]:
    import numpy as np

    thresh = np.inf if case.threshold is None else case.threshold
    # Peers build a dense n x n matrix from points; beyond 20000 points that is 3+ GB, so they get neighbour lists.
    sparse_input = not case.distance_matrix and case.threshold is not None and len(X) > 20000
    if engine in OURS:
        from tda_ray.engine import vietoris_rips

        res = vietoris_rips(
            X,
            maxdim=case.maxdim,
            threshold=case.threshold,
            coeff=case.coeff,
            collapse_edges=False if engine == "ours1nc" else "auto",
            distance_matrix=case.distance_matrix,
            n_threads=2 if engine == "ours2" else 1,
            cocycles=engine == "ours1cc",
        )
        stats_out.update(res.stats)
        return list(res.diagrams)
    if engine in ("ripser", "ripsercc"):
        from ripser import ripser

        cocycles = engine == "ripsercc"
        if sparse_input:
            return list(
                ripser(
                    _neighbour_matrix(X, thresh),
                    maxdim=case.maxdim,
                    thresh=thresh,
                    coeff=case.coeff,
                    distance_matrix=True,
                    do_cocycles=cocycles,
                )["dgms"]
            )
        return list(
            ripser(
                X,
                maxdim=case.maxdim,
                thresh=thresh,
                coeff=case.coeff,
                distance_matrix=case.distance_matrix,
                do_cocycles=cocycles,
            )["dgms"]
        )
    if engine.startswith("gph"):
        from gph import ripser_parallel

        data = _neighbour_matrix(X, thresh) if sparse_input else X
        metric = "precomputed" if case.distance_matrix or sparse_input else "euclidean"
        res = ripser_parallel(
            data,
            maxdim=case.maxdim,
            thresh=thresh,
            coeff=case.coeff,
            metric=metric,
            n_threads=1 if engine.startswith("gph1") else 2,
            collapse_edges=engine.endswith("c"),
        )
        return list(res["dgms"])
    if engine in ("gudhi", "gudhic"):
        import gudhi

        kwargs: dict[str, Any] = {"distance_matrix" if case.distance_matrix else "points": X}
        if case.threshold is not None:
            kwargs["max_edge_length"] = case.threshold
        rips = gudhi.RipsComplex(**kwargs)
        if engine == "gudhic":
            # GUDHI's documented route: the graph, its edge collapse, then the flag expansion.
            st = rips.create_simplex_tree(max_dimension=1)
            st.collapse_edges()
            st.expansion(case.maxdim + 1)
        else:
            st = rips.create_simplex_tree(max_dimension=case.maxdim + 1)
        st.compute_persistence(homology_coeff_field=case.coeff, persistence_dim_max=True)
        return [st.persistence_intervals_in_dimension(k) for k in range(case.maxdim + 1)]
    raise ValueError(f"unknown engine {engine!r}")


def _summary(diagrams: list[Any], maxdim: int) -> list[list[int]]:
    """[finite pairs of positive length, essential classes] per dimension, to cross-check engines."""
    import numpy as np

    out = []
    for k in range(maxdim + 1):
        d = np.asarray(diagrams[k], dtype=np.float64).reshape(-1, 2) if k < len(diagrams) else np.zeros((0, 2))
        finite = np.isfinite(d[:, 1])
        out.append([int(np.count_nonzero(finite & (d[:, 1] > d[:, 0]))), int(np.count_nonzero(~finite))])
    return out


def child_main(engine: str, case_name: str, mem_cap_gib: float) -> None:
    if mem_cap_gib > 0:
        # The machine is shared: a runaway peer fails with MemoryError instead of paging everyone out.
        cap = int(mem_cap_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    case = CASES[case_name]
    # Import the engine's modules before the baseline so their RSS counts as interpreter, not computation.
    if engine in OURS:
        import tda_ray.engine  # noqa: F401
    elif engine.startswith("ripser"):
        import ripser  # noqa: F401
    elif engine.startswith("gph"):
        import gph  # noqa: F401
    elif engine.startswith("gudhi"):
        import gudhi  # noqa: F401
    if not case.distance_matrix and case.threshold is not None:
        import scipy.spatial  # noqa: F401

    t0 = time.perf_counter()
    X = _load(case)
    load_s = time.perf_counter() - t0
    load_peak = _status_kib("VmHWM")
    baseline = _status_kib("VmRSS")
    reset = _reset_peak_rss()
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    diagrams = _compute(engine, case, X, stats)
    compute_s = time.perf_counter() - t0
    compute_peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "load_s": load_s,
        "compute_s": compute_s,
        "peak_rss_kib": max(load_peak, compute_peak),
        "delta_rss_kib": max(0, compute_peak - baseline),
        "baseline_rss_kib": baseline,
        "summary": _summary(diagrams, case.maxdim),
        "stats": stats,
    }
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent side


@dataclass
class Measurement:
    engine: str
    case: str
    status: str  # ok | timeout | error
    compute_s: float = float("nan")
    load_s: float = float("nan")
    peak_rss_kib: int = 0
    delta_rss_kib: int = 0
    summary: list[list[int]] = field(default_factory=list)
    detail: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


def run_child(engine: str, case: str, timeout: float, mem_cap_gib: float) -> Measurement:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", engine, case, "--mem-cap-gib", str(mem_cap_gib)]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    # Own session: a timeout kills the child's whole group (threads, helpers), nothing else.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Measurement(engine, case, "timeout", detail=f"> {timeout:g} s")
    for line in out.splitlines():
        if line.startswith("RESULT "):
            data = json.loads(line[len("RESULT ") :])
            return Measurement(
                engine,
                case,
                "ok",
                compute_s=data["compute_s"],
                load_s=data["load_s"],
                peak_rss_kib=data["peak_rss_kib"],
                delta_rss_kib=data["delta_rss_kib"],
                summary=data["summary"],
                stats=data.get("stats", {}),
            )
    status, detail = classify_failure(proc.returncode, err)
    return Measurement(engine, case, status, detail=detail)


def classify_failure(returncode: int, stderr: str) -> tuple[str, str]:
    """(status, detail) of a child that printed no result: running out of memory (the address-space cap) is
    reported as such, anything else as an error with the last line of stderr."""
    tail = (stderr.strip().splitlines() or [f"exit status {returncode}"])[-1]
    if any(sign in stderr for sign in ("MemoryError", "bad_alloc", "cannot allocate memory")):
        return "out of memory", tail[:200]
    if returncode < 0:
        return "error", f"killed by signal {-returncode}" + (f" ({tail[:150]})" if stderr.strip() else "")
    return "error", tail[:200]


@dataclass
class Aggregate:
    status: str
    time_s: float = float("nan")
    load_s: float = float("nan")
    peak_mib: float = float("nan")
    delta_mib: float = float("nan")
    runs: int = 0
    summary: list[list[int]] = field(default_factory=list)
    detail: str = ""
    stats: dict[str, Any] = field(default_factory=dict)  # of the median run


def aggregate(ms: list[Measurement]) -> Aggregate:
    ok = [m for m in ms if m.status == "ok"]
    if not ok or len(ok) < len(ms):
        bad = next(m for m in ms if m.status != "ok")
        return Aggregate(bad.status, runs=len(ok), detail=bad.detail)
    median_run = sorted(ok, key=lambda m: m.compute_s)[(len(ok) - 1) // 2]
    return Aggregate(
        "ok",
        stats=median_run.stats,
        time_s=statistics.median(m.compute_s for m in ok),
        load_s=statistics.median(m.load_s for m in ok),
        peak_mib=statistics.median(m.peak_rss_kib for m in ok) / 1024,
        delta_mib=statistics.median(m.delta_rss_kib for m in ok) / 1024,
        runs=len(ok),
        summary=ok[0].summary,
    )


def machine_info() -> dict[str, str]:
    model = "unknown"
    mem = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
        with open("/proc/meminfo") as fh:
            kib = next((int(ln.split()[1]) for ln in fh if ln.startswith("MemTotal")), 0)
            mem = f"{kib / (1 << 20):.1f} GiB"
    except OSError:
        pass
    versions = []
    for mod in ("tda_ray", "ripser", "gph", "gudhi"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # an absent peer is reported, not fatal
            versions.append(f"{mod} absent")
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "cpp_core"], capture_output=True, text=True, check=True
        ).stdout.strip()
        commit += " (cpp_core modified)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "versions": ", ".join(versions),
        "commit": commit,
    }


def fmt_time(a: Aggregate) -> str:
    return f"{a.time_s:.2f}" if a.status == "ok" else a.status


def fmt_mem(a: Aggregate) -> str:
    return f"{a.peak_mib:.0f} / {a.delta_mib:.0f}" if a.status == "ok" else a.status


def ratio(num: float, den: float) -> str:
    if not (num == num and den == den) or den <= 0:  # nan-safe
        return "–"
    return f"{num / den:.2f}"


def _time_table(results: dict[tuple[str, str], Aggregate], cases: list[str], engines: list[str]) -> list[str]:
    peers = [e for e in engines if e not in OURS]
    single = [e for e in peers if e not in MULTI_THREAD]
    two = [e for e in peers if e in MULTI_THREAD]

    def best(c: str, among: list[str]) -> float:
        return min((results[(e, c)].time_s for e in among if results[(e, c)].status == "ok"), default=float("nan"))

    columns: list[tuple[str, Any]] = []
    if "ours1" in engines and single:
        columns.append(("ours1 / best 1-thread peer", lambda c: ratio(results[("ours1", c)].time_s, best(c, single))))
    if "ours2" in engines and peers:
        columns.append(("ours2 / best peer", lambda c: ratio(results[("ours2", c)].time_s, best(c, peers))))
    if "ours2" in engines and two:
        columns.append(("ours2 / best 2-thread giotto-ph", lambda c: ratio(results[("ours2", c)].time_s, best(c, two))))
    if "ours1" in engines and "ours2" in engines:
        columns.append(("ours2 / ours1", lambda c: ratio(results[("ours2", c)].time_s, results[("ours1", c)].time_s)))
    head = ["case", *engines, *(name for name, _ in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        row = [c] + [fmt_time(results[(e, c)]) for e in engines] + [cell(c) for _, cell in columns]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _memory_table(results: dict[tuple[str, str], Aggregate], cases: list[str], engines: list[str]) -> list[str]:
    head = ["case", *engines]
    if "ripser" in engines:
        head += [f"{e} / ripser.py (growth)" for e in engines if e in OURS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        row = [c] + [fmt_mem(results[(e, c)]) for e in engines]
        if "ripser" in engines:
            rp = results[("ripser", c)]
            row += [ratio(results[(e, c)].delta_mib, rp.delta_mib) for e in engines if e in OURS]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _stats_row(c: str, e: str, st: dict[str, Any]) -> str:
    dims = st["dimensions"]
    top = dims[-1] if len(dims) > 1 else dims[0]
    edges = f"{st['edges']}" + (f" → {st['edges_after_collapse']}" if st["collapsed"] else "")
    cells = [
        c,
        e,
        edges,
        f"{st['distances_s']:.2f}",
        f"{st['collapse_s']:.2f}",
        f"{st['dim0_s']:.2f}",
        " / ".join(f"{d['assembly_s']:.2f}" for d in dims[1:]) or "–",
        " / ".join(f"{d['reduction_s']:.2f}" for d in dims[1:]) or "–",
        f"{top['simplices']}",
        f"{top['cleared']} / {top['apparent']} / {top['emergent']} / {top['reduced']}",
        f"{sum(d['column_additions'] for d in dims)}",
        f"{sum(d['heap_pushes'] for d in dims)}",
        f"{sum(d['rereduced'] for d in dims)}",
    ]
    return "| " + " | ".join(cells) + " |"


def _stats_table(results: dict[tuple[str, str], Aggregate], cases: list[str], engines: list[str]) -> list[str]:
    ours = [e for e in engines if e in OURS]
    rows = [
        _stats_row(c, e, results[(e, c)].stats) for c in cases for e in ours if results[(e, c)].stats.get("dimensions")
    ]
    if not rows:
        return []
    head = [
        "case",
        "engine",
        "edges (→ after collapse)",
        "distances s",
        "collapse s",
        "dim 0 s",
        "assembly s (dim 1 / 2 / ...)",
        "reduction s (dim 1 / 2 / ...)",
        "top-dim simplices",
        "cleared / apparent / emergent / reduced",
        "column additions",
        "heap pushes",
        "re-reduced",
    ]
    return [
        "",
        "Where our time went (the engine's counters, `PersistenceResult.stats`, of the median run): phase wall "
        "times in seconds; the top dimension's simplices and what became of them; the reduction's work summed "
        "over dimensions (re-reduced: columns whose pivot an earlier column took, with two threads).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *rows,
    ]


def _notes(results: dict[tuple[str, str], Aggregate], cases: list[str], engines: list[str]) -> list[str]:
    notes = []
    for c in cases:
        ref = results.get((engines[0], c))
        for e in engines:
            a = results[(e, c)]
            if a.status in ("error", "out of memory"):
                notes.append(f"- {c} / {e}: {a.status}: {a.detail}")
            elif ref is not None and ref.status == "ok" and a.status == "ok" and a.summary != ref.summary:
                notes.append(
                    f"- {c}: {e} found {a.summary} [finite positive-length pairs, essential] per dimension, "
                    f"{engines[0]} {ref.summary}"
                )
    return ["", "Notes:", *notes] if notes else []


def render(
    results: dict[tuple[str, str], Aggregate],
    cases: list[str],
    engines: list[str],
    info: dict[str, str],
    args: argparse.Namespace,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    lines = [
        f"### Engine run {info['date']}",
        "",
        f"Command: `{args.command_line}`",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, Python {info['python']}; "
        f"{info['versions']}; commit {info['commit']}. Load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.2f}' for x in load[0])}, at end {'/'.join(f'{x:.2f}' for x in load[1])}.",
        "",
        f"Compute wall time in seconds, median of {args.repeats} (data loaded before the timer; a fresh process per "
        f"run; timeout {args.timeout:g} s). Engines: " + ", ".join(f"`{e}` = {ENGINES[e]}" for e in engines) + ".",
        "",
        *_time_table(results, cases, engines),
        "",
        "Memory in MiB: peak RSS of the process / growth over the RSS after loading the data (the computation's "
        "own memory).",
        "",
        *_memory_table(results, cases, engines),
        *_stats_table(results, cases, engines),
        *_notes(results, cases, engines),
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Adds the run to the engine section of BENCHMARKS.md (created with a header when absent)."""
    header = (
        "## Engine: Vietoris–Rips persistence, tda-ray vs ripser.py / giotto-ph / GUDHI\n\n"
        "Produced by `benchmarks/run_suite.py --write` (newest run last). Data sets and parameters: "
        "`../shared/README.md`. The machine is shared, so compare engines within one run, as ratios.\n\n"
    )
    if BENCHMARKS_MD.exists():
        doc = BENCHMARKS_MD.read_text(encoding="utf-8")
    else:
        doc = "# Benchmarks\n\nMeasurements of tda-ray; each component has its own section.\n"
    if SECTION_START in doc and SECTION_END in doc:
        i = doc.index(SECTION_END)
        doc = doc[:i] + text + "\n" + doc[i:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + SECTION_START + "\n" + header + text + "\n" + SECTION_END + "\n"
    BENCHMARKS_MD.write_text(doc, encoding="utf-8")


def rerender(args: argparse.Namespace) -> int:
    saved = json.loads(args.from_json.read_text(encoding="utf-8"))
    run = saved["run"]
    ns = argparse.Namespace(command_line=run["command_line"], repeats=run["repeats"], timeout=run["timeout"])
    runs: dict[tuple[str, str], list[Measurement]] = {(e, c): [] for e in run["engines"] for c in run["cases"]}
    for m in saved["runs"]:
        runs[(m["engine"], m["case"])].append(Measurement(**m))
    results = {k: aggregate(v) for k, v in runs.items()}
    load = (tuple(run["load"][0]), tuple(run["load"][1]))
    text = render(results, run["cases"], run["engines"], saved["info"], ns, load)
    print(text)
    if args.write:
        write_section(text)
    return 0


def parse_list(value: str, known: dict[str, Any], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown or value!r}; choose from {', '.join(known)}")
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cases",
        type=lambda v: parse_list(v, CASES, "case"),
        default=DEFAULT_CASES,
        help=f"comma-separated; default: all but {', '.join(LARGE)}; known: {', '.join(CASES)}",
    )
    p.add_argument(
        "--engines",
        type=lambda v: parse_list(v, ENGINES, "engine"),
        default=DEFAULT_ENGINES,
        help=f"comma-separated; default {','.join(DEFAULT_ENGINES)}; known: {', '.join(ENGINES)}",
    )
    p.add_argument("--gudhi", action="store_true", help="add GUDHI, collapse off and on (4-60x slower than the others)")
    p.add_argument("--repeats", type=int, default=3, help="runs per engine and case; the median is reported")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per run; slower runs are reported as timeout")
    p.add_argument("--mem-cap-gib", type=float, default=12.0, help="address-space cap per run (0: none)")
    p.add_argument("--write", action="store_true", help="also add the tables to BENCHMARKS.md")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    p.add_argument("--from-json", type=Path, help="render (and --write) a run saved with --json instead of running")
    p.add_argument("--child", nargs=2, metavar=("ENGINE", "CASE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child_main(args.child[0], args.child[1], args.mem_cap_gib)
        return 0
    if args.from_json:
        return rerender(args)
    if args.repeats < 1 or args.timeout <= 0:
        p.error("--repeats must be >= 1 and --timeout > 0")
    engines: list[str] = list(args.engines)
    if args.gudhi:
        engines += [e for e in ("gudhi", "gudhic") if e not in engines]
    missing = [c for c in args.cases if not (datasets_dir() / CASES[c].file).exists()]
    if missing:
        p.error(f"data sets absent from {datasets_dir()}: {', '.join(missing)} (set TDA_DATASETS)")
    args.command_line = "python benchmarks/run_suite.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )

    info = machine_info()
    load_start = os.getloadavg()
    print(f"# {info['date']}, load average {load_start}, cases {args.cases}, engines {engines}", file=sys.stderr)
    runs: dict[tuple[str, str], list[Measurement]] = {(e, c): [] for e in engines for c in args.cases}
    for r in range(args.repeats):
        for ci, c in enumerate(args.cases):
            shift = (r + ci) % len(engines)
            for e in engines[shift:] + engines[:shift]:
                done = runs[(e, c)]
                if done and done[-1].status != "ok":
                    continue  # a timeout or failure does not get better on a rerun
                m = run_child(e, c, args.timeout, args.mem_cap_gib)
                done.append(m)
                shown = f"{m.compute_s:.2f} s, peak {m.peak_rss_kib / 1024:.0f} MiB" if m.status == "ok" else m.status
                print(f"[{r + 1}/{args.repeats}] {c:22s} {e:7s} {shown} {m.detail}", file=sys.stderr, flush=True)
    load_end = os.getloadavg()
    results = {k: aggregate(v) for k, v in runs.items()}
    text = render(results, args.cases, engines, info, args, (load_start, load_end))
    print(text)
    if args.json:
        saved = {
            "info": info,
            "run": {
                "command_line": args.command_line,
                "repeats": args.repeats,
                "timeout": args.timeout,
                "cases": args.cases,
                "engines": engines,
                "load": [load_start, load_end],
            },
            "runs": [asdict(m) for ms in runs.values() for m in ms],
        }
        args.json.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
