# Strongroom — make targets. `make demo` runs the main job; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck check bench clean install dictionary reference screenshots migration

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# uv installs in about a minute what pip takes three or four over (CI's clock includes it);
	@# pip does it where uv cannot be had
	@# Compiled to bytecode as it is installed (pip does so by default, uv when asked), and the
	@# project's own source too: where PYTHONDONTWRITEBYTECODE is set (CI, these machines) a
	@# Python that finds no .pyc compiles every module it imports, every time it starts: 8.5 s
	@# to import the server, 3.4 s with them, for every worker, server, CLI command and job
	$(BIN)/pip install --quiet uv && $(BIN)/uv pip install --quiet --compile-bytecode \
	  --python $(BIN)/python -e ".[dev]" || $(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -m compileall -q -j 0 src >/dev/null
	$(BIN)/strongroom dp setup  # OpenDP's engine in its own venv (it pins an older Polars)
	@# researchers' jobs run in bubblewrap: installed here where it is missing and we may
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null; } \
	  || echo "note: install bubblewrap (apt-get install bubblewrap) to run jobs"
	@# R jobs (Rscript actions) run Debian's R and its packages: the same, where they are missing
	@# (and curl, for the R client: clients/r/strongroom; knitr, for R Markdown actions; ggplot2, for figures)
	@{ command -v Rscript >/dev/null && Rscript -e 'library(curl); library(knitr); library(ggplot2)' >/dev/null 2>&1; } \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends r-base-core \
	     r-cran-data.table r-cran-survival r-cran-jsonlite r-cran-curl r-cran-knitr r-cran-ggplot2 >/dev/null; } \
	  || echo "note: install R (apt-get install r-base-core r-cran-data.table r-cran-survival r-cran-jsonlite r-cran-curl r-cran-knitr r-cran-ggplot2) to run R jobs, R Markdown and the R client"
	touch $(STAMP)

demo: $(STAMP)  ## the main job: synthesise 500,000 participants, ingest them encrypted, summarise
	$(BIN)/strongroom demo

# Every test, on every core (pytest-xdist; a module's tests stay on one worker, the browser
# tests share one: tests/conftest.py), with the type check running alongside; the slowest
# tests are listed.
PYTEST_PARALLEL := -n auto --dist loadscope
# make test: one worker more than the cores. Its tests wait on wall-clock floors, sandboxed
# jobs, R, JVMs and a browser; a third worker on two cores fills those waits: 841 s at -n 2
# (the machine 83 % busy) against 713 s at -n 3 for the same CPU, 2026-11-28 (BENCHMARKS.md).
# The quick loop keeps one per core: it is CPU-bound (53.7 s at -n 2, 56.6 s at -n 3).
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
# schemathesis registers itself with every pytest process it is installed beside (a second of
# imports in each): only the fuzz run below uses it
NO_FUZZER := -p no:schemathesis

# The API fuzz run goes beside them in its own process (the main run does not even import it:
# its module builds the app and its schema when imported): schemathesis reports each operation
# as its own test only without xdist (tests/unit/test_budget.py checks it is the only fuzz module).
# The run fails if any one test takes longer than TEST_BUDGET seconds or spends more than
# TEST_CPU_BUDGET CPU seconds of its own (its process tree, its shared worlds apart), or a
# shared world takes longer than WORLD_BUDGET to build (tests/budget.py: each in a reference
# day's seconds, the wall budgets too), and says how long the whole took. CPU seconds move less with CI's load than wall seconds (two to three times), but
# still with this kind of machine's day (the suite's modules: 890-1,008 CPU-s in session 49,
# 1,509 in session 50, 2,697 in session 51), so the budget is in CPU seconds of a reference day,
# each test's divided by how much slower a fixed yardstick ran (tests/budget.py). The budget is
# the issue's 30: with the
# cluster's model tests split and the reconstruction attack's 500 DP answers asked once as its
# module's world (24.5 in one test on a fresh clone that day), the most any test spent on that
# slow day was 17.8 (BENCHMARKS.md).
FUZZ := tests/integration/test_api_fuzz.py
TEST_BUDGET ?= 120
TEST_CPU_BUDGET ?= 30
WORLD_BUDGET ?= 240
# The tests' throwaway stores (their SQLite databases, sealed files, job folders) go on a
# RAM-backed file system where there is one with room (tests/tmp_dir.py): the product code is
# the same (SQLite at synchronous=FULL, every fsync made), but a commit's fsync there costs
# nothing, where on a virtual disk it took about half the suite's wall time. Set TEST_TMPDIR
# to choose another place.
TEST_TMPDIR ?= $(shell $(PYTHON) tests/tmp_dir.py)
test: $(STAMP)  ## lint, then every test (unit, integration, functional) with the type check alongside
	@start=$$(date +%s); export TMPDIR="$(TEST_TMPDIR)"; echo "make test: temporary files in $$TMPDIR"; \
	$(BIN)/ruff check src tests benchmarks scripts || exit 1; \
	$(BIN)/mypy > $(VENV)/mypy.out 2>&1 & types=$$!; \
	$(BIN)/pytest -n 0 -m fuzz $(FUZZ) > $(VENV)/fuzz.out 2>&1 & fuzz=$$!; \
	$(BIN)/pytest -n $(WORKERS) --dist loadscope $(NO_FUZZER) -m "not fuzz" --ignore=$(FUZZ) --durations=10 --budget $(TEST_BUDGET) --cpu-budget $(TEST_CPU_BUDGET) --world-budget $(WORLD_BUDGET) --timings $(VENV)/test-timings.json tests; \
	tests=$$?; \
	wait $$fuzz; fuzzed=$$?; cat $(VENV)/fuzz.out; \
	wait $$types; typed=$$?; cat $(VENV)/mypy.out; \
	echo "make test: $$(( $$(date +%s) - start )) s wall (lint, tests, fuzz and types)"; \
	exit $$(( tests || fuzzed || typed ))

test-fast: $(STAMP)  ## the quick loop: unit and integration tests on SQLite, none marked slow
	TMPDIR="$(TEST_TMPDIR)" $(BIN)/pytest $(PYTEST_PARALLEL) $(NO_FUZZER) -m "not postgres and not browser and not slow and not fuzz" \
	  --ignore=$(FUZZ) tests/unit tests/integration

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

# A schema change ships its revision: compare the code's tables with a scratch database at the
# newest revision and write the next one (read it, then commit it with the change).
SCRATCH := /tmp/strongroom-migration-scratch.db
migration: $(STAMP)  ## write the next schema revision: make migration m="what changed"
	@test -n "$(m)" || { echo 'say what changed: make migration m="..."'; exit 1; }
	rm -f $(SCRATCH)
	$(BIN)/alembic upgrade head
	$(BIN)/alembic revision --autogenerate -m "$(m)" \
	  --rev-id $$(printf %04d $$(( $$(ls src/strongroom/migrations/versions/[0-9]*.py | wc -l) + 1 )))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache strongroom-demo strongroom-demo.key strongroom-demo-leaked.csv
