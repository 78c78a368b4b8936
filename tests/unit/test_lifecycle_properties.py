"""Property tests: random histories of edits, holds, policy changes and time jumps.

Whatever happens, the core never issues a deletion before purgeAfter, under a
legal hold, for a tenant that is not purging, or of a namespace not labeled
for the tenant; it never creates (so never labels) a namespace that exists or
is protected, never touches a volume whose claim it did not see in the
tenant's namespaces, and under a hold only puts reclaim policies back;
deadlines never move earlier.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tenure.api import Extensions, RetentionPolicySpec
from tenure.lifecycle import (
    DELETIONS,
    CreateNamespace,
    DeleteNamespace,
    DeleteVolume,
    NamespaceFact,
    PurgeStore,
    ReclaimOnDelete,
    RestoreReclaim,
    VolumeFact,
)
from tenure.lifecycle.ownership import is_protected

from .lifecycle_support import FakeCluster, uid

NAMESPACES = ("acme-a", "acme-b", "shared", "legacy", "kube-system", "kube-extra", "tenure-ops")
windows = st.integers(min_value=0, max_value=40 * 86400).map(lambda s: timedelta(seconds=s))


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = FakeCluster()
        self.cluster.edit(namespaces=NAMESPACES)
        self.cluster.namespaces["shared"] = NamespaceFact("shared", uid(), "1", owner="globex")
        self.cluster.namespaces["tenure-ops"] = NamespaceFact("tenure-ops", uid(), "1", owner=None, protected=True)
        self.cluster.namespaces["legacy"] = NamespaceFact("legacy", uid(), "1", owner=None)
        self.unseen: set[str] = set()
        """Volumes naming a namespace through a claim Tenure never saw."""
        self.cluster.settle()  # Active: acme-a and acme-b are created and labeled
        for namespace in ("acme-a", "acme-b", "shared", "legacy"):
            self.volume_appears(namespace, provisioned=namespace == "acme-b", seen=True)
            self.volume_appears(namespace, provisioned=False, seen=False)

    # Things that happen to a tenant.

    @rule(state=st.sampled_from(["Active", "Suspended", "Closed"]))
    def ask(self, state: str) -> None:
        self.cluster.edit(state=state, suspension_reason="NonPayment" if state == "Suspended" else None)
        self.reconcile()

    @rule(grace=st.none() | windows, retention=st.none() | windows)
    def extend(self, grace: timedelta | None, retention: timedelta | None) -> None:
        self.cluster.edit(extensions=Extensions(suspension_grace_period=grace, expired_data_retention=retention))
        self.reconcile()

    @rule(grace=windows, retention=windows, exists=st.booleans())
    def edit_policy(self, grace: timedelta, retention: timedelta, exists: bool) -> None:
        self.cluster.policy = (
            RetentionPolicySpec(suspension_grace_period=grace, expired_data_retention=retention) if exists else None
        )
        self.reconcile()

    @rule(holds=st.sampled_from([(), ("case-1",), ("case-1", "case-2")]))
    def hold(self, holds: tuple[str, ...]) -> None:
        self.cluster.holds = holds
        self.reconcile()

    @rule()
    def delete_object(self) -> None:
        self.cluster.deleting = True
        self.reconcile()

    @rule(seconds=st.integers(min_value=0, max_value=60 * 86400))
    def time_passes(self, seconds: int) -> None:
        self.cluster.now += timedelta(seconds=seconds)
        self.reconcile()

    @rule(name=st.sampled_from(NAMESPACES), owner=st.sampled_from([None, "acme", "globex"]))
    def someone_relabels(self, name: str, owner: str | None) -> None:
        fact = self.cluster.namespaces.get(name)
        if fact is not None:
            self.cluster.namespaces[name] = replace(fact, owner=owner, resource_version=uid())
        self.reconcile()

    @rule(namespace=st.sampled_from(NAMESPACES), provisioned=st.booleans(), seen=st.booleans())
    def new_volume(self, namespace: str, provisioned: bool, seen: bool) -> None:
        self.volume_appears(namespace, provisioned, seen)
        self.reconcile()

    def volume_appears(self, namespace: str, provisioned: bool, seen: bool) -> None:
        """A volume bound to a claim in namespace, or (not seen) a Released one of a claim Tenure never saw."""
        if seen and namespace in self.cluster.namespaces:
            self.cluster.bound_volume(f"pv-{uid()}", namespace, "csi.example" if provisioned else None)
            return
        name = f"pv-{uid()}"
        self.unseen.add(name)
        self.cluster.volumes[name] = VolumeFact(
            name, uid(), namespace, "Retain", "Released", provisioner=None, claim_uid=f"gone-{uid()}"
        )

    @rule()
    def controllers_run(self) -> None:
        self.cluster.controllers()
        self.reconcile()

    @rule()
    def reconcile_only(self) -> None:
        self.reconcile()

    def reconcile(self) -> None:
        if self.cluster.gone:
            return
        before = self.cluster.status
        held = self.cluster.holds
        world = self.cluster.world()
        decision = self.cluster.reconcile()
        after = decision.status
        for action in decision.actions:
            if isinstance(action, CreateNamespace):
                assert action.name not in world.namespaces, f"creating (labeling) existing namespace {action.name}"
                assert not is_protected(action.name, world), f"creating protected namespace {action.name}"
            if isinstance(action, (ReclaimOnDelete, RestoreReclaim, DeleteVolume)):
                assert action.name not in self.unseen, f"touching {action.name}, whose claim Tenure never saw"
                recorded = {v.name: v.claim_uid for v in after.purge.volumes} if after.purge else {}
                assert action.claim_uid is not None and recorded.get(action.name) == action.claim_uid
            if held:
                assert not isinstance(action, DELETIONS), f"{action} under a legal hold"
            if isinstance(action, (DeleteNamespace, DeleteVolume, PurgeStore)):
                event(f"checked a {type(action).__name__}")
                assert after.phase == "Purging", f"deletion in phase {after.phase}"
                assert not held, "deletion under a legal hold"
                assert after.purge_after is not None and self.cluster.now >= after.purge_after, "deletion too early"
                assert after.purge_started_at is not None
            if isinstance(action, DeleteNamespace):
                fact = world.namespaces[action.name]
                assert fact.owner == "acme", f"deleting {action.name} labeled for {fact.owner}"
                assert not fact.protected and action.name not in world.protected
                assert action.name in {n.name for n in after.purge.namespaces} if after.purge else False
            if isinstance(action, DeleteVolume):
                assert after.purge is not None and action.name in {v.name for v in after.purge.volumes}
            if isinstance(action, PurgeStore) and action.keys is not None:
                recorded = {s.name: s.keys for s in after.purge.stores} if after.purge else {}
                assert recorded.get(action.name) == action.keys, "rows deleted with keys not recorded in status"
        if before.phase in ("Expired", "Purging", "Purged"):
            assert after.phase in ("Expired", "Purging", "Purged"), "an expired account came back"
        order = ["Expired", "Purging", "Purged"]
        if before.phase in order and after.phase in order:
            assert order.index(after.phase) >= order.index(before.phase)
        # Deadlines never move earlier while their phase lasts.
        if before.phase == after.phase == "Suspended" and before.grace_ends_at and after.grace_ends_at:
            assert after.grace_ends_at >= before.grace_ends_at
        if before.purge_after and after.purge_after:
            assert after.purge_after >= before.purge_after
        if after.purge_after and after.expired_at and after.windows and after.windows.expired_data_retention:
            assert after.purge_after >= after.expired_at + after.windows.expired_data_retention

    @invariant()
    def volumes_of_unseen_claims_are_never_changed(self) -> None:
        for name in self.unseen:
            assert self.cluster.volumes[name].reclaim_policy == "Retain", f"{name} was changed"

    @invariant()
    def purged_means_the_rows_are_gone(self) -> None:
        if self.cluster.status.phase == "Purged":
            assert self.cluster.rows == 0

    @invariant()
    def never_loses_the_finalizer_before_purged(self) -> None:
        if self.cluster.gone:
            assert self.cluster.status.phase == "Purged" or not self.cluster.finalized


Lifecycle.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLifecycle = Lifecycle.TestCase
