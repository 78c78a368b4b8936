"""Metrics computed at scrape time from the in-memory view: values that follow the tenants, and no growth.

The view reads only :class:`~tenure.runtime.store.Stores` (what the watches
delivered) and the running purges, so these tests feed it watch bodies and a
fake clock, and run the real Reconciler and Scheduler for thirty days.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tenure.api import RETENTION_POLICY, TENANT
from tenure.runtime.datastores import DataStores
from tenure.runtime.informer import Informer
from tenure.runtime.metrics_view import MetricsView
from tenure.runtime.reconciler import Reconciler
from tenure.runtime.scheduler import Scheduler
from tenure.runtime.store import Stores

from ..support.fake_kube import FakeKube, Issuer

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86_400.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(view: MetricsView) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in view.collect()
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_versions = iter(range(1, 10**9))


def tenant(name: str, phase: str, state: str = "Closed", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": str(next(_versions))},
        "spec": {"state": state},
        "status": {"phase": phase, "closureReason": "Voluntary", **status},
    }


def datastore(name: str, ready: str, finished: datetime | None = None, error: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": ready, "reason": "x", "message": "", "lastTransitionTime": iso(T0)}]
    }
    if finished is not None:
        status["lastSweep"] = {"startedAt": iso(finished - timedelta(seconds=5)), "finishedAt": iso(finished)}
        if error:
            status["lastSweep"]["error"] = error
    spec = {"postgres": {"connectionSecretRef": {"namespace": "n", "name": "s"}, "preset": "litellm"}}
    return {
        "metadata": {"name": name, "resourceVersion": str(next(_versions))},
        "spec": {**spec, "sweepInterval": "1h"},
        "status": status,
    }


def hold(name: str, tenants: list[str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(next(_versions))}, "spec": {"tenants": tenants}}


def test_overdue_causes_deadlines_and_purges_follow_the_stored_tenants() -> None:
    now = T0 + timedelta(days=40)
    stores = Stores()
    view = MetricsView(stores, lambda tenant, uid: {}, clock=lambda: now.timestamp())
    due, later = T0 + timedelta(days=30), T0 + timedelta(days=45)
    stores.tenants.put(tenant("late", "Expired", purgeAfter=iso(due)))
    stores.tenants.put(tenant("held", "Expired", purgeAfter=iso(due)))
    stores.tenants.put(tenant("waiting", "Expired", purgeAfter=iso(later)))
    stores.tenants.put(tenant("grace", "Suspended", "Suspended", closureReason=None, graceEndsAt=iso(later)))
    stores.holds.put(hold("case-1", ["held"]))
    found = samples(view)
    assert value(found, "tenure_purges_overdue", cause="operator_behind") == 1
    assert value(found, "tenure_purges_overdue", cause="legal_hold") == 1
    assert value(found, "tenure_purges_overdue", cause="purging") == 0
    assert value(found, "tenure_legal_holds") == 1 and value(found, "tenure_tenants_held") == 1
    assert value(found, "tenure_tenant_deadline_timestamp_seconds", tenant="late", deadline="purge_after") == (
        due.timestamp()
    )
    assert value(found, "tenure_tenant_deadline_timestamp_seconds", tenant="grace", deadline="grace_ends") == (
        later.timestamp()
    )
    assert value(found, "tenure_next_deadline_seconds", deadline="purge_after") == 5 * DAY  # the past one is overdue
    assert value(found, "tenure_next_deadline_seconds", deadline="grace_ends") == 5 * DAY

    # The purge starts, a DataStore it must clear goes unavailable, then comes back and rows go.
    started = now - timedelta(hours=2)
    stores.datastores.put(datastore("db", "False"))
    stores.tenants.put(
        tenant(
            "late",
            "Purging",
            purgeAfter=iso(due),
            purgeStartedAt=iso(started),
            purge={"stores": [{"name": "db", "state": "Deleting", "rowsDeleted": 10}]},
        )
    )
    found = samples(view)
    assert value(found, "tenure_purges_overdue", cause="store_unavailable") == 1
    assert value(found, "tenure_purges_overdue", cause="operator_behind") == 0
    assert value(found, "tenure_datastore_ready", datastore="db") == 0
    assert value(found, "tenure_purge_age_seconds", tenant="late") == 7200
    assert value(found, "tenure_purge_last_progress_timestamp_seconds", tenant="late") == started.timestamp()
    assert value(found, "tenure_purge_age_seconds", tenant="held") is None  # not purging

    now += timedelta(minutes=10)
    stores.datastores.put(datastore("db", "True", finished=now - timedelta(minutes=1)))
    stores.tenants.put(
        tenant(
            "late",
            "Purging",
            purgeAfter=iso(due),
            purgeStartedAt=iso(started),
            purge={"stores": [{"name": "db", "state": "Done", "rowsDeleted": 25, "rowsRemaining": 0}]},
        )
    )
    found = samples(view)
    assert value(found, "tenure_purges_overdue", cause="purging") == 1
    assert value(found, "tenure_purges_overdue", cause="store_unavailable") == 0
    assert value(found, "tenure_datastore_ready", datastore="db") == 1
    assert value(found, "tenure_purge_last_progress_timestamp_seconds", tenant="late") == now.timestamp()
    assert value(found, "tenure_purge_rows_remaining", tenant="late", datastore="db") == 0
    swept = (now - timedelta(minutes=1)).timestamp()
    assert value(found, "tenure_datastore_last_sweep_timestamp_seconds", datastore="db") == swept
    assert value(found, "tenure_next_sweep_seconds") == 3600 - 65

    # A failed sweep does not hide the last successful one; the store and the tenant gone, their series go.
    stores.datastores.put(datastore("db", "True", finished=now, error="statement timeout"))
    assert value(samples(view), "tenure_datastore_last_sweep_timestamp_seconds", datastore="db") == swept
    stores.tenants.drop("late")
    stores.datastores.drop("db")
    found = samples(view)
    assert not [key for key in found if ("tenant", "late") in key[1] or ("datastore", "db") in key[1]]
    assert value(found, "tenure_purges_overdue", cause="purging") == 0


def test_per_tenant_series_can_be_turned_off() -> None:
    stores = Stores()
    stores.tenants.put(tenant("a", "Expired", purgeAfter=iso(T0)))
    on = samples(MetricsView(stores, lambda tenant, uid: {}, clock=lambda: T0.timestamp() - 10))
    off = samples(MetricsView(stores, lambda tenant, uid: {}, per_tenant=False, clock=lambda: T0.timestamp() - 10))
    assert value(on, "tenure_tenant_deadline_timestamp_seconds", tenant="a", deadline="purge_after") == T0.timestamp()
    assert not [key for key in off if key[0] == "tenure_tenant_deadline_timestamp_seconds"]
    assert value(off, "tenure_next_deadline_seconds", deadline="purge_after") == 10


async def thirty_days(per_day: int) -> list[dict[str, int]]:
    """New tenants close every day, are purged after a day and deleted: the series and what the view remembers."""
    now = T0.timestamp()
    kube = FakeKube()
    stores = Stores(b"test seal key")
    datastores = DataStores(kube, stores)  # type: ignore[arg-type]
    reconciler = Reconciler(
        kube,  # type: ignore[arg-type]
        stores,
        datastores,
        _Events(),  # type: ignore[arg-type]
        frozenset(),
        stores.seal_key,
        Issuer(),  # type: ignore[arg-type]
        clock=lambda: datetime.fromtimestamp(now, UTC),
    )
    scheduler = Scheduler("simulated", reconciler, workers=16, clock=lambda: now)
    view = MetricsView(stores, datastores.purges_of, clock=lambda: now)
    kube.watchers[TENANT.plural] = lambda type_, body: (
        stores.tenants.put(body) and scheduler.touch(body["metadata"]["name"])
    )
    kube.create(RETENTION_POLICY.plural, {"metadata": {"name": "p"}, "spec": {"expiredDataRetention": "1d"}})
    for plural, kind in stores.kinds.items():
        await Informer(kube, plural, kind, 300).list()  # type: ignore[arg-type]

    async def settle() -> None:
        while await scheduler.step() or scheduler.busy():
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    daily = []
    for day in range(30):
        names = [f"d{day}-{i}" for i in range(per_day)]
        for name in names:
            kube.create(TENANT.plural, {"metadata": {"name": name}, "spec": {"retentionPolicy": "p"}})
        await asyncio.sleep(0)
        await settle()
        for name in names:  # closed once Active, by a spec edit as in a real account's life
            await kube.patch_custom(TENANT.plural, name, {"spec": {"state": "Closed"}}, status=False)
        await asyncio.sleep(0)
        await settle()
        for name, record in list(stores.tenants.items()):
            if record.claim.phase == "Purged":  # deleted once purged, as the handler forgets a DELETED tenant
                del kube.objects[TENANT.plural][name]
                stores.tenants.drop(name)
                scheduler.touch(name)
        await settle()
        found = samples(view)
        daily.append(
            {
                "series": len(found),
                "deadlines": sum(1 for key in found if key[0] == "tenure_tenant_deadline_timestamp_seconds"),
                "expired": sum(1 for r in stores.tenants.values() if r.claim.phase == "Expired"),
                "remembered": len(view._parsed) + len(view._progress),
            }
        )
        now += DAY
        await settle()
    return daily


class _Events:
    def post(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_thirty_days_of_tenants_coming_and_going_keep_the_series_flat() -> None:
    daily = asyncio.run(thirty_days(per_day=20))
    print(daily[0], daily[1], daily[-1])
    assert daily[0]["deadlines"] == 20 and daily[0]["expired"] == 20  # each day's tenants wait for tomorrow's purge
    assert all(day == daily[1] for day in daily[1:])  # from day 2 on: the same number of series, nothing kept
    assert daily[-1]["remembered"] == 20
