"""Representative cocycles: the same rows as ripser.py's, and cocycles that represent a basis.

For a scale ``t`` the complex ``K_t`` holds the simplices of diameter at most ``t``.  The cocycles of the pairs
alive at ``t`` (birth <= t < death), restricted to ``K_t``, must have zero coboundary there and be linearly
independent modulo the coboundaries of ``K_t`` (over Z/p): a basis of its cohomology.  Both are checked by
exact linear algebra mod p, independently of the engine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import ripser
import scipy.sparse
from scipy.spatial.distance import pdist, squareform

import tda_ray
from tda_ray.engine.params import RipsParams

# --------------------------------------------------------------------------- linear algebra mod p


def rank_mod_p(matrix: np.ndarray[Any, Any], p: int) -> int:
    """Rank over Z/p by Gaussian elimination (small matrices)."""
    m = np.array(matrix, dtype=np.int64) % p
    rank = 0
    rows, cols = m.shape
    for c in range(cols):
        if rank == rows:
            break
        nz = np.nonzero(m[rank:, c])[0]
        if nz.size == 0:
            continue
        r = rank + int(nz[0])
        m[[rank, r]] = m[[r, rank]]
        m[rank] = (m[rank] * pow(int(m[rank, c]), -1, p)) % p
        others = np.nonzero(m[:, c])[0]
        others = others[others != rank]
        m[others] = (m[others] - np.outer(m[others, c], m[rank])) % p
        rank += 1
    return rank


def simplices_within(dist: np.ndarray[Any, Any], dim: int, t: float) -> list[tuple[int, ...]]:
    """The dim-simplices of K_t, each as its vertices in decreasing order (ripser.py's)."""
    n = dist.shape[0]
    near = dist <= t
    out: list[tuple[int, ...]] = [(v,) for v in range(n - 1, -1, -1)]
    for _ in range(dim):  # extend by a smaller vertex adjacent to all
        out = [(*s, w) for s in out for w in range(s[-1] - 1, -1, -1) if all(near[v, w] for v in s)]
    return out


def coboundary_matrix(lower: list[tuple[int, ...]], upper: list[tuple[int, ...]], p: int) -> Any:
    """delta: C^k -> C^{k+1} of K_t (scipy.sparse), rows = upper simplices, columns = lower ones, oriented by
    vertex order."""
    where = {s: i for i, s in enumerate(lower)}
    rows, cols, vals = [], [], []
    for r, tau in enumerate(upper):
        for i in range(len(tau)):
            rows.append(r)
            cols.append(where[tau[:i] + tau[i + 1 :]])
            vals.append((-1) ** i % p)
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(len(upper), len(lower)), dtype=np.int64)


def cochain(cocycle: np.ndarray[Any, Any], simplices: list[tuple[int, ...]], p: int) -> np.ndarray[Any, Any]:
    """The cocycle's values on the given simplices (zero where it has no row)."""
    values = {tuple(int(v) for v in row[:-1]): int(row[-1]) for row in cocycle}
    return np.array([values.get(s, 0) % p for s in simplices], dtype=np.int64)


def check_basis(result: Any, dist: np.ndarray[Any, Any], dim: int, p: int, scales: list[float]) -> int:
    """Asserts the cocycle and basis conditions at each scale; returns how many (scale, class) pairs it checked."""
    dgm, cocycles = result.diagrams[dim], result.cocycles[dim]
    checked = 0
    for t in scales:
        alive = [i for i in range(len(dgm)) if dgm[i, 0] <= t < dgm[i, 1]]
        faces = simplices_within(dist, dim - 1, t)
        cells = simplices_within(dist, dim, t)
        cofaces = simplices_within(dist, dim + 1, t)
        delta_up = coboundary_matrix(cells, cofaces, p)
        vectors = []
        for i in alive:
            c = cochain(cocycles[i], cells, p)
            assert not np.any((delta_up @ c) % p), f"H{dim} class {dgm[i]} is not a cocycle at scale {t}"
            vectors.append(c)
        delta_down = coboundary_matrix(faces, cells, p).toarray()
        base = rank_mod_p(delta_down, p)
        together = rank_mod_p(np.column_stack([delta_down, *vectors]) if vectors else delta_down, p)
        assert together == base + len(alive), f"H{dim} cocycles alive at {t} are not independent in cohomology"
        if delta_up.shape[0] <= 3000:
            # Their number is the Betti number of K_t (rank-nullity), so they are a basis.
            assert len(alive) == len(cells) - rank_mod_p(delta_up.toarray(), p) - base
        checked += len(alive)
    return checked


def scales_of(dgm: np.ndarray[Any, Any], cap: float) -> list[float]:
    """Every birth, and the midpoint of each bar (capped for essential ones)."""
    out = set()
    for b, d in dgm:
        out.add(float(b))
        out.add(float((b + min(d, cap)) / 2))
    return sorted(out)


def float32_distances(X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Distances exactly as the engine holds them, so K_t here is the engine's complex."""
    out: np.ndarray[Any, Any] = squareform(pdist(X)).astype(np.float32).astype(np.float64)
    return out


# --------------------------------------------------------------------------- against ripser.py


def _rows(c: np.ndarray[Any, Any]) -> list[tuple[int, ...]]:
    return sorted(tuple(int(v) for v in row) for row in c)


@pytest.mark.parametrize("coeff", [2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_cocycles_equal_ripser_py(seed: int, coeff: int) -> None:
    rng = np.random.default_rng(100 * seed + coeff)
    X = rng.normal(size=(int(rng.integers(20, 40)), int(rng.integers(2, 4))))
    ours = tda_ray.vietoris_rips(X, maxdim=2, coeff=coeff, cocycles=True)
    theirs = ripser.ripser(X, maxdim=2, coeff=coeff, do_cocycles=True)
    assert ours.cocycles is not None and ours.cocycles[0] == []
    compared = 0
    for d in (1, 2):
        a, b = ours.diagrams[d], theirs["dgms"][d]
        assert len(ours.cocycles[d]) == len(a) == len(b)
        # Generic points: no two bars alike, so sorting pairs the classes.
        for i, j in zip(np.lexsort((a[:, 1], a[:, 0])), np.lexsort((b[:, 1], b[:, 0])), strict=True):
            assert np.array_equal(a[i], b[j])
            c = ours.cocycles[d][i]
            assert c.dtype == np.int64 and c.shape[1] == d + 2
            assert _rows(c) == _rows(theirs["cocycles"][d][j]), f"H{d} class {a[i]}"
            compared += 1
    assert compared > 0


def test_without_cocycles_none_and_the_diagrams_unchanged() -> None:
    X = np.random.default_rng(3).normal(size=(30, 3))
    plain = tda_ray.vietoris_rips(X, maxdim=2)
    with_cocycles = tda_ray.vietoris_rips(X, maxdim=2, cocycles=True)
    assert plain.cocycles is None and "cocycles" not in plain.to_json_dict()
    for a, b in zip(plain.diagrams, with_cocycles.diagrams, strict=True):
        assert np.array_equal(a, b)
    out = with_cocycles.to_json_dict()["cocycles"]
    assert [len(x) for x in out] == [0, len(with_cocycles.diagrams[1]), len(with_cocycles.diagrams[2])]
    assert with_cocycles.cocycles is not None and out[1][0] == with_cocycles.cocycles[1][0].tolist()


# --------------------------------------------------------------------------- cocycles and bases, mod p


@pytest.mark.parametrize("coeff", [2, 3])
def test_cocycles_form_a_basis_on_random_clouds(coeff: int) -> None:
    checked = 0
    for seed in range(4):
        X = np.random.default_rng(seed).uniform(size=(14, 3))
        D = float32_distances(X)
        res = tda_ray.vietoris_rips(D, distance_matrix=True, maxdim=2, coeff=coeff, cocycles=True)
        for dim in (1, 2):
            checked += check_basis(res, D, dim, coeff, scales_of(res.diagrams[dim], float(D.max())))
    assert checked > 0


def test_cocycles_of_ties_duplicates_and_essential_classes() -> None:
    # Points of a grid (many equal distances), a duplicated point, and a threshold that leaves cycles open.
    grid = np.array([(x, y) for x in range(4) for y in range(3)], dtype=np.float64)
    X = np.vstack([grid, grid[:1]])
    D = float32_distances(X)
    for threshold in (None, 1.0, 1.5):
        res = tda_ray.vietoris_rips(D, distance_matrix=True, maxdim=2, threshold=threshold, coeff=3, cocycles=True)
        cap = float(D.max()) if threshold is None else threshold
        for dim in (1, 2):
            check_basis(res, D, dim, 3, [s for s in scales_of(res.diagrams[dim], cap) if s <= cap])
    essential = tda_ray.vietoris_rips(D, distance_matrix=True, maxdim=1, threshold=1.0, cocycles=True)
    assert np.isinf(essential.diagrams[1][:, 1]).sum() == 6  # the grid's six open squares
    check_basis(essential, D, 1, 2, [1.0])


def test_cocycles_with_two_threads_are_a_basis() -> None:
    # Enough columns that the parallel reduction runs on both threads (and re-reduces some).
    rng = np.random.default_rng(11)
    X = rng.uniform(size=(150, 3))
    D = float32_distances(X)
    res = tda_ray.vietoris_rips(D, distance_matrix=True, maxdim=1, coeff=3, n_threads=2, cocycles=True)
    assert res.stats["dimensions"][1]["threads"] == 2
    assert res.stats["dimensions"][1]["cocycle_bytes"] > 0
    one = tda_ray.vietoris_rips(D, distance_matrix=True, maxdim=1, coeff=3, cocycles=True)
    assert np.array_equal(one.diagrams[1], res.diagrams[1])
    scales = scales_of(res.diagrams[1], float(D.max()))
    assert check_basis(res, D, 1, 3, scales[:: max(1, len(scales) // 12)]) > 0


def test_sparse_and_point_inputs_give_the_same_cocycles() -> None:
    X = np.random.default_rng(5).normal(size=(25, 2))
    D = float32_distances(X)
    thr = float(np.quantile(D[D > 0], 0.4))
    dense = tda_ray.vietoris_rips(D, distance_matrix=True, maxdim=1, threshold=thr, cocycles=True)
    kept = scipy.sparse.coo_matrix(np.tril(np.where(thr >= D, D, 0.0)))
    sparse = tda_ray.vietoris_rips(kept, distance_matrix=True, maxdim=1, cocycles=True)
    points = tda_ray.vietoris_rips(X, maxdim=1, threshold=thr, cocycles=True)
    for other in (sparse, points):
        assert np.array_equal(other.diagrams[1], dense.diagrams[1])
        assert other.cocycles is not None and dense.cocycles is not None
        assert [_rows(c) for c in other.cocycles[1]] == [_rows(c) for c in dense.cocycles[1]]


def test_cocycles_refuse_a_forced_collapse_and_turn_auto_off() -> None:
    with pytest.raises(ValueError, match="collapse_edges"):
        RipsParams.parse(cocycles=True, collapse_edges=True)
    with pytest.raises(ValueError, match="cocycles"):
        RipsParams.parse(cocycles="yes")
    X = np.random.default_rng(8).normal(size=(40, 4))
    res = tda_ray.vietoris_rips(X, maxdim=3, cocycles=True)  # "auto" would collapse at maxdim 3
    assert res.stats["collapsed"] is False
    ref = tda_ray.vietoris_rips(X, maxdim=3, collapse_edges=True)
    for a, b in zip(res.diagrams, ref.diagrams, strict=True):
        assert np.allclose(np.sort(a, axis=0), np.sort(b, axis=0))
    assert res.cocycles is not None and all(c.shape[1] == 5 for c in res.cocycles[3])
    assert math.isfinite(res.stats["total_s"])
