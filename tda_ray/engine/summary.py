"""Typed summaries of a result: what the service stores next to the diagrams, shows in a result and
publishes in the Kafka message — computed once, from the diagrams, when the result is made."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tda_ray.engine import diagrams as dg
from tda_ray.engine.result import PersistenceResult

__all__ = ["CubicalSummary", "DiagramSummary", "LandmarkInfo", "RipsSummary", "cubical_summary", "rips_summary"]


class LandmarkInfo(BaseModel):
    """How a landmark run subsampled its cloud, and what that costs in accuracy."""

    model_config = ConfigDict(extra="ignore")

    requested: int = Field(description='Landmarks asked for ("auto" resolved).')
    count: int = Field(description="Landmarks used: fewer than requested only when every point is one (eps 0).")
    eps: float = Field(description="Covering radius: every point lies within eps of a landmark (exact).")
    bottleneck_bound: float = Field(description="2 eps: bound on the bottleneck distance to the exact diagrams.")
    n_points: int = Field(description="Points of the whole cloud.")
    rounds: int = Field(description="Passes over the data during the selection.")
    workers: int = Field(description="Shard actors that held the cloud.")
    select_s: float = Field(description="Seconds spent choosing landmarks (reading the blocks: read_s).")
    read_s: float
    rips_s: float = Field(description="Seconds of Rips on the landmarks.")
    shard_peak_rss_bytes: int = Field(default=0, description="Largest peak resident memory of a shard process.")


class DiagramSummary(BaseModel):
    """Numbers every persistence result carries, per homology dimension."""

    # Stored summaries of older versions carry more keys (their parameters): ignored.
    model_config = ConfigDict(extra="ignore")

    algorithm: str
    betti: list[int] = Field(description="Classes alive at the end of the filtration, per dimension.")
    n_pairs: list[int]
    total_persistence: list[float]
    persistence_entropy: list[float]
    elapsed_s: float = Field(description="Engine time of the job in seconds (landmark selection included).")


class RipsSummary(DiagramSummary):
    n_points: int
    dim: int
    landmarks: LandmarkInfo | None = Field(default=None, description="Set for landmark jobs: count, eps, timings.")


def rips_summary(
    result: PersistenceResult, *, n_points: int, dim: int, elapsed_s: float, landmarks: LandmarkInfo | None = None
) -> RipsSummary:
    d = result.diagrams
    return RipsSummary(
        algorithm="vietoris_rips",
        n_points=n_points,
        dim=dim,
        betti=dg.essential_counts(d),
        n_pairs=dg.pair_counts(d),
        total_persistence=[float(x) for x in dg.total_persistence(d)],
        persistence_entropy=[float(x) for x in dg.persistence_entropy(d)],
        elapsed_s=elapsed_s,
        landmarks=landmarks,
    )


class CubicalSummary(DiagramSummary):
    shape: list[int] = Field(description="Shape of the image or volume.")
    n_points: int = Field(description="Pixels (voxels) of the image.")
    construction: str = Field(description="'V' (pixels are vertices) or 'T' (pixels are top cells).")


def cubical_summary(result: PersistenceResult, *, shape: tuple[int, ...], elapsed_s: float) -> CubicalSummary:
    d = result.diagrams
    return CubicalSummary(
        algorithm="cubical",
        shape=[int(n) for n in shape],
        n_points=result.n_points,
        construction=str(result.extras.get("construction", "V")),
        betti=dg.essential_counts(d),
        n_pairs=dg.pair_counts(d),
        total_persistence=[float(x) for x in dg.total_persistence(d)],
        persistence_entropy=[float(x) for x in dg.persistence_entropy(d)],
        elapsed_s=elapsed_s,
    )
