# The two commands of the README. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install install-test sandbox-image lint test run-example

# 1. Install treadle with its runtime (embedded model, OpenAI-compatible client, Docker sandbox).
install:
	$(PIP) install -e ".[run]"

# Everything the test suite needs: Debian packages for the sandbox image, dev dependencies.
install-test:
	@command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap; }
	$(PIP) install -e ".[dev]"

# The sandbox image, built from Debian packages (no registry needed); skipped when it exists.
sandbox-image:
	treadle sandbox build
	treadle sandbox doctor

lint:
	ruff check .
	ruff format --check .
	mypy

# 2. Install test dependencies, build the sandbox image, lint, type-check, run every test.
test: install-test sandbox-image lint
	$(PYTHON) -m pytest -q
