"""What the operator remembers about the cluster, kept current by kopf's watches.

Policies, legal holds, namespaces and volumes are listed from the API server
at startup, before kopf starts watching, so no tenant is ever decided before
every legal hold is known and before the namespaces it owns are; watch
events keep them current and a periodic re-list drops anything a watch
missed. Tenants arrive through their watch events.

Tenure does not use kopf indexes for this: every indexed object's readiness
handshake wakes every waiting object (O(n²) at 10,000 tenants). Tenants are
kept compact — the watch body's spec and status as JSON bytes, parsed when
the tenant is decided — about 1.5 KB each.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tenure.api import PROTECTED_LABEL, TENANT_LABEL, DataStoreSpec, RetentionPolicySpec, TenantSpec, TenantStatus
from tenure.lifecycle import NamespaceFact, StoreProgress, TenantView, VolumeFact, World, trust
from tenure.lifecycle.purge import keys_in

FINALIZER = "retention.tenure.dev/purge"
logger = logging.getLogger(__name__)

Body = Mapping[str, Any]


class Unreadable(Exception):
    """A stored object does not match the API models (e.g. written under an older CRD)."""


class _Stored(BaseModel):
    spec: TenantSpec
    status: TenantStatus


@dataclass(frozen=True, slots=True)
class Claim:
    """The keys a tenant claims in DataStores, and its phase (a Purged tenant claims nothing any more)."""

    name: str
    phase: str
    data_keys: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_body(cls, body: Body, seal_key: bytes) -> Claim:
        spec = body.get("spec") or {}
        meta, status = body["metadata"], body.get("status") or {}
        phase = str(status.get("phase", ""))
        if phase == "Purged" and not trust.purged(seal_key, meta["name"], meta.get("uid", ""), status):
            phase = "Unsealed"  # a Purged that Tenure did not seal releases nothing
        return cls(
            name=meta["name"],
            phase=phase,
            data_keys={
                store: tuple(map(str, keys))
                for store, keys in (spec.get("dataKeys") or {}).items()
                if isinstance(keys, list) and keys
            },
        )

    def keys_in(self, store: str) -> tuple[str, ...]:
        return keys_in(self.name, self.data_keys, store)


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A Tenant as last seen: identity and preconditions for writes, spec and status as compact JSON."""

    name: str
    uid: str
    resource_version: str
    generation: int
    deleting: bool
    finalizers: tuple[str, ...]
    policy: str
    namespaces: tuple[str, ...]
    """Listed in spec, or recorded for the purge: the namespaces whose events concern this tenant."""
    claim: Claim
    payload: bytes

    @classmethod
    def from_body(cls, body: Body, seal_key: bytes) -> TenantRecord:
        meta = body.get("metadata") or {}
        spec = dict(body.get("spec") or {})
        status = dict(body.get("status") or {})
        recorded = [n.get("name", "") for n in (status.get("purge") or {}).get("namespaces", [])]
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            resource_version=meta.get("resourceVersion", ""),
            generation=int(meta.get("generation", 0)),
            deleting=meta.get("deletionTimestamp") is not None,
            finalizers=tuple(meta.get("finalizers") or ()),
            policy=spec.get("retentionPolicy", "default"),
            namespaces=tuple(dict.fromkeys([*spec.get("namespaces", []), *recorded])),
            claim=Claim.from_body(body, seal_key),
            payload=json.dumps({"spec": spec, "status": status}, separators=(",", ":")).encode(),
        )

    def raw_status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.payload)["status"]
        return status

    def view(self) -> TenantView:
        """The lifecycle core's view; raises Unreadable naming each bad field."""
        try:
            stored = _Stored.model_validate_json(self.payload)
        except ValidationError as error:
            raise Unreadable(describe(error)) from error
        return TenantView(
            name=self.name,
            generation=self.generation,
            spec=stored.spec,
            status=stored.status,
            deleting=self.deleting,
            finalized=FINALIZER in self.finalizers,
        )


@dataclass(frozen=True, slots=True)
class HoldRecord:
    name: str
    tenants: frozenset[str]
    generation: int
    resource_version: str
    status: dict[str, Any]

    @classmethod
    def from_body(cls, body: Body) -> HoldRecord:
        meta = body.get("metadata") or {}
        return cls(
            name=meta["name"],
            tenants=frozenset((body.get("spec") or {}).get("tenants", [])),
            generation=int(meta.get("generation", 0)),
            resource_version=meta.get("resourceVersion", ""),
            status=dict(body.get("status") or {}),
        )


@dataclass(frozen=True)
class DataStoreRecord:
    name: str
    generation: int
    resource_version: str
    spec: DataStoreSpec | None
    error: str | None
    status: dict[str, Any]

    @classmethod
    def from_body(cls, body: Body) -> DataStoreRecord:
        meta = body.get("metadata") or {}
        try:
            spec, error = DataStoreSpec.model_validate(dict(body.get("spec") or {})), None
        except ValidationError as problem:
            spec, error = None, describe(problem)
        return cls(
            meta["name"],
            int(meta.get("generation", 0)),
            meta.get("resourceVersion", ""),
            spec,
            error,
            dict(body.get("status") or {}),
        )


def describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors(include_url=False)
    )


def namespace_fact(body: Body) -> NamespaceFact:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    return NamespaceFact(
        name=meta["name"],
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        owner=labels.get(TENANT_LABEL),
        protected=labels.get(PROTECTED_LABEL) == "true",
        terminating=meta.get("deletionTimestamp") is not None,
    )


_VOLUME_FIELDS = {
    "accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity", "persistentVolumeReclaimPolicy",
    "storageClassName", "volumeMode", "volumeAttributesClassName",
}  # fmt: skip
"""PersistentVolumeSpec fields that are not the volume source (hostPath, csi, nfs, ...)."""


def volume_fact(body: Body) -> VolumeFact:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    claim = spec.get("claimRef") or {}
    source = next((key for key in spec if key not in _VOLUME_FIELDS), "")
    if source == "csi":
        source = f"csi:{spec['csi'].get('driver', '')}"
    return VolumeFact(
        name=meta["name"],
        uid=meta.get("uid", ""),
        claim_namespace=claim.get("namespace"),
        reclaim_policy=spec.get("persistentVolumeReclaimPolicy", "Retain"),
        phase=(body.get("status") or {}).get("phase", "Pending"),
        provisioner=(meta.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by"),
        source=source,
        terminating=meta.get("deletionTimestamp") is not None,
    )


def newer(old: str, new: str) -> bool:
    """Whether resourceVersion ``new`` may replace ``old``: never go back to an older one we already saw.

    resourceVersions are opaque, but etcd-backed API servers issue increasing
    integers; only then are they compared, otherwise the newest arrival wins.
    """
    return not (old.isdigit() and new.isdigit()) or int(new) >= int(old)


def known(old: str | None, new: str) -> bool:
    """Whether resourceVersion ``new`` is the one stored (``old``) or older: e.g. the echo of our own write."""
    return old is not None and (old == new or not newer(old, new))


class Stores:
    """The in-memory view of the cluster, and which tenants each change concerns."""

    def __init__(self, seal_key: bytes = b"") -> None:
        self.seal_key = seal_key
        """Verifies a Purged status before it releases a tenant's DataStore keys."""
        self.tenants: dict[str, TenantRecord] = {}
        self._tenants_by_policy: defaultdict[str, set[str]] = defaultdict(set)
        self._tenants_by_namespace: defaultdict[str, set[str]] = defaultdict(set)
        self.policies: dict[str, RetentionPolicySpec | None] = {}
        self.holds: dict[str, HoldRecord] = {}
        self._holds_by_tenant: defaultdict[str, set[str]] = defaultdict(set)
        self.namespaces: dict[str, NamespaceFact] = {}
        self._namespaces_by_owner: defaultdict[str, set[str]] = defaultdict(set)
        self.volumes: dict[str, VolumeFact] = {}
        self._volumes_by_namespace: defaultdict[str, set[str]] = defaultdict(set)
        self.datastores: dict[str, DataStoreRecord] = {}

    # Tenants

    def put_tenant(self, body: Body) -> bool:
        """Store a tenant; False when this version (or a newer one) is already known, e.g. our own write's echo."""
        meta = body.get("metadata") or {}
        old = self.tenants.get(meta.get("name", ""))
        version = meta.get("resourceVersion", "")
        if known(old.resource_version if old else None, version):
            return False
        record = TenantRecord.from_body(body, self.seal_key)
        self.drop_tenant(record.name)
        self.tenants[record.name] = record
        self._tenants_by_policy[record.policy].add(record.name)
        for namespace in record.namespaces:
            self._tenants_by_namespace[namespace].add(record.name)
        return True

    def drop_tenant(self, name: str) -> None:
        old = self.tenants.pop(name, None)
        if old is None:
            return
        _unlink(self._tenants_by_policy, old.policy, name)
        for namespace in old.namespaces:
            _unlink(self._tenants_by_namespace, namespace, name)

    def tenants_of_policy(self, policy: str) -> set[str]:
        return set(self._tenants_by_policy.get(policy, ()))

    # Policies and holds

    def put_policy(self, body: Body) -> set[str]:
        """Store a policy (an unreadable one counts as missing); returns the tenants naming it."""
        name = body["metadata"]["name"]
        try:
            self.policies[name] = RetentionPolicySpec.model_validate(dict(body.get("spec") or {}))
        except ValidationError as error:
            logger.error("RetentionPolicy %s is unreadable and treated as missing: %s", name, describe(error))
            self.policies[name] = None
        return self.tenants_of_policy(name)

    def drop_policy(self, name: str) -> set[str]:
        self.policies.pop(name, None)
        return self.tenants_of_policy(name)

    def policy(self, name: str) -> RetentionPolicySpec | None:
        return self.policies.get(name)

    def put_hold(self, body: Body) -> set[str]:
        """Store a hold; returns the tenants it named before or names now."""
        record = HoldRecord.from_body(body)
        affected = self.drop_hold(record.name)
        self.holds[record.name] = record
        for tenant in record.tenants:
            self._holds_by_tenant[tenant].add(record.name)
        return affected | record.tenants

    def drop_hold(self, name: str) -> set[str]:
        old = self.holds.pop(name, None)
        if old is None:
            return set()
        for tenant in old.tenants:
            _unlink(self._holds_by_tenant, tenant, name)
        return set(old.tenants)

    def holds_of(self, tenant: str) -> set[str]:
        return set(self._holds_by_tenant.get(tenant, ()))

    def held_tenants(self) -> set[str]:
        return set(self._holds_by_tenant)

    # DataStores

    def put_datastore(self, body: Body) -> bool:
        """Store a DataStore; False when this version is already known (our own status write's echo)."""
        record = DataStoreRecord.from_body(body)
        old = self.datastores.get(record.name)
        if known(old.resource_version if old else None, record.resource_version):
            return False
        self.datastores[record.name] = record
        return True

    def _relist_datastore(self, body: Body) -> set[str]:
        self.put_datastore(body)
        return set()  # DataStore changes concern no tenant until it purges one

    def drop_datastore(self, name: str) -> set[str]:
        self.datastores.pop(name, None)
        return set()

    # Namespaces and volumes

    def put_namespace(self, body: Body) -> set[str]:
        """Store a namespace; returns the tenants it concerns."""
        fact = namespace_fact(body)
        old = self.namespaces.get(fact.name)
        if old is None or newer(old.resource_version, fact.resource_version):
            self._unlink_namespace(old)
            self.namespaces[fact.name] = fact
            if fact.owner:
                self._namespaces_by_owner[fact.owner].add(fact.name)
        return self._namespace_tenants(fact.name, old, fact)

    def drop_namespace(self, name: str) -> set[str]:
        old = self.namespaces.pop(name, None)
        self._unlink_namespace(old)
        return self._namespace_tenants(name, old)

    def _unlink_namespace(self, fact: NamespaceFact | None) -> None:
        if fact is not None and fact.owner:
            _unlink(self._namespaces_by_owner, fact.owner, fact.name)

    def _namespace_tenants(self, name: str, *facts: NamespaceFact | None) -> set[str]:
        owners = {fact.owner for fact in facts if fact is not None and fact.owner}
        return owners | self._tenants_by_namespace.get(name, set())

    def put_volume(self, body: Body) -> set[str]:
        """Store a volume; returns the tenants it concerns."""
        fact = volume_fact(body)
        affected = self.drop_volume(fact.name)
        self.volumes[fact.name] = fact
        if fact.claim_namespace:
            self._volumes_by_namespace[fact.claim_namespace].add(fact.name)
            affected |= self._tenants_by_namespace.get(fact.claim_namespace, set())
        return affected

    def drop_volume(self, name: str) -> set[str]:
        old = self.volumes.pop(name, None)
        if old is None or not old.claim_namespace:
            return set()
        _unlink(self._volumes_by_namespace, old.claim_namespace, name)
        return set(self._tenants_by_namespace.get(old.claim_namespace, ()))

    def replace(self, kind: str, bodies: Iterable[Body]) -> set[str]:
        """Replace every stored object of a kind with a fresh listing; returns the tenants concerned."""
        stores: dict[str, tuple[Callable[[Body], set[str]], Callable[[str], set[str]], Mapping[str, object]]] = {
            "namespaces": (self.put_namespace, self.drop_namespace, self.namespaces),
            "persistentvolumes": (self.put_volume, self.drop_volume, self.volumes),
            "legalholds": (self.put_hold, self.drop_hold, self.holds),
            "retentionpolicies": (self.put_policy, self.drop_policy, self.policies),
            "datastores": (self._relist_datastore, self.drop_datastore, self.datastores),
        }
        put, drop, current = stores[kind]
        affected: set[str] = set()
        seen: set[str] = set()
        for body in bodies:
            seen.add(body["metadata"]["name"])
            affected |= put(body)
        for gone in set(current) - seen:
            affected |= drop(gone)
        return affected

    # What the core decides from

    def world(self, tenant: TenantView, protected: frozenset[str], store_purges: Mapping[str, StoreProgress]) -> World:
        purge = tenant.status.purge
        names = set(tenant.spec.namespaces) | ({n.name for n in purge.namespaces} if purge else set())
        names |= self._namespaces_by_owner.get(tenant.name, set())
        namespaces = {name: fact for name in names if (fact := self.namespaces.get(name)) is not None}
        volumes = {
            volume: self.volumes[volume] for name in names for volume in self._volumes_by_namespace.get(name, ())
        }
        for recorded in purge.volumes if purge else ():
            if (volume := self.volumes.get(recorded.name)) is not None:
                volumes[volume.name] = volume
        return World(
            namespaces=namespaces,
            volumes=volumes,
            holds=tuple(sorted(self.holds_of(tenant.name))),
            protected=protected,
            datastores=tuple(sorted(self.datastores)),
            store_purges=store_purges,
        )


def _unlink(index: defaultdict[str, set[str]], key: str, value: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(value)
        if not members:
            del index[key]
