"""The tenant lifecycle on a real control plane, with windows of seconds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BREAK_GLASS, Objects, Operator
from tests.support.kube import Kubectl, condition, eventually
from tests.support.tenants import owned, phase_of, static_volume, suspend

pytestmark = pytest.mark.usefixtures("operator")


def test_suspend_then_reopen_within_grace(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "5m", "expiredDataRetention": "5s"})
    objects.create("Tenant", f"t-{unique}", {"retentionPolicy": f"p-{unique}"})
    phase_of(kubectl, f"t-{unique}", "Active")
    suspend(kubectl, f"t-{unique}")
    suspended = phase_of(kubectl, f"t-{unique}", "Suspended")["status"]
    assert suspended["graceEndsAt"] > suspended["suspendedAt"]
    assert condition(kubectl.get("tenant", f"t-{unique}"), "Accessible")["reason"] == "NonPayment"  # type: ignore[index]
    kubectl.patch("tenant", f"t-{unique}", {"spec": {"state": "Active", "suspensionReason": None}})
    reopened = phase_of(kubectl, f"t-{unique}", "Active")["status"]
    assert "suspendedAt" not in reopened and "graceEndsAt" not in reopened
    events = kubectl.run("get", "events", "-n", "default", f"--field-selector=involvedObject.name=t-{unique}").stdout
    assert "Suspended" in events and "Reopened" in events


def test_grace_elapses_then_namespaces_claims_and_retained_volume_are_purged(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    tenant, namespace, volume = f"t-{unique}", f"ns-{unique}", f"pv-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "5s", "expiredDataRetention": "5s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    static_volume(kubectl, namespace, volume)
    suspend(kubectl, tenant)

    expired = phase_of(kubectl, tenant, "Expired")["status"]
    assert expired["closureReason"] == "SuspensionGraceElapsed"
    assert expired["expiredAt"] == expired["graceEndsAt"]
    purged = phase_of(kubectl, tenant, "Purged", timeout=90)

    assert kubectl.get("namespace", namespace) is None
    assert kubectl.get("pv", volume) is None
    assert [n["name"] for n in purged["status"]["purge"]["namespaces"]] == [namespace]
    assert [v["name"] for v in purged["status"]["purge"]["volumes"]] == [volume]
    message = condition(purged, "Purged")["message"]  # type: ignore[index]
    assert f"{volume} (hostPath)" in message and "cannot wipe" in message
    assert purged["status"]["purgeStartedAt"] >= purged["status"]["purgeAfter"]

    # The finalizer goes right after Purged is written, in a separate request.
    def finalized() -> bool:
        return not (kubectl.get("tenant", tenant) or {}).get("metadata", {}).get("finalizers")

    eventually(finalized, what="the finalizer to be removed")


def test_close_expires_then_purges(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "5s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    expired = phase_of(kubectl, tenant, "Expired")
    assert expired["status"]["closureReason"] == "Voluntary"
    assert kubectl.get("namespace", namespace) is not None  # kept during the expired window
    phase_of(kubectl, tenant, "Purged")
    assert kubectl.get("namespace", namespace) is None


def test_legal_hold_blocks_an_overdue_purge_until_released(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    objects.create("LegalHold", f"h-{unique}", {"tenants": [tenant], "reason": "case 2026-7"})
    owned(kubectl, tenant)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})

    def overdue_and_held() -> dict[str, Any] | None:
        held = condition(kubectl.get("tenant", tenant), "LegalHold")
        return held if held and held["status"] == "True" and "waits" in held["message"] else None

    held = eventually(overdue_and_held, timeout=30, what="the overdue purge to wait for the hold")
    assert f"h-{unique}" in held["message"]
    assert kubectl.get("tenant", tenant)["status"]["phase"] == "Expired"  # type: ignore[index]
    assert kubectl.get("namespace", namespace) is not None

    kubectl.delete("legalhold", f"h-{unique}")
    purged = phase_of(kubectl, tenant, "Purged", timeout=30)
    assert kubectl.get("namespace", namespace) is None
    # Its PurgeReceipt names the hold that delayed it, from when Tenure saw it to its release.
    receipt = eventually(lambda: kubectl.get("purgereceipt", f"{tenant}.{purged['metadata']['uid']}"), what="receipt")
    (hold,) = receipt["spec"]["holds"]
    assert hold["name"] == f"h-{unique}" and hold["since"] < hold["until"] <= purged["status"]["purgeStartedAt"]


def test_hold_on_a_missing_tenant_is_reported(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    objects.create("LegalHold", f"h-{unique}", {"tenants": [f"nobody-{unique}"], "reason": "case 1"})

    def reported() -> dict[str, Any] | None:
        found = condition(kubectl.get("legalhold", f"h-{unique}"), "TenantsFound")
        return found if found and found["status"] == "False" else None

    assert f"nobody-{unique}" in eventually(reported, what="TenantsFound=False")["message"]


def test_protected_and_foreign_namespaces_are_refused_and_survive(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    owner, intruder = f"owner-{unique}", f"intruder-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", owner, {"retentionPolicy": f"p-{unique}", "namespaces": [f"ns-{unique}"]})
    owned(kubectl, owner)
    objects.create(
        "Tenant",
        intruder,
        {"retentionPolicy": f"p-{unique}", "namespaces": ["kube-system", f"ns-{unique}", f"mine-{unique}"]},
    )

    def refused() -> dict[str, Any] | None:
        found = condition(kubectl.get("tenant", intruder), "NamespacesOwned")
        return found if found and found["status"] == "False" else None

    message = eventually(refused, what="NamespacesOwned=False")["message"]
    assert "kube-system is protected" in message
    assert f"ns-{unique} belongs to tenant '{owner}'" in message

    kubectl.patch("tenant", intruder, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, intruder, "Purged")
    assert [n["name"] for n in purged["status"]["purge"]["namespaces"]] == [f"mine-{unique}"]
    assert kubectl.get("namespace", "kube-system") is not None
    assert kubectl.get("namespace", f"ns-{unique}")["metadata"]["labels"]["retention.tenure.dev/tenant"] == owner  # type: ignore[index]
    assert kubectl.get("namespace", f"mine-{unique}") is None


def test_deleting_a_tenant_follows_the_closure_path(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "5s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    # The tenure-explicit-closing policy refuses this (tests/e2e/test_admission.py); past it, closure as before.
    kubectl.delete("tenant", tenant, "--wait=false", *BREAK_GLASS)
    expired = phase_of(kubectl, tenant, "Expired")
    assert expired["status"]["closureReason"] == "TenantDeleted"
    assert expired["metadata"]["deletionTimestamp"]
    eventually(lambda: kubectl.get("tenant", tenant) is None, timeout=60, what="the tenant object to go")
    assert kubectl.get("namespace", namespace) is None


def test_operator_killed_mid_purge_completes_after_restart(
    kubectl: Kubectl, objects: Objects, unique: str, operator: Operator
) -> None:
    tenant, stuck, quick = f"t-{unique}", f"stuck-{unique}", f"quick-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [stuck, quick]})
    owned(kubectl, tenant)
    # An object with a finalizer keeps its namespace Terminating, holding the purge mid-way.
    kubectl.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "pinned", "namespace": stuck, "finalizers": ["example.com/hold"]},
        }
    )
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purging = phase_of(kubectl, tenant, "Purging")
    eventually(lambda: kubectl.get("namespace", quick) is None, timeout=60, what="the unblocked namespace to go")
    operator.kill()

    kubectl.patch("configmap", "pinned", {"metadata": {"finalizers": None}}, namespace=stuck)
    eventually(lambda: kubectl.get("namespace", stuck) is None, timeout=60, what="the blocked namespace to go")
    operator.start()
    purged = phase_of(kubectl, tenant, "Purged")
    assert purged["status"]["purgeStartedAt"] == purging["status"]["purgeStartedAt"]  # no window restarted
