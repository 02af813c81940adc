# The two front doors: `make demo` (the main job on built-in synthetic data) and `make test`.
# Every target creates .venv with the pinned dependencies on first use. docs/development.md
# describes test, test-fast, lint and typecheck.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.glfnet-installed
CODE   := src tests benchmarks tools
RUFF_CHECK  := $(BIN)/ruff check --output-format concise $(CODE)
RUFF_FORMAT := $(BIN)/ruff format --check $(CODE)

.PHONY: demo test test-fast lint typecheck install bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/glfnet demo --out runs/demo

# Everything, in order: lint, format check, type check, then the whole test suite.
test: $(STAMP)
	$(RUFF_CHECK)
	$(RUFF_FORMAT)
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# The inner loop (under a minute): lint, and the tests not marked slow.
test-fast: $(STAMP)
	$(RUFF_CHECK)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(RUFF_CHECK)
	$(RUFF_FORMAT)

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_loso.py
	$(BIN)/python benchmarks/bench_prepare.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info
