"""Stop what runs in a closed namespace, and put back exactly what was asked on reopening (the decisions are in
:mod:`tenure.lifecycle.workloads`).

Closing: Deployments, StatefulSets and ReplicaSets no controller owns are
scaled to 0, CronJobs and running Jobs suspended, each recording what was
asked in an annotation (sealed), written with a resourceVersion precondition;
bare Pods (no controller) are deleted. Reopening puts back what was recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from tenure.lifecycle import workloads as decisions
from tenure.lifecycle.workloads import Workload

from .access import Body, Report, Target, _controlled, _delete, _items
from .errors import ApiError, Conflict, Gone, checked
from .kube import AS_MERGE_PATCH, Kube

logger = logging.getLogger(__name__)


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
    value: int | bool = int(spec.get("replicas", 1)) if kind in decisions.SCALED else bool(spec.get("suspend", False))
    return Workload(
        kind=kind,
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        value=value,
        asked=(meta.get("annotations") or {}).get(decisions.ASKED_ANNOTATION),
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


async def stop(kube: Kube, target: Target, key: bytes) -> Report:
    """Scale to 0 and suspend what runs, recording what was asked; delete bare pods. A refused step is in the
    report's ``failed`` (stopping is always safe, so the others still run); the next pass tries again."""
    report = Report(target.namespace)
    try:
        await _stop(kube, target.namespace, key, report)
    except ApiError as error:
        report.failed.append(str(error))
    return report


async def _stop(kube: Kube, namespace: str, key: bytes, report: Report) -> None:
    for kind in _kinds(kube):
        for body in _items(await checked(kind.list(namespace, _preload_content=False))):
            patch = decisions.stop(key, _workload(kind.name, body))
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


def _stopped(kind: str, body: Body) -> str:
    spec = body.get("spec") or {}
    if kind in decisions.SCALED:
        return f"scaled from {spec.get('replicas', 1)} to 0"
    return "suspended"


async def restore(kube: Kube, target: Target, key: bytes) -> Report:
    """Put back what was asked for on every stopped object whose record verifies (before the quota goes)."""
    report = Report(target.namespace)
    namespace = target.namespace
    for kind in _kinds(kube):
        for body in _items(await checked(kind.list(namespace, _preload_content=False))):
            restore = decisions.restore(key, _workload(kind.name, body))
            if restore is None or not await _patch(kind, body, restore.patch):
                continue
            name = f"{kind.name} {body['metadata']['name']}"
            if restore.forged:
                report.forged.append(f"{name} (left stopped, record removed)")
            elif "spec" in restore.patch:
                report.add(f"{name} restored ({_restored(restore.patch)})")
    return report


def _restored(patch: Body) -> str:
    ((field_, value),) = patch["spec"].items()
    return f"{field_} {str(value).lower() if isinstance(value, bool) else value}"
