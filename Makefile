# Tenure — `make dev` for a live demo, `make test` for the whole suite.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Targets that act on a cluster (install, deploy, samples, run) use the current KUBECONFIG (or ~/.kube/config) and
# kubectl from PATH, like kubectl itself; only dev and the tests use the local control plane.
KUBECTL ?= $(or $(shell command -v kubectl 2>/dev/null),.cache/bin/kubectl)
DEV_KUBECONFIG := $(CURDIR)/.cache/cluster/kubeconfig
DEV_KUBECTL := .cache/bin/kubectl

IMAGE ?= localhost/tenure:dev
# podman as root in this VM: runc (crun refuses here), cgroupfs, and explicit limits (podman's defaults, copied from
# this shell's hard limits, are refused).
PODMAN := podman --runtime runc --cgroup-manager=cgroupfs
PODMAN_LIMITS := --ulimit nofile=16384:16384 --ulimit nproc=32768:32768
# The image's base: a minimal Debian system with python3 (the same Python 3.11 as the public default base), built
# once and cached in podman's store under a tag that changes with this command.
MMDEBSTRAP := mmdebstrap --quiet --variant=essential --include=python3,python3-venv,ca-certificates \
  $(foreach dir,doc man info locale,'--dpkgopt=path-exclude=/usr/share/$(dir)/*') \
  '--dpkgopt=path-include=/usr/share/doc/*/copyright' bookworm - http://deb.debian.org/debian
BASE_IMAGE := localhost/tenure-base:bookworm-$(shell echo '$(MMDEBSTRAP)' | sha256sum | cut -c1-12)
WHEELS := .cache/image/wheels

.PHONY: help venv crds lock image cluster-build cluster-up cluster-down install deploy samples operator-kubeconfig run dev lint test \
        test-unit test-e2e bench bench-scale bench-postgres bench-closure clean

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

lock: ## pin every runtime dependency of the image in requirements.lock (after changing pyproject.toml)
	rm -rf .cache/lock && $(PYTHON) -m venv .cache/lock
	.cache/lock/bin/pip install --quiet .
	{ sed -n '1,2p' requirements.lock; .cache/lock/bin/pip freeze --exclude tenure; } > .cache/lock/requirements.lock
	mv .cache/lock/requirements.lock requirements.lock

image: venv ## build the operator image ($(IMAGE)) with podman on a Debian base made by mmdebstrap (no registry needed)
	command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null; }
	$(PODMAN) image exists $(BASE_IMAGE) || $(MMDEBSTRAP) </dev/null | $(PODMAN) import --quiet - $(BASE_IMAGE)
	$(BIN)/pip download --quiet --no-deps --dest $(WHEELS) -r requirements.lock 'setuptools>=75'
	$(PODMAN) build --quiet $(PODMAN_LIMITS) --network=none --volume $(CURDIR)/$(WHEELS):/wheels:ro \
	  --build-arg BASE=$(BASE_IMAGE) --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels \
	  --build-arg REVISION=$$(git rev-parse HEAD) --tag $(IMAGE) --file Containerfile .
	$(PODMAN) image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' $(IMAGE)

cluster-build: ## build the local control plane binary once (~7-10 min cold on an idle VM, then cached in ~/.cache/tenure)
	tests/cluster/cluster.sh build

cluster-up: ## start the local control plane and its node (builds it once; installs containerd, runc, CNI if missing)
	tests/cluster/cluster.sh up

cluster-down: ## stop the local control plane and its pods, remove its state, mounts and bridge
	tests/cluster/cluster.sh down

install: ## apply the CRDs, then the namespace, RBAC and admission policies, to the cluster of the current KUBECONFIG
	$(KUBECTL) apply -f crds/
	$(KUBECTL) wait --for=condition=Established --timeout=60s -f crds/
	$(KUBECTL) apply --server-side --force-conflicts -f manifests/deploy/rbac.yaml \
	  -f manifests/deploy/validating-admission-policies.yaml -f manifests/deploy/records-policies.yaml

deploy: ## install the operator in the cluster of the current KUBECONFIG: kubectl apply -k manifests/deploy
	$(KUBECTL) apply --server-side --force-conflicts -k manifests/deploy

samples: ## apply the demo objects (windows of seconds) to the cluster of the current KUBECONFIG
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

dev: export KUBECONFIG := $(DEV_KUBECONFIG)
dev: KUBECTL := $(DEV_KUBECTL)
dev: venv ## the live demo on a fresh local control plane: CRDs, samples, a LiteLLM database, operator, storyline
	tests/cluster/cluster.sh down
	$(MAKE) --no-print-directory cluster-up install samples KUBECTL=$(KUBECTL)
	@echo "In another terminal: export KUBECONFIG=$(KUBECONFIG); $(CURDIR)/$(KUBECTL) get tenants -w"
	$(BIN)/python manifests/samples/database.py & database=$$!; \
	  KUBECTL=$(KUBECTL) manifests/samples/story.sh & story=$$!; \
	  trap "kill $$story $$database 2>/dev/null || true" EXIT; \
	  $(MAKE) --no-print-directory run KUBECTL=$(KUBECTL)

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

bench: bench-scale bench-postgres bench-closure ## every benchmark; results and commands in bench/RESULTS.md

bench-scale: venv cluster-build ## 10,000 tenants in every phase vs a no-op kopf operator, on a throwaway control plane
	$(BIN)/python bench/scale.py

bench-postgres: venv ## purge and sweep LiteLLM_SpendLogs: 10M rows, 1,000 tenants, vs single DELETE and LiteLLM's batches
	$(BIN)/python bench/postgres.py

bench-closure: venv cluster-build ## close and reopen a namespace with 500 RoleBindings, 200 NetworkPolicies, 100 Deployments
	tests/cluster/cluster.sh up >/dev/null
	$(BIN)/python bench/closure.py

clean: cluster-down ## remove the venv and every build output in the tree
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
