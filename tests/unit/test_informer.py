"""The informer: watch from the listing's resourceVersion; list again when the API server says it is too old."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tenure.effects.errors import Expired
from tenure.runtime.informer import Informer
from tenure.runtime.store import Changes, Stores


def volume(name: str, version: str, namespace: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": {"claimRef": {"namespace": namespace}}}


class Kube:
    """Lists once with pv-1, then without it; the first watch is too old (410), the second delivers nothing."""

    def __init__(self) -> None:
        self.listings = [([volume("pv-1", "5", "acme-a")], "10"), ([], "20")]
        self.watched_from: list[str] = []

    async def listing(self, plural: str) -> tuple[list[dict[str, Any]], str]:
        return self.listings.pop(0)

    async def watch(self, plural: str, version: str, seconds: float) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(version)
        if len(self.watched_from) == 1:
            raise Expired(410, "Expired", "too old resource version")
        await asyncio.sleep(3600)
        yield "BOOKMARK", {}


def test_the_watch_continues_from_the_listing_and_a_410_lists_again_dropping_what_is_gone() -> None:
    stores = Stores()
    stores.tenants.put({"metadata": {"name": "acme", "resourceVersion": "1"}, "spec": {"namespaces": ["acme-a"]}})
    kube = Kube()
    informer = Informer(kube, "persistentvolumes", stores.volumes, 300)  # type: ignore[arg-type]
    changes: list[Changes] = []

    async def scenario() -> None:
        await informer.list()
        informer.changed = lambda plural, change: changes.append(change)
        task = asyncio.create_task(informer.run())
        while not changes:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert kube.watched_from[0] == "10"  # the startup listing's resourceVersion
    assert changes == [Changes(names={"pv-1"}, tenants={"acme"})]
    assert "pv-1" not in stores.volumes
    assert informer.version == "20"
