"""Slow clients: /v1/health latency while N clients announce a body and stall, and the stack's SIGTERM time.

Starts the real service (`tda-ray serve`, local Ray, 2 CPUs) in a temp folder, opens ``--stalled`` TCP
connections that each send ``POST /v1/jobs`` headers with ``Content-Length: 100000`` and 6 body bytes, then
times ``GET /v1/health`` (one client, sequential, for ``--seconds``) and reports p50/p95/max and the
failures (timeouts at 20 s).  Then SIGTERM: seconds until the server's whole process session is gone.

    .venv/bin/python benchmarks/bench_stalled.py [--stalled 1000] [--seconds 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_common import load_module, pct

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _stall(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100000\r\n\r\n{"poi'
    )
    return s


def measure(stalled: int, seconds: float) -> dict[str, Any]:
    harness = load_module("tda_service_harness", "tests/support/service.py")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * stalled)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        svc = harness.ServiceProcess(Path(tmp), http_body_timeout_s=60)
        svc.start()
        try:
            socks = [_stall(svc.port) for _ in range(stalled)]
            latencies: list[float] = []
            failures = 0
            t_end = time.monotonic() + seconds
            with httpx.Client(base_url=svc.base_url, timeout=20) as http:
                while time.monotonic() < t_end or len(latencies) + failures < 5:
                    t0 = time.perf_counter()
                    try:
                        http.get("/v1/health").raise_for_status()
                        latencies.append(time.perf_counter() - t0)
                    except httpx.HTTPError:
                        failures += 1
            for s in socks:
                s.close()
        finally:
            assert svc.proc is not None
            sid, t0 = svc.proc.pid, time.monotonic()
            svc.proc.send_signal(signal.SIGTERM)
            while harness.session_members(sid) and time.monotonic() - t0 < 120:
                time.sleep(0.05)
            stop_s = time.monotonic() - t0
            svc.proc = svc.proc if svc.proc.poll() is None else None
            svc.stop()
    return {
        "stalled": stalled,
        "health_requests": len(latencies),
        "health_failures": failures,
        "p50_s": pct(latencies, 0.5) if latencies else None,
        "p95_s": pct(latencies, 0.95) if latencies else None,
        "max_s": max(latencies) if latencies else None,
        "sigterm_to_gone_s": stop_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stalled", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = measure(args.stalled, args.seconds)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
