# The two commands of the README. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# llama-cpp-python builds from source: a portable x86-64-v3 build (AVX2/FMA/F16C) rather than
# -march=native, because a CPU may advertise AMX that its kernel or VM does not enable, and the
# native build's AMX kernels then die of SIGILL on the first matrix product (seen on CI's machine).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON

BUILD_CHECK = $(PYTHON) -m treadle.runtime.models.llama_build

.PHONY: install install-test llama-build llama-server-check sandbox-image lint test test-quick run-example

# 1. Install treadle with its runtime (embedded model, OpenAI-compatible client, Docker sandbox).
install:
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -e ".[run]"
	$(MAKE) --no-print-directory llama-build

# Everything the test suite needs: Debian packages (mmdebstrap for the sandbox image, iproute2
# for the two-node Ray test's network namespaces, chromium and chromium-driver for the viewer's
# browser tests) and the dev extras (which include the analysis, ray, train and phoenix extras:
# the suite runs a real Ray cluster, TRL and Arize Phoenix).
install-test:
	@{ command -v mmdebstrap && command -v ip && command -v chromium && command -v chromedriver; } >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap iproute2 chromium chromium-driver; }
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -e ".[dev]"
	$(MAKE) --no-print-directory llama-build

# pip may have kept (or taken from its wheel cache) a llama-cpp-python built with other flags:
# read its CPU features and complete one token in a child process; rebuild from source without
# the cache when the build is not the portable one or crashes.
llama-build:
	$(BUILD_CHECK) ensure --cmake-args "$(LLAMA_CMAKE_ARGS)"

# llama-cpp-python's own server on 127.0.0.1 must complete one request before the suite runs.
llama-server-check:
	$(BUILD_CHECK) serve-once

# The sandbox image, built from Debian packages (no registry needed); skipped when it exists.
sandbox-image:
	treadle sandbox build
	treadle sandbox doctor

lint:
	ruff check .
	ruff format --check .
	mypy

# 2. Install test dependencies, build the sandbox image, lint, type-check, run every test.
test: install-test sandbox-image lint llama-server-check
	$(PYTHON) -m pytest -q --durations=15

# Everything but the tests marked slow (Ray cluster, training, the embedded model's long runs,
# HumanEval, the 100k robustness sweep): for a quick round while developing.
test-quick: lint
	$(PYTHON) -m pytest -q -m "not slow"
