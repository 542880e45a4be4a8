"""Harnesses shared by the tests (and the benchmarks that drive the real service):

* :mod:`support.service` — a real `tda-ray serve` in a child process (`ServiceProcess`), waiting helpers.
* :mod:`support.ray_clusters` — local Ray, a 3-node cluster and a fake-provider autoscaler, on loopback.
* :mod:`support.engine_compare` — diagrams of the peer engines (ripser.py, GUDHI, giotto-ph) and comparison.
* :mod:`support.kafka` — the local Kafka broker (infra/kafka/broker.py) and a consumer helper.
"""
