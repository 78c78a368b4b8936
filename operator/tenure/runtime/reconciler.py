"""One tenant, one pass: read the caches, decide, write the difference.

The pass is level-triggered and idempotent: run twice on the same inputs it
writes nothing the second time. Any failure raises, and the scheduler
retries with backoff; nothing here blocks the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import kopf

from tenure import metrics
from tenure.api import TENANT
from tenure.effects import events, status
from tenure.effects.kube import Kube, status_of
from tenure.lifecycle import decide

from .cache import PolicyRecord, TenantRecord, only

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        tenants: kopf.Index[str, TenantRecord],
        policies: kopf.Index[str, PolicyRecord],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.kube = kube
        self.tenants = tenants
        self.policies = policies
        self.clock = clock
        self._phases: dict[str, str] = {}

    async def __call__(self, name: str) -> float | None:
        started = time.perf_counter()
        try:
            wake = await self._reconcile(name)
        except Exception:
            metrics.RECONCILES.labels("error").inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        metrics.RECONCILES.labels("ok").inc()
        return wake

    async def _reconcile(self, name: str) -> float | None:
        record: TenantRecord | None = only(self.tenants, name)
        if record is None:
            self._count(name, None)
            return None
        if record.view is None:
            logger.error("tenant %s cannot be parsed and is left untouched: %s", name, record.error)
            return None
        tenant = record.view
        policy_record: PolicyRecord | None = only(self.policies, tenant.spec.retention_policy)
        policy = policy_record.spec if policy_record else None

        decision = decide(tenant, policy, self.clock())
        new_status = decision.status.to_api()
        try:
            written = await status.write_status(
                self.kube, TENANT.plural, name, record.resource_version, record.raw_status, new_status
            )
        except Exception as error:
            if status_of(error) == 409:
                logger.debug("tenant %s changed while being decided; deciding again on the new version", name)
                return None  # the watch event of the newer version touches it again
            if status_of(error) == 404:
                return None
            raise
        if written is not None:
            metrics.API_WRITES.labels("status").inc()
        for event in decision.events:
            await events.post(self.kube, TENANT.kind, name, record.uid, event.reason, event.message, event.warning)
        self._count(name, decision.status.phase)
        return decision.wake_at.timestamp() if decision.wake_at else None

    def _count(self, name: str, phase: str | None) -> None:
        old = self._phases.pop(name, None)
        if old is not None:
            metrics.TENANTS.labels(old).dec()
        if phase is not None:
            self._phases[name] = phase
            metrics.TENANTS.labels(phase).inc()
