"""LegalHold status: say which held tenants do not exist.

A hold on a tenant that does not exist (a typo, or a tenant created later)
still applies to that name; the TenantsFound condition makes the gap visible.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from tenure import metrics
from tenure.api import LEGAL_HOLD, LegalHoldStatus
from tenure.effects import status
from tenure.effects.kube import Kube, status_of
from tenure.lifecycle.conditions import condition

from .cache import Caches, only


class HoldReconciler:
    def __init__(self, kube: Kube, holds: kopf.Index[str, dict[str, Any]], caches: Caches) -> None:
        self.kube = kube
        self.holds = holds
        self.caches = caches

    async def __call__(self, name: str) -> float | None:
        hold: dict[str, Any] | None = only(self.holds, name)
        if hold is None:
            return None
        old = LegalHoldStatus.model_validate(hold["status"])
        missing = [t for t in hold["tenants"] if self.caches.tenant(t) is None]
        if missing:
            found = condition(
                old.conditions,
                "TenantsFound",
                "False",
                "TenantNotFound",
                f"No Tenant named {', '.join(missing)} exists; the hold applies to that name if one is created.",
                datetime.now(UTC),
                hold["generation"],
            )
        else:
            found = condition(
                old.conditions,
                "TenantsFound",
                "True",
                "AllFound",
                "Every held tenant exists.",
                datetime.now(UTC),
                hold["generation"],
            )
        new = LegalHoldStatus(observed_generation=hold["generation"], conditions=(found,))
        try:
            written = await status.write_status(
                self.kube, LEGAL_HOLD.plural, name, hold["resourceVersion"], hold["status"], new.to_api()
            )
        except Exception as error:
            if status_of(error) in (404, 409):
                return None
            raise
        if written is not None:
            metrics.API_WRITES.labels("status").inc()
        return None
