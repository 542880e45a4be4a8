"""Vietoris–Rips of a large point cloud through landmarks chosen with Ray.

The Rips complex of a million points is out of reach, so :func:`landmark_rips` computes it on ``N``
landmarks ``L`` chosen from the cloud ``X`` by greedy max-min sampling (:mod:`tda_ray.distributed.sampling`).
Every point lies within the covering radius ``eps = max_x min_l |x - l|`` of a landmark; as ``L`` is a
subset of ``X``, the Gromov–Hausdorff distance between them is at most ``eps`` and stability of Rips
persistence bounds the bottleneck distance between the two diagrams by ``2 * eps``.  ``eps`` is reported
with every result and is exact, not an estimate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import ray

from tda_ray.distributed.sampling import DEFAULT_CANDIDATES, LandmarkSample, farthest_point_sample
from tda_ray.distributed.session import connect_ray, ray_error_cause
from tda_ray.engine.params import RipsParams, RunOptions, split_call
from tda_ray.engine.result import PersistenceResult
from tda_ray.engine.rips import EngineCancelled, run_rips
from tda_ray.engine.summary import LandmarkInfo

__all__ = ["LandmarkResult", "landmark_rips", "run_landmark_rips"]

FloatArray = npt.NDArray[np.float64]


@dataclass
class LandmarkResult:
    """Rips persistence of the landmarks, with what bounds its distance to the full cloud's diagrams."""

    result: PersistenceResult  # diagrams of the landmarks' Rips filtration
    sample: LandmarkSample
    requested: int
    rips_s: float

    @property
    def diagrams(self) -> list[FloatArray]:
        return self.result.diagrams

    @property
    def n_landmarks(self) -> int:
        return self.sample.n_landmarks

    @property
    def eps(self) -> float:
        return self.sample.eps

    @property
    def bottleneck_bound(self) -> float:
        """Upper bound on the bottleneck distance to the full cloud's diagrams (2 eps)."""
        return 2.0 * self.sample.eps

    def landmark_info(self) -> LandmarkInfo:
        s = self.sample
        return LandmarkInfo(
            requested=self.requested,
            count=s.n_landmarks,
            eps=s.eps,
            bottleneck_bound=self.bottleneck_bound,
            n_points=s.n_points,
            rounds=s.rounds,
            workers=s.n_workers,
            read_s=s.read_s,
            select_s=s.select_s,
            rips_s=self.rips_s,
            shard_peak_rss_bytes=max(s.shard_peak_rss, default=0),
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The engine's JSON form for the whole cloud (``n_points``) plus a ``landmarks`` object."""
        out = self.result.to_json_dict()
        out["n_points"] = self.sample.n_points
        out["landmarks"] = self.landmark_info().model_dump()
        return out


def run_landmark_rips(
    source: Any,
    params: RipsParams,
    options: RunOptions | None = None,
    *,
    columns: list[str] | None = None,
    n_workers: int | None = None,
    worker_cpus: float = 1.0,
    candidates: int = DEFAULT_CANDIDATES,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
    address: str | None = None,
    rips_cpus: float | None = None,
    rips_memory: Callable[[FloatArray], int] | None = None,
) -> LandmarkResult:
    """:func:`landmark_rips` with checked parameters (``params.landmarks`` set).

    ``rips_memory(landmarks)``: bytes the Rips task reserves (Ray's ``memory`` resource) and its engine may
    use, decided once the landmarks are known (with ``rips_cpus``).
    """
    requested = params.landmark_count()
    if requested is None:
        raise ValueError("landmarks must be a positive integer or 'auto' for a landmark run")
    options = options or RunOptions()
    engine = params.engine_params()

    def half(offset: float) -> Callable[[float], None] | None:
        if progress is None:
            return None
        return lambda f: progress(offset + 0.5 * min(max(float(f), 0.0), 1.0))

    with connect_ray(address):
        sample = farthest_point_sample(
            source,
            requested,
            columns=columns,
            n_workers=n_workers,
            worker_cpus=worker_cpus,
            candidates=candidates,
            progress=half(0.0),
            cancel=cancel,
        )
        t0 = time.perf_counter()
        if rips_cpus is not None:
            memory = rips_memory(sample.landmarks) if rips_memory is not None else None
            if memory is not None:
                options = options.model_copy(update={"memory_limit": memory})
            res = _rips_in_task(sample.landmarks, engine, options, rips_cpus, memory, half(0.5), cancel)
    if rips_cpus is None:
        t0 = time.perf_counter()
        res = run_rips(sample.landmarks, engine, options, progress=half(0.5), cancel=cancel)
    out = LandmarkResult(result=res, sample=sample, requested=requested, rips_s=time.perf_counter() - t0)
    res.extras["landmarks"] = out.landmark_info()
    return out


def landmark_rips(source: Any, n_landmarks: int | str = "auto", **kwargs: Any) -> LandmarkResult:
    """Vietoris–Rips persistence of ``source`` through ``n_landmarks`` greedy max-min landmarks.

    ``source`` is anything :func:`~tda_ray.distributed.datasource.read_points` reads (``.npy``/Parquet path,
    folder or URI; Dataset; array).  Keywords: the Rips parameters (``maxdim``, ``threshold``, ``coeff``),
    run options (``n_threads``, ``memory_limit``), and those of :func:`run_landmark_rips` (``columns``,
    ``n_workers``, ``progress``, ``cancel``, ``address``, ...).  The selection runs on Ray (the connected
    cluster, else ``address``, else a local instance started and stopped here); Rips on the landmarks runs
    in this process.  ``progress`` gets 0..0.5 for the selection and 0.5..1 for Rips; ``cancel`` stops
    either.  The result reports ``eps`` and the ``2 * eps`` bound.

    ``rips_cpus``: run the Rips step as a Ray task reserving that many CPUs instead of in this process —
    for callers that are themselves zero-CPU Ray tasks coordinating the selection (the service's jobs).
    """
    run_keys = ("columns", "n_workers", "worker_cpus", "candidates", "progress", "cancel", "address", "rips_cpus")
    run = {k: kwargs.pop(k) for k in run_keys if k in kwargs}
    params, options = split_call(RipsParams, {**kwargs, "landmarks": n_landmarks})
    return run_landmark_rips(source, params, options, **run)


def _rips_stream(landmarks: FloatArray, params: RipsParams, options: RunOptions) -> Iterator[tuple[str, Any]]:
    """Rips of the landmarks as a streaming generator task: ("progress", fraction) every 0.25 s while the
    engine runs in a thread of the task, then ("result", PersistenceResult)."""
    latest = [0.0]
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["result"] = run_rips(landmarks, params, options, progress=lambda f: latest.__setitem__(0, f))
        except BaseException as exc:  # handed to the generator
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="tda-landmark-rips", daemon=True).start()
    while not done.wait(0.25):
        yield "progress", latest[0]
    if "error" in outcome:
        raise outcome["error"]
    yield "result", outcome["result"]


_RipsStream: Any = ray.remote(_rips_stream)


def _rips_in_task(
    landmarks: FloatArray,
    params: RipsParams,
    options: RunOptions,
    cpus: float,
    memory: int | None,
    progress: Callable[[float], None] | None,
    cancel: Any | None,
) -> PersistenceResult:
    """Rips of the landmarks as a Ray task holding ``cpus`` (and ``memory`` bytes), its progress streamed
    back; ``cancel`` cancels it."""
    reserve = {"memory": memory} if memory else {}
    stream = _RipsStream.options(num_cpus=cpus, max_retries=1, **reserve).remote(landmarks, params, options)
    try:
        for ref in stream:
            kind, value = ray.get(ref)
            if kind == "result":
                out: PersistenceResult = value
                if progress is not None:
                    progress(1.0)
                return out
            if progress is not None:
                progress(float(value))
            if cancel is not None and cancel.cancelled:
                ray.cancel(stream, force=True)
                raise EngineCancelled("cancelled during Rips on the landmarks")
    except ray.exceptions.RayTaskError as exc:
        raise ray_error_cause(exc) from None
    raise RuntimeError("the Rips task of the landmarks ended without a result")
