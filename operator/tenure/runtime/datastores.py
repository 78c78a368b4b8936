"""DataStores at runtime: readiness and active-data retention sweeps (the "datastores" scheduler).

Connections go through :mod:`.connections` (the URI read from its Secret for
each job, held only in memory), every Tenant's claim through :mod:`.claims`,
and tenants' purges run in :mod:`.purges`; what the DataStore's status says
is decided by :mod:`tenure.lifecycle.datastores`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tenure import metrics
from tenure.api import DATA_STORE, DataStoreSpec, DataStoreStatus
from tenure.api.datastore import SweepStatus
from tenure.datastores import access, operations, postgres
from tenure.datastores.identity import identity
from tenure.effects import holds, status
from tenure.effects.events import EventPoster
from tenure.effects.gate import Gate
from tenure.effects.kube import Kube, status_of
from tenure.lifecycle import PurgeStore, StoreProgress
from tenure.lifecycle import datastores as decide
from tenure.lifecycle.conditions import listing
from tenure.lifecycle.retention import Cutoffs, cutoffs

from .claims import Claims, claims
from .connections import Connections, Unavailable
from .databases import Databases
from .gateway import Gateway
from .purges import Paused, Purges
from .store import DataStoreRecord, Stores, Unreadable

logger = logging.getLogger(__name__)

NOT_READY_RETRY = 30.0
UNSEEN_RETRY = 5.0
"""Seconds before a sweep that waited for the cache to fill tries again."""
READY_CHECK = 300.0
"""A Ready store is checked again at least this often, so an outage shows even when nothing runs."""


class Unseen(Exception):
    """Tenants the API server lists are not in the operator's cache yet (it is still filling after a start)."""


class DryRunStarted(Exception):
    """A dry run (the operator's or the DataStore's) began while a sweep was deleting."""


class DataStores:
    def __init__(self, kube: Kube, stores: Stores, namespace: str = "tenure-system") -> None:
        self.kube = kube
        self.stores = stores
        self.connections = Connections(kube)
        self.claims = Claims(kube, stores)
        self.databases = Databases(stores, self.connections)
        """Which stores reach the same database: they share one claim set (purges, sweeps, the gateway)."""
        self.purges = Purges(kube, stores, self.connections, self.claims, namespace, self.databases)
        self.gateway = Gateway(stores, self.claims)
        self.gateway.post = self._post
        self._events: EventPoster | None = None
        """Events on tenants about their claims in a store (started at the first one)."""
        self.gate = Gate()
        """A sweep or gateway block it does not allow is only reported (dry run)."""

    # What the reconciler and the handlers use

    @property
    def touch_tenant(self) -> Callable[[str], None]:
        return self.purges.touch_tenant

    @touch_tenant.setter
    def touch_tenant(self, touch: Callable[[str], None]) -> None:
        self.purges.touch_tenant = touch
        self.gateway.touch_tenant = touch

    @property
    def recheck(self) -> Callable[[str], None]:
        return self.purges.recheck

    @recheck.setter
    def recheck(self, recheck: Callable[[str], None]) -> None:
        self.purges.recheck = recheck

    def purges_of(self, tenant: str, uid: str) -> dict[str, StoreProgress]:
        return self.purges.purges_of(tenant, uid)

    def purge(self, tenant: str, uid: str, action: PurgeStore) -> None:
        self.purges.purge(tenant, uid, action)

    def forget(self, tenant: str) -> None:
        self.purges.forget(tenant)

    async def stop(self) -> None:
        self.claims.stop()
        await self.purges.stop()
        if self._events is not None:
            await self._events.stop()

    def _post(self, kind: str, name: str, uid: str, reason: str, message: str, warning: bool) -> None:
        if self._events is None:
            self._events = EventPoster(self.kube, workers=1)
        self._events.post(kind, name, uid, reason, message, warning)

    # Readiness and sweeps

    async def __call__(self, name: str) -> float | None:
        record: DataStoreRecord | None = self.stores.datastores.get(name)
        if record is None:
            return None
        old = DataStoreStatus.model_validate(record.status)
        now = datetime.now(UTC)
        wake: float | None = time.time() + NOT_READY_RETRY
        if record.spec is None:
            check = decide.Check(spec_error=record.error or "invalid")
            wake = None
        else:
            check, wake = await self._check(name, record.spec, old.last_sweep, now)
        new = decide.status(old, record.generation, check, now, record.spec)
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
            self.stores.datastores.put(written)
        return wake

    async def _check(
        self, name: str, spec: DataStoreSpec, last: SweepStatus | None, now: datetime
    ) -> tuple[decide.Check, float]:
        """Connect, survey the mapping, and sweep when due; when to check again."""
        try:
            conn = await self.connections.connect(spec)
        except Unavailable as problem:
            return decide.Check(unavailable=str(problem)), time.time() + NOT_READY_RETRY
        try:
            survey = await operations.survey(conn, spec)
            # Every store reaching this database (whatever its Secret says) shares one claim set.
            sharing = await self.databases.sharing(name, await identity(conn))
            found = decide.Check(
                problems=tuple(survey.problems),
                partitioned=survey.partitioned,
                residual=survey.residual,
                unusable=len(bad := self.gateway.unusable(sharing)),
            )
            if spec.postgres.preset != "litellm":  # a litellm store's gateway check posts them, with what it found
                self.gateway.announce(name, bad, access.Unblocked())
            if survey.problems:
                return found, time.time() + NOT_READY_RETRY
            due = decide.sweep_due(last, spec, now)
            # A dry run blocks no one at the gateway; unblocking a reopened tenant is harmless, as reopening is.
            gateway = await self.gateway.check(conn, name, spec, blocking=self.gate.sweeps(name), sharing=sharing)
            found = replace(found, gateway=gateway)
            check_again = now.timestamp() + READY_CHECK
            if due is None or due > now:  # None: the schedule is invalid (the SweepScheduled condition says why)
                return replace(found, next_sweep=due), min(due.timestamp() if due else check_again, check_again)
            try:
                swept = (
                    await self.sweep(name, spec, conn, now, sharing) if self.gate.sweeps(name) else self._dry(name, now)
                )
            except Unseen as waiting:
                logger.info("sweep of DataStore %s waits: %s", name, waiting)
                return found, time.time() + UNSEEN_RETRY
            next_due = decide.sweep_due(swept, spec, now)
            assert next_due is not None
            return replace(found, sweep=swept, next_sweep=next_due), min(next_due.timestamp(), check_again)
        finally:
            await conn.close()

    def _dry(self, name: str, now: datetime) -> SweepStatus:
        """A due sweep under a dry run: reported with the tenants whose windows apply, nothing deleted or redacted."""
        views = []
        for record in list(self.stores.tenants.values()):
            with contextlib.suppress(Unreadable):
                views.append(record.view())
        windows = cutoffs(views, self.stores.policy, self.stores.held_tenants(), now)
        logger.info("dry run: the sweep of DataStore %s is due for %d tenants; nothing deleted", name, len(windows))
        return SweepStatus(started_at=now, finished_at=now, tenants=len(windows), dry_run=True)

    async def sweep(
        self, name: str, spec: DataStoreSpec, conn: Any, now: datetime, sharing: tuple[str, ...] = ()
    ) -> SweepStatus:
        """One active-data retention pass over every tenant not held, purging or purged.

        A hold that appears mid-sweep stops it at the next statement; it starts
        over without the newly held tenant.
        """
        started = time.perf_counter()
        while True:
            try:
                windows, result = await self._sweep_once(name, spec, conn, now, sharing or (name,))
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
            batches_halved=result.shrunk or None,
        )

    async def _sweep_once(
        self, name: str, spec: DataStoreSpec, conn: Any, now: datetime, sharing: tuple[str, ...]
    ) -> tuple[dict[str, Cutoffs], operations.SweepResult]:
        held = self.stores.held_tenants() | set(await holds.held(self.kube))
        listed = await self.claims.listed()
        unseen = [claim.name for claim in listed if claim.name not in self.stores.tenants]
        if unseen:  # their windows come from the watch; sweeping without them would not count as a sweep
            raise Unseen(f"the watch has not delivered every tenant yet ({listing(unseen)})")
        views = []
        for record in list(self.stores.tenants.values()):
            with contextlib.suppress(Unreadable):
                views.append(record.view())
        windows = cutoffs(views, self.stores.policy, held, now)
        keys = claims(self.claims.overlay(listed), sharing)  # a row claimed through another store keeps its window

        async def progress(rows: int) -> None:
            if self.stores.held_tenants() & windows.keys():
                raise Paused
            if not self.gate.sweeps(name):
                raise DryRunStarted("a dry run was turned on: the sweep stopped, nothing more is deleted or redacted")

        return windows, await operations.sweep(conn, spec, keys, windows, progress)
