# Tenure — `make dev` for a live demo, `make test` for the whole suite.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KUBECTL := .cache/bin/kubectl
export KUBECONFIG ?= $(CURDIR)/.cache/cluster/kubeconfig

.PHONY: help venv crds cluster-build cluster-up cluster-down install samples run dev lint test test-unit test-e2e \
        bench bench-scale bench-postgres clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/tenure: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/tenure ## create the virtualenv with Tenure and its test tools

crds: venv ## render crds/ from the API models
	$(BIN)/tenure crds crds

cluster-build: ## build the local control plane binary once (~7-10 min cold on an idle VM, then cached in ~/.cache/tenure)
	tests/cluster/cluster.sh build

cluster-up: ## start the local control plane and its node (builds it once; installs containerd, runc, CNI if missing)
	tests/cluster/cluster.sh up

cluster-down: ## stop the local control plane and its pods, remove its state, mounts and bridge
	tests/cluster/cluster.sh down

install: ## apply the CRDs to the current cluster and wait until they are served
	$(KUBECTL) apply -f crds/
	$(KUBECTL) wait --for=condition=Established --timeout=60s -f crds/

samples: ## apply the demo objects (windows of seconds)
	$(KUBECTL) apply -f manifests/samples/

run: venv ## run the operator in the foreground against the current KUBECONFIG
	$(BIN)/tenure run --log-format=plain

dev: venv ## the live demo on a fresh control plane: CRDs, samples, a LiteLLM database, operator, storyline
	tests/cluster/cluster.sh down
	$(MAKE) --no-print-directory cluster-up install samples
	@echo "In another terminal: export KUBECONFIG=$(KUBECONFIG); $(CURDIR)/$(KUBECTL) get tenants -w"
	$(BIN)/python manifests/samples/database.py & database=$$!; \
	  KUBECTL=$(KUBECTL) manifests/samples/story.sh & story=$$!; \
	  trap "kill $$story $$database 2>/dev/null || true" EXIT; \
	  $(BIN)/tenure run --log-format=plain

lint: venv ## ruff, mypy --strict, gofmt
	$(BIN)/ruff check operator tests bench manifests
	$(BIN)/ruff format --check operator tests bench manifests
	$(BIN)/mypy
	test -z "$$(gofmt -l tests/cluster)"

test: venv lint cluster-build ## the whole suite: unit, property and e2e on the local control plane
	$(BIN)/pytest

test-unit: venv ## unit and property tests only (no cluster)
	$(BIN)/pytest -m 'not e2e'

test-e2e: venv cluster-build ## e2e tests only
	$(BIN)/pytest -m e2e

bench: bench-scale bench-postgres ## every benchmark; results and commands in bench/RESULTS.md

bench-scale: venv cluster-build ## 10,000 tenants vs a no-op kopf operator, on a throwaway control plane
	$(BIN)/python bench/scale.py

bench-postgres: venv ## purge and sweep LiteLLM_SpendLogs: 10M rows, 1,000 tenants, vs single DELETE and LiteLLM's batches
	$(BIN)/python bench/postgres.py

clean: cluster-down ## remove the venv and every build output in the tree
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
