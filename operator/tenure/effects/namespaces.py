"""Tenant namespaces: create, claim by label, and delete only what is provably owned.

Deletion re-reads the namespace from the API server right before deleting
and sends its uid and resourceVersion as preconditions: if anyone relabeled,
protected or replaced it since, the API server refuses and nothing is lost.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio.client import V1DeleteOptions, V1Namespace, V1ObjectMeta, V1Preconditions

from tenure.api import PROTECTED_LABEL, TENANT_LABEL

from .kube import AS_MERGE_PATCH, Kube, status_of, unless_gone

logger = logging.getLogger(__name__)


class NotOwned(Exception):
    """The namespace is not provably the tenant's; it was not deleted."""


async def create(kube: Kube, name: str, tenant: str) -> None:
    body = V1Namespace(metadata=V1ObjectMeta(name=name, labels={TENANT_LABEL: tenant}))
    try:
        await kube.core.create_namespace(body, _preload_content=False)
    except Exception as error:
        if status_of(error) != 409:  # created meanwhile: the next pass sees who owns it
            raise


async def claim(kube: Kube, name: str, tenant: str, resource_version: str) -> None:
    """Label an unlabeled namespace, only if unchanged since it was seen unlabeled."""
    body = {"metadata": {"resourceVersion": resource_version, "labels": {TENANT_LABEL: tenant}}}
    try:
        await kube.core.patch_namespace(name, body, **AS_MERGE_PATCH, _preload_content=False)
    except Exception as error:
        if status_of(error) not in (404, 409):  # gone or changed: decided again from the new state
            raise


async def exists(kube: Kube, name: str, uid: str) -> bool:
    """Whether this very namespace (same uid) still exists, asked of the API server, not a cache."""
    live = await unless_gone(kube.core.read_namespace(name))
    return live is not None and bool(live.metadata.uid == uid)


async def delete(kube: Kube, name: str, tenant: str, uid: str, protected: frozenset[str]) -> bool:
    """Delete the namespace if it is still this tenant's; True when it is gone or going."""
    live = await unless_gone(kube.core.read_namespace(name))
    if live is None:
        return True
    labels = live.metadata.labels or {}
    if (
        live.metadata.uid != uid
        or labels.get(TENANT_LABEL) != tenant
        or labels.get(PROTECTED_LABEL) == "true"
        or name in protected
    ):
        raise NotOwned(f"namespace {name} is no longer provably owned by tenant {tenant}; not deleted")
    if live.metadata.deletion_timestamp is not None:
        return True
    options = V1DeleteOptions(
        preconditions=V1Preconditions(uid=uid, resource_version=live.metadata.resource_version),
        propagation_policy="Background",
    )
    try:
        await kube.core.delete_namespace(name, body=options, _preload_content=False)
    except Exception as error:
        if status_of(error) == 404:
            return True
        raise
    logger.info("deleted namespace %s of tenant %s", name, tenant)
    return True
