"""The transformers' n_jobs on Ray: inside tda_ray.distributed.joblib.ray_backend joblib's tasks run as Ray
tasks in Ray's worker processes, with the same results as in this process."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from scipy.spatial.distance import euclidean
from support import ray_clusters

from tda_ray import Amplitude, PersistenceLandscape, VietorisRipsPersistence
from tda_ray.distributed.joblib import ray_backend

pytestmark = [pytest.mark.ray]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_clusters.local_ray(num_cpus=2):
        yield


def test_n_jobs_runs_on_ray(local_ray: None, tmp_path: Path) -> None:
    def tracing_metric(folder: str, u: np.ndarray, v: np.ndarray) -> float:
        """Euclidean distance that leaves a file named after the process computing it (defined here, so that
        it travels to the workers by value)."""
        Path(folder, str(os.getpid())).touch()
        return float(euclidean(u, v))

    rng = np.random.default_rng(0)
    X = rng.random((6, 25, 2))
    here = VietorisRipsPersistence().fit_transform(X)
    traced = VietorisRipsPersistence(metric=functools.partial(tracing_metric, str(tmp_path)), n_jobs=2)
    with ray_backend():
        backend, _ = joblib.parallel.get_active_backend()
        assert type(backend).__name__ == "RayBackend"
        on_ray = VietorisRipsPersistence(n_jobs=-1).fit_transform(X)
        traced_out = traced.fit_transform(X)
        features = Amplitude(n_jobs=2).fit_transform(on_ray)
        landscapes = PersistenceLandscape(n_jobs=2).fit_transform(on_ray)
    np.testing.assert_array_equal(on_ray, here)
    np.testing.assert_allclose(traced_out, here, rtol=1e-6)
    np.testing.assert_array_equal(features, Amplitude().fit_transform(here))
    np.testing.assert_array_equal(landscapes, PersistenceLandscape().fit_transform(here))
    workers = {int(p.name) for p in tmp_path.iterdir()}
    assert workers and os.getpid() not in workers  # computed in Ray's worker processes
    # Outside the block joblib is back to its default backend.
    assert type(joblib.parallel.get_active_backend()[0]).__name__ != "RayBackend"
