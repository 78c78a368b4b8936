"""LegalHold status: say which held tenants do not exist.

A hold on a tenant that does not exist (a typo, or a tenant created later)
still applies to that name; the TenantsFound condition makes the gap visible.
A name missing from the store is confirmed with the API server before it is
reported, so a restart that has not yet seen every tenant writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tenure import metrics
from tenure.api import LEGAL_HOLD, TENANT, LegalHoldStatus
from tenure.effects import status
from tenure.effects.kube import Kube, status_of
from tenure.lifecycle.conditions import condition, listing

from .store import Stores


class HoldReconciler:
    def __init__(self, kube: Kube, stores: Stores) -> None:
        self.kube = kube
        self.stores = stores

    async def _exists(self, tenant: str) -> bool:
        if tenant in self.stores.tenants:
            return True
        try:
            await self.kube.get_custom(TENANT.plural, tenant)
        except Exception as error:
            if status_of(error) == 404:
                return False
            raise
        return True

    async def __call__(self, name: str) -> float | None:
        hold = self.stores.holds.get(name)
        if hold is None:
            return None
        old = LegalHoldStatus.model_validate(hold.status)
        missing = sorted([t for t in hold.tenants if not await self._exists(t)])
        if missing:
            found = condition(
                old.conditions,
                "TenantsFound",
                "False",
                "TenantNotFound",
                f"No Tenant named {listing(missing)} exists; the hold applies to that name if one is created.",
                datetime.now(UTC),
                hold.generation,
            )
        else:
            found = condition(
                old.conditions,
                "TenantsFound",
                "True",
                "AllFound",
                "Every held tenant exists.",
                datetime.now(UTC),
                hold.generation,
            )
        new = LegalHoldStatus(observed_generation=hold.generation, conditions=(found,))
        try:
            written = await status.write_status(
                self.kube, LEGAL_HOLD.plural, name, hold.resource_version, hold.status, new.to_api()
            )
        except Exception as error:
            if status_of(error) in (404, 409):
                return None  # gone, or changed: its watch event brings it back
            raise
        if written is not None:
            metrics.API_WRITES.labels("status").inc()
            self.stores.holds.put(written)
        return None
