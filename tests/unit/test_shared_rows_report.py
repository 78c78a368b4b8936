"""Rows a purge left because another tenant's key is on them too: in status and in the Purged condition."""

from __future__ import annotations

from datetime import timedelta

from tenure.lifecycle import PurgeStore, StoreProgress
from tenure.lifecycle.conditions import find

from .lifecycle_support import T0, FakeCluster


class SharingCluster(FakeCluster):
    def apply(self, action: object) -> None:
        if isinstance(action, PurgeStore) and action.keys is not None:
            self.store_purges[action.name] = StoreProgress("Done", 3, 0, rows_shared={"LiteLLM_SpendLogs": 2})
            return
        super().apply(action)


def test_rows_left_to_other_tenants_are_recorded_and_named_in_the_purged_condition() -> None:
    cluster = SharingCluster()
    cluster.close_until(T0 + timedelta(days=31))
    cluster.settle()
    assert cluster.status.phase == "Purged"
    (store,) = cluster.status.purge.stores if cluster.status.purge else ()
    assert store.rows_shared == {"LiteLLM_SpendLogs": 2}
    purged = find(cluster.status.conditions, "Purged")
    assert purged is not None
    assert "Left because other tenants' keys are on them too: 2 in LiteLLM_SpendLogs." in purged.message
