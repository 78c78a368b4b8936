"""Stopping what runs in a closed namespace, and putting back exactly what was asked for on reopening.

The decisions only: :mod:`tenure.effects.workloads` reads and writes the objects.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from tenure.api.meta import API_GROUP

from .access import Patch, mac

ASKED_ANNOTATION = f"{API_GROUP}/asked"
"""On a stopped object: what a person asked for (``replicas=3`` or ``suspend=false``) and its seal."""
SCALED = ("Deployment", "StatefulSet", "ReplicaSet")
SUSPENDED = ("CronJob", "Job")

Field = Literal["replicas", "suspend"]


@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment, StatefulSet, ReplicaSet, CronJob or Job as far as stopping it goes."""

    kind: str
    namespace: str
    name: str
    uid: str
    value: int | bool
    """spec.replicas, or spec.suspend."""
    asked: str | None = None
    """The raw ASKED_ANNOTATION, if any."""
    controlled: bool = False
    """Owned by another controller (a Deployment's ReplicaSet): that controller is stopped instead."""
    finished: bool = False
    """A Job that completed or failed: nothing runs to stop."""

    @property
    def field(self) -> Field:
        return "replicas" if self.kind in SCALED else "suspend"

    @property
    def stopped_value(self) -> int | bool:
        return 0 if self.field == "replicas" else True


def _text(value: int | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def asked_record(key: bytes, workload: Workload, value: int | bool) -> str:
    """The annotation recording that a person asked for ``value``."""
    text = f"{workload.field}={_text(value)}"
    return f"{text}:{mac(key, workload.kind, workload.namespace, workload.name, workload.uid, text)}"


def recorded(key: bytes, workload: Workload) -> int | bool | None:
    """The value the annotation records, if it verifies for this very object; None otherwise."""
    if workload.asked is None:
        return None
    text, _, seal = workload.asked.rpartition(":")
    expected = mac(key, workload.kind, workload.namespace, workload.name, workload.uid, text)
    field, _, raw = text.partition("=")
    if not hmac.compare_digest(seal, expected) or field != workload.field:
        return None
    if field == "suspend":
        return raw == "true"
    return int(raw)


def stop(key: bytes, workload: Workload) -> Patch | None:
    """The merge patch that stops a running workload and records what was asked; None when nothing runs."""
    if workload.controlled or workload.finished or workload.value == workload.stopped_value:
        return None
    return {
        "metadata": {"annotations": {ASKED_ANNOTATION: asked_record(key, workload, workload.value)}},
        "spec": {workload.field: workload.stopped_value},
    }


@dataclass(frozen=True, slots=True)
class Restore:
    patch: Patch
    forged: bool = False
    """The record did not verify: the annotation is removed and the object left stopped."""


def restore(key: bytes, workload: Workload) -> Restore | None:
    """The merge patch that puts back what was asked for and removes the record; None when nothing was recorded.

    Only a stopped object gets its recorded value back: one a person changed since (after reopening) keeps theirs.
    A controlled object is never stopped by Tenure: a record on it is its controller's copy (a Deployment copies its
    annotations to its ReplicaSets), which goes when the controller's own record does.
    """
    if workload.asked is None or workload.controlled:
        return None
    drop: Patch = {"metadata": {"annotations": {ASKED_ANNOTATION: None}}}
    value = recorded(key, workload)
    if value is None:
        return Restore(drop, forged=True)
    if workload.value != workload.stopped_value:
        return Restore(drop)
    return Restore({**drop, "spec": {workload.field: value}})
