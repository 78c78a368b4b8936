"""Legal holds for everyone: manifests/deploy/records-policies.yaml refuses, in the API server, deleting a held
tenant's namespace or claims, whoever asks; releasing the hold is the only way back."""

from __future__ import annotations

import subprocess

from tests.conftest import BREAK_GLASS, Objects
from tests.support.kube import Kubectl, eventually


def _namespace_with_claim(kubectl: Kubectl, namespace: str, tenant: str) -> None:
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"retention.tenure.dev/tenant": tenant}},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )


def _refused(result: subprocess.CompletedProcess[str], hold: str, tenant: str) -> bool:
    return result.returncode != 0 and f"tenant {tenant} is under LegalHold {hold} (case 2026-14)" in result.stderr


def test_a_held_tenants_namespace_and_claims_cannot_be_deleted_by_anyone_until_the_hold_is_released(
    kubectl: Kubectl, crds: None, objects: Objects, unique: str
) -> None:
    tenant, namespace, hold, other = f"t-{unique}", f"ns-{unique}", f"h-{unique}", f"other-{unique}"
    _namespace_with_claim(kubectl, namespace, tenant)
    _namespace_with_claim(kubectl, other, f"free-{unique}")  # another tenant's: the hold is not about it
    # Several holds, one naming the tenant: each hold is one parameter of the policy.
    objects.create("LegalHold", f"x-{unique}", {"tenants": [f"free-{unique}-no"], "reason": "another case"})
    objects.create("LegalHold", hold, {"tenants": [f"nobody-{unique}", tenant], "reason": "case 2026-14"})
    try:

        def dry_run() -> subprocess.CompletedProcess[str]:  # goes through admission, deletes nothing
            return kubectl.run("delete", "pvc", "data", "-n", namespace, "--dry-run=server", check=False)

        eventually(lambda: _refused(dry_run(), hold, tenant), what="the hold to be enforced")
        claim = kubectl.run("delete", "pvc", "data", "-n", namespace, "--wait=false", check=False)
        assert _refused(claim, hold, tenant), claim.stderr
        assert f"deleting PersistentVolumeClaim {namespace}/data is refused" in claim.stderr
        assert f"kubectl delete legalhold {hold}" in claim.stderr
        # Cluster admin, the break-glass group, a bulk delete: all refused, nothing gone.
        for flags in ((), BREAK_GLASS):
            refused = kubectl.run("delete", "namespace", namespace, "--wait=false", *flags, check=False)
            assert _refused(refused, hold, tenant), refused.stderr
            assert f"deleting namespace {namespace} is refused" in refused.stderr
        assert not _refused(bulk := kubectl.run("delete", "pvc", "--all", "-n", namespace, check=False), hold, "x")
        assert bulk.returncode != 0 and hold in bulk.stderr
        # Taking the label away first is the same door.
        unlabel = kubectl.run("label", "namespace", namespace, "retention.tenure.dev/tenant-", check=False)
        assert _refused(unlabel, hold, tenant) and "removing the tenant label of" in unlabel.stderr
        relabel = kubectl.run("label", "--overwrite", "namespace", namespace, "a=b", check=False)
        assert relabel.returncode == 0, relabel.stderr  # other edits of the namespace are not the hold's business
        assert kubectl.get("pvc", "data", namespace=namespace) is not None
        ns = kubectl.get("namespace", namespace)
        assert ns is not None and "deletionTimestamp" not in ns["metadata"]
        # Another tenant's namespace is not held.
        kubectl.run("delete", "pvc", "data", "-n", other, "--wait=false")

        kubectl.delete("legalhold", hold)
        eventually(lambda: dry_run().returncode == 0, what="the released hold to stop refusing")
        kubectl.run("delete", "pvc", "data", "-n", namespace, "--wait=false")
        kubectl.run("delete", "namespace", namespace, "--wait=false")
    finally:
        kubectl.delete("legalhold", hold)
        for name in (namespace, other):
            kubectl.run("delete", "namespace", name, "--wait=false", "--ignore-not-found")
