"""Scale-out benchmarks: a landmark job on a 1,000,000-point cloud, and 10,000 small clouds by `tda-ray batch`.

    python benchmarks/bench_scale.py                       # both, default sizes, Markdown to stdout
    python benchmarks/bench_scale.py landmarks --points 200000 --landmarks 500
    python benchmarks/bench_scale.py batch --clouds 2000
    python benchmarks/bench_scale.py --json out.json --write   # also replace the section in BENCHMARKS.md
    python benchmarks/bench_scale.py service --write           # the same landmark job through the HTTP service

landmarks: the cloud (a noisy torus in R^3) is written as .npy by a separate process, then a fresh process
runs the whole job — Ray start, Ray Data read, farthest-point selection on shard actors, Rips on the landmarks,
Ray shutdown — while a sampler records the resident memory of that process and of every Ray process it
started.  Peak memory is reported per process (driver, each shard, the largest other Ray process).

service: the 1,000,000-point .npy streamed to a running `tda-ray serve` with the Python client, then a job
with ``"landmarks": 1000``; upload (stream + block-wise check and re-encode) and job (queued -> succeeded)
timed separately, peak resident memory sampled for every process of the service.

batch: 10,000 small clouds as .npy files; a plain Python loop (np.load + ripser.ripser, one process) against
`tda-ray batch` on a local Ray with all cores (end to end as a CLI process, Ray start included), and the same
batch again on an already running Ray.  A sample of the outputs is checked against ripser.py's diagrams.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import load_module, replace_section

SECTION_START = "<!-- scale-bench:start -->"
SECTION_END = "<!-- scale-bench:end -->"
SERVICE_START = "<!-- scale-service-bench:start -->"
SERVICE_END = "<!-- scale-service-bench:end -->"
MIB = 1024 * 1024


def torus(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    X = np.c_[(2 + np.cos(v)) * np.cos(u), (2 + np.cos(v)) * np.sin(u), np.sin(v)]
    out: np.ndarray = X + rng.normal(scale=0.02, size=X.shape)
    return out


class RssSampler(threading.Thread):
    """Peak RSS of this process's descendants (the local Ray it started), sampled every `interval` s."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.wait(self.interval):
            for p in me.children(recursive=True):
                try:
                    rss = p.memory_info().rss
                    name = " ".join(p.cmdline()[:1]) or p.name()
                    title = p.name() if "ray::" not in name else name
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                old = self.peaks.get(p.pid)
                if old is None or rss > old[0]:
                    self.peaks[p.pid] = (rss, os.path.basename(title)[:60])


# --------------------------------------------------------------------------- landmarks


def _landmark_child(path: str, n_landmarks: int, maxdim: int, num_cpus: int) -> dict[str, Any]:
    """Runs in a fresh process: the whole landmark job, timed, with per-process peak memory."""
    import ray

    from tda_ray.distributed.landmarks import landmark_rips

    sampler = RssSampler()
    sampler.start()
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    t_ray = time.perf_counter() - t0
    res = landmark_rips(path, n_landmarks, maxdim=maxdim)
    ray.shutdown()
    total = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    info = res.landmark_info()
    others = sorted((v for v in sampler.peaks.values() if "_Shard" not in v[1]), reverse=True)
    shard_peaks = list(res.sample.shard_peak_rss)
    return {
        "points": res.sample.n_points,
        "landmarks": res.n_landmarks,
        "maxdim": maxdim,
        "eps": res.eps,
        "bottleneck_bound": res.bottleneck_bound,
        "bars": [len(d) for d in res.diagrams],
        "rounds": info.rounds,
        "workers": info.workers,
        "ray_start_s": t_ray,
        "read_s": info.read_s,
        "select_s": info.select_s,
        "rips_s": info.rips_s,
        "total_s": total,
        "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "shard_peak_mib": [p / MIB for p in shard_peaks],
        "largest_other_ray_processes_mib": [(name, rss / MIB) for rss, name in others[:4]],
    }


def bench_landmarks(points: int, n_landmarks: int, maxdim: int, num_cpus: int, workdir: Path) -> dict[str, Any]:
    path = workdir / f"torus_{points}.npy"
    if not path.exists():  # written by another process so its memory does not count here
        code = "import sys, numpy as np; sys.path.insert(0, sys.argv[3]); from bench_scale import torus; "
        code += "np.save(sys.argv[1], torus(int(sys.argv[2])))"
        subprocess.run([sys.executable, "-c", code, str(path), str(points), str(Path(__file__).parent)], check=True)
    out = subprocess.run(
        [sys.executable, __file__, "_landmark_child", str(path), str(n_landmarks), str(maxdim), str(num_cpus)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["file_mib"] = path.stat().st_size / MIB
    return result


def _process_tree_sampler(root_pid: int, stop: threading.Event, peaks: dict[int, tuple[int, int, str]]) -> None:
    """Peak (private, resident) bytes per process of the tree.  Private (USS) leaves out shared pages: Ray's
    object store is shared memory, and every process that reads an object from it has those pages resident."""
    import psutil

    root = psutil.Process(root_pid)
    while not stop.wait(0.2):
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                mem = p.memory_full_info()
                title = " ".join(p.cmdline()[:1]) or p.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            old = peaks.get(p.pid, (0, 0, ""))
            peaks[p.pid] = (max(old[0], mem.uss), max(old[1], mem.rss), os.path.basename(title)[:60])


def bench_service_landmarks(
    points: int, n_landmarks: int, maxdim: int, num_cpus: int, workdir: Path, part_mib: float = 4.0
) -> dict[str, Any]:
    from tda_ray.client import Client

    harness = load_module("tda_service_harness", "tests/support/service.py")
    path = workdir / f"torus_{points}.npy"
    if not path.exists():
        np.save(path, torus(points))
    svc = harness.ServiceProcess(workdir / "service", num_cpus=num_cpus)
    svc.start()
    peaks: dict[int, tuple[int, int, str]] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_process_tree_sampler, args=(svc.proc.pid, stop, peaks), daemon=True)
    sampler.start()
    try:
        with Client(svc.base_url, timeout=600, part_size=int(part_mib * MIB)) as c:
            t0 = time.perf_counter()
            pc = c.upload_file(path)
            upload_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            job = c.submit(pc["id"], maxdim=maxdim, landmarks=n_landmarks)
            c.wait(job["id"], timeout=1800)
            job_s = time.perf_counter() - t1
            res = c.result(job["id"])
    finally:
        stop.set()
        sampler.join()
        svc.stop()
    lm = res.landmarks or {}
    top = sorted(peaks.values(), reverse=True)
    return {
        "points": pc["n_points"],
        "file_mib": path.stat().st_size / MIB,
        "landmarks": lm.get("count"),
        "maxdim": maxdim,
        "upload_s": upload_s,
        "job_s": job_s,
        "eps": lm.get("eps"),
        "bottleneck_bound": lm.get("bottleneck_bound"),
        "read_s": lm.get("read_s"),
        "select_s": lm.get("select_s"),
        "rips_s": lm.get("rips_s"),
        "rounds": lm.get("rounds"),
        "workers": lm.get("workers"),
        "shard_peak_mib": (lm.get("shard_peak_rss_bytes") or 0) / MIB,
        "largest_service_processes_mib": [(name, uss / MIB, rss / MIB) for uss, rss, name in top[:5]],
        "service_processes": len(peaks),
        "part_mib": part_mib,
    }


def service_markdown(r: dict[str, Any], cpus: int) -> str:
    procs = ", ".join(f"{n} {u:.0f} ({m:.0f})" for n, u, m in r["largest_service_processes_mib"])
    return "\n".join(
        [
            "### Landmark job through the HTTP service",
            "",
            f"Measured {dt.date.today()} ({cpus} CPUs, `tda-ray serve` with a local Ray of {cpus} CPUs; load "
            f"average at the start {' '.join(f'{x:.1f}' for x in os.getloadavg())}). "
            "`python benchmarks/bench_scale.py service --write`.",
            "",
            f"{r['points']:,} points in R^3 ({r['file_mib']:.0f} MiB .npy), {r['landmarks']} landmarks, maxdim "
            f"{r['maxdim']}, sent with `Client.upload_file` (an upload session of {r['part_mib']:g} MiB parts) and "
            "`Client.submit(..., landmarks=...)`:",
            "",
            "| step | seconds |",
            "|---|---|",
            f"| upload: parts to storage, then joined, checked and re-encoded block by block | {r['upload_s']:.1f} |",
            f"| job, submit -> succeeded | {r['job_s']:.1f} |",
            f"| of which Ray Data read + shards loaded ({r['workers']} shards) | {r['read_s']:.1f} |",
            f"| of which farthest-point selection ({r['rounds']} rounds) | {r['select_s']:.1f} |",
            f"| of which Rips on the landmarks | {r['rips_s']:.1f} |",
            "",
            f"eps = {r['eps']:.4f} (bound {r['bottleneck_bound']:.4f}). Peak private memory (USS) of the service's "
            f"largest processes, resident (RSS, shared object-store pages included) in brackets (MiB, "
            f"{r['service_processes']} processes sampled): {procs}; a shard's RSS peaked at "
            f"{r['shard_peak_mib']:.0f} MiB.",
            "",
        ]
    )


# --------------------------------------------------------------------------- batch


def _write_clouds(folder: Path, n: int, points: int, seed: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"cloud_{i:05d}.npy"
        if not path.exists():
            k = int(rng.integers(points // 2, points + 1))
            t = rng.uniform(0, 2 * np.pi, k)
            X = np.c_[np.cos(t), np.sin(t), rng.normal(scale=0.1, size=k)] + rng.normal(scale=0.05, size=(k, 3))
            np.save(path, X)
        paths.append(path)
    return paths


def bench_batch(clouds: int, points: int, maxdim: int, num_cpus: int, workdir: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from ripser import ripser

    folder = workdir / f"clouds_{clouds}_{points}"
    paths = _write_clouds(folder, clouds, points)

    t0 = time.perf_counter()
    reference = {}
    for i, path in enumerate(paths):
        dgms = ripser(np.load(path), maxdim=maxdim)["dgms"]
        if i % max(1, clouds // 50) == 0:
            reference[str(path)] = dgms
    loop_s = time.perf_counter() - t0

    out = workdir / "batch_cli.parquet"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.perf_counter()
    cli = [sys.executable, "-m", "tda_ray.cli", "batch", str(folder), "--output", str(out), "--maxdim", str(maxdim)]
    subprocess.run([*cli, "--no-progress"], check=True, env=env, capture_output=True)
    cli_s = time.perf_counter() - t0

    import ray

    from tda_ray.distributed.batch import run_batch

    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        times = []
        for _ in range(2):  # the first run also starts Ray's worker processes
            t0 = time.perf_counter()
            summary = run_batch(str(folder), str(workdir / "batch_warm.parquet"), maxdim=maxdim, progress=False)
            times.append(time.perf_counter() - t0)
        first_s, warm_s = times
    finally:
        ray.shutdown()

    # The batch computes what ripser.py computes (float32 distances inside both engines).
    rows = {r["source"]: r for r in pq.read_table(out).to_pylist()}
    worst = 0.0
    for source, dgms in reference.items():
        got = rows[source]["diagrams"]
        for k in range(maxdim + 1):
            a = np.sort(np.array(got[k]).reshape(-1, 2), axis=0)
            b = np.sort(dgms[k], axis=0)
            assert a.shape == b.shape, (source, k, a.shape, b.shape)
            fin = np.isfinite(b)
            assert np.array_equal(np.isfinite(a), fin)
            worst = max(worst, float(np.max(np.abs(a[fin] - b[fin]), initial=0.0)))
    assert worst < 1e-5, worst
    return {
        "clouds": clouds,
        "points_per_cloud": f"{points // 2}-{points}",
        "maxdim": maxdim,
        "loop_ripser_s": loop_s,
        "batch_cli_s": cli_s,
        "batch_first_s": first_s,
        "batch_warm_s": warm_s,
        "ratio_cli": loop_s / cli_s,
        "ratio_first": loop_s / first_s,
        "ratio_warm": loop_s / warm_s,
        "failed": summary.n_failed,
        "nodes": len(summary.nodes),
        "checked_against_ripser": len(reference),
        "max_abs_diff": worst,
    }


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any], cpus: int) -> str:
    load = " ".join(f"{x:.1f}" for x in results.get("load", os.getloadavg()))
    lines = [
        "## Scale-out: landmarks and batches (Ray Data)",
        "",
        f"Measured {dt.date.today()} on {platform.machine()} ({cpus} CPUs, local Ray with `num_cpus={cpus}`; load "
        f"average at the start {load}; the machine is shared). `python benchmarks/bench_scale.py --write`.",
        "",
    ]
    lm = results.get("landmarks")
    if lm:
        shards = ", ".join(f"{m:.0f}" for m in lm["shard_peak_mib"])
        other = ", ".join(f"{n} {m:.0f}" for n, m in lm["largest_other_ray_processes_mib"][:3])
        lines += [
            f"**Landmark job, {lm['points']:,} points in R^3 ({lm['file_mib']:.0f} MiB .npy), {lm['landmarks']} "
            f"landmarks, maxdim {lm['maxdim']}**: {lm['total_s']:.1f} s end to end.",
            "",
            "| step | seconds |",
            "|---|---|",
            f"| Ray start | {lm['ray_start_s']:.1f} |",
            f"| Ray Data read + shards loaded ({lm['workers']} shards) | {lm['read_s']:.1f} |",
            f"| farthest-point selection ({lm['rounds']} rounds) | {lm['select_s']:.1f} |",
            f"| Rips on the landmarks | {lm['rips_s']:.1f} |",
            f"| **total** (incl. Ray shutdown) | **{lm['total_s']:.1f}** |",
            "",
            f"Covering radius eps = {lm['eps']:.4f} (bottleneck distance to the full cloud's diagram <= "
            f"{lm['bottleneck_bound']:.4f}). Peak resident memory per process (MiB): driver "
            f"{lm['driver_peak_mib']:.0f}; shards {shards}; largest other Ray processes: {other}. About 200 MiB "
            "of each is a Ray worker's own baseline (Ray, NumPy and Arrow loaded); the cloud itself is "
            f"{lm['file_mib']:.0f} MiB, and each shard holds its share "
            f"({lm['points'] * 32 / lm['workers'] / MIB:.0f} MiB of coordinates and running distances).",
            "",
        ]
    b = results.get("batch")
    if b:
        lines += [
            f"**{b['clouds']:,} small clouds** ({b['points_per_cloud']} points in R^3, maxdim {b['maxdim']}, "
            ".npy files):",
            "",
            "| run | seconds | speed-up vs loop |",
            "|---|---|---|",
            f"| plain Python loop: np.load + ripser.py, 1 process | {b['loop_ripser_s']:.1f} | 1.00x |",
            f"| `tda-ray batch` CLI, end to end (Ray start included) | {b['batch_cli_s']:.1f} | "
            f"{b['ratio_cli']:.2f}x |",
            f"| `run_batch` on a fresh local Ray (its workers start) | {b['batch_first_s']:.1f} | "
            f"{b['ratio_first']:.2f}x |",
            f"| `run_batch` again on the same Ray (warm workers) | {b['batch_warm_s']:.1f} | {b['ratio_warm']:.2f}x |",
            "",
            f"{b['checked_against_ripser']} outputs checked against ripser.py (largest difference "
            f"{b['max_abs_diff']:.1e}); {b['failed']} failed rows.",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def write_section(text: str, start: str = SECTION_START, end: str = SECTION_END) -> None:
    replace_section(text, start, end)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_landmark_child":
        path, n, maxdim, cpus = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        print(json.dumps(_landmark_child(path, n, maxdim, cpus)))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", choices=("all", "landmarks", "batch", "service"), default="all")
    p.add_argument("--points", type=int, default=1_000_000)
    p.add_argument("--landmarks", type=int, default=1000)
    p.add_argument("--landmark-maxdim", type=int, default=1)
    p.add_argument("--clouds", type=int, default=10_000)
    p.add_argument("--cloud-points", type=int, default=60, help="largest cloud; sizes are uniform in [n/2, n]")
    p.add_argument("--maxdim", type=int, default=1)
    p.add_argument("--part-mib", type=float, default=4.0, help="service: upload part size (client default 4)")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--workdir", type=Path, default=None, help="data files are kept here (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--write", action="store_true", help="replace the scale-out section of BENCHMARKS.md")
    p.add_argument("--from-json", type=Path, default=None, help="render saved figures (from --json) instead of running")
    args = p.parse_args(argv)
    if args.from_json:
        text = markdown(json.loads(args.from_json.read_text()), args.num_cpus)
        print(text)
        if args.write:
            write_section(text)
        return 0
    if args.what == "service":
        with tempfile.TemporaryDirectory(prefix="tda-scale-") as tmp:
            workdir = args.workdir or Path(tmp)
            r = bench_service_landmarks(
                args.points, args.landmarks, args.landmark_maxdim, args.num_cpus, workdir, args.part_mib
            )
        text = service_markdown(r, args.num_cpus)
        print(text)
        if args.json:
            args.json.write_text(json.dumps(r, indent=2))
        if args.write:
            write_section(text, SERVICE_START, SERVICE_END)
        return 0
    with tempfile.TemporaryDirectory(prefix="tda-scale-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results: dict[str, Any] = {"load": list(os.getloadavg())}
        if args.what in ("all", "landmarks"):
            results["landmarks"] = bench_landmarks(
                args.points, args.landmarks, args.landmark_maxdim, args.num_cpus, workdir
            )
        if args.what in ("all", "batch"):
            results["batch"] = bench_batch(args.clouds, args.cloud_points, args.maxdim, args.num_cpus, workdir)
    text = markdown(results, args.num_cpus)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
