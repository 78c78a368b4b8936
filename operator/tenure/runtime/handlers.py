"""kopf wiring: indexes that cache the cluster, events that wake the schedulers.

Only ``on.event`` and ``index`` handlers are used: kopf then stores no
handler progress or last-handled-configuration on the objects, so Tenure's
only writes are the status it computes, its finalizer, the namespaces and
volumes it manages, and Events. kopf fills every index from its initial
listing before any ``on.event`` handler runs, so no tenant is decided before
all legal holds are known.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from tenure.api import API_GROUP, API_VERSION, LEGAL_HOLD, RETENTION_POLICY, TENANT, TENANT_LABEL
from tenure.effects.kube import Kube, connect
from tenure.lifecycle import PROTECTED_NAMESPACES, NamespaceFact, VolumeFact

from .cache import (
    Caches,
    PolicyRecord,
    TenantRecord,
    namespace_fact,
    policy_record,
    tenant_record,
    volume_fact,
)
from .config import Config
from .holds import HoldReconciler
from .reconciler import Reconciler
from .scheduler import Scheduler

logger = logging.getLogger(__name__)


class Runtime:
    """Everything the handlers share, created once at startup."""

    def __init__(self, kube: Kube, tenants: Scheduler, holds: Scheduler) -> None:
        self.kube = kube
        self.tenants = tenants
        self.holds = holds
        self.tasks = [
            asyncio.create_task(tenants.run(), name="tenure tenant scheduler"),
            asyncio.create_task(holds.run(), name="tenure hold scheduler"),
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
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
    caches = Caches(indexes)
    protected = PROTECTED_NAMESPACES | {config.namespace}
    tenants = Scheduler(Reconciler(kube, caches, protected), workers=config.workers)
    holds = Scheduler(HoldReconciler(kube, indexes["legal_holds"], caches), workers=4)
    memo.runtime = Runtime(kube, tenants, holds)
    logger.info("tenure started: %d workers, metrics on :%d", config.workers, config.metrics_port)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.runtime.stop()


# Indexes: the operator's memory of the cluster.


@kopf.index(API_GROUP, API_VERSION, TENANT.plural)
def tenants(body: kopf.Body, name: str, **_: Any) -> dict[str, TenantRecord]:
    return {name: tenant_record(body)}


@kopf.index(API_GROUP, API_VERSION, TENANT.plural)
def tenants_by_policy(spec: kopf.Spec, name: str, **_: Any) -> dict[str, str]:
    return {spec.get("retentionPolicy", "default"): name}


@kopf.index(API_GROUP, API_VERSION, TENANT.plural)
def tenants_by_namespace(spec: kopf.Spec, status: kopf.Status, name: str, **_: Any) -> dict[str, str]:
    recorded = [n["name"] for n in (status.get("purge") or {}).get("namespaces", [])]
    return dict.fromkeys([*spec.get("namespaces", []), *recorded], name)


@kopf.index(API_GROUP, API_VERSION, RETENTION_POLICY.plural)
def policies(spec: kopf.Spec, name: str, **_: Any) -> dict[str, PolicyRecord]:
    return {name: policy_record(spec)}


@kopf.index(API_GROUP, API_VERSION, LEGAL_HOLD.plural)
def holds_by_tenant(spec: kopf.Spec, name: str, **_: Any) -> dict[str, str]:
    return dict.fromkeys(spec.get("tenants", []), name)


@kopf.index(API_GROUP, API_VERSION, LEGAL_HOLD.plural)
def legal_holds(body: kopf.Body, name: str, **_: Any) -> dict[str, dict[str, Any]]:
    meta = body.get("metadata", {})
    return {
        name: {
            "tenants": list((body.get("spec") or {}).get("tenants", [])),
            "generation": meta.get("generation", 0),
            "resourceVersion": meta.get("resourceVersion", ""),
            "status": dict(body.get("status") or {}),
        }
    }


@kopf.index("", "v1", "namespaces")
def namespaces(body: kopf.Body, name: str, **_: Any) -> dict[str, NamespaceFact]:
    return {name: namespace_fact(body)}


@kopf.index("", "v1", "persistentvolumes")
def volumes(body: kopf.Body, name: str, **_: Any) -> dict[str, VolumeFact]:
    return {name: volume_fact(body)}


@kopf.index("", "v1", "persistentvolumes")
def volumes_by_namespace(body: kopf.Body, **_: Any) -> dict[str, VolumeFact]:
    fact = volume_fact(body)
    return {fact.claim_namespace: fact} if fact.claim_namespace else {}


# Events: what changed, and which tenants must be decided again.


@kopf.on.event(API_GROUP, API_VERSION, TENANT.plural)
def tenant_event(name: str, type: str | None, memo: kopf.Memo, **indexes: Any) -> None:
    runtime: Runtime = memo.runtime
    if type == "DELETED":
        runtime.tenants.forget(name)
    runtime.tenants.touch(name)
    if type in (None, "ADDED", "DELETED"):
        for hold in indexes["holds_by_tenant"].get(name, ()):
            runtime.holds.touch(hold)


@kopf.on.event(API_GROUP, API_VERSION, RETENTION_POLICY.plural)
def policy_event(name: str, memo: kopf.Memo, **indexes: Any) -> None:
    for tenant in indexes["tenants_by_policy"].get(name, ()):
        memo.runtime.tenants.touch(tenant)


@kopf.on.event(API_GROUP, API_VERSION, LEGAL_HOLD.plural)
def hold_event(name: str, type: str | None, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    # Tenants named before and after this change are decided again; the per-object
    # memo remembers the previous list, so removing a tenant from a hold releases it.
    runtime: Runtime = memo.runtime
    previous: set[str] = getattr(memo, "held", set())
    current = set() if type == "DELETED" else set(spec.get("tenants", []))
    for tenant in previous | current:
        runtime.tenants.touch(tenant)
    memo.held = current
    if type == "DELETED":
        runtime.holds.forget(name)
    else:
        runtime.holds.touch(name)


@kopf.on.event("", "v1", "namespaces")
def namespace_event(name: str, labels: kopf.Labels, memo: kopf.Memo, **indexes: Any) -> None:
    runtime: Runtime = memo.runtime
    for tenant in {*indexes["tenants_by_namespace"].get(name, ()), labels.get(TENANT_LABEL)} - {None}:
        runtime.tenants.touch(tenant)


@kopf.on.event("", "v1", "persistentvolumes")
def volume_event(body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:
    claim_namespace = (body.get("spec", {}).get("claimRef") or {}).get("namespace")
    if claim_namespace:
        for tenant in indexes["tenants_by_namespace"].get(claim_namespace, ()):
            memo.runtime.tenants.touch(tenant)


def run(config: Config) -> None:
    """Run the operator in the foreground until SIGTERM or SIGINT."""
    kopf.run(
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
    )
