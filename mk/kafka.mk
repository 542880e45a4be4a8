# Apache Kafka for local runs and tests: a single KRaft broker+controller from Maven Central jars.
# Included by the main Makefile (`-include mk/*.mk`). Versions are pinned in infra/kafka/pom.xml.
#
#   make kafka-jars     fetch the broker jars into .cache/kafka/libs (part of `make setup`)
#   make kafka-start    format storage if new, start on 127.0.0.1:$(KAFKA_PORT), wait until it answers
#   make kafka-stop     clean shutdown
#   make kafka-status   exit 0 if the broker is running and answering
#
# The data dir ($(KAFKA_DATA_DIR), default var/kafka) survives restarts; delete it to start empty.

KAFKA_PYTHON ?= python3
KAFKA_MVN ?= mvn
KAFKA_LIBS_DIR := .cache/kafka/libs
KAFKA_STAMP := $(KAFKA_LIBS_DIR)/.fetched
KAFKA_DATA_DIR ?= $(or $(TDA_KAFKA_DATA_DIR),var/kafka)
KAFKA_PORT ?= 9092

SETUP_STEPS += kafka-jars

.PHONY: kafka-jars kafka-start kafka-stop kafka-status

kafka-jars: $(KAFKA_STAMP)

# Re-fetch from scratch when the pom (the pinned versions) changes, so no stale jar stays on the classpath.
$(KAFKA_STAMP): infra/kafka/pom.xml
	rm -rf $(KAFKA_LIBS_DIR)
	$(KAFKA_MVN) -B -q -f infra/kafka/pom.xml dependency:copy-dependencies
	$(KAFKA_PYTHON) infra/kafka/broker.py check
	touch $@

kafka-start: kafka-jars
	$(KAFKA_PYTHON) infra/kafka/broker.py start --data-dir $(KAFKA_DATA_DIR) --port $(KAFKA_PORT)

kafka-stop:
	$(KAFKA_PYTHON) infra/kafka/broker.py stop --data-dir $(KAFKA_DATA_DIR)

kafka-status:
	$(KAFKA_PYTHON) infra/kafka/broker.py status --data-dir $(KAFKA_DATA_DIR)

# `make run` starts (and stops) the broker through infra/run_stack.py.
