# Developer and CI entry points. `make setup` is idempotent: it only redoes what changed
# (pyproject.toml -> dependencies, cpp_core/ or CMake files -> incremental C++ rebuild).
SHELL := /bin/bash
.DEFAULT_GOAL := setup

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DATASETS ?= $(or $(TDA_DATASETS),../shared/datasets)
TEST_TIMEOUT ?= 600
PYTEST_ARGS ?=
BENCH_ARGS ?=

export RAY_USAGE_STATS_ENABLED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

DEPS_STAMP := $(VENV)/.tda-ray-deps.stamp
CORE_STAMP := build/.tda-ray-core.stamp
# Directories are listed too: adding or removing a file changes their mtime. The editable install maps
# each module of tda_ray/ to the source tree, so a module added or removed (a directory's mtime) reinstalls.
CORE_INPUTS := CMakeLists.txt pyproject.toml $(shell find cpp_core 2>/dev/null) $(shell find tda_ray -type d -not -name __pycache__ 2>/dev/null)

# Extension point: a fragment mk/NAME.mk adds `SETUP_STEPS += NAME-step` and a rule for it;
# `make setup` then runs it after the Python setup.
SETUP_STEPS :=
-include $(wildcard mk/*.mk)

.PHONY: setup python-setup test run lint bench clean distclean

setup: python-setup $(SETUP_STEPS)

python-setup: $(CORE_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Build requirements, runtime dependencies and the server + learn + dev extras, read from pyproject.toml
# so the package itself is built only once, below.
$(DEPS_STAMP): pyproject.toml | $(PY)
	$(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
	  reqs = p["build-system"]["requires"] + p["project"]["dependencies"] + \
	    [r for extra in ("server", "learn", "dev") for r in p["project"]["optional-dependencies"][extra]]; \
	  print("\n".join(reqs))' > $(VENV)/tda-ray-requirements.txt
	$(PIP) install -r $(VENV)/tda-ray-requirements.txt
	touch $@

$(CORE_STAMP): $(DEPS_STAMP) $(CORE_INPUTS)
	$(PIP) install --no-build-isolation --no-deps -e .
	@mkdir -p $(dir $@) && touch $@

test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -p no:cacheprovider --timeout=$(TEST_TIMEOUT) $(PYTEST_ARGS)

# The whole stack in the foreground (Kafka broker, Flink job, Ray + Serve on 127.0.0.1:8000);
# Ctrl-C or SIGTERM stops all of it. TDA_KAFKA_ENABLED=false serves without Kafka and Flink.
run: setup
	exec $(PY) infra/run_stack.py

lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy tda_ray tests $(wildcard benchmarks/*.py)
	find cpp_core -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' \) -print0 \
	  | xargs -0 -r $(VENV)/bin/clang-format --dry-run --Werror

bench: setup
	$(PY) benchmarks/run_suite.py $(BENCH_ARGS)

clean:
	rm -rf build dist _skbuild *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . \( -path ./.venv -o -path ./flink/.venv -o -path ./.git \) -prune -o \
	  -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
