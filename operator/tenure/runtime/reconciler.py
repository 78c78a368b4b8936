"""One tenant, one pass: read the stores, decide, write status, then act.

Order matters for safety and for crash-resumption:

1. the finalizer is added first, so deleting the Tenant waits for the purge;
2. status is written before any action, carrying the resourceVersion the
   decision came from, so the purge's scope is on record before the first
   deletion and a stale view never acts;
3. deletions run only after the API server itself confirms no LegalHold
   names the tenant;
4. "Purged" is written only after the API server itself confirms every
   recorded namespace and volume gone (the store that suggested it may lag),
   and the finalizer is removed only once status says Purged and the
   tenant's PurgeReceipt exists.

The pass is idempotent: run twice on the same inputs it writes nothing the
second time. Failures raise and the scheduler retries with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, TypeVar

from tenure import metrics
from tenure.api import DATA_STORE, TENANT, TenantStatus
from tenure.effects import access, holds, namespaces, status, volumes, workloads
from tenure.effects.errors import ApiError, Conflict, Gone, Invalid
from tenure.effects.events import EventPoster
from tenure.effects.gate import Gate
from tenure.effects.kube import Kube, unless_gone
from tenure.effects.namespaces import NotOwned
from tenure.effects.outcome import Outcome
from tenure.effects.receipts import Receipts
from tenure.lifecycle import (
    DELETIONS,
    Action,
    AddFinalizer,
    ClaimFact,
    CloseAccess,
    CreateNamespace,
    Decision,
    DeleteNamespace,
    DeleteVolume,
    OpenAccess,
    PurgeStore,
    ReclaimOnDelete,
    RemoveFinalizer,
    RestoreReclaim,
    TenantView,
    decide,
    dryrun,
    receipts,
    trust,
)
from tenure.lifecycle.conditions import find, is_true
from tenure.lifecycle.ownership import tenant_namespaces

from .access_pass import AccessPass
from .datastores import DataStores
from .store import FINALIZER, Stores, TenantRecord, Unreadable, claim_fact

logger = logging.getLogger(__name__)
T = TypeVar("T")

CONFIRM_RETRY = 2.0
"""Seconds before asking again when the cache said gone but the API server did not."""
REOPEN_CHECK = 1.0
"""Seconds after restoring access before confirming the quota is gone (the Accessible condition turns True)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Stale(Exception):
    """The tenant changed while being decided; the watch event of the new version decides again."""


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        stores: Stores,
        datastores: DataStores,
        events: EventPoster,
        protected: frozenset[str],
        seal_key: bytes,
        issuer: Receipts,
        clock: Callable[[], datetime] = utcnow,
        operator_namespace: str = "tenure-system",
        access_sweep: float = 60.0,
        gate: Gate | None = None,
        access_pod_grace: int = workloads.POD_GRACE_SECONDS,
    ) -> None:
        self.kube = kube
        self.gate = gate or Gate()
        """Every action passes it: under a dry run the destructive ones are only reported."""
        self.events = events
        self.stores = stores
        self.datastores = datastores
        self.protected = protected
        self.seal_key = seal_key
        self.issuer = issuer
        self.clock = clock
        self.operator_namespace = operator_namespace
        self.access_sweep = access_sweep
        """Seconds between sweeps of an inaccessible tenant's namespaces."""
        self.access = AccessPass(kube, events, seal_key, operator_namespace, access_pod_grace, clock)
        """Closes and reopens one namespace at a time."""
        self._phases: dict[str, str] = {}
        self._access_failed: set[str] = set()
        """Tenants whose last access step failed in this pass."""

    async def __call__(self, name: str) -> float | None:
        started = time.perf_counter()
        try:
            wake = await self._reconcile(name)
        except Stale:
            metrics.RECONCILES.labels("stale").inc()
            return None
        except Exception as error:
            metrics.RECONCILES.labels("error").inc()
            metrics.RECONCILE_ERRORS.labels(type(error).__name__).inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        metrics.RECONCILES.labels("ok").inc()
        return wake

    async def _reconcile(self, name: str) -> float | None:
        record = self.stores.tenants.get(name)
        if record is None:
            self._count(name, None)
            self._progress(name, None)
            self.datastores.forget(name)
            return None
        try:
            tenant = record.view()
        except Unreadable as error:
            logger.error("tenant %s is unreadable and left untouched: %s", name, error)
            metrics.RECONCILE_ERRORS.labels("Unreadable").inc()
            self._warn(record, "Unreadable", f"Tenure cannot read this tenant and leaves it untouched: {error}")
            return None
        policy = self.stores.policy(tenant.spec.retention_policy)
        now = self.clock()
        tenant, trusted = trust.view(tenant, record.uid, self.seal_key, policy, now)
        world = self.stores.world(tenant, self.protected, self.datastores.purges_of(name, record.uid))
        world = replace(world, gateway_unverified=self.datastores.gateway.unverified_of(name))
        decision = decide(tenant, policy, world, now, trusted)
        if decision.status.phase == "Purging" and tenant.status.phase != "Purging":
            # The scope recorded now is what gets deleted: its claims are read from the API server, not a cache.
            world = replace(world, claims=await self._claims(decision))
            decision = decide(tenant, policy, world, now, trusted)
        if decision.status.phase == "Active" and (not trusted or not is_true(tenant.status.conditions, "Accessible")):
            # It may have been inaccessible: whether Tenure's quota is still in its namespaces (every one labeled for
            # it, the scope closing and purging share), asked of the API server. Also in those it lists that lost
            # their label, or that became protected: they stay closed, and the Accessible condition says so.
            # Never one labeled for another tenant: its state is that tenant's business, not this one's.
            owned = [fact.name for fact in tenant_namespaces(tenant, world)]
            ours = dict.fromkeys(
                [*tenant.spec.namespaces, *(n for n, f in world.namespaces.items() if f.owner == name)]
            )
            stranded = [
                n for n in ours if (f := world.namespaces.get(n)) and f.owner in (None, name) and n not in owned
            ]
            closed = await access.closed(self.kube, owned) | await access.closed(self.kube, stranded, unsure=False)
            world = replace(world, closed=closed)
            decision = decide(tenant, policy, world, now, trusted)
        decision = self._gated(tenant, decision, now)
        decision = replace(decision, status=trust.sealed(self.seal_key, name, record.uid, decision.status))
        if (
            decision.status.phase == "Purged"
            and tenant.status.phase == "Purging"
            and not await self._confirmed(decision)
        ):
            return time.time() + CONFIRM_RETRY

        record = await self._add_finalizer(record, decision)
        record = await self._write_status(record, decision)
        for event in decision.events:  # posted once the transition is recorded, even if acting on it fails
            self.events.post(TENANT.kind, name, record.uid, event.reason, event.message, event.warning)
        if decision.status.phase == "Purged":  # the proof exists before the finalizer lets the Tenant go
            body = receipts.content(name, record.uid, tenant.spec, decision.status, metadata.version("tenure"))
            try:
                await self.issuer.issue(receipts.receipt_name(name, record.uid), body)
            except ApiError as error:
                self._warn(record, "ReceiptFailed", f"No PurgeReceipt yet, so the finalizer stays: {error}")
                raise
        await self._act(record, decision)
        self._count(name, decision.status.phase)
        self._progress(name, decision)
        if decision.status.phase == "Purged" and tenant.status.phase != "Purged":
            metrics.PURGES_COMPLETED.inc()
            self.datastores.forget(name)
        if decision.status.phase != tenant.status.phase:  # the gateway blocks or unblocks the tenant at once
            for store in self.stores.datastores:
                self.datastores.recheck(store)
        wakes = [decision.wake_at.timestamp()] if decision.wake_at else []
        if any(isinstance(action, CloseAccess) for action in decision.actions):
            wakes.append(time.time() + self.access_sweep)  # things created or scaled up meanwhile are stopped
            if (due := self.access.pods_due.pop(name, None)) is not None:
                wakes.append(due)  # a pod that outlives its bounded grace period is deleted with grace 0 then
        accessible = find(decision.status.conditions, "Accessible")
        if accessible is not None and accessible.reason == "LeftClosed":
            wakes.append(time.time() + self.access_sweep)  # a person may remove what Tenure left: nothing watches it
        if any(isinstance(action, OpenAccess) for action in decision.actions):
            # A failed restore is retried at the sweep's pace, not every second.
            wakes.append(time.time() + (self.access_sweep if name in self._access_failed else REOPEN_CHECK))
        self._access_failed.discard(name)
        return min(wakes, default=None)

    def _gated(self, tenant: TenantView, decision: Decision, now: datetime) -> Decision:
        """The decision with only the actions the gate allows; those withheld are reported in status and Events."""
        allowed, withheld = self.gate.split(decision.actions)
        if not withheld:
            return decision
        made, event = dryrun.report(tenant.status.conditions, withheld, now, tenant.generation)
        status = decision.status.model_copy(update={"conditions": (*decision.status.conditions, made)})
        return replace(decision, status=status, actions=allowed, events=(*decision.events, *([event] if event else [])))

    async def _claims(self, decision: Decision) -> dict[str, ClaimFact]:
        """The claims in the namespaces a purge starting now records, as the API server has them."""
        purge = decision.status.purge
        assert purge is not None
        bodies = [body for namespace in purge.namespaces for body in await volumes.claims_in(self.kube, namespace.name)]
        return {fact.uid: fact for fact in map(claim_fact, bodies)}

    async def _confirmed(self, decision: Decision) -> bool:
        """Purged is claimed only after the API server itself says every recorded object is gone, and every
        DataStore whose rows are reported NOT purged because it was deleted is really gone."""
        purge = decision.status.purge
        assert purge is not None
        for namespace in purge.namespaces:
            if await namespaces.exists(self.kube, namespace.name, namespace.uid):
                logger.info("namespace %s is still present; not yet Purged", namespace.name)
                return False
        for volume in purge.volumes:
            if await volumes.exists(self.kube, volume.name, volume.uid):
                logger.info("volume %s is still present; not yet Purged", volume.name)
                return False
        for store in purge.stores:
            if store.state != "NotPurged":
                continue
            live = await unless_gone(self.kube.get_custom(DATA_STORE.plural, store.name))
            if live is not None:
                logger.info("DataStore %s exists again; its rows are purged before Purged", store.name)
                return False
        return True

    async def _guard(self, name: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except Gone as error:
            self.stores.tenants.drop(name)  # deleted while the watch was away
            raise Stale from error
        except Conflict as error:
            raise Stale from error

    async def _add_finalizer(self, record: TenantRecord, decision: Decision) -> TenantRecord:
        if not any(isinstance(action, AddFinalizer) for action in decision.actions):
            return record
        finalizers = [*record.finalizers, FINALIZER]
        updated = await self._guard(
            record.name,
            status.set_finalizers(self.kube, TENANT.plural, record.name, record.resource_version, finalizers),
        )
        metrics.API_WRITES.labels("finalizer").inc()
        return self._remember(updated)

    async def _write_status(self, record: TenantRecord, decision: Decision) -> TenantRecord:
        new = decision.status.to_api()
        try:
            written = await self._guard(
                record.name,
                status.write_status(
                    self.kube, TENANT.plural, record.name, record.resource_version, record.raw_status(), new
                ),
            )
        except Invalid as error:
            # A status the schema refuses must not freeze the tenant: say which field, write it with every
            # text cut short (names and lists are kept, so a purge's scope is still on record before acting).
            fields = "; ".join(error.causes) or error.message
            logger.error("tenant %s: the API server refused its status (%s); writing it shortened", record.name, fields)
            self._warn(record, "StatusRejected", f"The API server refused the status Tenure computed: {fields}")
            written = await self._guard(
                record.name,
                status.write_status(
                    self.kube,
                    TENANT.plural,
                    record.name,
                    record.resource_version,
                    record.raw_status(),
                    self._sealed(record, status.shortened(new)),
                ),
            )
        if written is None:
            return record
        metrics.API_WRITES.labels("status").inc()
        return self._remember(written)

    def _sealed(self, record: TenantRecord, raw: dict[str, Any]) -> dict[str, Any]:
        """A changed status sealed again (messages are sealed with the rest), so the next pass still trusts it."""
        return trust.sealed(self.seal_key, record.name, record.uid, TenantStatus.model_validate(raw)).to_api()

    def _remember(self, body: dict[str, Any]) -> TenantRecord:
        """Keep the object our own write returned: fresher than any watch event in flight."""
        self.stores.tenants.put(body)
        return self.stores.tenants[body["metadata"]["name"]]

    async def _act(self, record: TenantRecord, decision: Decision) -> None:
        actions = list(decision.actions)
        if any(isinstance(action, DELETIONS) for action in actions):
            fresh = (await holds.held(self.kube)).get(record.name)
            if fresh:
                logger.warning("tenant %s: legal hold %s appeared; deleting nothing", record.name, ", ".join(fresh))
                actions = [a for a in actions if not isinstance(a, DELETIONS)]
        for action in actions:
            if isinstance(action, CloseAccess | OpenAccess):
                if not await self.access(record.name, record.uid, action):
                    self._access_failed.add(record.name)
                continue
            try:
                await self._perform(record, action)
            except (ApiError, NotOwned) as error:  # a person must act on these: say so where they look
                self._warn(record, "ActionFailed", f"{type(action).__name__} failed: {error}")
                raise

    def _warn(self, record: TenantRecord, reason: str, message: str) -> None:
        self.events.post(TENANT.kind, record.name, record.uid, reason, message, warning=True)

    async def _perform(self, record: TenantRecord, action: Action) -> None:
        tenant = record.name
        match action:
            case CreateNamespace(name=namespace):
                self._wrote("namespace", await namespaces.create(self.kube, namespace, tenant))
            case ReclaimOnDelete(name=volume, uid=uid, claim_uid=claim):
                self._wrote("volume", await volumes.set_reclaim_policy(self.kube, volume, uid, claim, "Delete"))
            case RestoreReclaim(name=volume, uid=uid, claim_uid=claim, policy=policy):
                self._wrote("volume", await volumes.set_reclaim_policy(self.kube, volume, uid, claim, policy))
            case DeleteNamespace(name=namespace, uid=uid):
                outcome = await namespaces.delete(self.kube, namespace, tenant, uid, self.protected)
                self._wrote("namespace", outcome, deletion=True)
            case DeleteVolume(name=volume, uid=uid, claim_uid=claim):
                self._wrote("volume", await volumes.delete(self.kube, volume, uid, claim), deletion=True)
            case PurgeStore():
                self.datastores.purge(tenant, record.uid, action)
            case RemoveFinalizer():
                remaining = [f for f in record.finalizers if f != FINALIZER]
                await self._guard(
                    tenant, status.set_finalizers(self.kube, TENANT.plural, tenant, record.resource_version, remaining)
                )
                metrics.API_WRITES.labels("finalizer").inc()
            case AddFinalizer() | CloseAccess() | OpenAccess():
                pass  # the finalizer is added before the status write; access in self.access

    @staticmethod
    def _wrote(kind: str, outcome: Outcome, deletion: bool = False) -> None:
        """Count what the API server did: a write it refused or an object already gone is no deletion."""
        metrics.API_WRITES.labels(kind).inc()
        if deletion:
            metrics.PURGE_DELETIONS.labels(kind, outcome.value).inc()

    def _progress(self, name: str, decision: Decision | None) -> None:
        purge = decision.status.purge if decision else None
        if decision is not None and decision.status.phase == "Purging" and purge is not None:
            metrics.PURGE_REMAINING.labels(name, "namespace").set(purge.remaining_namespaces or 0)
            metrics.PURGE_REMAINING.labels(name, "volume").set(purge.remaining_volumes or 0)
            return
        for kind in ("namespace", "volume"):
            with contextlib.suppress(KeyError):
                metrics.PURGE_REMAINING.remove(name, kind)

    def _count(self, name: str, phase: str | None) -> None:
        old = self._phases.pop(name, None)
        if old is not None:
            metrics.TENANTS.labels(old).dec()
        if phase is not None:
            self._phases[name] = phase
            metrics.TENANTS.labels(phase).inc()
