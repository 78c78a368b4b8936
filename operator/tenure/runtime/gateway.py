"""Inaccessible tenants blocked at the LiteLLM gateway, on each check of a DataStore with the litellm preset.

Each check blocks every inaccessible tenant's teams, keys and projects (so a
key created meanwhile is blocked on the next check) and unblocks, where
Tenure blocked them, those of tenants that are Active again. After a start,
every Active tenant is checked once (a reopening may have happened while the
operator was down); afterwards only those this process saw inaccessible. The
reconciler asks for a check as soon as a tenant's phase changes.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import psycopg

from tenure.api import DataStoreSpec
from tenure.datastores import access, postgres
from tenure.lifecycle import trust
from tenure.lifecycle.access import gateway_blocked

from .store import Stores, Unreadable

logger = logging.getLogger(__name__)


class Gateway:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.blocked: dict[str, set[str]] = {}
        """Per DataStore, tenants to unblock once Active: all of them until the first check after a start."""

    async def check(self, conn: psycopg.AsyncConnection[Any], store: str, spec: DataStoreSpec) -> None:
        if spec.postgres.preset != "litellm":
            return
        first = store not in self.blocked
        blocked = self.blocked.setdefault(store, set())
        key = self.stores.seal_key
        for record in list(self.stores.tenants.values()):
            with contextlib.suppress(Unreadable):
                tenant = record.view()
                keys = record.claim.keys_in(store)
                block = gateway_blocked(tenant, trust.verifies(key, record.name, record.uid, tenant.status))
                try:
                    if block:
                        blocked.add(record.name)
                        changed = await access.block(conn, key, record.uid, keys)
                        if changed.total:
                            logger.info("tenant %s blocked at DataStore %s: %s", record.name, store, changed.rows)
                    elif block is False and (first or record.name in blocked):
                        changed, untrusted = await access.unblock(conn, key, record.uid, keys)
                        blocked.discard(record.name)
                        if changed.total or untrusted:
                            logger.info(
                                "tenant %s unblocked at DataStore %s: %s; %d rows left blocked (their record does "
                                "not verify)",
                                record.name,
                                store,
                                changed.rows,
                                untrusted,
                            )
                except psycopg.Error as error:
                    logger.warning(
                        "gateway access of tenant %s at DataStore %s: %s",
                        record.name,
                        store,
                        postgres.describe_error(error),
                    )
