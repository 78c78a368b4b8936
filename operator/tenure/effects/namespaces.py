"""Tenant namespaces: create missing ones, and delete only what is provably owned.

Tenure labels a namespace only by creating it: an existing one is never
labeled, so the label on it is an administrator's hand-over. Deletion
re-reads the namespace from the API server right before deleting and sends
its uid and resourceVersion as preconditions: if anyone relabeled, protected
or replaced it since, the API server refuses and nothing is lost.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio.client import V1DeleteOptions, V1Namespace, V1ObjectMeta, V1Preconditions

from tenure.api import PROTECTED_LABEL, TENANT_LABEL
from tenure.api.meta import CREATED_ANNOTATION
from tenure.lifecycle.ownership import protected as is_protected

from .errors import Conflict, checked
from .kube import Kube, unless_gone
from .outcome import Outcome, guarded

logger = logging.getLogger(__name__)


class NotOwned(Exception):
    """The namespace is not provably the tenant's; it was not deleted."""


async def create(kube: Kube, name: str, tenant: str) -> Outcome:
    """Create the namespace labeled for the tenant; one that exists already (a cache behind) is left as it is."""
    metadata = V1ObjectMeta(name=name, labels={TENANT_LABEL: tenant}, annotations={CREATED_ANNOTATION: tenant})
    try:
        await checked(kube.core.create_namespace(V1Namespace(metadata=metadata), _preload_content=False))
    except Conflict:  # it exists: never labeled by Tenure; the next pass reports who owns it
        return Outcome.CHANGED
    logger.info("created namespace %s for tenant %s", name, tenant)
    return Outcome.DONE


async def exists(kube: Kube, name: str, uid: str) -> bool:
    """Whether this very namespace (same uid) still exists, asked of the API server, not a cache."""
    live = await unless_gone(kube.core.read_namespace(name))
    return live is not None and bool(live.metadata.uid == uid)


async def delete(kube: Kube, name: str, tenant: str, uid: str, protected: frozenset[str]) -> Outcome:
    """Delete the namespace if it is still this tenant's (raises NotOwned otherwise)."""
    live = await unless_gone(kube.core.read_namespace(name))
    if live is None or live.metadata.uid != uid:
        return Outcome.GONE
    labels = live.metadata.labels or {}
    if labels.get(TENANT_LABEL) != tenant or is_protected(name, labels.get(PROTECTED_LABEL) == "true", protected):
        raise NotOwned(f"namespace {name} is no longer provably owned by tenant {tenant}; not deleted")
    if live.metadata.deletion_timestamp is not None:
        return Outcome.GONE
    options = V1DeleteOptions(
        preconditions=V1Preconditions(uid=uid, resource_version=live.metadata.resource_version),
        propagation_policy="Background",
    )
    write = kube.core.delete_namespace(name, body=options, _preload_content=False)
    return await guarded(write, f"namespace {name} of tenant {tenant}", "deleted")
