"""No pod runs in a closed namespace, whatever owns it and however long it asks to take (issue 18, items 3, 4, 7, 12).

On the real control plane and its node: the pods really run before the suspension, their containers are really gone
after it, and reopening gives back exactly what was there (replicas, suspend flags, the DaemonSet's spec).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Objects, Operator
from tests.e2e.test_access import accessible, cronjob, quota_ready, statefulset
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


def forged_deployment(kubectl: Kubectl, ns: str) -> Case:
    forged = deployment("forged", ns, 2)
    forged["metadata"]["ownerReferences"] = forged_owner(kubectl, ns)  # made Tenure skip it: it ran on
    kubectl.create(forged)
    return Case([("deployment", "forged")], running=2, back=2)


def forged_statefulset(kubectl: Kubectl, ns: str) -> Case:
    forged = statefulset("forged", ns, 1)
    forged["metadata"]["ownerReferences"] = forged_owner(kubectl, ns)
    kubectl.create(forged)
    return Case([("statefulset", "forged")], running=1, back=1)


def forged_bare_pod(kubectl: Kubectl, ns: str) -> Case:
    bare = pod("bare", ns)
    bare["metadata"]["ownerReferences"] = forged_owner(kubectl, ns)  # a bare pod claiming a controller: never deleted
    kubectl.create(bare)
    return Case([], running=1, back=0)  # nothing can recreate a bare pod


def daemonset_case(kubectl: Kubectl, ns: str) -> Case:
    kubectl.create(daemonset("agent", ns))  # not handled at all: its pods ran on every node
    return Case([("daemonset", "agent")], running=1, back=1)


def replication_controller_case(kubectl: Kubectl, ns: str) -> Case:
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
    return Case([("replicationcontroller", "legacy")], running=1, back=0)  # (no loop here to make it again)


def job_from_cronjob(kubectl: Kubectl, ns: str) -> Case:
    kubectl.create(cronjob("hourly", ns, suspended=False))
    # A Job the CronJob started before the suspension (kubectl makes the CronJob its controller): it was skipped.
    kubectl.run("create", "job", "hourly-manual", "--from=cronjob/hourly", "-n", ns)
    job = kubectl.get("job", "hourly-manual", namespace=ns)
    assert job is not None and job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    return Case([("cronjob", "hourly"), ("job", "hourly-manual")], running=1, back=1)


@dataclass
class Case:
    restored: list[tuple[str, str]]
    """(kind, name) of the controllers whose spec reopening gives back exactly."""
    running: int
    """Pods Ready before the suspension."""
    back: int
    """Pods Ready again after reopening."""


CASES = {
    "forged-deployment": forged_deployment,
    "forged-statefulset": forged_statefulset,
    "forged-bare-pod": forged_bare_pod,
    "daemonset": daemonset_case,
    "replicationcontroller": replication_controller_case,
    "job-from-cronjob": job_from_cronjob,
}


def stopped(kind: str, body: dict[str, Any]) -> bool:
    if kind == "daemonset":
        return body["template"]["spec"]["nodeSelector"].get("retention.tenure.dev/inaccessible") == "true"
    if kind in ("cronjob", "job"):
        return body.get("suspend") is True
    return body["replicas"] == 0


@pytest.mark.parametrize("case", list(CASES))
def test_no_pod_runs_whatever_owns_it_and_reopening_restores_its_controller_exactly(
    case: str,
    kubectl: Kubectl,
    node: Node,
    objects: Objects,
    unique: str,
    lockout_operator: Operator,
    namespaces: list[str],
) -> None:
    ns = f"lock-{unique}"
    namespaces.append(ns)
    tenant = tenant_with_namespace(kubectl, objects, unique, ns)
    made = CASES[case](kubectl, ns)
    eventually(lambda: ready_pods(kubectl, ns, made.running), timeout=120, what=f"{made.running} Ready pods")
    assert len(node.running(ns)) == 2 * made.running  # a sandbox and a container per pod
    before = {(kind, name): spec(kubectl, kind, name, ns) for kind, name in made.restored}

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    # Not one container of the namespace runs, and none comes back.
    eventually(lambda: not node.running(ns), timeout=90, what="no running container of the tenant's namespace")
    eventually(lambda: quota_ready(kubectl, ns), what="quota usage computed")
    for kind, name in made.restored:
        assert stopped(kind, spec(kubectl, kind, name, ns)), f"{kind} {name} stopped"
    time.sleep(3)  # its controller had time to try again: the quota refuses it
    assert not node.running(ns) and running_pods(kubectl, ns) == []

    kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
    eventually(lambda: accessible(kubectl, tenant) == ("True", "Active"), timeout=60, what="Accessible again")
    for (kind, name), was in before.items():
        assert spec(kubectl, kind, name, ns) == was, f"{kind} {name} restored exactly"
    annotations = [
        item["metadata"]["name"]
        for kind, _ in made.restored
        for item in json.loads(kubectl.run("get", kind, "-n", ns, "-o", "json").stdout)["items"]
        if "retention.tenure.dev/asked" in (item["metadata"].get("annotations") or {})
    ]
    assert annotations == []
    if made.back:
        eventually(lambda: ready_pods(kubectl, ns, made.back), timeout=120, what=f"{made.back} Ready pods again")
    else:
        time.sleep(3)
        assert running_pods(kubectl, ns) == []


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
