"""Engine diagrams against ripser.py and GUDHI on generated inputs.

Hypothesis clouds (floats and integer grids: massive ties, duplicates), edge sizes, thresholds, high homology
dimensions, non-Euclidean metrics, coefficients that matter (RP^2), and the sparse path against the dense one.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse.csgraph import shortest_path
from scipy.spatial.distance import cdist
from support.engine_compare import (
    Diagrams,
    assert_same_diagrams,
    euclidean_matrix,
    giotto_ph,
    gudhi_rips,
    ripser_py,
)

from tda_ray.engine import MemoryLimitError, vietoris_rips

HYPOTHESIS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
# Most cloud examples take milliseconds: run more of them.
HYPOTHESIS_CLOUDS = settings(HYPOTHESIS, max_examples=120)


def check_against_peers(
    X: npt.NDArray[np.float64],
    *,
    maxdim: int,
    threshold: float | None = None,
    coeff: int = 2,
    distance_matrix: bool = False,
    n_threads: int = 1,
    peers: tuple[str, ...] = ("ripser", "gudhi"),
) -> Any:
    res = vietoris_rips(
        X, maxdim=maxdim, threshold=threshold, coeff=coeff, distance_matrix=distance_matrix, n_threads=n_threads
    )
    assert len(res.diagrams) == maxdim + 1
    for d in res.diagrams:
        assert d.dtype == np.float64 and d.ndim == 2 and d.shape[1] == 2
    D = X if distance_matrix else euclidean_matrix(X)
    refs = {"ripser": ripser_py, "gudhi": gudhi_rips, "giotto": giotto_ph}
    for name in peers:
        ref = refs[name](D, maxdim, threshold, coeff)
        assert_same_diagrams(
            res.diagrams, ref, f"{name} n={len(X)} maxdim={maxdim} threshold={threshold} coeff={coeff}"
        )
    return res


def truncate(diagrams: Diagrams, threshold: float) -> Diagrams:
    """Diagrams of the filtration cut at ``threshold``: classes born by then, deaths after it become inf."""
    out = []
    for d in diagrams:
        kept = d[d[:, 0] <= threshold].copy()
        kept[kept[:, 1] > threshold, 1] = np.inf
        out.append(kept)
    return out


def separating_thresholds(D: npt.NDArray[np.float64]) -> list[float]:
    """Thresholds well between consecutive distinct distances (as float32, like the engines' filtrations), so
    float32 and float64 engines include the same edges."""
    n = len(D)
    values = np.unique(D[np.triu_indices(n, 1)].astype(np.float32).astype(np.float64))
    out = []
    for lo, hi in itertools.pairwise(values):
        if hi - lo > 1e-4 * hi:
            out.append(float((lo + hi) / 2))
    if values.size:
        out.append(float(values[-1]) * 1.5 + 1.0)
        if values[0] > 0:
            out.insert(0, float(values[0]) / 2)
    return out


@st.composite
def clouds(draw: st.DrawFn) -> tuple[npt.NDArray[np.float64], int, float | None, int, int]:
    n = draw(st.integers(1, 40))
    dim = draw(st.integers(1, 4))
    if draw(st.booleans()):
        elements = st.floats(-10, 10, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    else:
        elements = st.integers(-3, 3).map(float)  # integer grid: duplicates and massive ties
    X = draw(arrays(np.float64, (n, dim), elements=elements))
    maxdim = draw(st.integers(0, 2))
    coeff = draw(st.sampled_from([2, 3, 5]))
    threshold = None
    if n > 1 and draw(st.booleans()):
        choices = separating_thresholds(euclidean_matrix(X))
        assume(choices)
        threshold = draw(st.sampled_from(choices))
    n_threads = draw(st.sampled_from([1, 2]))
    return X, maxdim, threshold, coeff, n_threads


@HYPOTHESIS_CLOUDS
@given(clouds())
def test_random_clouds_match_ripser_and_gudhi(
    case: tuple[npt.NDArray[np.float64], int, float | None, int, int],
) -> None:
    X, maxdim, threshold, coeff, n_threads = case
    check_against_peers(X, maxdim=maxdim, threshold=threshold, coeff=coeff, n_threads=n_threads)


@st.composite
def dissimilarities(draw: st.DrawFn) -> tuple[npt.NDArray[np.float64], int, int]:
    """Symmetric matrices with small integer entries: not metrics, with ties everywhere."""
    n = draw(st.integers(2, 16))
    entries = draw(arrays(np.float64, (n * (n - 1) // 2,), elements=st.integers(0, 6).map(float)))
    D = np.zeros((n, n))
    D[np.tril_indices(n, -1)] = entries
    D = D + D.T
    return D, draw(st.integers(0, 3)), draw(st.sampled_from([2, 3]))


@HYPOTHESIS
@given(dissimilarities())
def test_symmetric_non_metric_matrices(case: tuple[npt.NDArray[np.float64], int, int]) -> None:
    D, maxdim, coeff = case
    check_against_peers(D, maxdim=maxdim, coeff=coeff, distance_matrix=True)


@pytest.mark.parametrize(
    ("shape", "maxdim"), [((6, 6), 2), ((3, 3, 3), 2), ((4, 4, 2), 3), ((12,), 1), ((2, 2, 2, 2), 3)]
)
@pytest.mark.parametrize("coeff", [2, 3])
def test_integer_grids(shape: tuple[int, ...], maxdim: int, coeff: int) -> None:
    X = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"), -1).reshape(
        -1, len(shape)
    )
    check_against_peers(X, maxdim=maxdim, coeff=coeff)


def test_duplicate_points() -> None:
    base = np.random.default_rng(3).normal(size=(12, 3))
    X = np.concatenate([base, base, base[:5]])
    res = check_against_peers(X, maxdim=2, coeff=3)
    # Duplicates merge at 0 (omitted): at most 12 distinct points, one of them essential.
    assert len(res.diagrams[0]) == 12
    assert np.count_nonzero(np.isinf(res.diagrams[0][:, 1])) == 1
    same = vietoris_rips(base, maxdim=2, coeff=3)
    for a, b in zip(res.diagrams, same.diagrams, strict=True):
        np.testing.assert_allclose(np.sort(a, axis=0), np.sort(b, axis=0))


def test_all_points_identical() -> None:
    res = vietoris_rips(np.ones((7, 2)), maxdim=2)
    assert res.diagrams[0].tolist() == [[0.0, math.inf]]
    assert all(d.shape == (0, 2) for d in res.diagrams[1:])


@pytest.mark.parametrize("maxdim", [0, 1, 3])
def test_single_point(maxdim: int) -> None:
    for X, dm in ((np.array([[1.5, -2.0]]), False), (np.zeros((1, 1)), True)):
        res = vietoris_rips(X, maxdim=maxdim, distance_matrix=dm)
        assert len(res.diagrams) == maxdim + 1
        assert res.diagrams[0].tolist() == [[0.0, math.inf]]
        assert all(d.shape == (0, 2) for d in res.diagrams[1:])
        assert res.n_points == 1


def test_two_points() -> None:
    res = check_against_peers(np.array([[0.0, 0.0], [3.0, 4.0]]), maxdim=2)
    assert sorted(res.diagrams[0].tolist()) == [[0.0, 5.0], [0.0, math.inf]]
    res = vietoris_rips(np.array([[0.0, 0.0], [3.0, 4.0]]), maxdim=1, threshold=4.0)
    assert res.diagrams[0].tolist() == [[0.0, math.inf], [0.0, math.inf]]
    # Simplices of diameter equal to the threshold belong to the complex (as in Ripser).
    res = vietoris_rips(np.array([[0.0, 0.0], [3.0, 4.0]]), maxdim=1, threshold=5.0)
    assert sorted(res.diagrams[0].tolist()) == [[0.0, 5.0], [0.0, math.inf]]


@pytest.mark.parametrize("X", [np.zeros((0, 3)), np.zeros((0, 0)), []])
def test_empty_input_is_refused(X: Any) -> None:
    with pytest.raises(ValueError, match="empty"):
        vietoris_rips(X, maxdim=1)
    with pytest.raises(ValueError, match="empty"):
        vietoris_rips(X, maxdim=1, distance_matrix=True)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_threshold_below_every_distance(n_threads: int) -> None:
    X = np.random.default_rng(5).normal(size=(30, 3))
    D = euclidean_matrix(X)
    t = float(D[np.triu_indices(30, 1)].min()) * 0.5
    for inp, dm in ((X, False), (D, True)):
        res = vietoris_rips(inp, maxdim=2, threshold=t, distance_matrix=dm, n_threads=n_threads)
        assert res.diagrams[0].shape == (30, 2)
        assert np.all(res.diagrams[0][:, 0] == 0) and np.all(np.isinf(res.diagrams[0][:, 1]))
        assert all(d.shape == (0, 2) for d in res.diagrams[1:])
        assert_same_diagrams(res.diagrams, ripser_py(D, 2, t, 2), "ripser.py, threshold below all distances")


def test_zero_threshold_merges_only_duplicates() -> None:
    base = np.random.default_rng(6).normal(size=(9, 2))
    res = vietoris_rips(np.concatenate([base, base[:4]]), maxdim=1, threshold=0.0)
    assert res.diagrams[0].shape == (9, 2) and np.all(np.isinf(res.diagrams[0][:, 1]))


def cross_polytope(k: int) -> npt.NDArray[np.float64]:
    """The 2k points +-e_i of R^k; their Rips complex is the boundary of the cross-polytope (S^(k-1)) from
    sqrt(2) until the antipodal edges (length 2) enter and fill it."""
    eye = np.eye(k)
    return np.concatenate([eye, -eye])


def test_high_dimension_cross_polytope() -> None:
    res = check_against_peers(cross_polytope(6), maxdim=6)
    # Derived from the geometry, not from a previous run: one 5-sphere alive on [sqrt 2, 2).
    np.testing.assert_allclose(res.diagrams[5], [[math.sqrt(2), 2.0]], rtol=1e-6)
    assert res.diagrams[6].shape == (0, 2)
    for k in (1, 2, 3, 4):
        assert res.diagrams[k].shape == (0, 2)


@pytest.mark.parametrize("coeff", [2, 3])
def test_high_maxdim_random_cloud(coeff: int) -> None:
    X = np.random.default_rng(7).normal(size=(12, 5))
    check_against_peers(X, maxdim=6, coeff=coeff)


def test_maxdim_beyond_point_count() -> None:
    # Homology above n - 2 vanishes; the engine must still return every requested (empty) dimension.
    X = np.random.default_rng(8).normal(size=(9, 3))
    res = check_against_peers(X, maxdim=10)
    assert all(d.shape == (0, 2) for d in res.diagrams[8:])
    res = vietoris_rips(X, maxdim=70)
    assert len(res.diagrams) == 71


def graph_metric(n: int, seed: int) -> npt.NDArray[np.float64]:
    """Shortest paths in a random weighted connected graph (ring plus chords)."""
    rng = np.random.default_rng(seed)
    W = np.zeros((n, n))
    for i in range(n):
        W[i, (i + 1) % n] = rng.uniform(1, 2)
    for _ in range(n):
        i, j = rng.integers(0, n, 2)
        if i != j:
            W[i, j] = rng.uniform(1, 5)
    return np.asarray(shortest_path(W, directed=False), dtype=np.float64)


@pytest.mark.parametrize("coeff", [2, 3])
@pytest.mark.parametrize("metric", ["graph", "cityblock", "chebyshev"])
def test_non_euclidean_distance_matrices(metric: str, coeff: int) -> None:
    if metric == "graph":
        D = graph_metric(40, 11)
    else:
        D = cdist(*(2 * [np.random.default_rng(12).normal(size=(40, 3))]), metric=metric)
    assert np.allclose(D, D.T)
    check_against_peers(D, maxdim=2, coeff=coeff, distance_matrix=True)
    t = float(np.quantile(D[np.triu_indices(40, 1)], 0.35))
    t = min(separating_thresholds(D), key=lambda s: abs(s - t))
    check_against_peers(D, maxdim=2, coeff=coeff, threshold=t, distance_matrix=True)


def projective_plane_sample(n_sphere: int = 200) -> npt.NDArray[np.float64]:
    """Antipodal quotient of a Fibonacci sphere: d([x], [y]) = min(|x - y|, |x + y|) on the upper half."""
    i = np.arange(n_sphere) + 0.5
    phi = np.arccos(1 - 2 * i / n_sphere)
    theta = np.pi * (1 + 5**0.5) * i
    S = np.c_[np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)]
    S = S[S[:, 2] > 0]
    D = np.minimum(euclidean_matrix(S), cdist(S, -S))
    np.fill_diagonal(D, 0)
    return np.asarray(D, dtype=np.float64)


def longest_bar(d: npt.NDArray[np.float64]) -> float:
    finite = d[np.isfinite(d[:, 1])]
    return float(np.max(finite[:, 1] - finite[:, 0])) if finite.size else 0.0


@pytest.fixture(scope="module")
def rp2() -> npt.NDArray[np.float64]:
    return projective_plane_sample()


def test_projective_plane_coefficients(rp2: npt.NDArray[np.float64]) -> None:
    diameter = float(rp2.max())
    z2 = check_against_peers(rp2, maxdim=2, coeff=2, distance_matrix=True, peers=("ripser",))
    z3 = check_against_peers(rp2, maxdim=2, coeff=3, distance_matrix=True, peers=("ripser",))
    # H1(RP^2; Z/2) = H2(RP^2; Z/2) = Z/2, both zero over Z/3: long bars in Z/2 only.
    for k in (1, 2):
        assert longest_bar(z2.diagrams[k]) > 0.3 * diameter, f"H{k} over Z/2 has no long bar"
        assert longest_bar(z3.diagrams[k]) < 0.15 * diameter, f"H{k} over Z/3 has a long bar"
        assert longest_bar(z2.diagrams[k]) > 3 * longest_bar(z3.diagrams[k])
    # H0 does not depend on the field.
    np.testing.assert_array_equal(np.sort(z2.diagrams[0], axis=0), np.sort(z3.diagrams[0], axis=0))


def test_large_prime_fields() -> None:
    # ripser.py and giotto-ph pack coefficients in 8 bits and GUDHI stops at 46337, while 65537 and up take the
    # engine's inverse-by-Euclid path (no table). A 60-point sample has no torsion but 2, so every odd prime gives
    # the same diagrams: GUDHI over Z/46337 is the reference for Z/65537 and Z/(2^31 - 1).
    D = projective_plane_sample(120)
    ref = gudhi_rips(D, 2, None, 46337)
    for coeff in (46337, 65537, 2**31 - 1):
        res = vietoris_rips(D, maxdim=2, coeff=coeff, distance_matrix=True)
        assert_same_diagrams(res.diagrams, ref, f"coeff {coeff} vs GUDHI over Z/46337")
    z2 = vietoris_rips(D, maxdim=2, coeff=2, distance_matrix=True)
    assert longest_bar(z2.diagrams[1]) > 3 * longest_bar(ref[1])


# --------------------------------------------------------------------------- sparse vs dense


def assert_truncation_of_full(X: npt.NDArray[np.float64], threshold: float, *, distance_matrix: bool, **kw: Any) -> Any:
    # These compare the dense and the neighbour-list paths; a collapse would send both to neighbour lists
    # (tests/test_engine_parallel.py checks the collapse).
    full = vietoris_rips(X, maxdim=2, distance_matrix=distance_matrix, collapse_edges=False)
    assert full.extras["sparse"] is False
    cut = vietoris_rips(X, maxdim=2, threshold=threshold, distance_matrix=distance_matrix, collapse_edges=False, **kw)
    assert_same_diagrams(cut.diagrams, truncate(full.diagrams, threshold), f"threshold {threshold} vs truncated full")
    return cut


@pytest.mark.parametrize("n_threads", [1, 2])
def test_sparse_from_distance_matrix_matches_dense(n_threads: int) -> None:
    X = np.random.default_rng(21).normal(size=(150, 3))
    D = euclidean_matrix(X)
    t = min(separating_thresholds(D), key=lambda s: abs(s - float(np.quantile(D, 0.1))))
    cut = assert_truncation_of_full(D, t, distance_matrix=True, n_threads=n_threads)
    assert cut.extras["sparse"] is True
    check_against_peers(D, maxdim=2, threshold=t, distance_matrix=True, peers=("ripser",))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_sparse_from_points_matches_dense(n_threads: int) -> None:
    # A memory limit below four times the dense matrix sends a thresholded cloud straight to neighbour lists.
    X = np.random.default_rng(22).uniform(size=(600, 3))
    D = euclidean_matrix(X)
    t = min(separating_thresholds(D[:200, :200]), key=lambda s: abs(s - 0.15))
    dense_bytes = 600 * 599 // 2 * 4
    cut = assert_truncation_of_full(X, t, distance_matrix=False, n_threads=n_threads, memory_limit=3 * dense_bytes)
    assert cut.extras["sparse"] is True
    dense_cut = vietoris_rips(X, maxdim=2, threshold=t, n_threads=n_threads, collapse_edges=False)
    assert_same_diagrams(cut.diagrams, dense_cut.diagrams, "sparse-from-points vs default path")


def test_dense_threshold_path_matches_truncation() -> None:
    X = np.random.default_rng(23).normal(size=(80, 2))
    D = euclidean_matrix(X)
    t = min(separating_thresholds(D), key=lambda s: abs(s - float(np.quantile(D, 0.7))))
    cut = assert_truncation_of_full(X, t, distance_matrix=False)
    assert cut.extras["sparse"] is False


@st.composite
def threshold_cases(draw: st.DrawFn) -> tuple[npt.NDArray[np.float64], float, bool, int]:
    n = draw(st.integers(3, 60))
    dim = draw(st.integers(1, 3))
    if draw(st.booleans()):
        elements = st.floats(-5, 5, allow_nan=False, allow_subnormal=False)
    else:
        elements = st.integers(0, 4).map(float)
    X = draw(arrays(np.float64, (n, dim), elements=elements))
    choices = separating_thresholds(euclidean_matrix(X))
    assume(choices)
    return X, draw(st.sampled_from(choices)), draw(st.booleans()), draw(st.sampled_from([1, 2]))


@HYPOTHESIS
@given(threshold_cases())
def test_thresholded_is_truncated_full(case: tuple[npt.NDArray[np.float64], float, bool, int]) -> None:
    X, t, force_points_sparse, n_threads = case
    n = len(X)
    if not force_points_sparse:
        # Default budget: dense, or neighbour lists from the dense matrix when few edges are within t.
        assert_truncation_of_full(X, t, distance_matrix=False, n_threads=n_threads)
        return
    # A limit just under four dense matrices sends the cloud straight to neighbour lists; so little memory may
    # not hold the complex, and then the only acceptable outcome is a MemoryLimitError.
    limit = 8 * n * (n - 1) - 8
    try:
        cut = assert_truncation_of_full(X, t, distance_matrix=False, n_threads=n_threads, memory_limit=limit)
    except MemoryLimitError as exc:
        assert "threshold" in str(exc)
        return
    assert cut.extras["sparse"] is True


# --------------------------------------------------------------------------- numeric range


def test_distances_beyond_float32_range_are_not_silently_dropped() -> None:
    # Filtration values are float32: a distance above 3.4e38 rounds to inf and the edge never enters, so three
    # points on a line would come out as three components for ever. Refusing such input (ValueError) or computing
    # it correctly are both acceptable; a silently wrong diagram is not.
    X = np.array([[0.0], [1e39], [5e39]])
    try:
        res = vietoris_rips(X, maxdim=1)
    except ValueError:
        return
    assert np.count_nonzero(np.isinf(res.diagrams[0][:, 1])) == 1, res.diagrams[0].tolist()


def test_infinite_threshold_serialises_as_strict_json() -> None:
    res = vietoris_rips(np.random.default_rng(30).normal(size=(6, 2)), maxdim=1, threshold=math.inf)
    json.dumps(res.to_json_dict(), allow_nan=False)  # "threshold": Infinity is not JSON
