"""What the transformers share: hyperparameters checked at ``fit`` by their pydantic model (scikit-learn keeps
``__init__`` free of logic), the input tags that tell scikit-learn's checks what data they take, and joblib
over even slices of a collection (``n_jobs`` as scikit-learn reads it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import gen_even_slices

from tda_ray.engine.params import Params

P = TypeVar("P", bound=Params)
T = TypeVar("T")

__all__ = ["CollectionTransformer", "map_slices"]


class CollectionTransformer(TransformerMixin, BaseEstimator):
    """Base of the transformers: a collection in (a 3-D array or a list of 2-D arrays), arrays out."""

    # The hyperparameters' model; n_jobs is joblib's and not part of it.
    _params: type[Params]
    # What a sample is: 2-D (point clouds, time series) or 3-D (padded diagrams); read by __sklearn_tags__.
    _two_d_input = False

    def _checked(self, model: type[P]) -> P:
        values = {k: v for k, v in self.get_params(deep=False).items() if k != "n_jobs"}
        return model.parse(values)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = self._two_d_input
        tags.input_tags.three_d_array = not self._two_d_input
        tags.requires_fit = True
        return tags


def map_slices(
    func: Callable[[Any], T], items: Sequence[Any] | np.ndarray, n_jobs: int | None, prefer: str | None = None
) -> list[T]:
    """``func`` over ``effective_n_jobs(n_jobs)`` even slices of ``items`` through joblib (in this process when
    one job).  ``prefer`` is joblib's hint ("threads" where the work releases the GIL); a backend chosen with
    ``joblib.parallel_config`` wins over it, so under ``tda_ray.distributed.joblib.ray_backend()`` the slices
    are Ray tasks."""
    jobs = effective_n_jobs(n_jobs)
    slices = list(gen_even_slices(len(items), jobs))
    if jobs == 1 or len(slices) <= 1:
        return [func(items)]
    return list(Parallel(n_jobs=n_jobs, prefer=prefer)(delayed(func)(items[s]) for s in slices))
