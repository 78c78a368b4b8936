"""PersistentVolumes of a tenant: make their storage die with their claims, then remove leftovers.

Every change is made to the volume as the API server has it right now: it is
re-read first, left alone unless it is the recorded object (uid) still bound
to the recorded claim (claimRef.uid), and written with that uid and its
resourceVersion as preconditions, so a volume recreated, rebound or changed
in between is never touched. Each call returns what the API server did
(:class:`Outcome`), never what was asked: a volume already gone is not
counted as deleted, and one that changed since it was decided about is left
for the next pass to decide again.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1PersistentVolume, V1Preconditions

from .errors import checked
from .kube import AS_MERGE_PATCH, Kube, unless_gone
from .outcome import Outcome, guarded

logger = logging.getLogger(__name__)


async def _live(kube: Kube, name: str, uid: str, claim_uid: str | None) -> V1PersistentVolume | Outcome:
    """The volume as it is now, or the Outcome to report when it is not the one decided about."""
    live: V1PersistentVolume | None = await unless_gone(kube.core.read_persistent_volume(name))
    if live is None or live.metadata.uid != uid:
        return Outcome.GONE
    claim = live.spec.claim_ref
    if claim_uid is None or claim is None or claim.uid != claim_uid:
        logger.warning("volume %s is no longer bound to claim %s; left untouched", name, claim_uid)
        return Outcome.CHANGED
    return live


async def set_reclaim_policy(kube: Kube, name: str, uid: str, claim_uid: str | None, policy: str) -> Outcome:
    live = await _live(kube, name, uid, claim_uid)
    if isinstance(live, Outcome):
        return live
    if live.spec.persistent_volume_reclaim_policy == policy:
        return Outcome.DONE
    body = {
        "metadata": {"uid": uid, "resourceVersion": live.metadata.resource_version},
        "spec": {"persistentVolumeReclaimPolicy": policy},
    }
    write = kube.core.patch_persistent_volume(name, body, **AS_MERGE_PATCH, _preload_content=False)
    return await guarded(write, f"persistent volume {name}", f"reclaim policy set to {policy}")


async def claims_in(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    """The PersistentVolumeClaims in a namespace, asked of the API server, not a cache."""
    listing = await checked(kube.core.list_namespaced_persistent_volume_claim(namespace, _preload_content=False))
    items: list[dict[str, Any]] = listing["items"]
    return items


async def exists(kube: Kube, name: str, uid: str) -> bool:
    """Whether this very volume (same uid) still exists, asked of the API server, not a cache."""
    live = await unless_gone(kube.core.read_persistent_volume(name))
    return live is not None and bool(live.metadata.uid == uid)


async def delete(kube: Kube, name: str, uid: str, claim_uid: str | None) -> Outcome:
    live = await _live(kube, name, uid, claim_uid)
    if isinstance(live, Outcome):
        return live
    options = V1DeleteOptions(preconditions=V1Preconditions(uid=uid, resource_version=live.metadata.resource_version))
    write = kube.core.delete_persistent_volume(name, body=options, _preload_content=False)
    return await guarded(write, f"persistent volume {name}", "deleted")
