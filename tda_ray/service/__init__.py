"""The service: settings, the HTTP API on Ray Serve, jobs, the store, and streaming through Kafka.

Layers, top to bottom (checked by import-linter): :mod:`~.server` and :mod:`~.deployments` compose the
application; :mod:`~.http` hands requests to :mod:`~.jobs`, which alone calls the engine and the store;
:mod:`~.store` and :mod:`~.streaming` (the only Kafka code) sit below; :mod:`~.settings` under all.
"""
