"""Streams benchmark, in one run: detection quality, sustained throughput and latency, replay equals live.

1. **Detection** on the synthetic suite of ``stream_suite.py`` (ground truth from the generator): the
   pipeline's own code run offline — the Flink job's windowing and embedding (``flink/stream_windows.py``),
   the Ray workers' persistent homology (``compute_windows``) and the Flink scorer (``flink/stream_scores.py``)
   — next to a windowed-Gaussian z-score baseline: the same robust scorer fed only each window's mean and
   standard deviation per value.  Precision, recall, F1 and detection delay per kind, mean over seeds.
2. **Throughput and latency** on the real stack (Kafka broker, Flink stream job, ``tda-ray serve`` with its
   Ray window workers), all on this machine: many sources posted through the HTTP API at a paced rate for a
   while; events/s and windows/s end to end, p50/p95 from the API's acknowledgement of the event that
   closes a window to its score (and from the window's close in Flink to its score).  Then the worker stage
   alone: window clouds written straight to their topic, windows/s of persistent homology.
3. **Replay equals live**: one series posted as fast as the API takes it, twice, and once paced in small,
   slightly shuffled batches; the score records (less source id and wall-clock timing) must be identical.

    python benchmarks/bench_stream.py                 # everything (about 10 min on 2 cores)
    python benchmarks/bench_stream.py --only detection --seeds 8
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE.parent / "flink")]

from benchmarks import stream_suite as ss  # noqa: E402

OLD_START_MS = 1_577_836_800_000  # 2020-01-01: a replay of history


def _flink(name: str) -> Any:
    """A module of the Flink job (flink/ is a plain directory of its own, outside the package)."""
    import importlib

    return importlib.import_module(name)


# ----------------------------------------------------------------------------------------- detection
def offline(stream: ss.Stream) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score records of ``stream`` by the pipeline's code (default spec) and by the Gaussian baseline."""
    flink_streams = _flink("streams")
    SourceScores = _flink("stream_scores").SourceScores
    Event, SourceWindows = _flink("stream_windows").Event, _flink("stream_windows").SourceWindows

    from tda_ray.service.jobs.streams import compute_windows, default_spec
    from tda_ray.service.settings import StreamSettings
    from tda_ray.service.streaming import messages

    n_values = 1 if stream.values.ndim == 1 else stream.values.shape[1]
    spec = flink_streams.resolve_spec(default_spec(stream.kind, StreamSettings()), n_values)
    windows, tda, gauss = SourceWindows(stream.kind), SourceScores(stream.kind), SourceScores(stream.kind)
    t = stream.times_ms()
    got_tda: list[dict[str, Any]] = []
    got_gauss: list[dict[str, Any]] = []
    for i in range(len(t)):
        v = stream.values[i]
        values = [float(v)] if np.ndim(v) == 0 else [float(a) for a in v]
        windows.add(Event(int(t[i]), f"{stream.kind}-{i}", values), spec)
        for w in windows.due(spec):
            cloud = dict(windows.cloud(spec, w), closed_at_ms=0)
            features = messages.build_window_features(cloud, compute_windows([cloud])[0], 0)
            got_tda += tda.add(features, spec)
            vals = np.asarray([e.values for e in w.events])
            moments = {f"mean_{j}": float(vals[:, j].mean()) for j in range(vals.shape[1])}
            moments |= {f"std_{j}": float(vals[:, j].std()) for j in range(vals.shape[1])}
            got_gauss += gauss.add({**features, "features": moments, "vector": []}, spec)
    return got_tda, got_gauss


def detection(seeds: int) -> dict[str, Any]:
    rows: dict[str, dict[str, list[Any]]] = {}
    for seed in range(seeds):
        for stream in ss.generate(seed):
            ours, base = offline(stream)
            row = rows.setdefault(stream.kind, {"ours": [], "gauss": [], "keeps": [stream.keeps_moments]})
            row["ours"].append(ss.evaluate(stream, ours))
            row["gauss"].append(ss.evaluate(stream, base))
    out: dict[str, Any] = {}
    for kind, row in rows.items():

        def mean(evals: list[dict[str, Any]], key: str) -> float | None:
            vals = [e[key] for e in evals if e[key] is not None]
            return float(np.mean(vals)) if vals else None

        out[kind] = {
            "keeps_moments": row["keeps"][0],
            **{
                f"{who}_{key}": mean(row[who], key)
                for who in ("ours", "gauss")
                for key in ("precision", "recall", "f1", "delay_s", "false_alarms")
            },
        }
    return out


def print_detection(table: dict[str, Any], seeds: int) -> None:
    print(f"\n## Detection (default spec, {seeds} seeds, mean)\n")
    print("| kind | keeps mean/var | ours P | ours R | ours F1 | Gauss F1 | F1 gain | ours delay s | Gauss delay s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, r in table.items():

        def f(x: float | None, d: int = 3) -> str:
            return "—" if x is None else f"{x:.{d}f}"

        gain = r["ours_f1"] - r["gauss_f1"]
        print(
            f"| {kind} | {'yes' if r['keeps_moments'] else 'no'} | {f(r['ours_precision'])} | {f(r['ours_recall'])} "
            f"| {f(r['ours_f1'])} | {f(r['gauss_f1'])} | {gain:+.3f} | {f(r['ours_delay_s'], 1)} "
            f"| {f(r['gauss_delay_s'], 1)} |"
        )


# ----------------------------------------------------------------------------------------- the stack
def series(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / (30 + seed % 20)) + 0.2 * rng.normal(size=n)


def event_list(source: str, x: np.ndarray, start_ms: int = OLD_START_MS, step_ms: int = 100) -> list[dict[str, Any]]:
    return [
        {
            "source_id": source,
            "event_id": f"{source}-{i}",
            "event_time": datetime.fromtimestamp((start_ms + i * step_ms) / 1000, tz=timezone.utc).isoformat(),
            "values": [round(float(v), 9)],
        }
        for i, v in enumerate(x)
    ]


def post_paced(base_url: str, batches: list[list[dict[str, Any]]], rate: float, threads: int) -> list[float]:
    """Post batches at ``rate`` events/s over ``threads`` connections; the wall time each was acknowledged."""
    from tda_ray.client import Client

    acked = [0.0] * len(batches)
    t0 = time.monotonic()
    sizes = np.cumsum([len(b) for b in batches])

    def run(k: int) -> None:
        with Client(base_url, timeout=120) as client:
            for i in range(k, len(batches), threads):
                due = t0 + (sizes[i] - len(batches[i])) / rate
                time.sleep(max(0.0, due - time.monotonic()))
                client.post_events(batches[i], retry_s=60)
                acked[i] = time.time()

    pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return acked


def all_scores(stack: Any, http: Any, sources: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {s: stack.scores(http, s) for s in sources}


def wait_all(stack: Any, http: Any, expected: dict[str, int], timeout_s: float) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = all_scores(stack, http, list(expected))
        if all(len(got[s]) >= n for s, n in expected.items()) or time.monotonic() > deadline:
            return got
        time.sleep(1.0)


def throughput(stack: Any, rate: float, duration_s: float, n_sources: int, threads: int) -> dict[str, Any]:
    """Paced load from ``n_sources`` interleaved sources; events/s, windows/s and latency."""
    from tda_ray.service.settings import StreamSettings

    d = StreamSettings()
    per_source = int(rate * duration_s / n_sources)
    sources = [f"load-{k}" for k in range(n_sources)]
    evs = {s: event_list(s, series(per_source, k)) for k, s in enumerate(sources)}
    batch = 500
    # Each posting connection carries its own sources, in order (as a source's sender does); a batch is a
    # slice of each of them, so the sources interleave.
    groups = [sources[k::threads] for k in range(threads)]
    step = max(1, batch * threads // n_sources)
    batches, origin = [], []
    for i in range(0, per_source, step):
        for group in groups:
            batches.append([e for s in group for e in evs[s][i : i + step]])
            origin.append(i)
    http = stack.http()
    t0 = time.time()
    acked = post_paced(stack.service.base_url, batches, rate, threads)
    posted_s = time.time() - t0
    n_windows = int((per_source - d.window_size) // d.window_slide + 1)
    got = wait_all(stack, http, dict.fromkeys(sources, n_windows), timeout_s=600)
    records = [r for rs in got.values() for r in rs]
    done_s = max(r["timing"]["scored_at_ms"] for r in records) / 1000 - t0
    # The event that closes window k of a source: the first whose time is past the window's last event by
    # the out-of-orderness and the allowed lateness (10 events a second).
    close_after = round((d.out_of_orderness_s + d.allowed_lateness_s) * 10)
    ack_of = np.zeros(per_source + close_after + 1)
    for i, when in zip(origin, acked, strict=True):
        ack_of[i : i + step] = when
    lat_ack, lat_close = [], []
    for r in records:
        last = int(r["seq"]) * int(d.window_slide) + int(d.window_size) - 1
        closing = last + close_after
        if closing < per_source:
            lat_ack.append(r["timing"]["scored_at_ms"] / 1000 - ack_of[closing])
        lat_close.append((r["timing"]["scored_at_ms"] - r["timing"]["closed_at_ms"]) / 1000)
    n_events = per_source * n_sources
    return {
        "events": n_events,
        "sources": n_sources,
        "offered_rate": rate,
        "posted_s": posted_s,
        "accepted_events_per_s": n_events / posted_s,
        "end_to_end_s": done_s,
        "events_per_s": n_events / done_s,
        "windows": len(records),
        "windows_expected": n_windows * n_sources,
        "windows_per_s": len(records) / done_s,
        "ack_to_score_p50_s": float(np.percentile(lat_ack, 50)) if lat_ack else None,
        "ack_to_score_p95_s": float(np.percentile(lat_ack, 95)) if lat_ack else None,
        "close_to_score_p50_s": float(np.percentile(lat_close, 50)),
        "close_to_score_p95_s": float(np.percentile(lat_close, 95)),
    }


def worker_stage(stack: Any, n_clouds: int) -> dict[str, Any]:
    """Window clouds written straight to their topic (as the Flink job writes them); the workers' windows/s
    from the features topic's record times."""
    flink_streams = _flink("streams")
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    Event, SourceWindows = _flink("stream_windows").Event, _flink("stream_windows").SourceWindows

    from tda_ray.service.jobs.streams import default_spec
    from tda_ray.service.settings import StreamSettings

    spec = flink_streams.resolve_spec(default_spec("w", StreamSettings()), 1)
    x = series(n_clouds * 20 + 200, 3)
    sw = SourceWindows("worker-bench")
    clouds = []
    for i, v in enumerate(x):
        sw.add(Event(OLD_START_MS + 100 * i, f"w{i}", [float(v)]), spec)
        clouds += [dict(sw.cloud(spec, w), closed_at_ms=int(time.time() * 1000)) for w in sw.due(spec)]
        if len(clouds) >= n_clouds:
            break
    topic_out = "tda_window_features"
    consumer = KafkaConsumer(bootstrap_servers=stack.broker.bootstrap)
    parts = [TopicPartition(topic_out, p) for p in consumer.partitions_for_topic(topic_out) or {0}]
    before = sum(consumer.end_offsets(parts).values())
    producer = KafkaProducer(bootstrap_servers=stack.broker.bootstrap, linger_ms=20)
    for k, c in enumerate(clouds):  # many keys, so every partition (and worker) gets a share
        c = {**c, "source_id": f"worker-bench-{k % 32}"}
        producer.send("tda_window_clouds", key=c["source_id"].encode(), value=json.dumps(c).encode())
    producer.flush()
    producer.close()
    t0 = time.time()
    deadline = t0 + 600
    while sum(consumer.end_offsets(parts).values()) - before < len(clouds) and time.time() < deadline:
        time.sleep(0.2)
    elapsed = time.time() - t0
    done = sum(consumer.end_offsets(parts).values()) - before
    consumer.close()
    return {"clouds": len(clouds), "features": int(done), "seconds": elapsed, "windows_per_s": done / elapsed}


def in_process_rate(n_clouds: int) -> dict[str, Any]:
    """The same windows' persistent homology in this process, one thread: the engine's share of the stage."""
    flink_streams = _flink("streams")
    Event, SourceWindows = _flink("stream_windows").Event, _flink("stream_windows").SourceWindows

    from tda_ray.service.jobs.streams import compute_windows, default_spec
    from tda_ray.service.settings import StreamSettings

    spec = flink_streams.resolve_spec(default_spec("w", StreamSettings()), 1)
    sw = SourceWindows("in-process")
    clouds: list[dict[str, Any]] = []
    for i, v in enumerate(series(n_clouds * 20 + 200, 3)):
        sw.add(Event(OLD_START_MS + 100 * i, f"w{i}", [float(v)]), spec)
        clouds += [sw.cloud(spec, w) for w in sw.due(spec)]
    clouds = clouds[:n_clouds]
    t0 = time.perf_counter()
    for i in range(0, len(clouds), 256):
        compute_windows(clouds[i : i + 256])
    s = time.perf_counter() - t0
    return {"clouds": len(clouds), "seconds": s, "windows_per_s": len(clouds) / s}


def replay_vs_live(stack: Any, n: int) -> dict[str, Any]:
    from tda_ray.client import Client

    http = stack.http()
    x = series(n, 11)
    runs: dict[str, list[dict[str, Any]]] = {}
    with Client(stack.service.base_url, timeout=120) as client:
        for name, batch in (("replay-a", 1000), ("replay-b", 333)):
            evs = event_list(name, x)
            for i in range(0, n, batch):
                client.post_events(evs[i : i + batch], retry_s=60)
        # "Live": small batches at 20x event-time speed, each slightly shuffled (within the out-of-orderness).
        rng = np.random.default_rng(0)
        evs = event_list("live", x)
        for i in range(0, n, 10):
            chunk = evs[i : i + 10]
            client.post_events([chunk[j] for j in rng.permutation(len(chunk))], retry_s=60)
            time.sleep(0.05)
    expected = (n - 120) // 20 + 1
    got = wait_all(stack, http, {"replay-a": expected, "replay-b": expected, "live": expected}, 300)
    for name, recs in got.items():
        runs[name] = [{k: v for k, v in r.items() if k not in ("source_id", "timing")} for r in recs]
    return {
        "windows": {k: len(v) for k, v in runs.items()},
        "replay_twice_identical": runs["replay-a"] == runs["replay-b"],
        "replay_vs_live_identical": runs["replay-a"] == runs["live"],
    }


def with_stack(workers: int, run: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    from support.streams import StreamStack, missing_requirements

    reason = missing_requirements()
    if reason:
        raise SystemExit(f"the stream stack cannot start: {reason}")
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as root, StreamStack(Path(root), workers=workers) as s:
        return run(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["detection", "stack"], default=None)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--rate", type=float, default=5000.0, help="offered events/s")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of offered load")
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--threads", type=int, default=4, help="posting connections")
    ap.add_argument("--workers", type=int, default=2, help="Ray window workers")
    ap.add_argument("--clouds", type=int, default=20000, help="windows for the worker stage")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # SIGTERM unwinds like Ctrl-C, so the stack's processes are stopped, not left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    if args.only in (None, "detection"):
        results["detection"] = detection(args.seeds)
        print_detection(results["detection"], args.seeds)
    if args.only in (None, "stack"):
        results["in_process"] = in_process_rate(min(args.clouds, 5000))

        def run(stack: Any) -> dict[str, Any]:
            out = {"replay": replay_vs_live(stack, 2000)}
            out["throughput"] = throughput(stack, args.rate, args.duration, args.sources, args.threads)
            out["worker_stage"] = worker_stage(stack, args.clouds)
            return out

        results.update(with_stack(args.workers, run))
        print("\n## Stack\n")
        print(json.dumps({k: results[k] for k in ("in_process", "replay", "throughput", "worker_stage")}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
