"""Policy resolution: the first rule every tenant goes through."""

from __future__ import annotations

from datetime import datetime

from tenure.api import RetentionPolicySpec

from .conditions import condition
from .model import Decision, Event, TenantView


def decide(tenant: TenantView, policy: RetentionPolicySpec | None, now: datetime) -> Decision:
    status = tenant.status
    events: list[Event] = []
    if policy is None:
        resolved = condition(
            status.conditions,
            "PolicyResolved",
            "False",
            "PolicyNotFound",
            f"RetentionPolicy {tenant.spec.retention_policy!r} does not exist; no deadline that needs it is "
            "computed and nothing is deleted until it does.",
            now,
            tenant.generation,
        )
    else:
        resolved = condition(
            status.conditions,
            "PolicyResolved",
            "True",
            "PolicyFound",
            f"Windows come from RetentionPolicy {tenant.spec.retention_policy!r}.",
            now,
            tenant.generation,
        )
    phase = status.phase or "Active"
    if status.phase is None:
        events.append(Event("Registered", f"Tenant is Active under policy {tenant.spec.retention_policy!r}."))
    others = tuple(c for c in status.conditions if c.type != "PolicyResolved")
    new = status.model_copy(
        update={"phase": phase, "observed_generation": tenant.generation, "conditions": (*others, resolved)}
    )
    return Decision(status=new, events=tuple(events))
