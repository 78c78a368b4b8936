"""kopf wiring: watch events update the stores and wake the schedulers.

Only ``on.event`` handlers are used, all ``async`` so they run on the event
loop rather than kopf's thread pool (no locking, no thread hop per event);
kopf then stores no handler progress or
last-handled-configuration on the objects, so Tenure's only writes are the
status it computes, its finalizer, the namespaces and volumes it manages, and
Events. Startup lists policies, holds, namespaces and volumes before kopf
starts watching (kopf runs startup handlers first), so the first tenant is
decided with every legal hold known.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import kopf
from prometheus_client import start_http_server

from tenure.api import API_GROUP, API_VERSION, DATA_STORE, LEGAL_HOLD, RETENTION_POLICY, TENANT
from tenure.effects.events import EventPoster
from tenure.effects.kube import Kube, connect, status_of
from tenure.lifecycle import PROTECTED_NAMESPACES

from .config import Config
from .datastores import DataStores
from .holds import HoldReconciler
from .leader import Leadership, elect
from .reconciler import Reconciler
from .scheduler import Scheduler
from .store import Stores

logger = logging.getLogger(__name__)

RESYNC_SECONDS = 300.0
"""How often the small stores are re-listed, dropping anything a watch missed (such as a deletion)."""
LISTED = (RETENTION_POLICY.plural, LEGAL_HOLD.plural, DATA_STORE.plural, "namespaces", "persistentvolumes")


class Runtime:
    """Everything the handlers share, created once at startup."""

    def __init__(self, kube: Kube, stores: Stores, config: Config, leadership: Leadership) -> None:
        self.kube = kube
        self.stores = stores
        self.events = EventPoster(kube)
        self.datastores = DataStores(kube, stores)
        protected = PROTECTED_NAMESPACES | {config.namespace}
        reconciler = Reconciler(kube, stores, self.datastores, self.events, protected)
        gate = leadership.gate  # a standby keeps its stores current; its passes wait until it leads
        self.tenants = Scheduler("tenants", gate(reconciler), workers=config.workers)
        self.holds = Scheduler("legalholds", gate(HoldReconciler(kube, stores)), workers=4)
        self.stores_scheduler = Scheduler("datastores", gate(self.datastores), workers=2)
        self.events.busy = self.tenants.busy
        self.datastores.touch_tenant = self.tenants.touch
        self.datastores.recheck = self.stores_scheduler.touch
        self.tasks = [
            asyncio.create_task(self.tenants.run(), name="tenure tenant scheduler"),
            asyncio.create_task(self.holds.run(), name="tenure hold scheduler"),
            asyncio.create_task(self.stores_scheduler.run(), name="tenure datastore scheduler"),
            asyncio.create_task(self._resync_forever(), name="tenure resync"),
        ]
        for hold in stores.holds:
            self.holds.touch(hold)
        for datastore in stores.datastores:
            self.stores_scheduler.touch(datastore)

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                for tenant in await resync(self.kube, self.stores):
                    self.tenants.touch(tenant)
            except Exception:
                logger.exception("periodic re-list failed; retrying in %.0fs", RESYNC_SECONDS)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.datastores.stop()
        await self.events.stop()
        await self.kube.close()


async def resync(kube: Kube, stores: Stores) -> set[str]:
    """List the small kinds into the stores; returns the tenants whose facts changed."""
    affected: set[str] = set()
    for kind in LISTED:
        custom = kind in (RETENTION_POLICY.plural, LEGAL_HOLD.plural, DATA_STORE.plural)
        listing = await (kube.list_custom(kind) if custom else kube.list_core(kind))
        affected |= stores.replace(kind, listing)
    return affected


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    settings.posting.enabled = False  # Tenure posts its own Events, from outside kopf's handlers
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    config: Config = memo.config
    kube = Kube(await connect(pool_size=config.workers))
    stores = Stores()
    try:
        await resync(kube, stores)
    except Exception as error:
        await kube.close()
        if status_of(error) in (429, 500, 503) or isinstance(error, (OSError, aiohttp.ClientError, TimeoutError)):
            # The API server is starting, overloaded or unreachable: try again shortly, without a traceback.
            reason = status_of(error) or type(error).__name__
            raise kopf.TemporaryError(f"the API server is not ready yet ({reason})", delay=2) from error
        raise
    memo.leadership = elect(config.namespace, config.leader_election)
    memo.runtime = Runtime(kube, stores, config, memo.leadership)
    start_http_server(config.metrics_port)
    logger.info(
        "tenure started: %d policies, %d legal holds, %d namespaces, %d volumes known; %d workers",
        len(stores.policies),
        len(stores.holds),
        len(stores.namespaces),
        len(stores.volumes),
        config.workers,
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    with contextlib.suppress(AttributeError):
        await memo.runtime.stop()
    with contextlib.suppress(AttributeError):
        await memo.leadership.release()  # after the passes in flight are cancelled


@kopf.on.event(API_GROUP, API_VERSION, TENANT.plural)
async def tenant_event(name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    if type == "DELETED":
        runtime.stores.drop_tenant(name)
        runtime.tenants.forget(name)
        runtime.datastores.forget(name)
    elif runtime.stores.put_tenant(body):
        runtime.tenants.touch(name)
    if type in ("ADDED", "DELETED"):
        for hold in runtime.stores.holds_of(name):
            runtime.holds.touch(hold)


@kopf.on.event(API_GROUP, API_VERSION, RETENTION_POLICY.plural)
async def policy_event(name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    affected = runtime.stores.drop_policy(name) if type == "DELETED" else runtime.stores.put_policy(body)
    for tenant in affected:
        runtime.tenants.touch(tenant)


@kopf.on.event(API_GROUP, API_VERSION, LEGAL_HOLD.plural)
async def hold_event(name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    if type == "DELETED":
        affected = runtime.stores.drop_hold(name)
        runtime.holds.forget(name)
    else:
        affected = runtime.stores.put_hold(body)
        runtime.holds.touch(name)
    for tenant in affected:  # named before or after the change: a removed name is released
        runtime.tenants.touch(tenant)


@kopf.on.event(API_GROUP, API_VERSION, DATA_STORE.plural)
async def datastore_event(name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    if type == "DELETED":
        runtime.stores.drop_datastore(name)
        runtime.stores_scheduler.forget(name)
    elif runtime.stores.put_datastore(body):
        runtime.stores_scheduler.touch(name)


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    affected = runtime.stores.drop_namespace(name) if type == "DELETED" else runtime.stores.put_namespace(body)
    for tenant in affected:
        runtime.tenants.touch(tenant)


@kopf.on.event("", "v1", "persistentvolumes")
async def volume_event(name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    affected = runtime.stores.drop_volume(name) if type == "DELETED" else runtime.stores.put_volume(body)
    for tenant in affected:
        runtime.tenants.touch(tenant)


def run(config: Config) -> None:
    """Run the operator in the foreground until SIGTERM or SIGINT."""
    kopf.run(
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
    )
