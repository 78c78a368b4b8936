"""Which namespaces a tenant owns, and which it may never touch.

A namespace is the tenant's only when it carries the label
``retention.tenure.dev/tenant=<tenant>``. While the tenant is Active, Tenure
creates missing namespaces with that label and labels existing unlabeled
ones; it refuses protected namespaces (system ones, the operator's own, any
labeled ``retention.tenure.dev/protected=true``) and namespaces labeled for
another tenant. After the account is suspended or closed nothing new is
claimed: a namespace added to the list later is never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenure.api.meta import ConditionStatus

from .conditions import listing
from .model import Action, ClaimNamespace, CreateNamespace, TenantView, World


@dataclass(frozen=True)
class Ownership:
    owned: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]
    """(namespace, why) pairs."""
    pending: tuple[str, ...]
    """Namespaces being created or labeled, or not claimable in this phase."""
    actions: tuple[Action, ...]


def is_protected(name: str, world: World) -> bool:
    fact = world.namespaces.get(name)
    return name in world.protected or (fact is not None and fact.protected)


def ownership(tenant: TenantView, world: World, claim: bool) -> Ownership:
    owned: list[str] = []
    refused: list[tuple[str, str]] = []
    pending: list[str] = []
    actions: list[Action] = []
    for name in tenant.spec.namespaces:
        fact = world.namespaces.get(name)
        if is_protected(name, world):
            refused.append((name, "is protected"))
        elif fact is not None and fact.owner not in (None, tenant.name):
            refused.append((name, f"belongs to tenant {fact.owner!r}"))
        elif fact is not None and fact.owner == tenant.name:
            owned.append(name)
        elif fact is not None and fact.terminating:
            refused.append((name, "is being deleted and is not labeled for this tenant"))
        elif claim:
            pending.append(name)
            actions.append(CreateNamespace(name) if fact is None else ClaimNamespace(name, fact.resource_version))
        else:
            refused.append((name, "was never claimed: namespaces are only claimed while the tenant is Active"))
    return Ownership(tuple(owned), tuple(refused), tuple(pending), tuple(actions))


def describe(result: Ownership) -> tuple[ConditionStatus, str, str]:
    """(status, reason, message) of the NamespacesOwned condition."""
    if result.refused:
        reasons = listing((f"{name} {why}" for name, why in result.refused), "; ")
        return "False", "NamespacesRefused", f"Not owned and never touched: {reasons}."
    if result.pending:
        return "Unknown", "Claiming", f"Creating or labeling: {listing(result.pending)}."
    if not result.owned:
        return "True", "NoNamespaces", "The tenant lists no namespaces."
    return "True", "AllOwned", f"Labeled for this tenant: {listing(result.owned)}."
