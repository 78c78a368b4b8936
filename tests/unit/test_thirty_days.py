"""Bounded over time: 10,000 tenants in every phase, 30 simulated days, a re-list every 5 minutes.

The real Reconciler, Scheduler and Stores run on a fake clock against a fake
API server (tests/support/fake_kube.py). The scheduler must hold at most one
deadline per tenant, a re-list of unchanged objects must wake no tenant, and
every other structure must stay the same size from the first day to the last.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from tenure.api import RETENTION_POLICY, TENANT
from tenure.runtime.datastores import DataStores
from tenure.runtime.informer import Informer
from tenure.runtime.reconciler import Reconciler
from tenure.runtime.scheduler import Scheduler
from tenure.runtime.store import Stores

from ..support.fake_kube import FakeKube, Issuer

DAY = 86_400.0
RELIST = 300.0
START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
GROUPS = 4
PER_GROUP = 2_500
FLAT_FROM = 21
"""The day after the last transition (day 20): memory is traced from here to day 30."""


class Events:
    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()

    def post(self, kind: str, name: str, uid: str, reason: str, message: str, warning: bool = False) -> None:
        self.reasons[reason] += 1


def tenant(name: str, policy: str, state: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"retentionPolicy": policy, "state": state}
    if state == "Suspended":
        spec["suspensionReason"] = "NonPayment"
    return {"metadata": {"name": name}, "spec": spec, "status": {}}


async def simulate(days: float) -> dict[str, Any]:
    now = START
    kube = FakeKube()
    stores = Stores(b"test seal key")
    events = Events()
    issuer = Issuer()
    reconciler = Reconciler(
        kube,  # type: ignore[arg-type]
        stores,
        DataStores(kube, stores),  # type: ignore[arg-type]
        events,  # type: ignore[arg-type]
        frozenset(),
        stores.seal_key,
        issuer,  # type: ignore[arg-type]
        clock=lambda: datetime.fromtimestamp(now, UTC),
    )
    scheduler = Scheduler("simulated", reconciler, workers=64, clock=lambda: now)

    def tenant_event(type_: str, body: dict[str, Any]) -> None:  # as runtime.handlers.tenant_event
        if stores.tenants.put(body):
            scheduler.touch(body["metadata"]["name"])

    async def settle() -> None:
        while await scheduler.step() or scheduler.busy():
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # finished tasks' done callbacks

    kube.watchers[TENANT.plural] = tenant_event
    kube.create(
        RETENTION_POLICY.plural,
        {"metadata": {"name": "short"}, "spec": {"suspensionGracePeriod": "10d", "expiredDataRetention": "10d"}},
    )
    kube.create(
        RETENTION_POLICY.plural,
        {"metadata": {"name": "long"}, "spec": {"suspensionGracePeriod": "20d", "expiredDataRetention": "40d"}},
    )
    informers = [Informer(kube, plural, store, RELIST) for plural, store in stores.kinds.items()]  # type: ignore[arg-type]
    woken: set[str] = set()
    for informer in informers:
        informer.changed = lambda plural, changes: woken.update(changes.tenants)
        await informer.list()
    groups = [("short", "Active"), ("long", "Suspended"), ("short", "Suspended"), ("long", "Closed")]
    for group, (policy, state) in enumerate(groups):
        for i in range(PER_GROUP):
            kube.create(TENANT.plural, tenant(f"t{group}-{i}", policy, state))
    await asyncio.sleep(0)
    await settle()

    figures: dict[str, Any] = {"max_deadlines": 0, "relists": 0, "woken_by_relists": 0, "daily": []}
    next_relist, next_day, end = now + RELIST, now + DAY, now + days * DAY
    started = time.perf_counter()
    while now < end:
        now = min(next_relist, next_day, scheduler.next_deadline() or end, end)
        await settle()
        if now >= next_relist:
            woken.clear()
            for informer in informers:
                await informer.list()
            figures["relists"] += 1
            figures["woken_by_relists"] += len(woken)
            for name in woken:
                scheduler.touch(name)
            await settle()
            next_relist += RELIST
        sizes = scheduler.sizes()
        figures["max_deadlines"] = max(figures["max_deadlines"], sizes["deadlines"])
        if now >= next_day:
            phases = Counter(record.claim.phase for record in stores.tenants.values())
            figures["daily"].append(
                {
                    "sizes": sizes,
                    "phases": dict(phases),
                    "tenants": len(stores.tenants),
                    "traced_mib": round(tracemalloc.get_traced_memory()[0] / 2**20, 3),
                }
            )
            if len(figures["daily"]) == FLAT_FROM:
                tracemalloc.start()  # from here on, what the re-lists and deadlines allocate and keep
            next_day += DAY
    figures["seconds"] = time.perf_counter() - started
    tracemalloc.stop()
    figures["writes"] = kube.writes
    figures["reconciles"] = REGISTRY.get_sample_value("tenure_reconciles_total", {"outcome": "ok"})
    figures["events"] = dict(events.reasons)
    figures["receipts"] = Counter(body["tenant"]["name"][:2] for body in issuer.issued.values())
    return figures


def test_thirty_days_of_ten_thousand_tenants_keep_one_deadline_per_tenant_and_wake_nobody_on_relists() -> None:
    figures = asyncio.run(simulate(days=30))
    print({key: value for key, value in figures.items() if key != "daily"})
    print("day 1:", figures["daily"][0], "day 30:", figures["daily"][-1])
    print("traced MiB by day:", [day["traced_mib"] for day in figures["daily"]])
    tenants = GROUPS * PER_GROUP
    assert figures["relists"] == 30 * 288
    assert figures["woken_by_relists"] == 0
    assert figures["max_deadlines"] <= tenants
    first, last = figures["daily"][0], figures["daily"][-1]
    assert first["phases"] == {"Active": 2_500, "Suspended": 5_000, "Expired": 2_500}
    assert last["phases"] == {"Active": 2_500, "Expired": 5_000, "Purged": 2_500}
    assert first["sizes"] == {"deadlines": 7_500, "dirty": 0, "inflight": 0, "failures": 0, "tasks": 0}
    assert last["sizes"] == {"deadlines": 5_000, "dirty": 0, "inflight": 0, "failures": 0, "tasks": 0}
    assert all(day["tenants"] == tenants for day in figures["daily"])
    assert figures["receipts"] == {"t2": 2_500}  # one receipt per purged tenant (the short-policy suspended group)
    assert last["traced_mib"] < 0.5  # kept from day 21 to day 30, across 2,592 re-lists
