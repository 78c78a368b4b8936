"""kubectl for tests: the same tool a user drives Tenure with."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".cache" / "bin" / "kubectl"

T = TypeVar("T")


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply(self, *objects: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", input=yaml.safe_dump_all(objects), check=check)

    def create(self, obj: dict[str, Any], *flags: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("create", "-f", "-", *flags, input=yaml.safe_dump(obj), check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self.run(*args).stdout
        return json.loads(out) if out.strip() else None

    def delete(self, kind: str, name: str, *flags: str) -> None:
        self.run("delete", kind, name, "--ignore-not-found", *flags)

    def patch(self, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> None:
        args = ["patch", kind, name, "--type=merge", "-p", json.dumps(patch)]
        if namespace:
            args += ["-n", namespace]
        self.run(*args)


def eventually(probe: Callable[[], T | None], timeout: float = 30, interval: float = 0.25, what: str = "") -> T:
    """Poll until probe returns something truthy; fail with the last value after timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last value: {last!r}")


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None
