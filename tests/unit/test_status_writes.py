"""Status is always writable: a status the API server refuses is reported and written shortened, never frozen."""

from __future__ import annotations

import asyncio
from typing import Any

from tenure.api import TENANT
from tenure.effects.errors import Invalid
from tenure.lifecycle.conditions import MESSAGE_LIMIT, cap, condition
from tenure.runtime.datastores import DataStores
from tenure.runtime.reconciler import Reconciler
from tenure.runtime.store import Stores

from ..support.fake_kube import FakeKube
from .lifecycle_support import T0


class Events:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, bool]] = []

    def post(self, kind: str, name: str, uid: str, reason: str, message: str, warning: bool = False) -> None:
        self.posted.append((reason, message, warning))


def longest(value: Any) -> int:
    if isinstance(value, dict):
        return max((longest(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return max((longest(item) for item in value), default=0)
    return len(value) if isinstance(value, str) else 0


def test_a_status_the_schema_refuses_is_reported_naming_the_field_and_written_shortened() -> None:
    kube, stores, events = FakeKube(), Stores(), Events()

    def schema(plural: str, patch: dict[str, Any]) -> Invalid | None:  # a maxLength of 1024 on every string
        if longest(patch.get("status") or {}) > 1024:
            return Invalid(422, "Invalid", "Tenant is invalid", ("status.conditions[0].message: Too long",))
        return None

    async def scenario() -> dict[str, Any]:
        kube.refuse = schema
        for i in range(25):  # the LegalHeld condition names up to 20 holds: ~5,000 characters with long names
            stores.holds.put({"metadata": {"name": f"{i:02}-" + "h" * 240}, "spec": {"tenants": ["acme"]}})
        created = kube.create(TENANT.plural, {"metadata": {"name": "acme"}, "spec": {"retentionPolicy": "none"}})
        stores.tenants.put(created)
        datastores = DataStores(kube, stores)  # type: ignore[arg-type]
        reconciler = Reconciler(kube, stores, datastores, events, frozenset(), b"k", None, clock=lambda: T0)  # type: ignore[arg-type]
        await reconciler("acme")
        return await kube.get_custom(TENANT.plural, "acme")

    written = asyncio.run(scenario())
    assert written["status"]["phase"] == "Active"
    held = next(c for c in written["status"]["conditions"] if len(c["message"]) > 1000)
    assert held["message"].startswith("Held by 00-hhh") and held["message"].endswith("more characters)")
    assert len(held["message"]) == 1024
    assert events.posted[0][0] == "StatusRejected" and events.posted[0][2]
    assert "status.conditions[0].message" in events.posted[0][1]


def test_every_condition_message_fits_the_crd() -> None:
    long = condition((), "Purged", "False", "Waiting", "x" * (MESSAGE_LIMIT + 500), T0, 1)
    assert len(long.message) == MESSAGE_LIMIT
    assert long.message.endswith(" more characters)")
    assert cap("short") == "short"
