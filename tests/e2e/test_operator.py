"""The operator process: policy resolution on a real cluster, and a clean exit."""

from __future__ import annotations

import urllib.request
from typing import Any

from tests.conftest import Operator
from tests.support.kube import Kubectl, condition, eventually


def tenant(name: str, policy: str) -> dict[str, Any]:
    return {
        "apiVersion": "retention.tenure.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"retentionPolicy": policy},
    }


def policy(name: str) -> dict[str, Any]:
    return {"apiVersion": "retention.tenure.dev/v1alpha1", "kind": "RetentionPolicy", "metadata": {"name": name}}


def test_tenant_with_a_policy_becomes_active(kubectl: Kubectl, operator: Operator, unique: str) -> None:
    kubectl.create(policy(f"p-{unique}"))
    kubectl.create(tenant(f"t-{unique}", f"p-{unique}"))

    def resolved() -> dict[str, Any] | None:
        obj = kubectl.get("tenant", f"t-{unique}")
        found = condition(obj, "PolicyResolved")
        return obj if found and found["status"] == "True" else None

    obj = eventually(resolved, what="PolicyResolved=True")
    assert obj["status"]["phase"] == "Active"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


def test_missing_policy_is_reported_then_resolved(kubectl: Kubectl, operator: Operator, unique: str) -> None:
    kubectl.create(tenant(f"t-{unique}", f"late-{unique}"))

    def status_of(wanted: str) -> dict[str, Any] | None:
        found = condition(kubectl.get("tenant", f"t-{unique}"), "PolicyResolved")
        return found if found and found["status"] == wanted else None

    missing = eventually(lambda: status_of("False"), what="PolicyResolved=False")
    assert missing["reason"] == "PolicyNotFound"
    assert f"late-{unique}" in missing["message"]

    kubectl.create(policy(f"late-{unique}"))
    assert eventually(lambda: status_of("True"), what="PolicyResolved=True")["reason"] == "PolicyFound"


def test_metrics_are_served(operator: Operator) -> None:
    body = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode()
    assert "tenure_reconciles_total" in body


def test_sigterm_shuts_down_cleanly(kubeconfig: Any, crds: None) -> None:
    running = Operator(kubeconfig, "sigterm")
    running.start()
    assert running.stop() == 0
