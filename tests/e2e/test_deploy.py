"""Installing Tenure the way a platform team does: `kubectl apply -k manifests/deploy`, and the image running
under the Deployment's identity and security context.

tests/e2e/test_incluster.py runs the Deployment's Pods on the local node. This file keeps the same image run with
podman exactly as the kubelet would start the Deployment's container, for clusters whose node cannot run it (e.g.
TENURE_USE_EXISTING_CLUSTER without the image on its nodes): the ServiceAccount's token, CA and namespace at
/var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/_PORT, the Deployment's args, environment,
numeric user (with no /etc/passwd entry, as under the kubelet), read-only root filesystem, dropped capabilities and
memory limit. Host networking stands in for the Pod network (the API server listens on 127.0.0.1); the ports move
to free ones so parallel runs do not collide.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import Objects, free_port
from tests.support import deploy
from tests.support.kube import REPO, Kubectl, eventually
from tests.support.tenants import owned, phase_of

BASE = REPO / "manifests" / "deploy"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
LIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=32768:32768"]
LABELS = "app.kubernetes.io/name=tenure,app.kubernetes.io/component=operator"


def rendered(kubectl: Kubectl) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(kubectl.run("kustomize", str(BASE)).stdout))


def deployment(kubectl: Kubectl) -> dict[str, Any]:
    return next(obj for obj in rendered(kubectl) if obj["kind"] == "Deployment")


@pytest.fixture
def installed(kubectl: Kubectl, crds: None) -> Iterator[None]:
    yield
    for kind, name in (("deployment", "tenure"), ("service", "tenure-metrics"), ("pdb", "tenure")):
        kubectl.run("delete", kind, name, "-n", deploy.NAMESPACE, "--ignore-not-found", "--wait=false")


def test_apply_k_installs_cleanly_client_and_server_side(kubectl: Kubectl, installed: None) -> None:
    # A switch from client- to server-side apply takes the fields over, as Kubernetes documents (--force-conflicts).
    for mode in ((), ("--server-side", "--force-conflicts")):
        result = kubectl.run("apply", *mode, "-k", str(BASE))
        assert "error" not in result.stderr.lower(), result.stderr
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered(kubectl)}
    assert ("Role", "tenure-leader-election") in kinds
    assert {
        ("CustomResourceDefinition", f"{plural}.retention.tenure.dev") for plural in ("tenants", "datastores")
    } <= kinds

    live = kubectl.get("deployment", "tenure", namespace=deploy.NAMESPACE)
    assert live is not None
    assert live["spec"]["replicas"] == 2
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/tenure:dev"  # kustomize images
    assert kubectl.get("pdb", "tenure", namespace=deploy.NAMESPACE)["spec"]["minAvailable"] == 1  # type: ignore[index]
    # tenure-system enforces the restricted Pod Security Standard: the ReplicaSet may create both Pods only
    # because the Deployment's security context complies (no node runs them here; they stay Pending).

    def pods() -> list[dict[str, Any]]:
        listing = kubectl.run("get", "pods", "-n", deploy.NAMESPACE, "-l", LABELS, "-o", "json").stdout
        found: list[dict[str, Any]] = json.loads(listing)["items"]
        return found if len(found) == 2 else []

    for pod in eventually(pods, what="the ReplicaSet to create both Pods"):
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    namespace = kubectl.get("namespace", deploy.NAMESPACE) or {}
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.fixture(scope="session")
def image() -> str:
    return deploy.image()


def kubelet_args(container: dict[str, Any], pod: dict[str, Any], namespace: str, name: str) -> list[str]:
    """The podman options that give a container what the kubelet gives the Deployment's container."""
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    args = ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    args += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    args += ["--memory", container["resources"]["limits"]["memory"].replace("Mi", "m")]
    for env in container.get("env", []):
        if "value" in env:
            args += ["--env", f"{env['name']}={env['value']}"]
        else:
            field = {"metadata.namespace": namespace, "metadata.name": name}[env["valueFrom"]["fieldRef"]["fieldPath"]]
            args += ["--env", f"{env['name']}={field}"]
    # The kubelet adds no /etc/passwd entry for the numeric user (podman would by default).
    return [*args, "--hostname", name, "--passwd=false"]


def test_image_runs_a_tenant_from_active_to_purged_as_the_deployment_would(
    kubectl: Kubectl, objects: Objects, unique: str, image: str, tmp_path: Path
) -> None:
    spec = deployment(kubectl)["spec"]["template"]["spec"]
    container = spec["containers"][0]
    account = deploy.service_account(kubectl, tmp_path / "serviceaccount")
    for path in (tmp_path, account):
        path.chmod(0o755)  # readable by the container's non-root user, as the kubelet's projected volume is
    server = urlparse(yaml.safe_load(kubectl.kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    metrics, liveness = free_port(), free_port()
    name = f"tenure-e2e-{unique}"
    subprocess.run(
        [
            *PODMAN, "run", "--detach", "--name", name, "--network=host", *LIMITS,
            *kubelet_args(container, spec, deploy.NAMESPACE, name),
            "--volume", f"{account}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
            "--env", f"KUBERNETES_SERVICE_HOST={server.hostname}",
            "--env", f"KUBERNETES_SERVICE_PORT={server.port}",
            "--env", f"TENURE_METRICS_PORT={metrics}",
            "--env", f"TENURE_LIVENESS_PORT={liveness}",
            image, *container["args"],
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        eventually(lambda: deploy.leads(metrics), timeout=60, what="the container to lead")
        tenant, namespace = f"t-{unique}", f"ns-{unique}"
        objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
        objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
        owned(kubectl, tenant)
        assert phase_of(kubectl, tenant, "Active")
        kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
        phase_of(kubectl, tenant, "Purged", timeout=60)
        assert kubectl.get("namespace", namespace) is None
        assert deploy.metric(metrics, "tenure_purge_deletions_total", kind="namespace", outcome="done") == 1

        inspect = json.loads(subprocess.run([*PODMAN, "inspect", name], check=True, capture_output=True).stdout)[0]
        assert inspect["State"]["Running"] is True
        assert inspect["Config"]["User"] == f"{spec['securityContext']['runAsUser']}:65532"
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        logs = subprocess.run(
            [*PODMAN, "logs", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ).stdout
        assert "Forbidden" not in logs and "Traceback" not in logs, logs[-2000:]
    finally:
        subprocess.run([*PODMAN, "rm", "--force", "--time=5", name], capture_output=True)
