"""The Flink feature-stats job (flink/): its message parser and window arithmetic in-process, then the real
PyFlink job (flink/.venv, embedded mini-cluster) against the real local Kafka broker.

The job runs as a subprocess of flink/.venv's interpreter (apache-flink cannot share the main venv), either
bounded (stops at the offsets that were latest at its start) or in the background via flink/run_local.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("jsonschema")  # the parser's validator (a dependency of the dev extras)

REPO_ROOT = Path(__file__).resolve().parents[1]
FLINK_DIR = REPO_ROOT / "flink"
FLINK_PY = FLINK_DIR / ".venv" / "bin" / "python"
JOB_SCRIPT = FLINK_DIR / "feature_stats_job.py"
JARS_DIR = REPO_ROOT / ".cache" / "flink" / "jars"
WINDOW_MS = 10_000


def _load(name: str, path: Path) -> ModuleType:
    # flink/ is not a package and must not become one of tda_ray's: load its plain modules by path.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


fs = _load("tda_flink_feature_stats", FLINK_DIR / "feature_stats.py")
run_local = _load("tda_flink_run_local", FLINK_DIR / "run_local.py")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def result_message(
    job_id: str, finished_ms: int, n_features: list[int], persistence: list[float], algorithm: str = "vietoris_rips"
) -> dict[str, Any]:
    """A valid tda_feature_results v1 message (diagrams left empty: the job reads only the summaries)."""
    dims = len(n_features)
    return {
        "schema_version": 1,
        "job_id": job_id,
        "pointcloud_id": None,
        "algorithm": algorithm,
        "params": {"maxdim": dims - 1, "threshold": None, "coeff": 2},
        "n_points": 100,
        "betti": [1] + [0] * (dims - 1),
        "n_features": n_features,
        "total_persistence": persistence,
        "diagrams": [[] for _ in range(dims)],
        "diagrams_truncated": True,
        "finished_at": iso(finished_ms),
        "published_at": iso(finished_ms + 5),
    }


@pytest.fixture(scope="module")
def parser() -> Any:
    return fs.ResultParser(fs.load_schema())


# --- parser and aggregation (no Flink) ------------------------------------------------------------------------


def test_parser_extracts_the_summaries(parser: Any) -> None:
    msg = result_message("j-1", 1_800_000_001_234, [12, 3], [1.5, 0.25], algorithm="alpha")
    r = parser.parse(json.dumps(msg))
    assert (r.job_id, r.algorithm, r.finished_at_ms) == ("j-1", "alpha", 1_800_000_001_234)
    assert r.n_features == (12, 3) and r.total_persistence == (1.5, 0.25)
    # Offsets other than Z are converted, bytes are accepted, unknown fields are ignored (schema description).
    msg.update(finished_at="2027-01-15T10:00:01.5+02:00", future_field={"x": 1})
    r = parser.parse(json.dumps(msg).encode())
    assert r.finished_at_ms == 1_800_000_001_500


def test_parser_accepts_the_producers_message(parser: Any) -> None:
    # The producer side's builder (tda_ray, not flink/).
    messages = pytest.importorskip("tda_ray.service.streaming.messages")
    msg = messages.build_result_message(
        job_id="j-2",
        pointcloud_id="pc-1",
        algorithm="vietoris_rips",
        params={"maxdim": 1, "threshold": None, "coeff": 2},
        summary={"n_points": 3, "betti": [1, 0], "n_pairs": [2, 1], "total_persistence": [1.0, 0.25]},
        diagrams=[[[0.0, 1.0], [0.0, None]], [[0.5, 0.75]]],
        finished_at=datetime(2027, 1, 15, 8, 0, 0, tzinfo=timezone.utc),
    )
    r = parser.parse(messages.encode(msg))
    assert r.n_features == (2, 1)
    assert r.total_persistence == pytest.approx((1.0, 0.25))
    assert r.finished_at_ms == int(datetime(2027, 1, 15, 8, 0, 0, tzinfo=timezone.utc).timestamp() * 1000)


def _mutated(**changes: Any) -> str:
    msg = result_message("j-bad", 1_800_000_000_000, [4, 2], [1.0, 0.5])
    for key, value in changes.items():
        if value is ...:
            del msg[key]
        else:
            msg[key] = value
    return json.dumps(msg)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        (None, "tombstone"),
        ("[1, 2]", "(root)"),
        (_mutated(n_features=...), "'n_features' is a required property"),
        (_mutated(n_features=[4, -1]), "n_features/1"),
        (_mutated(total_persistence=[1.0, "x"]), "total_persistence/1"),
        (_mutated(schema_version=2), "schema_version"),
        (_mutated(job_id=""), "job_id"),
        (_mutated(n_features=[4]), "n_features has 1 entries"),
        (_mutated(betti=[1, 0, 0]), "betti has 3 entries"),
        (_mutated(finished_at="2027-01-15T08:00:00"), "no UTC offset"),
        (_mutated(finished_at="yesterday"), "RFC 3339"),
    ],
)
def test_parser_names_the_problem(parser: Any, raw: str | None, reason: str) -> None:
    with pytest.raises(fs.InvalidMessage) as err:
        parser.parse(raw)
    assert reason in str(err.value)


def test_windows_are_epoch_aligned_and_half_open() -> None:
    assert fs.window_start_ms(1_800_000_000_000, WINDOW_MS) == 1_800_000_000_000
    assert fs.window_start_ms(1_800_000_009_999, WINDOW_MS) == 1_800_000_000_000
    assert fs.window_start_ms(1_800_000_010_000, WINDOW_MS) == 1_800_000_010_000
    assert fs.format_timestamp_ms(1_800_000_010_000) == "2027-01-15T08:00:10.000Z"


def test_window_stats_sums_per_dimension_across_maxdims() -> None:
    w = fs.WindowStats(0, WINDOW_MS)
    w.add(fs.FeatureResult("a", "vietoris_rips", 1, (5, 2), (1.0, 0.5)))
    w.add(fs.FeatureResult("b", "vietoris_rips", 2, (7,), (2.0,)))
    w.add(fs.FeatureResult("c", "alpha", 3, (1, 1, 4), (0.5, 0.25, 0.125)))
    rec = fs.WindowStats.from_state(w.to_state()).to_record(late=False, emitted_at_ms=WINDOW_MS + 5)
    assert rec["jobs"] == 3
    assert rec["features_per_dim"] == [13, 3, 4]
    assert rec["total_persistence_per_dim"] == pytest.approx([3.5, 0.75, 0.125])
    assert rec["jobs_per_algorithm"] == {"alpha": 1, "vietoris_rips": 2}
    assert (rec["window_start"], rec["window_end"]) == ("1970-01-01T00:00:00.000Z", "1970-01-01T00:00:10.000Z")


def test_dead_letter_keeps_a_bounded_prefix() -> None:
    dl = fs.dead_letter("x" * 10_000, "value is not JSON", 0)
    assert len(dl["raw"]) == fs.MAX_RAW_IN_DEAD_LETTER and dl["raw_truncated"] is True
    assert fs.dead_letter(None, "tombstone", 0)["raw"] == ""


# --- the real job ----------------------------------------------------------------------------------------------


def _require_flink() -> None:
    missing = []
    if not FLINK_PY.exists():
        missing.append(f"{FLINK_PY} (make flink-venv)")
    if not list(JARS_DIR.glob("flink-sql-connector-kafka-*.jar")):
        missing.append(f"the Kafka connector jar in {JARS_DIR} (make flink-jars)")
    if missing:
        reason = "Flink job cannot run: missing " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)  # `make setup` provides both in CI
        pytest.skip(reason)


def _run_job(args: list[str], timeout: float, log_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the job in the foreground; its whole process group (JVM, Python workers) is gone on return."""
    proc = subprocess.Popen(
        [str(FLINK_PY), str(JOB_SCRIPT), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "FLINK_LOG_DIR": str(log_dir)},
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"Flink job did not finish within {timeout}s:\n{out[-6000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of a finished job, if any
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, None)


@pytest.fixture
def flink_topics(kafka_broker: Any) -> dict[str, str]:
    """Fresh topic names for one test; the input topic is created like the producer's (3 partitions)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    _require_flink()
    tag = uuid.uuid4().hex[:8]
    names = {
        "input": f"tda_feature_results_{tag}",
        "output": f"tda_feature_stats_{tag}",
        "dlq": f"tda_feature_results_dlq_{tag}",
        "group": f"tda-flink-test-{tag}",
    }
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics([NewTopic(names["input"], 3, 1)])
    finally:
        admin.close()
    return names


def _job_args(bootstrap: str, topics: dict[str, str], *extra: str) -> list[str]:
    return [
        "--bootstrap", bootstrap,
        "--input-topic", topics["input"], "--output-topic", topics["output"],
        "--dead-letter-topic", topics["dlq"], "--group-id", topics["group"],
        "--window-seconds", str(WINDOW_MS / 1000), *extra,
    ]  # fmt: skip


class Producer:
    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self._p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")

    def send(self, value: dict[str, Any] | str | None, key: str | None = None, timestamp_ms: int | None = None) -> None:
        data = json.dumps(value).encode() if isinstance(value, dict) else None if value is None else value.encode()
        self._p.send(self.topic, value=data, key=key.encode() if key else None, timestamp_ms=timestamp_ms)

    def close(self) -> None:
        self._p.flush()
        self._p.close()


def _totals(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per window start: jobs, features and persistence summed over its records (late updates included)."""
    out: dict[int, dict[str, Any]] = {}
    for r in records:
        t = out.setdefault(r["window_start_ms"], {"jobs": 0, "features": [], "persistence": []})
        t["jobs"] += r["jobs"]
        for key, values in (("features", r["features_per_dim"]), ("persistence", r["total_persistence_per_dim"])):
            t[key] += [0] * (len(values) - len(t[key]))
            for d, v in enumerate(values):
                t[key][d] += v
    return out


def _values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


MALFORMED: list[tuple[str | None, str]] = [
    ("not json", "not JSON"),
    (None, "tombstone"),
    (_mutated(n_features=[4, -1]), "n_features/1"),
    (_mutated(n_features=[4]), "n_features has 1 entries"),
    (_mutated(finished_at="2027-01-15T08:00:00"), "no UTC offset"),
]


@pytest.mark.kafka
@pytest.mark.flink
@pytest.mark.timeout(300)
def test_bounded_job_aggregates_exact_counts(
    kafka_broker: Any, flink_topics: dict[str, str], kafka_consume: Callable[..., list[Any]], tmp_path: Path
) -> None:
    rng = random.Random(20261127)
    base = (int(time.time() * 1000) - 3_600_000) // WINDOW_MS * WINDOW_MS
    jobs: list[dict[str, Any]] = []
    for w in (0, 1, 3):  # window 2 stays empty and must not be reported
        for i in range(rng.randint(2, 6)):
            dims = rng.randint(1, 3)
            jobs.append(
                result_message(
                    f"job-{w}-{i}",
                    base + w * WINDOW_MS + rng.randrange(WINDOW_MS),
                    [rng.randint(0, 50) for _ in range(dims)],
                    [round(rng.uniform(0, 5), 6) for _ in range(dims)],
                )
            )
    jobs.sort(key=lambda m: m["finished_at"])
    expected: dict[int, dict[str, Any]] = {}
    for m in jobs:
        ws = fs.window_start_ms(fs.parse_timestamp_ms(m["finished_at"]), WINDOW_MS)
        e = expected.setdefault(ws, {"jobs": 0, "features": [], "persistence": []})
        e["jobs"] += 1
        for key, values in (("features", m["n_features"]), ("persistence", m["total_persistence"])):
            e[key] += [0] * (len(values) - len(e[key]))
            for d, v in enumerate(values):
                e[key][d] += v

    producer = Producer(kafka_broker.bootstrap, flink_topics["input"])
    bad_at = {len(jobs) * k // len(MALFORMED): raw for k, (raw, _) in enumerate(MALFORMED)}
    for n, m in enumerate(jobs):
        published = fs.parse_timestamp_ms(m["finished_at"]) + 50  # Kafka timestamp: just after it finished
        if n in bad_at:
            producer.send(bad_at[n], key=f"bad-{n}", timestamp_ms=published)
        producer.send(m, key=m["job_id"], timestamp_ms=published)
        if n == 2:  # an at-least-once redelivery: same key, same content
            producer.send(m, key=m["job_id"], timestamp_ms=published + 1)
    producer.close()

    t0 = time.monotonic()
    done = _run_job(_job_args(kafka_broker.bootstrap, flink_topics, "--bounded"), timeout=240, log_dir=tmp_path)
    elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-6000:]

    records = _values(
        kafka_consume(
            kafka_broker.bootstrap,
            flink_topics["output"],
            until=lambda rs: sum(json.loads(r.value)["jobs"] for r in rs) >= len(jobs),
            timeout_s=30,
        )
    )
    totals = _totals(records)
    assert sorted(totals) == sorted(expected), records
    for ws, e in expected.items():
        assert totals[ws]["jobs"] == e["jobs"], (ws, records)
        assert totals[ws]["features"] == e["features"], (ws, records)
        assert totals[ws]["persistence"] == pytest.approx(e["persistence"]), (ws, records)
    for r in records:
        assert r["window_end_ms"] - r["window_start_ms"] == WINDOW_MS
        assert r["window_start"] == fs.format_timestamp_ms(r["window_start_ms"])
        assert r["jobs"] == sum(r["jobs_per_algorithm"].values())
    # The log sink printed the same records.
    assert done.stdout.count("tda_feature_stats> ") == len(records)

    dead = _values(
        kafka_consume(
            kafka_broker.bootstrap, flink_topics["dlq"], until=lambda rs: len(rs) >= len(MALFORMED), timeout_s=30
        )
    )
    assert len(dead) == len(MALFORMED), dead
    for (raw, reason), letter in zip(MALFORMED, sorted(dead, key=lambda d: _malformed_index(d)), strict=True):
        assert reason in letter["error"], (reason, letter)
        assert letter["raw"] == (raw or "")
    print(f"bounded job: {len(jobs)} results, {len(MALFORMED)} malformed, {elapsed:.1f}s including JVM start")


def _malformed_index(letter: dict[str, Any]) -> int:
    return next(i for i, (raw, _) in enumerate(MALFORMED) if (raw or "") == letter["raw"])


def _committed_all(bootstrap: str, group: str, topic: str) -> bool:
    """True when `group` has committed offsets at the end of every partition of `topic`."""
    from kafka import KafkaConsumer, TopicPartition

    # A consumer of the group that never subscribes only reads the group's commits; it does not join it.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return all(end == 0 or (consumer.committed(tp) or 0) >= end for tp, end in ends.items())
    finally:
        consumer.close()


@pytest.fixture
def background_job(tmp_path: Path) -> Iterator[Any]:
    job = run_local.FlinkJob(tmp_path / "flink-state", python=FLINK_PY)
    try:
        yield job
    finally:
        job.stop(timeout=30)


@pytest.mark.kafka
@pytest.mark.flink
@pytest.mark.timeout(420)
def test_live_job_reports_within_a_window_and_resumes_after_restart(
    kafka_broker: Any, flink_topics: dict[str, str], background_job: Any, kafka_consume: Callable[..., list[Any]]
) -> None:
    bootstrap = kafka_broker.bootstrap
    args = _job_args(bootstrap, flink_topics, "--checkpoint-interval-seconds", "1")
    background_job.start(args, timeout=180)

    def publish_bad(prefix: str) -> None:
        producer = Producer(bootstrap, flink_topics["input"])
        producer.send("{truncated", key=f"{prefix}-bad")
        producer.close()

    def publish(prefix: str, n: int) -> tuple[float, int]:
        producer = Producer(bootstrap, flink_topics["input"])
        now = int(time.time() * 1000)
        for i in range(n):
            producer.send(result_message(f"{prefix}-{i}", now, [i + 1, 1], [0.5, 0.25]), key=f"{prefix}-{i}")
        producer.close()
        return time.monotonic(), sum(i + 1 for i in range(n))

    def reported(until_jobs: int, timeout_s: float) -> list[dict[str, Any]]:
        return _values(
            kafka_consume(
                bootstrap,
                flink_topics["output"],
                until=lambda rs: sum(json.loads(r.value)["jobs"] for r in rs) >= until_jobs,
                timeout_s=timeout_s,
            )
        )

    def dead_letters(n: int, timeout_s: float) -> list[dict[str, Any]]:
        return _values(
            kafka_consume(bootstrap, flink_topics["dlq"], until=lambda rs: len(rs) >= n, timeout_s=timeout_s)
        )

    # A malformed message first: its dead letter shows the job is consuming (start-up is over) and alive.
    publish_bad("a")
    assert len(dead_letters(1, timeout_s=120)) == 1, background_job.tail()

    # Live: results published now are reported within one window plus 5 s.
    sent, features_a = publish("a", 3)
    records = reported(3, timeout_s=WINDOW_MS / 1000 + 30)
    latency = time.monotonic() - sent
    assert sum(r["jobs"] for r in records) == 3, (records, background_job.tail())
    assert sum(r["features_per_dim"][0] for r in records) == features_a
    assert latency <= WINDOW_MS / 1000 + 5, f"stats after {latency:.1f}s"
    assert background_job.is_running(), background_job.tail()

    # Restart: offsets were committed by a checkpoint, so the new job reads only what came after.
    deadline = time.monotonic() + 30
    while not _committed_all(bootstrap, flink_topics["group"], flink_topics["input"]):
        assert time.monotonic() < deadline, "offsets never committed"
        time.sleep(0.5)
    assert background_job.stop(timeout=30)
    publish_bad("b")
    _, features_b = publish("b", 4)
    background_job.start(args, timeout=180)
    records = reported(3 + 4, timeout_s=WINDOW_MS / 1000 + 60)
    time.sleep(3)  # anything double counted would arrive with or right after b's window
    records = reported(3 + 4, timeout_s=1)
    assert sum(r["jobs"] for r in records) == 7, (records, background_job.tail())
    assert sum(r["features_per_dim"][0] for r in records) == features_a + features_b

    assert [d["raw"] for d in dead_letters(2, timeout_s=10)] == ["{truncated", "{truncated"]
    print(f"live job: first stats {latency:.1f}s after publishing (window {WINDOW_MS / 1000:g}s)")


@pytest.mark.flink
def test_job_rejects_bad_options() -> None:
    _require_flink()
    out = subprocess.run(
        [str(FLINK_PY), str(JOB_SCRIPT), "--window-seconds", "0"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert "--window-seconds must be > 0" in out.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group: JVM children, Python workers
    proc.wait(timeout=30)


@pytest.fixture
def flink_cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A standalone Flink session cluster (job manager + task manager) from the apache-flink package's own
    scripts, on loopback ports: the same `flink run -py` path as the compose cluster."""
    import urllib.request

    _require_flink()
    home = Path(
        subprocess.run(
            [str(FLINK_PY), "-c", "import os, pyflink; print(os.path.dirname(pyflink.__file__))"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()
    )  # fmt: skip
    rest, rpc = _free_port(), _free_port()
    conf = {
        "jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": rpc, "jobmanager.bind-host": "127.0.0.1",
        "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1", "rest.port": rest,
        "taskmanager.host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1",
        "jobmanager.memory.process.size": "1024m", "taskmanager.memory.process.size": "1280m",
    }  # fmt: skip
    dynamic = [arg for key, value in conf.items() for arg in ("-D", f"{key}={value}")]
    log_dir = tmp_path / "cluster-log"
    log_dir.mkdir()
    env = {**os.environ, "FLINK_LOG_DIR": str(log_dir), "FLINK_HOME": str(home)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for script in ("jobmanager.sh", "taskmanager.sh"):
            with open(log_dir / f"{script}.console", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        ["bash", str(home / "bin" / script), "start-foreground", *dynamic],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{rest}/overview", timeout=2) as resp:
                    if json.load(resp).get("taskmanagers", 0) >= 1:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Flink cluster did not come up:\n" + "\n".join(
                p.read_text(errors="replace")[-3000:] for p in log_dir.glob("*")
            )
            time.sleep(0.5)
        yield {"home": home, "rest_port": rest, "log_dir": log_dir, "env": env}
    finally:
        for proc in reversed(procs):
            _stop_group(proc)


@pytest.mark.kafka
@pytest.mark.flink
@pytest.mark.timeout(300)
def test_flink_run_on_a_session_cluster(
    kafka_broker: Any,
    flink_topics: dict[str, str],
    flink_cluster: dict[str, Any],
    kafka_consume: Callable[..., list[Any]],
) -> None:
    base = (int(time.time() * 1000) - 600_000) // WINDOW_MS * WINDOW_MS
    producer = Producer(kafka_broker.bootstrap, flink_topics["input"])
    jobs = [result_message(f"c-{i}", base + i * 4000, [i + 1, 2], [1.0, 0.5]) for i in range(5)]  # 2 windows
    for m in jobs:
        producer.send(m, key=m["job_id"], timestamp_ms=fs.parse_timestamp_ms(m["finished_at"]) + 50)
    producer.send("not json", key="bad", timestamp_ms=base + 19_000)
    producer.close()

    port = flink_cluster["rest_port"]
    cmd = [
        "bash", str(flink_cluster["home"] / "bin" / "flink"), "run",
        "-Drest.address=127.0.0.1", f"-Drest.port={port}",
        "-py", str(JOB_SCRIPT), "-pyclientexec", str(FLINK_PY), "-pyexec", str(FLINK_PY),
        *_job_args(kafka_broker.bootstrap, flink_topics, "--bounded"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=flink_cluster["env"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    records = _values(
        kafka_consume(
            kafka_broker.bootstrap,
            flink_topics["output"],
            until=lambda rs: sum(json.loads(r.value)["jobs"] for r in rs) >= len(jobs),
            timeout_s=30,
        )
    )
    totals = _totals(records)
    assert {ws: t["jobs"] for ws, t in totals.items()} == {base: 3, base + WINDOW_MS: 2}, records
    assert totals[base]["features"] == [1 + 2 + 3, 6] and totals[base + WINDOW_MS]["features"] == [4 + 5, 4]
    dead = _values(kafka_consume(kafka_broker.bootstrap, flink_topics["dlq"], until=lambda rs: len(rs) >= 1))
    assert [d["raw"] for d in dead] == ["not json"]
    # The log sink of a cluster job is the task manager's stdout (its console, started in the foreground).
    tm_out = (flink_cluster["log_dir"] / "taskmanager.sh.console").read_text(errors="replace")
    assert tm_out.count("tda_feature_stats> ") == len(records)
