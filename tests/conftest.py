"""Shared fixtures: the control plane, the CRDs and a running operator.

e2e tests run against a real Kubernetes control plane. By default the local
one from tests/cluster is started (or reused); with
TENURE_USE_EXISTING_CLUSTER=1 the cluster of $KUBECONFIG is used instead
(kind, or any conformant cluster) — never by accident.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.support.kube import REPO, Kubectl, eventually
from tests.support.node import Node
from tests.support.postgres import Postgres, create_litellm_database

LOGS = REPO / ".cache" / "test-logs"
OPERATOR_IDENTITY = "system:serviceaccount:tenure-system:tenure"
BREAK_GLASS = ("--as=tenure-break-glass", "--as-group=tenure:break-glass", "--as-group=system:masters")
"""kubectl flags for the documented break-glass group: may delete open Tenants and write status (test cleanup)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
        if "/db/" in str(item.path):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real, throwaway PostgreSQL server (initdb + pg_ctl on a free port), stopped after the session."""
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def litellm_template(postgres: Postgres) -> str:
    """A database with LiteLLM's real schema (its migrations applied in order), used as a template."""
    create_litellm_database(postgres, "litellm_template")
    return "litellm_template"


@pytest.fixture
def litellm_db(postgres: Postgres, litellm_template: str, unique: str) -> str:
    """A fresh copy of the LiteLLM schema for one test."""
    with psycopg.connect(postgres.uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "litellm_{unique}" TEMPLATE "{litellm_template}"')
    return postgres.database_uri(f"litellm_{unique}")


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    subprocess.run([str(REPO / "tests/cluster/cluster.sh"), "build"], check=True)
    if os.environ.get("TENURE_USE_EXISTING_CLUSTER") == "1":
        return Path(os.environ["KUBECONFIG"])
    subprocess.run([str(REPO / "tests/cluster/cluster.sh"), "up"], check=True, stdout=subprocess.DEVNULL)
    return REPO / ".cache" / "cluster" / "kubeconfig"


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture(scope="session")
def node(kubeconfig: Path) -> Node:
    """The local control plane's node (kubelet + containerd), which the local cluster.sh up waits for."""
    if os.environ.get("TENURE_USE_EXISTING_CLUSTER") == "1":
        pytest.skip("asks the local node's containerd directly; runs on the local control plane only")
    return Node(kubeconfig.parent)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """The CRDs, then the deploy manifests (namespace, RBAC, admission policies), as `make install` does."""
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))
    # The OpenAPI document (kubectl explain, client-side validation) is published a moment after Established.
    for kind in ("tenant", "retentionpolicy", "legalhold", "datastore"):
        eventually(lambda k=kind: kubectl.run("explain", k, check=False).returncode == 0, what=f"OpenAPI for {kind}")
    deploy = REPO / "manifests/deploy"
    policies = ("validating-admission-policies.yaml", "records-policies.yaml")
    manifests = ("-f", str(deploy / "rbac.yaml"), *(f"-f{deploy / name}" for name in policies))
    kubectl.run("apply", "--server-side", "--force-conflicts", *manifests)
    admission_enforced(kubectl)


def admission_enforced(kubectl: Kubectl) -> None:
    """Wait until the API server enforces the admission policies (they load a moment after they are created)."""
    probe = {
        "apiVersion": "retention.tenure.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "admission-probe"},
        "spec": {},
    }
    kubectl.apply(probe)
    forged = ("--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Purged"}}')

    def enforced() -> bool:  # a server-side dry run goes through admission and changes nothing
        delete = kubectl.run("delete", "tenant", "admission-probe", "--dry-run=server", check=False)
        forge = kubectl.run("patch", "tenant", "admission-probe", *forged, "--dry-run=server", check=False)
        return "set spec.state: Closed" in delete.stderr and "only Tenure" in forge.stderr

    eventually(enforced, what="the admission policies to be enforced")
    kubectl.run("delete", "tenant", "admission-probe", "--wait=false", *BREAK_GLASS)
    kubectl.run(
        "patch", "tenant", "admission-probe", "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
    )


@pytest.fixture(scope="session")
def operator_kubeconfig(
    kubectl: Kubectl, kubeconfig: Path, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig for Tenure's ServiceAccount (manifests/deploy/rbac.yaml): the identity the policies accept."""
    token = kubectl.run("create", "token", "tenure", "-n", "tenure-system", "--duration=12h").stdout.strip()
    admin = yaml.safe_load(kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "tenure", "user": {"token": token}}],
        "contexts": [{"name": "tenure", "context": {"cluster": admin["clusters"][0]["name"], "user": "tenure"}}],
        "current-context": "tenure",
    }
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def objects(kubectl: Kubectl) -> Iterator[Objects]:
    """Creates Tenure objects for one test and removes them after, finalizers included."""
    created = Objects(kubectl)
    yield created
    created.cleanup()


class Objects:
    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.created: list[tuple[str, str]] = []

    def create(self, kind: str, name: str, spec: dict[str, Any]) -> None:
        self.kubectl.create(
            {"apiVersion": "retention.tenure.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
        )
        self.created.append((kind, name))

    def cleanup(self) -> None:
        for kind, name in reversed(self.created):  # as the break-glass group: a test may leave a Tenant Active
            self.kubectl.run("delete", kind, name, "--ignore-not-found", "--wait=false", *BREAK_GLASS)
            if kind == "Tenant" and self.kubectl.get(kind, name) is not None:
                self.kubectl.run("patch", kind, name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests never collide with each other or leftovers."""
    return uuid.uuid4().hex[:6]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    """`tenure run` as a child process, the way a user runs it."""

    def __init__(self, kubeconfig: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.env = env or {}
        """More settings, e.g. TENURE_DRY_RUN."""
        self.log = LOGS / f"operator-{name}.log"
        self.log.unlink(missing_ok=True)  # one log per Operator; its restarts append
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()
        self.liveness_port = free_port()

    def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TENURE_METRICS_PORT": str(self.metrics_port),
            "TENURE_LIVENESS_PORT": str(self.liveness_port),
            **self.env,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tenure", "run", "--verbose"], env=env, stdout=log, stderr=log
            )
        eventually(self._alive, timeout=30, what="operator liveness endpoint")

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}; see {self.log}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.liveness_port)) == 0

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def operator(operator_kubeconfig: Path, request: pytest.FixtureRequest) -> Iterator[Operator]:
    """The operator as its ServiceAccount, the identity the admission policies accept."""
    running = Operator(operator_kubeconfig, request.module.__name__.rsplit(".", 1)[-1])
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()
