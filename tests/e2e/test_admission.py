"""What the API server refuses, whoever asks: manifests/deploy/validating-admission-policies.yaml, for real."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import BREAK_GLASS, OPERATOR_IDENTITY, Objects
from tests.support.kube import Kubectl, eventually
from tests.support.tenants import owned, phase_of, suspend

pytestmark = pytest.mark.usefixtures("operator")

OLD = "2020-01-01T00:00:00Z"
FORGERIES: list[Any] = [
    pytest.param({"phase": "Expired", "expiredAt": OLD, "purgeAfter": OLD}, id="expired-long-ago"),
    pytest.param(
        {
            "phase": "Purging",
            "purgeStartedAt": OLD,
            "purge": {"volumes": [{"name": "pv-of-no-tenant", "uid": "u", "static": True}]},
        },
        id="purging-foreign-volumes",
    ),
    pytest.param({"phase": "Purged", "purgedAt": OLD}, id="purged-releasing-keys"),
    pytest.param({"windows": {"expiredDataRetention": "0s"}}, id="zero-retention"),
    pytest.param({"phase": "Purging", "purge": None}, id="purging-without-purge"),
]


def forge(kubectl: Kubectl, tenant: str, status: dict[str, Any], *flags: str) -> Any:
    patch = json.dumps({"status": status})
    return kubectl.run(
        "patch", "tenant", tenant, "--subresource=status", "--type=merge", "-p", patch, *flags, check=False
    )


@pytest.mark.parametrize("status", FORGERIES)
def test_a_cluster_admins_forged_status_is_refused(
    kubectl: Kubectl, objects: Objects, unique: str, status: dict[str, Any]
) -> None:
    tenant = f"t-{unique}"
    objects.create("Tenant", tenant, {"namespaces": [f"ns-{unique}"]})
    phase_of(kubectl, tenant, "Active")
    refused = forge(kubectl, tenant, status)
    assert refused.returncode != 0
    assert f"only Tenure ({OPERATOR_IDENTITY}) writes the status of tenants" in refused.stderr
    assert (kubectl.get("tenant", tenant) or {})["status"]["phase"] == "Active"
    # The documented break-glass group may (a restore, an incident); tests/e2e/test_trust.py shows what Tenure does.
    assert forge(kubectl, tenant, {"observedGeneration": 0}, "--dry-run=server", *BREAK_GLASS).returncode == 0


def test_deleting_an_open_tenant_is_refused_with_how_to_close_it(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    active, suspended = f"a-{unique}", f"s-{unique}"
    objects.create("Tenant", active, {})
    objects.create("Tenant", suspended, {})
    phase_of(kubectl, active, "Active")
    suspend(kubectl, suspended)
    phase_of(kubectl, suspended, "Suspended")
    for name, phase in ((active, "Active"), (suspended, "Suspended")):
        refused = kubectl.run("delete", "tenant", name, "--wait=false", check=False)
        assert refused.returncode != 0
        assert f"Tenant {name} is {phase}: deleting it would close the account" in refused.stderr
        assert "set spec.state: Closed" in refused.stderr
        obj = kubectl.get("tenant", name)
        assert obj is not None and "deletionTimestamp" not in obj["metadata"]
    # `kubectl delete tenants --all` (a GitOps prune) is refused per object, too.
    pruned = kubectl.run("delete", "tenants", active, suspended, "--wait=false", check=False)
    assert pruned.returncode != 0 and kubectl.get("tenant", active) is not None


def test_deleting_an_expired_tenant_is_accepted_and_its_purge_runs(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "4s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    phase_of(kubectl, tenant, "Expired")
    kubectl.run("delete", "tenant", tenant, "--wait=false")
    eventually(lambda: kubectl.get("tenant", tenant) is None, timeout=60, what="the purged tenant object to go")
    assert kubectl.get("namespace", namespace) is None


def test_deleting_an_open_tenant_without_the_policy_closes_it_and_warns(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    """As on a cluster without the policies (here: the break-glass group): today's closure, and a Warning Event."""
    tenant = f"t-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}"})
    phase_of(kubectl, tenant, "Active")
    kubectl.run("delete", "tenant", tenant, "--wait=false", *BREAK_GLASS)
    expired = phase_of(kubectl, tenant, "Expired")
    assert expired["status"]["closureReason"] == "TenantDeleted"

    def warning() -> list[dict[str, Any]]:
        events = json.loads(
            kubectl.run(
                "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={tenant}", "-o", "json"
            ).stdout
        )["items"]
        return [e for e in events if e["reason"] == "DeletedWhileOpen" and e["type"] == "Warning"]

    (event,) = eventually(warning, what="the DeletedWhileOpen Warning")
    assert "tenure-explicit-closing" in event["message"] and "while Active" in event["message"]


def test_tenure_crds_are_deleted_only_with_the_uninstall_annotation(kubectl: Kubectl, unique: str) -> None:
    plural = f"probes{unique}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.retention.tenure.dev"},
        "spec": {
            "group": "retention.tenure.dev",
            "scope": "Cluster",
            "names": {"kind": f"Probe{unique}", "plural": plural},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    kubectl.create(crd)
    name = crd["metadata"]["name"]
    refused = kubectl.run("delete", "crd", name, check=False)
    assert refused.returncode != 0
    assert "annotate it retention.tenure.dev/uninstall=true" in refused.stderr
    assert kubectl.get("crd", name) is not None
    kubectl.run("annotate", "crd", name, "retention.tenure.dev/uninstall=true")
    kubectl.run("delete", "crd", name)
    assert kubectl.get("crd", name) is None


def test_tenures_service_account_cannot_change_a_tenant_spec(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant = f"t-{unique}"
    objects.create("Tenant", tenant, {})
    phase_of(kubectl, tenant, "Active")
    as_tenure = f"--as={OPERATOR_IDENTITY}"
    refused = kubectl.run(
        "patch", "tenant", tenant, "--type=merge", "-p", '{"spec":{"state":"Closed"}}', as_tenure, check=False
    )
    assert refused.returncode != 0 and "never writes spec" in refused.stderr
    assert (kubectl.get("tenant", tenant) or {})["spec"]["state"] == "Active"
    # What it needs the verb for still passes: its finalizer (metadata), here a no-op rewrite of the same list.
    finalizers = json.dumps(
        {"metadata": {"finalizers": (kubectl.get("tenant", tenant) or {})["metadata"]["finalizers"]}}
    )
    assert kubectl.run("patch", "tenant", tenant, "--type=merge", "-p", finalizers, as_tenure).returncode == 0


def test_only_break_glass_labels_a_rolebinding_keep_access(kubectl: Kubectl, unique: str) -> None:
    """A tenant's admin cannot exempt their own binding from a suspension (docs/access.md)."""
    ns = f"ka-{unique}"
    kubectl.run("create", "namespace", ns)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "reader", "namespace": ns, "labels": {"retention.tenure.dev/keep-access": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }
    try:
        refused = kubectl.create(binding, check=False)
        assert refused.returncode != 0
        assert "only the break-glass group tenure:break-glass may set it" in refused.stderr
        unlabeled = {**binding, "metadata": {"name": "reader", "namespace": ns}}
        kubectl.create(unlabeled)
        relabel = ("label", "rolebinding", "reader", "-n", ns, "retention.tenure.dev/keep-access=true")
        assert "only the break-glass group" in kubectl.run(*relabel, check=False).stderr
        assert kubectl.run(*relabel, *BREAK_GLASS, check=False).returncode == 0
        # Once set by break glass, other edits of the binding go on as before.
        assert kubectl.run("label", "rolebinding", "reader", "-n", ns, "team=a", check=False).returncode == 0
    finally:
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def test_a_kept_rolebinding_cannot_be_widened_or_unkept_but_by_break_glass(kubectl: Kubectl, unique: str) -> None:
    """Whoever may edit a kept binding (a tenant's admin) cannot add everyone to it before a suspension."""
    ns = f"kw-{unique}"
    kubectl.run("create", "namespace", ns)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "oncall", "namespace": ns, "labels": {"retention.tenure.dev/keep-access": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "oncall"}],
    }
    everyone = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
    widen = json.dumps([{"op": "add", "path": "/subjects/-", "value": everyone}])
    patch = ("patch", "rolebinding", "oncall", "-n", ns, "--type=json", "-p", widen)
    try:
        kubectl.create(binding, *BREAK_GLASS)
        widened = kubectl.run(*patch, check=False)
        assert widened.returncode != 0
        assert "RoleBinding oncall is kept while its tenant is suspended" in widened.stderr
        assert "changing its subjects or roleRef would widen what it grants" in widened.stderr
        # Replaced whole (kubectl replace, apply): the same refusal.
        replaced = {**binding, "subjects": [*binding["subjects"], everyone]}
        assert (
            "changing its subjects or roleRef"
            in kubectl.run("replace", "-f", "-", input=json.dumps(replaced), check=False).stderr
        )
        unkept = kubectl.run(
            "label", "rolebinding", "oncall", "-n", ns, "retention.tenure.dev/keep-access-", check=False
        )
        assert unkept.returncode != 0
        assert "may change or remove that label" in unkept.stderr
        stored = kubectl.get("rolebinding", "oncall", ns)
        assert stored is not None and stored["subjects"] == binding["subjects"]
        assert stored["metadata"]["labels"]["retention.tenure.dev/keep-access"] == "true"
        # Deleting it and creating a wider one in its place needs break glass too.
        kubectl.run("delete", "rolebinding", "oncall", "-n", ns)
        assert "may set it" in kubectl.create(replaced, check=False).stderr
        # The break-glass group may change it, and other edits go on as before.
        kubectl.create(binding, *BREAK_GLASS)
        assert kubectl.run("label", "rolebinding", "oncall", "-n", ns, "team=a", check=False).returncode == 0
        assert kubectl.run(*patch, *BREAK_GLASS, check=False).returncode == 0
    finally:
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def test_only_tenure_makes_changes_or_deletes_the_objects_that_keep_a_namespace_closed(
    kubectl: Kubectl, unique: str
) -> None:
    """A tenant's admin cannot make a roomy quota named tenure-inaccessible ahead of a suspension, loosen Tenure's,
    or delete it to let pods in (tenure-reserved-names; docs/access.md). Deleting the namespace still works."""
    ns, unlabeled = f"rn-{unique}", f"rn-free-{unique}"
    kubectl.run("create", "namespace", ns)
    kubectl.run("label", "namespace", ns, f"retention.tenure.dev/tenant=t-{unique}")
    kubectl.run("create", "namespace", unlabeled)
    meta = {"name": "tenure-inaccessible", "namespace": ns}
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta, "spec": {"hard": {"pods": "100"}}}
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]},
    }
    other = {**quota, "metadata": {"name": "compute", "namespace": ns}}
    try:
        dry = ("--dry-run=server",)  # the policy loads a moment after it is applied
        eventually(lambda: kubectl.create(quota, *dry, check=False).returncode != 0, what="the policy enforced")
        for body in (quota, policy):
            refused = kubectl.create(body, check=False).stderr
            assert "the name tenure-inaccessible is reserved" in refused and "tenure:break-glass" in refused
        kubectl.create(other)  # any other name: not Tenure's business
        kubectl.create(quota, "--as=" + OPERATOR_IDENTITY)
        kubectl.create(policy, *BREAK_GLASS)
        loosen = ("patch", "resourcequota", "tenure-inaccessible", "-n", ns, "--type=merge")
        refused = kubectl.run(*loosen, "-p", '{"spec":{"hard":{"pods":"5"}}}', check=False)
        assert refused.returncode != 0 and "may create, change or delete it" in refused.stderr
        # The API server's quota admission reads status.hard: loosening that is refused too.
        status = ("patch", "resourcequota", "tenure-inaccessible", "-n", ns, "--subresource=status", "--type=merge")
        refused = kubectl.run(*status, "-p", '{"status":{"hard":{"pods":"5"}}}', check=False)
        assert refused.returncode != 0 and "is reserved" in refused.stderr
        for kind in ("resourcequota", "networkpolicy"):
            deleted = kubectl.run("delete", kind, "tenure-inaccessible", "-n", ns, check=False)
            assert deleted.returncode != 0 and "is reserved" in deleted.stderr
        assert (kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns) or {})["spec"] == quota["spec"]
        # Only namespaces labeled for a tenant: the policy's reach is Tenure's namespaces, not the whole cluster.
        kubectl.create({**quota, "metadata": {**meta, "namespace": unlabeled}})
    finally:
        kubectl.run("delete", "namespace", ns, unlabeled, "--wait=false", check=False)
    eventually(lambda: kubectl.get("namespace", ns) is None, timeout=90, what="the namespace deleted, quota and all")
