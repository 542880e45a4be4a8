"""PyFlink DataStream job: windowed topological feature statistics.

Reads finished-job results (JSON, schema ``schemas/tda_feature_result.v1.schema.json``) from Kafka topic
``tda_feature_results``, validates each message, drops duplicate deliveries of a job, and writes per
tumbling window (event time = the result's ``finished_at``) the number of jobs, the number of features per
homology dimension and the total persistence per dimension, as JSON to ``tda_feature_stats`` and to the log.
Malformed messages go to a dead-letter topic and the log; the job keeps running.

A window closes when the watermark passes its end (event-time progress from the Kafka publish timestamps,
tracked per partition, minus the allowed out-of-orderness), or, when no newer result arrives,
``--idle-close-seconds`` of wall clock after its end, so a quiet stream still reports within one window plus
a few seconds. A result for a window that was already reported (published long after it finished) is
reported in an extra record with ``late: true`` that holds only the late results: sum the records of a window.

Run locally (embedded mini-cluster)::

    flink/.venv/bin/python flink/feature_stats_job.py [--bootstrap 127.0.0.1:9092] [--window-seconds 10]

On a Flink cluster::

    flink run -py flink/feature_stats_job.py \
        -pyclientexec flink/.venv/bin/python -pyexec /opt/tda-flink-venv/bin/python \
        --bootstrap kafka-1:9092 --checkpoint-dir file:///flink-checkpoints

Every option also reads an environment variable (see ``--help``).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
import sysconfig
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.common.time import Time
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import (
    CheckpointingMode,
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig, ValueStateDescriptor
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import load_java_class

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # feature_stats.py beside this file; build() ships it to the workers

import feature_stats as fs  # noqa: E402

LOG = logging.getLogger("tda_flink.feature_stats")
READY_MARKER = "tda-feature-stats started:"
SOURCE_IDLENESS_MS = 5000
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())


# --- operators ---------------------------------------------------------------------------------------------


class ParseResults(ProcessFunction):
    """JSON + schema validation; a bad message becomes a dead letter (side output), never a job failure."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._schema = schema  # shipped with the function: task managers need no copy of the schema file
        self._parser: fs.ResultParser | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self._parser = fs.ResultParser(self._schema)

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterable[Any]:
        assert self._parser is not None
        try:
            result = self._parser.parse(value)
        except fs.InvalidMessage as exc:
            LOG.warning("dead letter: %s", exc)
            yield DEAD_LETTERS, json.dumps(fs.dead_letter(value, str(exc), int(time.time() * 1000)))
            return
        yield (
            result.job_id,
            result.algorithm,
            result.finished_at_ms,
            list(result.n_features),
            list(result.total_persistence),
        )


class EmittedNow(TimestampAssigner):
    """Stats records carry the wall clock as their Kafka timestamp.

    Without it they would carry the window's end (from the event-time timer): a producer clock far ahead
    would then make the broker reject the record (message.timestamp.after.max.ms) and the sink fail the job.
    """

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(time.time() * 1000)


class DropDuplicates(KeyedProcessFunction):
    """Keyed by job_id: the producer delivers at-least-once, so a job may arrive twice; count it once."""

    def __init__(self, ttl_seconds: int) -> None:
        self._ttl_seconds = ttl_seconds

    def open(self, runtime_context: RuntimeContext) -> None:
        desc = ValueStateDescriptor("seen", Types.BOOLEAN())
        desc.enable_time_to_live(
            StateTtlConfig.new_builder(Time.seconds(self._ttl_seconds))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .build()
        )
        self._seen = runtime_context.get_state(desc)

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterable[Any]:
        if self._seen.value():
            LOG.info("duplicate delivery of job %s ignored", value[0])
            return
        self._seen.update(True)
        yield value


class WindowedStats(KeyedProcessFunction):
    """Tumbling event-time windows with a wall-clock close for quiet streams (all results share one key)."""

    def __init__(self, size_ms: int, idle_close_ms: int | None, emitted_retention_ms: int) -> None:
        self._size = size_ms
        self._idle_close = idle_close_ms
        self._retention = emitted_retention_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        # window start -> (WindowStats state tuple, wall-clock deadline ms, late flag)
        self._open = runtime_context.get_map_state(
            MapStateDescriptor("open-windows", Types.LONG(), Types.PICKLED_BYTE_ARRAY())
        )
        # window start -> wall-clock ms it was reported; marks later results for it as late
        self._reported = runtime_context.get_map_state(MapStateDescriptor("reported", Types.LONG(), Types.LONG()))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        job_id, algorithm, ts, n_features, persistence = value
        timers = ctx.timer_service()
        start = fs.window_start_ms(int(ts), self._size)
        end = start + self._size
        entry = self._open.get(start)
        if entry is None:
            now = timers.current_processing_time()
            late = self._reported.contains(start) or end - 1 <= timers.current_watermark()
            stats = fs.WindowStats(start, end)
            timers.register_event_time_timer(end - 1)
            if self._idle_close is None:
                deadline = sys.maxsize
            else:
                # From the window's end, or from now for a replayed (old) window, so a backlog gets time to arrive.
                deadline = max(end, now) + self._idle_close
                timers.register_processing_time_timer(deadline)
        else:
            state, deadline, late = entry
            stats = fs.WindowStats.from_state(state)
        stats.add(fs.FeatureResult(job_id, algorithm, int(ts), tuple(n_features), tuple(persistence)))
        self._open.put(start, (stats.to_state(), deadline, late))
        return []

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[str]:
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        now = timers.current_processing_time()
        due = sorted(
            start
            for start, (_, deadline, _) in self._open.items()
            if start + self._size - 1 <= watermark or deadline <= now
        )
        for start in due:
            state, _, late = self._open.get(start)
            self._open.remove(start)
            self._reported.put(start, now)
            record = fs.WindowStats.from_state(state).to_record(late=late, emitted_at_ms=now)
            yield json.dumps(record, separators=(",", ":"))
        stale = [start for start, at in self._reported.items() if at < now - self._retention]
        for start in stale:
            self._reported.remove(start)


# --- wiring --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Windowed topological feature statistics: tda_feature_results -> tda_feature_stats.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, env_var, default, kind, text in fs.OPTIONS:
        choices = ("committed", "earliest", "latest") if flag == "--starting-offsets" else None
        ap.add_argument(flag, type=kind, default=kind(os.environ.get(env_var, default)), choices=choices,
                        help=f"{text} [{env_var}]")  # fmt: skip
    ap.add_argument("--bounded", action="store_true",
                    help="stop at the offsets latest at start (backfills, tests); reports every window")  # fmt: skip
    ap.add_argument("--no-create-topics", action="store_true",
                    help="do not create missing output/dead-letter topics at start")  # fmt: skip
    args = ap.parse_args(argv)
    for name in ("window_seconds", "idle_close_seconds", "checkpoint_interval_seconds"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0")
    if args.out_of_orderness_seconds < 0 or args.dedup_ttl_seconds < 0:
        ap.error("--out-of-orderness-seconds and --dedup-ttl-seconds must be >= 0")
    for name in ("parallelism", "topic_partitions", "topic_replication"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def _jar_urls(pattern: str) -> list[str]:
    jars = sorted(glob.glob(pattern))
    if not jars:
        raise FileNotFoundError(f"no connector jar matches {pattern}; run `make flink-jars`")
    return [Path(j).resolve().as_uri() for j in jars]


def create_topics(bootstrap: str, topics: list[str], partitions: int, replication: int) -> None:
    """Create the job's output topics if missing (the broker refuses auto-creation; the service's
    ``ensure_topics`` creates tda_feature_stats too, whichever starts first)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="tda-flink-admin", request_timeout_ms=30000,
            bootstrap_timeout_ms=30000,
        )  # fmt: skip
    except KafkaError as exc:
        raise SystemExit(f"cannot reach Kafka at {bootstrap} ({exc}); start it first (make kafka-start)") from exc
    try:
        missing = [t for t in topics if t not in set(admin.list_topics())]
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication)])
                LOG.info("created topic %s", topic)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def _loopback_worker_pool() -> None:
    """PyFlink's Python worker pool of the embedded cluster binds ``[::]:0``; make it bind loopback."""
    import grpc
    from pyflink.fn_execution.beam import beam_worker_pool_service as pool

    class LoopbackGrpc:
        def __getattr__(self, name: str) -> Any:
            return getattr(grpc, name)

        @staticmethod
        def server(*args: Any, **kwargs: Any) -> Any:
            srv = grpc.server(*args, **kwargs)
            add = srv.add_insecure_port
            srv.add_insecure_port = lambda address: add(address.replace("[::]", fs.LOOPBACK, 1))
            return srv

    pool.grpc = LoopbackGrpc()


def embedded_config(config: Configuration, loopback_only: bool) -> bool:
    """Settings of the embedded cluster a job run directly starts (under `flink run` the cluster's config
    decides): its REST API locked down and, with ``loopback_only``, every listener on 127.0.0.1 and the
    Python functions in thread mode.  Returns whether the cluster is embedded."""
    embedded = "PYFLINK_GATEWAY_PORT" not in os.environ
    if embedded:
        for key, value in {**fs.REST_LOCKDOWN, **(fs.LOOPBACK_CONFIG if loopback_only else {})}.items():
            config.set_string(key, value)
    if embedded and loopback_only:
        _loopback_worker_pool()
        # Thread mode (fs.LOOPBACK_CONFIG) embeds the interpreter in the JVM, which knows nothing of this
        # virtualenv: add its packages to the workers' path.
        config.set_string("python.pythonpath", sysconfig.get_paths()["purelib"])
    return embedded


def build(args: argparse.Namespace) -> StreamExecutionEnvironment:
    config = Configuration()
    embedded = embedded_config(config, args.loopback_only)
    # Small bundles: a Python operator otherwise holds records up to 1 s before processing them.
    config.set_string("python.fn-execution.bundle.time", "200")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(args.parallelism)
    env.enable_checkpointing(int(args.checkpoint_interval_seconds * 1000), CheckpointingMode.EXACTLY_ONCE)
    env.add_jars(*_jar_urls(args.jars))
    env.add_python_file(str(HERE / "feature_stats.py"))
    python = args.python_executable
    if not python and embedded:
        python = sys.executable  # embedded mini-cluster: workers use this venv (under `flink run`, -pyexec)
    if python:
        env.set_python_executable(python)

    schema = fs.load_schema(args.schema)
    fs.ResultParser(schema)  # fail at submission on a broken schema

    if args.starting_offsets == "committed":
        start = KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
    elif args.starting_offsets == "earliest":
        start = KafkaOffsetsInitializer.earliest()
    else:
        start = KafkaOffsetsInitializer.latest()
    source_builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(args.bootstrap)
        .set_topics(args.input_topic)
        .set_group_id(args.group_id)
        .set_starting_offsets(start)
        .set_property("commit.offsets.on.checkpoint", "true")
        # The input topic may be created after the job starts: look for (new) partitions every 2 s.
        .set_property("partition.discovery.interval.ms", "2000")
    )
    # Kafka's own StringDeserializer turns a null value (tombstone) into None, which becomes a dead letter;
    # Flink's SimpleStringSchema would throw and fail the job on every restart. PyFlink wraps only
    # DeserializationSchema, so the Java builder is called directly.
    string_deserializer = load_java_class(
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.serialization.StringDeserializer"
    )
    source_builder._j_builder.setDeserializer(
        get_gateway().jvm.org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema.valueOnly(
            string_deserializer
        )
    )
    if args.bounded:
        source_builder = source_builder.set_bounded(KafkaOffsetsInitializer.latest())
    # Event-time progress comes from the Kafka record timestamps (publish time), tracked per partition by the
    # source, so reading partitions at different speeds (a backlog after a restart) closes no window early.
    # Windows themselves are by finished_at; a result published long after it finished arrives late and is
    # reported in a `late` record. Idle partitions stop holding the watermark back after SOURCE_IDLENESS_MS.
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(int(args.out_of_orderness_seconds * 1000))
    ).with_idleness(Duration.of_millis(SOURCE_IDLENESS_MS))
    raw = env.from_source(source_builder.build(), watermarks, "tda_feature_results")

    parsed = raw.process(ParseResults(schema)).name("parse+validate")
    results = parsed
    if args.dedup_ttl_seconds > 0:
        results = results.key_by(lambda r: r[0], key_type=Types.STRING()).process(
            DropDuplicates(args.dedup_ttl_seconds)
        )
    stats = (
        results.key_by(lambda r: 0, key_type=Types.INT())
        .process(
            WindowedStats(
                size_ms=int(args.window_seconds * 1000),
                # A bounded run ends with a final watermark that closes every window; no wall-clock close, so
                # its output does not depend on how fast the records were read.
                idle_close_ms=None if args.bounded else int(args.idle_close_seconds * 1000),
                emitted_retention_ms=max(3600_000, int(args.window_seconds * 1000) * 10),
            ),
            output_type=Types.STRING(),
        )
        .name("windowed-stats")
        .assign_timestamps_and_watermarks(WatermarkStrategy.no_watermarks().with_timestamp_assigner(EmittedNow()))
    )
    stats.sink_to(_kafka_sink(args.bootstrap, args.output_topic)).name("tda_feature_stats")
    stats.print("tda_feature_stats")  # the log sink: task manager stdout (the console when run locally)

    dead = parsed.get_side_output(DEAD_LETTERS)
    if args.dead_letter_topic:
        dead.sink_to(_kafka_sink(args.bootstrap, args.dead_letter_topic)).name("dead-letters")
    dead.print("dead_letter")
    return env


def _kafka_sink(bootstrap: str, topic: str) -> KafkaSink:
    return (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        # Flushed on every checkpoint; transactions (exactly-once) would add a checkpoint of latency.
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    LOG.setLevel(args.log_level)  # PyFlink's Python runtime lowers the root logger to WARNING on import
    if "PYFLINK_GATEWAY_PORT" not in os.environ:
        # Run directly (embedded cluster): the JVM, started by the first PyFlink call below, logs into
        # FLINK_LOG_DIR; default var/flink/log rather than the virtualenv. Under `flink run` the CLI decides.
        os.environ.setdefault("FLINK_LOG_DIR", str(REPO_ROOT / "var" / "flink" / "log"))
        Path(os.environ["FLINK_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    if not args.no_create_topics:
        topics = [t for t in (args.output_topic, args.dead_letter_topic) if t]
        create_topics(args.bootstrap, topics, args.topic_partitions, args.topic_replication)
    env = build(args)
    client = env.execute_async("tda-feature-stats")
    job_id = client.get_job_id()
    deadline = time.monotonic() + 120
    status = client.get_job_status().result().name
    while status in ("INITIALIZING", "CREATED") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get_job_status().result().name
    # run_local.py and the tests wait for this line.
    LOG.info("%s job %s %s: %s -> %s, window %gs%s", READY_MARKER, job_id, status, args.input_topic,
             args.output_topic, args.window_seconds, " (bounded)" if args.bounded else "")  # fmt: skip
    client.get_job_execution_result().result()  # returns when a bounded job ends; raises if the job fails
    LOG.info("job %s finished", job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
