"""Several replicas, one acting: leader election on the real control plane, two operator processes.

Both run with the ServiceAccount of manifests/deploy (so its Lease permissions are what is tested) and short
windows: lease 5 s, renew deadline 3 s, retry 0.5 s.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from kubernetes_asyncio.config import kube_config

from tenure.runtime.leader import Election, Timing
from tests.conftest import Objects, Operator
from tests.support import deploy
from tests.support.kube import REPO, Kubectl, eventually
from tests.support.tenants import owned, phase_of, static_volume

LEASE, RENEW, RETRY = 5.0, 3.0, 0.5
TIMING = {
    "TENURE_LEADER_ELECTION": "true",
    "TENURE_LEASE_DURATION": str(LEASE),
    "TENURE_RENEW_DEADLINE": str(RENEW),
    "TENURE_RETRY_PERIOD": str(RETRY),
}

HOLD = "example.com/hold"

Start = Callable[..., Operator]


@pytest.fixture(scope="module")
def account(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy.service_account_kubeconfig(kubectl, tmp_path_factory.mktemp("leader"))


@pytest.fixture
def replica(
    kubectl: Kubectl, account: Path, crds: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Start]:
    """Starts `tenure run --leader-election` processes; stops them after the test."""
    for key, value in TIMING.items():
        monkeypatch.setenv(key, value)
    started: list[Operator] = []

    def start(name: str, kubeconfig: Path = account) -> Operator:
        running = Operator(kubeconfig, f"leader-{request.node.name}-{name}")
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process and running.process.poll() is None:
            running.stop()
    kubectl.run("delete", "lease", "tenure", "-n", deploy.NAMESPACE, "--ignore-not-found")


def leads(replica: Operator) -> bool:
    return deploy.leads(replica.metrics_port)


def leader_and_standby(start: Start, kubectl: Kubectl) -> tuple[Operator, Operator]:
    first = start("a")
    eventually(lambda: leads(first), timeout=LEASE * 3, what="the first replica to lead")
    second = start("b")
    time.sleep(2 * RETRY)
    assert not leads(second)
    assert holder(kubectl) == identity(first)
    return first, second


def identity(replica: Operator) -> str:
    found = re.search(r"leader election: (\S+) campaigns", replica.log.read_text())
    assert found, f"no campaign in {replica.log}"
    return found[1]


def holder(kubectl: Kubectl) -> str | None:
    lease = kubectl.get("lease", "tenure", namespace=deploy.NAMESPACE) or {}
    found: str | None = (lease.get("spec") or {}).get("holderIdentity")
    return found


def until_leads(replica: Operator, since: float, timeout: float) -> float:
    """Seconds from ``since`` (time.monotonic) until the replica leads."""
    eventually(lambda: leads(replica), timeout=timeout, interval=0.05, what="the standby to lead")
    return time.monotonic() - since


def counts(replica: Operator, name: str, **labels: str) -> float:
    return deploy.metric(replica.metrics_port, name, **labels)


def deleted(replica: Operator, kind: str) -> float:
    return counts(replica, "tenure_purge_deletions_total", kind=kind, outcome="done")


def test_only_the_leader_writes_and_the_standby_keeps_its_cache(
    kubectl: Kubectl, objects: Objects, unique: str, replica: Start
) -> None:
    leader, standby = leader_and_standby(replica, kubectl)
    objects.create("RetentionPolicy", f"p-{unique}", {})
    for n in range(3):
        objects.create("Tenant", f"t{n}-{unique}", {"retentionPolicy": f"p-{unique}"})
    for n in range(3):
        phase_of(kubectl, f"t{n}-{unique}", "Active")

    assert counts(leader, "tenure_reconciles_total") >= 3
    assert counts(leader, "tenure_api_writes_total", kind="status") >= 3
    assert counts(standby, "tenure_reconciles_total") == 0
    assert counts(standby, "tenure_api_writes_total") == 0
    # The standby's watch delivered every tenant: they wait at its gate, ready for a takeover.
    assert counts(standby, "tenure_pending_reconciles", queue="tenants") >= 3


def test_leader_killed_mid_purge_standby_takes_over_and_finishes(
    kubectl: Kubectl, objects: Objects, unique: str, replica: Start
) -> None:
    leader, standby = leader_and_standby(replica, kubectl)
    tenant, stuck, quick, volume = f"t-{unique}", f"stuck-{unique}", f"quick-{unique}", f"pv-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "3s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [stuck, quick]})
    owned(kubectl, tenant)
    static_volume(kubectl, stuck, volume)
    # Finalizers keep the namespace Terminating and the volume's claim in place, holding the purge mid-way: the
    # leader deletes both namespaces, the volume is left for whoever leads when the claim goes.
    kubectl.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "pinned", "namespace": stuck, "finalizers": [HOLD]},
        }
    )
    claim = kubectl.get("pvc", "data", namespace=stuck) or {}
    pinned = {"metadata": {"finalizers": [*claim["metadata"].get("finalizers", []), HOLD]}}
    kubectl.patch("pvc", "data", pinned, namespace=stuck)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purging = phase_of(kubectl, tenant, "Purging")
    eventually(lambda: kubectl.get("namespace", quick) is None, timeout=60, what="the unblocked namespace to go")
    eventually(lambda: deleted(leader, "namespace") == 2, what="both namespaces deleted")
    before = {kind: deleted(leader, kind) for kind in ("namespace", "volume")}
    killed = time.monotonic()
    leader.kill()

    took = until_leads(standby, killed, timeout=LEASE + 5)
    print(f"SIGKILL: the standby led {took:.2f}s after the kill (lease {LEASE:g}s)")
    # Never before the lease could have expired (the last renewal was at most one retry period before the kill),
    # and within the lease duration plus the standby's polling.
    assert LEASE - 2 * RETRY <= took <= LEASE + 3 * RETRY, took
    assert holder(kubectl) == identity(standby)

    kubectl.patch("configmap", "pinned", {"metadata": {"finalizers": None}}, namespace=stuck)
    kubectl.patch("pvc", "data", {"metadata": {"finalizers": None}}, namespace=stuck)
    purged = phase_of(kubectl, tenant, "Purged", timeout=60)
    assert purged["status"]["purgeStartedAt"] == purging["status"]["purgeStartedAt"]  # the same purge, finished
    assert kubectl.get("namespace", stuck) is None and kubectl.get("pv", volume) is None
    after = {kind: deleted(standby, kind) for kind in ("namespace", "volume")}
    # Each object deleted once across both replicas (deletes the API server answered with a deletion; a delete of
    # something already gone deletes nothing): the leader both namespaces, the new leader nothing again. The volume
    # goes after the takeover: deleted by the new leader, or first by Kubernetes' own volume controller once its
    # claim is gone (its reclaim policy is Delete by then).
    assert before == {"namespace": 2, "volume": 0}
    assert after["namespace"] == 0 and after["volume"] in (0, 1), after


def test_sigterm_hands_over_within_two_seconds(kubectl: Kubectl, objects: Objects, unique: str, replica: Start) -> None:
    leader, standby = leader_and_standby(replica, kubectl)
    terminated = time.monotonic()
    assert leader.process is not None
    leader.process.terminate()
    took = until_leads(standby, terminated, timeout=LEASE)
    print(f"SIGTERM: the standby led {took:.2f}s after the signal")
    assert took <= 2.0, took
    assert leader.process.wait(timeout=10) == 0
    assert holder(kubectl) == identity(standby)
    objects.create("RetentionPolicy", f"p-{unique}", {})
    objects.create("Tenant", f"t-{unique}", {"retentionPolicy": f"p-{unique}"})
    phase_of(kubectl, f"t-{unique}", "Active")  # the new leader acts


def test_leader_that_cannot_renew_stops_before_another_takes_over(
    kubectl: Kubectl, kubeconfig: Path, replica: Start
) -> None:
    leader = replica("a")  # the ServiceAccount: its Lease permission is revoked below
    eventually(lambda: leads(leader), timeout=LEASE * 3, what="the first replica to lead")
    standby = replica("b", kubeconfig)  # an administrator: still allowed to take the Lease
    time.sleep(2 * RETRY)
    assert not leads(standby)
    try:
        revoked = time.monotonic()
        kubectl.run("delete", "rolebinding", "tenure-leader-election", "-n", deploy.NAMESPACE)
        process = leader.process
        assert process is not None
        eventually(lambda: process.poll() is not None, timeout=LEASE * 2, interval=0.05, what="the leader to stop")
        stopped = time.monotonic() - revoked
        assert process.returncode == 1
        took = until_leads(standby, revoked, timeout=LEASE * 2)
        print(f"revoked: the leader stopped after {stopped:.2f}s, the standby led after {took:.2f}s")
        # It stopped within its renew deadline, before the standby could take over.
        assert stopped <= RENEW + 2 * RETRY, stopped
        assert stopped < took, (stopped, took)
        assert "stopping so that only one replica acts" in leader.log.read_text()
    finally:
        kubectl.run("apply", "-f", str(REPO / "manifests/deploy/rbac.yaml"))


def renewed_at(kubectl: Kubectl) -> datetime:
    lease = kubectl.get("lease", "tenure", namespace=deploy.NAMESPACE) or {}
    return datetime.fromisoformat(lease["spec"]["renewTime"])


@pytest.fixture
def election(
    kubectl: Kubectl, account: Path, crds: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[list[float]], Election]]:
    """An Election in this process, as the ServiceAccount; ``on_lost`` records when (time.monotonic) it stopped."""
    # kubernetes_asyncio read $KUBECONFIG when it was imported.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(account))
    yield lambda lost: Election(
        deploy.NAMESPACE, Timing(LEASE, RENEW, RETRY), on_lost=lambda: lost.append(time.monotonic())
    )
    kubectl.run("delete", "lease", "tenure", "-n", deploy.NAMESPACE, "--ignore-not-found")


def test_a_leader_whose_event_loop_is_blocked_keeps_renewing_the_lease(
    kubectl: Kubectl, election: Callable[[list[float]], Election]
) -> None:
    lost: list[float] = []

    async def scenario() -> tuple[datetime, datetime, str]:
        leader = election(lost)
        leader.start()
        await asyncio.wait_for(leader.leading.wait(), LEASE * 3)
        before = renewed_at(kubectl)
        time.sleep(LEASE + 2 * RETRY)  # the operator's event loop does not run for longer than the lease
        after, held = renewed_at(kubectl), holder(kubectl) or ""
        assert leader.leading.is_set()
        await leader.release()
        assert holder(kubectl) is None  # released at once
        return before, after, "ours" if held == leader.holder else held

    before, after, held = asyncio.run(scenario())
    # Renewed by the election's own thread while the loop was blocked: the Lease never went stale.
    assert (after - before).total_seconds() >= LEASE, (before, after)
    assert held == "ours" and lost == []


def test_a_blocked_leader_that_cannot_renew_still_stops_at_its_renew_deadline(
    kubectl: Kubectl, election: Callable[[list[float]], Election]
) -> None:
    lost: list[float] = []

    async def scenario() -> float:
        leader = election(lost)
        leader.start()
        await asyncio.wait_for(leader.leading.wait(), LEASE * 3)
        revoked = time.monotonic()
        kubectl.run("delete", "rolebinding", "tenure-leader-election", "-n", deploy.NAMESPACE)
        time.sleep(LEASE + 2 * RETRY)  # blocked past the moment another replica could take over
        await asyncio.sleep(0)  # the loop runs again: what the election's thread decided reaches it
        assert not leader.leading.is_set()
        await leader.release()
        return revoked

    try:
        revoked = asyncio.run(scenario())
    finally:
        kubectl.run("apply", "-f", str(REPO / "manifests/deploy/rbac.yaml"))
    assert len(lost) == 1, lost
    stopped = lost[0] - revoked
    print(f"revoked while the loop was blocked: stopped after {stopped:.2f}s (renew deadline {RENEW:g}s)")
    # Stopped on time although the operator's loop was blocked: before another replica could take the Lease.
    assert stopped <= RENEW + 2 * RETRY < LEASE, stopped
