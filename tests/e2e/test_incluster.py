"""Tenure in the cluster: `kubectl apply -k` of the shipped base with the image `make image` built, running as two
real Pods of the Deployment on the local control plane's node, under the shipped ServiceAccount, RBAC and
restricted security context.

The overlay changes only what a platform team's own overlay would: the image (kustomize ``images:``) and shorter
leader-election windows (lease 5 s, renew deadline 3 s, retry 0.5 s) so the takeovers fit a test.

The node has no kube-proxy: the `kubernetes` Service (10.0.0.1:443, in the API server's certificate) is given to
its pods the way kube-proxy would (a route to the Service range, and a DNAT of 10.0.0.1:443 to the API server,
which listens on 127.0.0.1 only; see ``service_network``). Pods then reach the API server by the in-cluster
configuration the kubelet injects, unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import Objects
from tests.support import deploy
from tests.support.kube import KUBECTL, REPO, Kubectl, eventually
from tests.support.node import NODE_NAME, Node
from tests.support.tenants import owned, phase_of

LEASE, RENEW, RETRY = 5.0, 3.0, 0.5
LABELS = "app.kubernetes.io/name=tenure,app.kubernetes.io/component=operator"
METRICS = 9090
HOLD = "example.com/hold"


@pytest.fixture(scope="module")
def service_network(kubectl: Kubectl, node: Node) -> Iterator[None]:
    """What kube-proxy would do for the `kubernetes` Service on this node: pods get a route to the Service range
    (the CNI configuration, which containerd reloads, gains it) and 10.0.0.1:443 from the node's bridge is
    DNATed to the API server on 127.0.0.1 (which needs route_localnet on the bridge). Removed after the module."""
    if shutil.which("iptables") is None:
        pytest.skip("iptables is needed to route the kubernetes Service to the API server (apt-get install iptables)")
    conflist = node.cluster_dir / "cni" / "net.d" / "10-tenure.conflist"
    network = json.loads(conflist.read_text())
    bridge = network["plugins"][0]
    if bridge["ipam"].get("routes") != [{"dst": "10.0.0.0/24"}]:
        bridge["ipam"]["routes"] = [{"dst": "10.0.0.0/24"}]
        conflist.write_text(json.dumps(network, indent=2))
    server = urlparse(yaml.safe_load(kubectl.kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    rule = [
        "PREROUTING", "-i", bridge["bridge"], "-d", "10.0.0.1/32", "-p", "tcp", "--dport", "443",
        "-j", "DNAT", "--to-destination", f"127.0.0.1:{server.port}",
    ]  # fmt: skip
    subprocess.run(["sysctl", "-q", "-w", f"net.ipv4.conf.{bridge['bridge']}.route_localnet=1"], check=True)
    if subprocess.run(["iptables", "-t", "nat", "-C", *rule], capture_output=True).returncode != 0:
        subprocess.run(["iptables", "-t", "nat", "-A", *rule], check=True)
    yield
    subprocess.run(["iptables", "-t", "nat", "-D", *rule], check=False)


@pytest.fixture(scope="module")
def on_node(node: Node, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image of `make image`, put on the node: podman saves it, containerd imports it."""
    image = deploy.image()
    archive = tmp_path_factory.mktemp("image") / "tenure.tar"
    podman = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
    subprocess.run([*podman, "save", "--quiet", "--format", "docker-archive", "-o", str(archive), image], check=True)
    node.ctr("images", "import", str(archive))
    archive.unlink()
    return image


def overlay(directory: Path, image: str) -> Path:
    """A kustomize overlay of manifests/deploy, as a platform team writes one: its image, shorter windows."""
    name, tag = image.rsplit(":", 1)
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "tenure", "namespace": deploy.NAMESPACE},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "tenure",
                            "env": [
                                {"name": "TENURE_LEASE_DURATION", "value": str(LEASE)},
                                {"name": "TENURE_RENEW_DEADLINE", "value": str(RENEW)},
                                {"name": "TENURE_RETRY_PERIOD", "value": str(RETRY)},
                            ],
                        }
                    ]
                }
            }
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "windows.yaml").write_text(yaml.safe_dump(patch))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(REPO / "manifests" / "deploy", directory)],  # kustomize: relative
        "images": [{"name": "localhost/tenure", "newName": name, "newTag": tag}],  # the base's image
        "patches": [{"path": "windows.yaml"}],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    listing = kubectl.run("get", "pods", "-n", deploy.NAMESPACE, "-l", LABELS, "-o", "json").stdout
    found: list[dict[str, Any]] = json.loads(listing)["items"]
    return found


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return pod["metadata"].get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def replicas(kubectl: Kubectl, count: int = 2) -> list[dict[str, Any]] | None:
    """The Deployment's pods once exactly ``count`` are Ready and none is terminating."""
    found = pods(kubectl)
    return found if len(found) == count and all(map(ready, found)) else None


def holder(kubectl: Kubectl) -> str:
    lease = kubectl.get("lease", "tenure", namespace=deploy.NAMESPACE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def pod_of(identity: str) -> str:
    """The Pod whose replica holds the Lease under this identity (its host name, then a random part)."""
    return identity.rsplit("_", 1)[0]


def leader_and_standby(kubectl: Kubectl) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two Ready pods, the one that acts first, once exactly one acts and holds the Lease."""

    def split() -> tuple[dict[str, Any], dict[str, Any]] | None:
        running = replicas(kubectl)
        if running is None:
            return None
        acting = [pod for pod in running if deploy.leads(METRICS, host=pod["status"]["podIP"])]
        if len(acting) != 1 or pod_of(holder(kubectl)) != acting[0]["metadata"]["name"]:
            return None
        return acting[0], next(pod for pod in running if pod is not acting[0])

    return eventually(split, timeout=120, interval=0.5, what="two Ready replicas, exactly one leading")


def counts(pod: dict[str, Any], name: str, **labels: str) -> float:
    return deploy.metric(METRICS, name, host=pod["status"]["podIP"], **labels)


@pytest.fixture(scope="module")
def deployed(
    kubectl: Kubectl, crds: None, service_network: None, on_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """`kubectl apply -k` of the overlay (server-side, as `make deploy`); the two replicas Ready. Removed after."""
    directory = overlay(tmp_path_factory.mktemp("overlay"), on_node)
    kubectl.run("apply", "--server-side", "--force-conflicts", "-k", str(directory))
    yield directory
    for kind, name in (("deployment", "tenure"), ("service", "tenure-metrics"), ("pdb", "tenure")):
        kubectl.run("delete", kind, name, "-n", deploy.NAMESPACE, "--ignore-not-found", "--wait=false")
    eventually(lambda: not pods(kubectl), timeout=90, what="the replicas to stop")
    kubectl.run("delete", "lease", "tenure", "-n", deploy.NAMESPACE, "--ignore-not-found")


def test_two_replicas_run_on_the_node_as_shipped_and_only_the_leader_acts(
    kubectl: Kubectl, node: Node, deployed: Path, on_node: str, objects: Objects, unique: str
) -> None:
    leader, standby = leader_and_standby(kubectl)
    for pod in (leader, standby):
        spec = pod["spec"]
        assert spec["nodeName"] == NODE_NAME and spec["serviceAccountName"] == "tenure"
        assert spec["containers"][0]["image"] == on_node
        # The process containerd runs: the Deployment's numeric user, on a read-only root filesystem.
        container = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
        pid = next(line.split()[1] for line in node.ctr("tasks", "ls").splitlines() if line.startswith(container))
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^Uid:\s+65532\s+65532", status, re.M) and re.search(r"^Gid:\s+65532\s", status, re.M)
        root = next(line for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if line.split()[4] == "/")
        assert " ro," in f" {root.split()[5]},", root
        assert re.search(r"^CapEff:\s+0+$", status, re.M), status

    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    assert phase_of(kubectl, tenant, "Active")
    assert kubectl.get("namespace", namespace) is not None  # created by the leader, as its ServiceAccount
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    phase_of(kubectl, tenant, "Purged", timeout=60)
    assert kubectl.get("namespace", namespace) is None

    assert counts(leader, "tenure_purge_deletions_total", kind="namespace", outcome="done") == 1
    assert counts(leader, "tenure_api_writes_total", kind="status") >= 4  # Active, Expired, Purging, Purged
    assert counts(standby, "tenure_reconciles_total") == 0
    assert counts(standby, "tenure_api_writes_total") == 0
    # The standby's watch delivered the tenant: it waits at its gate, ready for a takeover.
    assert counts(standby, "tenure_pending_reconciles", queue="tenants") >= 1
    logs = kubectl.run("logs", "-n", deploy.NAMESPACE, leader["metadata"]["name"]).stdout
    assert "Forbidden" not in logs and "Traceback" not in logs, logs[-2000:]


def test_leader_container_killed_mid_purge_standby_takes_over_within_the_lease(
    kubectl: Kubectl, node: Node, deployed: Path, objects: Objects, unique: str
) -> None:
    leader, standby = leader_and_standby(kubectl)
    namespaces = {"kind": "namespace", "outcome": "done"}
    before = (
        counts(leader, "tenure_purge_deletions_total", **namespaces),
        counts(standby, "tenure_purge_deletions_total", **namespaces),
    )
    tenant, stuck, quick = f"t-{unique}", f"stuck-{unique}", f"quick-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [stuck, quick]})
    owned(kubectl, tenant)
    # A finalizer keeps one namespace Terminating: the purge is held mid-way, both namespaces deleted by the leader.
    pinned = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pinned", "namespace": stuck}}
    pinned["metadata"]["finalizers"] = [HOLD]  # type: ignore[index]
    kubectl.create(pinned)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purging = phase_of(kubectl, tenant, "Purging", timeout=60)
    eventually(lambda: kubectl.get("namespace", quick) is None, timeout=60, what="the unblocked namespace to go")
    deleted = eventually(
        lambda: counts(leader, "tenure_purge_deletions_total", **namespaces) == before[0] + 2,
        what="both namespaces deleted by the leader",
    )
    assert deleted and phase_of(kubectl, tenant, "Purging")

    container = leader["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    killed = time.monotonic()
    node.ctr("tasks", "kill", "--signal", "SIGKILL", container)
    host = standby["status"]["podIP"]
    eventually(lambda: deploy.leads(METRICS, host=host), timeout=LEASE + 5, interval=0.05, what="the standby to lead")
    took = time.monotonic() - killed
    print(f"SIGKILL of the leader's container: the standby led {took:.2f}s after the kill (lease {LEASE:g}s)")
    # Not before the lease could have expired (the last renewal was at most one retry period before the kill). At
    # most: the standby sees the last renewal up to one retry period (jittered by up to 20%) after it was written,
    # takes over one lease duration later at its next try (another retry period), plus 1 s for the kill command and
    # the polling of its metrics on a loaded machine.
    assert LEASE - 2 * RETRY <= took <= LEASE + 2 * 1.2 * RETRY + 1.0, took
    assert pod_of(holder(kubectl)) == standby["metadata"]["name"]

    kubectl.patch("configmap", "pinned", {"metadata": {"finalizers": None}}, namespace=stuck)
    purged = phase_of(kubectl, tenant, "Purged", timeout=60)
    assert purged["status"]["purgeStartedAt"] == purging["status"]["purgeStartedAt"]  # the same purge, finished
    assert kubectl.get("namespace", stuck) is None
    # Each namespace deleted once: both by the killed leader before the kill, none again by the new leader (its
    # count of deletions the API server carried out did not move).
    assert counts(standby, "tenure_purge_deletions_total", **namespaces) == before[1]
    # The killed container was restarted in its Pod by the kubelet, and stands by.
    restarted = eventually(
        lambda: next((p for p in (replicas(kubectl) or []) if p["metadata"]["name"] == leader["metadata"]["name"]),
                     None),
        timeout=90, what="the killed replica restarted and Ready",
    )  # fmt: skip
    assert restarted["status"]["containerStatuses"][0]["restartCount"] == 1
    assert not deploy.leads(METRICS, host=restarted["status"]["podIP"])


class Watch:
    """`kubectl get -w` lines, each with the monotonic time it arrived."""

    def __init__(self, kubeconfig: Path, *args: str) -> None:
        command = [str(KUBECTL), f"--kubeconfig={kubeconfig}", "get", "-w", "-n", deploy.NAMESPACE, *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.strip()))

    def stop(self) -> list[tuple[float, str]]:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.thread.join(timeout=10)
        return self.lines


def test_rolling_restart_hands_over_within_two_seconds(
    kubectl: Kubectl, deployed: Path, objects: Objects, unique: str
) -> None:
    leader, _ = leader_and_standby(kubectl)
    old = {pod["metadata"]["name"] for pod in pods(kubectl)}
    leases = Watch(kubectl.kubeconfig, "lease", "tenure", "-o", "jsonpath={.spec.holderIdentity}{'\\n'}")
    terminating = Watch(
        kubectl.kubeconfig, "pods", "-l", LABELS, "-o", "jsonpath={.metadata.name} {.metadata.deletionTimestamp}{'\\n'}"
    )
    try:
        kubectl.run("rollout", "restart", "deployment", "tenure", "-n", deploy.NAMESPACE)
        kubectl.run("rollout", "status", "deployment", "tenure", "-n", deploy.NAMESPACE, "--timeout=180s")
        eventually(lambda: (lambda r: r and not {p["metadata"]["name"] for p in r} & old)(replicas(kubectl)),
                   timeout=120, what="only new replicas")  # fmt: skip
        leader_and_standby(kubectl)
    finally:
        holders, deletions = leases.stop(), terminating.stop()
    # When the old leader's Pod was marked for deletion (the kubelet sends SIGTERM then), and when the Lease was
    # first seen held by another replica.
    name = leader["metadata"]["name"]
    signalled = next(at for at, line in deletions if line.startswith(f"{name} ") and len(line.split()) == 2)
    taken = next(at for at, line in holders if at > signalled and line and pod_of(line) != name)
    handover = taken - signalled
    print(f"rolling restart: the Lease moved {handover:.2f}s after the leader's Pod was marked for deletion")
    assert handover <= 2.0, (handover, holders, deletions)
    assert [line for _, line in holders if line and pod_of(line) == name]  # the old leader held it until then

    objects.create("RetentionPolicy", f"p-{unique}", {})
    objects.create("Tenant", f"t-{unique}", {"retentionPolicy": f"p-{unique}"})
    phase_of(kubectl, f"t-{unique}", "Active")  # the new leader acts
