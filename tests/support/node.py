"""The local control plane's node: put images on it and ask its containerd what really runs."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.support.kube import REPO

NODE_NAME = "tenure-node"
# A static HTTP server on :8080 answering with its pod's name; exits at once on SIGTERM.
WORKLOAD_IMAGE = "tenure.dev/workload:1"
CLUSTER = REPO / ".cache" / "bin" / "tenure-cluster"


class Node:
    """The node of the local control plane whose state directory is cluster_dir."""

    def __init__(self, cluster_dir: Path) -> None:
        self.cluster_dir = cluster_dir

    def _run(self, command: str, *args: str) -> str:
        result = subprocess.run(
            [str(CLUSTER), command, f"--dir={self.cluster_dir}", *args], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise AssertionError(f"tenure-cluster {command} {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def put_image(self, name: str, entrypoint: str, files: Mapping[str, Path]) -> None:
        """Make an image of files (path in the image → file here) and import it; pods use imagePullPolicy: Never."""
        self._run("image", name, entrypoint, *(f"{target}={source}" for target, source in files.items()))

    def ctr(self, *args: str) -> str:
        """containerd's ctr, in the namespace the kubelet's containers live in."""
        return self._run("ctr", *args)

    def containers(self, namespace: str) -> set[str]:
        """IDs of the containers containerd holds for pods of a namespace, pod sandboxes included."""
        out = self.ctr("containers", "ls", "-q", f'labels."io.kubernetes.pod.namespace"=={namespace}')
        return set(out.split())

    def running(self, namespace: str) -> set[str]:
        """IDs of those containers whose process is running."""
        tasks = self.ctr("tasks", "ls").splitlines()[1:]  # TASK PID STATUS
        running = {fields[0] for fields in map(str.split, tasks) if fields[2] == "RUNNING"}
        return running & self.containers(namespace)
