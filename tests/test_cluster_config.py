"""cluster.yaml and serve_config.yaml pass Ray's own validation, and say what the deployment relies on."""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    with open(REPO / "cluster.yaml") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def serve() -> dict[str, Any]:
    with open(REPO / "serve_config.yaml") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict)
    return data


# The autoscaler's schema errors (jsonschema's, a library without type hints).
SCHEMA_ERROR: type[Exception] = importlib.import_module("jsonschema").ValidationError


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does with the file: fill in the provider's defaults, then Ray's schema and sanity checks."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared: dict[str, Any] = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_ray_validation(cluster: dict[str, Any]) -> None:
    prepared = ray_validate(cluster)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c.__setitem__("idle_timeout_minutes", "soon"),
        lambda c: c["available_node_types"]["cpu_worker"].__setitem__("min_workrs", 0),
        lambda c: c.__setitem__("head_node_type", "missing"),
        lambda c: c["available_node_types"]["cpu_worker"].__setitem__("min_workers", 50),
    ],
)
def test_validation_catches_broken_cluster_configs(cluster: dict[str, Any], breakage: Any) -> None:
    broken = copy.deepcopy(cluster)
    breakage(broken)
    with pytest.raises((SCHEMA_ERROR, ValueError)):
        ray_validate(broken)


def test_head_takes_no_compute_and_workers_autoscale(cluster: dict[str, Any]) -> None:
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"].get("CPU") == 0
    start = " ".join(cluster["head_start_ray_commands"])
    assert re.search(r"--num-cpus[= ]0\b", start) and "--autoscaling-config" in start
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    assert workers and all(t.get("min_workers", 0) == 0 for t in workers.values())
    assert cluster["max_workers"] >= 8
    assert sum(t["max_workers"] for t in workers.values()) >= cluster["max_workers"]
    assert cluster["idle_timeout_minutes"] > 0


def test_setup_installs_this_project(cluster: dict[str, Any]) -> None:
    mounts = cluster["file_mounts"]
    (remote, local), *_ = mounts.items()
    assert (REPO / local / "pyproject.toml").is_file()  # `ray up` from the repo root syncs the checkout
    setup = " && ".join(cluster["setup_commands"])
    assert remote in setup and re.search(r"pip install [\"']?\.\[server\]", setup)
    assert "cmake" in setup  # the C++ engine is built on the node


def _autoscaled(schema: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for app in schema.applications:
        for d in app.deployments:
            cfg = d.model_dump(exclude_unset=True).get("autoscaling_config")
            if cfg:
                out.append((d.name, cfg))
    return out


def test_serve_config_passes_serve_schema(serve: dict[str, Any]) -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(serve)
    assert schema.applications, "no Serve application"
    # The service scales out: some deployment has an autoscaling_config that Serve accepts and that scales.
    autoscaled = _autoscaled(schema)
    assert autoscaled, "no deployment has an autoscaling_config"
    for name, cfg in autoscaled:
        model = AutoscalingConfig(**cfg)
        assert model.max_replicas >= 2 and model.max_replicas > model.min_replicas, f"{name} does not scale"


def test_serve_validation_catches_broken_configs(serve: dict[str, Any]) -> None:
    from pydantic import ValidationError
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    with pytest.raises(ValidationError):
        ServeDeploySchema.model_validate({**serve, "applications": "tda"})
    _, cfg = _autoscaled(ServeDeploySchema.model_validate(serve))[0]
    with pytest.raises(ValidationError):
        AutoscalingConfig(**{**cfg, "min_replicas": 5, "max_replicas": 2, "initial_replicas": None})
