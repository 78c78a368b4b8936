"""The operator does its whole job with the least-privilege identity of manifests/deploy/rbac.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Objects, Operator
from tests.e2e.test_lifecycle import owned, phase_of, static_volume
from tests.support import deploy
from tests.support.kube import Kubectl

# How a denied request shows in the log: kubernetes_asyncio's "(403)\nReason: Forbidden", kopf's APIForbiddenError,
# a Status body's "code": 403. A bare "403" also matches timestamps and resourceVersions.
FORBIDDEN = re.compile(r"Forbidden|\(403\)|[\"']code[\"']: ?403\b")


@pytest.fixture(scope="module")
def service_account_kubeconfig(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy.service_account_kubeconfig(kubectl, tmp_path_factory.mktemp("rbac"))


@pytest.fixture(scope="module")
def least_privileged_operator(service_account_kubeconfig: Path, crds: None) -> Iterator[Operator]:
    running = Operator(service_account_kubeconfig, "rbac")
    running.start()
    yield running
    running.stop()


def test_identity_cannot_write_spec_or_read_secrets(kubectl: Kubectl, service_account_kubeconfig: Path) -> None:
    who = "--as=system:serviceaccount:tenure-system:tenure"
    assert kubectl.run("auth", "can-i", "update", "tenants", who, check=False).stdout.strip() == "no"
    assert kubectl.run("auth", "can-i", "get", "secrets", "-n", "default", who, check=False).stdout.strip() == "no"
    assert (
        kubectl.run("auth", "can-i", "get", "secrets", "-n", "tenure-system", who, check=False).stdout.strip() == "yes"
    )
    assert kubectl.run("auth", "can-i", "delete", "tenants", who, check=False).stdout.strip() == "no"
    assert (
        kubectl.run("auth", "can-i", "patch", "tenants", "--subresource=status", who, check=False).stdout.strip()
        == "yes"
    )


def test_full_purge_with_least_privilege(
    kubectl: Kubectl, objects: Objects, unique: str, least_privileged_operator: Operator
) -> None:
    tenant, namespace, volume = f"t-{unique}", f"ns-{unique}", f"pv-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    static_volume(kubectl, namespace, volume)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    phase_of(kubectl, tenant, "Purged", timeout=60)
    assert kubectl.get("namespace", namespace) is None
    assert kubectl.get("pv", volume) is None
    denials = [line for line in least_privileged_operator.log.read_text().splitlines() if FORBIDDEN.search(line)]
    assert not denials, f"the operator hit a permission it lacks: {denials[:3]}"
