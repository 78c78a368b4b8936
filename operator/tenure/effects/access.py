"""Close and restore access to one owned namespace (the decisions are in :mod:`tenure.lifecycle.access`).

Closing, in this order, every pass while the tenant is inaccessible:

1. the ResourceQuota ``tenure-inaccessible`` (``pods: "0"``): from now on the
   API server refuses every new pod, whoever asks; its existence is the
   record that the namespace is closed;
2. the NetworkPolicy ``tenure-inaccessible``: no ingress, no egress;
   both are made exactly Tenure's on every pass, whoever made or changed them
   (their name is reserved, :mod:`tenure.lifecycle.access`);
3. RoleBindings that give people access, and the tenant's own NetworkPolicies
   (policies add up: one allowing traffic would let it through the deny-all):
   recorded on the quota (sealed over its uid), then deleted with uid and
   resourceVersion preconditions;
4. what runs in the namespace is stopped (:mod:`tenure.effects.workloads`).

Restoring undoes it in reverse and removes the quota last, so a crash at any
point leaves the namespace closed and the next pass restores the rest. Every
step is idempotent; an object changed since it was read is left for the next
pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from tenure.lifecycle import access
from tenure.lifecycle.access import BINDINGS, MANAGED, MANAGED_BY, POLICIES, UNVERIFIED_ANNOTATION, Removed
from tenure.lifecycle.conditions import listing

from .errors import ApiError, Conflict, Gone, Invalid, checked
from .kube import AS_MERGE_PATCH, Kube

logger = logging.getLogger(__name__)

Body = dict[str, Any]


@dataclass
class Report:
    """What one pass changed in a namespace, for the Events people read."""

    namespace: str
    changed: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)
    """Records that did not verify, and what was done instead (never what they said)."""
    tampered: list[str] = field(default_factory=list)
    """Tenure's quota or NetworkPolicy found changed (or made by someone else) and put back."""
    failed: list[str] = field(default_factory=list)
    """Steps the API server refused (the others ran): tried again on the next pass."""

    def add(self, what: str) -> None:
        self.changed.append(what)

    def merge(self, other: Report) -> None:
        """Add what another step did in the same namespace."""
        self.changed += other.changed
        self.forged += other.forged
        self.tampered += other.tampered
        self.failed += other.failed

    def message(self) -> str:
        text = f"Namespace {self.namespace}: {listing(self.changed, '; ')}." if self.changed else ""
        if self.forged:
            text += f" Records that do not carry Tenure's seal, not acted on: {listing(self.forged, '; ')}."
        if self.tampered:
            text += f" Changed by someone else and put back: {listing(self.tampered, '; ')}."
        return text.strip()


def _metadata(name: str) -> Body:
    return {"name": name, "labels": dict([MANAGED_BY])}


@dataclass(frozen=True)
class _Managed:
    """Tenure's ResourceQuota or NetworkPolicy ``tenure-inaccessible``."""

    api_version: str
    kind: str
    spec: Body
    what: str
    create: Callable[..., Awaitable[Any]]
    read: Callable[..., Awaitable[Any]]
    patch: Callable[..., Awaitable[Any]]
    delete: Callable[..., Awaitable[Any]]


def _managed(kube: Kube) -> tuple[_Managed, _Managed]:
    core, networking = kube.core, kube.networking
    quota = _Managed(
        "v1",
        "ResourceQuota",
        access.QUOTA_SPEC,
        'pods: "0"',
        core.create_namespaced_resource_quota,
        core.read_namespaced_resource_quota,
        core.patch_namespaced_resource_quota,
        core.delete_namespaced_resource_quota,
    )
    policy = _Managed(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        access.POLICY_SPEC,
        "no ingress, no egress",
        networking.create_namespaced_network_policy,
        networking.read_namespaced_network_policy,
        networking.patch_namespaced_network_policy,
        networking.delete_namespaced_network_policy,
    )
    return quota, policy


def _items(listed: Body) -> list[Body]:
    items: list[Body] = listed.get("items") or []
    return items


def _controlled(body: Body) -> bool:
    return any(ref.get("controller") for ref in body["metadata"].get("ownerReferences") or [])


async def _create(call: Awaitable[Any]) -> bool:
    """Create; False when it exists already."""
    try:
        await checked(call)
    except Conflict as error:
        if error.already_exists:
            return False
        raise
    return True


async def _delete(call: Awaitable[Any]) -> bool:
    """Delete; False when it was gone already."""
    try:
        await checked(call)
    except Gone:
        return False
    return True


async def _quota(kube: Kube, namespace: str) -> Body | None:
    try:
        return await checked(kube.core.read_namespaced_resource_quota(MANAGED, namespace, _preload_content=False))
    except Gone:
        return None


def _ours(body: Body | None) -> bool:
    labels = (body or {}).get("metadata", {}).get("labels") or {}
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1]


async def closed(kube: Kube, namespaces: list[str], unsure: bool = True) -> frozenset[str]:
    """Which of these namespaces carry Tenure's quota, as the API server says. One it cannot tell about (the quota
    refused or an error) counts as ``unsure``: closed for a namespace the tenant owns (restoring an open namespace
    changes nothing, and the attempt says why it failed, where not asking would leave a closed one closed without a
    word); open for one it no longer owns, which Tenure only reports (a transient error must not flap a Warning)."""
    result = []
    for name in namespaces:
        try:
            if _ours(await _quota(kube, name)):
                result.append(name)
        except ApiError as error:
            logger.warning("cannot tell whether namespace %s is closed (%s)", name, error)
            if unsure:
                result.append(name)
    return frozenset(result)


async def _enforce(managed: _Managed, namespace: str, report: Report) -> bool:
    """Create Tenure's object, or make the one of that name exactly Tenure's: its spec, and its managed-by label. One
    that cannot be patched so (a quota's ``scopes`` are immutable) is deleted and made anew. False when it changed or
    went meanwhile: the next pass tries again."""
    body: Any = {"apiVersion": managed.api_version, "kind": managed.kind, "metadata": _metadata(MANAGED)}
    if await _create(managed.create(namespace, {**body, "spec": managed.spec}, _preload_content=False)):
        report.add(f"{managed.kind} {MANAGED} created ({managed.what})")
        return True
    current = await checked(managed.read(MANAGED, namespace, _preload_content=False))
    meta = current["metadata"]
    spec = access.exactly(current.get("spec") or {}, managed.spec)
    if spec is None and _ours(current):
        return True
    was = json.dumps(current.get("spec") or {}, sort_keys=True, separators=(",", ":"))
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "labels": dict([MANAGED_BY])}}
    try:
        try:
            await checked(
                managed.patch(
                    MANAGED, namespace, {**patch, "spec": spec or {}}, _preload_content=False, **AS_MERGE_PATCH
                )
            )
        except Invalid:
            options = V1DeleteOptions(
                preconditions=V1Preconditions(uid=meta["uid"], resource_version=meta["resourceVersion"])
            )
            kept = _aside(meta.get("annotations") or {})  # a record sealed over the old uid no longer verifies
            if kept:
                logger.warning("namespace %s: %s %s made anew; its records kept aside: %s", namespace, managed.kind,
                               MANAGED, kept)  # fmt: skip
                body["metadata"]["annotations"] = {UNVERIFIED_ANNOTATION: kept}
            await checked(managed.delete(MANAGED, namespace, body=options, _preload_content=False))
            await checked(managed.create(namespace, {**body, "spec": managed.spec}, _preload_content=False))
            report.tampered.append(f"{managed.kind} {MANAGED} made anew with {managed.what} (it was {was})")
            return True
    except (Conflict, Gone):
        logger.info("%s %s/%s changed since it was read; next pass", managed.kind, namespace, MANAGED)
        return False
    report.tampered.append(f"{managed.kind} {MANAGED} reset to {managed.what} (it was {was})")
    return True


def _aside(annotations: dict[str, str]) -> str | None:
    """The UNVERIFIED_ANNOTATION value keeping every record on an object that is going: None when there is none."""
    kept = dict(annotations)
    for kind in (BINDINGS, POLICIES):
        if (raw := annotations.get(kind.annotation)) is not None:
            kept[UNVERIFIED_ANNOTATION] = access.kept_aside(kept, raw)
    return kept.get(UNVERIFIED_ANNOTATION)


@dataclass(frozen=True)
class Target:
    """One namespace of one tenant, as closing and reopening it goes."""

    tenant: str
    tenant_uid: str
    namespace: str
    namespace_uid: str


async def close(kube: Kube, target: Target, key: bytes, operator_namespace: str) -> Report:
    """Close one namespace's access and network (what runs in it: :mod:`tenure.effects.workloads`). A step the API
    server refuses does not keep the later ones from running; refusals are in the report's ``failed``, and the next
    pass tries again."""
    namespace, uid = target.namespace, target.namespace_uid
    report = Report(namespace)

    async def step(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except ApiError as error:
            report.failed.append(str(error))
            return None

    quota, policy = _managed(kube)
    if await step(_enforce(quota, namespace, report)):  # the records of what is removed live on the quota
        await step(_remove(kube, _bindings(kube), namespace, uid, key, operator_namespace, report))
        if await step(_enforce(policy, namespace, report)):  # Tenure's deny-all first, then the tenant's policies
            await step(_remove(kube, _policies(kube), namespace, uid, key, operator_namespace, report))
    else:
        await step(_enforce(policy, namespace, report))
    return report


@dataclass(frozen=True)
class _Removable:
    """RoleBindings or NetworkPolicies, as far as removing and recreating them goes."""

    recorded: Removed
    api_version: str
    list: Callable[..., Awaitable[Any]]
    create: Callable[..., Awaitable[Any]]
    delete: Callable[..., Awaitable[Any]]


def _bindings(kube: Kube) -> _Removable:
    rbac = kube.rbac
    return _Removable(
        BINDINGS,
        "rbac.authorization.k8s.io/v1",
        rbac.list_namespaced_role_binding,
        rbac.create_namespaced_role_binding,
        rbac.delete_namespaced_role_binding,
    )


def _policies(kube: Kube) -> _Removable:
    networking = kube.networking
    return _Removable(
        POLICIES,
        "networking.k8s.io/v1",
        networking.list_namespaced_network_policy,
        networking.create_namespaced_network_policy,
        networking.delete_namespaced_network_policy,
    )


async def _remove(
    kube: Kube, kind: _Removable, namespace: str, uid: str, key: bytes, operator_namespace: str, report: Report
) -> None:
    """Record the objects to remove on the quota, then remove them."""
    listed = _items(await checked(kind.list(namespace, _preload_content=False)))
    removed = [body for body in listed if access.removed(kind.recorded, body, operator_namespace)]
    if not removed:
        return
    records = [access.object_record(kind.recorded, body) for body in removed]
    await _record(kube, namespace, uid, key, kind.recorded, records, report)
    for body in removed:
        meta = body["metadata"]
        options = V1DeleteOptions(
            preconditions=V1Preconditions(uid=meta["uid"], resource_version=meta["resourceVersion"])
        )
        try:
            deleted = await _delete(kind.delete(meta["name"], namespace, body=options, _preload_content=False))
        except Conflict:
            deleted = False  # changed since listed: recorded again and removed on the next pass
        if deleted:
            report.add(f"{kind.recorded.kind} {meta['name']} removed")


RECORD_ATTEMPTS = 5
"""The quota's status is written by the resourcequota controller too: a record that lost the race is written again."""


async def _record(
    kube: Kube,
    namespace: str,
    uid: str,
    key: bytes,
    kind: Removed,
    objects: list[dict[str, Any]],
    report: Report,
) -> None:
    """Add the objects to the quota's sealed record of their kind (by name, the latest wins), before any is removed.
    A record there that does not verify is never overwritten: it is kept aside for a person."""
    for attempt in range(RECORD_ATTEMPTS):
        quota = await _quota(kube, namespace)
        if quota is None or not _ours(quota):
            raise Conflict(409, "Conflict", f"the quota {MANAGED} in {namespace} is not Tenure's; nothing removed")
        meta = quota["metadata"]
        annotations = meta.get("annotations") or {}
        sealed = access.Quota(namespace, uid, meta["uid"])
        raw = annotations.get(kind.annotation)
        earlier = access.recorded_objects(key, sealed, kind, raw)
        records = {record["name"]: record for record in (*(earlier or ()), *objects)}
        written = {kind.annotation: access.records_annotation(key, sealed, kind, records.values())}
        if earlier is None and raw is not None:
            written[UNVERIFIED_ANNOTATION] = access.kept_aside(annotations, raw)
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "annotations": written}}
        try:
            await checked(
                kube.core.patch_namespaced_resource_quota(
                    MANAGED, namespace, patch, _preload_content=False, **AS_MERGE_PATCH
                )
            )
            if UNVERIFIED_ANNOTATION in written:
                report.forged.append(
                    f"the {kind.kind}s record on ResourceQuota {MANAGED} (kept aside in annotation "
                    f"{UNVERIFIED_ANNOTATION}; nothing is recreated from it)"
                )
            return
        except Conflict:
            if attempt == RECORD_ATTEMPTS - 1:
                raise


async def _recreate(kind: _Removable, namespace: str, quota: Body, uid: str, key: bytes, report: Report) -> None:
    """Recreate the objects the quota's record of this kind holds, if it verifies."""
    meta = quota["metadata"]
    raw = (meta.get("annotations") or {}).get(kind.recorded.annotation)
    records = access.recorded_objects(key, access.Quota(namespace, uid, meta["uid"]), kind.recorded, raw)
    if records is None:
        logger.warning(
            "namespace %s: the %ss record on the quota %s does not verify; nothing recreated from it, removed with "
            "the quota: %s",
            namespace,
            kind.recorded.kind,
            MANAGED,
            raw,
        )
        report.forged.append(
            f"the {kind.recorded.kind}s record on ResourceQuota {MANAGED} (nothing recreated from it; removed with "
            "the quota, its content is in the operator's log)"
        )
    for record in records or ():
        body: Any = {
            "apiVersion": kind.api_version,
            "kind": kind.recorded.kind,
            "metadata": {"name": record["name"], "labels": record["labels"], "annotations": record["annotations"]},
            **{name: record[name] for name in kind.recorded.fields if record.get(name) is not None},
        }
        try:
            if await _create(kind.create(namespace, body, _preload_content=False)):
                report.add(f"{kind.recorded.kind} {record['name']} recreated")
        except ApiError as error:  # the others are still tried; the namespace stays closed until all are back
            report.failed.append(f"recreating {kind.recorded.kind} {record['name']}: {error}")


async def reopen(kube: Kube, target: Target, key: bytes, operator_namespace: str) -> Report:
    """Put back what was asked for and the recorded RoleBindings and NetworkPolicies, then remove Tenure's policy and,
    last, the quota (what was stopped is put back first: :func:`tenure.effects.workloads.restore`)."""
    namespace, uid = target.namespace, target.namespace_uid
    report = Report(namespace)
    quota = await _quota(kube, namespace)
    if _ours(quota):
        assert quota is not None
        meta = quota["metadata"]
        for removable in (_bindings(kube), _policies(kube)):  # before Tenure's deny-all goes
            await _recreate(removable, namespace, quota, uid, key, report)
        if report.failed:
            return report  # closed until every recorded object is back: the next pass tries again
        aside = (meta.get("annotations") or {}).get(UNVERIFIED_ANNOTATION)
        if aside is not None:
            logger.warning(
                "namespace %s: records that did not verify, removed with the quota %s: %s",
                namespace,
                MANAGED,
                aside,
            )
            report.forged.append(
                f"the records kept aside in annotation {UNVERIFIED_ANNOTATION} (nothing recreated from them; removed "
                "with the quota, their content is in the operator's log)"
            )
    if await _delete(kube.networking.delete_namespaced_network_policy(MANAGED, namespace, _preload_content=False)):
        report.add("NetworkPolicy tenure-inaccessible removed")
    if _ours(quota):
        assert quota is not None
        options = V1DeleteOptions(preconditions=V1Preconditions(uid=quota["metadata"]["uid"]))
        if await _delete(
            kube.core.delete_namespaced_resource_quota(MANAGED, namespace, body=options, _preload_content=False)
        ):
            report.add("ResourceQuota tenure-inaccessible removed")
    return report
