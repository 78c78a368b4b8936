"""bench/closure.py: closing and reopening one namespace with 500 RoleBindings, 200 NetworkPolicies and 100
Deployments on the local control plane.

Reports the time from the suspension to ``Accessible=False`` and to the namespace really closed (every binding and
policy gone, every Deployment at 0 replicas), the time from reopening to ``Accessible=True`` with everything back
exactly (bindings and policies as they were, replicas as asked), and the bytes Tenure stores meanwhile (its closure
records in the operator's namespace, and the annotations it writes on the Deployments). The Deployments' pods never
run (a node selector no node matches): only Tenure's work is measured, not the node's.

    .venv/bin/python bench/closure.py            # ~2 minutes; uses .cache/cluster (tests/cluster/cluster.sh up)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import BREAK_GLASS, Operator  # noqa: E402
from tests.support.kube import Kubectl, condition, eventually  # noqa: E402

OPERATOR_NAMESPACE = "tenure-system"
NAME = "bench-closure"


def manifests(kubectl: Kubectl) -> Path:
    """CRDs, RBAC and admission policies as `make install` applies them; a kubeconfig of Tenure's ServiceAccount."""
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))
    deploy = REPO / "manifests/deploy"
    files = ("rbac.yaml", "validating-admission-policies.yaml", "records-policies.yaml")
    kubectl.run("apply", "--server-side", "--force-conflicts", *(f"-f{deploy / name}" for name in files))
    token = kubectl.run("create", "token", "tenure", "-n", OPERATOR_NAMESPACE, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "tenure", "user": {"token": token}}],
        "contexts": [{"name": "tenure", "context": {"cluster": admin["clusters"][0]["name"], "user": "tenure"}}],
        "current-context": "tenure",
    }
    path = REPO / ".cache" / "bench-closure-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def objects(namespace: str, bindings: int, policies: int, deployments: int) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for index in range(bindings):
        made.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"user-{index:03}", "namespace": namespace, "labels": {"team": f"t{index % 7}"}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"user-{index:03}"}],
            }
        )
    for index in range(policies):
        made.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"allow-{index:03}", "namespace": namespace},
                "spec": {
                    "podSelector": {"matchLabels": {"app": f"app-{index:03}"}},
                    "ingress": [{"ports": [{"port": 8000 + index, "protocol": "TCP"}]}],
                    "policyTypes": ["Ingress"],
                },
            }
        )
    for index in range(deployments):
        labels = {"app": f"app-{index:03}"}
        made.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"app-{index:03}", "namespace": namespace},
                "spec": {
                    "replicas": 1 + index % 3,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "nodeSelector": {"bench.tenure.dev/never": "true"},  # the pods never run
                            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                        },
                    },
                },
            }
        )
    return made


def state(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    """What reopening must give back exactly: bindings, policies (names, labels, annotations, their fields), asks."""

    def items(kind: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(kubectl.run("get", kind, "-n", namespace, "-o", "json").stdout)[
            "items"
        ]
        return listed

    def whole(item: dict[str, Any], *fields: str) -> Any:
        meta = item["metadata"]
        return [meta.get("labels"), meta.get("annotations"), meta.get("finalizers"), *(item.get(f) for f in fields)]

    return {
        "bindings": {i["metadata"]["name"]: whole(i, "roleRef", "subjects") for i in items("rolebindings")},
        "policies": {
            i["metadata"]["name"]: whole(i, "spec")
            for i in items("networkpolicies")
            if i["metadata"]["name"] != "tenure-inaccessible"
        },
        "replicas": {i["metadata"]["name"]: i["spec"]["replicas"] for i in items("deployments")},
    }


def stored_bytes(kubectl: Kubectl, namespace: str) -> tuple[int, int, int]:
    """Tenure's closure records (count, bytes of their JSON) and the bytes of its annotations on the Deployments."""
    uid = (kubectl.get("namespace", namespace) or {})["metadata"]["uid"]
    selector = f"retention.tenure.dev/closed-namespace-uid={uid}"
    listed = json.loads(
        kubectl.run("get", "controllerrevisions", "-n", OPERATOR_NAMESPACE, "-l", selector, "-o", "json").stdout
    )["items"]
    records = sum(len(json.dumps(item, separators=(",", ":"))) for item in listed)
    deployments = json.loads(kubectl.run("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
    annotations = sum(
        len(name) + len(value)
        for item in deployments
        for name, value in (item["metadata"].get("annotations") or {}).items()
        if name.startswith("retention.tenure.dev/")
    )
    return len(listed), records, annotations


def accessible(kubectl: Kubectl) -> str | None:
    found = condition(kubectl.get("tenant", NAME), "Accessible")
    return found["status"] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bindings", type=int, default=500)
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--deployments", type=int, default=100)
    args = parser.parse_args()
    subprocess.run([str(REPO / "tests/cluster/cluster.sh"), "up"], check=True, stdout=subprocess.DEVNULL)
    kubectl = Kubectl(REPO / ".cache" / "cluster" / "kubeconfig")
    operator = Operator(manifests(kubectl), "bench-closure", env={"TENURE_ACCESS_SWEEP_SECONDS": "5"})
    namespace = f"{NAME}-ns"
    try:
        kubectl.apply(
            {
                "apiVersion": "retention.tenure.dev/v1alpha1",
                "kind": "RetentionPolicy",
                "metadata": {"name": NAME},
                "spec": {"suspensionGracePeriod": "1h", "expiredDataRetention": "1h"},
            },
            {
                "apiVersion": "retention.tenure.dev/v1alpha1",
                "kind": "Tenant",
                "metadata": {"name": NAME},
                "spec": {"retentionPolicy": NAME, "namespaces": [namespace]},
            },
        )
        operator.start()
        eventually(lambda: kubectl.get("serviceaccount", "default", namespace=namespace), timeout=60, what="namespace")
        made = objects(namespace, args.bindings, args.policies, args.deployments)
        for start in range(0, len(made), 200):
            kubectl.run("create", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                                    "items": made[start : start + 200]}))  # fmt: skip
        before = state(kubectl, namespace)
        assert (len(before["bindings"]), len(before["policies"]), len(before["replicas"])) == (
            args.bindings, args.policies, args.deployments)  # fmt: skip

        suspended = time.monotonic()
        kubectl.patch("tenant", NAME, {"spec": {"state": "Suspended", "suspensionReason": "NonPayment"}})
        eventually(lambda: accessible(kubectl) == "False", timeout=120, interval=0.1, what="Accessible=False")
        to_false = time.monotonic() - suspended

        def closed() -> bool:
            now = state(kubectl, namespace)
            return not now["bindings"] and not now["policies"] and not any(now["replicas"].values())

        eventually(closed, timeout=600, interval=0.5, what="everything removed and stopped")
        to_closed = time.monotonic() - suspended
        count, records, annotations = stored_bytes(kubectl, namespace)

        reopened = time.monotonic()
        kubectl.patch("tenant", NAME, {"spec": {"state": "Active", "suspensionReason": None}})
        eventually(lambda: accessible(kubectl) == "True", timeout=600, interval=0.25, what="Accessible=True")
        to_true = time.monotonic() - reopened
        after = state(kubectl, namespace)
        left = stored_bytes(kubectl, namespace)[0]
        differ = {
            part: sorted(
                name for name in {*before[part], *after[part]} if before[part].get(name) != after[part].get(name)
            )
            for part in before
        }
        result = {
            "objects": {
                "rolebindings": args.bindings,
                "networkpolicies": args.policies,
                "deployments": args.deployments,
            },
            "seconds_to_accessible_false": round(to_false, 2),
            "seconds_to_closed": round(to_closed, 2),
            "seconds_reopen_to_accessible_true": round(to_true, 2),
            "restored_exactly": {part: not names for part, names in differ.items()},
            "not_restored": {
                part: [(name, before[part].get(name), after[part].get(name)) for name in names[:5]]
                for part, names in differ.items()
                if names
            },
            "closure_records": count,
            "closure_record_bytes": records,
            "deployment_annotation_bytes": annotations,
            "records_left_after_reopening": left,
        }
        print(json.dumps(result, indent=2))
        if any(differ.values()):
            raise SystemExit("reopening did not restore exactly")
    finally:
        if operator.process and operator.process.poll() is None:
            operator.stop()
        kubectl.run("delete", "tenant", NAME, "--ignore-not-found", "--wait=false", *BREAK_GLASS, check=False)
        kubectl.run("patch", "tenant", NAME, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        kubectl.run("delete", "retentionpolicy", NAME, "--ignore-not-found", "--wait=false", check=False)
        kubectl.run("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)


if __name__ == "__main__":
    main()
