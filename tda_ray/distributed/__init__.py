"""Ray: connecting to a cluster, point clouds as Ray Datasets, landmarks of large clouds, batches of many
clouds, batches as Ray Jobs, and the transformers' ``n_jobs`` on Ray (:mod:`~.joblib`).  Every module here
imports Ray at its top (it is Ray's code)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tda_ray.distributed.batch import run_batch
    from tda_ray.distributed.datasource import read_points
    from tda_ray.distributed.joblib import ray_backend
    from tda_ray.distributed.landmarks import LandmarkResult, landmark_rips
    from tda_ray.distributed.ray_jobs import submit_batch
    from tda_ray.distributed.sampling import farthest_point_sample
    from tda_ray.distributed.session import connect_ray

__all__ = [
    "LandmarkResult",
    "connect_ray",
    "farthest_point_sample",
    "landmark_rips",
    "ray_backend",
    "read_points",
    "run_batch",
    "submit_batch",
]

_LAZY = {
    "run_batch": "batch",
    "read_points": "datasource",
    "ray_backend": "joblib",
    "LandmarkResult": "landmarks",
    "landmark_rips": "landmarks",
    "submit_batch": "ray_jobs",
    "farthest_point_sample": "sampling",
    "connect_ray": "session",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'tda_ray.distributed' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"tda_ray.distributed.{module}"), name)
        globals()[name] = value
        return value
