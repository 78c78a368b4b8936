"""Removing a closed namespace's RoleBindings and NetworkPolicies, each recorded first, and recreating exactly those
that were there at closing (the records: :mod:`tenure.effects.closure_records`).

Removal counts only when the API server confirms the object is gone: after
the deletion (uid and resourceVersion preconditions) the object is read back;
one a finalizer holds (it would still grant access, or let traffic through)
has its finalizers removed by Tenure, recorded so that reopening puts them
back, and is read back again. One still there is reported as a failure with
the reason, and the namespace is not counted as closed.

An object made while the namespace was closed (created after Tenure's quota,
as the API server says) is recorded apart: reopening does not recreate it but
names it for a person. One exactly as a record of this closing holds is what
was there at closing (Tenure recreated it, on an interrupted reopening).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from tenure.lifecycle import access
from tenure.lifecycle import closure_records as records
from tenure.lifecycle.access import BINDINGS, POLICIES, Removed
from tenure.lifecycle.closure_records import Closing, Record

from . import closure_records
from .access_report import Body, Report, _create, _items
from .closure_records import Found
from .errors import ApiError, Conflict, Gone, checked
from .kube import AS_MERGE_PATCH, Kube

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removable:
    """RoleBindings or NetworkPolicies, as far as removing and recreating them goes."""

    recorded: Removed
    api_version: str
    list: Callable[..., Awaitable[Any]]
    create: Callable[..., Awaitable[Any]]
    read: Callable[..., Awaitable[Any]]
    delete: Callable[..., Awaitable[Any]]
    unfinalize: Callable[[Body], Awaitable[Any]]
    """Write the object (as read) without its finalizers, with its resourceVersion as precondition."""


def bindings(kube: Kube) -> Removable:
    rbac = kube.rbac

    def unfinalize(body: Body) -> Awaitable[Any]:  # an update: Tenure holds no patch on RoleBindings
        meta = body["metadata"]
        written: Any = {**body, "metadata": {**meta, "finalizers": []}}
        return rbac.replace_namespaced_role_binding(meta["name"], meta["namespace"], written, _preload_content=False)

    return Removable(
        BINDINGS,
        "rbac.authorization.k8s.io/v1",
        rbac.list_namespaced_role_binding,
        rbac.create_namespaced_role_binding,
        rbac.read_namespaced_role_binding,
        rbac.delete_namespaced_role_binding,
        unfinalize,
    )


def policies(kube: Kube) -> Removable:
    networking = kube.networking

    def unfinalize(body: Body) -> Awaitable[Any]:
        meta = body["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "finalizers": None}}
        return networking.patch_namespaced_network_policy(
            meta["name"], meta["namespace"], patch, _preload_content=False, **AS_MERGE_PATCH
        )

    return Removable(
        POLICIES,
        "networking.k8s.io/v1",
        networking.list_namespaced_network_policy,
        networking.create_namespaced_network_policy,
        networking.read_namespaced_network_policy,
        networking.delete_namespaced_network_policy,
        unfinalize,
    )


@dataclass
class Sweep:
    """One pass over one closed namespace: its closing, when it was closed, and its records (listed once, lazily)."""

    kube: Kube
    closing: Closing
    closed_at: Any
    """The quota's creationTimestamp: objects created later were made while the namespace was closed."""
    key: bytes
    operator_namespace: str
    report: Report
    found: Found | None = None

    async def records(self) -> Found:
        if self.found is None:
            self.found = await closure_records.find(self.kube, self.operator_namespace, self.closing, self.key)
        return self.found


def _record(kind: Removable, body: Body, apart: bool) -> Record:
    meta = body["metadata"]
    return Record(
        kind=kind.recorded.kind,
        name=meta["name"],
        object=access.object_record(kind.recorded, body),
        finalizers=list(meta.get("finalizers") or []),
        apart=apart,
        terminating=bool(meta.get("deletionTimestamp")),
        controller=records.controller(body),
    )


CONCURRENCY = 8
"""Objects recorded and removed at once in one namespace (each record still written before its object goes)."""


ROUNDS = 3
"""Closing, a namespace is listed again after each round of removals, this many times: an object made or changed while
the round ran (before the admission policy tenure-closed-namespaces refused it) is removed at once, not a sweep later.
One still there after the last round is a failure: the namespace is not reported closed."""


async def remove(kind: Removable, sweep: Sweep, reopening: bool = False) -> None:
    """Record, then remove, every object of this kind Tenure removes from the closed namespace. Reopening, only those
    made while it was closed (the others were there at closing)."""
    namespace = sweep.closing.namespace
    for _ in range(1 if reopening else ROUNDS):
        listed = _items(await checked(kind.list(namespace, _preload_content=False)))
        removable = [body for body in listed if access.removed(kind.recorded, body, sweep.operator_namespace)]
        if not removable:
            return
        await _round(kind, sweep, removable, reopening)
    if reopening:
        return
    listed = _items(await checked(kind.list(namespace, _preload_content=False)))
    left = [
        body["metadata"]["name"] for body in listed if access.removed(kind.recorded, body, sweep.operator_namespace)
    ]
    if left:
        sweep.report.failed.append(
            f"{kind.recorded.kind}s {', '.join(sorted(left)[:10])}{' …' if len(left) > 10 else ''} still there after "
            f"{ROUNDS} rounds of removal (made or changed meanwhile): the namespace is not closed yet"
        )


async def _round(kind: Removable, sweep: Sweep, removable: list[Body], reopening: bool) -> None:
    found = await sweep.records()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(body: Body) -> None:
        async with limit:
            await _remove_one(kind, sweep, found, body, reopening)

    results = await asyncio.gather(*(one(body) for body in removable), return_exceptions=True)
    errors = [result for result in results if isinstance(result, BaseException)]
    for error in errors:
        if not isinstance(error, ApiError):
            raise error
    if errors:
        raise errors[0]  # the others were recorded and removed; the next pass tries again


async def _remove_one(kind: Removable, sweep: Sweep, found: Found, body: Body, reopening: bool) -> None:
    current = found.current.get((kind.recorded.kind, body["metadata"]["name"], False))
    as_recorded = (
        current is not None and current.restorable and current.object == access.object_record(kind.recorded, body)
    )
    apart = records.made_while_closed(body, sweep.closed_at) and not as_recorded
    if reopening and not apart:
        return
    record = _record(kind, body, apart)
    if as_recorded and current is not None:
        record = current  # the same object as recorded at closing: keep that record (its finalizers too)
    await closure_records.write(sweep.kube, sweep.operator_namespace, sweep.closing, sweep.key, record, found)
    ended = await _end(kind, body, sweep.report)
    if ended is not None:
        sweep.report.add(f"{record.kind} {record.name} removed{_why(record, ended)}")


def _why(record: Record, finalizers: list[str]) -> str:
    notes = []
    if finalizers:
        notes.append(f"its finalizers {', '.join(finalizers)} removed, put back on reopening")
    if record.apart:
        notes.append("made while the namespace was closed: not recreated on reopening")
    if record.controller:
        notes.append(f"its ownerReference names controller {record.controller}; removed again if it is made again")
    return f" ({'; '.join(notes)})" if notes else ""


async def _end(kind: Removable, body: Body, report: Report) -> list[str] | None:
    """Delete the object as listed and confirm it is gone, removing the finalizers that hold it: the finalizers
    removed, or None when it was not removed (changed since listed: the next pass; still there: reported)."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    options = V1DeleteOptions(preconditions=V1Preconditions(uid=meta["uid"], resource_version=meta["resourceVersion"]))
    try:
        await checked(kind.delete(name, namespace, body=options, _preload_content=False))
    except Gone:
        return []
    except Conflict:
        return None  # changed since listed: recorded again and removed on the next pass
    removed: list[str] = []
    for _ in range(3):
        try:
            now = await checked(kind.read(name, namespace, _preload_content=False))
        except Gone:
            return removed
        now_meta = now["metadata"]
        if now_meta.get("uid") != meta["uid"]:
            return removed  # gone; one made since under the same name is for the next pass
        holding = list(now_meta.get("finalizers") or [])
        if not holding:
            continue  # the API server is finishing the deletion
        try:
            await checked(kind.unfinalize(now))
            removed += holding
        except Gone:
            return removed
        except Conflict:
            continue
    still = await _still(kind, name, namespace, meta["uid"])
    if still is not None:
        report.failed.append(
            f"{kind.recorded.kind} {name} was deleted but is still there (finalizers: {', '.join(still) or 'none'}); "
            "it may still grant access, so the namespace is not closed yet"
        )
        return None
    return removed


async def _still(kind: Removable, name: str, namespace: str, uid: str) -> list[str] | None:
    try:
        now = await checked(kind.read(name, namespace, _preload_content=False))
    except Gone:
        return None
    if now["metadata"].get("uid") != uid:
        return None
    return list(now["metadata"].get("finalizers") or [])


async def recreate(kind: Removable, sweep: Sweep) -> None:
    """Recreate every object of this kind that was there at closing, as recorded (its finalizers too); name those
    that are not recreated."""
    found = await sweep.records()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(record: Record) -> None:
        async with limit:
            await _recreate_one(kind, sweep, record)

    await asyncio.gather(
        *(one(record) for (recorded, _, _), record in sorted(found.current.items()) if recorded == kind.recorded.kind)
    )


async def _recreate_one(kind: Removable, sweep: Sweep, record: Record) -> None:
    namespace, name = sweep.closing.namespace, record.name
    if not record.restorable:
        why = "made while the namespace was closed" if record.apart else "it was being deleted when it was closed"
        logger.warning("namespace %s: %s %s not recreated (%s): %s", namespace, record.kind, name, why,
                       record.object)  # fmt: skip
        sweep.report.add(f"{record.kind} {name} not recreated ({why}; its content is in the operator's log)")
        return
    fields = record.object
    metadata = {"name": name, "labels": fields["labels"], "annotations": fields["annotations"]}
    if record.finalizers:
        metadata["finalizers"] = record.finalizers
    body: Any = {
        "apiVersion": kind.api_version,
        "kind": record.kind,
        "metadata": metadata,
        **{field: fields[field] for field in kind.recorded.fields if fields.get(field) is not None},
    }
    try:
        if await _create(kind.create(namespace, body, _preload_content=False)):
            sweep.report.add(f"{record.kind} {name} recreated")
    except ApiError as error:  # the others are still tried; the namespace stays closed until all are back
        sweep.report.failed.append(f"recreating {record.kind} {name}: {error}")
