"""Legal holds, read fresh from the API server before anything is deleted.

The operator's cache of holds comes from a watch and may lag by a moment.
A hold created in that moment must still stop the deletion, so every pass
that is about to delete asks the API server directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tenure.api import LEGAL_HOLD

from .kube import Kube


def by_tenant(holds: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Tenant name → the names of the LegalHolds that list it."""
    held: dict[str, list[str]] = {}
    for hold in holds:
        for tenant in (hold.get("spec") or {}).get("tenants", []):
            held.setdefault(tenant, []).append(hold["metadata"]["name"])
    return held


async def held(kube: Kube) -> dict[str, list[str]]:
    """Every held tenant and its holds, read from the API server now."""
    return by_tenant(await kube.list_custom(LEGAL_HOLD.plural))
