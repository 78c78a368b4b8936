"""Which DataStores reach the same rows: each store's database identity, learned from its own connections.

Claims are compared per database, not per DataStore object: a tenant's keys
in any store that reaches the same database (same server cluster and
database, :func:`tenure.datastores.identity.identity`, whatever the URIs or
Secrets say) are its claim in every one of them. So a second DataStore on the
same database cannot be used to delete or block rows another tenant claims
through the first: a purge through either waits naming that tenant, and the
gateway checks of both see one claim set (one store's unblock never undoes
the other's block).

A store whose database cannot be learned now (its Secret or database is
unavailable, its spec invalid) counts as reaching the same database as every
other: laying its claims over another store's can only keep more rows and
block fewer, never the reverse. An identity is re-read at least every
:data:`FRESH` seconds, so a Secret pointed elsewhere counts within that time.
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg

from tenure.datastores.identity import Identity, identity

from .connections import Connections
from .store import Stores

logger = logging.getLogger(__name__)

FRESH = 60.0
"""Seconds an identity learned from a store's connection is used before it is read again."""


class Databases:
    def __init__(self, stores: Stores, connections: Connections) -> None:
        self.stores, self.connections = stores, connections
        self._known: dict[str, tuple[float, Identity | None]] = {}
        """Per DataStore: when its identity was last read, and what it was (None: could not be read)."""
        self._locks: dict[str, asyncio.Lock] = {}

    def learned(self, store: str, found: Identity | None) -> None:
        """What a connection of the store's own (a check, a purge) just found."""
        self._known[store] = (time.monotonic(), found)

    async def of(self, store: str) -> Identity | None:
        """The database the store reaches; None when it cannot be learned now."""
        lock = self._locks.setdefault(store, asyncio.Lock())
        async with lock:  # many purges starting together read an identity once
            cached = self._known.get(store)
            if cached is not None and time.monotonic() - cached[0] < FRESH:
                return cached[1]
            found = await self._read(store)
            self._known[store] = (time.monotonic(), found)
            return found

    async def _read(self, store: str) -> Identity | None:
        record = self.stores.datastores.get(store)
        if record is None or record.spec is None:
            return None
        try:
            conn = await self.connections.connect(record.spec)
        except Exception as problem:  # Unavailable, or the API server failing to give its Secret: not known
            logger.info(
                "DataStore %s: its database cannot be told apart now (%s); it counts as every one", store, problem
            )
            return None
        try:
            return await identity(conn)
        except psycopg.Error:
            return None
        finally:
            await conn.close()

    async def sharing(self, store: str, found: Identity | None) -> tuple[str, ...]:
        """Every DataStore reaching the database ``store``'s connection found (``found``), ``store`` first; one
        whose database cannot be learned now counts as reaching it too, and when ``found`` itself is unknown every
        DataStore does (only ever more claims: rows kept, not blocked)."""
        self.learned(store, found)
        same = [store]
        for other in sorted(self.stores.datastores):
            if other == store:
                continue
            theirs = None if found is None else await self.of(other)
            if theirs is None or theirs == found:
                if theirs is None:
                    logger.debug("DataStore %s counts as sharing %s's database (not known)", other, store)
                same.append(other)
        return tuple(same)

    def forget(self, store: str) -> None:
        self._known.pop(store, None)
