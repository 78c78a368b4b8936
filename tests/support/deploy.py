"""What a replica of the Deployment gets: the ServiceAccount's credentials, and its metrics as numbers."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import yaml

from tests.support.kube import REPO, Kubectl

NAMESPACE = "tenure-system"
ACCOUNT = "tenure"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def service_account(kubectl: Kubectl, directory: Path) -> Path:
    """The files the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount (token, ca.crt, namespace)
    for tenure-system/tenure, after applying the shipped RBAC; returns the directory."""
    kubectl.run("apply", "-f", str(REPO / "manifests/deploy/rbac.yaml"))
    token = kubectl.run("create", "token", ACCOUNT, "-n", NAMESPACE, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"]))
    (directory / "namespace").write_text(NAMESPACE)
    return directory


def service_account_kubeconfig(kubectl: Kubectl, directory: Path) -> Path:
    """A kubeconfig with only the identity of tenure-system/tenure (the shipped least-privilege RBAC)."""
    token = (service_account(kubectl, directory) / "token").read_text()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": admin["clusters"][0]["name"], "user": ACCOUNT}}],
        "current-context": ACCOUNT,
    }
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


IMAGE = f"localhost/tenure:dev-{hashlib.sha256(str(REPO).encode()).hexdigest()[:8]}"
"""The image `make image` builds for this checkout's tests: podman's store is shared by every checkout on a machine,
so each tags its own."""
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # pod addresses never go through a proxy


@functools.cache
def image() -> str:
    """`make image` (podman and mmdebstrap are installed by it when missing; the base and layers are cached)."""
    import pytest

    if shutil.which("podman") is None and (shutil.which("apt-get") is None or os.geteuid() != 0):
        pytest.skip("podman is not installed and cannot be installed here (needs root and apt-get)")
    subprocess.run(
        ["make", "--no-print-directory", "image", f"IMAGE={IMAGE}"], cwd=REPO, check=True, stdout=subprocess.DEVNULL
    )
    return IMAGE


def leads(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the replica with metrics on host:port acts (False while its metrics are not served yet)."""
    try:
        return metric(port, "tenure_leader", host=host) == 1.0
    except OSError:
        return False


def metric(port: int, name: str, host: str = "127.0.0.1", **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``, from /metrics on host:port."""
    body = _DIRECT.open(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None or sample["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(sample["value"])
    return total
