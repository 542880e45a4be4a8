"""The engine's parallel reduction, edge collapse and run statistics.

Threads: the diagrams, values and order, are the same for every thread count, on random, tied, duplicate and
thresholded inputs, distance matrices, Z/3 and the shared data sets; a cancellation or a memory limit that strikes
during a parallel reduction stops it cleanly. Collapse: on and off give the same diagrams, equal to ripser.py's
(dimension 0, thresholds, ties and duplicates included). Stats: the counters add up, and match counts made here.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from support.engine_compare import DATASETS, assert_same_diagrams, euclidean_matrix, ripser_py
from vr_cases import CASES, LARGE, Case

from tda_ray import io as tio
from tda_ray.engine import CancelToken, EngineCancelled, MemoryLimitError, PersistenceResult, vietoris_rips

THREADS = (1, 2, 4, 8)
SLOW = os.environ.get("TDA_SLOW") == "1"
needs_slow = pytest.mark.skipif(not SLOW, reason="benchmark-sized data set: set TDA_SLOW=1 to run")


def cloud(n: int, d: int = 3, seed: int = 0) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).uniform(size=(n, d))


def random_matrix(n: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """A symmetric matrix of independent uniform entries: not a metric, and a heavy reduction in dimension 1
    (few apparent pairs, long V columns)."""
    A = np.triu(np.random.default_rng(seed).uniform(size=(n, n)), 1)
    return np.asarray(A + A.T, dtype=np.float64)


def grid(k: int) -> npt.NDArray[np.float64]:
    return np.stack(np.meshgrid(*3 * [np.arange(float(k))], indexing="ij"), -1).reshape(-1, 3)


def duplicates() -> npt.NDArray[np.float64]:
    X = np.round(cloud(60, seed=4) * 5) / 5  # many equal distances
    return np.concatenate([X, X[:20]])  # and repeated points


# name -> (input, keyword arguments)
INPUTS: dict[str, tuple[Callable[[], npt.NDArray[np.float64]], dict[str, Any]]] = {
    "random": (lambda: cloud(200, seed=1), {"maxdim": 2}),
    "random-z3": (lambda: cloud(110, d=4, seed=2), {"maxdim": 3, "coeff": 3}),
    "grid-ties": (lambda: grid(5), {"maxdim": 2}),
    "duplicates": (duplicates, {"maxdim": 2}),
    "threshold-sparse": (lambda: cloud(2500, seed=3), {"maxdim": 2, "threshold": 0.1, "memory_limit": 64 << 20}),
    "threshold-dense": (lambda: cloud(250, seed=5), {"maxdim": 2, "threshold": 0.5}),
    "distance-matrix": (lambda: euclidean_matrix(cloud(160, seed=6)), {"maxdim": 2, "distance_matrix": True}),
    "random-matrix-z3": (lambda: random_matrix(90, seed=7), {"maxdim": 1, "coeff": 3, "distance_matrix": True}),
}


def assert_identical(a: PersistenceResult, b: PersistenceResult, label: str) -> None:
    assert len(a.diagrams) == len(b.diagrams), label
    for k, (x, y) in enumerate(zip(a.diagrams, b.diagrams, strict=True)):
        assert np.array_equal(x, y), f"{label}: H{k} differs ({len(x)} vs {len(y)} pairs)"


def sorted_rows(d: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return d[np.lexsort((d[:, 1], d[:, 0]))]


def assert_same_multisets(a: PersistenceResult, b: PersistenceResult, label: str) -> None:
    """The same pairs, exactly (the collapse only moves edges to other edges' lengths), in any order."""
    for k, (x, y) in enumerate(zip(a.diagrams, b.diagrams, strict=True)):
        assert np.array_equal(sorted_rows(x), sorted_rows(y)), f"{label}: H{k} differs ({len(x)} vs {len(y)} pairs)"


# --------------------------------------------------------------------------- threads


@pytest.mark.parametrize("collapse", [False, True, "auto"], ids=["no-collapse", "collapse", "auto"])
@pytest.mark.parametrize("name", list(INPUTS))
def test_thread_counts_give_identical_diagrams(name: str, collapse: bool | str) -> None:
    make, kwargs = INPUTS[name]
    X = make()
    runs = {t: vietoris_rips(X, n_threads=t, collapse_edges=collapse, **kwargs) for t in THREADS}
    for t in THREADS[1:]:
        assert_identical(runs[t], runs[1], f"{name}, {t} threads vs 1")
        assert runs[t].extras == runs[1].extras
    assert runs[1].stats["threads"] == 1
    assert all(d["rereduced"] == 0 and d["retired_entries"] == 0 for d in runs[1].stats["dimensions"])
    # The reductions did run on several threads where there was enough to share.
    if name in ("random", "threshold-sparse", "distance-matrix") and collapse is False:
        assert max(d["threads"] for d in runs[8].stats["dimensions"]) > 1


def test_later_columns_taking_pivots_leave_the_result_alone() -> None:
    # Many threads on a heavy reduction: columns run ahead of earlier ones, claim pivots those own, lose them and
    # are reduced again. Over these runs that happens (else the test would not test it), and never shows.
    X = random_matrix(110, seed=8)
    one = vietoris_rips(X, maxdim=1, distance_matrix=True)
    rereduced = 0
    for t in (2, 4, 8, 8, 8):
        many = vietoris_rips(X, maxdim=1, distance_matrix=True, n_threads=t)
        assert_identical(many, one, f"{t} threads")
        rereduced += sum(d["rereduced"] for d in many.stats["dimensions"])
    assert rereduced > 0, "no column was ever reduced again: the take-over path went untested"


@functools.cache
def dataset(file: str) -> npt.NDArray[np.float64]:
    path = DATASETS / file
    if not path.exists():
        pytest.skip(f"shared data set {path} absent (set TDA_DATASETS or provide ../shared/datasets)")
    X = tio.load(path)
    if file == "fractal_r.distance_matrix":
        L = np.tril(X, -1)  # the text rounds entries: every run sees the same symmetric matrix
        X = L + L.T
    X.setflags(write=False)
    return X


def run_case(case: Case, n_threads: int, collapse: bool | str = "auto") -> PersistenceResult:
    return vietoris_rips(
        dataset(case.file),
        maxdim=case.maxdim,
        threshold=case.threshold,
        coeff=case.coeff,
        distance_matrix=case.distance_matrix,
        n_threads=n_threads,
        collapse_edges=collapse,
    )


def case_params(names: list[str]) -> list[Any]:
    return [
        pytest.param(CASES[n], marks=[pytest.mark.slow, needs_slow], id=n)
        if n in LARGE
        else pytest.param(CASES[n], id=n)
        for n in names
    ]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("case", case_params(list(CASES)))
def test_datasets_identical_for_all_thread_counts(case: Case) -> None:
    one = run_case(case, 1)
    for t in THREADS[1:]:
        assert_identical(run_case(case, t), one, f"{case.name}, {t} threads vs 1")


# dragon_2000 runs to dimension 1 only, where "auto" never collapses; collapsing its 1.4 million edges anyway takes
# half a minute.
SLOW_COLLAPSE = ("dragon_2000",)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(CASES[n], marks=[pytest.mark.slow, needs_slow], id=n) if n in SLOW_COLLAPSE else p
        for n, p in zip(CASES, case_params(list(CASES)), strict=True)
        if n not in LARGE
    ],
)
def test_datasets_collapse_on_and_off_agree(case: Case) -> None:
    on = run_case(case, 2, collapse=True)
    off = run_case(case, 2, collapse=False)
    assert on.stats["collapsed"] and not off.stats["collapsed"]
    assert on.stats["edges_after_collapse"] < on.stats["edges"] == off.stats["edges"]
    assert_same_multisets(on, off, case.name)


# --------------------------------------------------------------------------- cancellation and memory


@pytest.mark.parametrize("n_threads", [2, 4, 8])
def test_cancel_during_parallel_reduction(n_threads: int) -> None:
    # maxdim 1: progress from 0.5 on is the reduction of dimension 1, which here takes a second or more.
    X = random_matrix(200, seed=9)
    token = CancelToken()
    seen: list[float] = []
    stamp: dict[str, float] = {}

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.5 and "at" not in stamp:
            stamp["at"] = time.monotonic()
            token.cancel()

    with pytest.raises(EngineCancelled):
        vietoris_rips(X, maxdim=1, distance_matrix=True, n_threads=n_threads, progress=progress, cancel=token)
    assert "at" in stamp, f"never reached the reduction: progress {seen}"
    assert 0.5 < seen[-1] < 1.0
    # Seconds, not the sync interval: 8 threads on a loaded 2-core machine wait for their turn to notice.
    assert time.monotonic() - stamp["at"] < 3.0
    # Nothing is left running or broken: the next runs agree.
    again = vietoris_rips(X[:80, :80], maxdim=1, distance_matrix=True, n_threads=n_threads)
    assert_identical(again, vietoris_rips(X[:80, :80], maxdim=1, distance_matrix=True), "after a cancel")


def test_cancel_from_another_thread_during_parallel_reduction() -> None:
    X = random_matrix(200, seed=10)
    token = CancelToken()
    started = threading.Event()

    def progress(fraction: float) -> None:
        if fraction > 0.5:
            started.set()

    def cancel_later() -> None:
        started.wait(60)
        token.cancel()

    canceller = threading.Thread(target=cancel_later)
    canceller.start()
    with pytest.raises(EngineCancelled):
        vietoris_rips(X, maxdim=1, distance_matrix=True, n_threads=4, progress=progress, cancel=token)
    canceller.join()
    assert started.is_set()


@pytest.mark.parametrize("n_threads", [2, 4, 8])
def test_memory_limit_during_parallel_reduction(n_threads: int) -> None:
    # The up-front estimate counts simplices; a heavy reduction's V columns need more. A limit at the estimate
    # passes the check, and is then hit inside the parallel reduction, by whichever thread allocates.
    X = random_matrix(150, seed=11)
    free = vietoris_rips(X, maxdim=1, distance_matrix=True, n_threads=n_threads)
    estimated = free.stats["estimated_bytes"]
    assert free.stats["dimensions"][1]["reduction_bytes"] > estimated, free.stats
    with pytest.raises(MemoryLimitError, match="while allocating the reduction matrix") as info:
        vietoris_rips(X, maxdim=1, distance_matrix=True, n_threads=n_threads, memory_limit=estimated)
    assert isinstance(info.value, ValueError)
    assert_identical(vietoris_rips(X, maxdim=1, distance_matrix=True, n_threads=n_threads), free, "after the limit")


# --------------------------------------------------------------------------- collapse


@pytest.mark.parametrize("seed", range(12))
def test_collapse_keeps_diagrams_equal_to_ripser_py(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, d, maxdim = int(rng.integers(8, 45)), int(rng.integers(1, 5)), int(rng.integers(0, 4))
    X = rng.uniform(size=(n, d))
    if seed % 3 == 1:
        X = np.round(X * 3) / 3  # ties and duplicate points
    threshold = None if seed % 2 else float(rng.uniform(0.3, 1.0))
    coeff = (2, 3, 5)[seed % 3]
    on = vietoris_rips(X, maxdim=maxdim, threshold=threshold, coeff=coeff, collapse_edges=True)
    off = vietoris_rips(X, maxdim=maxdim, threshold=threshold, coeff=coeff, collapse_edges=False)
    assert on.stats["collapsed"]
    assert_same_multisets(on, off, f"seed {seed}")
    # ripser.py gets the same float32-rounded distances the engine filters by.
    D = euclidean_matrix(X).astype(np.float32).astype(np.float64)
    assert_same_diagrams(on.diagrams, ripser_py(D, maxdim, threshold, coeff), f"seed {seed} vs ripser.py")


@pytest.mark.parametrize("seed", range(3))
def test_collapse_of_a_sparse_graph_keeps_diagrams(seed: int) -> None:
    # A short threshold leaves ~1.5 % of all pairs as edges: the collapser then works on the neighbour lists, not
    # on a square table of edge times. Coordinates on a 1/20 grid give ties and duplicate points.
    X = np.round(cloud(500, seed=20 + seed) * 20) / 20
    on = vietoris_rips(X, maxdim=2, threshold=0.15, collapse_edges=True)
    off = vietoris_rips(X, maxdim=2, threshold=0.15, collapse_edges=False)
    assert on.stats["collapsed"] and on.stats["edges_after_collapse"] < on.stats["edges"]
    assert on.stats["edges"] < 0.05 * 500 * 499 / 2
    assert_same_multisets(on, off, f"seed {seed}")
    D = euclidean_matrix(X).astype(np.float32).astype(np.float64)
    assert_same_diagrams(on.diagrams, ripser_py(D, 2, 0.15, 2), f"seed {seed} vs ripser.py")


def test_collapse_removes_edges_of_a_dense_cloud() -> None:
    res = vietoris_rips(cloud(120, d=2, seed=12), maxdim=2, collapse_edges=True)
    assert res.stats["edges_after_collapse"] < res.stats["edges"] / 2


def test_auto_collapse_rule() -> None:
    X = cloud(150, d=2, seed=13)
    # Dimension 1 never collapses under "auto"; from dimension 2 on a planar cloud's edges mostly go.
    assert not vietoris_rips(X, maxdim=1).stats["collapsed"]
    assert vietoris_rips(X, maxdim=2).stats["collapsed"]
    # Points on a 3-sphere: few long edges are dominated, so the probe gives up and the run goes on uncollapsed.
    S = np.random.default_rng(14).normal(size=(150, 4))
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    sphere = vietoris_rips(S, maxdim=2)
    assert not sphere.stats["collapsed"] and sphere.stats["collapse_s"] > 0
    assert_same_multisets(sphere, vietoris_rips(S, maxdim=2, collapse_edges=True), "3-sphere")


@pytest.mark.parametrize("bad", [1, 0, "yes", None, 0.5, "on"])
def test_collapse_edges_is_strict(bad: Any) -> None:
    with pytest.raises(ValueError, match="collapse_edges must be true, false or 'auto'"):
        vietoris_rips(cloud(5), collapse_edges=bad)


# --------------------------------------------------------------------------- statistics


def triangle_count(dist: npt.NDArray[np.float32], t: float) -> int:
    A = dist <= t
    np.fill_diagonal(A, False)
    triples = itertools.combinations(range(len(dist)), 3)
    return sum(int(A[i, j] and A[i, k] and A[j, k]) for i, j, k in triples)


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("threshold", [None, 0.45])
def test_stats_add_up_and_match_counts_made_here(threshold: float | None, n_threads: int) -> None:
    X = cloud(40, seed=15)
    res = vietoris_rips(X, maxdim=2, threshold=threshold, collapse_edges=False, n_threads=n_threads)
    st = res.stats
    dist = euclidean_matrix(X).astype(np.float32)
    # The engine stops at the enclosing radius (a cone beyond it) or the threshold, whichever is smaller.
    t = min(float(np.min(np.max(dist, axis=1))), np.inf if threshold is None else threshold)
    dims = st["dimensions"]
    assert len(dims) == 3 and st["points"] == dims[0]["simplices"] == 40
    assert st["edges"] == st["edges_after_collapse"] == dims[1]["simplices"] == int(np.sum(np.triu(dist <= t, 1)))
    assert dims[2]["simplices"] == triangle_count(dist, t)
    for k, d in enumerate(dims):
        finite = np.isfinite(res.diagrams[k][:, 1])
        assert d["pairs"] == int(np.sum(finite)) and d["essential"] == int(np.sum(~finite)), k
        if k:
            assert d["cleared"] + d["apparent"] + d["emergent"] + d["reduced"] == d["simplices"], (k, d)
            assert d["heap_pushes"] >= d["coboundaries"] >= d["reduced"] >= 0
    assert dims[1]["cleared"] == 40 - dims[0]["essential"]  # the spanning forest's edges
    phases = st["distances_s"] + st["collapse_s"] + st["dim0_s"]
    phases += sum(d["assembly_s"] + d["reduction_s"] for d in dims)
    assert 0 <= phases <= st["total_s"] * 1.01 + 1e-3
    assert st["estimated_bytes"] > 0 and st["peak_bytes"] > 0
    assert st["threads"] == n_threads and not st["collapsed"]


def test_stats_after_a_collapse() -> None:
    X = cloud(100, d=2, seed=16)
    res = vietoris_rips(X, maxdim=2, collapse_edges=True)
    st = res.stats
    assert st["collapsed"] and st["collapse_s"] > 0
    # The reduction ran on the collapsed graph: its dimension-1 simplices are the edges that were kept.
    assert st["dimensions"][1]["simplices"] == st["edges_after_collapse"] < st["edges"]
    assert st["edges"] == vietoris_rips(X, maxdim=2, collapse_edges=False).stats["edges"]
