"""The operator does its whole job with the least-privilege identity of manifests/deploy/rbac.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OPERATOR_IDENTITY, Objects, Operator
from tests.support.kube import Kubectl
from tests.support.tenants import owned, phase_of, static_volume

# How a denied request shows in the log: kubernetes_asyncio's "(403)\nReason: Forbidden", kopf's APIForbiddenError,
# a Status body's "code": 403. A bare "403" also matches timestamps and resourceVersions.
FORBIDDEN = re.compile(r"Forbidden|\(403\)|[\"']code[\"']: ?403\b")


@pytest.fixture(scope="module")
def least_privileged_operator(operator_kubeconfig: Path) -> Iterator[Operator]:
    running = Operator(operator_kubeconfig, "rbac")
    running.start()
    yield running
    running.stop()


def can(kubectl: Kubectl, *request: str) -> str:
    return kubectl.run("auth", "can-i", *request, f"--as={OPERATOR_IDENTITY}", check=False).stdout.strip()


TENURE_KINDS = ("tenants", "retentionpolicies", "legalholds", "datastores")


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [
        # Tenure's kinds: read all; patch Tenants (finalizer only: the tenure-never-writes-spec policy refuses
        # spec); patch the status it computes. Never update (a whole-object write), create or delete.
        *[((verb, kind), "yes") for kind in TENURE_KINDS for verb in ("get", "list", "watch")],
        (("patch", "tenants"), "yes"),
        *[(("patch", kind), "no") for kind in TENURE_KINDS[1:]],
        *[((verb, kind), "no") for kind in TENURE_KINDS for verb in ("update", "create", "delete")],
        *[(("patch", kind, "--subresource=status"), "yes") for kind in ("tenants", "legalholds", "datastores")],
        (("patch", "retentionpolicies", "--subresource=status"), "no"),
        (("update", "tenants", "--subresource=status"), "no"),
        # Namespaces of tenants: created (labeled at creation), deleted by a purge; never labeled after the fact.
        *[((verb, "namespaces"), "yes") for verb in ("get", "list", "watch", "create", "delete")],
        *[((verb, "namespaces"), "no") for verb in ("update", "patch")],
        *[((verb, "persistentvolumes"), "yes") for verb in ("get", "list", "watch", "patch", "delete")],
        (("create", "persistentvolumes"), "no"),
        (("delete", "persistentvolumeclaims", "-A"), "no"),
        *[((verb, "persistentvolumeclaims", "-A"), "yes") for verb in ("list", "watch")],
        # Leader election: the Lease in tenure-system only.
        *[((verb, "leases", "-n", "tenure-system"), "yes") for verb in ("get", "create", "update")],
        (("delete", "leases", "-n", "tenure-system"), "no"),
        (("create", "leases", "-n", "default"), "no"),
        (("create", "events", "-n", "default"), "yes"),
        # ConfigMaps: records of purges' resolved keys too many for status, in tenure-system only.
        *[((verb, "configmaps", "-n", "tenure-system"), "yes") for verb in ("get", "create")],
        *[((verb, "configmaps", "-n", "tenure-system"), "no") for verb in ("update", "delete", "list")],
        (("create", "configmaps", "-n", "default"), "no"),
        # Secrets: DataStore connection Secrets and the status seal key, in tenure-system only.
        (("get", "secrets", "-n", "tenure-system"), "yes"),
        (("create", "secrets", "-n", "tenure-system"), "yes"),
        (("update", "secrets/tenure-status-seal", "-n", "tenure-system"), "no"),
        (("delete", "secrets/tenure-status-seal", "-n", "tenure-system"), "no"),
        (("list", "secrets", "-n", "tenure-system"), "no"),
        (("get", "secrets", "-n", "default"), "no"),
        (("create", "secrets", "-n", "default"), "no"),
        # Inaccessible tenants: stop workloads, refuse pods, cut the network, remove and recreate RoleBindings.
        *[
            ((verb, kind, "-A"), "yes")
            for kind in ("deployments", "statefulsets", "replicasets")
            for verb in ("list", "patch")
        ],
        *[((verb, kind, "-A"), "yes") for kind in ("cronjobs", "jobs") for verb in ("list", "patch")],
        *[
            ((verb, kind, "-A"), "no")
            for kind in ("deployments", "cronjobs", "jobs")
            for verb in ("create", "delete", "get")
        ],
        *[((verb, "pods", "-A"), "yes") for verb in ("list", "delete")],
        *[((verb, "pods", "-A"), "no") for verb in ("create", "patch", "get")],
        *[((verb, "resourcequotas", "-A"), "yes") for verb in ("get", "create", "patch", "delete")],
        *[((verb, "networkpolicies", "-A"), "yes") for verb in ("get", "list", "create", "patch", "delete")],
        (("update", "networkpolicies", "-A"), "no"),
        *[((verb, "rolebindings", "-A"), "yes") for verb in ("list", "create", "delete")],
        (("patch", "rolebindings", "-A"), "no"),
        # Removal confirmed by reading back; a finalizer holding a deleted binding removed by an update.
        *[((verb, "rolebindings", "-A"), "yes") for verb in ("get", "update")],
        # Closure records: ControllerRevisions in tenure-system only, never changed (their data is immutable anyway).
        *[((verb, "controllerrevisions", "-n", "tenure-system"), "yes") for verb in ("list", "create", "delete")],
        *[((verb, "controllerrevisions", "-n", "tenure-system"), "no") for verb in ("update", "patch")],
        *[((verb, "controllerrevisions", "-n", "default"), "no") for verb in ("list", "create", "delete")],
        *[(("bind", kind, "-A"), "yes") for kind in ("roles", "clusterroles")],
        (("escalate", "clusterroles"), "no"),
        *[((verb, "clusterrolebindings"), "no") for verb in ("create", "delete")],
        (("get", "configmaps", "-A"), "no"),
        # PurgeReceipts: created and read, never changed or deleted; the public keys' ConfigMap.
        *[((verb, "purgereceipts"), "yes") for verb in ("get", "list", "create")],
        *[((verb, "purgereceipts"), "no") for verb in ("update", "patch", "delete", "deletecollection")],
        *[((verb, "configmaps/tenure-receipt-keys", "-n", "tenure-system"), "yes") for verb in ("get", "patch")],
        (("delete", "configmaps/tenure-receipt-keys", "-n", "tenure-system"), "no"),
        (("list", "customresourcedefinitions"), "yes"),
        (("delete", "customresourcedefinitions"), "no"),
    ],
)
def test_the_verbs_tenure_holds(
    kubectl: Kubectl, operator_kubeconfig: Path, request_: tuple[str, ...], allowed: str
) -> None:
    """Exactly the permissions the README lists under "What Tenure can read and write"."""
    assert can(kubectl, *request_) == allowed


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
