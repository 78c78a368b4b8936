"""Tenants and their volumes on the real control plane, as the e2e tests set them up and wait for them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.kube import Kubectl, condition, eventually


def phase_of(kubectl: Kubectl, name: str, wanted: str, timeout: float = 45) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = kubectl.get("tenant", name)
        return obj if obj and (obj.get("status") or {}).get("phase") == wanted else None

    return eventually(probe, timeout=timeout, what=f"tenant {name} to be {wanted}")


def owned(kubectl: Kubectl, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = condition(kubectl.get("tenant", name), "NamespacesOwned")
        return found if found and found["status"] == "True" else None

    return eventually(probe, what=f"tenant {name} to own its namespaces")


def suspend(kubectl: Kubectl, name: str) -> None:
    kubectl.patch("tenant", name, {"spec": {"state": "Suspended", "suspensionReason": "NonPayment"}})


def retain_volume(name: str, claim_ref: dict[str, str]) -> dict[str, Any]:
    """A statically provisioned hostPath PV with reclaim policy Retain, reserved for claim_ref."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": f"/tmp/tenure-e2e/{name}"},
            "claimRef": claim_ref,
        },
    }


def static_volume(kubectl: Kubectl, namespace: str, name: str) -> None:
    """A Retain volume bound to the claim "data" in namespace."""
    kubectl.apply(
        retain_volume(name, {"namespace": namespace, "name": "data"}),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )

    def bound() -> bool:
        claim = kubectl.get("pvc", "data", namespace=namespace)
        return bool(claim and claim.get("status", {}).get("phase") == "Bound")

    eventually(bound, what=f"claim {namespace}/data to bind {name}")


def after_closing(kubectl: Kubectl, namespace: str) -> None:
    """Wait until the clock is past the second Tenure's quota was made in: creation times have whole seconds, and an
    object made in the quota's own second counts as there at closing (lifecycle/closure_records.made_while_closed)."""
    quota = kubectl.get("resourcequota", "tenure-inaccessible", namespace=namespace)
    assert quota is not None
    made = datetime.fromisoformat(quota["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (made + timedelta(seconds=1.1) - datetime.now(UTC)).total_seconds()))
