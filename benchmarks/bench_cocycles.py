"""What representative cocycles cost: tda-ray with and without them, beside ripser.py with and without them.

Each (engine, case, repeat) runs in a fresh interpreter through ``run_suite.py``'s child (data loaded before
the timer, peak RSS its own), engines interleaved per repeat; medians are reported as ratios.

    python benchmarks/bench_cocycles.py                      # Markdown to stdout
    python benchmarks/bench_cocycles.py --repeats 5 --write  # also add the run to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
from pathlib import Path

from run_suite import BENCHMARKS_MD, CASES, ENGINES, Aggregate, Measurement, aggregate, machine_info, run_child

ENGINES_HERE = ["ours1", "ours1nc", "ours1cc", "ripser", "ripsercc"]
DEFAULT_CASES = ["sphere_3_192", "o3_1024", "dragon_2000", "klein_bottle_400", "fractal_r", "random_50_16"]
SECTION_START = "<!-- cocycle-benchmarks:start -->"
SECTION_END = "<!-- cocycle-benchmarks:end -->"


def _ratio(a: Aggregate, b: Aggregate) -> str:
    if a.status != "ok" or b.status != "ok" or b.time_s <= 0:
        return "–"
    return f"{a.time_s / b.time_s:.2f}"


def _cell(a: Aggregate) -> str:
    return f"{a.time_s:.2f} s / {a.peak_mib:.0f} MiB" if a.status == "ok" else f"{a.status} {a.detail}"


def render(results: dict[tuple[str, str], Aggregate], cases: list[str], repeats: int, command: str) -> str:
    info = machine_info()
    lines = [
        f"### Cocycles run {info['date']}",
        "",
        f"Command: `{command}`. Machine: {info['nproc']} CPUs, {info['memory']} RAM; {info['versions']}; commit "
        f"{info['commit']}. Compute time / peak RSS, median of {repeats}; engines: "
        + ", ".join(f"`{e}` = {ENGINES[e]}" for e in ENGINES_HERE)
        + ". With cocycles ours does not collapse edges, so `ours1nc` is the same complex without them.",
        "",
        "| case | " + " | ".join(ENGINES_HERE) + " | ours1cc / ours1 | ours1cc / ours1nc | ours1cc / ripsercc |",
        "|---|" + "---|" * (len(ENGINES_HERE) + 3),
    ]
    for c in cases:
        r = {e: results[(e, c)] for e in ENGINES_HERE}
        cells = [_cell(r[e]) for e in ENGINES_HERE]
        ratios = [_ratio(r["ours1cc"], r[e]) for e in ("ours1", "ours1nc", "ripsercc")]
        lines.append(f"| {c} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    doc = BENCHMARKS_MD.read_text(encoding="utf-8")
    if SECTION_START not in doc:
        header = (
            "## Engine: representative cocycles\n\nProduced by `benchmarks/bench_cocycles.py --write` (newest run "
            "last): the cost of `cocycles=True` against our own run without it and against ripser.py's "
            "`do_cocycles=True`.\n\n"
        )
        doc = doc.rstrip("\n") + "\n\n" + SECTION_START + "\n" + header + SECTION_END + "\n"
    i = doc.index(SECTION_END)
    BENCHMARKS_MD.write_text(doc[:i] + text + "\n" + doc[i:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated cases of run_suite.py")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--mem-cap-gib", type=float, default=16.0)
    p.add_argument("--write", action="store_true", help="add the run to BENCHMARKS.md")
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    runs: dict[tuple[str, str], list[Measurement]] = {(e, c): [] for e in ENGINES_HERE for c in cases}
    for rep in range(args.repeats):
        for c in cases:
            order = ENGINES_HERE[rep % len(ENGINES_HERE) :] + ENGINES_HERE[: rep % len(ENGINES_HERE)]
            for e in order:
                m = run_child(e, c, args.timeout, args.mem_cap_gib)
                runs[(e, c)].append(m)
                print(f"[{dt.datetime.now():%H:%M:%S}] {e:9s} {c:18s} {m.status} {m.compute_s:.3f}s", file=sys.stderr)
    results = {k: aggregate(v) for k, v in runs.items()}
    for c in cases:  # same diagrams with and without cocycles, and as ripser.py's
        summaries = {results[(e, c)].summary.__repr__() for e in ENGINES_HERE if results[(e, c)].status == "ok"}
        if len(summaries) > 1:
            print(f"warning: {c}: the engines' diagram summaries differ", file=sys.stderr)
    command = "python benchmarks/" + " ".join(shlex.quote(a) for a in [Path(__file__).name, *(argv or sys.argv[1:])])
    text = render(results, cases, args.repeats, command)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.exit(main())
