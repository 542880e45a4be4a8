"""Weighted graphs as Vietoris–Rips input: an edge list becomes the distance matrix the engine reads.

Two filtrations of a graph with non-negative edge weights are offered:

* ``"edge"`` (the flag filtration of the graph): vertices enter at 0, an edge at its weight, a clique when
  its last edge does; pairs without an edge are never joined.  This is Vietoris–Rips of the scipy.sparse
  distance matrix holding the edges (ripser.py's sparse input), so no n x n array is formed.
* ``"shortest_path"``: Vietoris–Rips of the graph's shortest-path metric (Dijkstra, scipy.sparse.csgraph);
  vertices in different components are never joined.  It needs the n x n path lengths.

A duplicated edge keeps its smallest weight (the shortest of parallel edges); self-loops are refused, as
are weights that are negative, NaN or infinite.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tda_ray.engine.result import PersistenceResult
from tda_ray.engine.rips import vietoris_rips

__all__ = ["GraphFiltration", "graph_distance_matrix", "vietoris_rips_graph"]

GraphFiltration = Literal["edge", "shortest_path"]


def _edge_arrays(
    edges: Any, weights: Any, n_vertices: int | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], int]:
    """Checked ``(rows, cols, weights, n)`` with rows > cols and each pair once (its smallest weight)."""
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[1] not in (2, 3):
        raise ValueError(f"edges must be an (m, 2) array of vertex pairs (or (m, 3) with weights), got shape {e.shape}")
    if e.shape[1] == 3:
        if weights is not None:
            raise ValueError("edges has a weight column; do not give weights as well")
        e, weights = e[:, :2], e[:, 2]
    if weights is None:
        raise ValueError("weights are needed: give an (m,) array or a third column of edges")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(e):
        raise ValueError(f"{len(e)} edges but {len(w)} weights")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        bad = int(np.flatnonzero(~(np.isfinite(w) & (w >= 0)))[0])
        raise ValueError(f"edge {bad} has weight {w[bad]!r}; weights must be finite and non-negative")
    if e.size and (not np.all(np.isfinite(e.astype(np.float64))) or np.any(e != np.round(e))):
        raise ValueError("edges must hold integer vertex indices")
    ends = e.astype(np.int64)
    n = int(n_vertices) if n_vertices is not None else (int(ends.max()) + 1 if ends.size else 0)
    if n <= 0:
        raise ValueError("the graph has no vertices: give edges or n_vertices")
    if ends.size and (ends.min() < 0 or ends.max() >= n):
        raise ValueError(f"edges name vertices outside 0..{n - 1}")
    loops = np.flatnonzero(ends[:, 0] == ends[:, 1])
    if len(loops):
        raise ValueError(f"edge {int(loops[0])} is a self-loop at vertex {int(ends[loops[0], 0])}")
    rows, cols = np.maximum(ends[:, 0], ends[:, 1]), np.minimum(ends[:, 0], ends[:, 1])
    order = np.lexsort((w, cols, rows))  # per pair, the smallest weight first
    rows, cols, w = rows[order], cols[order], w[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return rows[first], cols[first], w[first], n


def graph_distance_matrix(
    edges: Any,
    weights: Any = None,
    *,
    n_vertices: int | None = None,
    filtration: GraphFiltration = "edge",
) -> Any:
    """The distance matrix whose Vietoris–Rips filtration is the graph's ``filtration`` (see the module).

    ``edges``: an ``(m, 2)`` array of vertex indices, or ``(m, 3)`` with the weights as its last column;
    ``n_vertices`` defaults to the largest index + 1 (isolated vertices need it).  Returns a scipy.sparse
    COO matrix (``"edge"``, or ``"shortest_path"`` of a disconnected graph) or a dense float64 array.
    """
    import scipy.sparse
    from scipy.sparse.csgraph import shortest_path

    if filtration not in ("edge", "shortest_path"):
        raise ValueError(f"filtration must be 'edge' or 'shortest_path', got {filtration!r}")
    rows, cols, w, n = _edge_arrays(edges, weights, n_vertices)
    # Explicit zeros are edges of weight 0 in the sparse input (as in ripser.py), so they are kept.
    graph = scipy.sparse.coo_matrix((w, (rows, cols)), shape=(n, n))
    if filtration == "edge":
        return graph
    lengths = shortest_path(graph.tocsr(), method="D", directed=False)
    if np.all(np.isfinite(lengths)):
        return lengths
    i, j = np.nonzero(np.isfinite(lengths) & (np.arange(n)[:, None] > np.arange(n)[None, :]))
    return scipy.sparse.coo_matrix((lengths[i, j], (i, j)), shape=(n, n))


def vietoris_rips_graph(
    edges: Any,
    weights: Any = None,
    *,
    n_vertices: int | None = None,
    filtration: GraphFiltration = "edge",
    **kwargs: Any,
) -> PersistenceResult:
    """Persistent homology of a weighted graph: :func:`graph_distance_matrix` then
    :func:`~tda_ray.engine.rips.vietoris_rips` (``kwargs``: ``maxdim``, ``threshold``, ``coeff``, ``cocycles``,
    ``n_threads``, ...; vertex indices in cocycles are the graph's)."""
    matrix = graph_distance_matrix(edges, weights, n_vertices=n_vertices, filtration=filtration)
    return vietoris_rips(matrix, distance_matrix=True, **kwargs)
