"""PersistentVolumes of a tenant: make their storage die with their claims, then remove leftovers.

Both calls carry the volume's uid as a precondition, so a volume recreated
under the same name is never touched. Each returns what the API server did
(:class:`Outcome`), never what was asked: a volume already gone is not counted
as deleted, and one that changed since it was decided about is left for the
next pass to decide again.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from .errors import Conflict, Gone, checked
from .kube import AS_MERGE_PATCH, Kube, unless_gone
from .outcome import Outcome

logger = logging.getLogger(__name__)


async def reclaim_on_delete(kube: Kube, name: str, uid: str) -> Outcome:
    body = {"metadata": {"uid": uid}, "spec": {"persistentVolumeReclaimPolicy": "Delete"}}
    try:
        await checked(kube.core.patch_persistent_volume(name, body, **AS_MERGE_PATCH, _preload_content=False))
    except Gone:
        return Outcome.GONE
    except Conflict:
        logger.info("volume %s was replaced (uid changed); its reclaim policy is not changed", name)
        return Outcome.CHANGED
    logger.info("volume %s: reclaim policy set to Delete", name)
    return Outcome.DONE


async def exists(kube: Kube, name: str, uid: str) -> bool:
    """Whether this very volume (same uid) still exists, asked of the API server, not a cache."""
    live = await unless_gone(kube.core.read_persistent_volume(name))
    return live is not None and bool(live.metadata.uid == uid)


async def delete(kube: Kube, name: str, uid: str) -> Outcome:
    options = V1DeleteOptions(preconditions=V1Preconditions(uid=uid))
    try:
        await checked(kube.core.delete_persistent_volume(name, body=options, _preload_content=False))
    except Gone:
        logger.info("persistent volume %s was already gone", name)
        return Outcome.GONE
    except Conflict:
        logger.info("persistent volume %s was replaced (uid changed); not deleted", name)
        return Outcome.CHANGED
    logger.info("deleted persistent volume %s", name)
    return Outcome.DONE
