"""A fake cluster for the pure lifecycle core: facts in, actions applied, no I/O."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tenure.api import RetentionPolicySpec, TenantSpec, TenantStatus
from tenure.lifecycle import (
    PROTECTED_NAMESPACES,
    AddFinalizer,
    ClaimFact,
    CloseAccess,
    CreateNamespace,
    Decision,
    DeleteNamespace,
    DeleteVolume,
    NamespaceFact,
    OpenAccess,
    PurgeStore,
    ReclaimOnDelete,
    RemoveFinalizer,
    RestoreReclaim,
    StoreProgress,
    TenantView,
    VolumeFact,
    World,
    decide,
    purge,
    trust,
)

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
KEY = b"k" * 32
_ids = itertools.count(1)


def uid() -> str:
    return f"uid-{next(_ids)}"


@dataclass
class FakeCluster:
    """One tenant, its policy and holds, and the namespaces and volumes around it."""

    name: str = "acme"
    uid: str = "tenant-uid"
    spec: TenantSpec = field(default_factory=lambda: TenantSpec(retention_policy="p", namespaces=("acme-a",)))
    status: TenantStatus = field(default_factory=TenantStatus)
    generation: int = 1
    deleting: bool = False
    finalized: bool = False
    gone: bool = False
    policy: RetentionPolicySpec | None = field(
        default_factory=lambda: RetentionPolicySpec(
            suspension_grace_period=timedelta(days=14), expired_data_retention=timedelta(days=30)
        )
    )
    holds: tuple[str, ...] = ()
    protected: frozenset[str] = PROTECTED_NAMESPACES
    namespaces: dict[str, NamespaceFact] = field(default_factory=dict)
    volumes: dict[str, VolumeFact] = field(default_factory=dict)
    claims: dict[str, ClaimFact] = field(default_factory=dict)
    """PersistentVolumeClaims by uid."""
    datastores: tuple[str, ...] = ("db",)
    store_purges: dict[str, StoreProgress] = field(default_factory=dict)
    rows: int = 3
    """The tenant's rows in DataStore db."""
    closed: set[str] = field(default_factory=set)
    """Namespaces carrying Tenure's quota tenure-inaccessible."""
    gateway_unverified: dict[str, str] = field(default_factory=dict)
    """Per DataStore: why the tenant's blocking at the gateway could not be verified."""
    now: datetime = T0
    decisions: list[Decision] = field(default_factory=list)

    def edit(self, **changes: Any) -> None:
        self.spec = self.spec.model_copy(update=changes)
        self.generation += 1

    def world(self) -> World:
        return World(
            namespaces=dict(self.namespaces),
            volumes=dict(self.volumes),
            claims=dict(self.claims),
            holds=self.holds,
            protected=self.protected,
            datastores=self.datastores,
            store_purges=dict(self.store_purges),
            closed=frozenset(self.closed),
            gateway_unverified=dict(self.gateway_unverified),
        )

    def view(self) -> TenantView:
        return TenantView(
            name=self.name,
            generation=self.generation,
            spec=self.spec,
            status=self.status,
            deleting=self.deleting,
            finalized=self.finalized,
        )

    def decide(self) -> Decision:
        """One decision as the reconciler makes it: verify the seal (or rebuild), decide, seal what is written."""
        tenant, trusted = trust.view(self.view(), self.uid, KEY, self.policy, self.now)
        decision = decide(tenant, self.policy, self.world(), self.now, trusted)
        return replace(decision, status=trust.sealed(KEY, self.name, self.uid, decision.status))

    def reconcile(self) -> Decision:
        decision = self.decide()
        self.decisions.append(decision)
        self.status = decision.status
        for action in decision.actions:
            self.apply(action)
        return decision

    def forge(self, **fields: Any) -> None:
        """Someone else writes status (a merge patch: the old seal stays and no longer matches)."""
        self.status = self.status.model_copy(update=fields)

    def settle(self, passes: int = 6) -> Decision:
        """Reconcile until nothing changes, as watch events would drive it."""
        decision = self.reconcile()
        for _ in range(passes):
            self.controllers()
            if self.gone:
                break
            decision = self.reconcile()
        return decision

    def bound_volume(self, name: str, namespace: str, provisioner: str | None = None, policy: str = "Retain") -> None:
        """A claim in namespace and the volume bound to it, as the volume binder leaves them."""
        claim = ClaimFact(namespace, f"claim-{name}", uid())
        self.claims[claim.uid] = claim
        self.volumes[name] = VolumeFact(
            name, uid(), namespace, policy, "Bound", provisioner=provisioner, source="hostPath", claim_uid=claim.uid
        )

    def close_until(self, now: datetime) -> None:
        """Settle, close the account, settle (Expired, purgeAfter = T0 + 30 days), then move the clock."""
        self.settle()
        self.edit(state="Closed")
        self.settle()
        self.now = now

    def apply(self, action: object) -> None:
        match action:
            case CreateNamespace(name=name):
                if name not in self.namespaces:
                    self.namespaces[name] = NamespaceFact(name, uid(), "1", owner=self.name, created_for=self.name)
            case ReclaimOnDelete(name=name, uid=volume_uid, claim_uid=claim_uid):
                fact = self.volumes.get(name)
                if fact is not None and fact.uid == volume_uid and fact.claim_uid == claim_uid:
                    self.volumes[name] = replace(fact, reclaim_policy="Delete")
            case RestoreReclaim(name=name, uid=volume_uid, claim_uid=claim_uid, policy=policy):
                fact = self.volumes.get(name)
                if fact is not None and fact.uid == volume_uid and fact.claim_uid == claim_uid:
                    self.volumes[name] = replace(fact, reclaim_policy=policy)
            case DeleteNamespace(name=name, uid=ns_uid):
                fact = self.namespaces.get(name)
                if fact is not None and fact.uid == ns_uid:
                    self.namespaces[name] = replace(fact, terminating=True)
            case DeleteVolume(name=name, uid=volume_uid, claim_uid=claim_uid):
                fact = self.volumes.get(name)
                if fact is not None and fact.uid == volume_uid and fact.claim_uid == claim_uid:
                    self.volumes[name] = replace(fact, terminating=True)  # pv-protection holds it a moment
            case PurgeStore(name=name, keys=None, key_set=None, requested=requested):
                keys = {"key": requested}  # as the runtime does: a set too large for status is recorded outside it
                recorded = None if purge.listable(keys) else purge.key_set(keys, parts=1)
                self.store_purges[name] = StoreProgress("Resolved", keys=keys, key_set=recorded, requested=requested)
            case PurgeStore(name=name):
                deleted, self.rows = self.rows, 0
                self.store_purges[name] = StoreProgress("Done", deleted, 0)
            case CloseAccess(namespace=name):
                self.closed.add(name)
            case OpenAccess(namespace=name):
                self.closed.discard(name)
            case AddFinalizer():
                self.finalized = True
            case RemoveFinalizer():
                self.finalized = False
                if self.deleting:
                    self.gone = True

    def controllers(self) -> None:
        """What kube-controller-manager does: finish namespace and volume deletion, release volumes."""
        for name, fact in list(self.namespaces.items()):
            if fact.terminating:
                del self.namespaces[name]
                self.closed.discard(name)
        self.claims = {key: claim for key, claim in self.claims.items() if claim.namespace in self.namespaces}
        for name, volume in list(self.volumes.items()):
            if volume.terminating:
                del self.volumes[name]
            elif volume.claim_namespace is not None and volume.claim_namespace not in self.namespaces:
                if volume.reclaim_policy == "Delete" and volume.provisioner is not None:
                    del self.volumes[name]
                elif volume.phase == "Bound":
                    phase = "Failed" if volume.reclaim_policy == "Delete" else "Released"
                    self.volumes[name] = replace(volume, phase=phase)
        if self.deleting and not self.finalized:
            self.gone = True
