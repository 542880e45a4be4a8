"""Durable state: job records in SQL (:mod:`~.store`), arrays as blobs (:mod:`~.blobs`), typed records
(:mod:`~.records`).  Only the jobs layer (:mod:`tda_ray.service.jobs`) uses it."""

from tda_ray.service.store import records
from tda_ray.service.store.records import *  # noqa: F403  (the record types, as records.__all__ lists them)
from tda_ray.service.store.store import Store

__all__ = [*records.__all__, "Store"]
