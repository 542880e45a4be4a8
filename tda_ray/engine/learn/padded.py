"""giotto-tda's form of a collection of diagrams: one ``(n_samples, n_points, 3)`` array of (birth, death,
homology dimension) triples, which is what :class:`~tda_ray.VietorisRipsPersistence` returns and the other
transformers take.

Padding, as giotto-tda pads: the triples of each homology dimension form one block, the blocks in increasing
dimension.  A block is as long as the largest number of pairs of that dimension in any sample (at least 1); a
sample with fewer fills its block with ``(v, v, dim)``, ``v`` the smallest birth in that block over the whole
collection (0 if the block has no pairs).  Padding triples lie on the diagonal, so no distance or vectorization
sees them; :func:`unpad` drops them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

__all__ = ["check_diagrams", "diagram_dimensions", "pad", "subdiagrams", "unpad"]


def pad(diagrams: Sequence[Mapping[int, Any]], homology_dimensions: Sequence[int]) -> FloatArray:
    """Per-sample diagrams (``{dim: (k, 2) array}``) as one padded ``(n_samples, n_points, 3)`` array."""
    dims = sorted(homology_dimensions)
    blocks = []
    for dim in dims:
        pairs = [np.asarray(d.get(dim, np.zeros((0, 2))), dtype=np.float64).reshape(-1, 2) for d in diagrams]
        width = max([p.shape[0] for p in pairs] + [1])
        births = np.concatenate([p[:, 0] for p in pairs] + [np.zeros(0)])
        fill = float(births.min()) if births.size else 0.0
        block = np.empty((len(pairs), width, 3))
        block[:, :, :2] = fill
        block[:, :, 2] = dim
        for i, p in enumerate(pairs):
            block[i, : p.shape[0], :2] = p
        blocks.append(block)
    if not blocks:
        return np.zeros((len(diagrams), 0, 3))
    return np.concatenate(blocks, axis=1)


def check_diagrams(X: Any) -> FloatArray:
    """A padded collection as float64; ValueError naming what is wrong (shape, NaN, dimensions, pairs below the
    diagonal)."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"diagrams must be an (n_samples, n_points, 3) array of triples: {exc}") from None
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"diagrams must be an (n_samples, n_points, 3) array of (birth, death, dimension) triples, got shape "
            f"{arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError("diagrams: the collection is empty")
    if np.isnan(arr).any():
        raise ValueError("diagrams contain NaN")
    dims = arr[:, :, 2]
    if not (np.isfinite(dims).all() and (dims >= 0).all() and (dims == np.round(dims)).all()):
        raise ValueError("diagrams: homology dimensions (third column) must be non-negative integers")
    below = int(np.count_nonzero(arr[:, :, 1] < arr[:, :, 0]))
    if below:
        raise ValueError(f"diagrams: {below} triples lie below the diagonal (death < birth)")
    return arr


def diagram_dimensions(X: FloatArray) -> tuple[int, ...]:
    """The homology dimensions of a padded collection (those of its first sample, as giotto-tda reads them)."""
    return tuple(int(d) for d in np.unique(X[0, :, 2]))


def subdiagrams(X: FloatArray, dim: int) -> FloatArray:
    """The (birth, death) pairs of dimension ``dim``: ``(n_samples, k, 2)``; every sample must hold the same
    number ``k`` of them (padding makes it so)."""
    mask = X[:, :, 2] == dim
    counts = mask.sum(axis=1)
    if (counts != counts[0]).any():
        raise ValueError(
            f"diagrams: samples hold different numbers of triples in homology dimension {dim} "
            f"({int(counts.min())} to {int(counts.max())}); pad them (tda_ray.engine.learn.padded.pad)"
        )
    out: FloatArray = X[mask][:, :2].reshape(X.shape[0], int(counts[0]), 2)
    return out


def unpad(X: Any) -> list[dict[int, FloatArray]]:
    """Per sample, ``{dim: (k, 2) array}`` without the triples on the diagonal (the padding)."""
    arr = check_diagrams(X)
    out = []
    for sample in arr:
        keep = sample[sample[:, 0] < sample[:, 1]]
        out.append({dim: keep[keep[:, 2] == dim, :2] for dim in diagram_dimensions(arr)})
    return out
