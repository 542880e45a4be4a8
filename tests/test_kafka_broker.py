"""The local KRaft broker of infra/kafka/broker.py: start, answer, restart with data kept, clean stop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

REPO_ROOT = Path(__file__).resolve().parents[1]
BROKER_PY = REPO_ROOT / "infra" / "kafka" / "broker.py"


def test_session_broker_answers_metadata(kafka_broker, broker_module):
    host, port = kafka_broker.bootstrap.split(":")
    assert host == "127.0.0.1"
    assert broker_module.probe_metadata(host, int(port)) == 1
    st = kafka_broker.status()
    assert st["running"] and st["answering"]
    assert st["pid"] == kafka_broker.pid


def test_broker_binds_loopback_only(kafka_broker):
    props = kafka_broker.properties_file.read_text()
    listeners = [line for line in props.splitlines() if line.startswith(("listeners=", "advertised.listeners="))]
    assert listeners
    for line in listeners:
        for endpoint in line.split("=", 1)[1].split(","):
            assert "//127.0.0.1:" in endpoint, endpoint


def test_probe_fails_on_closed_port(broker_module):
    with pytest.raises(OSError):
        broker_module.probe_metadata("127.0.0.1", broker_module.free_port(), timeout=1.0)


def test_cli_start_is_idempotent_and_restart_keeps_data(kafka_broker_factory, broker_module, kafka_consume):
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    broker = kafka_broker_factory()
    data_dir = broker.data_dir
    # `start` on a running broker leaves it alone.
    out = subprocess.run(
        [sys.executable, str(BROKER_PY), "start", "--data-dir", str(data_dir)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"pid {broker.pid}" in out.stdout

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("restart-check", 1, 1)])  # the broker does not auto-create topics
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send("restart-check", key=b"k", value=b"before-restart").get(timeout=30)
    producer.close()

    # Clean stop through the CLI (another process than the one that started it).
    stopped = subprocess.run([sys.executable, str(BROKER_PY), "stop", "--data-dir", str(data_dir)], capture_output=True)
    assert stopped.returncode == 0
    assert not broker.is_running()
    assert (broker.log_dir / ".kafka_cleanshutdown").exists()
    status = subprocess.run(
        [sys.executable, str(BROKER_PY), "status", "--data-dir", str(data_dir)], capture_output=True
    )
    assert status.returncode == 1
    assert json.loads(status.stdout)["running"] is False

    # Restart: same port (from broker.json), no re-format, the message is still there.
    meta_before = (broker.log_dir / "meta.properties").read_text()
    restarted = broker_module.start(data_dir)
    assert restarted.port == broker.port
    assert (broker.log_dir / "meta.properties").read_text() == meta_before
    records = kafka_consume(broker.bootstrap, "restart-check", until=lambda r: len(r) >= 1)
    assert [r.value for r in records] == [b"before-restart"]
    assert restarted.stop()


def test_start_refuses_a_port_in_use(kafka_broker, broker_module, tmp_path):
    other = broker_module.KafkaBroker(tmp_path / "other", port=kafka_broker.port)
    with pytest.raises(RuntimeError, match="already in use"):
        other.start(timeout=10)
    assert kafka_broker.answering()


def test_check_reports_requirements(broker_module):
    assert broker_module.missing_requirements() is None  # the fixtures above would have skipped otherwise
    reason = broker_module.missing_requirements(libs_dir="/nonexistent")
    assert reason is not None and "make kafka-jars" in reason
