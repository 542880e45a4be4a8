"""Kafka benchmarks against a real local broker.

1. Publish throughput (messages/s, MB/s, acks=all + idempotent producer):
   * raw events through the same publisher POST /v1/events uses (batches, each waited for);
   * result messages of a realistic size (a real engine result) through make_producer.
2. Job finished -> message visible latency: real jobs (engine + job store) finish one by one while the
   outbox sink (the code the Ray actor runs) drains the outbox; a consumer notes when each job's message
   arrives. Latency = time seen by the consumer - the job's finished_at in the store.
3. The same latency through the real service (`tda-ray serve`, jobs submitted over HTTP, the sink in its
   Ray actor), unless --service-jobs 0.

    .venv/bin/python benchmarks/bench_kafka.py                    # starts its own broker in a temp dir
    .venv/bin/python benchmarks/bench_kafka.py --bootstrap 127.0.0.1:9092 --json out.json

Prints a table and (with --json) writes the figures. Loopback only; bounded in count and time.
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
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import load_module, pct

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _broker_module() -> Any:
    return load_module("tda_kafka_broker", "infra/kafka/broker.py")


def bench_raw_events(cfg: Any, n: int, batch: int) -> dict[str, Any]:
    from tda_ray.service.streaming.events import RawEventPublisher, encode_events
    from tda_ray.service.streaming.kafka import ensure_topics

    ensure_topics(cfg)
    limit = 64 * 1024 * 1024
    pub = RawEventPublisher(cfg, limit)
    rng = np.random.default_rng(0)
    events = [
        {"source_id": f"sensor-{i % 16}", "values": rng.normal(size=3).tolist(), "event_id": str(i)} for i in range(n)
    ]
    pub.publish(encode_events(events[:batch], limit, limit))  # warm-up: connection, metadata, producer id
    t0 = time.perf_counter()
    nbytes = 0
    for i in range(0, n, batch):
        encoded = encode_events(events[i : i + batch], limit, limit)  # as the service does, per request
        pub.publish(encoded)
        nbytes += sum(len(e.value) for e in encoded)
    dt = time.perf_counter() - t0
    pub.close()
    return {"messages": n, "batch": batch, "seconds": dt, "msgs_per_s": n / dt, "mb_per_s": nbytes / dt / 1e6}


def bench_result_messages(cfg: Any, n: int) -> dict[str, Any]:
    from tda_ray.engine import vietoris_rips
    from tda_ray.engine.registry import get_algorithm
    from tda_ray.service.streaming import messages
    from tda_ray.service.streaming.kafka import ensure_topics, make_producer

    ensure_topics(cfg)
    pts = np.random.default_rng(1).normal(size=(200, 3))
    res = vietoris_rips(pts, maxdim=1)
    summary = get_algorithm("vietoris_rips").summarize(res, pts.shape, 0.0).model_dump()
    msg = messages.build_result_message(
        job_id=uuid.uuid4().hex, pointcloud_id=uuid.uuid4().hex, algorithm="vietoris_rips",
        params={"maxdim": 1, "threshold": None, "coeff": 2}, summary=summary, diagrams=res.diagrams,
        finished_at=None,
    )  # fmt: skip
    value = messages.encode(msg)
    producer = make_producer(cfg)
    producer.send(cfg.results_topic, key=b"warm-up", value=value).get(timeout=30)
    t0 = time.perf_counter()
    futures = [producer.send(cfg.results_topic, key=uuid.uuid4().hex.encode(), value=value) for _ in range(n)]
    producer.flush(timeout=120)
    for f in futures:
        f.get(timeout=0)
    dt = time.perf_counter() - t0
    producer.close()
    return {
        "messages": n,
        "message_bytes": len(value),
        "compression": cfg.compression,
        "seconds": dt,
        "msgs_per_s": n / dt,
        "mb_per_s": n * len(value) / dt / 1e6,
    }


def bench_latency(bootstrap: str, n_jobs: int, workdir: Path) -> dict[str, Any]:
    from kafka import KafkaConsumer

    from tda_ray.service.jobs.outbox import open_outbox
    from tda_ray.service.jobs.task import JobSpec, run_job
    from tda_ray.service.settings import KafkaSettings, Settings
    from tda_ray.service.store import Store
    from tda_ray.service.streaming.kafka import ensure_topics
    from tda_ray.service.streaming.sink import OutboxSink

    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'bench.db'}",
        storage_root=str(workdir / "storage"),
        kafka=KafkaSettings(
            enabled=True,
            bootstrap=bootstrap,
            results_topic=f"bench_results_{tag}",
            raw_topic=f"bench_raw_{tag}",
            stats_topic=f"bench_stats_{tag}",
        ),
    ).resolved()
    cfg = settings.kafka
    ensure_topics(cfg)
    st = Store(settings.database_url, settings.storage_root)

    consumer = KafkaConsumer(cfg.results_topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    seen: dict[str, float] = {}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=20).values():
                for r in batch:
                    seen.setdefault(r.key.decode(), time.time())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sink = OutboxSink(cfg, open_outbox(settings)).start()
    rng = np.random.default_rng(2)
    ids = []
    try:
        for _ in range(n_jobs):
            pc = st.create_pointcloud(rng.normal(size=(60, 2)), name=None, source="bench")
            job = st.create_job(pc.id, "vietoris_rips", {"maxdim": 1, "threshold": None, "coeff": 2})
            (claim,) = [c for c in st.claim_queued("bench", 10) if c.job_id == job.id]
            # The job task itself, called without Ray: result, success and outbox message in one transaction.
            run_job(settings, JobSpec(job.id, claim.attempt, pc.id, claim.blob_key, claim.algorithm, claim.params))
            ids.append(job.id)
            time.sleep(0.1)  # jobs finish at a spread of moments relative to the sink's poll
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(i in seen for i in ids):
            time.sleep(0.05)
    finally:
        sink.stop()
        stop.set()
        reader.join()
        consumer.close()
    lat = []
    for job_id in ids:
        finished = st.get_job(job_id).finished_at
        assert finished is not None
        if job_id in seen:
            lat.append(seen[job_id] - finished.timestamp())
    return {
        "jobs": n_jobs,
        "delivered": len(lat),
        "poll_interval_s": cfg.outbox_poll_s,
        "p50_s": statistics.median(lat),
        "p95_s": pct(lat, 0.95),
        "max_s": max(lat),
        "mean_s": statistics.fmean(lat),
    }


def bench_service_latency(bootstrap: str, n_jobs: int, workdir: Path) -> dict[str, Any]:
    """The same latency through the real service: HTTP job -> Ray task -> outbox -> sink actor -> Kafka."""
    import httpx
    from kafka import KafkaConsumer

    harness = load_module("tda_service_harness", "tests/support/service.py")  # the tests' `tda-ray serve`
    ServiceProcess, wait_for = harness.ServiceProcess, harness.wait_for

    from tda_ray.service.settings import Settings

    topic = Settings().kafka.results_topic
    service = ServiceProcess(workdir / "service", kafka_enabled=True, kafka_bootstrap=bootstrap)
    seen: dict[str, float] = {}
    lat: list[float] = []
    with service:
        http: httpx.Client = service.client()
        wait_for(
            lambda: (http.get("/v1/health").json()["components"]["kafka"].get("sink") or {}).get("state") == "up",
            90,
            "the sink actor",
        )
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for batch in consumer.poll(timeout_ms=20).values():
                    for r in batch:
                        seen.setdefault(r.key.decode(), time.time())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        rng = np.random.default_rng(3)
        try:
            for _ in range(n_jobs):
                pc = http.post("/v1/pointclouds", json={"points": rng.normal(size=(60, 2)).tolist()}).json()
                job = http.post("/v1/jobs", json={"pointcloud_id": pc["id"], "params": {"maxdim": 1}}).json()
                done = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
                assert done["status"] == "succeeded", done
                wait_for(lambda j=job["id"]: j in seen, 30, "the job's message")
                finished = datetime.fromisoformat(done["finished_at"].replace("Z", "+00:00")).timestamp()
                lat.append(seen[job["id"]] - finished)
        finally:
            stop.set()
            reader.join()
            consumer.close()
            http.close()
    return {
        "jobs": n_jobs,
        "p50_s": statistics.median(lat),
        "p95_s": pct(lat, 0.95),
        "max_s": max(lat),
        "mean_s": statistics.fmean(lat),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", help="use a running broker (default: start one in a temp dir)")
    ap.add_argument("--raw-events", type=int, default=20000)
    ap.add_argument("--raw-batch", type=int, default=500)
    ap.add_argument("--results", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=30)
    ap.add_argument("--service-jobs", type=int, default=10, help="jobs through `tda-ray serve` (0: skip)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    from tda_ray.service.settings import KafkaSettings

    broker = None
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            bm = _broker_module()
            reason = bm.missing_requirements()
            if reason:
                print(f"cannot start a broker: {reason}", file=sys.stderr)
                return 2
            broker = bm.KafkaBroker(Path(tmp) / "kafka", port=bm.free_port())
            broker.start()
            bootstrap = broker.bootstrap
        try:
            tag = uuid.uuid4().hex[:8]
            cfg = KafkaSettings(
                bootstrap=bootstrap,
                raw_topic=f"bench_raw_{tag}",
                results_topic=f"bench_results_{tag}",
                stats_topic=f"bench_stats_{tag}",
            )
            out = {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "raw_events": bench_raw_events(cfg, args.raw_events, args.raw_batch),
                "result_messages": bench_result_messages(cfg, args.results),
                "latency": bench_latency(bootstrap, args.jobs, Path(tmp)),
            }
            if args.service_jobs:
                out["service_latency"] = bench_service_latency(bootstrap, args.service_jobs, Path(tmp))
        finally:
            if broker is not None:
                broker.stop()
    r, m, lat = out["raw_events"], out["result_messages"], out["latency"]
    print(f"raw events      : {r['msgs_per_s']:10.0f} msg/s  {r['mb_per_s']:6.2f} MB/s  (batches of {r['batch']})")
    print(
        f"result messages : {m['msgs_per_s']:10.0f} msg/s  {m['mb_per_s']:6.2f} MB/s  "
        f"({m['message_bytes']} B each, {m['compression']})"
    )
    print(
        f"finished->visible latency over {lat['delivered']}/{lat['jobs']} jobs: p50 {lat['p50_s'] * 1000:.0f} ms, "
        f"p95 {lat['p95_s'] * 1000:.0f} ms, max {lat['max_s'] * 1000:.0f} ms (poll {lat['poll_interval_s']} s)"
    )
    if "service_latency" in out:
        sl = out["service_latency"]
        print(
            f"same through the service (HTTP -> Ray -> sink actor), {sl['jobs']} jobs: "
            f"p50 {sl['p50_s'] * 1000:.0f} ms, "
            f"p95 {sl['p95_s'] * 1000:.0f} ms, max {sl['max_s'] * 1000:.0f} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
