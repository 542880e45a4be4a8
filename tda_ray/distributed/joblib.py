"""``n_jobs`` of the scikit-learn transformers on a Ray cluster, through Ray's joblib backend
(:mod:`ray.util.joblib`).

The transformers (:mod:`tda_ray.engine.learn`) split a collection into ``effective_n_jobs(n_jobs)`` even
slices and hand them to :class:`joblib.Parallel`; they know nothing of Ray.  Inside :func:`ray_backend` every
joblib ``Parallel`` of this process (the transformers', scikit-learn's grid searches and cross-validations)
sends its tasks to Ray instead, and ``n_jobs=-1`` means every CPU of the cluster::

    from tda_ray import VietorisRipsPersistence
    from tda_ray.distributed.joblib import ray_backend

    with ray_backend(address="auto"):               # the cluster RAY_ADDRESS / `ray start` points at
        diagrams = VietorisRipsPersistence(n_jobs=-1).fit_transform(clouds)

Each slice's point clouds travel to a worker with the task (pickled), the diagrams come back; a Ray worker needs
tda-ray installed (it is on a cluster started from ``cluster.yaml``).  Outside the context ``n_jobs`` is plain
joblib: threads for :class:`~tda_ray.VietorisRipsPersistence` (the engine releases the GIL), processes for the
NumPy vectorizations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import joblib
from ray.util.joblib import register_ray

from tda_ray.distributed.session import connect_ray

__all__ = ["BACKEND", "ray_backend", "register"]

# The name Ray registers its backend under.
BACKEND = "ray"


def register() -> None:
    """Make ``joblib.parallel_config(backend="ray")`` available (Ray's backend; idempotent)."""
    register_ray()


@contextlib.contextmanager
def ray_backend(address: str | None = None, num_cpus: int | None = None, n_jobs: int | None = None) -> Iterator[None]:
    """Run joblib's tasks on Ray inside the block.

    ``address`` and ``num_cpus`` are :func:`~tda_ray.distributed.session.connect_ray`'s: the Ray this process is
    on, else the one at ``address``, else a private local one (shut down on exit).  ``n_jobs`` is the default
    for transformers whose ``n_jobs`` is None (None: joblib's default of one job per call).
    """
    with connect_ray(address, num_cpus):
        register()
        with joblib.parallel_config(backend=BACKEND, n_jobs=n_jobs):
            yield
