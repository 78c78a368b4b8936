"""Legal holds, read fresh from the API server before anything is deleted.

The operator's cache of holds comes from a watch and may lag by a moment.
A hold created in that moment must still stop the deletion, so every pass
that is about to delete asks the API server directly.
"""

from __future__ import annotations

from tenure.api import LEGAL_HOLD

from .kube import Kube


async def held_tenants(kube: Kube) -> set[str]:
    """Every tenant some LegalHold lists, read from the API server now."""
    return {
        tenant
        for hold in await kube.list_custom(LEGAL_HOLD.plural)
        for tenant in (hold.get("spec") or {}).get("tenants", [])
    }


async def holding(kube: Kube, tenant: str) -> list[str]:
    """Names of the LegalHolds that list the tenant, read from the API server now."""
    return [
        hold["metadata"]["name"]
        for hold in await kube.list_custom(LEGAL_HOLD.plural)
        if tenant in (hold.get("spec") or {}).get("tenants", [])
    ]
