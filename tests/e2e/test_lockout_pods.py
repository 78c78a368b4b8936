"""No pod runs in a closed namespace, whatever owns it and however long it asks to take (issue 18, items 3, 4, 7, 12).

On the real control plane and its node: the pods really run before the suspension, their containers are really gone
after it, and reopening gives back exactly what was there (replicas, suspend flags, the DaemonSet's spec).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Objects, Operator
from tests.e2e.test_access import accessible, cronjob, quota_ready
from tests.e2e.test_node import container, deployment, pod, pods, ready_pods
from tests.support.kube import Kubectl, eventually
from tests.support.node import Node
from tests.support.tenants import phase_of, suspend

SWEEP = 40
"""Seconds between sweeps: longer than anything below may take, so what is seen is the pass a change triggered, or
the wake Tenure asked for a pod outliving its grace period, never a routine sweep."""
POD_GRACE = 4
"""TENURE_ACCESS_POD_GRACE_SECONDS in these tests."""


@pytest.fixture(scope="module")
def lockout_operator(operator_kubeconfig: Path) -> Iterator[Operator]:
    env = {"TENURE_ACCESS_SWEEP_SECONDS": str(SWEEP), "TENURE_ACCESS_POD_GRACE_SECONDS": str(POD_GRACE)}
    running = Operator(operator_kubeconfig, "lockout-pods", env=env)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


@pytest.fixture
def namespaces(kubectl: Kubectl) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        kubectl.run("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def tenant_with_namespace(kubectl: Kubectl, objects: Objects, unique: str, ns: str, **spec: Any) -> str:
    tenant = f"t-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "30m", "expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [ns], **spec})
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=ns), what=f"namespace {ns}")
    return tenant


def forged_owner(kubectl: Kubectl, ns: str) -> list[dict[str, Any]]:
    """A controller ownerReference naming a ConfigMap of the namespace (real, so the garbage collector keeps what
    names it): anything a tenant admin can write."""
    kubectl.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": ns}})
    cm = kubectl.get("configmap", "owner", namespace=ns)
    assert cm is not None
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": cm["metadata"]["uid"], "controller": True}
    return [ref]


def daemonset(name: str, ns: str) -> dict[str, Any]:
    body = deployment(name, ns, 1)
    body["kind"] = "DaemonSet"
    del body["spec"]["replicas"]
    body["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    return body


def replication_controller(name: str, ns: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": labels,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}},
        },
    }


def spec(kubectl: Kubectl, kind: str, name: str, ns: str) -> dict[str, Any]:
    body = kubectl.get(kind, name, namespace=ns)
    assert body is not None, f"{kind} {name}"
    result: dict[str, Any] = body["spec"]
    return result


def running_pods(kubectl: Kubectl, ns: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods(kubectl, ns) if p["status"].get("phase") == "Running")


def test_no_pod_runs_whatever_owns_it_and_reopening_restores_each_controller_exactly(
    kubectl: Kubectl, node: Node, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str]
) -> None:
    ns = f"lock-{unique}"
    namespaces.append(ns)
    tenant = tenant_with_namespace(kubectl, objects, unique, ns)
    owner = forged_owner(kubectl, ns)
    forged = deployment("forged", ns, 2)
    forged["metadata"]["ownerReferences"] = owner  # made Tenure skip it: it kept running through the suspension
    kubectl.create(forged)
    bare = pod("bare", ns)
    bare["metadata"]["ownerReferences"] = owner  # a bare pod claiming a controller: it was never deleted
    kubectl.create(bare)
    kubectl.create(daemonset("agent", ns))  # not handled at all: ran on every node
    kubectl.create(replication_controller("legacy", ns, 1))  # not handled at all
    # The local control plane runs no replicationcontroller loop (tests/cluster/up.go): the pod it would make, by hand.
    rc = kubectl.get("replicationcontroller", "legacy", namespace=ns)
    assert rc is not None
    legacy = pod("legacy-1", ns)
    legacy["metadata"]["labels"] = {"app": "legacy"}
    legacy["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ReplicationController", "name": "legacy", "uid": rc["metadata"]["uid"],
         "controller": True}
    ]  # fmt: skip
    kubectl.create(legacy)
    kubectl.create(cronjob("hourly", ns, suspended=False))
    # A Job the CronJob started before the suspension (kubectl makes the CronJob its controller): it was skipped.
    kubectl.run("create", "job", "hourly-manual", "--from=cronjob/hourly", "-n", ns)
    job = kubectl.get("job", "hourly-manual", namespace=ns)
    assert job is not None and job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    eventually(
        lambda: ready_pods(kubectl, ns, 6), timeout=120, what="6 Ready pods (2 forged, bare, agent, legacy-1, job)"
    )
    assert len(node.running(ns)) == 12  # a sandbox and a container per pod
    before = {
        (kind, name): spec(kubectl, kind, name, ns)
        for kind, name in (
            ("deployment", "forged"),
            ("daemonset", "agent"),
            ("replicationcontroller", "legacy"),
            ("cronjob", "hourly"),
        )
    }
    job_suspended = bool(spec(kubectl, "job", "hourly-manual", ns).get("suspend"))

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    # Not one container of the namespace runs, and none comes back.
    eventually(lambda: not node.running(ns), timeout=90, what="no running container of the tenant's namespace")
    eventually(lambda: quota_ready(kubectl, ns), what="quota usage computed")
    assert spec(kubectl, "deployment", "forged", ns)["replicas"] == 0
    assert spec(kubectl, "replicationcontroller", "legacy", ns)["replicas"] == 0
    assert spec(kubectl, "daemonset", "agent", ns)["template"]["spec"]["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "retention.tenure.dev/inaccessible": "true",
    }
    assert spec(kubectl, "job", "hourly-manual", ns)["suspend"] is True
    assert spec(kubectl, "cronjob", "hourly", ns)["suspend"] is True
    assert kubectl.get("pod", "bare", namespace=ns) is None
    time.sleep(5)  # the controllers had time to try again: the quota refuses them
    assert not node.running(ns) and running_pods(kubectl, ns) == []

    kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
    eventually(lambda: accessible(kubectl, tenant) == ("True", "Active"), timeout=60, what="Accessible again")
    for (kind, name), was in before.items():
        assert spec(kubectl, kind, name, ns) == was, f"{kind} {name} restored exactly"
    assert bool(spec(kubectl, "job", "hourly-manual", ns).get("suspend")) == job_suspended
    annotations = [
        item["metadata"]["name"]
        for kind in ("deployment", "daemonset", "replicationcontroller", "cronjob", "job")
        for item in json.loads(kubectl.run("get", kind, "-n", ns, "-o", "json").stdout)["items"]
        if "retention.tenure.dev/asked" in (item["metadata"].get("annotations") or {})
    ]
    assert annotations == []  # (a ReplicaSet keeps its Deployment controller's copy, never acted on: docs/access.md)
    # Everything runs again but the bare pod (nothing can recreate a bare pod) and the ReplicationController's (no
    # replicationcontroller loop here; its replicas are back above).
    back = eventually(lambda: ready_pods(kubectl, ns, 4), timeout=120, what="4 Ready pods (2 forged, agent, job)")
    assert not {"bare", "legacy-1"} & {p["metadata"]["name"] for p in back}
    assert len(node.running(ns)) == 8


def test_a_pod_that_asks_for_a_day_to_stop_is_gone_within_the_bounded_grace_period(
    kubectl: Kubectl, node: Node, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str]
) -> None:
    ns = f"slow-{unique}"
    namespaces.append(ns)
    tenant = tenant_with_namespace(kubectl, objects, unique, ns)
    day = {"terminationGracePeriodSeconds": 86_400}
    stubborn = container(lifecycle={"preStop": {"sleep": {"seconds": 86_400}}})
    kubectl.create(pod("stubborn", ns, containers=[stubborn], **day))
    scaled = deployment("stubborn-web", ns, 1)  # its scale-down deletes its pod with the pod's own day-long period
    scaled["spec"]["template"]["spec"].update(containers=[stubborn], **day)
    kubectl.create(scaled)
    eventually(lambda: ready_pods(kubectl, ns, 2), timeout=120, what="2 Ready pods")
    assert len(node.running(ns)) == 4

    suspend(kubectl, tenant)
    started = time.monotonic()
    phase_of(kubectl, tenant, "Suspended")
    # Within the bounded grace period and a pass Tenure wakes for (well before the next sweep).
    eventually(lambda: not node.running(ns), timeout=POD_GRACE + 25, what="no running container of the namespace")
    assert time.monotonic() - started < SWEEP
    eventually(lambda: pods(kubectl, ns) == [], timeout=30, what="the pods gone from the API server")

    kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
    eventually(lambda: accessible(kubectl, tenant) == ("True", "Active"), timeout=60, what="Accessible again")
    assert spec(kubectl, "deployment", "stubborn-web", ns)["replicas"] == 1
    eventually(lambda: ready_pods(kubectl, ns, 1), timeout=120, what="the Deployment's pod Ready again")


def test_a_namespace_handed_over_by_label_alone_is_closed_while_suspended(
    kubectl: Kubectl, node: Node, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str]
) -> None:
    """Not in spec.namespaces, labeled for the tenant: its purge deletes it, so its suspension closes it."""
    listed, handed = f"listed-{unique}", f"handed-{unique}"
    namespaces.extend([listed, handed])
    kubectl.run("create", "namespace", handed)
    kubectl.run("label", "namespace", handed, f"retention.tenure.dev/tenant=t-{unique}")
    tenant = tenant_with_namespace(kubectl, objects, unique, listed)
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=handed), what="handed-over namespace")
    kubectl.create(deployment("web", handed, 1))
    eventually(lambda: ready_pods(kubectl, handed, 1), timeout=120, what="web Ready")
    assert len(node.running(handed)) == 2

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    eventually(lambda: not node.running(handed), timeout=60, what="no running container of the handed-over namespace")
    assert kubectl.get("resourcequota", "tenure-inaccessible", namespace=handed) is not None
    assert kubectl.get("networkpolicy", "tenure-inaccessible", namespace=handed) is not None
    assert spec(kubectl, "deployment", "web", handed)["replicas"] == 0

    kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
    eventually(lambda: accessible(kubectl, tenant) == ("True", "Active"), timeout=60, what="Accessible again")
    assert kubectl.get("resourcequota", "tenure-inaccessible", namespace=handed) is None
    assert spec(kubectl, "deployment", "web", handed)["replicas"] == 1
    eventually(lambda: ready_pods(kubectl, handed, 1), timeout=120, what="web Ready again")
