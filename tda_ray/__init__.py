"""tda-ray: persistent homology (Vietoris–Rips, cubical) with a C++ engine, served and scaled out with Ray.

Heavy pieces load on first use, so ``import tda_ray`` (and the client and CLI) stay
light and work without Ray installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tda_ray.distributed import landmark_rips, run_batch
    from tda_ray.engine import (
        CancelToken,
        EngineCancelled,
        MemoryLimitError,
        PersistenceResult,
        cubical_persistence,
        graph_distance_matrix,
        ripser,
        vietoris_rips,
        vietoris_rips_graph,
    )
    from tda_ray.engine.distances import bottleneck_distance, pairwise_distances, wasserstein_distance
    from tda_ray.engine.learn import (
        Amplitude,
        BettiCurve,
        CubicalPersistence,
        PersistenceEntropy,
        PersistenceImage,
        PersistenceLandscape,
        Silhouette,
        SlidingWindow,
        TakensEmbedding,
        VietorisRipsPersistence,
    )
    from tda_ray.engine.plots import plot_barcode, plot_diagrams
    from tda_ray.io import load

__all__ = [
    "Amplitude",
    "BettiCurve",
    "CancelToken",
    "CubicalPersistence",
    "EngineCancelled",
    "MemoryLimitError",
    "PersistenceEntropy",
    "PersistenceImage",
    "PersistenceLandscape",
    "PersistenceResult",
    "Silhouette",
    "SlidingWindow",
    "TakensEmbedding",
    "VietorisRipsPersistence",
    "__version__",
    "bottleneck_distance",
    "cubical_persistence",
    "graph_distance_matrix",
    "landmark_rips",
    "load",
    "pairwise_distances",
    "plot_barcode",
    "plot_diagrams",
    "ripser",
    "run_batch",
    "vietoris_rips",
    "vietoris_rips_graph",
    "wasserstein_distance",
]

_LAZY = {
    "CancelToken": "tda_ray.engine",
    "EngineCancelled": "tda_ray.engine",
    "MemoryLimitError": "tda_ray.engine",
    "PersistenceResult": "tda_ray.engine",
    "cubical_persistence": "tda_ray.engine",
    "ripser": "tda_ray.engine",
    "vietoris_rips": "tda_ray.engine",
    "graph_distance_matrix": "tda_ray.engine",
    "vietoris_rips_graph": "tda_ray.engine",
    "load": "tda_ray.io",
    "bottleneck_distance": "tda_ray.engine.distances",
    "wasserstein_distance": "tda_ray.engine.distances",
    "pairwise_distances": "tda_ray.engine.distances",
    "plot_diagrams": "tda_ray.engine.plots",
    "plot_barcode": "tda_ray.engine.plots",
    **dict.fromkeys(
        (
            "Amplitude",
            "BettiCurve",
            "CubicalPersistence",
            "PersistenceEntropy",
            "PersistenceImage",
            "PersistenceLandscape",
            "Silhouette",
            "SlidingWindow",
            "TakensEmbedding",
            "VietorisRipsPersistence",
        ),
        "tda_ray.engine.learn",
    ),
    "landmark_rips": "tda_ray.distributed",
    "run_batch": "tda_ray.distributed",
}


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise route `from tda_ray import _core` through it

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'tda_ray' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
