# envoy-ingest: the two quick-start commands are `make demo` and `make test`.
# Both do all set-up on a fresh machine (a .venv, the package, and for the
# tests the InfluxDB 1.x and VictoriaMetrics servers from Debian's packages).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SPEED  ?= 1
AT     ?=
SITE   ?=
LIVE   ?=
PYTEST_ARGS ?=

.PHONY: demo test lint format test-servers bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.runtime

## demo: run the built-in simulator and the worker, writing ./data/*.lp
## (SPEED=10 compresses time tenfold; AT=11:00 starts the simulated day at 11:00;
## SITE=battery: IQ batteries, System Controller, generator and a grid outage;
## LIVE=2 also reads live power every 2 s, from readings that move every second)
demo: $(VENV)/.runtime
	$(BIN)/envoy-ingest demo --speed $(SPEED) $(if $(AT),--at $(AT)) $(if $(SITE),--site $(SITE)) \
	  $(if $(LIVE),--live $(LIVE))

## test-servers: install the real InfluxDB 1.x and VictoriaMetrics the tests start,
## and docker-compose, which validates deploy/compose (no Docker engine is needed)
TEST_PACKAGES := influxdb victoria-metrics docker-compose
test-servers:
	@command -v influxd >/dev/null && command -v victoria-metrics >/dev/null \
	  && command -v docker-compose >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(TEST_PACKAGES) >/dev/null; }

## lint: ruff and mypy, as CI runs them
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole test suite against real servers and the simulator
test: $(VENV)/.dev test-servers lint
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the quick benchmarks under bench/ (commands and figures: docs/performance.md)
bench: $(VENV)/.dev test-servers
	$(BIN)/python bench/bench_worker.py
	$(BIN)/python bench/bench_spool.py
	$(BIN)/python bench/bench_energy.py
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_requests.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
