"""The operator process: policy resolution on a real cluster, and a clean exit."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from typing import Any

from tests.conftest import BREAK_GLASS, Objects, Operator
from tests.support.kube import Kubectl, condition, eventually


def test_tenant_with_a_policy_becomes_active(
    kubectl: Kubectl, objects: Objects, operator: Operator, unique: str
) -> None:
    objects.create("RetentionPolicy", f"p-{unique}", {})
    objects.create("Tenant", f"t-{unique}", {"retentionPolicy": f"p-{unique}"})

    def resolved() -> dict[str, Any] | None:
        obj = kubectl.get("tenant", f"t-{unique}")
        found = condition(obj, "PolicyResolved")
        return obj if found and found["status"] == "True" else None

    obj = eventually(resolved, what="PolicyResolved=True")
    assert obj["status"]["phase"] == "Active"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


def test_missing_policy_is_reported_then_resolved(
    kubectl: Kubectl, objects: Objects, operator: Operator, unique: str
) -> None:
    objects.create("Tenant", f"t-{unique}", {"retentionPolicy": f"late-{unique}"})

    def status_of(wanted: str) -> dict[str, Any] | None:
        found = condition(kubectl.get("tenant", f"t-{unique}"), "PolicyResolved")
        return found if found and found["status"] == wanted else None

    missing = eventually(lambda: status_of("False"), what="PolicyResolved=False")
    assert missing["reason"] == "PolicyNotFound"
    assert f"late-{unique}" in missing["message"]

    objects.create("RetentionPolicy", f"late-{unique}", {})
    assert eventually(lambda: status_of("True"), what="PolicyResolved=True")["reason"] == "PolicyFound"


def tenants_gauge(operator: Operator) -> dict[str, float]:
    """tenure_tenants by phase, from the operator's /metrics."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode()
    prefix = 'tenure_tenants{phase="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.split()[-1])
        for line in body.splitlines()
        if line.startswith(prefix)
    }


def test_the_phase_gauge_counts_a_tenant_and_forgets_it_once_deleted(
    kubectl: Kubectl, objects: Objects, operator: Operator, unique: str
) -> None:
    objects.create("RetentionPolicy", f"p-{unique}", {})
    before = tenants_gauge(operator)
    objects.create("Tenant", f"t-{unique}", {"retentionPolicy": f"p-{unique}"})
    counted = eventually(
        lambda: (g := tenants_gauge(operator)).get("Active", 0) == before.get("Active", 0) + 1 and g,
        what="the Active gauge to count the new tenant",
    )
    assert sum(counted.values()) == sum(before.values()) + 1
    kubectl.run(
        "delete", "tenant", f"t-{unique}", "--wait=false", *BREAK_GLASS
    )  # an Active tenant: admission refuses others
    kubectl.patch("tenant", f"t-{unique}", {"metadata": {"finalizers": None}})  # gone without waiting for a purge
    eventually(lambda: kubectl.get("tenant", f"t-{unique}") is None, what="the tenant to be gone")
    eventually(
        lambda: sum(tenants_gauge(operator).values()) == sum(before.values()),
        what="the gauge to forget the deleted tenant",
    )


def test_sigterm_shuts_down_cleanly(kubeconfig: Any, crds: None) -> None:
    running = Operator(kubeconfig, "sigterm")
    running.start()
    assert running.stop() == 0


def test_cli_shows_where_tenants_stand(
    kubectl: Kubectl, objects: Objects, kubeconfig: Any, operator: Operator, unique: str
) -> None:
    objects.create("RetentionPolicy", f"p-{unique}", {})
    objects.create("Tenant", f"t-{unique}", {"retentionPolicy": f"p-{unique}"})
    eventually(lambda: (kubectl.get("tenant", f"t-{unique}") or {}).get("status"), what="status")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "COLUMNS": "200"}
    listing = subprocess.run(
        [sys.executable, "-m", "tenure", "status"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"t-{unique}" in listing and "Active" in listing
    detail = subprocess.run(
        [sys.executable, "-m", "tenure", "describe", f"t-{unique}"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "PolicyResolved" in detail and "Windows come from RetentionPolicy" in detail
