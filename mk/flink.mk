# Apache Flink stream job (flink/feature_stats_job.py): tda_feature_results -> tda_feature_stats.
# Included by the main Makefile (`-include mk/*.mk`). apache-flink pins its own pyarrow/numpy, which clash
# with ray[data], so the job has its own virtualenv flink/.venv; the Kafka connector jar comes from Maven
# Central (flink/pom.xml) into .cache/flink/jars.
#
#   make flink-venv     flink/.venv from flink/requirements.txt (part of `make setup`)
#   make flink-jars     the Kafka connector jar (part of `make setup`)
#   make flink-start    run the job in the background on the embedded mini-cluster (waits until it runs)
#   make flink-stop     stop it
#   make flink-status   exit 0 if it runs
#   make flink-job      run it in the foreground (Ctrl-C stops it); FLINK_JOB_ARGS adds options
#
# The job reads TDA_KAFKA_BOOTSTRAP and TDA_FLINK_* from the environment (README "Flink stream job").

FLINK_PYTHON ?= python3.11
FLINK_MVN ?= mvn
FLINK_VENV := flink/.venv
FLINK_PY := $(FLINK_VENV)/bin/python
FLINK_VENV_STAMP := $(FLINK_VENV)/.tda-flink-deps.stamp
FLINK_JARS_DIR := .cache/flink/jars
FLINK_JARS_STAMP := $(FLINK_JARS_DIR)/.fetched
FLINK_STATE_DIR ?= var/flink
FLINK_JOB_ARGS ?=

SETUP_STEPS += flink-venv flink-jars

.PHONY: flink-venv flink-jars flink-start flink-stop flink-status flink-job

flink-venv: $(FLINK_VENV_STAMP)

$(FLINK_PY):
	$(FLINK_PYTHON) -m venv $(FLINK_VENV)

$(FLINK_VENV_STAMP): flink/requirements.txt | $(FLINK_PY)
	$(FLINK_PY) -m pip install -r flink/requirements.txt
	$(FLINK_PY) -c 'import pyflink.datastream.connectors.kafka, jsonschema, kafka'
	touch $@

flink-jars: $(FLINK_JARS_STAMP)

# Re-fetched from scratch when the pom (the connector version) changes, so no stale jar is loaded.
$(FLINK_JARS_STAMP): flink/pom.xml
	rm -rf $(FLINK_JARS_DIR)
	$(FLINK_MVN) -B -q -f flink/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(FLINK_JARS_DIR)
	ls $(FLINK_JARS_DIR)/flink-sql-connector-kafka-*.jar
	touch $@

flink-start: flink-venv flink-jars
	$(FLINK_PY) flink/run_local.py start --state-dir $(FLINK_STATE_DIR) -- $(FLINK_JOB_ARGS)

flink-stop:
	python3 flink/run_local.py stop --state-dir $(FLINK_STATE_DIR)

flink-status:
	python3 flink/run_local.py status --state-dir $(FLINK_STATE_DIR)

flink-job: flink-venv flink-jars
	$(FLINK_PY) flink/feature_stats_job.py $(FLINK_JOB_ARGS)
