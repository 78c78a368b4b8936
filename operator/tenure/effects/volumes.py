"""PersistentVolumes of a tenant: make their storage die with their claims, then remove leftovers.

Both calls carry the volume's uid as a precondition, so a volume recreated
under the same name is never touched.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from .kube import AS_MERGE_PATCH, Kube, status_of, unless_gone

logger = logging.getLogger(__name__)


async def reclaim_on_delete(kube: Kube, name: str, uid: str) -> None:
    body = {"metadata": {"uid": uid}, "spec": {"persistentVolumeReclaimPolicy": "Delete"}}
    try:
        await kube.core.patch_persistent_volume(name, body, **AS_MERGE_PATCH, _preload_content=False)
    except Exception as error:
        if status_of(error) not in (404, 409):
            raise


async def exists(kube: Kube, name: str, uid: str) -> bool:
    """Whether this very volume (same uid) still exists, asked of the API server, not a cache."""
    live = await unless_gone(kube.core.read_persistent_volume(name))
    return live is not None and bool(live.metadata.uid == uid)


async def delete(kube: Kube, name: str, uid: str) -> None:
    options = V1DeleteOptions(preconditions=V1Preconditions(uid=uid))
    try:
        await kube.core.delete_persistent_volume(name, body=options, _preload_content=False)
    except Exception as error:
        if status_of(error) not in (404, 409):
            raise
        return
    logger.info("deleted persistent volume %s", name)
