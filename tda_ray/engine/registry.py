"""The algorithm registry: everything the rest of the package needs to know about an algorithm.

An entry is a name, its typed parameter model, its run function and its summary.  The HTTP job schema,
the CLI arguments, the client, the batch runner and the Kafka message are derived from the entries, so an
algorithm is added by writing one module (parameters, run function, summary) and one entry in
:data:`ALGORITHMS` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tda_ray.engine import cubical, rips
from tda_ray.engine.params import Params, RipsParams, RunOptions
from tda_ray.engine.result import PersistenceResult
from tda_ray.engine.rips import MemoryEstimate, estimate_memory
from tda_ray.engine.summary import (
    CubicalSummary,
    DiagramSummary,
    LandmarkInfo,
    RipsSummary,
    cubical_summary,
    rips_summary,
)

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "Algorithm", "get_algorithm"]

RunFunction = Callable[..., PersistenceResult]


@dataclass(frozen=True)
class Algorithm:
    name: str
    title: str
    params: type[Params]
    # run(data, params, options, *, progress=None, cancel=None) -> PersistenceResult
    run: RunFunction
    summary: type[DiagramSummary]
    # summarize(result, shape of the data, elapsed seconds) -> summary
    summarize: Callable[[PersistenceResult, tuple[int, ...], float], DiagramSummary]
    # check_memory(points the engine sees, params, memory limit or None): refuses, before any data is read,
    # work that cannot fit (MemoryLimitError).
    check_memory: Callable[[int, Any, int | None], None]
    # estimate(data, params, memory limit or None): the run's up-front memory and refusals (MemoryLimitError)
    # from the data, without running it; None: check_memory is all that is known before a run.
    estimate: Callable[[Any, Any, int | None], MemoryEstimate] | None = None
    # What a job's data is: "points" (an (n, d) cloud, which landmark jobs may subsample) or "grid" (an image
    # or a volume: its values on a regular grid).
    data: str = "points"
    # The kinds of stored data it takes: "points" (an array, read as `data` says), "distance_matrix" (square;
    # Rips), "graph" (an edge list; Rips: the service turns it into a sparse distance matrix first) and
    # "image" (a PNG/TIFF upload; cubical).
    inputs: tuple[str, ...] = ("points",)

    def parse(self, values: dict[str, Any] | None = None, **kwargs: Any) -> Params:
        """Checked parameters (ValueError ``name message`` for a bad one)."""
        return self.params.parse(values, **kwargs)

    def execute(
        self,
        data: Any,
        params: Params,
        options: RunOptions | None = None,
        *,
        kind: str = "points",
        progress: Callable[[float], None] | None = None,
        cancel: Any | None = None,
    ) -> PersistenceResult:
        self.check_input(kind)
        extra = {"distance_matrix": True} if kind == "distance_matrix" else {}
        return self.run(data, params, options, progress=progress, cancel=cancel, **extra)

    def check_input(self, kind: str) -> None:
        """ValueError unless the algorithm takes data of this kind."""
        if kind not in self.inputs:
            what = kind.replace("_", " ")
            article = "an" if what[:1] in "aeiou" else "a"
            raise ValueError(
                f"algorithm {self.name!r} does not take {article} {what} (it takes: {', '.join(self.inputs)})"
            )


def _summarize_rips(result: PersistenceResult, shape: tuple[int, ...], elapsed_s: float) -> DiagramSummary:
    landmarks = result.extras.get("landmarks")
    info = LandmarkInfo.model_validate(landmarks) if landmarks is not None else None
    return rips_summary(
        result,
        n_points=info.n_points if info is not None else int(shape[0]),
        dim=int(shape[1]) if len(shape) > 1 else 0,
        elapsed_s=elapsed_s,
        landmarks=info,
    )


def _estimate_rips(points: Any, params: RipsParams, memory_limit: int | None) -> MemoryEstimate:
    return estimate_memory(points, params.engine_params(), memory_limit)


VIETORIS_RIPS = Algorithm(
    name="vietoris_rips",
    title="Vietoris–Rips persistent homology of a point cloud",
    params=RipsParams,
    run=rips.run_rips,
    summary=RipsSummary,
    summarize=_summarize_rips,
    check_memory=rips.check_memory,
    estimate=_estimate_rips,
    inputs=("points", "distance_matrix", "graph"),
)


def _summarize_cubical(result: PersistenceResult, shape: tuple[int, ...], elapsed_s: float) -> DiagramSummary:
    return cubical_summary(result, shape=shape, elapsed_s=elapsed_s)


CUBICAL = Algorithm(
    name="cubical",
    title="Cubical persistent homology of an image or a volume (sublevel filtration)",
    params=cubical.CubicalParams,
    run=cubical.run_cubical,
    summary=CubicalSummary,
    summarize=_summarize_cubical,
    check_memory=cubical.check_memory,
    data="grid",
    inputs=("points", "image"),
)

ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (VIETORIS_RIPS, CUBICAL)}
DEFAULT_ALGORITHM = VIETORIS_RIPS.name


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; supported: {', '.join(ALGORITHMS)}") from None
