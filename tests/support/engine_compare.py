"""Reference engines and diagram comparison shared by the engine test modules.

Our engine, ripser.py and giotto-ph filter in float32; GUDHI in float64. Diagrams are compared per dimension:
the same essential classes (count and births) and a bottleneck distance between the finite parts of at most
``rel_tol`` times the largest finite value.  Zero-length pairs are dropped from the peers (we omit them).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import gudhi
import numpy as np
import numpy.typing as npt

Diagrams = list[npt.NDArray[np.float64]]

REPO = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("TDA_DATASETS", REPO.parent / "shared" / "datasets"))
REL_TOL = 1e-6
# Distances are rounded to float32: below its smallest normal number they may flush to zero, where GUDHI's float64
# keeps them (a pair (0, 1e-162) is a zero-length pair for us).
ABS_TOL = float(np.finfo(np.float32).tiny)


def euclidean_matrix(X: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pairwise distances by the difference formula (no |x|^2 - 2xy + |y|^2 cancellation)."""
    P = np.asarray(X, dtype=np.float64)
    return np.asarray(np.sqrt(((P[:, None, :] - P[None, :, :]) ** 2).sum(-1)), dtype=np.float64)


def normalize(dgms: Any, maxdim: int) -> Diagrams:
    """(k, 2) float64 arrays for dimensions 0..maxdim, zero-length pairs removed."""
    out: Diagrams = []
    for k in range(maxdim + 1):
        d = np.asarray(dgms[k], dtype=np.float64).reshape(-1, 2) if k < len(dgms) else np.zeros((0, 2))
        out.append(d[d[:, 1] != d[:, 0]])
    return out


def ripser_py(D: npt.NDArray[np.float64], maxdim: int, threshold: float | None, coeff: int) -> Diagrams:
    from ripser import ripser

    thresh = math.inf if threshold is None else threshold
    res = ripser(D, maxdim=maxdim, thresh=thresh, coeff=coeff, distance_matrix=True)
    return normalize(res["dgms"], maxdim)


def giotto_ph(
    D: npt.NDArray[np.float64], maxdim: int, threshold: float | None, coeff: int, n_threads: int = 2
) -> Diagrams:
    from gph import ripser_parallel

    thresh = math.inf if threshold is None else threshold
    res = ripser_parallel(D, maxdim=maxdim, thresh=thresh, coeff=coeff, metric="precomputed", n_threads=n_threads)
    return normalize(res["dgms"], maxdim)


def gudhi_rips(D: npt.NDArray[np.float64], maxdim: int, threshold: float | None, coeff: int) -> Diagrams:
    kwargs: dict[str, Any] = {"distance_matrix": D}
    if threshold is not None:
        kwargs["max_edge_length"] = threshold
    st = gudhi.RipsComplex(**kwargs).create_simplex_tree(max_dimension=maxdim + 1)
    # persistence_dim_max: otherwise GUDHI skips the top dimension present, e.g. H0 of a single point.
    st.compute_persistence(homology_coeff_field=coeff, min_persistence=-1.0, persistence_dim_max=True)
    dgms = [st.persistence_intervals_in_dimension(k) for k in range(maxdim + 1)]
    return normalize(dgms, maxdim)


def _finite(d: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return d[np.isfinite(d[:, 1])]


def _scale(*dgms: Diagrams) -> float:
    top = 0.0
    for dg in dgms:
        for d in dg:
            if d.size:
                values = d[np.isfinite(d)]
                if values.size:
                    top = max(top, float(np.max(np.abs(values))))
    return top if top > 0 else 1.0


def diagram_mismatch(ours: Diagrams, ref: Diagrams, rel_tol: float = REL_TOL) -> str | None:
    """None if the diagrams agree, else a description of the first disagreement."""
    if len(ours) != len(ref):
        return f"{len(ours)} diagrams, reference has {len(ref)}"
    tol = rel_tol * _scale(ours, ref) + ABS_TOL
    for k, (a, b) in enumerate(zip(ours, ref, strict=True)):
        if a.size and np.any(a[:, 1] <= a[:, 0]):
            return f"H{k}: ours has pairs with death <= birth: {a[a[:, 1] <= a[:, 0]][:5].tolist()}"
        ea = np.sort(a[~np.isfinite(a[:, 1]), 0])
        eb = np.sort(b[~np.isfinite(b[:, 1]), 0])
        if ea.size != eb.size:
            return f"H{k}: {ea.size} essential classes, reference has {eb.size}"
        if ea.size and float(np.max(np.abs(ea - eb))) > tol:
            return f"H{k}: essential births differ: ours {ea.tolist()[:10]}, reference {eb.tolist()[:10]}"
        fa, fb = _finite(a), _finite(b)
        # e=None: GUDHI's default (smallest-double additive error, a few mantissa bits); its exact variant (e=0) runs
        # out of memory on the 50000-pair H0 of the Clifford torus.
        dist = float(gudhi.bottleneck_distance(fa, fb)) if (fa.size or fb.size) else 0.0
        if dist > tol:
            return (
                f"H{k}: bottleneck distance {dist:.3g} > {tol:.3g} (ours {len(fa)} finite pairs, reference {len(fb)})"
            )
    return None


def assert_same_diagrams(ours: Diagrams, ref: Diagrams, label: str, rel_tol: float = REL_TOL) -> None:
    problem = diagram_mismatch(ours, ref, rel_tol)
    assert problem is None, f"{label}: {problem}"
