"""Stopping what runs in a closed namespace, and putting back exactly what was asked for on reopening.

The decisions only: :mod:`tenure.effects.workloads` reads and writes the objects.

Nothing here depends on an ownerReference the tenant can write. Every controller Tenure knows is stopped, whoever
claims to own it, with one exception: a ReplicaSet whose controller is a Deployment of the same namespace, checked
against that Deployment's uid (:func:`owned_by_deployment`), is stopped through its Deployment. Every pod is deleted,
whatever owns it (:func:`pod_deletion`), with a bounded grace period, and again with grace 0 when it is still there
past it; the quota ``pods: "0"`` keeps any controller Tenure does not know from making new ones.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from tenure.api.meta import API_GROUP

from .access import Patch, mac

ASKED_ANNOTATION = f"{API_GROUP}/asked"
"""On a stopped object: what a person asked for (``replicas=3``, ``suspend=false``, ``nodeSelector=null``) and its
seal."""
SCALED = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController")
SUSPENDED = ("CronJob", "Job")
PLACED = ("DaemonSet",)
"""Cannot be scaled: stopped by a node selector no node matches (:data:`STOP_SELECTOR`)."""
STOP_SELECTOR = (f"{API_GROUP}/inaccessible", "true")
"""The key and value Tenure adds to a stopped DaemonSet's ``spec.template.spec.nodeSelector``: no node carries it, so
the DaemonSet controller runs its pods nowhere. Only that one key is changed, recorded and put back."""

Field = Literal["replicas", "suspend", "nodeSelector"]
Value = int | bool | str | None
"""spec.replicas, spec.suspend, or the value of a DaemonSet's nodeSelector[STOP_SELECTOR key] (None: absent)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment, StatefulSet, ReplicaSet, ReplicationController, DaemonSet, CronJob or Job as far as stopping it
    goes."""

    kind: str
    namespace: str
    name: str
    uid: str
    value: Value
    """spec.replicas, spec.suspend, or a DaemonSet's nodeSelector value under Tenure's key."""
    asked: str | None = None
    """The raw ASKED_ANNOTATION, if any."""
    controlled: bool = False
    """A ReplicaSet a Deployment of its namespace really controls (:func:`owned_by_deployment`): the Deployment is
    stopped instead. Never set from an ownerReference alone."""
    finished: bool = False
    """A Job that completed or failed: nothing runs to stop."""

    @property
    def field(self) -> Field:
        if self.kind in SCALED:
            return "replicas"
        return "nodeSelector" if self.kind in PLACED else "suspend"

    @property
    def stopped_value(self) -> Value:
        stopped: dict[Field, Value] = {"replicas": 0, "suspend": True, "nodeSelector": STOP_SELECTOR[1]}
        return stopped[self.field]


def owned_by_deployment(owner_references: Sequence[Mapping[str, Any]], deployments: Mapping[str, str]) -> bool:
    """Whether a ReplicaSet's controller reference names a Deployment that exists in its namespace with that very uid
    (``deployments``: name → uid, as listed from the API server). A reference naming anything else — a ConfigMap, a
    Deployment that does not exist, or one under another uid — is only something the tenant wrote."""
    for ref in owner_references:
        if ref.get("controller") is not True:
            continue
        if ref.get("apiVersion") == "apps/v1" and ref.get("kind") == "Deployment":
            uid = deployments.get(str(ref.get("name")))
            return uid is not None and uid == ref.get("uid")
        return False
    return False


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None or isinstance(value, str):
        return json.dumps(value)
    return str(value)


def asked_record(key: bytes, workload: Workload, value: Value) -> str:
    """The annotation recording that a person asked for ``value``."""
    text = f"{workload.field}={_text(value)}"
    return f"{text}:{mac(key, workload.kind, workload.namespace, workload.name, workload.uid, text)}"


@dataclass(frozen=True, slots=True)
class Asked:
    """A record that verified, and the value it records."""

    value: Value


def verified(key: bytes, workload: Workload) -> Asked | None:
    """The record on the object, if it verifies for this very object and its field; None otherwise."""
    if workload.asked is None:
        return None
    text, _, seal = workload.asked.rpartition(":")
    expected = mac(key, workload.kind, workload.namespace, workload.name, workload.uid, text)
    field, _, raw = text.partition("=")
    if not hmac.compare_digest(seal, expected) or field != workload.field:
        return None
    if field == "suspend":
        return Asked(raw == "true")
    if field == "nodeSelector":
        value = json.loads(raw)
        return Asked(value) if value is None or isinstance(value, str) else None
    return Asked(int(raw))


def recorded(key: bytes, workload: Workload) -> Value:
    """The value the annotation records, if it verifies for this very object; None otherwise (for a DaemonSet, use
    :func:`verified`: None is also what it records for an absent key)."""
    found = verified(key, workload)
    return None if found is None else found.value


def _spec(workload: Workload, value: Value) -> Patch:
    if workload.field == "nodeSelector":
        return {"template": {"spec": {"nodeSelector": {STOP_SELECTOR[0]: value}}}}
    return {workload.field: value}


def stop(key: bytes, workload: Workload) -> Patch | None:
    """The merge patch that stops a running workload and records what was asked; None when nothing runs."""
    if workload.controlled or workload.finished or workload.value == workload.stopped_value:
        return None
    return {
        "metadata": {"annotations": {ASKED_ANNOTATION: asked_record(key, workload, workload.value)}},
        "spec": _spec(workload, workload.stopped_value),
    }


@dataclass(frozen=True, slots=True)
class Restore:
    patch: Patch
    forged: bool = False
    """The record did not verify: the annotation is removed and the object left stopped."""

    @property
    def value(self) -> Value:
        """What the patch puts back (only meaningful when it has a ``spec``)."""
        spec = self.patch["spec"]
        if "template" in spec:
            selector: dict[str, Value] = spec["template"]["spec"]["nodeSelector"]
            return selector[STOP_SELECTOR[0]]
        ((_, value),) = spec.items()
        return value  # type: ignore[no-any-return]


def restore(key: bytes, workload: Workload) -> Restore | None:
    """The merge patch that puts back what was asked for and removes the record; None when nothing was recorded.

    Only a stopped object gets its recorded value back: one a person changed since (after reopening) keeps theirs.
    A controlled object is never stopped by Tenure: a record on it is its controller's copy (a Deployment copies its
    annotations to its ReplicaSets), which goes when the controller's own record does.
    """
    if workload.asked is None or workload.controlled:
        return None
    drop: Patch = {"metadata": {"annotations": {ASKED_ANNOTATION: None}}}
    found = verified(key, workload)
    if found is None:
        return Restore(drop, forged=True)
    if workload.value != workload.stopped_value:
        return Restore(drop)
    return Restore({**drop, "spec": _spec(workload, found.value)})


# Pods


DEFAULT_POD_GRACE = 30
"""Kubernetes' default terminationGracePeriodSeconds."""


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod as far as ending it goes."""

    name: str
    uid: str
    grace: int | None = None
    """spec.terminationGracePeriodSeconds."""
    deletion: datetime | None = None
    """metadata.deletionTimestamp: when its grace period ends, if it is being deleted."""
    deletion_grace: int | None = None
    """metadata.deletionGracePeriodSeconds, if it is being deleted."""
    finished: bool = False
    """Phase Succeeded or Failed: no container of it runs."""


def pod_deletion(pod: Pod, bound: int, now: datetime) -> int | None:
    """The grace period to delete the pod with now, or None when nothing is to be done yet.

    Never longer than ``bound`` (the pod's own period when shorter): one being deleted with a longer period (its
    controller's scale-down, or a person) is deleted again with ``bound``, which shortens it; one still there past its
    deletion deadline is deleted with grace 0 (the API server forgets it and the kubelet kills its containers)."""
    if pod.finished:
        return None
    if pod.deletion is None:
        return max(0, min(bound, DEFAULT_POD_GRACE if pod.grace is None else pod.grace))
    if pod.deletion_grace is None or pod.deletion_grace > bound:
        return max(0, bound)
    if pod.deletion_grace > 0 and now >= pod.deletion:
        return 0
    return None


def pod_deadline(pod: Pod, grace: int | None, now: datetime) -> datetime | None:
    """When to look at the pod again, given what :func:`pod_deletion` said (``grace``): at the end of the grace period
    it has (just given, or being honoured), so one that outlives it is deleted with grace 0 without waiting a sweep."""
    if pod.finished or grace == 0:
        return None
    if grace is not None:
        return now + timedelta(seconds=grace)
    if pod.deletion is not None and pod.deletion_grace:
        return max(pod.deletion, now)
    return None
