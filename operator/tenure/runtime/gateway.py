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
(their record does not verify, or it is older than its tenant's last closing,
or it was blocked for a tenant that is still inaccessible while another now
claims it: a key moved to another team, posted as an Event on both tenants).

Every store reaching the same database shares one claim set (``sharing``, from
:mod:`.databases`): a tenant's keys in any of them are its claim in each, so
two stores on one database never block and unblock a row in turn.

One tenant's bad claim never stops the check for the others: keys no row can
hold (a NUL, stored before the CRD refused it) are left out — they match
nothing — and a tenant whose keys cannot be resolved for any other reason is
checked without, the rest going on. Both are posted as an Event on that tenant
naming the keys, and counted in the store's GatewayBlocked condition; an
inaccessible tenant whose keys could not be resolved makes it ``False``
(``Partial``): its blocking is not verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import psycopg

from tenure.api import TENANT, DataStoreSpec
from tenure.datastores import access, operations, postgres
from tenure.effects.errors import ApiError
from tenure.lifecycle import trust
from tenure.lifecycle.access import gateway_blocked
from tenure.lifecycle.datastores import GatewayCheck

from .claims import Claims, keys_of, unusable
from .store import Stores, TenantRecord, Unreadable

logger = logging.getLogger(__name__)

Post = Callable[[str, str, str, str, str, bool], None]
"""Posts an Event: (kind, name, uid, reason, message, warning)."""


def tenant(record: TenantRecord, store: str | Sequence[str], key: bytes) -> access.Tenant | None:
    """The tenant as the gateway sees it (its keys in every store reaching the database, but those no row can
    hold); None once Purged (it claims nothing)."""
    keys = tuple(value for value in keys_of(record.claim, store) if postgres.bindable(value))
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
        self.post: Post = lambda kind, name, uid, reason, message, warning: None
        """Posts an Event on a tenant (set by the runtime)."""
        self.announced: dict[str, tuple[Any, ...]] = {}
        """Per DataStore: the bad claims and moved keys last posted (posted again only when they change)."""
        self.unverified: dict[str, dict[str, str]] = {}
        self.touch_tenant: Callable[[str], None] = lambda name: None
        """Reconciles a tenant soon (set by the wiring)."""
        """Per DataStore, from its last check: inaccessible tenants whose blocking could not be verified, and why."""

    def unverified_of(self, tenant: str) -> dict[str, str]:
        """Per DataStore: why the tenant's blocking there could not be verified at its last check (none: verified or
        nothing to block), for the tenant's own status (it must not be reported as kept out)."""
        return {store: found[tenant] for store, found in list(self.unverified.items()) if tenant in found}

    async def _unseen(self, store: str | Sequence[str]) -> list[access.Tenant]:
        """Tenants the API server lists that the watch has not delivered yet (after a start): each counts as
        ``unknown``, so a row it shares with an inaccessible tenant is not blocked before its state is known."""
        if self.filled:
            return []
        listed = await self.claims.listed()
        unseen = [claim for claim in listed if claim.name not in self.stores.tenants and claim.phase != "Purged"]
        self.filled = not unseen
        return [
            access.Tenant(claim.name, "", tuple(k for k in keys_of(claim, store) if postgres.bindable(k)), "unknown")
            for claim in unseen
        ]

    async def check(
        self,
        conn: psycopg.AsyncConnection[Any],
        store: str,
        spec: DataStoreSpec,
        blocking: bool = True,
        sharing: Sequence[str] = (),
    ) -> GatewayCheck | None:
        """Unblock what must be open again and, unless ``blocking`` is off (a dry run), block what must be closed;
        what it did, for the DataStore's GatewayBlocked condition (None: not a litellm store).

        ``sharing``: every store reaching the same database (``store`` alone when empty).
        """
        if spec.postgres.preset != "litellm":
            return None
        names = tuple(sharing) or (store,)
        key = self.stores.seal_key
        tenants = [t for record in list(self.stores.tenants.values()) if (t := tenant(record, names, key))]
        try:
            tenants += await self._unseen(names)
        except ApiError as error:
            logger.warning("gateway access at DataStore %s waits: cannot list the tenants (%s)", store, error)
            return GatewayCheck(error=f"cannot list the tenants: {error}", blocking=blocking)
        bad = self.unusable(names)
        try:
            unblocked, blocked = await access.apply(conn, key, spec, tenants, blocking)
        except psycopg.OperationalError as error:  # the database, not a tenant's claim
            logger.warning("gateway access at DataStore %s: %s", store, postgres.describe_error(error))
            return GatewayCheck(error=postgres.describe_error(error), blocking=blocking)
        except psycopg.Error as error:
            try:
                isolated = await isolate(conn, spec, tenants)
            except psycopg.Error:
                isolated = {}
            if not isolated:
                logger.warning("gateway access at DataStore %s: %s", store, postgres.describe_error(error))
                return GatewayCheck(error=postgres.describe_error(error), blocking=blocking)
            bad.update({name: why for name, (_, why) in isolated.items()})
            # A tenant that is not kept out, with keys left out: the rows those keys claim are unknown, so this check
            # blocks nothing new (it could block an Active tenant's rows); inaccessible tenants are then unverified.
            unsure = any(t.access != "inaccessible" for t in tenants if t.name in isolated)
            tenants = [replace(t, keys=isolated[t.name][0]) if t.name in isolated else t for t in tenants]
            if unsure and blocking:
                blocking = False
                for t in tenants:
                    if t.access == "inaccessible" and t.name not in bad:
                        bad[t.name] = (
                            "not blocked in this check: another tenant's keys sharing its store cannot be resolved"
                        )
            try:
                unblocked, blocked = await access.apply(conn, key, spec, tenants, blocking)
            except psycopg.Error as again:
                logger.warning("gateway access at DataStore %s: %s", store, postgres.describe_error(again))
                return GatewayCheck(error=postgres.describe_error(again), blocking=blocking)
        self._report(store, unblocked, blocked)
        self.announce(store, bad, unblocked)
        unverified = tuple(
            sorted(name for name in bad if self._inaccessible(name, names) and name not in bad_keys(bad))
        )
        now_unverified = {name: bad[name] for name in unverified}
        for name in set(now_unverified) ^ set(self.unverified.get(store, {})):
            self.touch_tenant(name)  # its Accessible condition says whether its blocking is verified
        self.unverified[store] = now_unverified
        return GatewayCheck(
            blocking=blocking,
            inaccessible=sum(1 for t in tenants if t.access == "inaccessible")
            + len(set(unverified) - {t.name for t in tenants}),
            shared=sum(blocked.shared.values()),
            left=len(unblocked.untrusted) + len(unblocked.stale) + len(unblocked.moved),
            unusable=len(bad),
            unverified=unverified,
        )

    def unusable(self, names: Sequence[str]) -> dict[str, str]:
        """Per tenant: its keys in the stores that no row can hold, for an Event."""
        found = unusable((record.claim for record in list(self.stores.tenants.values())), names)
        return {
            name: f"keys no row can hold (control characters): {', '.join(map(repr, keys))}"
            for name, keys in found.items()
        }

    def _inaccessible(self, name: str, names: Sequence[str]) -> bool:
        record = self.stores.tenants.get(name)
        found = tenant(record, names, self.stores.seal_key) if record is not None else None
        return found is not None and found.access == "inaccessible"

    def announce(self, store: str, bad: dict[str, str], unblocked: access.Unblocked) -> None:
        """Post an Event on each tenant whose claim was left out, and on both tenants of each moved key, when what
        the store's checks found changes."""
        found = (sorted(bad.items()), sorted(unblocked.moved))
        if found == self.announced.get(store, ([], [])):
            return
        self.announced[store] = found
        for name, why in sorted(bad.items()):
            logger.warning("DataStore %s: tenant %s's claim is left out of the gateway check: %s", store, name, why)
            self._post(
                name,
                "DataKeysUnusable",
                f"DataStore {store}: {why}. They are left out of the gateway check, sweeps and purges there (no row "
                "can carry them); every other tenant is checked as usual. Correct spec.dataKeys.",
            )
        for row, owner, claimants in sorted(unblocked.moved):
            message = (
                f"DataStore {store}: {row} was blocked at the gateway for tenant {owner}, which is still "
                f"inaccessible, and is now claimed by {', '.join(claimants)} (moved to another team or organization?)"
                ": it stays blocked until a person decides (unblock it in LiteLLM and remove its metadata."
                f"{access.RECORD})."
            )
            logger.warning("%s", message)
            for name in (owner, *claimants):
                self._post(name, "GatewayKeyMoved", message)

    def _post(self, name: str, reason: str, message: str) -> None:
        record = self.stores.tenants.get(name)
        self.post(TENANT.kind, name, record.uid if record is not None else "", reason, message, True)

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


def bad_keys(bad: dict[str, str]) -> set[str]:
    """Tenants left out only for keys no row can hold: their other keys were checked, so their blocking holds."""
    return {name for name, why in bad.items() if why.startswith("keys no row can hold")}


async def isolate(
    conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, tenants: Sequence[access.Tenant]
) -> dict[str, tuple[tuple[str, ...], str]]:
    """Per tenant with keys that cannot be resolved (after a check failed for all at once): the keys that can, and
    why the others cannot. Each key is tried alone, so a tenant loses only its bad keys, never the good ones (its
    other rows stay claimed: an Active tenant's rows are never left to another tenant's blocking)."""
    isolated = {}
    for one in tenants:
        try:
            await operations.key_owners(conn, spec, {one.name: one.keys})
            continue
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            pass
        good, failed = [], []
        for key in one.keys:
            try:
                await operations.key_owners(conn, spec, {one.name: (key,)})
                good.append(key)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as error:
                failed.append(f"{key!r} ({postgres.describe_error(error)})")
        isolated[one.name] = (tuple(good), f"its keys {', '.join(failed) or '(all at once)'} cannot be resolved")
    return isolated
