# Strongroom — make targets. `make demo` runs the main job; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench clean install dictionary reference screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/strongroom dp setup  # OpenDP's engine in its own venv (it pins an older Polars)
	touch $(STAMP)

demo: $(STAMP)  ## the main job: synthesise 500,000 participants, ingest them encrypted, summarise
	$(BIN)/strongroom demo

test: $(STAMP)  ## lint, type-check, then every test (unit, integration, functional)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/pytest tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)  ## the benchmarks; writes BENCHMARKS.md
	$(BIN)/python benchmarks/run.py

dictionary: $(STAMP)  ## rebuild the shipped dictionary from ../shared/research-data/ukb-schema
	$(BIN)/python scripts/build_dictionary.py

screenshots: $(STAMP)  ## refresh docs/screenshots from the web console's browser tests
	STRONGROOM_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/functional/web

reference: $(STAMP)  ## regenerate docs/reference/access.md and api.md from the declared tables
	$(BIN)/python scripts/build_reference.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache strongroom-demo strongroom-demo.key
