# The HTTP service: Ray Serve + FastAPI over the job store (README "HTTP service").
# Included by the main Makefile (`-include mk/*.mk`); `make run` starts it in the foreground.
#
#   make serve           = `tda-ray serve`: local Ray + the Serve app on http://127.0.0.1:8000 (Ctrl-C stops all)
#   make service-test    only the service tests (real local Ray + HTTP; a few minutes)
#   make service-bench   HTTP latency / throughput benchmark, results in BENCHMARKS.md "HTTP service"
#
# Settings are TDA_* environment variables (tda_ray/settings.py), e.g. `TDA_PORT=8080 make serve`.

SERVICE_TESTS := tests/test_service.py tests/test_service_recovery.py tests/test_client.py

SETUP_STEPS += service-config

.PHONY: service-config serve service-test service-bench

# Fail at setup, not at the first `make run`, if serve_config.yaml does not parse as a Serve config.
service-config: python-setup
	@$(PY) -c 'import yaml; from ray.serve.schema import ServeDeploySchema; \
	  ServeDeploySchema.model_validate(yaml.safe_load(open("serve_config.yaml")))'

serve: setup
	exec $(VENV)/bin/tda-ray serve

service-test: setup
	$(PY) -m pytest -p no:cacheprovider --timeout=$(TEST_TIMEOUT) $(SERVICE_TESTS) $(PYTEST_ARGS)

service-bench: setup
	$(PY) benchmarks/bench_service.py $(BENCH_ARGS)
