"""A status Tenure did not seal is never acted on: each forgery of issue 7, on a fake clock."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from tenure.api import RetentionPolicySpec, TenantStatus
from tenure.api.tenant import AppliedWindows, PurgedVolume, PurgeStatus
from tenure.lifecycle import DELETIONS, NamespaceFact, RemoveFinalizer, VolumeFact, trust
from tenure.lifecycle.conditions import find
from tenure.runtime.datastores import claims
from tenure.runtime.store import Claim

from .lifecycle_support import KEY, T0, FakeCluster

DAY = timedelta(days=1)
OLD = T0 - 400 * DAY


def destructive(cluster: FakeCluster) -> list[object]:
    return [a for d in cluster.decisions for a in d.actions if isinstance(a, (*DELETIONS, RemoveFinalizer))]


def trusted(cluster: FakeCluster) -> tuple[str, str]:
    found = find(cluster.status.conditions, "StatusTrusted")
    assert found is not None
    return found.status, found.reason


def warned(cluster: FakeCluster) -> bool:
    return any(e.reason == "StatusUntrusted" and e.warning for d in cluster.decisions for e in d.events)


def test_a_status_tenure_wrote_verifies_and_any_acted_on_field_changed_does_not() -> None:
    cluster = FakeCluster()
    cluster.close_until(T0 + DAY)
    status = cluster.status
    assert trust.verifies(KEY, "acme", "tenant-uid", status)
    assert not trust.verifies(KEY, "acme", "other-uid", status)  # copied onto another object, or restored
    assert not trust.verifies(KEY, "globex", "tenant-uid", status)
    assert not trust.verifies(b"another key", "acme", "tenant-uid", status)
    assert not trust.verifies(KEY, "acme", "tenant-uid", status.model_copy(update={"expired_at": OLD}))
    windows = AppliedWindows(expired_data_retention=timedelta(0))
    assert not trust.verifies(KEY, "acme", "tenant-uid", status.model_copy(update={"windows": windows}))
    # conditions are not acted on: people may read them, Tenure decides nothing from them
    assert trust.verifies(KEY, "acme", "tenant-uid", status.model_copy(update={"conditions": ()}))


def test_forged_expired_with_an_old_expired_at_on_an_active_tenant_deletes_nothing() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.forge(phase="Expired", expired_at=OLD, closure_reason="Voluntary")
    cluster.settle()
    assert cluster.status.phase == "Active"
    assert cluster.status.expired_at is None
    assert destructive(cluster) == []
    assert "acme-a" in cluster.namespaces
    assert trusted(cluster) == ("False", "SealMismatch")
    assert warned(cluster)


def test_forged_purging_with_foreign_volumes_touches_none_of_them() -> None:
    cluster = FakeCluster()
    cluster.settle()
    cluster.namespaces["infra"] = NamespaceFact("infra", "ns-infra", "1", owner=None)
    cluster.volumes["pv-infra"] = VolumeFact("pv-infra", "pv-uid", "infra", "Retain", "Bound", "csi.example")
    scope = PurgeStatus(volumes=(PurgedVolume(name="pv-infra", uid="pv-uid", static=False),))
    cluster.forge(phase="Purging", expired_at=OLD, purge_after=OLD, purge_started_at=OLD, purge=scope)
    cluster.settle()
    assert cluster.volumes["pv-infra"].reclaim_policy == "Retain"
    assert destructive(cluster) == []
    assert cluster.status.purge is None and cluster.status.phase == "Active"


def test_forged_zero_retention_window_on_a_closed_tenant_restarts_the_full_window() -> None:
    cluster = FakeCluster(policy=RetentionPolicySpec(expired_data_retention=timedelta(hours=1)))
    cluster.settle()
    cluster.edit(state="Closed")
    cluster.settle()
    assert cluster.status.purge_after == T0 + timedelta(hours=1)
    cluster.now = T0 + timedelta(minutes=10)
    cluster.forge(windows=AppliedWindows(expired_data_retention=timedelta(0)), purge_after=T0)
    cluster.settle()
    # rebuilt from spec: Expired from when the forgery was seen, the full hour again (never earlier than sealed)
    assert cluster.status.phase == "Expired"
    assert cluster.status.purge_after == T0 + timedelta(minutes=70)
    assert cluster.status.windows == AppliedWindows(expired_data_retention=timedelta(hours=1))
    assert destructive(cluster) == []
    cluster.now = T0 + timedelta(minutes=69)
    cluster.settle()
    assert destructive(cluster) == []
    cluster.now = T0 + timedelta(minutes=70)
    cluster.settle()
    assert cluster.status.phase == "Purged"  # the rebuilt, sealed status is trusted again and runs its course


def test_forged_purged_without_a_purge_keeps_the_finalizer_and_does_not_fail() -> None:
    for state in ("Active", "Closed"):
        cluster = FakeCluster()
        cluster.settle()
        if state == "Closed":
            cluster.edit(state="Closed")
            cluster.settle()
        for forged in ("Purged", "Purging"):
            cluster.forge(phase=forged, purge=None, purged_at=OLD, expired_at=OLD, purge_after=OLD)
            cluster.settle()  # used to raise AssertionError on every pass
            assert cluster.finalized
            assert cluster.status.phase == ("Active" if state == "Active" else "Expired")
            assert destructive(cluster) == []


def test_another_tenants_forged_purged_still_claims_its_keys_in_a_shared_store() -> None:
    def body(status: dict[str, object]) -> dict[str, object]:
        return {"metadata": {"name": "globex", "uid": "g-uid"}, "spec": {}, "status": status}

    forged = Claim.from_body(body({"phase": "Purged", "purgedAt": "2020-01-01T00:00:00Z"}), KEY)
    assert claims([forged], "db") == {"globex": ("globex",)}
    sealed = trust.sealed(KEY, "globex", "g-uid", TenantStatus(phase="Purged", purged_at=OLD, purge=PurgeStatus()))
    released = Claim.from_body(body(sealed.to_api()), KEY)
    assert claims([released], "db") == {}


def test_a_sealed_expired_tenant_reopened_in_spec_is_not_purged_until_the_spec_asks_again() -> None:
    """Every destructive step needs the spec to agree, whatever the (sealed) status says."""
    cluster = FakeCluster()
    cluster.close_until(T0 + 29 * DAY)
    cluster.edit(state="Active")  # refused: an expired account cannot be reopened
    cluster.now = T0 + 31 * DAY
    cluster.settle()
    assert cluster.status.phase == "Expired"
    assert destructive(cluster) == []
    purged = find(cluster.status.conditions, "Purged")
    assert purged is not None and purged.reason == "WaitingForSpec" and "spec.state is Active" in purged.message
    cluster.edit(state="Closed")
    cluster.settle()
    assert cluster.status.phase == "Purged"


def test_an_unsealed_status_from_an_older_tenure_is_rebuilt_and_only_delays() -> None:
    cluster = FakeCluster()
    cluster.close_until(T0 + DAY)
    cluster.status = cluster.status.model_copy(update={"seal": None})  # written before seals existed
    cluster.now = T0 + 20 * DAY
    cluster.settle()
    assert cluster.status.phase == "Expired"
    assert cluster.status.purge_after == T0 + 50 * DAY  # the window starts afresh: later than the 30d recorded
    assert trusted(cluster)[0] == "False"
    # An Active tenant's unsealed status records nothing to trust: no warning on upgrade.
    active = FakeCluster()
    active.settle()
    active.status = active.status.model_copy(update={"seal": None, "created_namespaces": None})  # as before 0.2
    active.settle()
    assert trusted(active) == ("True", "Sealed") and not warned(active)


@given(
    phase=st.sampled_from(["Suspended", "Expired", "Purging", "Purged"]),
    state=st.sampled_from(["Active", "Suspended", "Closed"]),
    entered=st.integers(0, 400),
    window=st.integers(0, 40),
)
def test_a_rebuilt_deadline_is_never_earlier_than_the_recorded_one(
    phase: str, state: str, entered: int, window: int
) -> None:
    cluster = FakeCluster()
    cluster.now = T0 + 500 * DAY
    if state != "Active":
        cluster.edit(state=state, suspension_reason="Other" if state == "Suspended" else None)
    recorded = T0 + (entered + window) * DAY
    cluster.forge(
        phase=phase,
        suspended_at=T0 + entered * DAY,
        grace_ends_at=recorded,
        expired_at=T0 + entered * DAY,
        purge_after=recorded,
        windows=AppliedWindows(suspension_grace_period=window * DAY, expired_data_retention=window * DAY),
    )
    decision = cluster.reconcile()
    assert not any(isinstance(a, (*DELETIONS, RemoveFinalizer)) for a in decision.actions)
    deadline = decision.status.next_deadline
    if state == "Active":
        assert decision.status.phase == "Active"
    else:
        assert deadline is not None and deadline >= max(recorded, cluster.now)


def test_deleting_an_open_tenant_keeps_closure_semantics_and_warns() -> None:
    """Without the tenure-explicit-closing policy the API server lets it through: closed, with a Warning."""
    cluster = FakeCluster()
    cluster.settle()
    cluster.deleting = True
    cluster.settle()
    assert cluster.status.phase == "Expired" and cluster.status.closure_reason == "TenantDeleted"
    warning = [e for d in cluster.decisions for e in d.events if e.reason == "DeletedWhileOpen"]
    assert len(warning) == 1 and warning[0].warning and "while Active" in warning[0].message
