# giotto-tda as a reference for the scikit-learn transformers' tests (tests/test_learn_giotto.py).
# Included by the main Makefile (`-include mk/*.mk`). giotto-tda 0.6.2 pins numpy < 2 and scikit-learn 1.3,
# which clash with the main virtualenv, so it gets its own: .cache/giotto/venv from tests/giotto/requirements.txt.
# The tests run tests/giotto/reference.py in it (TDA_GIOTTO_PYTHON overrides the interpreter) and skip when
# it is absent.
#
#   make giotto-venv    the reference virtualenv (part of `make setup`)

GIOTTO_PYTHON ?= python3.11
GIOTTO_VENV := .cache/giotto/venv
GIOTTO_STAMP := $(GIOTTO_VENV)/.tda-giotto.stamp

SETUP_STEPS += giotto-venv

.PHONY: giotto-venv

giotto-venv: $(GIOTTO_STAMP)

$(GIOTTO_STAMP): tests/giotto/requirements.txt
	$(GIOTTO_PYTHON) -m venv $(GIOTTO_VENV)
	$(GIOTTO_VENV)/bin/python -m pip install -r tests/giotto/requirements.txt
	$(GIOTTO_VENV)/bin/python -c 'import gtda.homology, gtda.diagrams, gtda.time_series'
	touch $@
