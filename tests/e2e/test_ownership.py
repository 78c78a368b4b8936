"""Ownership on a real control plane: Tenure deletes only namespaces and volumes it can prove are the tenant's.

The operator of this module runs with TENURE_PROTECTED_NAMESPACES naming one namespace, as a user configures it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.conftest import Objects, Operator
from tests.support.kube import Kubectl, condition, eventually
from tests.support.tenants import owned, phase_of, retain_volume, static_volume

TENANT_LABEL = "retention.tenure.dev/tenant"
CONFIGURED = f"infra-{uuid.uuid4().hex[:6]}"
"""A namespace the operator is configured to protect."""


@pytest.fixture(scope="module")
def operator(operator_kubeconfig: Path, crds: None) -> Iterator[Operator]:
    """As its ServiceAccount (the admission policies refuse status writes by anyone else)."""
    running = Operator(operator_kubeconfig, "ownership")
    with mock.patch.dict(os.environ, {"TENURE_PROTECTED_NAMESPACES": f"unrelated,{CONFIGURED}"}):
        running.start()
    yield running
    running.stop()


pytestmark = pytest.mark.usefixtures("operator")


def namespace(kubectl: Kubectl, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """An existing namespace with a ConfigMap in it, as a platform team's namespace would be."""
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})
    kubectl.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "namespace": name}, "data": {"a": "1"}}
    )
    created = kubectl.get("namespace", name)
    assert created is not None
    return created


def refused(kubectl: Kubectl, tenant: str) -> str:
    def probe() -> str | None:
        found = condition(kubectl.get("tenant", tenant), "NamespacesOwned")
        return found["message"] if found and found["status"] == "False" else None

    return eventually(probe, what=f"tenant {tenant} to report NamespacesOwned=False")


def test_an_existing_unlabeled_namespace_stays_unlabeled_and_intact_through_the_purge(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    tenant, theirs, mine = f"t-{unique}", f"monitoring-{unique}", f"ns-{unique}"
    before = namespace(kubectl, theirs)
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [theirs, mine]})

    message = refused(kubectl, tenant)
    assert f"{theirs} exists without this tenant's label" in message
    assert f"kubectl label namespace {theirs} {TENANT_LABEL}={tenant}" in message

    def recorded() -> list[dict[str, str]] | None:
        return ((kubectl.get("tenant", tenant) or {}).get("status") or {}).get("createdNamespaces")

    created = eventually(recorded, what="the created namespace to be recorded")
    assert created == [{"name": mine, "uid": kubectl.get("namespace", mine)["metadata"]["uid"]}]  # type: ignore[index]

    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, tenant, "Purged")
    assert [n["name"] for n in purged["status"]["purge"]["namespaces"]] == [mine]
    assert kubectl.get("namespace", mine) is None
    after = kubectl.get("namespace", theirs)
    assert after is not None and after["metadata"]["uid"] == before["metadata"]["uid"]
    assert TENANT_LABEL not in (after["metadata"].get("labels") or {})
    assert "deletionTimestamp" not in after["metadata"]
    assert kubectl.get("configmap", "keep", namespace=theirs) is not None
    kubectl.delete("namespace", theirs, "--wait=false")


def test_a_namespace_an_admin_labels_for_the_tenant_is_handed_over_and_purged(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    tenant, legacy = f"t-{unique}", f"legacy-{unique}"
    namespace(kubectl, legacy)
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [legacy]})
    refused(kubectl, tenant)
    assert TENANT_LABEL not in (kubectl.get("namespace", legacy)["metadata"].get("labels") or {})  # type: ignore[index]

    kubectl.run("label", "namespace", legacy, f"{TENANT_LABEL}={tenant}")  # the administrator hands it over
    assert owned(kubectl, tenant)["message"] == f"Labeled for this tenant: {legacy}."
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, tenant, "Purged")
    assert [n["name"] for n in purged["status"]["purge"]["namespaces"]] == [legacy]
    assert kubectl.get("namespace", legacy) is None
    assert "createdNamespaces" not in purged["status"]  # handed over, not created by Tenure


def test_protected_namespaces_are_never_created_nor_deleted_even_when_labeled(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    tenant, system = f"t-{unique}", f"kube-{unique}"
    namespace(kubectl, CONFIGURED, {TENANT_LABEL: tenant})  # labeled for the tenant, but configured as protected
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [system, CONFIGURED]})
    message = refused(kubectl, tenant)
    assert f"{system} is protected" in message and f"{CONFIGURED} is protected" in message

    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, tenant, "Purged")
    assert purged["status"]["purge"].get("namespaces", []) == []
    assert kubectl.get("namespace", system) is None  # never created
    assert kubectl.get("configmap", "keep", namespace=CONFIGURED) is not None
    kubectl.delete("namespace", CONFIGURED, "--wait=false")


def released_volume(kubectl: Kubectl, namespace: str, name: str) -> None:
    """A Retain volume left Released by a claim of an earlier namespace of the same name (a uid Tenure never saw)."""
    kubectl.apply(retain_volume(name, {"namespace": namespace, "name": "data", "uid": str(uuid.uuid4())}))

    def released() -> bool:
        return ((kubectl.get("pv", name) or {}).get("status") or {}).get("phase") == "Released"

    eventually(released, what=f"volume {name} to be Released")


def test_a_released_retain_volume_of_an_unseen_claim_survives_the_purge_unchanged(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    tenant, ns, mine, old = f"t-{unique}", f"ns-{unique}", f"pv-{unique}", f"old-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [ns]})
    owned(kubectl, tenant)
    static_volume(kubectl, ns, mine)
    released_volume(kubectl, ns, old)
    before = kubectl.get("pv", old)
    assert before is not None
    claim_uid = kubectl.get("pvc", "data", namespace=ns)["metadata"]["uid"]  # type: ignore[index]

    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, tenant, "Purged", timeout=90)
    after = kubectl.get("pv", old)
    assert after is not None and after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # never written to
    assert kubectl.get("pv", mine) is None
    (recorded,) = purged["status"]["purge"]["volumes"]
    assert (recorded["name"], recorded["claimUid"], recorded["reclaimPolicy"]) == (mine, claim_uid, "Retain")
    assert purged["status"]["purge"]["keptVolumes"] == [old]
    message = condition(purged, "Purged")["message"]  # type: ignore[index]
    assert f"claim was never seen in the tenant's namespaces: volumes {old}." in message
    kubectl.delete("pv", old, "--wait=false")


def test_a_hold_after_the_reclaim_switch_restores_the_policy_and_resuming_switches_it_again(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    tenant, ns, volume = f"t-{unique}", f"ns-{unique}", f"pv-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [ns]})
    owned(kubectl, tenant)
    static_volume(kubectl, ns, volume)
    # A finalizer on the claim keeps it (and the volume Bound) while its namespace terminates: the purge is caught
    # between switching the reclaim policy and the claim going.
    add = '[{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/hold"}]'
    kubectl.run("patch", "pvc", "data", "-n", ns, "--type=json", "-p", add)

    def policy_is(wanted: str) -> bool:
        return (kubectl.get("pv", volume) or {}).get("spec", {}).get("persistentVolumeReclaimPolicy") == wanted

    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    eventually(lambda: policy_is("Delete"), timeout=45, what="the purge to switch the reclaim policy to Delete")
    objects.create("LegalHold", f"h-{unique}", {"tenants": [tenant], "reason": "case 2026-7"})
    eventually(lambda: policy_is("Retain"), what="the hold to restore the recorded reclaim policy")
    paused = condition(kubectl.get("tenant", tenant), "Purged")
    assert paused is not None and paused["reason"] == "PausedByLegalHold"

    kubectl.delete("legalhold", f"h-{unique}")
    eventually(lambda: policy_is("Delete"), what="the resumed purge to switch the reclaim policy again")
    kubectl.patch("pvc", "data", {"metadata": {"finalizers": None}}, namespace=ns)
    phase_of(kubectl, tenant, "Purged", timeout=90)
    assert kubectl.get("pv", volume) is None
