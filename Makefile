# drillctl: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test setup setup-demo lint typecheck unit bench k8s-up k8s-down clean

setup: ## Python venv with drillctl and its dev tools, the Debian packages the tests use, a pinned toxiproxy-server
	@bash scripts/setup.sh test

setup-demo: ## Only what a drill needs: a venv with drillctl, libfaketime, a pinned toxiproxy-server
	@bash scripts/setup.sh demo

demo: setup-demo ## Run the quickstart drill end to end and print where the report is
	@$(VENV)/bin/drillctl run drills/examples/quickstart.yaml

test: setup lint typecheck ## Everything CI runs: lint, types, and every test against real components
	@$(PY) -m pytest

lint:
	@$(VENV)/bin/ruff check orchestrator tests demo bench
	@$(VENV)/bin/ruff format --check orchestrator tests demo bench

typecheck:
	@$(VENV)/bin/mypy orchestrator

bench: setup ## Benchmarks (figures printed, nothing asserted)
	@$(PY) bench/sampler_cadence.py
	@$(PY) bench/cli_startup.py
	@$(PY) bench/sampler_scale.py
	@$(PY) bench/accuracy.py
	@$(PY) bench/fault_latency.py
	@$(PY) bench/vs_chaostoolkit.py
	@$(PY) bench/long_gameday.py
	@$(PY) bench/watchdog_revert.py
	@$(PY) bench/history.py

k8s-up: ## A real Kubernetes control plane on loopback (etcd, apiserver, controllers, KWOK nodes, one real node)
	@bash scripts/k8s/up.sh

k8s-down:
	@bash scripts/k8s/down.sh

clean:
	rm -rf $(VENV) .tools runs .pytest_cache .mypy_cache .ruff_cache
