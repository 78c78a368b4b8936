"""kopf wiring for tenants, Tenure's own informers for the small kinds; both wake the schedulers.

Tenants are watched by kopf through one ``on.event`` handler, ``async`` so
it runs on the event loop rather than kopf's thread pool (no locking, no
thread hop per event); kopf then stores no handler progress or
last-handled-configuration on the objects, so Tenure's only writes are the
status it computes, its finalizer, the namespaces and volumes it manages, and
Events. Policies, holds, DataStores, namespaces, volumes and claims are listed at
startup, before kopf starts watching tenants (kopf runs startup handlers
first), so the first tenant is decided with every legal hold known; their
:class:`~tenure.runtime.informer.Informer` then watches from that listing's
resourceVersion, so nothing deleted after the listing is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import kopf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY, start_http_server

from tenure.api import API_GROUP, API_VERSION, DATA_STORE, LEGAL_HOLD, TENANT
from tenure.effects import receipts, seal
from tenure.effects.events import EventPoster
from tenure.effects.gate import Gate
from tenure.effects.kube import Kube, connect, status_of

from .config import Config
from .datastores import DataStores
from .holds import HoldReconciler
from .informer import Informer
from .leader import Leadership, elect
from .metrics_view import MetricsView
from .reconciler import Reconciler
from .scheduler import Scheduler
from .store import Changes, Stores

logger = logging.getLogger(__name__)


class Runtime:
    """Everything the handlers share, created once at startup."""

    def __init__(
        self,
        kube: Kube,
        stores: Stores,
        informers: list[Informer],
        config: Config,
        leadership: Leadership,
        signer: Ed25519PrivateKey,
    ) -> None:
        self.kube = kube
        self.stores = stores
        self.events = EventPoster(kube)
        self.datastores = DataStores(kube, stores, config.namespace)
        effects = Gate(config.dry_run, lambda: {n for n, r in stores.datastores.items() if r.spec and r.spec.dry_run})
        self.datastores.gate = self.datastores.purges.gate = effects
        reconciler = Reconciler(
            kube,
            stores,
            self.datastores,
            self.events,
            config.protected,
            stores.seal_key,
            receipts.Receipts(kube, signer, config.namespace),
            operator_namespace=config.namespace,
            access_sweep=config.access_sweep_seconds,
            access_pod_grace=config.access_pod_grace_seconds,
            gate=effects,
        )
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
        ]
        for informer in informers:
            informer.changed = self.changed
            self.tasks.append(asyncio.create_task(informer.run(), name=f"tenure informer {informer.plural}"))
        for hold in stores.holds:
            self.holds.touch(hold)
        for datastore in stores.datastores:
            self.stores_scheduler.touch(datastore)
        self.view = MetricsView(stores, self.datastores.purges_of, per_tenant=config.per_tenant_metrics)
        REGISTRY.register(self.view)

    def changed(self, plural: str, changes: Changes) -> None:
        """An informer stored or dropped objects: wake the tenants they concern, and the objects' own scheduler."""
        for tenant in changes.tenants:
            self.tenants.touch(tenant)
        own = {LEGAL_HOLD.plural: self.holds, DATA_STORE.plural: self.stores_scheduler}.get(plural)
        if own is not None:
            for name in changes.names:
                own.touch(name)  # a pass on a dropped object forgets it

    async def stop(self) -> None:
        REGISTRY.unregister(self.view)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.datastores.stop()
        await self.events.stop()
        await self.kube.close()


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    settings.posting.enabled = False  # Tenure posts its own Events, from outside kopf's handlers
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    config: Config = memo.config
    kube = Kube(await connect(pool_size=config.workers))
    try:
        stores = Stores(await seal.load_key(kube, config.namespace))
        signer = await receipts.load_signer(kube, config.namespace)
        informers = [Informer(kube, plural, store, config.relist_seconds) for plural, store in stores.kinds.items()]
        for informer in informers:
            await informer.list()
    except Exception as error:
        await kube.close()
        if status_of(error) in (429, 500, 503) or isinstance(error, (OSError, aiohttp.ClientError, TimeoutError)):
            # The API server is starting, overloaded or unreachable: try again shortly, without a traceback.
            reason = status_of(error) or type(error).__name__
            raise kopf.TemporaryError(f"the API server is not ready yet ({reason})", delay=2) from error
        raise
    memo.leadership = elect(config.namespace, config.leader_election)
    memo.runtime = Runtime(kube, stores, informers, config, memo.leadership, signer)
    start_http_server(config.metrics_port)
    logger.info(
        "tenure started: %d policies, %d legal holds, %d namespaces, %d volumes, %d claims known; %d workers%s",
        len(stores.policies),
        len(stores.holds),
        len(stores.namespaces),
        len(stores.volumes),
        len(stores.claims),
        config.workers,
        "; DRY RUN: nothing is deleted, scaled, blocked or redacted" if config.dry_run else "",
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
        runtime.stores.tenants.drop(name)
        runtime.tenants.touch(name)  # the pass on a missing tenant forgets its phase gauge, deadline and purges
    elif runtime.stores.tenants.put(body):
        runtime.tenants.touch(name)
    if type in ("ADDED", "DELETED"):
        for hold in runtime.stores.holds_of(name):
            runtime.holds.touch(hold)


def run(config: Config) -> None:
    """Run the operator in the foreground until SIGTERM or SIGINT."""
    kopf.run(
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
    )
