"""Weighted graphs as Vietoris–Rips input, against GUDHI's flag complex and ripser.py on the same metric."""

from __future__ import annotations

from typing import Any

import gudhi
import numpy as np
import pytest
import ripser
import scipy.sparse
from scipy.sparse.csgraph import shortest_path

import tda_ray
from tda_ray import graph_distance_matrix, vietoris_rips_graph


def random_graph(n: int, p: float, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(len(i)) < p
    # float32 weights: the engine's filtration values, so the comparison is exact.
    w = rng.uniform(0.1, 2.0, size=int(keep.sum())).astype(np.float32).astype(np.float64)
    return np.c_[i[keep], j[keep]], w


def sorted_dgm(d: Any) -> np.ndarray[Any, Any]:
    a = np.asarray(d, dtype=np.float64).reshape(-1, 2)
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def gudhi_flag(n: int, edges: np.ndarray[Any, Any], w: np.ndarray[Any, Any], maxdim: int) -> list[Any]:
    st = gudhi.SimplexTree()
    for v in range(n):
        st.insert([v], 0.0)
    for (a, b), x in zip(edges.tolist(), w.tolist(), strict=True):
        st.insert([a, b], x)
    st.expansion(maxdim + 1)
    st.compute_persistence(homology_coeff_field=2, persistence_dim_max=True)
    out = [st.persistence_intervals_in_dimension(d) for d in range(maxdim + 1)]
    return [d[d[:, 1] > d[:, 0]] if len(d) else d.reshape(0, 2) for d in out]


@pytest.mark.parametrize("seed", range(4))
def test_edge_filtration_equals_gudhi_flag_complex_and_ripser(seed: int) -> None:
    n = 18
    edges, w = random_graph(n, 0.4, seed)
    res = vietoris_rips_graph(edges, w, n_vertices=n, maxdim=2)
    ref = gudhi_flag(n, edges, w, 2)
    sparse = scipy.sparse.coo_matrix((w, (edges[:, 0], edges[:, 1])), shape=(n, n))
    rp = ripser.ripser(sparse, maxdim=2, distance_matrix=True)["dgms"]
    for d in range(3):
        np.testing.assert_array_equal(sorted_dgm(res.diagrams[d]), sorted_dgm(ref[d]))
        np.testing.assert_array_equal(sorted_dgm(res.diagrams[d]), sorted_dgm(rp[d]))


@pytest.mark.parametrize("p", [0.25, 0.08])  # connected, and (at 0.08) in several components
def test_shortest_path_filtration_equals_ripser_on_the_path_metric(p: float) -> None:
    n = 30
    edges, w = random_graph(n, p, 5)
    res = vietoris_rips_graph(edges, w, n_vertices=n, maxdim=1, filtration="shortest_path")
    lengths = shortest_path(
        scipy.sparse.coo_matrix((w, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr(), directed=False
    )
    components = int(scipy.sparse.csgraph.connected_components(lengths < np.inf)[0])
    finite = np.where(np.isfinite(lengths), lengths, 0)
    i, j = np.nonzero(np.isfinite(lengths) & ~np.eye(n, dtype=bool))
    ref = ripser.ripser(scipy.sparse.coo_matrix((finite[i, j], (i, j)), shape=(n, n)), maxdim=1, distance_matrix=True)
    for d in range(2):
        np.testing.assert_allclose(sorted_dgm(res.diagrams[d]), sorted_dgm(ref["dgms"][d]), rtol=1e-6)
    assert np.isinf(res.diagrams[0][:, 1]).sum() == components
    if components == 1:
        assert isinstance(graph_distance_matrix(edges, w, n_vertices=n, filtration="shortest_path"), np.ndarray)


def test_a_cycle_graph_has_one_essential_loop_with_its_cocycle() -> None:
    ring = np.array([(k, (k + 1) % 6, 1.0) for k in range(6)])
    res = vietoris_rips_graph(ring, maxdim=1, cocycles=True)
    assert res.diagrams[1].tolist() == [[1.0, np.inf]]
    assert res.cocycles is not None
    (cocycle,) = res.cocycles[1]
    assert cocycle.shape[1] == 3 and set(cocycle[:, :2].ravel()) <= set(range(6))
    # As a path metric the hexagon fills in: the loop dies when the opposite vertices (distance 3) meet.
    path = vietoris_rips_graph(ring, maxdim=1, filtration="shortest_path")
    assert path.diagrams[1].tolist() == [[1.0, 2.0]]


def test_duplicates_isolated_vertices_and_the_third_column() -> None:
    edges = np.array([[0, 1], [1, 0], [1, 2]])
    res = vietoris_rips_graph(edges, [3.0, 1.0, 2.0], n_vertices=5)
    assert sorted_dgm(res.diagrams[0]).tolist() == [[0, 1.0], [0, 2.0], [0, np.inf], [0, np.inf], [0, np.inf]]
    same = tda_ray.vietoris_rips_graph(np.array([[0, 1, 1.0], [1, 2, 2.0]]), n_vertices=5)
    np.testing.assert_array_equal(sorted_dgm(same.diagrams[0]), sorted_dgm(res.diagrams[0]))


@pytest.mark.parametrize(
    ("edges", "weights", "kwargs", "message"),
    [
        ([[0, 0]], [1.0], {}, "self-loop at vertex 0"),
        ([[0, 1]], [-1.0], {}, "non-negative"),
        ([[0, 1]], [np.nan], {}, "finite"),
        ([[0, 1]], [np.inf], {}, "finite"),
        ([[0, 5]], [1.0], {"n_vertices": 3}, "outside 0..2"),
        ([[0, 1], [1, 2]], [1.0], {}, "2 edges but 1 weights"),
        ([[0, 1.5]], [1.0], {}, "integer vertex indices"),
        ([0, 1], [1.0], {}, "(m, 2) array"),
        ([[0, 1]], None, {}, "weights are needed"),
        ([[0, 1, 2.0]], [1.0], {}, "do not give weights as well"),
        ([[0, 1]], [1.0], {"filtration": "geodesic"}, "'edge' or 'shortest_path'"),
        (np.zeros((0, 2)), [], {}, "no vertices"),
    ],
)
def test_bad_graphs_are_refused_with_the_reason(edges: Any, weights: Any, kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        graph_distance_matrix(np.asarray(edges), weights, **kwargs)
