"""What the operator remembers about the cluster, kept current by kopf's watches.

kopf indexes are filled from each resource's initial listing before any
other handler runs, so the scheduler never decides about a tenant before
every policy and legal hold is known. The index functions only parse; they
never call the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from tenure.api import RetentionPolicySpec, TenantSpec, TenantStatus
from tenure.lifecycle import TenantView

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


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    spec: RetentionPolicySpec | None
    error: str | None = None


def tenant_record(body: kopf.Body) -> TenantRecord:
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
        )
    except ValidationError as error:
        return TenantRecord(**common, view=None, error=_describe(error))
    return TenantRecord(**common, view=view)


def policy_record(spec: kopf.Spec) -> PolicyRecord:
    try:
        return PolicyRecord(RetentionPolicySpec.model_validate(dict(spec)))
    except ValidationError as error:
        return PolicyRecord(None, _describe(error))


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors(include_url=False)
    )


def only(index: kopf.Index[str, Any], key: str) -> Any:
    """The single value indexed under a unique key (an object name), or None."""
    store = index.get(key)
    return next(iter(store), None) if store else None
