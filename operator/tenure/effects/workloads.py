"""Stop what runs in a closed namespace, and put back exactly what was asked on reopening (the decisions are in
:mod:`tenure.lifecycle.workloads`).

Closing: Deployments, StatefulSets, ReplicaSets and ReplicationControllers are scaled to 0, CronJobs and running Jobs
suspended, DaemonSets given a node selector no node matches, each recording what was asked in an annotation (sealed),
written with a resourceVersion precondition — whoever their ownerReferences name, except a ReplicaSet its Deployment
really controls (checked against the Deployment's uid). Every pod of the namespace is deleted, whatever owns it, with
a bounded grace period — before the controllers are stopped, so theirs is never the first deletion — and with grace
0 once it outlives it. Reopening puts back what was recorded.

Known limit (the kubelet, up to v1.37 at least): a kill the kubelet has begun is not shortened by a later deletion,
not even one with grace 0, while a ``preStop`` hook runs (its context is not the pod worker's). A pod someone else
deleted with a long grace period before Tenure reached it runs until its hook or that period ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from tenure.lifecycle import workloads as decisions
from tenure.lifecycle.workloads import Pod, Workload

from .access import Body, Report, Target, _delete, _items
from .errors import ApiError, Conflict, Gone, checked
from .kube import AS_MERGE_PATCH, Kube

logger = logging.getLogger(__name__)

POD_GRACE_SECONDS = 30
"""The default bound on the grace period of a pod deleted for inaccessibility (``--access-pod-grace-seconds``)."""


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
    core, apps, batch = kube.core, kube.apps, kube.batch
    return (
        _Kind("Deployment", apps.list_namespaced_deployment, apps.patch_namespaced_deployment),
        _Kind("StatefulSet", apps.list_namespaced_stateful_set, apps.patch_namespaced_stateful_set),
        _Kind("ReplicaSet", apps.list_namespaced_replica_set, apps.patch_namespaced_replica_set),
        _Kind("DaemonSet", apps.list_namespaced_daemon_set, apps.patch_namespaced_daemon_set),
        _Kind(
            "ReplicationController",
            core.list_namespaced_replication_controller,
            core.patch_namespaced_replication_controller,
        ),
        _Kind("CronJob", batch.list_namespaced_cron_job, batch.patch_namespaced_cron_job),
        _Kind("Job", batch.list_namespaced_job, batch.patch_namespaced_job),
    )


def _value(kind: str, spec: Body) -> decisions.Value:
    if kind in decisions.SCALED:
        return int(spec.get("replicas", 1))
    if kind in decisions.PLACED:
        selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
        value = selector.get(decisions.STOP_SELECTOR[0])
        return None if value is None else str(value)
    return bool(spec.get("suspend", False))


def _workload(kind: str, body: Body, deployments: dict[str, str]) -> Workload:
    meta = body["metadata"]
    return Workload(
        kind=kind,
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        value=_value(kind, body.get("spec") or {}),
        asked=(meta.get("annotations") or {}).get(decisions.ASKED_ANNOTATION),
        controlled=kind == "ReplicaSet"
        and decisions.owned_by_deployment(meta.get("ownerReferences") or [], deployments),
        finished=kind == "Job" and _finished(body),
    )


async def _listed(kube: Kube, namespace: str) -> list[tuple[_Kind, list[Body]]]:
    return [(kind, _items(await checked(kind.list(namespace, _preload_content=False)))) for kind in _kinds(kube)]


def _deployments(listed: list[tuple[_Kind, list[Body]]]) -> dict[str, str]:
    """The namespace's Deployments, name → uid, as the API server listed them."""
    bodies = next(bodies for kind, bodies in listed if kind.name == "Deployment")
    return {body["metadata"]["name"]: body["metadata"]["uid"] for body in bodies}


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


@dataclass
class Stopped:
    """What stopping did in one namespace, and when to look again for a pod that may outlive its grace period."""

    report: Report
    wake_at: datetime | None = None
    pending: list[str] = field(default_factory=list)
    """Pods still ending (their grace period not yet over)."""


async def stop(
    kube: Kube, target: Target, key: bytes, pod_grace: int = POD_GRACE_SECONDS, now: datetime | None = None
) -> Stopped:
    """Scale to 0, suspend and unschedule what runs, recording what was asked; delete every pod. A refused step is in
    the report's ``failed`` (stopping is always safe, so the others still run); the next pass tries again."""
    stopped = Stopped(Report(target.namespace))
    try:  # pods first: the kubelet never shortens a kill it has begun (a preStop hook runs on), so the first deletion
        # must be Tenure's bounded one, not the controllers' scale-down with the pod's own period (the quota keeps
        # them from making new pods meanwhile)
        await _end_pods(kube, target.namespace, pod_grace, now or datetime.now(UTC), stopped)
    except ApiError as error:
        stopped.report.failed.append(str(error))
    try:
        await _stop(kube, target.namespace, key, stopped.report)
    except ApiError as error:
        stopped.report.failed.append(str(error))
    return stopped


STOP_ATTEMPTS = 3
"""Objects changed between listing and stopping them (their controller writes their status as their pods end) are
listed again and stopped at once, this many times, rather than at the next sweep."""


async def _stop(kube: Kube, namespace: str, key: bytes, report: Report) -> None:
    listed = await _listed(kube, namespace)
    deployments = _deployments(listed)
    for kind, bodies in listed:
        for attempt in range(STOP_ATTEMPTS):
            changed = [body for body in bodies if not await _stop_one(kind, body, key, deployments, report)]
            if not changed or attempt == STOP_ATTEMPTS - 1:
                break
            uids = {body["metadata"]["uid"] for body in changed}
            fresh = _items(await checked(kind.list(namespace, _preload_content=False)))
            bodies = [body for body in fresh if body["metadata"]["uid"] in uids]


async def _stop_one(kind: _Kind, body: Body, key: bytes, deployments: dict[str, str], report: Report) -> bool:
    """Stop one object if it runs; False when it changed since it was listed (to be listed again)."""
    try:
        patch = decisions.stop(key, _workload(kind.name, body, deployments))
        if patch is None:
            return True
        if not await _patch(kind, body, patch):
            return False
        report.add(f"{kind.name} {body['metadata']['name']} {_stopped(kind.name, body)}")
    except ApiError as error:  # one refused object does not keep the others running
        report.failed.append(f"stopping {kind.name} {body['metadata']['name']}: {error}")
    return True


def _pod(body: Body) -> Pod:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    deletion = meta.get("deletionTimestamp")
    grace = spec.get("terminationGracePeriodSeconds")
    deletion_grace = meta.get("deletionGracePeriodSeconds")
    return Pod(
        name=meta["name"],
        uid=meta["uid"],
        grace=None if grace is None else int(grace),
        deletion=None if deletion is None else datetime.fromisoformat(str(deletion).replace("Z", "+00:00")),
        deletion_grace=None if deletion_grace is None else int(deletion_grace),
        finished=status.get("phase") in ("Succeeded", "Failed"),
    )


async def _end_pods(kube: Kube, namespace: str, bound: int, now: datetime, stopped: Stopped) -> None:
    """Delete every pod of the namespace, whatever owns it, within ``bound`` seconds; again with grace 0 past it."""
    wakes: list[datetime] = []
    for body in _items(await checked(kube.core.list_namespaced_pod(namespace, _preload_content=False))):
        pod = _pod(body)
        grace = decisions.pod_deletion(pod, bound, now)
        deadline = decisions.pod_deadline(pod, grace, now)
        if deadline is not None:
            wakes.append(deadline)
            stopped.pending.append(pod.name)
        if grace is None:
            continue
        options = V1DeleteOptions(grace_period_seconds=grace, preconditions=V1Preconditions(uid=pod.uid))
        try:
            deleted = await _delete(
                kube.core.delete_namespaced_pod(pod.name, namespace, body=options, _preload_content=False)
            )
        except Conflict:
            deleted = False  # another pod of that name now: the next pass sees it
        except ApiError as error:
            stopped.report.failed.append(f"deleting Pod {pod.name}: {error}")
            continue
        if deleted:
            stopped.report.add(_deleted(pod, grace))
    stopped.wake_at = min(wakes, default=None)


def _deleted(pod: Pod, grace: int) -> str:
    if pod.deletion is None:
        return f"Pod {pod.name} deleted (grace period {grace}s)"
    if grace > 0:
        return f"Pod {pod.name} deleted again, its grace period shortened to {grace}s"
    return (
        f"Pod {pod.name} deleted again with grace period 0 (still there past its grace period; a preStop hook the "
        "kubelet had already begun may keep its containers running until it ends)"
    )


def _stopped(kind: str, body: Body) -> str:
    spec = body.get("spec") or {}
    if kind in decisions.SCALED:
        return f"scaled from {spec.get('replicas', 1)} to 0"
    if kind in decisions.PLACED:
        return f"given node selector {'='.join(decisions.STOP_SELECTOR)} (no node carries it)"
    return "suspended"


async def restore(kube: Kube, target: Target, key: bytes) -> Report:
    """Put back what was asked for on every stopped object whose record verifies (before the quota goes). An object
    that changed between listing and patching (its controller writes its status) is listed again and retried; one
    still not restored is in the report's ``failed``, so the namespace stays closed and the next pass tries again
    (removing the quota first would leave it stopped for good: an open namespace is never restored)."""
    report = Report(target.namespace)
    listed = await _listed(kube, target.namespace)
    deployments = _deployments(listed)
    for kind, bodies in listed:
        for attempt in range(STOP_ATTEMPTS):
            changed = [body for body in bodies if not await _restore_one(kind, body, key, deployments, report)]
            if not changed:
                break
            if attempt == STOP_ATTEMPTS - 1:
                names = ", ".join(body["metadata"]["name"] for body in changed)
                report.failed.append(f"restoring {kind.name} {names}: changed while being restored; next pass")
                break
            uids = {body["metadata"]["uid"] for body in changed}
            fresh = _items(await checked(kind.list(target.namespace, _preload_content=False)))
            bodies = [body for body in fresh if body["metadata"]["uid"] in uids]
    return report


async def _restore_one(kind: _Kind, body: Body, key: bytes, deployments: dict[str, str], report: Report) -> bool:
    """Restore one object if it carries a record; False when it changed since it was listed (to be listed again)."""
    restore = decisions.restore(key, _workload(kind.name, body, deployments))
    if restore is None:
        return True
    if not await _patch(kind, body, restore.patch):
        return False
    name = f"{kind.name} {body['metadata']['name']}"
    if restore.forged:
        report.forged.append(f"{name} (left stopped, record removed)")
    elif "spec" in restore.patch:
        report.add(f"{name} restored ({_restored(kind.name, restore)})")
    return True


def _restored(kind: str, restore: decisions.Restore) -> str:
    value = restore.value
    if kind in decisions.PLACED:
        key = decisions.STOP_SELECTOR[0]
        return f"node selector {key} removed" if value is None else f"node selector {key}={value}"
    field_ = "replicas" if kind in decisions.SCALED else "suspend"
    return f"{field_} {str(value).lower() if isinstance(value, bool) else value}"
