"""scikit-learn transformers with giotto-tda's conventions, on the tda-ray engine: a giotto-tda pipeline ports
by changing its imports (``from tda_ray import VietorisRipsPersistence, Amplitude, ...``).

* :mod:`~.homology` — :class:`VietorisRipsPersistence` (collections of point clouds / distance matrices ->
  padded diagrams, :mod:`~.padded`).
* :mod:`~.representations` — :class:`BettiCurve`, :class:`PersistenceLandscape`, :class:`Silhouette`,
  :class:`PersistenceImage`; :mod:`~.features` — :class:`Amplitude`, :class:`PersistenceEntropy`.
* :mod:`~.time_series` — :class:`SlidingWindow`, :class:`TakensEmbedding`.

``n_jobs`` is scikit-learn's (joblib); :func:`tda_ray.distributed.joblib.ray_backend` runs it on Ray.
Submodules load on first use (they import scikit-learn).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tda_ray.engine.learn.features import Amplitude, PersistenceEntropy
    from tda_ray.engine.learn.homology import CubicalPersistence, PersistenceTransformer, VietorisRipsPersistence
    from tda_ray.engine.learn.representations import BettiCurve, PersistenceImage, PersistenceLandscape, Silhouette
    from tda_ray.engine.learn.time_series import SlidingWindow, TakensEmbedding

__all__ = [
    "Amplitude",
    "BettiCurve",
    "CubicalPersistence",
    "PersistenceEntropy",
    "PersistenceImage",
    "PersistenceLandscape",
    "PersistenceTransformer",
    "Silhouette",
    "SlidingWindow",
    "TakensEmbedding",
    "VietorisRipsPersistence",
]

_LAZY = {
    "Amplitude": "features",
    "PersistenceEntropy": "features",
    "CubicalPersistence": "homology",
    "PersistenceTransformer": "homology",
    "VietorisRipsPersistence": "homology",
    "BettiCurve": "representations",
    "PersistenceImage": "representations",
    "PersistenceLandscape": "representations",
    "Silhouette": "representations",
    "SlidingWindow": "time_series",
    "TakensEmbedding": "time_series",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'tda_ray.engine.learn' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"tda_ray.engine.learn.{module}"), name)
        globals()[name] = value
        return value
