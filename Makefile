# Two commands matter: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the project's dependencies change.
INSTALLED := $(VENV)/.installed

.PHONY: install protos check-protos run test check lint bench clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $@

# Regenerates Python messages and stubs, type stubs, the Envoy descriptor set and the OpenAPI document.
protos: $(INSTALLED)
	$(BIN)/python tools/build_protos.py

# Fails when the committed generated files differ from what the protos produce.
check-protos: $(INSTALLED)
	$(BIN)/python tools/build_protos.py --check

run: $(INSTALLED)
	$(BIN)/sovereign serve

test: $(INSTALLED) check-protos
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint 'envoy/descriptors.pb#format=binpb' --path sovereign_assistant --config buf.yaml

check: lint
	$(BIN)/mypy server storage client tools tests

bench: $(INSTALLED)
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
