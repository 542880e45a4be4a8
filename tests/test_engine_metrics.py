"""Metrics between points and sparse distance matrices: the engine against ripser.py.

Each metric the engine computes from a point cloud must give ripser.py's diagrams on SciPy's ``pdist`` matrix of
the same cloud; a scipy.sparse distance matrix must give ripser.py's diagrams on the same sparse matrix and ours
on the dense matrix with the threshold it implies.  The memory estimate must use the run's metric.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import ripser as ripser_module
from scipy import sparse
from scipy.spatial.distance import pdist, squareform

from tda_ray.engine.params import RipsParams, RunOptions
from tda_ray.engine.rips import MemoryLimitError, estimate_memory, ripser, run_rips, vietoris_rips
from tests.support.engine_compare import assert_same_diagrams, normalize, ripser_py

MiB = 2**20
# Our names -> SciPy's pdist name and keywords.
METRICS: dict[str, tuple[str, dict[str, Any], float]] = {
    "euclidean": ("euclidean", {}, 2.0),
    "manhattan": ("cityblock", {}, 2.0),
    "chebyshev": ("chebyshev", {}, 2.0),
    "cosine": ("cosine", {}, 2.0),
    "minkowski": ("minkowski", {"p": 3.0}, 3.0),
}


def _reference_matrix(X: npt.NDArray[np.float64], metric: str) -> npt.NDArray[np.float64]:
    name, kwargs, _ = METRICS[metric]
    # SciPy's cosine can come out a rounding error below zero for parallel rows; a distance is never negative.
    return np.asarray(squareform(np.clip(pdist(X, name, **kwargs), 0.0, None)), dtype=np.float64)


def _ours(X: Any, metric: str, maxdim: int, threshold: float | None, coeff: int, **kw: Any) -> list[Any]:
    p = METRICS[metric][2]
    res = vietoris_rips(X, maxdim=maxdim, threshold=threshold, coeff=coeff, metric=metric, metric_p=p, **kw)
    return normalize(res.diagrams, maxdim)


def _clouds() -> list[tuple[str, npt.NDArray[np.float64], int, float | None, int]]:
    rng = np.random.default_rng(11)
    grid = rng.integers(1, 4, size=(40, 3)).astype(float)  # many ties (and no zero row for cosine)
    base = rng.normal(size=(25, 4))
    dup = np.vstack([base, base[:8], base[:3]])  # repeated points
    return [
        ("random", rng.normal(size=(45, 3)), 2, None, 2),
        ("ties", grid, 2, None, 2),
        ("duplicates", dup, 1, None, 2),
        ("threshold", rng.uniform(size=(60, 2)) + 0.5, 1, 0.37, 2),
        ("z3", rng.normal(size=(35, 3)), 2, None, 3),
        ("tiny-1", rng.normal(size=(1, 3)), 2, None, 2),
        ("tiny-2", rng.normal(size=(2, 3)), 1, None, 2),
        ("tiny-3", rng.normal(size=(3, 2)), 2, None, 2),
    ]


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("case", _clouds(), ids=lambda c: c[0])
def test_metric_matches_ripser_on_the_pdist_matrix(metric: str, case: Any) -> None:
    label, X, maxdim, threshold, coeff = case
    if metric == "cosine" and threshold is not None:
        threshold = 0.05  # cosine distances of points near (1, 1) are small
    ours = _ours(X, metric, maxdim, threshold, coeff)
    ref = ripser_py(_reference_matrix(X, metric), maxdim, threshold, coeff)
    assert_same_diagrams(ours, ref, f"{metric}/{label}")


@pytest.mark.parametrize("metric", list(METRICS))
def test_metric_on_neighbour_lists_of_a_large_cloud(metric: str) -> None:
    # A dense matrix over a quarter of the limit: the run builds neighbour lists from the points directly (a
    # sweep along one axis for the Minkowski family, every pair for cosine).
    X = np.random.default_rng(3).uniform(size=(1500, 3)) + 0.1
    threshold = 0.005 if metric == "cosine" else 0.12
    p = METRICS[metric][2]
    res = vietoris_rips(X, maxdim=1, threshold=threshold, metric=metric, metric_p=p, memory_limit=8 * MiB)
    assert res.extras["sparse"]
    ref = ripser_py(_reference_matrix(X, metric), 1, threshold, 2)
    assert_same_diagrams(normalize(res.diagrams, 1), ref, metric)


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize(("n", "threshold", "limit"), [(200, None, 0), (300, 0.3, 0), (1500, 0.1, 8 * MiB)])
def test_estimate_uses_the_runs_metric(metric: str, n: int, threshold: float | None, limit: int) -> None:
    X = np.random.default_rng(n).uniform(size=(n, 3)) + 0.1
    if metric == "cosine" and threshold is not None:
        threshold /= 20
    # Without a collapse, which would run on neighbour lists the estimate does not foresee.
    params = RipsParams.parse(
        maxdim=2, threshold=threshold, metric=metric, metric_p=METRICS[metric][2], collapse_edges=False
    )
    try:
        est = estimate_memory(X, params, limit or None)
    except MemoryLimitError as exc:  # then the run refuses the same, up front
        with pytest.raises(MemoryLimitError) as refused:
            run_rips(X, params, RunOptions.parse(memory_limit=limit or None))
        assert str(refused.value) == str(exc)
        return
    run = run_rips(X, params, RunOptions.parse(memory_limit=limit or None))
    assert est.complete
    assert est.sparse == run.extras["sparse"]
    assert est.threshold == run.extras["effective_threshold"]
    if est.sparse:  # the estimate is the peak: the dense matrix or pair lists held while the lists are built
        assert est.bytes >= run.stats["estimated_bytes"]
    else:
        assert est.bytes == run.stats["estimated_bytes"]


def test_the_estimate_differs_between_metrics() -> None:
    # The same cloud and threshold keep different edges under different metrics: the estimate must see that.
    X = np.random.default_rng(0).uniform(size=(300, 3))
    est = {m: estimate_memory(X, RipsParams.parse(maxdim=2, threshold=0.3, metric=m), None).bytes for m in METRICS}
    assert est["chebyshev"] > est["euclidean"] > est["manhattan"]


def test_minkowski_with_a_large_exponent_does_not_overflow() -> None:
    # |x|^40 of a difference of 1e10 is beyond a double (SciPy's pdist gives inf); the distance is not.
    X = np.random.default_rng(6).normal(size=(30, 3)) * 1e10
    diff = np.abs(X[:, None, :] - X[None, :, :])
    top = diff.max(-1, keepdims=True)
    D = top[..., 0] * (np.divide(diff, top, out=np.zeros_like(diff), where=top > 0) ** 40).sum(-1) ** (1 / 40)
    ours = normalize(vietoris_rips(X, maxdim=1, metric="minkowski", metric_p=40).diagrams, 1)
    assert_same_diagrams(ours, ripser_py(D, 1, None, 2), "minkowski p=40")


# --------------------------------------------------------------------------- sparse distance matrices


def _sparse_case(seed: int, threshold: float) -> tuple[npt.NDArray[np.float64], sparse.coo_matrix]:
    """A cloud with repeated points, its dense matrix and the sparse matrix of its pairs within ``threshold``
    (zero distances stored explicitly, so they are edges)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(size=(50, 2))
    X = np.vstack([base, base[:5]])
    D = squareform(pdist(X))
    i, j = np.nonzero((threshold >= D) & ~np.eye(len(X), dtype=bool))
    return D, sparse.coo_matrix((D[i, j], (i, j)), shape=D.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("form", ["coo", "csr", "upper"])
def test_sparse_matrix_matches_ripser_and_our_dense_path(seed: int, form: str) -> None:
    D, S = _sparse_case(seed, 0.25)
    M: Any = {"coo": S, "csr": S.tocsr(), "upper": sparse.triu(S, format="coo")}[form]
    ours = normalize(vietoris_rips(M, maxdim=2, distance_matrix=True).diagrams, 2)
    ref = normalize(ripser_module.ripser(M, maxdim=2, distance_matrix=True)["dgms"], 2)
    assert_same_diagrams(ours, ref, f"sparse {form} vs ripser.py")
    dense = normalize(vietoris_rips(D, maxdim=2, threshold=0.25, distance_matrix=True).diagrams, 2)
    assert_same_diagrams(ours, dense, f"sparse {form} vs dense")
    # A threshold below the stored entries cuts them further, as in ripser.py.
    ours_t = normalize(vietoris_rips(M, maxdim=1, threshold=0.15, distance_matrix=True).diagrams, 1)
    ref_t = normalize(ripser_module.ripser(M, maxdim=1, thresh=0.15, distance_matrix=True)["dgms"], 1)
    assert_same_diagrams(ours_t, ref_t, f"sparse {form} thresholded")


def test_sparse_lower_triangle_alone_is_the_whole_matrix() -> None:
    # ripser.py reads only the entries above the diagonal; we take a pair from either triangle.
    _, S = _sparse_case(4, 0.3)
    full = normalize(vietoris_rips(S, maxdim=1, distance_matrix=True).diagrams, 1)
    lower = normalize(vietoris_rips(sparse.tril(S), maxdim=1, distance_matrix=True).diagrams, 1)
    assert_same_diagrams(lower, full, "lower triangle")
    assert len(full[0]) > 0 and np.isinf(full[0][:, 1]).sum() >= 1


def test_sparse_matrix_with_absent_pairs_is_disconnected() -> None:
    # Two triangles, no edge between them: two essential H0 classes and no H1 (ripser.py agrees).
    rows = np.array([0, 1, 0, 3, 4, 3])
    cols = np.array([1, 2, 2, 4, 5, 5])
    vals = np.array([1.0, 1.0, 1.5, 2.0, 2.0, 2.5])
    S = sparse.coo_matrix((vals, (rows, cols)), shape=(6, 6))
    ours = normalize(vietoris_rips(S, maxdim=1, distance_matrix=True).diagrams, 1)
    ref = normalize(ripser_module.ripser(S, maxdim=1, distance_matrix=True)["dgms"], 1)
    assert_same_diagrams(ours, ref, "disconnected")
    assert np.isinf(ours[0][:, 1]).sum() == 2


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (sparse.coo_matrix(([1.0, 2.0], ([0, 1], [1, 0])), shape=(3, 3)), "not symmetric"),
        (sparse.coo_matrix(([1.0, 0.5], ([0, 1], [1, 1])), shape=(3, 3)), "diagonal"),
        (sparse.coo_matrix(([-1.0], ([0], [1])), shape=(3, 3)), "non-negative"),
        (sparse.coo_matrix(([np.inf], ([0], [1])), shape=(3, 3)), "finite"),
        (sparse.coo_matrix(([1.0], ([0], [1])), shape=(3, 4)), "square"),
        (sparse.coo_matrix((0, 0)), "empty"),
    ],
)
def test_bad_sparse_matrix_is_refused(matrix: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vietoris_rips(matrix, distance_matrix=True)


# --------------------------------------------------------------------------- bad parameters


def test_bad_metric_and_exponent_are_refused() -> None:
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match=r"metric must be one of 'euclidean', .*, got 'hamming'"):
        vietoris_rips(X, metric="hamming")
    with pytest.raises(ValueError, match=r"metric must be one of .*, got 3"):
        vietoris_rips(X, metric=3)  # type: ignore[arg-type]
    for p in (0.5, math.inf, math.nan, True, "2"):
        with pytest.raises(ValueError, match="metric_p must be a finite number >= 1"):
            vietoris_rips(X, metric="minkowski", metric_p=p)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metric_p is used by metric 'minkowski' only"):
        vietoris_rips(X, metric_p=3.0)
    with pytest.raises(ValueError, match="metric applies to a point cloud"):
        vietoris_rips(squareform(pdist(X)), distance_matrix=True, metric="manhattan")
    with pytest.raises(ValueError, match="landmarks are chosen in Euclidean space"):
        RipsParams.parse(metric="cosine", landmarks=5)


def test_cosine_refuses_a_zero_row_by_its_index() -> None:
    X = np.random.default_rng(0).normal(size=(10, 3))
    X[7] = 0.0
    with pytest.raises(ValueError, match="zero vector: row 7"):
        vietoris_rips(X, metric="cosine")
    with pytest.raises(ValueError, match="zero vector: row 7"):
        estimate_memory(X, RipsParams.parse(metric="cosine"))
    vietoris_rips(X, metric="euclidean")  # other metrics take it


def test_metric_distances_beyond_float32_are_refused() -> None:
    # Manhattan sums the coordinates: 1e37 in 100 dimensions goes beyond float32 where Chebyshev does not.
    X = np.zeros((3, 100))
    X[0] = 1e37
    with pytest.raises(ValueError, match="float32"):
        vietoris_rips(X, metric="manhattan")
    assert np.isfinite(vietoris_rips(X, metric="chebyshev", maxdim=0).diagrams[0][:-1]).all()


# --------------------------------------------------------------------------- the ripser.py-compatible wrapper


@pytest.mark.parametrize(
    "metric", ["euclidean", "l2", "manhattan", "cityblock", "l1", "chebyshev", "cosine", "minkowski"]
)
def test_ripser_wrapper_takes_ripser_py_metric_names(metric: str) -> None:
    X = np.random.default_rng(2).normal(size=(40, 3))
    ours = normalize(ripser(X, maxdim=2, metric=metric)["dgms"], 2)
    ref = normalize(ripser_module.ripser(X, maxdim=2, metric=metric)["dgms"], 2)
    assert_same_diagrams(ours, ref, metric, rel_tol=1e-5)


@pytest.mark.filterwarnings("ignore:The input matrix is square")
def test_ripser_wrapper_precomputed_and_sparse() -> None:
    X = np.random.default_rng(3).normal(size=(30, 2))
    D = squareform(pdist(X))
    pre = normalize(ripser(D, metric="precomputed")["dgms"], 1)
    assert_same_diagrams(pre, normalize(ripser_module.ripser(D, metric="precomputed")["dgms"], 1), "precomputed")
    _, S = _sparse_case(5, 0.3)
    ours = normalize(ripser(S.tocsr(), distance_matrix=True)["dgms"], 1)
    ref = normalize(ripser_module.ripser(S.tocsr(), distance_matrix=True)["dgms"], 1)
    assert_same_diagrams(ours, ref, "sparse")
    with pytest.raises(ValueError, match="metric must be one of"):
        ripser(X, metric="hamming")
