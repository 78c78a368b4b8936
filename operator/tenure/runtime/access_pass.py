"""Closing or reopening one namespace of one tenant, as the reconciler does it: closure (:mod:`tenure.effects.access`)
and what runs (:mod:`tenure.effects.workloads`) in the order that keeps it safe, told in Events.

A failure is told and retried on the next sweep, never blocking the rest (a purge's deletions above all). Pods
deleted for inaccessibility have a bounded grace period; when one may outlive it, the moment to look again is kept
(:attr:`AccessPass.pods_due`) so the reconciler wakes the tenant then, not a whole sweep later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tenure import metrics
from tenure.api import TENANT
from tenure.effects import access, workloads
from tenure.effects.errors import ApiError
from tenure.effects.events import EventPoster
from tenure.effects.kube import Kube
from tenure.lifecycle import CloseAccess, OpenAccess

logger = logging.getLogger(__name__)

POD_MARGIN = 1.0
"""Seconds after a deleted pod's grace period ends before looking whether it is still there."""


@dataclass
class AccessPass:
    kube: Kube
    events: EventPoster
    seal_key: bytes
    operator_namespace: str
    pod_grace: int
    """The longest grace period a pod deleted for inaccessibility gets; one still there past it: grace 0."""
    clock: Callable[[], datetime]
    pods_due: dict[str, float] = field(default_factory=dict)
    """Per tenant, when a pod deleted in its last pass may have outlived its grace period (epoch seconds)."""

    async def __call__(self, tenant: str, tenant_uid: str, action: CloseAccess | OpenAccess) -> bool:
        """Close or restore one namespace; False when a step failed (told in an ``AccessFailed`` Warning)."""
        closing = isinstance(action, CloseAccess)
        target = access.Target(tenant, tenant_uid, action.namespace, action.uid)
        verb = "closing" if closing else "restoring"
        try:
            if closing:
                report = await access.close(self.kube, target, self.seal_key, self.operator_namespace)
                stopped = await workloads.stop(self.kube, target, self.seal_key, self.pod_grace, self.clock())
                report.merge(stopped.report)
                if stopped.wake_at is not None:
                    due = stopped.wake_at.timestamp() + POD_MARGIN
                    self.pods_due[tenant] = min(due, self.pods_due.get(tenant, due))
            else:
                report = await workloads.restore(self.kube, target, self.seal_key)
                if not report.failed:  # the quota goes last: only once everything stopped is back
                    report.merge(await access.reopen(self.kube, target, self.seal_key, self.operator_namespace))
        except ApiError as error:
            self._warn(
                tenant, tenant_uid, "AccessFailed", f"{verb} access to namespace {action.namespace} failed: {error}"
            )
            return False
        except Exception as error:  # one bad object must not stop the tenant's other namespaces nor its purge
            logger.exception("tenant %s: %s access to namespace %s failed", tenant, verb, action.namespace)
            self._warn(
                tenant,
                tenant_uid,
                "AccessFailed",
                f"{verb} access to namespace {action.namespace} failed: {type(error).__name__}: {error}",
            )
            return False
        metrics.API_WRITES.labels("access").inc(len(report.changed))
        if report.failed:
            failures = "; ".join(report.failed)
            self._warn(
                tenant, tenant_uid, "AccessFailed", f"{verb} access to namespace {action.namespace} failed: {failures}"
            )
        if report.forged or report.tampered:
            reason = "AccessRecordUntrusted" if report.forged else "AccessTampered"
            self._warn(tenant, tenant_uid, reason, report.message())
        elif report.changed:
            reason = "AccessClosed" if closing else "AccessRestored"
            self.events.post(TENANT.kind, tenant, tenant_uid, reason, report.message())
        return not report.failed

    def _warn(self, tenant: str, tenant_uid: str, reason: str, message: str) -> None:
        self.events.post(TENANT.kind, tenant, tenant_uid, reason, message, warning=True)
