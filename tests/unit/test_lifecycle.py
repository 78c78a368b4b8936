"""The timeline, rule by rule, on a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tenure.api import Extensions, RetentionPolicySpec
from tenure.lifecycle import (
    CloseAccess,
    DeleteNamespace,
    DeleteVolume,
    NamespaceFact,
    PurgeStore,
    StoreProgress,
)
from tenure.lifecycle.conditions import LISTED, find, listing

from .lifecycle_support import T0, FakeCluster

DAY = timedelta(days=1)


def cond(cluster: FakeCluster, type_: str) -> tuple[str, str, str]:
    found = find(cluster.status.conditions, type_)
    assert found is not None, f"no {type_} condition"
    return found.status, found.reason, found.message


def test_new_tenant_is_active_with_a_finalizer_and_its_namespace() -> None:
    cluster = FakeCluster()
    cluster.settle()
    assert cluster.status.phase == "Active"
    assert cluster.finalized
    assert cluster.namespaces["acme-a"].owner == "acme"
    assert cond(cluster, "NamespacesOwned")[0:2] == ("True", "AllOwned")
    assert [(c.name, c.uid) for c in cluster.status.created_namespaces or ()] == [
        ("acme-a", cluster.namespaces["acme-a"].uid)
    ]
    assert cond(cluster, "Accessible")[0] == "True"


def test_suspension_fixes_grace_from_the_policy_and_extension() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.now = T0 + timedelta(seconds=10, microseconds=250)
    cluster.edit(state="Suspended", suspension_reason="NonPayment", extensions=Extensions(suspension_grace_period=DAY))
    decision = cluster.settle()
    assert cluster.status.phase == "Suspended"
    # recorded times are whole seconds, rounded up: the window is never shorter than declared
    assert cluster.status.suspended_at == T0 + timedelta(seconds=11)
    assert cluster.status.grace_ends_at == T0 + timedelta(seconds=11) + 15 * DAY
    assert cluster.status.next_deadline == cluster.status.grace_ends_at
    assert decision.wake_at == cluster.status.grace_ends_at
    assert cond(cluster, "Accessible")[0:2] == ("False", "NonPayment")
    assert any(e.reason == "Suspended" for d in cluster.decisions for e in d.events)


def test_reopening_within_grace_clears_the_suspension() -> None:
    cluster = FakeCluster()
    cluster.edit(state="Suspended", suspension_reason="TermsViolation")
    cluster.settle()
    cluster.now = T0 + 13 * DAY
    cluster.edit(state="Active", suspension_reason=None)
    cluster.settle()
    assert cluster.status.phase == "Active"
    assert cluster.status.suspended_at is None and cluster.status.grace_ends_at is None
    assert any(e.reason == "Reopened" for d in cluster.decisions for e in d.events)


def test_grace_elapsing_expires_at_grace_end_not_when_noticed() -> None:
    cluster = FakeCluster()
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    cluster.settle()
    grace_end = cluster.status.grace_ends_at
    assert grace_end is not None
    cluster.now = grace_end + timedelta(hours=3)  # the operator was down for three hours
    cluster.settle()
    assert cluster.status.phase == "Expired"
    assert cluster.status.closure_reason == "SuspensionGraceElapsed"
    assert cluster.status.expired_at == grace_end
    assert cluster.status.purge_after == grace_end + 30 * DAY


def test_reopening_after_grace_is_too_late() -> None:
    cluster = FakeCluster()
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    cluster.settle()
    assert cluster.status.grace_ends_at is not None
    cluster.now = cluster.status.grace_ends_at
    cluster.edit(state="Active", suspension_reason=None)
    cluster.settle()
    assert cluster.status.phase == "Expired"
    status, _, message = cond(cluster, "Accessible")
    assert status == "False" and "cannot be reopened" in message
    assert any(e.reason == "ReopenRefused" and e.warning for d in cluster.decisions for e in d.events)


@pytest.mark.parametrize("from_state", ["Active", "Suspended"])
def test_voluntary_closure(from_state: str) -> None:
    cluster = FakeCluster()
    if from_state == "Suspended":
        cluster.edit(state="Suspended", suspension_reason="Other")
    cluster.settle()
    cluster.now = T0 + 2 * DAY
    cluster.edit(state="Closed", suspension_reason=None)
    cluster.settle()
    assert cluster.status.phase == "Expired"
    assert cluster.status.closure_reason == "Voluntary"
    assert cluster.status.expired_at == T0 + 2 * DAY
    assert cluster.status.purge_after == T0 + 32 * DAY


def test_policy_edits_do_not_move_a_running_window() -> None:
    cluster = FakeCluster()
    cluster.edit(state="Closed")
    cluster.settle()
    purge_after = cluster.status.purge_after
    cluster.policy = RetentionPolicySpec(expired_data_retention=timedelta(seconds=1))
    cluster.settle()
    assert cluster.status.purge_after == purge_after


def test_extensions_lengthen_at_once_and_never_shorten() -> None:
    cluster = FakeCluster()
    cluster.edit(state="Closed")
    cluster.settle()
    cluster.edit(extensions=Extensions(expired_data_retention=10 * DAY))
    cluster.settle()
    assert cluster.status.purge_after == T0 + 40 * DAY
    cluster.edit(extensions=None)
    cluster.settle()
    assert cluster.status.purge_after == T0 + 40 * DAY


def test_missing_policy_computes_no_deadline_until_it_appears() -> None:
    cluster = FakeCluster(policy=None)
    cluster.settle()
    cluster.edit(state="Closed")
    cluster.settle()
    assert cluster.status.phase == "Expired"
    assert cluster.status.purge_after is None
    cluster.now = T0 + 400 * DAY
    cluster.settle()
    assert cluster.status.phase == "Expired"  # never purged without a policy
    assert cond(cluster, "PolicyResolved")[0:2] == ("False", "PolicyNotFound")
    cluster.policy = RetentionPolicySpec(expired_data_retention=10 * DAY)
    cluster.now = T0 + 401 * DAY
    decision = cluster.reconcile()
    # computed from the recorded expiry time, and long overdue: the purge starts
    assert cluster.status.purge_after == T0 + 10 * DAY
    assert cluster.status.phase == "Purging"
    assert decision.status.purge is not None


def test_store_rows_are_deleted_only_with_keys_already_recorded() -> None:
    cluster = FakeCluster()
    cluster.close_until(T0 + 30 * DAY)
    first = cluster.reconcile()
    assert [a for a in first.actions if isinstance(a, PurgeStore)] == [PurgeStore("db", None, 0, ("acme",))]  # resolve
    second = cluster.reconcile()
    (store,) = second.status.purge.stores if second.status.purge else ()
    assert store.keys == {"key": ("acme",)}
    assert PurgeStore("db", {"key": ("acme",)}, 0, ("acme",)) in second.actions
    cluster.settle()
    assert cluster.status.phase == "Purged" and cluster.rows == 0
    assert "DataStore db: 3 rows deleted" in cond(cluster, "Purged")[2]


def test_purge_deletes_only_owned_namespaces_then_reports_purged() -> None:
    cluster = FakeCluster()
    cluster.edit(namespaces=("acme-a", "acme-b", "kube-system", "other"))
    cluster.namespaces["other"] = NamespaceFact("other", "u-other", "1", owner="globex")
    cluster.namespaces["kube-system"] = NamespaceFact("kube-system", "u-ks", "1", owner=None)
    cluster.settle()
    status, reason, message = cond(cluster, "NamespacesOwned")
    assert (status, reason) == ("False", "NamespacesRefused")
    assert "kube-system is protected" in message and "other belongs to tenant 'globex'" in message
    cluster.bound_volume("pv-1", "acme-a")
    cluster.edit(state="Closed")
    cluster.settle()
    cluster.now = T0 + 31 * DAY
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert set(cluster.namespaces) == {"other", "kube-system"}
    assert cluster.volumes == {}
    deleted = [a for d in cluster.decisions for a in d.actions if isinstance(a, (DeleteNamespace, DeleteVolume))]
    assert {a.name for a in deleted} == {"acme-a", "acme-b", "pv-1"}
    status, _, message = cond(cluster, "Purged")
    assert status == "True" and "pv-1 (hostPath)" in message and "cannot wipe" in message
    assert not cluster.finalized  # a purged tenant's object can go at once


def test_a_hold_blocks_an_overdue_purge_and_releasing_it_starts_at_once() -> None:
    cluster = FakeCluster(holds=("case-1",))
    cluster.settle()
    cluster.edit(state="Closed")
    assert cluster.settle().wake_at == T0 + 30 * DAY  # to report the purge as overdue then
    cluster.now = T0 + 60 * DAY
    decision = cluster.settle()
    assert cluster.status.phase == "Expired"
    assert decision.wake_at is None
    status, _, message = cond(cluster, "LegalHold")
    assert status == "True" and "case-1" in message and "waits" in message
    cluster.holds = ()
    cluster.settle()
    assert cluster.status.phase == "Purged"


def test_a_hold_pauses_a_running_purge() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.bound_volume("pv-1", "acme-a", provisioner="csi.example")
    cluster.close_until(T0 + 30 * DAY)
    cluster.reconcile()  # enters Purging; the first step switches reclaim policies
    assert cluster.status.phase == "Purging"
    assert cluster.volumes["pv-1"].reclaim_policy == "Delete"
    (recorded,) = cluster.status.purge.volumes if cluster.status.purge else ()
    assert recorded.reclaim_policy == "Retain" and recorded.claim_uid == cluster.volumes["pv-1"].claim_uid
    cluster.holds = ("late-case",)
    first = cluster.reconcile()
    # The namespace stays inaccessible while held; only what arms a deletion is undone.
    assert [type(a).__name__ for a in first.actions] == ["CloseAccess", "RestoreReclaim"]
    assert cluster.volumes["pv-1"].reclaim_policy == "Retain"  # deleting the claim now keeps the disk
    decision = cluster.settle()
    assert decision.actions == (CloseAccess("acme-a", cluster.namespaces["acme-a"].uid),)
    assert cluster.status.phase == "Purging"
    assert "acme-a" in cluster.namespaces
    assert cond(cluster, "Purged")[1] == "PausedByLegalHold"
    cluster.holds = ()
    cluster.reconcile()
    assert cluster.volumes["pv-1"].reclaim_policy == "Delete"  # switched again as the purge resumes
    cluster.settle()
    assert cluster.status.phase == "Purged" and cluster.volumes == {}


def test_deleting_the_tenant_is_a_closure_and_the_finalizer_waits_for_the_purge() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.deleting = True
    cluster.settle()
    assert not cluster.gone
    assert cluster.status.phase == "Expired" and cluster.status.closure_reason == "TenantDeleted"
    cluster.now = T0 + 30 * DAY
    cluster.settle()
    assert cluster.gone


def test_a_namespace_recreated_during_the_purge_is_not_the_purged_one() -> None:
    cluster = FakeCluster()
    cluster.close_until(T0 + 30 * DAY)
    cluster.reconcile()
    cluster.controllers()
    cluster.namespaces["acme-a"] = NamespaceFact("acme-a", "recreated", "9", owner="acme")
    for _ in range(3):  # the DataStore purge: keys resolved and recorded, then rows deleted
        cluster.reconcile()
    assert cluster.status.phase == "Purged"
    assert "acme-a" in cluster.namespaces


def test_an_existing_namespace_listed_after_suspension_is_not_owned() -> None:
    cluster = FakeCluster()
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    cluster.settle()
    cluster.namespaces["late"] = NamespaceFact("late", "u-late", "1", owner=None)
    cluster.edit(namespaces=("acme-a", "late"))
    cluster.settle()
    assert cluster.namespaces["late"].owner is None
    assert "late exists without this tenant's label" in cond(cluster, "NamespacesOwned")[2]


def test_an_unchanged_tenant_decides_the_same_status_again() -> None:
    cluster = FakeCluster()
    cluster.edit(state="Suspended", suspension_reason="NonPayment")
    first = cluster.settle()
    cluster.now += timedelta(hours=1)
    again = cluster.reconcile()
    assert again.status == first.status
    assert again.actions == () and again.events == ()


def test_a_namespace_dropped_from_spec_but_still_labeled_is_purged() -> None:
    cluster = FakeCluster()
    cluster.edit(namespaces=("acme-a", "acme-b"))
    cluster.settle()
    cluster.edit(namespaces=("acme-a",), state="Closed")  # acme-b keeps the tenant's label and its data
    cluster.settle()
    cluster.now = T0 + 31 * DAY
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert cluster.namespaces == {}


def test_long_lists_in_messages_are_cut_and_counted() -> None:
    assert listing(f"ns-{i}" for i in range(3)) == "ns-0, ns-1, ns-2"
    long = listing(f"ns-{i}" for i in range(LISTED + 5))
    assert long.endswith(f"ns-{LISTED - 1}, … and 5 more") and f"ns-{LISTED}," not in long


def test_store_keys_follow_the_spec_until_resolved_then_stay() -> None:
    cluster = FakeCluster()
    cluster.close_until(T0 + 30 * DAY)
    cluster.status = cluster.decide().status  # not yet acted on
    cluster.edit(data_keys={"db": ("org-1",)})  # a wrong claim corrected while the purge waits
    cluster.store_purges["db"] = StoreProgress("Resolved", keys={"key": ("acme",)}, requested=("acme",))
    decision = cluster.reconcile()  # the stale resolution (of the old keys) is not recorded
    (store,) = decision.status.purge.stores if decision.status.purge else ()
    assert store.keys is None and store.requested == ("org-1",)
    cluster.reconcile()
    cluster.edit(data_keys={"db": ("org-2",)})  # once resolved, the recorded keys are what gets purged
    cluster.settle()
    (store,) = cluster.status.purge.stores if cluster.status.purge else ()
    assert store.keys == {"key": ("org-1",)} and store.requested == ("org-1",)
    assert cluster.status.phase == "Purged"


def test_a_terminating_volume_is_not_deleted_again() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.bound_volume("pv-1", "acme-a")
    cluster.close_until(T0 + 31 * DAY)
    for _ in range(6):  # until the volume is deleted, and held by its finalizer
        cluster.reconcile()
        if cluster.volumes["pv-1"].terminating:
            break
        cluster.controllers()
    assert cluster.volumes["pv-1"].terminating
    assert not [a for a in cluster.reconcile().actions if isinstance(a, DeleteVolume)]
    cluster.settle()
    assert cluster.status.phase == "Purged"
