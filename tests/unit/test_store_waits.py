"""Which DataStores a purge waits for, and what a purge records of a tenant's keys however many it has."""

from __future__ import annotations

import json
from datetime import timedelta

from tenure.lifecycle import PurgeStore, StoreProgress
from tenure.lifecycle.conditions import find

from .lifecycle_support import T0, FakeCluster

PURGE_DUE = T0 + timedelta(days=31)


class BrokenStore(FakeCluster):
    """DataStore ``broken`` never gets through (a missing Secret, a garbage URI): its purge only ever waits."""

    def apply(self, action: object) -> None:
        if isinstance(action, PurgeStore) and action.name == "broken":
            self.store_purges["broken"] = StoreProgress(
                "Waiting", message="Secret x/y cannot be read (404); retrying", requested=action.requested
            )
            self.asked.append(action)
            return
        super().apply(action)

    @property
    def asked(self) -> list[PurgeStore]:
        return self.__dict__.setdefault("_asked", [])


def purged_message(cluster: FakeCluster) -> str:
    purged = find(cluster.status.conditions, "Purged")
    assert purged is not None
    return purged.message


def test_a_broken_store_where_the_tenant_has_no_keys_does_not_hold_its_purge() -> None:
    cluster = BrokenStore(datastores=("broken", "db"))
    cluster.edit(data_keys={"broken": []})
    cluster.close_until(PURGE_DUE)
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert cluster.asked == []  # nothing was asked of the broken store
    stores = {store.name: store for store in cluster.status.purge.stores} if cluster.status.purge else {}
    assert (stores["broken"].state, stores["db"].state) == ("NoKeys", "Done")
    assert "DataStore broken: spec.dataKeys lists no key for this store" in purged_message(cluster)


def test_a_broken_store_where_the_tenant_has_keys_holds_its_purge() -> None:
    cluster = BrokenStore(datastores=("broken", "db"))  # no dataKeys for it: its key there is its name
    cluster.close_until(PURGE_DUE)
    cluster.settle()
    assert cluster.status.phase == "Purging"
    assert [action.requested for action in cluster.asked][-1] == ("acme",)
    assert "rows in DataStore broken (Waiting: Secret x/y cannot be read (404); retrying)" in purged_message(cluster)


def test_a_deleted_datastore_releases_the_purge_and_its_keys_are_named_not_purged() -> None:
    cluster = BrokenStore(datastores=("broken", "db"))
    cluster.edit(data_keys={"broken": ["org-7f3c", "team-9"]})
    cluster.close_until(PURGE_DUE)
    cluster.settle()
    assert cluster.status.phase == "Purging"
    cluster.datastores = ("db",)  # someone deleted DataStore broken
    cluster.settle()
    assert cluster.status.phase == "Purged"
    stores = {store.name: store for store in cluster.status.purge.stores} if cluster.status.purge else {}
    assert stores["broken"].state == "NotPurged"
    expected = (
        "DataStore broken: DataStore broken was deleted before this purge finished: rows with the tenant's keys "
        "there were NOT purged: org-7f3c, team-9."
    )
    assert expected in purged_message(cluster)


def test_a_datastore_back_before_the_purge_ends_is_purged_again() -> None:
    cluster = FakeCluster(datastores=("db",))
    cluster.close_until(PURGE_DUE)
    cluster.reconcile()  # Purging: the scope records db; its keys are resolved
    cluster.datastores = ()
    cluster.reconcile()  # the tenant's namespace is still being deleted
    assert cluster.status.phase == "Purging"
    assert cluster.status.purge is not None and cluster.status.purge.stores[0].state == "NotPurged"
    cluster.datastores = ("db",)  # it was back before the tenant's next pass, say a GitOps re-sync
    cluster.settle()
    assert cluster.status.purge.stores[0].state == "Done" and cluster.rows == 0


def test_status_stays_small_however_many_keys_a_tenant_has() -> None:
    many = tuple(f"team-{i:05d}-" + "x" * 240 for i in range(64))
    cluster = FakeCluster(datastores=tuple(f"db{i:02d}" for i in range(32)))
    cluster.edit(data_keys={store: many for store in cluster.datastores})
    cluster.close_until(PURGE_DUE)
    cluster.settle()
    assert cluster.status.phase == "Purged"
    assert cluster.status.purge is not None
    store = cluster.status.purge.stores[0]
    assert store.keys is None and store.key_set is not None
    assert (store.key_set.count, len(store.key_set.sample)) == (64, 8)
    assert (len(store.requested), store.requested_count) == (16, 64)
    size = len(json.dumps(cluster.status.to_api()))
    assert size < 300_000, size  # the spec's 2,048 keys of 250 characters alone are 512 kB; copied twice, 1.5 MB


def test_a_resolution_too_large_for_status_and_not_recorded_elsewhere_deletes_nothing() -> None:
    class Unrecorded(FakeCluster):
        def apply(self, action: object) -> None:
            if isinstance(action, PurgeStore) and action.keys is None and action.key_set is None:
                keys = {"token": tuple(f"{i:064x}" for i in range(100))}
                self.store_purges[action.name] = StoreProgress("Resolved", keys=keys, requested=action.requested)
                return
            assert not isinstance(action, PurgeStore), "deleting with keys status does not record"
            super().apply(action)

    cluster = Unrecorded()
    cluster.close_until(PURGE_DUE)
    cluster.settle()
    assert cluster.status.phase == "Purging"
    assert cluster.status.purge is not None and cluster.status.purge.stores[0].keys is None
