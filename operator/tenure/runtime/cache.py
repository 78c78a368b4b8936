"""What the operator remembers about the cluster, kept current by kopf's watches.

kopf indexes are filled from each resource's initial listing before any
other handler runs, so the scheduler never decides about a tenant before
every policy and legal hold is known. The index functions only parse; they
never call the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from tenure.api import PROTECTED_LABEL, TENANT_LABEL, RetentionPolicySpec, TenantSpec, TenantStatus
from tenure.lifecycle import NamespaceFact, TenantView, VolumeFact, World

FINALIZER = "retention.tenure.dev/purge"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A Tenant as last seen by the watch: the core's view plus what writes need."""

    name: str
    uid: str
    resource_version: str
    finalizers: tuple[str, ...]
    raw_status: dict[str, Any]
    view: TenantView | None
    error: str | None = None

    def updated(self, body: dict[str, Any]) -> TenantRecord:
        """This record after our own write, from the object the API server returned."""
        return tenant_record(body)


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    spec: RetentionPolicySpec | None
    error: str | None = None


def tenant_record(body: Mapping[str, Any]) -> TenantRecord:
    meta = body.get("metadata", {})
    raw_status = dict(body.get("status") or {})
    common = {
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "resource_version": meta.get("resourceVersion", ""),
        "finalizers": tuple(meta.get("finalizers") or ()),
        "raw_status": raw_status,
    }
    try:
        view = TenantView(
            name=meta["name"],
            generation=int(meta.get("generation", 0)),
            spec=TenantSpec.model_validate(dict(body.get("spec") or {})),
            status=TenantStatus.model_validate(raw_status),
            deleting=meta.get("deletionTimestamp") is not None,
            finalized=FINALIZER in (meta.get("finalizers") or ()),
        )
    except ValidationError as error:
        return TenantRecord(**common, view=None, error=_describe(error))
    return TenantRecord(**common, view=view)


def policy_record(spec: kopf.Spec) -> PolicyRecord:
    try:
        return PolicyRecord(RetentionPolicySpec.model_validate(dict(spec)))
    except ValidationError as error:
        return PolicyRecord(None, _describe(error))


def namespace_fact(body: Mapping[str, Any]) -> NamespaceFact:
    meta = body.get("metadata", {})
    labels = meta.get("labels") or {}
    return NamespaceFact(
        name=meta["name"],
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        owner=labels.get(TENANT_LABEL),
        protected=labels.get(PROTECTED_LABEL) == "true",
        terminating=meta.get("deletionTimestamp") is not None,
    )


def volume_fact(body: Mapping[str, Any]) -> VolumeFact:
    meta = body.get("metadata", {})
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
    )


_VOLUME_FIELDS = {
    "accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity", "persistentVolumeReclaimPolicy",
    "storageClassName", "volumeMode", "volumeAttributesClassName",
}  # fmt: skip
"""PersistentVolumeSpec fields that are not the volume source (hostPath, csi, nfs, ...)."""


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors(include_url=False)
    )


def only(index: kopf.Index[str, Any], key: str) -> Any:
    """The single value indexed under a unique key (an object name), or None."""
    store = index.get(key)
    return next(iter(store), None) if store else None


class Caches:
    """Read access to the kopf indexes, in the shapes the lifecycle core takes."""

    def __init__(self, indexes: Mapping[str, kopf.Index[Any, Any]]) -> None:
        self.tenants: kopf.Index[str, TenantRecord] = indexes["tenants"]
        self.policies: kopf.Index[str, PolicyRecord] = indexes["policies"]
        self.holds: kopf.Index[str, str] = indexes["holds_by_tenant"]
        self.namespaces: kopf.Index[str, NamespaceFact] = indexes["namespaces"]
        self.volumes: kopf.Index[str, VolumeFact] = indexes["volumes"]
        self.volumes_by_namespace: kopf.Index[str, VolumeFact] = indexes["volumes_by_namespace"]

    def tenant(self, name: str) -> TenantRecord | None:
        record: TenantRecord | None = only(self.tenants, name)
        return record

    def policy(self, name: str) -> RetentionPolicySpec | None:
        record: PolicyRecord | None = only(self.policies, name)
        return record.spec if record else None

    def world(self, tenant: TenantView, protected: frozenset[str]) -> World:
        purge = tenant.status.purge
        names = (
            set(tenant.spec.namespaces) | {n.name for n in purge.namespaces} if purge else set(tenant.spec.namespaces)
        )
        namespaces = {name: fact for name in names if (fact := only(self.namespaces, name)) is not None}
        volumes = {v.name: v for name in names for v in self.volumes_by_namespace.get(name, ())}
        for recorded in purge.volumes if purge else ():
            if (fact := only(self.volumes, recorded.name)) is not None:
                volumes[fact.name] = fact
        return World(
            namespaces=namespaces,
            volumes=volumes,
            holds=tuple(sorted(self.holds.get(tenant.name, ()))),
            protected=protected,
        )
