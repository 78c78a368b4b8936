"""The local control plane is a real one: controllers run and finish their work."""

from __future__ import annotations

from tests.support.kube import Kubectl, eventually


def test_server_reports_its_real_version(kubectl: Kubectl) -> None:
    out = kubectl.run("version", "-o", "json").stdout
    assert '"gitVersion": "v1.' in out and "v0.0.0" not in out


def test_namespace_deletion_completes(kubectl: Kubectl, unique: str) -> None:
    name = f"doomed-{unique}"
    kubectl.run("create", "namespace", name)
    kubectl.run("create", "configmap", "payload", "-n", name, "--from-literal=k=v")
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=name), what="default ServiceAccount")
    kubectl.run("delete", "namespace", name, "--wait=false")
    eventually(lambda: kubectl.get("namespace", name) is None, timeout=60, what=f"namespace {name} to be gone")


def test_garbage_collector_removes_dependents(kubectl: Kubectl, unique: str) -> None:
    name = f"gc-{unique}"
    kubectl.run("create", "namespace", name)
    try:
        kubectl.run("create", "configmap", "owner", "-n", name)
        owner = kubectl.get("configmap", "owner", namespace=name)
        assert owner is not None
        dependent = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "namespace": name,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
                ],
            },
        }
        kubectl.create(dependent)
        kubectl.run("delete", "configmap", "owner", "-n", name)
        eventually(lambda: kubectl.get("configmap", "dependent", namespace=name) is None, what="dependent collected")
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false")
