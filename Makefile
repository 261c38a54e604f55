# Trackstack — the two commands that matter: `make run` and `make test`. `make help` lists the rest.

SHELL := bash
.DEFAULT_GOAL := help

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
VENV ?= $(CURDIR)/.venv
PYTHON ?= python3
DATA_DIR ?=
BIND ?= 127.0.0.1:3000

SERVER_RELEASE := $(CARGO_TARGET_DIR)/release/trackstack
SERVER_DEBUG := $(CARGO_TARGET_DIR)/debug/trackstack

.PHONY: help run build venv venv-test test test-rust test-python lint fmt clean bench bench-full

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: build venv ## Build everything and start the all-in-one server (embedded storage) on $(BIND)
	@echo "Python SDK installed in $(VENV); try: $(VENV)/bin/python examples/quickstart.py"
	$(SERVER_RELEASE) server --bind $(BIND) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

build: ## Build the trackstack binary (release)
	cargo build --release --locked -p trackstack-server

venv: $(VENV)/.installed ## Create .venv with the Python SDK (editable) and its dev tools

$(VENV)/.installed: sdks/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e 'sdks/python[dev]'
	touch $@

venv-test: $(VENV)/.installed-test ## Add what the test services need to .venv (chDB for the ClickHouse front)

$(VENV)/.installed-test: $(VENV)/.installed tests/support/requirements.txt
	$(VENV)/bin/pip install --quiet -r tests/support/requirements.txt
	touch $@

test: lint venv-test ## Run every suite (lint; Rust and Python tests with Postgres, ClickHouse and S3 started for them)
	tests/support/with-services $(MAKE) --no-print-directory test-rust test-python

test-rust: ## Rust unit, conformance and HTTP tests (external suites need tests/support/with-services)
	@if cargo nextest --version >/dev/null 2>&1; then cargo nextest run --workspace --locked --no-tests=fail; \
	else cargo test --workspace --locked; fi

test-python: venv-test ## Python SDK tests against the real server binary, and the test-support tests
	cargo build --locked -p trackstack-server
	TRACKSTACK_BIN=$(SERVER_DEBUG) $(VENV)/bin/pytest -q sdks/python/tests
	$(VENV)/bin/pytest -q tests/support

BENCH_RELEASE := $(CARGO_TARGET_DIR)/release/trackstack-bench
BENCH_ARGS ?=

bench: build venv ## Benchmark (quick size, a few minutes) against a fresh all-in-one server; see docs/benchmarks.md
	cargo build --release --locked -p trackstack-bench
	$(BENCH_RELEASE) --size quick --server-bin $(SERVER_RELEASE) --python $(VENV)/bin/python $(BENCH_ARGS)

bench-full: build venv ## Benchmark at the full sizes the budgets are stated at (W1 at 100k runs, …)
	cargo build --release --locked -p trackstack-bench
	$(BENCH_RELEASE) --size full --server-bin $(SERVER_RELEASE) --python $(VENV)/bin/python $(BENCH_ARGS)

lint: venv ## rustfmt, clippy -D warnings, ruff
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/ruff check sdks/python tests/support bench/sdk
	$(VENV)/bin/ruff format --check sdks/python tests/support bench/sdk

fmt: venv ## Format Rust and Python code
	cargo fmt --all
	$(VENV)/bin/ruff format sdks/python tests/support bench/sdk

clean: ## Remove build outputs and the virtual environment
	cargo clean
	rm -rf $(VENV)
