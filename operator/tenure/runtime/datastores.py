"""DataStores at runtime: readiness, active-data retention sweeps, and tenants' purges.

The connection URI is read from its Secret for each job and held only in
memory; errors are reported by class and server message, never with the URI.
A purge of one store is a background task per (tenant, store): it resolves
the tenant's keys (which the tenant's status records before anything is
deleted), then deletes in batches, reporting progress that the tenant's next
pass writes to status at a modest rate. A database outage makes it wait and
retry with backoff; a legal hold stops it at the next batch; keys another
tenant also claims stop it before anything is deleted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tenure import metrics
from tenure.api import DATA_STORE, TENANT, DataStoreSpec, DataStoreStatus
from tenure.api.datastore import SweepStatus
from tenure.api.tenant import StoreState
from tenure.datastores import operations, postgres
from tenure.datastores.targets import Keys
from tenure.effects import holds, status
from tenure.effects.kube import Kube, status_of
from tenure.lifecycle import PurgeStore, StoreProgress
from tenure.lifecycle.conditions import condition, listing
from tenure.lifecycle.retention import Cutoffs, cutoffs

from .store import Claim, DataStoreRecord, Stores, Unreadable

logger = logging.getLogger(__name__)

RETRY = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
PROGRESS_EVERY = 5.0
"""Seconds between progress reports of a running purge (status is not written per batch)."""
NOT_READY_RETRY = 30.0
LISTING_SHARED = 5.0
"""Seconds a listing of every Tenant's claim is shared by purges and sweeps starting meanwhile (the watch adds
what is newer)."""
UNSEEN_RETRY = 5.0
"""Seconds before a sweep that waited for the cache to fill tries again."""
READY_CHECK = 300.0
"""A Ready store is checked again at least this often, so an outage shows even when nothing runs."""


class Unavailable(Exception):
    """The store cannot be used now; the message is safe to show (no URI)."""


class Paused(Exception):
    """A legal hold appeared during a purge or sweep."""


class Unseen(Exception):
    """Tenants the API server lists are not in the operator's cache yet (it is still filling after a start)."""


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

    @property
    def deleted(self) -> int:
        return max(self.progress.rows_deleted if self.progress else 0, self.action.rows_deleted)


class DataStores:
    def __init__(self, kube: Kube, stores: Stores) -> None:
        self.kube = kube
        self.stores = stores
        self.touch_tenant: Callable[[str], None] = lambda name: None
        """Wakes a tenant so its next pass writes a purge's progress (set once the scheduler exists)."""
        self.recheck: Callable[[str], None] = lambda name: None
        """Wakes a DataStore so its Ready condition is checked again (after a purge met an outage)."""
        self.swept: set[str] = set()
        """Stores swept since this operator started (the first sweep runs soon after start)."""
        self._jobs: dict[tuple[str, str], Job] = {}
        """By (tenant, store)."""
        self._listing: asyncio.Future[list[Claim]] | None = None
        self._listed_at = 0.0

    # Connections

    async def uri(self, spec: DataStoreSpec) -> str:
        ref = spec.postgres.connection_secret_ref
        where = f"Secret {ref.namespace}/{ref.name}"
        try:
            secret = await self.kube.core.read_namespaced_secret(ref.name, ref.namespace)
        except Exception as error:
            if status_of(error) in (403, 404):
                raise Unavailable(f"{where} cannot be read ({status_of(error)})") from error
            raise
        encoded = (secret.data or {}).get(ref.key)
        if not encoded:
            raise Unavailable(f"{where} has no key {ref.key!r}")
        return base64.b64decode(encoded).decode()

    async def connect(self, spec: DataStoreSpec) -> Any:
        uri = await self.uri(spec)
        try:
            return await postgres.connect(uri)
        except Exception as error:
            raise Unavailable(postgres.describe_error(error)) from error

    # Readiness and sweeps (the "datastores" scheduler)

    async def __call__(self, name: str) -> float | None:
        record: DataStoreRecord | None = self.stores.datastores.get(name)
        if record is None:
            return None
        old = DataStoreStatus.model_validate(record.status)
        now = datetime.now(UTC)
        wake: float | None = time.time() + NOT_READY_RETRY
        sweep = old.last_sweep
        if record.spec is None:
            ready = ("False", "InvalidSpec", f"The spec does not match the API: {record.error}")
            wake = None
        else:
            try:
                conn = await self.connect(record.spec)
            except Unavailable as problem:
                ready = ("False", "Unavailable", str(problem))
            else:
                try:
                    problems = await postgres.inspect(conn, operations.targets_of(record.spec))
                    if problems:
                        ready = ("False", "MissingTablesOrColumns", listing(problems, "; "))
                    else:
                        ready = ("True", "Connected", "Connected; every mapped table and column exists.")
                        sweep, wake = await self._sweep_if_due(name, record.spec, conn, old.last_sweep, now)
                finally:
                    await conn.close()
        new = DataStoreStatus(
            observed_generation=record.generation,
            conditions=(condition(old.conditions, "Ready", *ready, now, record.generation),),  # type: ignore[arg-type]
            last_sweep=sweep,
            residual=operations.residual_of(record.spec) if record.spec else (),
        )
        try:
            written = await status.write_status(
                self.kube, DATA_STORE.plural, name, record.resource_version, record.status, new.to_api()
            )
        except Exception as error:
            if status_of(error) in (404, 409):
                return wake
            raise
        if written is not None:
            metrics.API_WRITES.labels("status").inc()
            self.stores.put_datastore(written)
        return wake

    async def _sweep_if_due(
        self, name: str, spec: DataStoreSpec, conn: Any, last: SweepStatus | None, now: datetime
    ) -> tuple[SweepStatus | None, float]:
        interval = spec.sweep_interval.total_seconds()
        check = time.time() + READY_CHECK
        if name in self.swept and last is not None and last.started_at is not None:
            due = last.started_at.timestamp() + interval
            if due > time.time():
                return last, min(due, check)
        try:
            result = await self.sweep(name, spec, conn, now)
        except Unseen as waiting:
            logger.info("sweep of DataStore %s waits: %s", name, waiting)
            return last, time.time() + UNSEEN_RETRY
        self.swept.add(name)
        return result, min(now.timestamp() + interval, check)

    async def sweep(self, name: str, spec: DataStoreSpec, conn: Any, now: datetime) -> SweepStatus:
        """One active-data retention pass over every tenant not held, purging or purged.

        A hold that appears mid-sweep stops it at the next statement; it starts
        over without the newly held tenant.
        """
        started = time.perf_counter()
        while True:
            try:
                windows, result = await self._sweep_once(name, spec, conn, now)
                break
            except Unseen:
                raise
            except Paused:
                logger.info("sweep of DataStore %s: a legal hold appeared; starting over without its tenant", name)
            except Exception as error:
                logger.warning("sweep of DataStore %s stopped: %s", name, postgres.describe_error(error))
                return SweepStatus(started_at=now, finished_at=datetime.now(UTC), error=postgres.describe_error(error))
        metrics.SWEEP_ROWS.labels(name, "deleted").inc(result.deleted)
        metrics.SWEEP_ROWS.labels(name, "redacted").inc(result.redacted)
        metrics.SWEEP_SECONDS.labels(name).observe(time.perf_counter() - started)
        logger.info("swept DataStore %s: %d rows deleted, %d redacted", name, result.deleted, result.redacted)
        return SweepStatus(
            started_at=now,
            finished_at=datetime.now(UTC),
            tenants=len(windows),
            rows_deleted=result.deleted,
            rows_redacted=result.redacted,
        )

    async def _sweep_once(
        self, name: str, spec: DataStoreSpec, conn: Any, now: datetime
    ) -> tuple[dict[str, Cutoffs], operations.SweepResult]:
        held = self.stores.held_tenants() | set(await holds.held(self.kube))
        listed = await self._listed()
        unseen = [claim.name for claim in listed if claim.name not in self.stores.tenants]
        if unseen:  # their windows come from the watch; sweeping without them would not count as a sweep
            raise Unseen(f"the watch has not delivered every tenant yet ({listing(unseen)})")
        views = []
        for record in list(self.stores.tenants.values()):
            with contextlib.suppress(Unreadable):
                views.append(record.view())
        windows = cutoffs(views, self.stores.policy, held, now)
        keys = claims(self._overlay(listed), name)

        async def progress(rows: int) -> None:
            if self.stores.held_tenants() & windows.keys():
                raise Paused

        return windows, await operations.sweep(conn, spec, keys, windows, progress)

    # Purges (driven by the tenant reconciler's PurgeStore actions)

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
        if job.progress is not None and job.progress.state == "Done" and action.keys is not None:
            return  # proven empty; the tenant's next pass records it (a pass that started earlier asks again)
        job.task = asyncio.create_task(self._purge(job), name=f"purge {tenant} from {action.name}")

    def forget(self, tenant: str) -> None:
        for key in [key for key in self._jobs if key[0] == tenant]:
            task = self._jobs.pop(key).task
            if task is not None:
                task.cancel()

    async def stop(self) -> None:
        if self._listing is not None:
            self._listing.cancel()
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
        attempt = 0
        while True:
            action = replace(job.action, rows_deleted=job.deleted)  # the latest ask: spec.dataKeys may have changed
            try:
                await self._purge_once(job, action)
                return
            except Gone:
                return
            except Paused:
                self._report(job, action, StoreProgress("Paused", job.deleted, message="legal hold"))
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
        residual = operations.residual_of(spec)
        await self._still_due(tenant, uid)
        others = claims(await self._claims(), action.name, but=tenant)
        conn = await self.connect(spec)
        try:
            if action.keys is None:
                keys = await operations.resolve(conn, spec, action.requested)
                if shared := await shared_with(conn, spec, keys, others):
                    raise Unavailable(f"nothing deleted: other tenants claim the same rows: {shared}")
                self._report(job, action, StoreProgress("Resolved", action.rows_deleted, keys=keys, residual=residual))
                return
            if shared := await shared_with(conn, spec, action.keys, others):
                raise Unavailable(f"nothing deleted in this attempt: other tenants claim the same rows: {shared}")
            deleted = action.rows_deleted
            reported = time.monotonic()

            async def batch_done(rows: int) -> None:
                nonlocal deleted, reported
                deleted += rows
                metrics.PURGE_ROWS.labels(action.name).inc(rows)
                due = time.monotonic() - reported >= PROGRESS_EVERY
                self._report(job, action, StoreProgress("Deleting", deleted, residual=residual), touch=due)
                if self.stores.holds_of(tenant):
                    raise Paused
                if due:
                    reported = time.monotonic()
                    await self._still_due(tenant, uid)
                    # Claims made since the purge began, as far as the watch has seen them.
                    current = claims((r.claim for r in self.stores.tenants.values()), action.name, but=tenant)
                    if shared := await shared_with(conn, spec, action.keys or {}, current):
                        raise Unavailable(
                            f"stopped after {deleted} rows: other tenants now claim the same rows: {shared}"
                        )

            self._report(job, action, StoreProgress("Deleting", deleted, residual=residual))
            _, remaining = await operations.purge(conn, spec, action.keys, batch_done)
            state: StoreState = "Done" if remaining == 0 else "Deleting"
            self._report(job, action, StoreProgress(state, deleted, remaining, residual=residual))
            logger.info(
                "purged tenant %s from DataStore %s: %d rows, %d remain", tenant, action.name, deleted, remaining
            )
        finally:
            await conn.close()

    async def _still_due(self, tenant: str, uid: str) -> None:
        """Stop unless the same tenant object is still Purging and the API server itself knows no hold on it."""
        record = self.stores.tenants.get(tenant)
        if record is None or record.uid != uid or record.claim.phase != "Purging":
            raise Gone
        if tenant in await holds.held(self.kube):
            raise Paused

    async def _claims(self) -> list[Claim]:
        """Every Tenant's claim: the watch's, over a listing from the API server.

        The listing covers the start, when the watch may not have delivered every tenant yet; the watch covers
        tenants created since the listing.
        """
        return self._overlay(await self._listed())

    def _overlay(self, listed: list[Claim]) -> list[Claim]:
        claims = {claim.name: claim for claim in listed}
        claims.update((name, record.claim) for name, record in list(self.stores.tenants.items()))
        return list(claims.values())

    async def _listed(self) -> list[Claim]:
        """Every Tenant's claim as the API server lists it now.

        Listings started within ``LISTING_SHARED`` seconds are shared, so a thousand purges starting together
        list the tenants once, not a thousand times.
        """
        if self._listing is None or time.monotonic() - self._listed_at > LISTING_SHARED:
            self._listed_at = time.monotonic()
            self._listing = asyncio.ensure_future(self._list_claims())
        listing = self._listing
        try:
            return await asyncio.shield(listing)
        except Exception:
            if self._listing is listing:
                self._listing = None  # a failed listing is not shared
            raise

    async def _list_claims(self) -> list[Claim]:
        try:
            bodies = await self.kube.list_custom(TENANT.plural)
        except Exception as error:
            raise Unavailable(f"cannot list Tenants ({status_of(error) or type(error).__name__})") from error
        return [Claim.from_body(body, self.stores.seal_key) for body in bodies]


def claims(tenants: Iterable[Claim], store: str, but: str | None = None) -> dict[str, tuple[str, ...]]:
    """Each tenant's keys in the store, for every tenant not yet purged (but one)."""
    return {c.name: c.keys_in(store) for c in list(tenants) if c.phase != "Purged" and c.name != but}


async def shared_with(conn: Any, spec: DataStoreSpec, keys: Keys, others: Mapping[str, tuple[str, ...]]) -> str:
    """Other tenants claiming rows these keys cover, and the shared keys, for a message; empty when none."""
    shared = await operations.shared(conn, spec, keys, others)
    named = listing(f"{other} ({', '.join(values)})" for other, values in sorted(shared.items()))
    return f"{named}; correct spec.dataKeys (this tenant's counts until its keys are resolved)" if shared else ""
