"""What the operator remembers about the cluster, and which tenants each change concerns.

Policies, legal holds, DataStores, namespaces, volumes and claims are listed from
the API server at startup, before kopf starts watching tenants, so no tenant
is ever decided before every legal hold is known and before the namespaces
it owns are; their informers (:mod:`~tenure.runtime.informer`) keep them
current. Tenants arrive through kopf's watch events.

Every kind is a :class:`Kind`: records by name, one put/drop path that keeps
the newest resourceVersion only, and :class:`Index` es by a key of the
record (as controller-runtime's ``IndexField``). A put names the tenants
concerned only when the facts decisions read changed, so a re-list of
unchanged objects wakes nobody.

Tenure does not use kopf indexes for this: every indexed object's readiness
handshake wakes every waiting object (O(n²) at 10,000 tenants). Tenants are
kept compact — the watch body's spec and status as JSON bytes, parsed when
the tenant is decided — about 1.5 KB each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tenure.api import (
    DATA_STORE,
    LEGAL_HOLD,
    PROTECTED_LABEL,
    RETENTION_POLICY,
    TENANT_LABEL,
    DataStoreSpec,
    RetentionPolicySpec,
    TenantSpec,
    TenantStatus,
)
from tenure.api.meta import CREATED_ANNOTATION
from tenure.lifecycle import ClaimFact, NamespaceFact, StoreProgress, TenantView, VolumeFact, World, trust
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
                if isinstance(keys, list)  # an empty list: no keys in that store
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
        created_for=(meta.get("annotations") or {}).get(CREATED_ANNOTATION),
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
        claim_uid=claim.get("uid"),
    )


def claim_fact(body: Body) -> ClaimFact:
    meta = body.get("metadata") or {}
    return ClaimFact(namespace=meta.get("namespace", ""), name=meta["name"], uid=meta.get("uid", ""))


def claim_key(body: Body) -> str:
    """PersistentVolumeClaims are namespaced: stored by namespace/name."""
    meta = body["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def newer(old: str, new: str) -> bool:
    """Whether resourceVersion ``new`` may replace ``old``: never go back to an older one we already saw.

    resourceVersions are opaque, but etcd-backed API servers issue increasing
    integers; only then are they compared, otherwise the newest arrival wins.
    """
    return not (old.isdigit() and new.isdigit()) or int(new) >= int(old)


def known(old: str | None, new: str) -> bool:
    """Whether resourceVersion ``new`` is the one stored (``old``) or older: e.g. the echo of our own write."""
    return old is not None and new != "" and (old == new or not newer(old, new))


R = TypeVar("R")
Keys = Callable[[R], Iterable[str]]
"""An index's keys for one record (e.g. a tenant's namespaces)."""


class Index(Generic[R]):
    """Object names by key, kept current by the :class:`Kind` that owns it (as controller-runtime's IndexField)."""

    def __init__(self, keys: Keys[R]) -> None:
        self._keys = keys
        self._members: dict[str, set[str]] = {}

    def __getitem__(self, key: str) -> frozenset[str]:
        return frozenset(self._members.get(key, ()))

    def keys(self) -> set[str]:
        return set(self._members)

    def link(self, name: str, record: R) -> None:
        for key in self._keys(record):
            self._members.setdefault(key, set()).add(name)

    def unlink(self, name: str, record: R) -> None:
        for key in self._keys(record):
            members = self._members.get(key)
            if members is not None:
                members.discard(name)
                if not members:
                    del self._members[key]


@dataclass(frozen=True, slots=True)
class Changes:
    names: set[str]
    """Objects stored in a new version, or dropped."""
    tenants: set[str]
    """Tenants whose facts changed with them."""


class Kind(Mapping[str, R]):
    """Every stored object of one kind, by name, with its indexes: the one put/drop path for all kinds.

    ``put`` keeps the newest resourceVersion only and returns None for one
    already known (a re-list of an unchanged object, our own write's echo);
    otherwise the tenants concerned, which is empty unless the ``facts`` that
    decisions read changed. ``concerns`` names the tenants a stored version
    concerns; a change concerns those of the old and the new version.
    """

    def __init__(
        self,
        parse: Callable[[Body], R],
        concerns: Callable[[str, R], Iterable[str]] = lambda name, record: (),
        facts: Callable[[R], object] = lambda record: record,
        key: Callable[[Body], str] = lambda body: str(body["metadata"]["name"]),
        **indexes: Keys[R],
    ) -> None:
        self._parse = parse
        self.key = key
        """An object's name in this store (namespace/name for a namespaced kind)."""
        self._concerns = concerns
        self._facts = facts
        self._records: dict[str, R] = {}
        self._versions: dict[str, str] = {}
        self.indexes = {name: Index(keys) for name, keys in indexes.items()}

    def __getitem__(self, name: str) -> R:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def snapshot(self) -> list[tuple[str, R]]:
        """Every (name, record), copied at once: safe to read from another thread (the metrics server's)."""
        return list(self._records.items())

    def put(self, body: Body) -> set[str] | None:
        meta = body.get("metadata") or {}
        name, version = self.key(body), meta.get("resourceVersion", "")
        if known(self._versions.get(name), version):
            return None
        record = self._parse(body)
        concerned: set[str] = set()
        changed = True
        if name in self._records:
            previous = self._records[name]
            changed = self._facts(previous) != self._facts(record)
            if changed:
                concerned.update(self._concerns(name, previous))
            self._unlink(name)
        self._records[name], self._versions[name] = record, version
        for index in self.indexes.values():
            index.link(name, record)
        if changed:
            concerned.update(self._concerns(name, record))
        return concerned

    def drop(self, name: str) -> set[str]:
        if name not in self._records:
            return set()
        concerned = set(self._concerns(name, self._records[name]))
        self._unlink(name)
        del self._records[name], self._versions[name]
        return concerned

    def replace(self, bodies: Iterable[Body]) -> Changes:
        """Replace every stored object with a fresh listing: what changed, and the tenants concerned."""
        changes = Changes(set(), set())
        seen: set[str] = set()
        for body in bodies:
            name = self.key(body)
            seen.add(name)
            if (concerned := self.put(body)) is not None:
                changes.names.add(name)
                changes.tenants.update(concerned)
        for gone in self._records.keys() - seen:
            changes.names.add(gone)
            changes.tenants.update(self.drop(gone))
        return changes

    def _unlink(self, name: str) -> None:
        for index in self.indexes.values():
            index.unlink(name, self._records[name])


def _readable_policy(body: Body) -> RetentionPolicySpec | None:
    """A policy's spec; an unreadable one counts as missing."""
    try:
        return RetentionPolicySpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        logger.error(
            "RetentionPolicy %s is unreadable and treated as missing: %s", body["metadata"]["name"], describe(error)
        )
        return None


class Stores:
    """The in-memory view of the cluster, and which tenants each change concerns.

    One :class:`Kind` per watched kind, keyed by its plural in ``kinds``. To
    add one: a ``parse`` from the watch body to a compact record, the
    ``concerns`` naming the tenants it matters to, and its indexes.
    """

    def __init__(self, seal_key: bytes = b"") -> None:
        self.seal_key = seal_key
        """Verifies a Purged status before it releases a tenant's DataStore keys."""
        self.tenants: Kind[TenantRecord] = Kind(
            lambda body: TenantRecord.from_body(
                body, seal_key
            ),  # every new version is decided again (facts: the whole record)
            concerns=lambda name, record: (name,),
            by_policy=lambda record: (record.policy,),
            by_namespace=lambda record: record.namespaces,
        )
        self.policies: Kind[RetentionPolicySpec | None] = Kind(
            _readable_policy, concerns=lambda name, record: self.tenants.indexes["by_policy"][name]
        )
        self.holds: Kind[HoldRecord] = Kind(
            HoldRecord.from_body,
            concerns=lambda name, record: record.tenants,
            facts=lambda record: record.tenants,
            by_tenant=lambda record: record.tenants,
        )
        self.namespaces: Kind[NamespaceFact] = Kind(
            namespace_fact,
            concerns=lambda name, fact: (*self._in_namespace(name), *([fact.owner] if fact.owner else [])),
            facts=lambda fact: replace(fact, resource_version=""),
            by_owner=lambda fact: (fact.owner,) if fact.owner else (),
        )
        self.volumes: Kind[VolumeFact] = Kind(
            volume_fact,
            concerns=lambda name, fact: self._in_namespace(fact.claim_namespace),
            by_namespace=lambda fact: (fact.claim_namespace,) if fact.claim_namespace else (),
        )
        self.claims: Kind[ClaimFact] = Kind(
            claim_fact,
            concerns=lambda key, fact: self._in_namespace(fact.namespace),
            key=claim_key,
            by_namespace=lambda fact: (fact.namespace,),
        )
        self.datastores: Kind[DataStoreRecord] = Kind(DataStoreRecord.from_body)  # concern no tenant until a purge
        self.kinds: dict[str, Kind[Any]] = {
            RETENTION_POLICY.plural: self.policies,
            LEGAL_HOLD.plural: self.holds,
            DATA_STORE.plural: self.datastores,
            "namespaces": self.namespaces,
            "persistentvolumes": self.volumes,
            "persistentvolumeclaims": self.claims,
        }
        """The kinds listed at startup and re-listed periodically (tenants come from their own watch)."""

    def _in_namespace(self, namespace: str | None) -> frozenset[str]:
        """Tenants that list or recorded this namespace."""
        return self.tenants.indexes["by_namespace"][namespace] if namespace else frozenset()

    def policy(self, name: str) -> RetentionPolicySpec | None:
        return self.policies.get(name)

    def holds_of(self, tenant: str) -> frozenset[str]:
        return self.holds.indexes["by_tenant"][tenant]

    def held_tenants(self) -> set[str]:
        return self.holds.indexes["by_tenant"].keys()

    # What the core decides from

    def world(self, tenant: TenantView, protected: frozenset[str], store_purges: Mapping[str, StoreProgress]) -> World:
        purge = tenant.status.purge
        names = set(tenant.spec.namespaces) | ({n.name for n in purge.namespaces} if purge else set())
        names |= self.namespaces.indexes["by_owner"][tenant.name]
        namespaces = {name: fact for name in names if (fact := self.namespaces.get(name)) is not None}
        in_namespace = self.volumes.indexes["by_namespace"]
        volumes = {volume: self.volumes[volume] for name in names for volume in in_namespace[name]}
        for recorded in purge.volumes if purge else ():
            if (volume := self.volumes.get(recorded.name)) is not None:
                volumes[volume.name] = volume
        claims_in = self.claims.indexes["by_namespace"]
        claims = {self.claims[key].uid: self.claims[key] for name in names for key in claims_in[name]}
        return World(
            namespaces=namespaces,
            volumes=volumes,
            claims=claims,
            holds=tuple(sorted(self.holds_of(tenant.name))),
            protected=protected,
            datastores=tuple(sorted(self.datastores)),
            store_purges=store_purges,
        )
