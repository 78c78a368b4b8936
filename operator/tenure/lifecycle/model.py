"""What the lifecycle core decides from, and what it decides.

Inputs are plain facts — the tenant as stored, its policy, the legal holds
naming it, and what the caches know about its namespaces and volumes.
Outputs are the status to write, the actions to perform, the Events to post
and when to look again. Actions carry the uid of the object they were
decided about, so an effect can refuse to touch a replacement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tenure.api import TenantSpec, TenantStatus
from tenure.api.tenant import KeySet, StoreState

PROTECTED_NAMESPACES = frozenset({"default"})
"""Never created or deleted, whatever a Tenant lists, with every ``kube-*`` namespace; the operator's own namespace
and the configured ones are added at runtime."""
PROTECTED_PREFIX = "kube-"


@dataclass(frozen=True, slots=True)
class TenantView:
    """A Tenant as the core sees it: identity, what is asked, what was recorded."""

    name: str
    generation: int
    spec: TenantSpec
    status: TenantStatus
    deleting: bool = False
    """metadata.deletionTimestamp is set."""
    finalized: bool = False
    """Carries Tenure's finalizer, so deleting the object waits for the purge."""


@dataclass(frozen=True, slots=True)
class NamespaceFact:
    name: str
    uid: str
    resource_version: str
    owner: str | None
    """The value of the retention.tenure.dev/tenant label, if any."""
    protected: bool = False
    """Labeled retention.tenure.dev/protected=true."""
    terminating: bool = False
    created_for: str | None = None
    """The tenant Tenure created it for (its retention.tenure.dev/created-for annotation): recorded, never a proof."""


@dataclass(frozen=True, slots=True)
class ClaimFact:
    """A PersistentVolumeClaim as Tenure saw it."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class VolumeFact:
    name: str
    uid: str
    claim_namespace: str | None
    reclaim_policy: str
    phase: str
    """Available, Bound, Released or Failed."""
    provisioner: str | None
    """Who provisioned it (pv.kubernetes.io/provisioned-by); None for a statically created volume."""
    source: str = ""
    terminating: bool = False
    """Deleted, and waiting for its finalizers (pv-protection, the provisioner's)."""
    claim_uid: str | None = None
    """spec.claimRef.uid: the claim it is (or was) bound to."""


@dataclass(frozen=True, slots=True)
class StoreProgress:
    """What the purge of one DataStore reports (the runtime runs it; the core only reads it)."""

    state: StoreState
    rows_deleted: int = 0
    rows_remaining: int | None = None
    message: str = ""
    keys: Mapping[str, tuple[str, ...]] | None = None
    """The tenant's keys in the store, once resolved: recorded in status before any row is deleted."""
    key_set: KeySet | None = None
    """When the keys are too many for status: where they were recorded whole (before any row is deleted)."""
    requested: tuple[str, ...] = ()
    """The keys that were resolved."""
    residual: tuple[str, ...] = ()
    rows_shared: Mapping[str, int] = field(default_factory=dict)
    """Per table: rows with the tenant's key left because another tenant's key is on them too."""


@dataclass(frozen=True, slots=True)
class World:
    """What the operator currently knows outside the Tenant object."""

    namespaces: Mapping[str, NamespaceFact] = field(default_factory=dict)
    """The existing namespaces the tenant lists, recorded for its purge, or labeled for it."""
    volumes: Mapping[str, VolumeFact] = field(default_factory=dict)
    """Volumes whose claimRef names those namespaces, and volumes recorded for the purge."""
    claims: Mapping[str, ClaimFact] = field(default_factory=dict)
    """PersistentVolumeClaims in those namespaces, by uid."""
    holds: tuple[str, ...] = ()
    """Names of the LegalHolds that list this tenant."""
    protected: frozenset[str] = PROTECTED_NAMESPACES
    datastores: tuple[str, ...] = ()
    """Names of the DataStores that exist; a purge covers every one of them."""
    store_purges: Mapping[str, StoreProgress] = field(default_factory=dict)
    """Progress of this tenant's purge in each DataStore."""
    closed: frozenset[str] = frozenset()
    """Owned namespaces where Tenure's quota tenure-inaccessible exists (access not yet restored), as the API server
    said; looked up only for a tenant that may have been inaccessible."""
    gateway_unverified: Mapping[str, str] = field(default_factory=dict)
    """Per DataStore: why the tenant's blocking at the gateway could not be verified at the store's last check (its
    keys could not be resolved): while it must be inaccessible, its status must not say it is."""


@dataclass(frozen=True, slots=True)
class CreateNamespace:
    name: str


@dataclass(frozen=True, slots=True)
class ReclaimOnDelete:
    """Switch a volume's reclaim policy to Delete, so its storage is destroyed with its claim."""

    name: str
    uid: str
    claim_uid: str | None


@dataclass(frozen=True, slots=True)
class RestoreReclaim:
    """Put back the reclaim policy a paused purge switched, so deleting the claim meanwhile keeps the storage."""

    name: str
    uid: str
    claim_uid: str | None
    policy: str


@dataclass(frozen=True, slots=True)
class DeleteNamespace:
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class DeleteVolume:
    name: str
    uid: str
    claim_uid: str | None


@dataclass(frozen=True, slots=True)
class PurgeStore:
    """Purge the tenant's rows from a DataStore.

    Without keys, only resolve them (they are recorded in status first); with
    the recorded keys, delete.
    """

    name: str
    keys: Mapping[str, tuple[str, ...]] | None
    rows_deleted: int = 0
    requested: tuple[str, ...] = ()
    """The tenant's keys to resolve (spec.dataKeys, or its name)."""
    key_set: KeySet | None = None
    """The resolved keys recorded outside status (when too many for it): read back and checked by digest."""

    @property
    def resolved(self) -> bool:
        return self.keys is not None or self.key_set is not None


@dataclass(frozen=True, slots=True)
class CloseAccess:
    """Make one owned namespace inaccessible (idempotent: done on every pass while the tenant is inaccessible)."""

    namespace: str
    uid: str


@dataclass(frozen=True, slots=True)
class OpenAccess:
    """Restore one owned namespace that Tenure made inaccessible (its quota tenure-inaccessible is still there)."""

    namespace: str
    uid: str


@dataclass(frozen=True, slots=True)
class AddFinalizer:
    pass


@dataclass(frozen=True, slots=True)
class RemoveFinalizer:
    pass


Action = (
    CreateNamespace
    | ReclaimOnDelete
    | RestoreReclaim
    | DeleteNamespace
    | DeleteVolume
    | PurgeStore
    | CloseAccess
    | OpenAccess
    | AddFinalizer
    | RemoveFinalizer
)
DELETIONS = (DeleteNamespace, DeleteVolume, PurgeStore, ReclaimOnDelete)
"""Actions that destroy data or arm its destruction: never issued before the API server confirms no hold."""


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to post on the Tenant."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The status the tenant should have now, what to do, what to tell people, and when to look again."""

    status: TenantStatus
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    wake_at: datetime | None = None
