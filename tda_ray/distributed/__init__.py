"""Ray: connecting to a cluster, point clouds as Ray Datasets, landmarks of large clouds, batches of many
clouds, batches as Ray Jobs, and the transformers' ``n_jobs`` on Ray (:mod:`~.joblib`).  Every module here
imports Ray at its top (it is Ray's code)."""

from tda_ray.distributed.batch import run_batch
from tda_ray.distributed.datasource import read_points
from tda_ray.distributed.landmarks import LandmarkResult, landmark_rips
from tda_ray.distributed.ray_jobs import submit_batch
from tda_ray.distributed.sampling import farthest_point_sample
from tda_ray.distributed.session import connect_ray

__all__ = [
    "LandmarkResult",
    "connect_ray",
    "farthest_point_sample",
    "landmark_rips",
    "read_points",
    "run_batch",
    "submit_batch",
]
