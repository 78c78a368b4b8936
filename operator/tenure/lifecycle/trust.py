"""A status Tenure can trust: sealed by Tenure, or rebuilt from spec.

Anyone allowed to write ``tenants/status`` could otherwise schedule a
deletion: forge ``Expired`` with an old ``expiredAt``, a ``Purging`` scope
naming foreign volumes, a zero retention window. An admission policy keeps
other writers out; this module is the defense in depth for a status restored
from a backup or written while the policy was absent.

Tenure seals every status it writes with an HMAC over the tenant's name and
uid and every status field it acts on (everything but conditions,
observedGeneration and the seal itself). The uid makes a status copied from
another tenant, or restored onto a recreated object, fail to verify.

A status that does not verify is never acted on. It is rebuilt from spec,
conservatively: it can only delay a deletion, never bring one forward.

* spec.state Active: Active (a forged or restored later phase is dropped).
* spec.state Suspended: Suspended from now, a fresh grace period.
* spec.state Closed or a deletion timestamp: Expired from now, a fresh
  retention window; a forged purge scope is dropped and recomputed when the
  purge starts.

Windows are the longer of the policy's and the recorded one, and each
deadline the later of the rebuilt and the recorded one, so no deadline
comes earlier than one Tenure sealed (unless the policy itself was shortened
since and the recorded window forged shorter too).

A status written by a Tenure without seals is rebuilt the same way on
upgrade; a status that records nothing beyond Active needs no seal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from tenure.api import RetentionPolicySpec, TenantStatus
from tenure.api.tenant import AppliedWindows, ClosureReason

from .model import TenantView
from .timeline import later, stamp

SEAL_VERSION = "v1"
UNSEALED = ("conditions", "observedGeneration", "seal")
"""Status fields outside the seal: nothing is decided from them."""


def canonical(name: str, uid: str, status: TenantStatus) -> bytes:
    """The sealed bytes: name, uid and the acted-on status fields, in one stable JSON form."""
    fields = {key: value for key, value in status.to_api().items() if key not in UNSEALED}
    return json.dumps([name, uid, fields], sort_keys=True, separators=(",", ":")).encode()


def seal(key: bytes, name: str, uid: str, status: TenantStatus) -> str:
    digest = hmac.new(key, canonical(name, uid, status), hashlib.sha256).hexdigest()
    return f"{SEAL_VERSION}:{digest}"


def sealed(key: bytes, name: str, uid: str, status: TenantStatus) -> TenantStatus:
    """The status carrying its seal."""
    return status.model_copy(update={"seal": seal(key, name, uid, status)})


def claims_nothing(status: TenantStatus) -> bool:
    """Records no state beyond Active: what a rebuild from an Active spec would give, so it needs no seal."""
    fields = {key for key in status.to_api() if key not in UNSEALED}
    return fields <= {"phase"} and status.phase in (None, "Active")


def verifies(key: bytes, name: str, uid: str, status: TenantStatus) -> bool:
    """The status is one Tenure wrote for this very object (or records nothing to trust)."""
    if claims_nothing(status):
        return True
    return status.seal is not None and hmac.compare_digest(status.seal, seal(key, name, uid, status))


def agrees(tenant: TenantView, closure: ClosureReason | None) -> bool:
    """The spec asks for the account's end: every destructive step needs this, whatever the status says."""
    state = tenant.spec.state
    return tenant.deleting or state == "Closed" or (state == "Suspended" and closure == "SuspensionGraceElapsed")


def rebuild(tenant: TenantView, policy: RetentionPolicySpec | None, now: datetime) -> TenantStatus:
    """A status from spec alone for a tenant whose recorded status does not verify; conditions are kept."""
    recorded = tenant.status
    at = stamp(now)
    windows = recorded.windows or AppliedWindows()
    keep = TenantStatus(conditions=recorded.conditions, observed_generation=recorded.observed_generation)
    spec = tenant.spec
    if tenant.deleting or spec.state == "Closed":
        window = _longer(policy.expired_data_retention if policy else None, windows.expired_data_retention)
        extension = spec.extensions.expired_data_retention if spec.extensions else None
        reason: ClosureReason = "TenantDeleted" if tenant.deleting else "Voluntary"
        return keep.model_copy(
            update={
                "phase": "Expired",
                "closure_reason": reason,
                "expired_at": at,
                "access_closed_at": at,
                "purge_after": _deadline(at, window, extension, recorded.purge_after),
                "windows": AppliedWindows(expired_data_retention=window) if window is not None else None,
            }
        )
    if spec.state == "Suspended":
        window = _longer(policy.suspension_grace_period if policy else None, windows.suspension_grace_period)
        extension = spec.extensions.suspension_grace_period if spec.extensions else None
        return keep.model_copy(
            update={
                "phase": "Suspended",
                "suspended_at": at,
                "access_closed_at": at,
                "grace_ends_at": _deadline(at, window, extension, recorded.grace_ends_at),
                "windows": AppliedWindows(suspension_grace_period=window) if window is not None else None,
            }
        )
    return keep.model_copy(update={"phase": "Active"})


def _longer(policy: timedelta | None, recorded: timedelta | None) -> timedelta | None:
    if policy is None:
        return None  # without a policy no deadline is computed, whatever was recorded
    return max(policy, recorded) if recorded is not None else policy


def _deadline(
    entered: datetime, window: timedelta | None, extension: timedelta | None, recorded: datetime | None
) -> datetime | None:
    if window is None:
        return None
    return later(entered + window + (extension or timedelta(0)), recorded)


def view(
    tenant: TenantView, uid: str, key: bytes, policy: RetentionPolicySpec | None, now: datetime
) -> tuple[TenantView, bool]:
    """The tenant as decisions may see it, and whether its recorded status verified."""
    if verifies(key, tenant.name, uid, tenant.status):
        return tenant, True
    return replace(tenant, status=rebuild(tenant, policy, now)), False


def purged(key: bytes, name: str, uid: str, raw: Mapping[str, Any]) -> bool:
    """Purged as Tenure sealed it: only then has a tenant released its keys in shared DataStores."""
    try:
        status = TenantStatus.model_validate(raw)
    except ValidationError:
        return False
    return status.phase == "Purged" and verifies(key, name, uid, status)
