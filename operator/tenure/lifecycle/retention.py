"""Active-data retention: which records of which tenants are old enough to delete.

A tenant's records of a data class are deleted once older than its policy's
retention for that class (``dataClassRetention`` overrides
``activeDataRetention``; unset means kept). Tenants under a legal hold, being
purged or purged, or without a policy, get no cutoff at all: nothing of
theirs is swept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from tenure.api import DATA_CLASSES, DataClass, RetentionPolicySpec

from .model import TenantView

Cutoffs = dict[DataClass, datetime]


def cutoffs(
    tenants: Iterable[TenantView],
    policy_of: Callable[[str], RetentionPolicySpec | None],
    held: Mapping[str, object] | set[str],
    now: datetime,
) -> dict[str, Cutoffs]:
    """Per tenant, per data class: records dated before the cutoff are past retention."""
    result: dict[str, Cutoffs] = {}
    for tenant in tenants:
        if tenant.name in held or tenant.status.phase in ("Purging", "Purged"):
            continue
        policy = policy_of(tenant.spec.retention_policy)
        if policy is None:
            continue
        classes = {c: now - keep for c in DATA_CLASSES if (keep := policy.retention_for(c)) is not None}
        if classes:
            result[tenant.name] = classes
    return result
