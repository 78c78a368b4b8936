"""A fake API server for unit tests that run the real Reconciler, Scheduler and Stores without a cluster.

In the spirit of controller-runtime's fake client: objects in memory, a
resourceVersion counter, JSON merge patches with resourceVersion
preconditions (409 when stale, 404 when absent) and watch events delivered
on the next loop iteration, like a real watch's echo of a write.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable
from typing import Any

from tenure.effects.errors import Conflict, Gone, Invalid

Watcher = Callable[[str, dict[str, Any]], None]
"""Called with the event type (ADDED, MODIFIED, DELETED) and the object."""


def apply_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            apply_merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    """The :class:`tenure.effects.kube.Kube` calls the runtime makes for cluster-scoped objects."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.watchers: dict[str, Watcher] = {}
        self.writes = 0
        self.refuse: Callable[[str, dict[str, Any]], Invalid | None] = lambda plural, patch: None
        """A schema: the error for a patch the API server would refuse (422), or None."""
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(body)
        meta = stored.setdefault("metadata", {})
        meta.update(uid=f"uid-{next(self._uids)}", resourceVersion=str(next(self._versions)), generation=1)
        self.objects.setdefault(plural, {})[meta["name"]] = stored
        self._notify(plural, "ADDED", stored)
        return copy.deepcopy(stored)

    async def create_custom(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)  # a request: other tasks run meanwhile
        if body["metadata"]["name"] in self.objects.get(plural, {}):
            raise Conflict(409, "AlreadyExists", f"{plural} {body['metadata']['name']} already exists")
        self.writes += 1
        return self.create(plural, body)

    async def patch_custom(self, plural: str, name: str, body: dict[str, Any], *, status: bool) -> dict[str, Any]:
        stored = self.objects.get(plural, {}).get(name)
        if stored is None:
            raise Gone(404, "NotFound", f"{plural} {name} not found")
        patch = copy.deepcopy(body)
        wanted = (patch.get("metadata") or {}).pop("resourceVersion", None)
        if wanted is not None and wanted != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", f"{plural} {name} has changed")
        if status:
            patch = {"status": patch.get("status") or {}}
        if (refused := self.refuse(plural, patch)) is not None:
            raise refused
        apply_merge_patch(stored, patch)
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        self.writes += 1
        self._notify(plural, "MODIFIED", stored)
        return copy.deepcopy(stored)

    async def get_custom(self, plural: str, name: str) -> dict[str, Any]:
        stored = self.objects.get(plural, {}).get(name)
        if stored is None:
            raise Gone(404, "NotFound", f"{plural} {name} not found")
        return copy.deepcopy(stored)

    async def list_custom(self, plural: str, label_selector: str = "") -> list[dict[str, Any]]:
        key, _, value = label_selector.partition("=")  # one key=value, or everything
        return [
            copy.deepcopy(body)
            for body in self.objects.get(plural, {}).values()
            if not key or (body["metadata"].get("labels") or {}).get(key) == value
        ]

    async def listing(self, plural: str) -> tuple[list[dict[str, Any]], str]:
        return await self.list_custom(plural), str(next(self._versions))

    def _notify(self, plural: str, type_: str, body: dict[str, Any]) -> None:
        if (watcher := self.watchers.get(plural)) is not None:
            asyncio.get_running_loop().call_soon(watcher, type_, copy.deepcopy(body))


class Issuer:
    """Receipts as effects.receipts.Receipts issues them: once per name."""

    def __init__(self) -> None:
        self.issued: dict[str, dict[str, Any]] = {}

    async def issue(self, name: str, body: dict[str, Any]) -> None:
        self.issued.setdefault(name, body)
