"""The engine's memory estimate before a run (``estimate_memory``): the run's own choices and refusals.

The service refuses work at submit and reserves memory for a job from this estimate, so it must agree with
what the engine does when it runs without edge collapse: the same up-front refusal (same message), and for
a run on a dense matrix the same byte count the run reports; it must stay cheap (no distance matrix held).
It assumes no collapse (what a collapse removes is known only once it has run), so with collapse on or
"auto" it is an upper bound: what it admits, the run admits too.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tda_ray import _core
from tda_ray.engine.params import RipsParams
from tda_ray.engine.rips import MemoryLimitError, estimate_memory

MiB = 2**20


def _run(
    X: npt.NDArray[np.float64],
    maxdim: int,
    threshold: float | None,
    limit: int,
    collapse: _core.CollapseMode = _core.CollapseMode.off,
) -> dict[str, Any]:
    thr = math.inf if threshold is None else threshold
    try:
        out = _core.rips_from_points(X, maxdim, thr, 2, 1, limit, None, None, collapse)
    except MemoryLimitError as exc:
        return {"refused": str(exc)}
    return {"bytes": int(out["estimated_bytes"]), "sparse": bool(out["sparse"]), "threshold": out["threshold"]}


def _estimate(X: npt.NDArray[np.float64], maxdim: int, threshold: float | None, limit: int) -> dict[str, Any]:
    try:
        e = estimate_memory(X, RipsParams.parse(maxdim=maxdim, threshold=threshold), limit or None)
    except MemoryLimitError as exc:
        return {"refused": str(exc)}
    assert e.complete
    return {"bytes": e.bytes, "sparse": e.sparse, "threshold": e.threshold}


def _cases(count: int, seed: int) -> list[tuple[npt.NDArray[np.float64], int, float | None, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n, d = int(rng.integers(4, 500)), int(rng.integers(1, 5))
        X = rng.normal(size=(n, d)) if rng.random() < 0.7 else rng.integers(0, 4, size=(n, d)).astype(float)
        threshold = None if rng.random() < 0.4 else float(rng.uniform(0.05, 3))
        limit = int(rng.choice([MiB // 4, MiB, 4 * MiB, 64 * MiB]))
        out.append((X, int(rng.integers(0, 4)), threshold, limit))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_refuses_exactly_what_the_run_refuses_up_front(seed: int) -> None:
    refused = agreed = 0
    for X, maxdim, threshold, limit in _cases(40, seed):
        run, est = _run(X, maxdim, threshold, limit), _estimate(X, maxdim, threshold, limit)
        if "refused" in run and "while allocating" in run["refused"]:
            # Charged during the reduction (pivot tables, the reduction matrix): beyond what runs up front.
            assert "refused" not in est, (X.shape, maxdim, threshold, limit)
            continue
        assert ("refused" in run) == ("refused" in est), (X.shape, maxdim, threshold, limit, run, est)
        if "refused" in run:
            assert est["refused"] == run["refused"]
            refused += 1
            continue
        assert est["sparse"] == run["sparse"] and est["threshold"] == run["threshold"]
        if not run["sparse"]:
            assert est["bytes"] == run["bytes"]
        else:  # the estimate is the peak: the dense matrix or the pair lists held while the lists are built
            assert est["bytes"] >= run["bytes"]
        agreed += 1
    assert refused >= 3 and agreed >= 10, (refused, agreed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_with_collapse_the_estimate_is_an_upper_bound(seed: int) -> None:
    admitted = 0
    for X, maxdim, threshold, limit in _cases(40, seed):
        est = _estimate(X, maxdim, threshold, limit)
        if "refused" in est:
            continue
        run = _run(X, maxdim, threshold, limit, _core.CollapseMode.auto)
        assert "refused" not in run or "while allocating" in run["refused"], (X.shape, maxdim, threshold, run)
        admitted += 1
    assert admitted >= 10


def test_sparse_sweep_of_a_large_cloud_agrees_with_the_run() -> None:
    # Too large for a dense matrix in the limit: both go straight to neighbour lists by a sweep; the exact
    # simplex count then runs on sorted lists (no bitsets for 30000 points).
    X = np.random.default_rng(5).uniform(size=(30_000, 2))
    for maxdim, threshold, limit in [(2, 0.01, 64 * MiB), (2, 0.02, 48 * MiB), (1, 0.025, 64 * MiB)]:
        run, est = _run(X, maxdim, threshold, limit), _estimate(X, maxdim, threshold, limit)
        assert ("refused" in run) == ("refused" in est), (maxdim, threshold, run, est)
        if "refused" in run:
            assert est["refused"] == run["refused"]
        else:
            assert est["sparse"] and run["sparse"] and est["bytes"] >= run["bytes"]


def test_far_over_budget_is_refused_quickly_without_a_matrix() -> None:
    # The probe's case: 3000 points, maxdim 3, no threshold -- 4.5M pairs, ~10^14 simplices.
    X = np.random.default_rng(0).normal(size=(3000, 3))
    t0 = time.perf_counter()
    with pytest.raises(MemoryLimitError, match="too many simplices"):
        estimate_memory(X, RipsParams.parse(maxdim=3), 8 << 30)
    assert time.perf_counter() - t0 < 5.0


def test_estimate_of_a_cloud_too_large_to_examine_is_a_lower_bound() -> None:
    X = np.random.default_rng(1).normal(size=(2000, 3))
    params = RipsParams.parse(maxdim=1)
    full = estimate_memory(X, params, 2 << 30)
    cut = estimate_memory(X, params, 2 << 30, max_pairs=1000)
    assert full.complete and not cut.complete
    assert cut.bytes == 2000 * 1999 // 2 * 4 <= full.bytes  # the dense matrix, nothing else counted


def test_estimate_checks_its_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        estimate_memory(np.zeros((0, 3)), RipsParams.parse(maxdim=1))
    with pytest.raises(ValueError, match="finite"):
        estimate_memory(np.array([[0.0, np.nan]]), RipsParams.parse(maxdim=1))
