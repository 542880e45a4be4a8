"""docker/ (compose cluster + app image) agrees with the local set-up: topics, ports, versions, strategy.

No Docker engine is needed: the files are parsed, not run.
"""

from __future__ import annotations

import base64
import re
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

from tda_ray.service.settings import Settings

yaml = pytest.importorskip("yaml")

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE = REPO_ROOT / "docker" / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict:
    data: dict = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), flags=re.M))


def _kafka_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if svc["image"].startswith("apache/kafka:")}


def _pom_kafka_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(REPO_ROOT / "infra" / "kafka" / "pom.xml").getroot()
    node = root.find("m:properties/m:kafka.version", ns)
    assert node is not None and node.text
    return node.text


def _env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    return {k: str(v) for k, v in env.items()}


def test_three_kraft_brokers_at_the_pinned_version(compose):
    brokers = _kafka_services(compose)
    assert len(brokers) == 3
    version = _pom_kafka_version()
    assert {svc["image"] for svc in brokers.values()} == {f"apache/kafka:{version}"}
    ids = sorted(int(_env(s)["KAFKA_NODE_ID"]) for s in brokers.values())
    assert ids == [1, 2, 3]
    voters = {_env(s)["KAFKA_CONTROLLER_QUORUM_VOTERS"] for s in brokers.values()}
    assert voters == {",".join(f"{i}@{name}:9093" for i, name in zip(ids, sorted(brokers), strict=True))}
    cluster_ids = {_env(s)["CLUSTER_ID"] for s in brokers.values()}
    assert len(cluster_ids) == 1
    (cid,) = cluster_ids
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16  # a Kafka Uuid
    for s in brokers.values():
        env = _env(s)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # like the local broker
        assert "healthcheck" in s


def test_replication_strategy_on_the_cluster(compose):
    brokers = _kafka_services(compose)
    for s in brokers.values():
        env = _env(s)
        rf, min_isr = int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]), int(env["KAFKA_MIN_INSYNC_REPLICAS"])
        assert (rf, min_isr) == (3, 2)
        assert rf <= len(brokers)
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
    app = _env(compose["services"]["ray-head"])
    assert int(app["TDA_KAFKA_REPLICATION_FACTOR"]) == 3
    assert int(app["TDA_KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    assert int(app["TDA_KAFKA_PARTITIONS"]) >= Settings().kafka.partitions >= 3
    assert app["TDA_KAFKA_ENABLED"] == "true"


def test_app_settings_names_and_topics_match_the_settings(compose):
    names = Settings.env_names()
    defaults = Settings()
    for name in ("ray-head", "ray-worker"):
        env = _env(compose["services"][name])
        for key in env:
            if key.startswith("TDA_"):
                assert key in names, f"{name}: {key} is not a setting"
        assert env["TDA_KAFKA_RAW_TOPIC"] == defaults.kafka.raw_topic == "raw_data_events"
        assert env["TDA_KAFKA_RESULTS_TOPIC"] == defaults.kafka.results_topic == "tda_feature_results"
        assert env["TDA_KAFKA_STATS_TOPIC"] == defaults.kafka.stats_topic == "tda_feature_stats"
        # Every broker, on the port the local default bootstrap uses.
        local_port = defaults.kafka.bootstrap.rsplit(":", 1)[1]
        servers = env["TDA_KAFKA_BOOTSTRAP"].split(",")
        assert sorted(s.split(":")[0] for s in servers) == sorted(_kafka_services(compose))
        assert {s.split(":")[1] for s in servers} == {local_port}


def test_host_ports_bind_loopback_and_match_local_ports(compose):
    published: dict[tuple[str, int], int] = {}
    for name, svc in compose["services"].items():
        for spec in svc.get("ports", []):
            host_ip, host_port_s, container_port = str(spec).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {spec} beyond loopback"
            published[(name, int(container_port))] = int(host_port_s)
    settings = Settings()
    assert published[("ray-head", settings.port)] == settings.port  # the API on the same port as `make run`
    local_kafka_port = int(settings.kafka.bootstrap.rsplit(":", 1)[1])
    host_kafka_ports = [p for (n, _), p in published.items() if n.startswith("kafka-")]
    assert local_kafka_port in host_kafka_ports
    assert len(set(host_kafka_ports)) == 3
    for name, svc in _kafka_services(compose).items():
        env = _env(svc)
        host_port = published[(name, 19092)]
        assert f"HOST://127.0.0.1:{host_port}" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_ray_head_and_worker_share_the_app_image(compose, dockerfile_args):
    head, worker = compose["services"]["ray-head"], compose["services"]["ray-worker"]
    assert head["build"]["dockerfile"] == "docker/Dockerfile"
    assert worker["image"] == head["image"]
    assert "ray start --head" in head["command"] and "tda-ray serve" in head["command"]
    assert "ray start --address=ray-head:6379" in worker["command"]
    assert {k: str(v) for k, v in head["build"]["args"].items()} == {
        "PYTHON_VERSION": dockerfile_args["PYTHON_VERSION"],
        "RAY_VERSION": dockerfile_args["RAY_VERSION"],
    }


def test_image_versions_match_the_local_environment(dockerfile_args):
    assert dockerfile_args["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert dockerfile_args["RAY_VERSION"] == metadata.version("ray")
    text = DOCKERFILE.read_text()
    assert re.search(r"^EXPOSE .*\b8000\b", text, flags=re.M)
    assert "COPY schemas" in text  # the message schema ships in the image


def test_flink_services_match_the_flink_job_version(compose):
    req = (REPO_ROOT / "flink" / "requirements.txt").read_text()
    m = re.search(r"^apache-flink==([\d.]+)", req, flags=re.M)
    assert m, "flink/requirements.txt must pin apache-flink"
    jm, tm = compose["services"]["flink-jobmanager"], compose["services"]["flink-taskmanager"]
    for svc in (jm, tm):
        assert svc["image"].startswith(f"flink:{m.group(1)}-")
    assert jm["command"] == "jobmanager" and tm["command"] == "taskmanager"
    props = dict(re.findall(r"^\s*([\w.]+):\s*(\S+)\s*$", _env(tm)["FLINK_PROPERTIES"], flags=re.M))
    slots, parallelism = int(props["taskmanager.numberOfTaskSlots"]), int(props["parallelism.default"])
    partitions = int(_env(compose["services"]["ray-head"])["TDA_KAFKA_PARTITIONS"])
    # Every source reader gets the same number of partitions, and every reader gets a slot.
    assert parallelism <= slots
    assert partitions % parallelism == 0
