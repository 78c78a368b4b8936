"""Tenants' purges of DataStores: a background task per (tenant, store), driven by the reconciler's PurgeStore.

It resolves the tenant's keys (which the tenant's status records before
anything is deleted), then deletes in batches, reporting progress that the
tenant's next pass writes to status at a modest rate. A database outage
makes it wait and retry with backoff; a legal hold stops it at the next
batch; keys another tenant also claims stop it before anything is deleted,
and rows that also carry another tenant's key are left (and counted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from tenure import metrics
from tenure.api import DataStoreStatus
from tenure.datastores import operations, postgres
from tenure.datastores.identity import identity
from tenure.effects import holds
from tenure.effects.gate import Gate
from tenure.effects.kube import Kube
from tenure.lifecycle import PurgeStore, StoreProgress, purge, trust

from . import keyrecords
from .claims import Claims, claims, shared_with
from .connections import Connections, Unavailable
from .databases import Databases
from .logfields import bind
from .store import DataStoreRecord, Stores, Unreadable

logger = logging.getLogger(__name__)

RETRY = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
PROGRESS_EVERY = 5.0
"""Seconds between progress reports of a running purge (status is not written per batch)."""


class Paused(Exception):
    """A legal hold appeared during a purge or sweep."""


class Gone(Exception):
    """The tenant object this purge was for is gone, replaced or no longer Purging."""


@dataclass
class Job:
    """The purge of one store for one Tenant object (its uid)."""

    tenant: str
    uid: str
    action: PurgeStore
    """The latest the tenant's passes asked for: each attempt starts from it."""
    progress: StoreProgress | None = None
    task: asyncio.Task[None] | None = None
    keys: Mapping[str, tuple[str, ...]] | None = None
    """The resolved keys, once known (status may record only their digest)."""

    @property
    def deleted(self) -> int:
        return max(self.progress.rows_deleted if self.progress else 0, self.action.rows_deleted)


class Purges:
    def __init__(
        self,
        kube: Kube,
        stores: Stores,
        connections: Connections,
        listing: Claims,
        namespace: str,
        databases: Databases | None = None,
    ) -> None:
        self.kube, self.stores, self.connections, self.claims = kube, stores, connections, listing
        self.databases = databases or Databases(stores, connections)
        """Which stores reach the same database: claims through any of them count in all."""
        self.namespace = namespace
        """The operator's namespace, where key sets too large for a tenant's status are recorded."""
        self.gate = Gate()
        """Checked before every batch: a dry run turned on (operator or DataStore) stops a purge already deleting."""
        self.touch_tenant: Callable[[str], None] = lambda name: None
        """Wakes a tenant so its next pass writes a purge's progress (set once the scheduler exists)."""
        self.recheck: Callable[[str], None] = lambda name: None
        """Wakes a DataStore so its Ready condition is checked again (after a purge met an outage)."""
        self._jobs: dict[tuple[str, str], Job] = {}
        """By (tenant, store)."""

    def purges_of(self, tenant: str, uid: str) -> dict[str, StoreProgress]:
        return {
            store: job.progress
            for (name, store), job in self._jobs.items()
            if name == tenant and job.uid == uid and job.progress is not None
        }

    def purge(self, tenant: str, uid: str, action: PurgeStore) -> None:
        """Start (or keep running) the purge of one store for one tenant object; idempotent."""
        key = (tenant, action.name)
        job = self._jobs.get(key)
        if job is None or job.uid != uid:
            if job is not None and job.task is not None:
                job.task.cancel()  # an earlier object of the same name
            job = self._jobs[key] = Job(tenant, uid, action)
        job.action = action
        if job.task is not None and not job.task.done():
            return
        if job.progress is not None and job.progress.state == "Done" and action.resolved:
            return  # proven empty; the tenant's next pass records it (a pass that started earlier asks again)
        job.task = asyncio.create_task(self._purge(job), name=f"purge {tenant} from {action.name}")

    def forget(self, tenant: str) -> None:
        for key in [key for key in self._jobs if key[0] == tenant]:
            task = self._jobs.pop(key).task
            if task is not None:
                task.cancel()

    async def stop(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _report(self, job: Job, action: PurgeStore, progress: StoreProgress, touch: bool = True) -> None:
        """Keep a purge's progress; ``touch`` wakes the tenant so its next pass writes it to status."""
        job.progress = replace(progress, requested=action.requested)
        if touch:
            self.touch_tenant(job.tenant)

    async def _purge(self, job: Job) -> None:
        bind(tenant=job.tenant, datastore=job.action.name)  # this task's log records carry both as fields
        attempt = 0
        while True:
            action = replace(job.action, rows_deleted=job.deleted)  # the latest ask: spec.dataKeys may have changed
            try:
                await self._purge_once(job, action)
                return
            except Gone:
                return
            except Paused as paused:
                self._report(job, action, StoreProgress("Paused", job.deleted, message=str(paused) or "legal hold"))
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                message = str(error) if isinstance(error, Unavailable) else postgres.describe_error(error)
                delay = RETRY[min(attempt, len(RETRY) - 1)]
                attempt += 1
                logger.warning(
                    "purge of tenant %s from %s: %s; retrying in %.0fs", job.tenant, action.name, message, delay
                )
                self.recheck(action.name)
                self._report(job, action, StoreProgress("Waiting", job.deleted, message=f"{message}; retrying"))
                await asyncio.sleep(delay)

    async def _purge_once(self, job: Job, action: PurgeStore) -> None:
        tenant, uid = job.tenant, job.uid
        record: DataStoreRecord | None = self.stores.datastores.get(action.name)
        if record is None or record.spec is None:
            raise Unavailable(f"DataStore {action.name} does not exist or is invalid")
        spec = record.spec
        ready = next((c for c in DataStoreStatus.model_validate(record.status).conditions if c.type == "Ready"), None)
        if ready is not None and ready.reason == "MissingTablesOrColumns":
            raise Unavailable(f"DataStore {action.name} is not Ready: {ready.message}")
        await self._still_due(tenant, uid)
        listed = await self.claims.all()
        conn = await self.connections.connect(spec)
        try:
            # Every store reaching this database shares one claim set: a key another tenant claims through any of
            # them keeps its rows here too.
            own = await identity(conn)
            sharing = await self.databases.sharing(action.name, own)
            others = claims(listed, sharing, but=tenant)
            residual = await operations.residual(conn, spec)
            if not action.resolved:
                requested = tuple(key for key in action.requested if postgres.bindable(key))
                ignored = tuple(key for key in action.requested if not postgres.bindable(key))
                resolved = await operations.resolve(conn, spec, requested)
                if shared := await shared_with(conn, spec, resolved, others):
                    raise Unavailable(f"nothing deleted: other tenants claim the same rows: {shared}")
                recorded = None  # status lists few keys; more are recorded whole, before status says so
                if not purge.listable(resolved):
                    recorded = await keyrecords.save(self.kube, self.namespace, tenant, uid, resolved)
                job.keys = resolved
                note = f"left out keys no row can hold (control characters): {', '.join(map(repr, ignored))}"
                progress = StoreProgress(
                    "Resolved",
                    action.rows_deleted,
                    message=note if ignored else "",
                    keys=resolved,
                    key_set=recorded,
                    residual=residual,
                )
                self._report(job, action, progress)
                return
            self._not_dry(action.name)  # resolving keys reads; from here on rows are deleted
            keys = await self._keys(job, action)
            if shared := await shared_with(conn, spec, keys, others):
                raise Unavailable(f"nothing deleted in this attempt: other tenants claim the same rows: {shared}")
            deleted = action.rows_deleted
            reported = time.monotonic()

            async def batch_done(rows: int) -> None:
                nonlocal deleted, reported, sharing
                deleted += rows
                metrics.PURGE_ROWS.labels(action.name).inc(rows)
                due = time.monotonic() - reported >= PROGRESS_EVERY
                self._report(job, action, StoreProgress("Deleting", deleted, residual=residual), touch=due)
                if self.stores.holds_of(tenant):
                    raise Paused("legal hold")
                self._spec_agrees(tenant)
                self._not_dry(action.name)
                if due:
                    reported = time.monotonic()
                    await self._still_due(tenant, uid)
                    # Claims made since the purge began, as far as the watch has seen them, through every store
                    # reaching this database now (one made or pointed here meanwhile included).
                    sharing = await self.databases.sharing(action.name, own)
                    current = claims((r.claim for r in self.stores.tenants.values()), sharing, but=tenant)
                    if shared := await shared_with(conn, spec, keys, current):
                        raise Unavailable(
                            f"stopped after {deleted} rows: other tenants now claim the same rows: {shared}"
                        )

            self._report(job, action, StoreProgress("Deleting", deleted, residual=residual))
            result = await operations.purge(conn, spec, keys, others, batch_done)
            halved = f"batches halved {result.shrunk} times after statement or lock timeouts" if result.shrunk else ""
            self._report(
                job,
                action,
                StoreProgress("Done", deleted, 0, halved, residual=residual, rows_shared=result.shared),
            )
            logger.info(
                "purged tenant %s from DataStore %s: %d rows, %d left to other tenants",
                tenant,
                action.name,
                deleted,
                sum(result.shared.values()),
            )
        finally:
            await conn.close()

    async def _keys(self, job: Job, action: PurgeStore) -> Mapping[str, tuple[str, ...]]:
        """The recorded keys: listed in status, or recorded whole and read back when they match its digest."""
        if action.keys is not None:
            return action.keys
        assert action.key_set is not None
        if job.keys is None or purge.digest(job.keys) != action.key_set.digest:
            job.keys = await keyrecords.load(self.kube, self.namespace, job.uid, action.key_set)
        return job.keys

    async def _still_due(self, tenant: str, uid: str) -> None:
        """Stop unless the same tenant object is still Purging and the API server itself knows no hold on it."""
        record = self.stores.tenants.get(tenant)
        if record is None or record.uid != uid or record.claim.phase != "Purging":
            raise Gone
        self._spec_agrees(tenant)
        if tenant in await holds.held(self.kube):
            raise Paused("legal hold")

    def _not_dry(self, store: str) -> None:
        if not self.gate.sweeps(store):
            raise Paused("dry run: no rows are deleted in this DataStore")

    def _spec_agrees(self, tenant: str) -> None:
        """Stop unless the tenant's spec still asks for the end (Closed, deleted, or grace elapsed), as every
        destructive step needs: a spec set back to Active stops a purge already deleting, not only the next one."""
        record = self.stores.tenants.get(tenant)
        try:
            view = record.view() if record is not None else None
        except Unreadable:
            view = None
        if view is None or not trust.agrees(view, view.status.closure_reason):
            raise Paused("the spec no longer asks for the account's end")
