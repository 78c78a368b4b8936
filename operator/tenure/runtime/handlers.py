"""kopf wiring: indexes that cache the cluster, events that wake the scheduler.

Only ``on.event`` and ``index`` handlers are used: kopf then stores no
handler progress or last-handled-configuration on the objects, so Tenure's
only writes are the status it computes, its finalizer and Events.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from tenure.api import API_GROUP, API_VERSION, RETENTION_POLICY, TENANT
from tenure.effects.kube import Kube, connect

from .cache import PolicyRecord, TenantRecord, policy_record, tenant_record
from .config import Config
from .reconciler import Reconciler
from .scheduler import Scheduler

logger = logging.getLogger(__name__)


class Runtime:
    """Everything the handlers share, created once at startup."""

    def __init__(self, kube: Kube, scheduler: Scheduler) -> None:
        self.kube = kube
        self.scheduler = scheduler
        self.task = asyncio.create_task(scheduler.run(), name="tenure scheduler")

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.kube.close()


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **indexes: Any) -> None:
    settings.peering.standalone = True
    settings.posting.enabled = False  # Tenure posts its own Events, from outside kopf's handlers
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    config: Config = memo.config
    start_http_server(config.metrics_port)
    kube = Kube(await connect(pool_size=config.workers))
    reconciler = Reconciler(kube, indexes["tenants"], indexes["policies"])
    memo.runtime = Runtime(kube, Scheduler(reconciler, workers=config.workers))
    logger.info("tenure started: %d workers, metrics on :%d", config.workers, config.metrics_port)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.runtime.stop()


@kopf.index(API_GROUP, API_VERSION, TENANT.plural)
def tenants(body: kopf.Body, name: str, **_: Any) -> dict[str, TenantRecord]:
    return {name: tenant_record(body)}


@kopf.index(API_GROUP, API_VERSION, TENANT.plural)
def tenants_by_policy(spec: kopf.Spec, name: str, **_: Any) -> dict[str, str]:
    return {spec.get("retentionPolicy", "default"): name}


@kopf.index(API_GROUP, API_VERSION, RETENTION_POLICY.plural)
def policies(spec: kopf.Spec, name: str, **_: Any) -> dict[str, PolicyRecord]:
    return {name: policy_record(spec)}


@kopf.on.event(API_GROUP, API_VERSION, TENANT.plural)
def tenant_event(name: str, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        memo.runtime.scheduler.forget(name)
    memo.runtime.scheduler.touch(name)


@kopf.on.event(API_GROUP, API_VERSION, RETENTION_POLICY.plural)
def policy_event(name: str, memo: kopf.Memo, **indexes: Any) -> None:
    for tenant in indexes["tenants_by_policy"].get(name, ()):
        memo.runtime.scheduler.touch(tenant)


def run(config: Config) -> None:
    """Run the operator in the foreground until SIGTERM or SIGINT."""
    kopf.run(
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
    )
