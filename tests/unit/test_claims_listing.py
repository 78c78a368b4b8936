"""How purges and sweeps see every tenant: one shared listing, the watch laid over it (a stub API server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tenure.api import DataStoreSpec
from tenure.runtime.connections import Unavailable
from tenure.runtime.datastores import DataStores, Unseen
from tenure.runtime.store import Stores


class CountingKube:
    def __init__(self, fail: bool = False) -> None:
        self.lists = 0
        self.fail = fail

    async def list_custom(self, plural: str) -> list[dict[str, Any]]:
        self.lists += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise OSError("connection refused")
        return [{"metadata": {"name": "acme"}, "spec": {"dataKeys": {"db": ["org-1"]}}, "status": {"phase": "Active"}}]


def test_concurrent_purges_share_one_listing() -> None:
    kube = CountingKube()
    stores = DataStores(kube, Stores())  # type: ignore[arg-type]

    async def main() -> list[Any]:
        return await asyncio.gather(*(stores.claims.all() for _ in range(100)))

    results = asyncio.run(main())
    assert kube.lists == 1
    assert all(result[0].keys_in("db") == ("org-1",) for result in results)


def test_a_failed_listing_is_not_shared() -> None:
    kube = CountingKube(fail=True)
    stores = DataStores(kube, Stores())  # type: ignore[arg-type]

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(Unavailable, match="cannot list Tenants"):
                await stores.claims.all()

    asyncio.run(main())
    assert kube.lists == 2


def test_tenants_the_watch_saw_after_the_listing_are_claimants_too() -> None:
    kube = CountingKube()
    stores = Stores()
    datastores = DataStores(kube, stores)  # type: ignore[arg-type]

    async def main() -> tuple[set[str], set[str]]:
        before = {claim.name for claim in await datastores.claims.all()}
        stores.tenants.put({"metadata": {"name": "globex", "resourceVersion": "2"}, "spec": {}, "status": {}})
        return before, {claim.name for claim in await datastores.claims.all()}

    before, after = asyncio.run(main())
    assert kube.lists == 1  # the second call shares the first listing
    assert before == {"acme"} and after == {"acme", "globex"}


def test_a_sweep_waits_until_the_watch_has_delivered_every_listed_tenant() -> None:
    """Right after a start the cache may lack tenants: a sweep then would skip their windows and still count."""
    datastores = DataStores(CountingKube(), Stores())  # type: ignore[arg-type]
    spec = DataStoreSpec.model_validate({"postgres": {"connectionSecretRef": {"namespace": "x", "name": "y"}}})
    with pytest.raises(Unseen, match="acme"):
        asyncio.run(datastores.sweep("db", spec, None, datetime.now(UTC)))
