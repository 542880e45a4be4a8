"""Analysis of finished jobs: vectorizations of a job's diagrams and distances between two jobs' diagrams
(computed by the jobs layer, :mod:`tda_ray.service.jobs.analysis`)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query

from tda_ray.service.http.deps import Auth, ServiceDep
from tda_ray.service.http.models import DistanceOut, VectorsOut
from tda_ray.service.http.openapi import R401, R404, R409, R422
from tda_ray.service.jobs.analysis import DistanceQuery, VectorsQuery

router = APIRouter(tags=["analysis"], dependencies=Auth)


@router.get(
    "/v1/jobs/{job_id}/vectors",
    response_model=VectorsOut,
    response_model_exclude_none=True,
    operation_id="get_vectors",
    responses={**R401, **R404, **R409, **R422},
)
def get_vectors(job_id: str, query: Annotated[VectorsQuery, Query()], service: ServiceDep) -> VectorsOut:
    """A vectorization of the job's diagrams, one per homology dimension (``dim``: just one).

    Curves are sampled on ``n_bins`` values over ``[t_min, t_max]`` (default: smallest birth to largest finite
    death of that dimension); essential classes count in ``betti_curve`` and are left out of every other kind.
    A parameter of another kind than the one asked for is a 422.
    """
    vectors = service.vectors(job_id, query)
    return VectorsOut.model_validate({"job_id": job_id, "kind": query.kind, "params": query.used(), "vectors": vectors})


@router.get(
    "/v1/jobs/{job_id}/distance/{other_id}",
    response_model=DistanceOut,
    operation_id="get_distance",
    responses={**R401, **R404, **R409, **R422},
)
def get_distance(
    job_id: str, other_id: str, query: Annotated[DistanceQuery, Query()], service: ServiceDep
) -> DistanceOut:
    """Bottleneck or q-Wasserstein distance between two succeeded jobs' diagrams, per homology dimension both
    have (409 unless both succeeded).  Diagrams with different numbers of essential classes are infinitely far
    apart: ``distance`` is null and ``infinite`` true."""
    wasserstein = query.metric == "wasserstein"
    internal = query.internal_p if math.isfinite(query.internal_p) else "inf"
    return DistanceOut.model_validate(
        {
            "job_a": job_id,
            "job_b": other_id,
            "metric": query.metric,
            "p": query.p if wasserstein else None,
            "internal_p": internal if wasserstein else None,
            "distances": service.distance(job_id, other_id, query),
        }
    )
