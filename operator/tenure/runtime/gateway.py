"""Inaccessible tenants blocked at the LiteLLM gateway, on each check of a DataStore with the litellm preset.

Each check takes every tenant in the cache that is not purged, with its keys
in the store, and in one pass over the store (:func:`tenure.datastores.access.apply`)
unblocks the rows Tenure blocked that must be open again (their tenant is
Active again, or an Active tenant claims them) and blocks every row whose
claimants are all inaccessible, so a key created meanwhile is blocked on the
next check. The reconciler asks for a check as soon as a tenant's phase changes.

What a check leaves for a person is logged whenever it differs from the
previous check of the store: rows an inaccessible tenant shares with one that
is not (left unblocked, naming both), and blocked rows Tenure will not unblock
(their record does not verify, or it is older than its tenant's last closing).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from tenure.api import DataStoreSpec
from tenure.datastores import access, postgres
from tenure.effects.errors import ApiError
from tenure.lifecycle import trust
from tenure.lifecycle.access import gateway_blocked
from tenure.lifecycle.datastores import GatewayCheck

from .claims import Claims
from .store import Stores, TenantRecord, Unreadable

logger = logging.getLogger(__name__)


def tenant(record: TenantRecord, store: str, key: bytes) -> access.Tenant | None:
    """The tenant as the gateway sees it; None once Purged (it claims nothing)."""
    keys = record.claim.keys_in(store)
    try:
        view = record.view()
    except Unreadable:
        return None if record.claim.phase == "Purged" else access.Tenant(record.name, record.uid, keys, "unknown")
    trusted = trust.verifies(key, record.name, record.uid, view.status)
    block = gateway_blocked(view, trusted)
    if block is None:
        return None
    closed_at = view.status.access_closed_at if trusted else None
    return access.Tenant(record.name, record.uid, keys, "inaccessible" if block else "accessible", closed_at)


class Gateway:
    def __init__(self, stores: Stores, claims: Claims) -> None:
        self.stores = stores
        self.claims = claims
        self.filled = False
        """The watch has delivered every Tenant the API server listed once (after that, new ones arrive by watch)."""
        self.reported: dict[str, tuple[Any, ...]] = {}
        """Per DataStore: what the last check left for a person (logged when it changes)."""

    async def _unseen(self, store: str) -> list[access.Tenant]:
        """Tenants the API server lists that the watch has not delivered yet (after a start): each counts as
        ``unknown``, so a row it shares with an inaccessible tenant is not blocked before its state is known."""
        if self.filled:
            return []
        listed = await self.claims.listed()
        unseen = [claim for claim in listed if claim.name not in self.stores.tenants and claim.phase != "Purged"]
        self.filled = not unseen
        return [access.Tenant(claim.name, "", claim.keys_in(store), "unknown") for claim in unseen]

    async def check(
        self, conn: psycopg.AsyncConnection[Any], store: str, spec: DataStoreSpec, blocking: bool = True
    ) -> GatewayCheck | None:
        """Unblock what must be open again and, unless ``blocking`` is off (a dry run), block what must be closed;
        what it did, for the DataStore's GatewayBlocked condition (None: not a litellm store)."""
        if spec.postgres.preset != "litellm":
            return None
        key = self.stores.seal_key
        tenants = [t for record in list(self.stores.tenants.values()) if (t := tenant(record, store, key))]
        try:
            tenants += await self._unseen(store)
        except ApiError as error:
            logger.warning("gateway access at DataStore %s waits: cannot list the tenants (%s)", store, error)
            return GatewayCheck(error=f"cannot list the tenants: {error}", blocking=blocking)
        try:
            unblocked, blocked = await access.apply(conn, key, spec, tenants, blocking)
        except psycopg.Error as error:
            logger.warning("gateway access at DataStore %s: %s", store, postgres.describe_error(error))
            return GatewayCheck(error=postgres.describe_error(error), blocking=blocking)
        self._report(store, unblocked, blocked)
        return GatewayCheck(
            blocking=blocking,
            inaccessible=sum(1 for t in tenants if t.access == "inaccessible"),
            shared=sum(blocked.shared.values()),
            left=len(unblocked.untrusted) + len(unblocked.stale),
        )

    def _report(self, store: str, unblocked: access.Unblocked, blocked: access.Blocked) -> None:
        if unblocked.rows:
            logger.info("DataStore %s: unblocked at the gateway %s", store, unblocked.rows)
        if blocked.rows:
            logger.info("DataStore %s: blocked at the gateway %s", store, blocked.rows)
        left = (sorted(blocked.shared.items()), unblocked.untrusted, unblocked.stale)
        if left == self.reported.get(store, ([], [], [])):
            return
        self.reported[store] = left
        for (closed, other), rows in sorted(blocked.shared.items()):
            logger.warning(
                "DataStore %s: %d rows of inaccessible tenant %s left unblocked at the gateway: tenant %s, which is "
                "not inaccessible, claims them too",
                store,
                rows,
                closed,
                other,
            )
        if unblocked.untrusted:
            logger.warning(
                "DataStore %s: left blocked for a person, their record does not verify: %s",
                store,
                ", ".join(unblocked.untrusted),
            )
        if unblocked.stale:
            logger.warning(
                "DataStore %s: left blocked for a person, their record is older than its tenant's last closing (put "
                "back from an earlier suspension?): %s",
                store,
                ", ".join(unblocked.stale),
            )
