"""HTTP service benchmark: what the Ray Serve + jobs + store path costs on top of the engine.

Starts the real service (`tda-ray serve`: local Ray with 2 CPUs, Serve, SQLite, local storage) in a temp
folder and measures, from an HTTP client on the same machine:

1. submit -> result latency (POST /v1/jobs on an uploaded cloud, long-poll GET /v1/jobs/{id}?wait, GET
   /result) for a 100-point cloud at maxdim 1, against calling the engine in-process;
2. the same for a job of about 1 s of engine time (cloud size calibrated here);
3. throughput of 200 small jobs (100 points, maxdim 1) submitted at once by 8 client threads, on 2 cores.

    .venv/bin/python benchmarks/bench_service.py                 # prints a Markdown table
    .venv/bin/python benchmarks/bench_service.py --json out.json --update-benchmarks

``--update-benchmarks`` rewrites the "HTTP service" section of BENCHMARKS.md between its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_common import load_module, pct, replace_section

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
BEGIN, END = "<!-- service-bench:begin -->", "<!-- service-bench:end -->"


def _harness() -> Any:
    return load_module("tda_service_harness", "tests/support/service.py")


def cloud(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


def upload(http: httpx.Client, X: np.ndarray) -> str:
    r = http.post("/v1/pointclouds", json={"points": X.tolist()})
    r.raise_for_status()
    return str(r.json()["id"])


def run_job(http: httpx.Client, pc_id: str, maxdim: int) -> dict[str, Any]:
    r = http.post("/v1/jobs", json={"pointcloud_id": pc_id, "params": {"maxdim": maxdim}})
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        job = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
    res = http.get(f"/v1/jobs/{job_id}/result")
    res.raise_for_status()
    out: dict[str, Any] = res.json()
    return out


def engine_times(X: np.ndarray, maxdim: int, reps: int) -> list[float]:
    from tda_ray.engine import vietoris_rips

    out = []
    for _ in range(reps):
        t = time.perf_counter()
        vietoris_rips(X, maxdim=maxdim)
        out.append(time.perf_counter() - t)
    return out


def latency(http: httpx.Client, X: np.ndarray, maxdim: int, reps: int) -> dict[str, Any]:
    """HTTP runs interleaved with direct engine runs, so both see the same (shared, noisy) machine."""
    pc_id = upload(http, X)
    run_job(http, pc_id, maxdim)  # warm: worker process, imports, caches
    http_s, eng, overhead = [], [], []
    for _ in range(reps):
        eng.extend(engine_times(X, maxdim, 1))
        t = time.perf_counter()
        res = run_job(http, pc_id, maxdim)
        http_s.append(time.perf_counter() - t)
        overhead.append(http_s[-1] - float(res["elapsed_s"]))  # everything but the engine inside the task
    return {
        "n_points": int(X.shape[0]),
        "maxdim": maxdim,
        "reps": reps,
        "http_p50_s": pct(http_s, 0.5),
        "http_p95_s": pct(http_s, 0.95),
        "engine_p50_s": pct(eng, 0.5),
        "engine_p95_s": pct(eng, 0.95),
        "overhead_p50_s": pct(overhead, 0.5),
        "overhead_p95_s": pct(overhead, 0.95),
        "ratio_p50": pct(http_s, 0.5) / pct(eng, 0.5),
    }


def calibrate_one_second(target: float = 1.0) -> tuple[np.ndarray, float]:
    """A cloud in R^3 whose maxdim-1 computation takes about ``target`` seconds here."""
    n = 1200
    for _ in range(6):
        X = cloud(n, seed=7)
        t = statistics.median(engine_times(X, 1, 2))
        if 0.8 * target <= t <= 1.25 * target:
            return X, t
        n = int(n * (target / t) ** (1 / 2.3))  # runtime grows about as n^2.3 here
    return X, t


def throughput(base_url: str, n_jobs: int, threads: int) -> dict[str, Any]:
    clouds = [cloud(100, seed=1000 + i) for i in range(n_jobs)]
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "c"):
            local.c = httpx.Client(base_url=base_url, timeout=120)
        return local.c  # type: ignore[no-any-return]

    with ThreadPoolExecutor(threads) as pool:
        ids = list(pool.map(lambda X: upload(client(), X), clouds))
        t0 = time.perf_counter()
        results = list(pool.map(lambda pc: run_job(client(), pc, 1), ids))
        wall = time.perf_counter() - t0
    assert len(results) == n_jobs
    eng = engine_times(clouds[0], 1, 50)
    return {
        "jobs": n_jobs,
        "client_threads": threads,
        "wall_s": wall,
        "jobs_per_s": n_jobs / wall,
        "engine_p50_s": pct(eng, 0.5),
        "engine_only_jobs_per_s_2_cores": 2 / pct(eng, 0.5),
    }


def markdown(r: dict[str, Any]) -> str:
    s, m, t = r["small"], r["medium"], r["throughput"]

    def row(name: str, x: dict[str, Any]) -> str:
        return (
            f"| {name} | {x['n_points']} | {x['reps']} | {x['http_p50_s'] * 1e3:.0f} | {x['http_p95_s'] * 1e3:.0f} "
            f"| {x['engine_p50_s'] * 1e3:.1f} | {x['engine_p95_s'] * 1e3:.1f} | {x['overhead_p50_s'] * 1e3:.0f} "
            f"| {x['overhead_p95_s'] * 1e3:.0f} | {x['ratio_p50']:.2f}x |"
        )

    return "\n".join(
        [
            f"Measured {r['date']} on {r['machine']} ({r['cpus']} CPUs; the service runs local Ray with "
            "`num_cpus=2`, SQLite and a local storage folder; the client runs on the same machine). "
            "`.venv/bin/python benchmarks/bench_service.py` (`make service-bench`).",
            "",
            "Latency of one job at a time, submit -> result: POST /v1/jobs on an uploaded cloud, long-poll "
            "GET /v1/jobs/{id}?wait=30 until finished, GET /v1/jobs/{id}/result. Engine = `vietoris_rips` "
            "called in-process on the same cloud (points in R^3, maxdim 1), alternating with the HTTP runs. "
            "Overhead = HTTP time minus the engine time measured inside the job's task, per run. "
            f"Load average at the start: {r['loadavg']} (the machine is shared).",
            "",
            "| job | points | runs | HTTP p50 ms | HTTP p95 ms | engine p50 ms | engine p95 ms "
            "| overhead p50 ms | overhead p95 ms | HTTP p50 / engine p50 |",
            "|---|---|---|---|---|---|---|---|---|---|",
            row("small", s),
            row("~1 s", m),
            "",
            f"Throughput: {t['jobs']} small jobs (100 points, maxdim 1) submitted at once by "
            f"{t['client_threads']} client threads, 2 job slots (2 cores): **{t['jobs_per_s']:.1f} jobs/s** "
            f"({t['wall_s']:.1f} s wall, first submit to last result). The engine alone on 2 cores would do "
            f"{t['engine_only_jobs_per_s_2_cores']:.0f} jobs/s ({t['engine_p50_s'] * 1e3:.1f} ms each): small "
            "jobs are bound by the per-job service path (HTTP, store writes, one Ray task each), not by compute.",
        ]
    )


def update_benchmarks_md(text: str) -> None:
    replace_section(text, BEGIN, END, heading="## HTTP service (Ray Serve)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=50, help="runs of the small job (default 50)")
    ap.add_argument("--medium-reps", type=int, default=10, help="runs of the ~1 s job (default 10)")
    ap.add_argument("--jobs", type=int, default=200, help="jobs in the throughput run (default 200)")
    ap.add_argument("--threads", type=int, default=8, help="client threads in the throughput run (default 8)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    ap.add_argument("--update-benchmarks", action="store_true", help="rewrite the section in BENCHMARKS.md")
    args = ap.parse_args()

    load_at_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    h = _harness()
    X_medium, t_medium = calibrate_one_second()
    print(f"~1 s job: {X_medium.shape[0]} points (engine {t_medium:.2f} s)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tda-bench-service-") as tmp:
        svc = h.ServiceProcess(Path(tmp), num_cpus=2)
        svc.start()
        try:
            with svc.client(timeout=120) as http:
                small = latency(http, cloud(100, seed=1), 1, args.reps)
                print(f"small: {small}", file=sys.stderr)
                medium = latency(http, X_medium, 1, args.medium_reps)
                print(f"medium: {medium}", file=sys.stderr)
            tput = throughput(svc.base_url, args.jobs, args.threads)
            print(f"throughput: {tput}", file=sys.stderr)
        finally:
            svc.stop()
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "loadavg": load_at_start,
        "small": small,
        "medium": medium,
        "throughput": tput,
    }
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.update_benchmarks:
        update_benchmarks_md(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
