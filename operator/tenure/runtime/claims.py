"""Every Tenant's claim on DataStores, as purges and sweeps need it: one listing shared, the watch laid over it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tenure.api import TENANT, DataStoreSpec
from tenure.datastores import operations, postgres
from tenure.datastores.targets import Keys
from tenure.effects.kube import Kube, status_of
from tenure.lifecycle.conditions import listing

from .connections import Unavailable
from .store import Claim, Stores

LISTING_SHARED = 5.0
"""Seconds a listing of every Tenant's claim is shared by purges and sweeps starting meanwhile (the watch adds
what is newer)."""


class Claims:
    def __init__(self, kube: Kube, stores: Stores) -> None:
        self.kube, self.stores = kube, stores
        self._listing: asyncio.Future[list[Claim]] | None = None
        self._listed_at = 0.0

    async def all(self) -> list[Claim]:
        """Every Tenant's claim: the watch's, over a listing from the API server.

        The listing covers the start, when the watch may not have delivered every tenant yet; the watch covers
        tenants created since the listing.
        """
        return self.overlay(await self.listed())

    def overlay(self, listed: list[Claim]) -> list[Claim]:
        claims = {claim.name: claim for claim in listed}
        claims.update((name, record.claim) for name, record in list(self.stores.tenants.items()))
        return list(claims.values())

    async def listed(self) -> list[Claim]:
        """Every Tenant's claim as the API server lists it now.

        Listings started within ``LISTING_SHARED`` seconds are shared, so a thousand purges starting together
        list the tenants once, not a thousand times.
        """
        if self._listing is None or time.monotonic() - self._listed_at > LISTING_SHARED:
            self._listed_at = time.monotonic()
            self._listing = asyncio.ensure_future(self._list())
        shared = self._listing
        try:
            return await asyncio.shield(shared)
        except Exception:
            if self._listing is shared:
                self._listing = None  # a failed listing is not shared
            raise

    def stop(self) -> None:
        if self._listing is not None:
            self._listing.cancel()

    async def _list(self) -> list[Claim]:
        try:
            bodies = await self.kube.list_custom(TENANT.plural)
        except Exception as error:
            raise Unavailable(f"cannot list Tenants ({status_of(error) or type(error).__name__})") from error
        return [Claim.from_body(body, self.stores.seal_key) for body in bodies]


def keys_of(claim: Claim, stores: str | Sequence[str]) -> tuple[str, ...]:
    """A tenant's keys in every one of the stores (those reaching one database), each once, in order."""
    names = (stores,) if isinstance(stores, str) else stores
    return tuple(dict.fromkeys(key for store in names for key in claim.keys_in(store)))


def claims(tenants: Iterable[Claim], stores: str | Sequence[str], but: str | None = None) -> dict[str, tuple[str, ...]]:
    """Each tenant's keys in the stores, for every tenant not yet purged (but one).

    ``stores`` are every DataStore reaching the same database (:mod:`.databases`): a key a tenant claims through
    any of them is its claim in all. Keys no database row can hold (a NUL) are left out: they match nothing, and
    binding one would fail every statement of every tenant (:func:`unusable` names them).
    """
    found = {}
    for claim in list(tenants):
        if claim.phase != "Purged" and claim.name != but:
            found[claim.name] = tuple(key for key in keys_of(claim, stores) if postgres.bindable(key))
    return found


def unusable(tenants: Iterable[Claim], stores: str | Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Per tenant not yet purged: its keys in the stores that no database row can hold, left out of every
    statement (reported on the tenant, counted on the store)."""
    found = {}
    for claim in list(tenants):
        if claim.phase != "Purged" and (bad := [key for key in keys_of(claim, stores) if not postgres.bindable(key)]):
            found[claim.name] = tuple(bad)
    return found


async def shared_with(conn: Any, spec: DataStoreSpec, keys: Keys, others: Mapping[str, tuple[str, ...]]) -> str:
    """Other tenants claiming rows these keys cover, and the shared keys, for a message; empty when none."""
    shared = await operations.shared(conn, spec, keys, others)
    named = listing(f"{other} ({', '.join(values)})" for other, values in sorted(shared.items()))
    return f"{named}; correct spec.dataKeys (this tenant's counts until its keys are resolved)" if shared else ""
