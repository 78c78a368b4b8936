"""Close and restore access to one owned namespace (the decisions are in :mod:`tenure.lifecycle.access`).

Closing, in this order, every pass while the tenant is inaccessible:

1. the ResourceQuota ``tenure-inaccessible`` (``pods: "0"``): from now on the
   API server refuses every new pod, whoever asks; its existence is the
   record that the namespace is closed;
2. the NetworkPolicy ``tenure-inaccessible``: no ingress, no egress;
3. RoleBindings that give people access: recorded on the quota (sealed), then
   deleted with uid and resourceVersion preconditions;
4. Deployments, StatefulSets and ReplicaSets no controller owns scaled to 0,
   CronJobs and running Jobs suspended, each recording what was asked in an
   annotation (sealed), written with a resourceVersion precondition;
5. bare Pods (no controller) deleted.

Restoring undoes it in reverse and removes the quota last, so a crash at any
point leaves the namespace closed and the next pass restores the rest. Every
step is idempotent; an object changed since it was read is left for the next
pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from tenure.lifecycle import access
from tenure.lifecycle.access import BINDINGS_ANNOTATION, MANAGED, MANAGED_BY, Workload
from tenure.lifecycle.conditions import listing

from .errors import ApiError, Conflict, Gone, checked
from .kube import AS_MERGE_PATCH, Kube

logger = logging.getLogger(__name__)

Body = dict[str, Any]


@dataclass
class Report:
    """What one pass changed in a namespace, for the Events people read."""

    namespace: str
    changed: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)
    """Objects whose record did not verify: left stopped, record removed."""

    def add(self, what: str) -> None:
        self.changed.append(what)

    def message(self) -> str:
        text = f"Namespace {self.namespace}: {listing(self.changed, '; ')}." if self.changed else ""
        if self.forged:
            text += (
                f" Records that do not carry Tenure's seal were not restored (left stopped): {listing(self.forged)}."
            )
        return text.strip()


def _metadata(name: str) -> Body:
    return {"name": name, "labels": dict([MANAGED_BY])}


QUOTA: Body = {"apiVersion": "v1", "kind": "ResourceQuota", "spec": {"hard": {"pods": "0"}}}
POLICY: Body = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
}


def _items(listed: Body) -> list[Body]:
    items: list[Body] = listed.get("items") or []
    return items


def _controlled(body: Body) -> bool:
    return any(ref.get("controller") for ref in body["metadata"].get("ownerReferences") or [])


def _finished(body: Body) -> bool:
    status = body.get("status") or {}
    return status.get("completionTime") is not None or any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in status.get("conditions") or []
    )


@dataclass(frozen=True)
class _Kind:
    name: str
    list: Callable[..., Awaitable[Any]]
    patch: Callable[..., Awaitable[Any]]


def _kinds(kube: Kube) -> tuple[_Kind, ...]:
    return (
        _Kind("Deployment", kube.apps.list_namespaced_deployment, kube.apps.patch_namespaced_deployment),
        _Kind("StatefulSet", kube.apps.list_namespaced_stateful_set, kube.apps.patch_namespaced_stateful_set),
        _Kind("ReplicaSet", kube.apps.list_namespaced_replica_set, kube.apps.patch_namespaced_replica_set),
        _Kind("CronJob", kube.batch.list_namespaced_cron_job, kube.batch.patch_namespaced_cron_job),
        _Kind("Job", kube.batch.list_namespaced_job, kube.batch.patch_namespaced_job),
    )


def _workload(kind: str, body: Body) -> Workload:
    meta, spec = body["metadata"], body.get("spec") or {}
    value: int | bool = int(spec.get("replicas", 1)) if kind in access.SCALED else bool(spec.get("suspend", False))
    return Workload(
        kind=kind,
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        value=value,
        asked=(meta.get("annotations") or {}).get(access.ASKED_ANNOTATION),
        controlled=_controlled(body),
        finished=kind == "Job" and _finished(body),
    )


async def _patch(kind: _Kind, body: Body, patch: Body) -> bool:
    """Patch with the object's resourceVersion as precondition; False when it changed or went meanwhile."""
    meta = body["metadata"]
    conditional = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": meta["resourceVersion"]}}
    try:
        await checked(
            kind.patch(meta["name"], meta["namespace"], conditional, _preload_content=False, **AS_MERGE_PATCH)
        )
    except (Conflict, Gone):
        logger.info("%s %s/%s changed since it was read; next pass", kind.name, meta["namespace"], meta["name"])
        return False
    return True


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


async def closed(kube: Kube, namespaces: list[str]) -> frozenset[str]:
    """Which of these namespaces carry Tenure's quota, as the API server says. One it cannot tell about (the quota
    refused or an error) counts as closed: restoring an open namespace changes nothing, and the attempt says why it
    failed, where not asking would leave a closed one closed without a word."""
    result = []
    for name in namespaces:
        try:
            if _ours(await _quota(kube, name)):
                result.append(name)
        except ApiError as error:
            logger.warning("cannot tell whether namespace %s is closed (%s); restoring it", name, error)
            result.append(name)
    return frozenset(result)


async def close(kube: Kube, namespace: str, uid: str, key: bytes, operator_namespace: str) -> Report:
    report = Report(namespace)
    quota: Any = {**QUOTA, "metadata": _metadata(MANAGED)}
    if await _create(kube.core.create_namespaced_resource_quota(namespace, quota, _preload_content=False)):
        report.add('ResourceQuota tenure-inaccessible created (pods: "0")')
    policy: Any = {**POLICY, "metadata": _metadata(MANAGED)}
    if await _create(kube.networking.create_namespaced_network_policy(namespace, policy, _preload_content=False)):
        report.add("NetworkPolicy tenure-inaccessible created (no ingress, no egress)")
    await _revoke(kube, namespace, uid, key, operator_namespace, report)
    for kind in _kinds(kube):
        for body in _items(await checked(kind.list(namespace, _preload_content=False))):
            patch = access.stop(key, _workload(kind.name, body))
            if patch is not None and await _patch(kind, body, patch):
                report.add(f"{kind.name} {body['metadata']['name']} {_stopped(kind.name, body)}")
    for pod in _items(await checked(kube.core.list_namespaced_pod(namespace, _preload_content=False))):
        meta = pod["metadata"]
        if _controlled(pod) or meta.get("deletionTimestamp"):
            continue
        options = V1DeleteOptions(preconditions=V1Preconditions(uid=meta["uid"]))
        try:
            deleted = await _delete(
                kube.core.delete_namespaced_pod(meta["name"], namespace, body=options, _preload_content=False)
            )
        except Conflict:
            deleted = False
        if deleted:
            report.add(f"Pod {meta['name']} deleted")
    return report


def _stopped(kind: str, body: Body) -> str:
    spec = body.get("spec") or {}
    if kind in access.SCALED:
        return f"scaled from {spec.get('replicas', 1)} to 0"
    return "suspended"


async def _revoke(kube: Kube, namespace: str, uid: str, key: bytes, operator_namespace: str, report: Report) -> None:
    """Record the RoleBindings to remove on the quota, then remove them."""
    listed = _items(await checked(kube.rbac.list_namespaced_role_binding(namespace, _preload_content=False)))
    revoked = [binding for binding in listed if not access.kept(binding, operator_namespace)]
    if not revoked:
        return
    await _record(kube, namespace, uid, key, [access.binding_record(binding) for binding in revoked])
    for binding in revoked:
        meta = binding["metadata"]
        options = V1DeleteOptions(
            preconditions=V1Preconditions(uid=meta["uid"], resource_version=meta["resourceVersion"])
        )
        try:
            deleted = await _delete(
                kube.rbac.delete_namespaced_role_binding(meta["name"], namespace, body=options, _preload_content=False)
            )
        except Conflict:
            deleted = False  # changed since listed: recorded again and removed on the next pass
        if deleted:
            report.add(f"RoleBinding {meta['name']} removed")


RECORD_ATTEMPTS = 5
"""The quota's status is written by the resourcequota controller too: a record that lost the race is written again."""


async def _record(kube: Kube, namespace: str, uid: str, key: bytes, bindings: list[dict[str, Any]]) -> None:
    """Add the bindings to the quota's sealed record (by name, the latest wins), before any is removed."""
    for attempt in range(RECORD_ATTEMPTS):
        quota = await _quota(kube, namespace)
        if quota is None or not _ours(quota):
            raise Conflict(409, "Conflict", f"the quota {MANAGED} in {namespace} is not Tenure's; no binding removed")
        annotations = quota["metadata"].get("annotations") or {}
        earlier = access.recorded_bindings(key, namespace, uid, annotations.get(BINDINGS_ANNOTATION)) or ()
        records = {record["name"]: record for record in (*earlier, *bindings)}
        patch = {
            "metadata": {
                "resourceVersion": quota["metadata"]["resourceVersion"],
                "annotations": {BINDINGS_ANNOTATION: access.bindings_annotation(key, namespace, uid, records.values())},
            }
        }
        try:
            await checked(
                kube.core.patch_namespaced_resource_quota(
                    MANAGED, namespace, patch, _preload_content=False, **AS_MERGE_PATCH
                )
            )
            return
        except Conflict:
            if attempt == RECORD_ATTEMPTS - 1:
                raise


async def reopen(kube: Kube, namespace: str, uid: str, key: bytes) -> Report:
    """Put back what was asked for and the recorded RoleBindings, then remove the policy and, last, the quota."""
    report = Report(namespace)
    for kind in _kinds(kube):
        for body in _items(await checked(kind.list(namespace, _preload_content=False))):
            restore = access.restore(key, _workload(kind.name, body))
            if restore is None or not await _patch(kind, body, restore.patch):
                continue
            name = f"{kind.name} {body['metadata']['name']}"
            if restore.forged:
                report.forged.append(name)
            elif "spec" in restore.patch:
                report.add(f"{name} restored ({_restored(restore.patch)})")
    quota = await _quota(kube, namespace)
    if _ours(quota):
        assert quota is not None
        raw = (quota["metadata"].get("annotations") or {}).get(BINDINGS_ANNOTATION)
        records = access.recorded_bindings(key, namespace, uid, raw)
        if records is None:
            report.forged.append(f"the RoleBindings recorded on ResourceQuota {MANAGED}")
        for record in records or ():
            binding: Any = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": record["name"], "labels": record["labels"], "annotations": record["annotations"]},
                "roleRef": record["roleRef"],
                "subjects": record["subjects"],
            }
            if await _create(kube.rbac.create_namespaced_role_binding(namespace, binding, _preload_content=False)):
                report.add(f"RoleBinding {record['name']} recreated")
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


def _restored(patch: Body) -> str:
    ((field_, value),) = patch["spec"].items()
    return f"{field_} {str(value).lower() if isinstance(value, bool) else value}"
