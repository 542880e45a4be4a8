"""The result of a persistence computation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tda_ray.engine import diagrams as dg

__all__ = ["PersistenceResult"]


@dataclass
class PersistenceResult:
    """Persistence diagrams of one computation.

    ``diagrams[k]`` is a float64 array of shape ``(m, 2)`` of (birth, death) pairs in homology dimension
    ``k``; essential classes have death ``inf``.  ``n_points`` is the size of the input: points of a cloud, or
    pixels (voxels) of an image.  ``extras`` holds what the run reports beside the diagrams (Rips: ``sparse``,
    ``effective_threshold``, ``landmarks`` for landmark runs; cubical: ``shape``, ``construction``, ``pixels``).
    ``stats`` is the Rips engine's account of the run (empty for cubical): ``threads``, ``points``, ``edges``
    (within the threshold) and ``edges_after_collapse``, ``collapsed``, the phase times ``distances_s``,
    ``collapse_s``, ``dim0_s``, ``total_s``, ``estimated_bytes`` (the up-front estimate checked against the
    memory limit), ``peak_bytes`` (most memory its budget held at once), and per homology dimension
    (``dimensions[k]``) the simplices and what became of them (``cleared``, ``apparent``, ``emergent``,
    ``reduced``: they add up to ``simplices`` from dimension 1 on), the reduction's work (``column_additions``,
    ``coboundaries``, ``heap_pushes``, ``rereduced``, ``retired_entries``, ``threads``, ``reduction_bytes``),
    ``pairs``, ``essential`` and the times ``assembly_s``, ``reduction_s``.

    ``cocycles`` (Rips with ``cocycles=True``; else None): ``cocycles[k][i]`` is a representative cocycle of
    the class ``diagrams[k][i]``, an int64 array of shape ``(m, k + 2)``: per row the ``k + 1`` vertex indices
    of a ``k``-simplex (decreasing) and its coefficient in ``0..p-1``, as ripser.py gives them.  Restricted
    to the complex at any scale in ``[birth, death)`` it is a cocycle whose class is not zero; the classes of
    the pairs alive at a scale form a basis of the cohomology there.  ``cocycles[0]`` is empty (ripser.py's
    convention).  Different thread counts may give different, equally valid representatives.
    """

    diagrams: list[npt.NDArray[np.float64]]
    maxdim: int
    coeff: int
    threshold: float | None
    n_points: int
    extras: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    cocycles: list[list[npt.NDArray[np.int64]]] | None = None

    def betti_numbers(self, scale: float) -> npt.NDArray[np.int64]:
        """Betti numbers of the complex at filtration value ``scale``."""
        return dg.betti_numbers(self.diagrams, scale)

    def betti_curve(self, scales: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Betti numbers at each scale: shape ``(len(scales), maxdim + 1)``."""
        return dg.betti_curve(self.diagrams, scales)

    def total_persistence(self, p: float = 1.0) -> npt.NDArray[np.float64]:
        """Sum of (death - birth)^p per dimension over finite pairs."""
        return dg.total_persistence(self.diagrams, p)

    def persistence_entropy(self) -> npt.NDArray[np.float64]:
        """Shannon entropy (natural log) of the finite bar lengths per dimension."""
        return dg.persistence_entropy(self.diagrams)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``death`` is ``None`` for essential classes."""
        return {
            "diagrams": dg.to_json(self.diagrams),
            "maxdim": self.maxdim,
            "coeff": self.coeff,
            "threshold": self.threshold if self.threshold is not None and math.isfinite(self.threshold) else None,
            "n_points": self.n_points,
            **({} if self.cocycles is None else {"cocycles": [[c.tolist() for c in dim] for dim in self.cocycles]}),
        }
