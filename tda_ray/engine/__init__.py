"""The persistence engine's Python face: NumPy in, NumPy out, the C++ core (``tda_ray._core``) underneath.

Knows nothing of Ray, HTTP, SQL or Kafka.

* :mod:`~tda_ray.engine.params` — typed parameters (the one Python-side validator), :mod:`~.registry` — the
  algorithms, :mod:`~.rips` — Vietoris–Rips, :mod:`~.cubical` — cubical persistence of images and volumes,
  :mod:`~.graphs` — weighted graphs as Rips input, :mod:`~.result` / :mod:`~.summary` — what a run returns,
  :mod:`~.diagrams` — diagrams and their JSON form.

Submodules load on first use: :mod:`~tda_ray.engine.diagrams` (NumPy only) can be imported without the
compiled core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tda_ray.engine.cubical import CubicalParams, cubical_persistence
    from tda_ray.engine.graphs import graph_distance_matrix, vietoris_rips_graph
    from tda_ray.engine.params import MAX_COEFF, RipsParams, RunOptions, is_prime
    from tda_ray.engine.registry import ALGORITHMS, Algorithm, get_algorithm
    from tda_ray.engine.result import PersistenceResult
    from tda_ray.engine.rips import CancelToken, EngineCancelled, MemoryLimitError, ripser, vietoris_rips

__all__ = [
    "ALGORITHMS",
    "MAX_COEFF",
    "Algorithm",
    "CancelToken",
    "CubicalParams",
    "EngineCancelled",
    "MemoryLimitError",
    "PersistenceResult",
    "RipsParams",
    "RunOptions",
    "cubical_persistence",
    "get_algorithm",
    "graph_distance_matrix",
    "is_prime",
    "ripser",
    "vietoris_rips",
    "vietoris_rips_graph",
]

_LAZY = {
    "CubicalParams": "cubical",
    "cubical_persistence": "cubical",
    "graph_distance_matrix": "graphs",
    "vietoris_rips_graph": "graphs",
    "MAX_COEFF": "params",
    "RipsParams": "params",
    "RunOptions": "params",
    "is_prime": "params",
    "ALGORITHMS": "registry",
    "Algorithm": "registry",
    "get_algorithm": "registry",
    "PersistenceResult": "result",
    "CancelToken": "rips",
    "EngineCancelled": "rips",
    "MemoryLimitError": "rips",
    "ripser": "rips",
    "vietoris_rips": "rips",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'tda_ray.engine' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"tda_ray.engine.{module}"), name)
        globals()[name] = value
        return value
