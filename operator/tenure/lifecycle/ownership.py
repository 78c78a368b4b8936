"""Which namespaces a tenant owns, and which it may never touch.

A namespace is the tenant's only when it carries the label
``retention.tenure.dev/tenant=<tenant>``, and Tenure writes that label in one
case only: creating, while the tenant is Active, a listed namespace that does
not exist (nobody else's data can be in it). An existing namespace without the
label is never labeled by Tenure, whoever listed it: it is reported with how
to hand it over (an administrator labels it) and never touched. Protected
namespaces are never created, owned or deleted, labeled or not: every
``kube-*`` one, ``default``, the operator's own, the configured ones, and any
labeled ``retention.tenure.dev/protected=true``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tenure.api import TENANT_LABEL
from tenure.api.meta import ConditionStatus
from tenure.api.tenant import CreatedNamespace

from .conditions import LISTED, listing
from .model import PROTECTED_PREFIX, Action, CreateNamespace, NamespaceFact, TenantView, World

UNLABELED = "exists without this tenant's label"


@dataclass(frozen=True)
class Ownership:
    tenant: str
    owned: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]
    """(namespace, why) pairs."""
    pending: tuple[str, ...]
    """Namespaces being created."""
    actions: tuple[Action, ...]
    created: tuple[CreatedNamespace, ...]
    """Namespaces Tenure created for the tenant, as recorded in status."""
    unlisted: tuple[str, ...] = ()
    """Namespaces labeled for the tenant that it does not list: closed and purged with the others."""


def protected(name: str, labeled: bool, configured: frozenset[str]) -> bool:
    """Whether a namespace is out of every tenant's reach: labeled protected, configured, or a ``kube-*`` one."""
    return labeled or name in configured or name.startswith(PROTECTED_PREFIX)


def is_protected(name: str, world: World) -> bool:
    fact = world.namespaces.get(name)
    return protected(name, fact is not None and fact.protected, world.protected)


def tenant_namespaces(tenant: TenantView, world: World) -> tuple[NamespaceFact, ...]:
    """The tenant's namespaces: every one labeled for it and not protected, listed in ``spec.namespaces`` or handed
    over by the label alone. One scope for both ends of the lifecycle: what is closed while the tenant is inaccessible
    is exactly what its purge deletes (:func:`tenure.lifecycle.purge.scope`), so no namespace the purge will delete
    stays open while Suspended or Expired. Listed ones come first, in their order, then the others by name."""
    facts = sorted(world.namespaces.values(), key=lambda fact: fact.name)
    order = {name: index for index, name in enumerate(dict.fromkeys(tenant.spec.namespaces))}
    facts.sort(key=lambda fact: order.get(fact.name, len(order)))
    return tuple(fact for fact in facts if fact.owner == tenant.name and not is_protected(fact.name, world))


def ownership(tenant: TenantView, world: World, create: bool) -> Ownership:
    """What the tenant owns of the namespaces it lists; ``create`` (while Active) creates missing ones."""
    owned: list[str] = []
    refused: list[tuple[str, str]] = []
    pending: list[str] = []
    actions: list[Action] = []
    for name in tenant.spec.namespaces:
        fact = world.namespaces.get(name)
        if is_protected(name, world):
            refused.append((name, "is protected"))
        elif fact is None and create:
            pending.append(name)
            actions.append(CreateNamespace(name))
        elif fact is None:
            refused.append((name, "does not exist; namespaces are created only while the tenant is Active"))
        elif fact.owner == tenant.name:
            owned.append(name)
        elif fact.owner is not None:
            refused.append((name, f"belongs to tenant {fact.owner!r}"))
        else:
            refused.append((name, UNLABELED))
    listed = set(tenant.spec.namespaces)
    unlisted = tuple(fact.name for fact in tenant_namespaces(tenant, world) if fact.name not in listed)
    return Ownership(
        tenant.name, tuple(owned), tuple(refused), tuple(pending), tuple(actions), created(tenant, world), unlisted
    )


def created(tenant: TenantView, world: World) -> tuple[CreatedNamespace, ...]:
    """The recorded namespaces Tenure created, with any it has created since (the latest uid per name)."""
    record = {entry.name: entry for entry in tenant.status.created_namespaces or ()}
    for fact in world.namespaces.values():
        if fact.created_for == tenant.name and fact.owner == tenant.name:
            record[fact.name] = CreatedNamespace(name=fact.name, uid=fact.uid)
    return tuple(sorted(record.values(), key=lambda entry: entry.name))


def hand_over(tenant: str, names: Iterable[str]) -> str:
    """How an administrator gives existing namespaces to a tenant."""
    return f"kubectl label namespace {' '.join(names)} {TENANT_LABEL}={tenant}"


def describe(result: Ownership) -> tuple[ConditionStatus, str, str]:
    """(status, reason, message) of the NamespacesOwned condition."""
    status, reason, message = _describe(result)
    if result.unlisted:
        message += (
            f" Labeled for this tenant but not in spec.namespaces, closed while it is inaccessible and purged with the "
            f"others: {listing(result.unlisted)}."
        )
    return status, reason, message


def _describe(result: Ownership) -> tuple[ConditionStatus, str, str]:
    if result.refused:
        reasons = listing((f"{name} {why}" for name, why in result.refused), "; ")
        message = f"Not owned and never touched: {reasons}."
        unlabeled = [name for name, why in result.refused if why == UNLABELED]
        if unlabeled:
            message += (
                " Tenure never labels a namespace it did not create; to hand one over, an administrator labels it: "
                f"{hand_over(result.tenant, unlabeled[:LISTED])}."
            )
        return "False", "NamespacesRefused", message
    if result.pending:
        return "Unknown", "Creating", f"Creating: {listing(result.pending)}."
    if not result.owned:
        return "True", "NoNamespaces", "The tenant lists no namespaces."
    return "True", "AllOwned", f"Labeled for this tenant: {listing(result.owned)}."
