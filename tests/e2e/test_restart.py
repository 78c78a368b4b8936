"""List-then-watch on a real control plane: nothing deleted right after the startup listing is missed."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.conftest import Objects, Operator
from tests.support.kube import Kubectl, eventually
from tests.support.tenants import owned, phase_of, static_volume

pytestmark = pytest.mark.usefixtures("operator")


def pause_right_after_listing(operator: Operator) -> threading.Thread:
    """Restart the operator and SIGSTOP it as soon as it logs that its startup listing is done."""
    listed = operator.log.read_text().count("tenure started")
    operator.kill()
    operator.process = None
    starting = threading.Thread(target=operator.start)  # waits for liveness, which comes once it runs again
    starting.start()
    deadline = time.monotonic() + 60
    while operator.process is None or operator.log.read_text().count("tenure started") == listed:
        assert time.monotonic() < deadline, "the operator did not finish its startup listing"
        time.sleep(0.002)
    os.kill(operator.process.pid, signal.SIGSTOP)
    return starting


def test_a_volume_deleted_while_paused_after_the_startup_listing_ends_the_purge_within_seconds(
    kubectl: Kubectl, objects: Objects, unique: str, operator: Operator
) -> None:
    tenant, namespace, volume = f"t-{unique}", f"ns-{unique}", f"pv-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "2s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    static_volume(kubectl, namespace, volume)
    # A finalizer of someone else's keeps the deleted volume Terminating until the test lets it go.
    kubectl.patch("pv", volume, {"metadata": {"finalizers": ["kubernetes.io/pv-protection", "example.com/hold"]}})
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    phase_of(kubectl, tenant, "Purging")
    eventually(lambda: kubectl.get("namespace", namespace) is None, timeout=60, what="the namespace to go")
    eventually(
        lambda: ((kubectl.get("pv", volume) or {}).get("metadata") or {}).get("deletionTimestamp"),
        what="the volume to be deleted and held by its finalizer",
    )

    starting = pause_right_after_listing(operator)
    assert operator.process is not None
    try:
        kubectl.patch("pv", volume, {"metadata": {"finalizers": None}})
        eventually(lambda: kubectl.get("pv", volume) is None, what="the volume to go")
    finally:
        os.kill(operator.process.pid, signal.SIGCONT)
    resumed = time.monotonic()
    starting.join()

    purged = phase_of(kubectl, tenant, "Purged", timeout=30)
    assert time.monotonic() - resumed < 15, "the purge waited for a volume the API server had already deleted"
    assert [v["name"] for v in purged["status"]["purge"]["volumes"]] == [volume]
