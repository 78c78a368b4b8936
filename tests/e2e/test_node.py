"""The local control plane has a node: pods are scheduled, really run in containerd, and really stop."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kube import Kubectl, eventually
from tests.support.node import CLUSTER, NODE_NAME, WORKLOAD_IMAGE, Node


@pytest.fixture
def namespace(kubectl: Kubectl, unique: str) -> Iterator[str]:
    name = f"node-{unique}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def container(image: str = WORKLOAD_IMAGE, **extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": image, "imagePullPolicy": "Never", **extra}


def deployment(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}},
        },
    }


def pod(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container()], **spec},
    }


def pods(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(kubectl.run("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    return items


def ready(item: dict[str, Any]) -> bool:
    conditions = (item.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_pods(kubectl: Kubectl, namespace: str, count: int) -> list[dict[str, Any]] | None:
    """The namespace's pods once exactly count of them are Running and Ready."""
    running = [p for p in pods(kubectl, namespace) if p["status"].get("phase") == "Running" and ready(p)]
    return running if len(running) == count else None


def answer(item: dict[str, Any]) -> str:
    """What the workload in a pod answers over the node's pod network."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with direct.open(f"http://{item['status']['podIP']}:8080/", timeout=5) as response:
        return str(response.read().decode().strip())


def test_deployment_runs_on_the_node_and_scaling_to_zero_stops_its_containers(
    kubectl: Kubectl, node: Node, namespace: str
) -> None:
    kubectl.create(deployment("web", namespace, replicas=2))

    running = eventually(lambda: ready_pods(kubectl, namespace, 2), timeout=60, what="two Ready pods")
    assert {p["spec"]["nodeName"] for p in running} == {NODE_NAME}
    # Each pod's own process answers, with its own name, on the pod network.
    assert sorted(answer(p) for p in running) == sorted(p["metadata"]["name"] for p in running)
    # The API server reaches the kubelet for the containers' logs.
    assert [kubectl.run("logs", "-n", namespace, p["metadata"]["name"]).stdout for p in running] == [
        "serving on :8080\n"
    ] * 2
    # Two pod sandboxes and two workload containers, all running.
    assert len(node.running(namespace)) == 4

    kubectl.run("scale", "deployment", "web", "-n", namespace, "--replicas=0")
    eventually(lambda: not node.running(namespace), timeout=60, what="no running container of the namespace")
    # The kubelet then removes the stopped containers and sandboxes (its garbage collection runs every minute).
    eventually(lambda: not node.containers(namespace), timeout=90, what="no container of the namespace in containerd")
    # The kubelet confirms each pod's deletion to the API server on its own pace (a loaded node: seconds later).
    eventually(lambda: pods(kubectl, namespace) == [], timeout=60, what="the pods deleted from the API server")


def test_namespace_deletion_waits_for_its_pods_to_terminate(kubectl: Kubectl, node: Node, namespace: str) -> None:
    # The container keeps running for 5 s after it is asked to stop (and the namespace controller looks again
    # after the pod's grace period: 10 s, not the default 30 s).
    slow = container(lifecycle={"preStop": {"sleep": {"seconds": 5}}})
    kubectl.create(pod("slow", namespace, containers=[slow], terminationGracePeriodSeconds=10))
    eventually(lambda: ready(kubectl.get("pod", "slow", namespace=namespace) or {}), timeout=60, what="slow pod Ready")
    assert len(node.running(namespace)) == 2  # sandbox and container

    kubectl.run("delete", "namespace", namespace, "--wait=false")
    # The container is still stopping: the namespace waits for it.
    terminating = kubectl.get("namespace", namespace)
    assert terminating is not None and terminating["status"]["phase"] == "Terminating"
    assert len(node.running(namespace)) == 2

    eventually(lambda: kubectl.get("namespace", namespace) is None, timeout=90, what="namespace gone")
    assert node.running(namespace) == set()


def test_quota_of_zero_pods_refuses_a_new_pod(kubectl: Kubectl, namespace: str) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "frozen", "namespace": namespace},
        "spec": {"hard": {"pods": "0"}},
    }
    kubectl.create(quota)
    # The resourcequota controller computes the usage admission compares against.
    eventually(
        lambda: ((kubectl.get("resourcequota", "frozen", namespace=namespace) or {}).get("status") or {}).get("used"),
        what="quota usage computed",
    )

    refused = kubectl.create(pod("refused", namespace), check=False)

    assert refused.returncode != 0
    assert "exceeded quota: frozen, requested: pods=1, used: pods=0, limited: pods=0" in refused.stderr
    assert kubectl.get("pod", "refused", namespace=namespace) is None


def test_an_image_put_on_the_node_runs(
    kubectl: Kubectl, node: Node, namespace: str, unique: str, tmp_path: Path
) -> None:
    image = f"tenure.dev/put-{unique}:1"
    # The workload's binary under another path, and a file that makes this image unlike any other.
    (tmp_path / "id").write_text(unique)
    workload = Path(CLUSTER.resolve().parent, "workload")
    node.put_image(image, "/bin/serve", {"/bin/serve": workload, "/etc/id": tmp_path / "id"})
    kubectl.create(pod("put", namespace, containers=[container(image)]))

    running = eventually(
        lambda: (lambda p: p if ready(p) else None)(kubectl.get("pod", "put", namespace=namespace) or {}),
        timeout=60,
        what="pod of the new image Ready",
    )
    assert answer(running) == "put"
    statuses = running["status"]["containerStatuses"]
    assert [s["image"] for s in statuses] == [image]


def test_the_kubelet_is_a_node_not_an_admin(kubectl: Kubectl, node: Node) -> None:
    as_kubelet = Kubectl(node.cluster_dir / "kubelet.kubeconfig")

    whoami = json.loads(as_kubelet.run("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert whoami["username"] == f"system:node:{NODE_NAME}"
    assert "system:nodes" in whoami["groups"]
    # The Node authorizer: no Secrets beyond those of its own pods.
    secrets = as_kubelet.run("get", "secrets", "-n", "kube-system", check=False)
    assert secrets.returncode != 0 and "Forbidden" in secrets.stderr
    # NodeRestriction: it may not change another node.
    other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "another-node"}}
    created = as_kubelet.create(other, check=False)
    assert (
        created.returncode != 0 and 'node "tenure-node" is not allowed to modify node "another-node"' in created.stderr
    )
