# Tenure — `make dev` for a live demo, `make test` for the whole suite.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KUBECTL := .cache/bin/kubectl
export KUBECONFIG ?= $(CURDIR)/.cache/cluster/kubeconfig

.PHONY: help venv crds cluster-build cluster-up cluster-down install samples operator-kubeconfig run dev lint test test-unit test-e2e \
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

install: ## apply the CRDs, then the deploy manifests (namespace, RBAC, admission policies)
	$(KUBECTL) apply -f crds/
	$(KUBECTL) wait --for=condition=Established --timeout=60s -f crds/
	$(KUBECTL) apply -f manifests/deploy/

samples: ## apply the demo objects (windows of seconds)
	$(KUBECTL) apply -f manifests/samples/

# The operator runs as its ServiceAccount (manifests/deploy/rbac.yaml): the admission policies accept status
# writes from that identity only. A short-lived token for it, next to the current KUBECONFIG's cluster.
OPERATOR_KUBECONFIG := $(CURDIR)/.cache/operator.kubeconfig
operator-kubeconfig:
	@mkdir -p .cache
	@token=$$($(KUBECTL) create token tenure -n tenure-system --duration=24h); \
	  $(KUBECTL) config view --raw --minify > $(OPERATOR_KUBECONFIG); \
	  KUBECONFIG=$(OPERATOR_KUBECONFIG) $(KUBECTL) config set-credentials tenure --token=$$token >/dev/null; \
	  KUBECONFIG=$(OPERATOR_KUBECONFIG) $(KUBECTL) config set-context --current --user=tenure >/dev/null

run: venv operator-kubeconfig ## run the operator in the foreground, as its ServiceAccount, on the current cluster
	KUBECONFIG=$(OPERATOR_KUBECONFIG) $(BIN)/tenure run --log-format=plain

dev: venv ## the live demo on a fresh control plane: CRDs, samples, a LiteLLM database, operator, storyline
	tests/cluster/cluster.sh down
	$(MAKE) --no-print-directory cluster-up install samples
	@echo "In another terminal: export KUBECONFIG=$(KUBECONFIG); $(CURDIR)/$(KUBECTL) get tenants -w"
	$(BIN)/python manifests/samples/database.py & database=$$!; \
	  KUBECTL=$(KUBECTL) manifests/samples/story.sh & story=$$!; \
	  trap "kill $$story $$database 2>/dev/null || true" EXIT; \
	  $(MAKE) --no-print-directory run

lint: venv ## ruff, mypy --strict, the layers contract (import-linter), gofmt
	$(BIN)/ruff check operator tests bench manifests
	$(BIN)/ruff format --check operator tests bench manifests
	$(BIN)/mypy
	$(BIN)/lint-imports
	test -z "$$(gofmt -l tests/cluster)"

test: venv lint cluster-build ## the whole suite: unit, property and e2e on the local control plane
	$(BIN)/pytest

test-unit: venv ## unit and property tests only (no cluster)
	$(BIN)/pytest -m 'not e2e'

test-e2e: venv cluster-build ## e2e tests only
	$(BIN)/pytest -m e2e

bench: bench-scale bench-postgres ## every benchmark; results and commands in bench/RESULTS.md

bench-scale: venv cluster-build ## 10,000 tenants in every phase vs a no-op kopf operator, on a throwaway control plane
	$(BIN)/python bench/scale.py

bench-postgres: venv ## purge and sweep LiteLLM_SpendLogs: 10M rows, 1,000 tenants, vs single DELETE and LiteLLM's batches
	$(BIN)/python bench/postgres.py

clean: cluster-down ## remove the venv and every build output in the tree
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
