# kes: two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
KES_PORT ?= 9092
export KES_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(KES_PORT)
# The 3-node cluster of the replicated benchmark measures (nodes on PORT..PORT+2).
BENCH_CLUSTER3_PORT ?= 9292
BENCH_CLUSTER3_DIR ?= .kes/bench-cluster3

.PHONY: help venv provision broker postgres stop stop-all lint test test-fast demo bench bench-quick clean shop shop-load

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed ## create .venv and install kes with its dev tools

provision: venv ## make sure Java and Maven are there (installs them with apt when missing)
	@bash scripts/provision.sh

broker: provision ## fetch Apache Kafka (once) and start a local broker (reuses a running one)
	$(BIN)/kes broker start --port $(KES_PORT)

postgres: venv ## a private PostgreSQL for read models (installs it with apt when missing)
	@bash scripts/postgres.sh >/dev/null

stop: ## stop the local broker
	-$(BIN)/kes broker stop

stop-all: ## stop every broker and cluster the project started
	-$(BIN)/kes broker stop
	-$(BIN)/kes broker stop --data-dir .kes/test-broker
	-$(BIN)/kes broker stop --data-dir .kes/test-cluster3
	-$(BIN)/kes broker stop --data-dir $(BENCH_CLUSTER3_DIR)
	-$(BIN)/kes broker stop --data-dir .kes/test-secure
	-$(BIN)/kes broker stop --data-dir .kes/test-secure3
	-bash scripts/postgres.sh stop

lint: venv ## ruff and mypy --strict
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy

test: broker postgres lint ## lint, then the whole suite against real Kafka and PostgreSQL
	$(BIN)/pytest

test-fast: venv ## the tests that need no Kafka
	$(BIN)/pytest -m "not kafka and not cluster"

demo: broker ## run the users example against the local broker
	$(BIN)/python -m examples.users.demo

bench: broker ## full benchmark run with a 3-node cluster too (< 40 min) -> benchmarks/RESULTS.md
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/kes broker start --nodes 3 --port $(BENCH_CLUSTER3_PORT) --data-dir $(BENCH_CLUSTER3_DIR)
	$(BIN)/python -m benchmarks --cluster3-dir $(BENCH_CLUSTER3_DIR); status=$$?; \
	$(BIN)/kes broker stop --data-dir $(BENCH_CLUSTER3_DIR); exit $$status

bench-quick: broker ## every workload, small sizes, one node only (< 5 min)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks --quick

clean: stop-all ## remove the venv and local broker data
	rm -rf $(VENV) .kes

SHOP_PORT ?= 8000

shop: broker postgres ## the FastAPI example service on kes.aio (uvicorn on 127.0.0.1:$(SHOP_PORT))
	KES_SHOP_DB=$$(bash scripts/postgres.sh) $(BIN)/uvicorn examples.shop.app:app --host 127.0.0.1 --port $(SHOP_PORT)

shop-load: venv ## 64 Locust shoppers for 30 s against a running `make shop`
	$(BIN)/locust -f examples/shop/locustfile.py --headless -u 64 -r 64 -t 30s -H http://127.0.0.1:$(SHOP_PORT)
