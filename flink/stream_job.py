"""PyFlink DataStream job: topology on live event streams, the Flink half of it.

Two stages in one job, every hand-off a Kafka topic:

* ``raw_data_events`` -> per source (keyed by ``source_id``): dedup by ``event_id``, per-source event time
  and watermark, allowed lateness, sliding windows, the embedding -> ``tda_window_clouds`` (late events to
  the dead-letter topic).  The Ray window workers compute each cloud's persistence.
* ``tda_window_features`` -> per source: scoring against the source's baseline -> ``tda_anomaly_scores``
  (every window) and ``tda_alerts`` (alerts only), written exactly once (Kafka transactions committed on
  checkpoints: read them with ``isolation.level=read_committed``).

Both stages read the compacted ``tda_stream_specs`` topic as broadcast state (Flink's pattern for dynamic
configuration): a spec change applies to the source's next windows without a restart.  The logic lives in
plain Python modules beside this file (stream_windows.py, stream_scores.py, streams.py); this module only
wires it into Flink.  State (per source) and the consumed offsets are checkpointed, so a restarted job
resumes where its last checkpoint was, re-emitting at most what followed it (clouds and features are
deduplicated downstream by ``(source_id, seq)``).

Run locally (embedded mini-cluster)::

    flink/.venv/bin/python flink/stream_job.py [--bootstrap 127.0.0.1:9092]

Every option also reads an environment variable (see ``--help``).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import (
    CheckpointingMode,
    KeyedBroadcastProcessFunction,
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
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import load_java_class

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # the plain modules beside this file; build() ships them to the workers

import stream_scores as sc  # noqa: E402
import stream_windows as sw  # noqa: E402
import streams as st  # noqa: E402
from feature_stats_job import create_topics, embedded_config  # noqa: E402

LOG = logging.getLogger("tda_flink.streams")
READY_MARKER = "tda-streams started:"
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
SPECS = MapStateDescriptor("stream-specs", Types.STRING(), Types.STRING())
DEFAULT_JAR_GLOB = str(REPO_ROOT / ".cache" / "flink" / "jars" / "*.jar")


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Parse(ProcessFunction):
    """A schema-checked input message, shaped for the next operator, or a dead letter saying why not."""

    kind = ""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self._schemas = schemas

    def open(self, runtime_context: RuntimeContext) -> None:
        self._parser = st.Parser(self._schemas)

    def shape(self, value: str) -> Any:
        raise NotImplementedError

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterable[Any]:
        try:
            out = self.shape(value)
        except st.InvalidMessage as exc:
            yield DEAD_LETTERS, st.dead_letter(value, str(exc), self.kind, _now_ms())
            return
        yield out


class ParseEvents(_Parse):
    kind = "event"

    def shape(self, value: str) -> Any:
        source_id, event = self._parser.event(value)
        return source_id, event.ts, event.event_id, event.values


class ParseSpecs(_Parse):
    kind = "spec"

    def shape(self, value: str) -> Any:
        return json.dumps(self._parser.spec(value))


class ParseFeatures(_Parse):
    kind = "features"

    def shape(self, value: str) -> Any:
        msg = self._parser.features(value)
        return msg["source_id"], json.dumps(msg)


class _WithSpecs(KeyedBroadcastProcessFunction):
    """The spec of a source from the broadcast state, or the default one."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self._defaults = argparse.Namespace(**defaults)

    def spec_of(self, source_id: str, state: Any, n_values: int) -> dict[str, Any]:
        text = state.get(source_id)
        if not text:
            return st.default_spec(source_id, n_values, self._defaults)
        return st.resolve_spec(json.loads(text), n_values)

    def process_broadcast_element(self, value: str, ctx: KeyedBroadcastProcessFunction.Context) -> None:
        spec = json.loads(value)
        ctx.get_broadcast_state(SPECS).put(spec["source_id"], value)
        LOG.info("stream spec of %s: version %s", spec["source_id"], spec["version"])


class Windows(_WithSpecs):
    """Per source: events in, window clouds out (late events as dead letters); idle sources by timer."""

    def __init__(self, defaults: dict[str, Any], idle_ms: int) -> None:
        super().__init__(defaults)
        self._idle_ms = idle_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        self._windows = runtime_context.get_state(ValueStateDescriptor("windows", Types.PICKLED_BYTE_ARRAY()))
        # (wall-clock ms of the last event, pending timer ms, number of values per event)
        self._clock = runtime_context.get_state(ValueStateDescriptor("clock", Types.PICKLED_BYTE_ARRAY()))

    def _emit(self, state: sw.SourceWindows, spec: dict[str, Any], idle: bool) -> Iterable[Any]:
        for window in state.due(spec, idle=idle):
            try:
                body = state.cloud(spec, window)
            except ValueError as exc:  # e.g. a spec's value_index beyond the events' values
                yield DEAD_LETTERS, st.dead_letter(state.source_id, str(exc), "window", _now_ms())
                continue
            body["closed_at_ms"] = _now_ms()
            yield json.dumps(body, separators=(",", ":"))

    def process_element(self, value: Any, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> Iterable[Any]:
        source_id, ts, event_id, values = value
        spec = self.spec_of(source_id, ctx.get_broadcast_state(SPECS), len(values))
        state = self._windows.value() or sw.SourceWindows(source_id)
        outcome = state.add(sw.Event(int(ts), event_id, list(values)), spec)
        if outcome == "late":
            body = {"source_id": source_id, "event_id": event_id, "event_time_ms": ts}
            yield DEAD_LETTERS, st.dead_letter(json.dumps(body), "late event", "event", _now_ms())
        yield from self._emit(state, spec, idle=False)
        self._windows.update(state)
        now = ctx.timer_service().current_processing_time()
        _, timer, _ = self._clock.value() or (0, None, len(values))
        if timer is None:
            timer = now + self._idle_ms
            ctx.timer_service().register_processing_time_timer(timer)
        self._clock.update((now, timer, len(values)))

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext) -> Iterable[Any]:
        last, _, n_values = self._clock.value() or (0, None, 1)
        now = ctx.timer_service().current_processing_time()
        if now - last < self._idle_ms:  # not quiet yet: look again when it could be
            timer = last + self._idle_ms
            ctx.timer_service().register_processing_time_timer(timer)
            self._clock.update((last, timer, n_values))
            return
        state = self._windows.value()
        if state is not None:
            spec = self.spec_of(state.source_id, ctx.get_broadcast_state(SPECS), n_values)
            yield from self._emit(state, spec, idle=True)
            self._windows.update(state)
        self._clock.update((last, None, n_values))


class Scores(_WithSpecs):
    """Per source: window features in (any order, at least once), scores out in seq order, once each."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self._scores = runtime_context.get_state(ValueStateDescriptor("scores", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value: Any, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> Iterable[str]:
        source_id, text = value
        msg = json.loads(text)
        spec = self.spec_of(source_id, ctx.get_broadcast_state(SPECS), 1)
        state = self._scores.value() or sc.SourceScores(source_id)
        for record in state.add(msg, spec):
            record["timing"] = {
                "closed_at_ms": int(msg["closed_at_ms"]),
                "computed_at_ms": int(msg.get("computed_at_ms") or 0),
                "scored_at_ms": _now_ms(),
            }
            yield json.dumps(record, separators=(",", ":"))
        self._scores.update(state)


def _source(args: argparse.Namespace, topic: str, start: Any, name: str) -> KafkaSource:
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(args.bootstrap)
        # A pattern, not a topic list: a topic created after the job starts is found by partition discovery
        # instead of failing the job (the service creates the stream topics when it starts).
        .set_topic_pattern(f"^{re.escape(topic)}$")
        .set_group_id(f"{args.group_id}-{name}")
        .set_starting_offsets(start)
        .set_property("commit.offsets.on.checkpoint", "true")
        .set_property("partition.discovery.interval.ms", "2000")
        # Only what committed transactions wrote (scores are written in transactions by this job).
        .set_property("isolation.level", "read_committed")
    )
    # Kafka's StringDeserializer turns a tombstone into None (a dead letter), where Flink's SimpleStringSchema
    # would fail the job on every restart; PyFlink wraps only DeserializationSchema, so Java is called directly.
    string_deserializer = load_java_class(
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.serialization.StringDeserializer"
    )
    builder._j_builder.setDeserializer(
        get_gateway().jvm.org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema.valueOnly(
            string_deserializer
        )
    )
    return builder.build()


def _sink(args: argparse.Namespace, topic: str, exactly_once: bool) -> KafkaSink:
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(args.bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
    )
    if exactly_once:
        builder = (
            builder.set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
            .set_transactional_id_prefix(f"{args.group_id}-{topic}")
            # Below the broker's transaction.max.timeout.ms (15 min by default).
            .set_property("transaction.timeout.ms", "600000")
        )
    else:
        builder = builder.set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
    return builder.build()


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    names = ("window_unit", "window_size", "window_slide", "out_of_orderness_s", "allowed_lateness_s", "maxdim",
             "vector_kind", "vector_bins", "warmup_windows", "baseline_windows", "threshold")  # fmt: skip
    return {n: getattr(args, n) for n in names}


def checkpoint_uri(args: argparse.Namespace) -> str:
    where = args.checkpoint_dir or str(REPO_ROOT / "var" / "flink-streams" / "checkpoints")
    return where if "://" in where else Path(where).resolve().as_uri()


def latest_checkpoint(uri: str) -> str | None:
    """The newest complete retained checkpoint under ``uri`` (any earlier run's job id), or None.

    A checkpoint is complete once its ``_metadata`` is written (Flink writes it last)."""
    if not uri.startswith("file:"):
        return None  # remote storage: pass --restore PATH
    root = Path(uri.removeprefix("file://"))
    found = [(m.stat().st_mtime, m.parent) for m in root.glob("*/chk-*/_metadata")]
    return str(max(found)[1]) if found else None


def build(args: argparse.Namespace) -> StreamExecutionEnvironment:
    config = Configuration()
    # Also thread mode: in process mode every record and state access crosses a gRPC channel to the
    # Python workers, which held the job to a few hundred events a second.
    embedded = embedded_config(config, args.loopback_only)
    config.set_string("execution.checkpointing.interval", f"{int(args.checkpoint_interval_seconds * 1000)}ms")
    # Retained checkpoints: a job killed outright (or its machine) resumes from the newest one on its next
    # start, with every source's windows, baseline and the consumed offsets as they were.
    uri = checkpoint_uri(args)
    config.set_string("execution.checkpointing.dir", uri)
    config.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    config.set_string("execution.checkpointing.num-retained", "3")
    restore = latest_checkpoint(uri) if args.restore == "latest" else None if args.restore == "none" else args.restore
    if restore:
        LOG.info("restoring from %s", restore)
        config.set_string("execution.state-recovery.path", restore)
    config.set_string("python.fn-execution.bundle.time", "50")  # small bundles: windows close within ms
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(args.parallelism)
    env.enable_checkpointing(int(args.checkpoint_interval_seconds * 1000), CheckpointingMode.EXACTLY_ONCE)
    # Unaligned checkpoints: a barrier overtakes the records queued before it, so checkpoints (and the
    # score transactions they commit) keep completing while the job is behind; aligned ones would wait.
    env.get_checkpoint_config().enable_unaligned_checkpoints()
    env.add_jars(*[Path(j).as_uri() for j in sorted(glob.glob(args.jars))])
    for name in ("feature_stats.py", "stream_windows.py", "stream_scores.py", "streams.py"):
        env.add_python_file(str(HERE / name))
    if embedded:
        env.set_python_executable(sys.executable)  # embedded mini-cluster: workers use this venv

    schemas = st.load_schemas()
    st.Parser(schemas)  # fail at submission on a broken schema
    committed = KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
    none = WatermarkStrategy.no_watermarks()  # event time is per source, inside the operators
    specs = (
        env.from_source(_source(args, args.specs_topic, KafkaOffsetsInitializer.earliest(), "specs"), none, "specs")
        .process(ParseSpecs(schemas), output_type=Types.STRING())
        .name("parse specs")
    )
    broadcast = specs.broadcast(SPECS)
    defaults = _defaults(args)

    events = env.from_source(_source(args, args.raw_topic, committed, "events"), none, "raw_data_events").process(
        ParseEvents(schemas)
    )
    clouds = (
        events.key_by(lambda e: e[0], key_type=Types.STRING())
        .connect(broadcast)
        .process(Windows(defaults, int(args.idle_close_seconds * 1000)), output_type=Types.STRING())
        .name("windows")
    )
    clouds.sink_to(_sink(args, args.clouds_topic, exactly_once=False)).name(args.clouds_topic)

    features = env.from_source(_source(args, args.features_topic, committed, "features"), none, "features").process(
        ParseFeatures(schemas)
    )
    scores = (
        features.key_by(lambda f: f[0], key_type=Types.STRING())
        .connect(broadcast)
        .process(Scores(defaults), output_type=Types.STRING())
        .name("scores")
    )
    scores.sink_to(_sink(args, args.scores_topic, exactly_once=True)).name(args.scores_topic)
    alerts = scores.filter(lambda text: '"alert":true' in text)
    alerts.sink_to(_sink(args, args.alerts_topic, exactly_once=True)).name(args.alerts_topic)

    dead = events.get_side_output(DEAD_LETTERS).union(
        specs.get_side_output(DEAD_LETTERS),
        clouds.get_side_output(DEAD_LETTERS),
        features.get_side_output(DEAD_LETTERS),
    )
    if args.dead_letter_topic:
        dead.sink_to(_sink(args, args.dead_letter_topic, exactly_once=False)).name("dead-letters")
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Topology on event streams: raw_data_events -> window clouds; window features -> scores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, env_var, default, kind, text in st.OPTIONS:
        ap.add_argument(flag, type=kind, default=kind(os.environ.get(env_var, default)), help=f"{text} [{env_var}]")
    ap.add_argument("--jars", default=os.environ.get("TDA_FLINK_JARS", DEFAULT_JAR_GLOB), help="connector jars")
    args = ap.parse_args(argv)
    if args.window_unit not in ("events", "seconds"):
        ap.error("--window-unit must be events or seconds")
    if args.vector_kind not in ("betti_curve", "landscape"):
        ap.error("--vector-kind must be betti_curve or landscape")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    LOG.setLevel(args.log_level)
    if "PYFLINK_GATEWAY_PORT" not in os.environ:
        os.environ.setdefault("FLINK_LOG_DIR", str(REPO_ROOT / "var" / "flink-streams" / "log"))
        Path(os.environ["FLINK_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    # The broker creates no topic on its own: the job's outputs must exist before a record goes to one (the
    # dead letters topic may first be needed long after the start, e.g. by a late event).
    outputs = [args.clouds_topic, args.scores_topic, args.alerts_topic, args.dead_letter_topic]
    create_topics(args.bootstrap, [t for t in outputs if t], args.topic_partitions, args.topic_replication)
    client = build(args).execute_async("tda-streams")
    job_id = client.get_job_id()
    deadline = time.monotonic() + 120
    status = client.get_job_status().result().name
    while status in ("INITIALIZING", "CREATED") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get_job_status().result().name
    LOG.info("%s job %s %s: %s -> %s; %s -> %s", READY_MARKER, job_id, status, args.raw_topic, args.clouds_topic,
             args.features_topic, args.scores_topic)  # fmt: skip
    client.get_job_execution_result().result()
    LOG.info("job %s finished", job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
