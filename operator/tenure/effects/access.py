"""Close and restore access to one owned namespace (the decisions are in :mod:`tenure.lifecycle.access`).

Closing, in this order, every pass while the tenant is inaccessible:

1. the ResourceQuota ``tenure-inaccessible`` (``pods: "0"``): from now on the
   API server refuses every new pod, whoever asks; its existence is the
   record that the namespace is closed;
2. the NetworkPolicy ``tenure-inaccessible``: no ingress, no egress;
   both are made exactly Tenure's on every pass, whoever made or changed them
   (their name is reserved, :mod:`tenure.lifecycle.access`);
3. RoleBindings that give people access, and every NetworkPolicy but Tenure's
   (policies add up: one allowing traffic would let it through the deny-all):
   each recorded in its own record in the operator's namespace, then deleted
   and confirmed gone (:mod:`tenure.effects.removal`);
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
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from tenure.lifecycle import access
from tenure.lifecycle.access import BINDINGS, MANAGED, MANAGED_BY, POLICIES, UNVERIFIED_ANNOTATION
from tenure.lifecycle.closure_records import Closing

from . import closure_records, removal
from .access_report import Body as Body
from .access_report import Report as Report
from .access_report import _controlled as _controlled
from .access_report import _create as _create
from .access_report import _delete as _delete
from .access_report import _items as _items
from .errors import ApiError, Conflict, Gone, Invalid, checked
from .kube import AS_MERGE_PATCH, Kube

logger = logging.getLogger(__name__)


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


def _sweep(
    kube: Kube, target: Target, quota: Body, key: bytes, operator_namespace: str, report: Report
) -> removal.Sweep:
    meta = quota["metadata"]
    closing = Closing(target.tenant, target.tenant_uid, target.namespace, target.namespace_uid, meta["uid"])
    return removal.Sweep(kube, closing, meta.get("creationTimestamp"), key, operator_namespace, report)


async def close(kube: Kube, target: Target, key: bytes, operator_namespace: str) -> Report:
    """Close one namespace's access and network (what runs in it: :mod:`tenure.effects.workloads`). A step the API
    server refuses does not keep the later ones from running; refusals are in the report's ``failed``, and the next
    pass tries again."""
    namespace = target.namespace
    report = Report(namespace)

    async def step(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except ApiError as error:
            report.failed.append(str(error))
            return None

    quota, policy = _managed(kube)
    if await step(_enforce(quota, namespace, report)) and (ours := await step(_quota(kube, namespace))):
        if not _ours(ours):
            report.failed.append(f"the quota {MANAGED} in {namespace} is not Tenure's; nothing removed")
            await step(_enforce(policy, namespace, report))
            return report
        sweep = _sweep(kube, target, ours, key, operator_namespace, report)  # the closing records are bound to
        await step(removal.remove(removal.bindings(kube), sweep))
        if await step(_enforce(policy, namespace, report)):  # Tenure's deny-all first, then the other policies
            await step(removal.remove(removal.policies(kube), sweep))
    else:
        await step(_enforce(policy, namespace, report))
    return report


def _legacy(namespace: str, quota: Body, report: Report) -> None:
    """Records an earlier version kept on the quota, and records kept aside there: never acted on, logged."""
    annotations = quota["metadata"].get("annotations") or {}
    for name in (BINDINGS.annotation, POLICIES.annotation, UNVERIFIED_ANNOTATION):
        if (raw := annotations.get(name)) is not None:
            logger.warning("namespace %s: annotation %s on the quota %s, not acted on, removed with it: %s",
                           namespace, name, MANAGED, raw)  # fmt: skip
            report.forged.append(
                f"annotation {name} on ResourceQuota {MANAGED} (nothing recreated from it; removed with the quota, "
                "its content is in the operator's log)"
            )


async def reopen(kube: Kube, target: Target, key: bytes, operator_namespace: str) -> Report:
    """Remove what was made while the namespace was closed, recreate the RoleBindings and NetworkPolicies that were
    there at closing, then remove Tenure's policy, the quota last, and the records (what was stopped is put back
    first: :func:`tenure.effects.workloads.restore`)."""
    namespace = target.namespace
    report = Report(namespace)
    quota = await _quota(kube, namespace)
    found = None
    if _ours(quota):
        assert quota is not None
        sweep = _sweep(kube, target, quota, key, operator_namespace, report)
        kinds = (removal.bindings(kube), removal.policies(kube))
        for kind in kinds:  # made while closed: removed (recorded apart) before anything comes back
            await removal.remove(kind, sweep, reopening=True)
        for kind in kinds:  # before Tenure's deny-all goes
            await removal.recreate(kind, sweep)
        if report.failed:
            return report  # closed until every recorded object is back: the next pass tries again
        found = await sweep.records()
        for record_id in found.untrusted + found.other:
            parts = found.parts.get(record_id, [])
            data = [part.get("data") for part in parts]
            logger.warning("namespace %s: closure record %s (%d parts) does not verify for this closing; not "
                           "acted on: %s", namespace, record_id, len(parts), data)  # fmt: skip
        if found.untrusted or found.other:
            count = len(found.untrusted) + len(found.other)
            report.forged.append(
                f"{count} closure records in namespace {operator_namespace} that do not verify for this closing "
                "(made up, changed, copied, from an earlier closing or another tenant; nothing recreated from them, "
                "their content is in the operator's log)"
            )
        _legacy(namespace, quota, report)
    if await _delete(kube.networking.delete_namespaced_network_policy(MANAGED, namespace, _preload_content=False)):
        report.add("NetworkPolicy tenure-inaccessible removed")
    if _ours(quota):
        assert quota is not None
        options = V1DeleteOptions(preconditions=V1Preconditions(uid=quota["metadata"]["uid"]))
        if await _delete(
            kube.core.delete_namespaced_resource_quota(MANAGED, namespace, body=options, _preload_content=False)
        ):
            report.add("ResourceQuota tenure-inaccessible removed")
    if found is not None:  # this closing's only: records sealed for another tenant or an earlier quota are kept for a
        # person (owned by the Tenant that wrote them, they go with it), as are those Tenure cannot verify
        await closure_records.remove_all(kube, operator_namespace, found, [*found.ids.values()])
    return report
