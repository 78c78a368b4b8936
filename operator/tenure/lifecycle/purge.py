"""The purge, as steps whose completion is observed, never assumed.

1. On entry the scope is recorded in status: the namespaces labeled for the
   tenant and the volumes bound to claims in them. Nothing is deleted until
   that record is written, so a restart resumes the same scope.
2. Every recorded volume's reclaim policy becomes Delete, so the storage
   provisioner destroys the disk when the claim goes.
3. Then the recorded namespaces are deleted — only while still labeled for
   the tenant and not protected.
4. A recorded volume still present once its claim is gone is deleted: at once
   when statically provisioned (nothing else would remove it), after its
   provisioner gave up (phase Failed) otherwise.
5. Purged only when every recorded namespace and volume is really gone.

A legal hold stops the purge at the next step boundary: no action is issued
while any hold names the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenure.api.tenant import PurgedNamespace, PurgedVolume, PurgeStatus

from .model import Action, DeleteNamespace, DeleteVolume, NamespaceFact, ReclaimOnDelete, TenantView, VolumeFact, World
from .ownership import is_protected


def scope(tenant: TenantView, world: World) -> PurgeStatus:
    """What the purge will delete, as recorded on entry."""
    namespaces = tuple(
        PurgedNamespace(name=fact.name, uid=fact.uid)
        for name in sorted(tenant.spec.namespaces)
        if (fact := world.namespaces.get(name)) is not None
        and fact.owner == tenant.name
        and not is_protected(name, world)
    )
    names = {n.name for n in namespaces}
    volumes = tuple(
        PurgedVolume(name=v.name, uid=v.uid, static=v.provisioner is None, source=v.source)
        for v in sorted(world.volumes.values(), key=lambda v: v.name)
        if v.claim_namespace in names
    )
    return PurgeStatus(
        namespaces=namespaces,
        volumes=volumes,
        remaining_namespaces=len(namespaces),
        remaining_volumes=len(volumes),
    )


@dataclass(frozen=True)
class Progress:
    actions: tuple[Action, ...]
    remaining_namespaces: tuple[str, ...]
    remaining_volumes: tuple[str, ...]
    waiting: str
    """What the purge waits for, for the Purged condition's message."""

    @property
    def done(self) -> bool:
        return not self.remaining_namespaces and not self.remaining_volumes


def _claim_gone(volume: VolumeFact, namespaces: tuple[str, ...]) -> bool:
    return volume.phase in ("Released", "Failed") or volume.claim_namespace not in namespaces


def _present_namespaces(record: PurgeStatus, world: World) -> list[NamespaceFact]:
    """Recorded namespaces that still exist as the same object (same uid)."""
    facts = (world.namespaces.get(n.name) for n in record.namespaces)
    uids = {n.name: n.uid for n in record.namespaces}
    return [fact for fact in facts if fact is not None and fact.uid == uids[fact.name]]


def _present_volumes(record: PurgeStatus, world: World) -> list[VolumeFact]:
    facts = (world.volumes.get(v.name) for v in record.volumes)
    uids = {v.name: v.uid for v in record.volumes}
    return [fact for fact in facts if fact is not None and fact.uid == uids[fact.name]]


def step(tenant: TenantView, record: PurgeStatus, world: World) -> Progress:
    present = _present_namespaces(record, world)
    namespaces = tuple(fact.name for fact in present)
    volumes = _present_volumes(record, world)
    actions: list[Action] = [ReclaimOnDelete(v.name, v.uid) for v in volumes if v.reclaim_policy != "Delete"]
    if actions:
        return Progress(tuple(actions), namespaces, tuple(v.name for v in volumes), "reclaim policies to change")

    for fact in present:
        if fact.owner == tenant.name and not fact.terminating and not is_protected(fact.name, world):
            actions.append(DeleteNamespace(fact.name, fact.uid))
    for volume in volumes:
        if _claim_gone(volume, namespaces) and (volume.provisioner is None or volume.phase == "Failed"):
            actions.append(DeleteVolume(volume.name, volume.uid))

    waiting = []
    foreign = [f.name for f in present if f.owner != tenant.name or is_protected(f.name, world)]
    if foreign:
        waiting.append(f"namespaces no longer labeled for this tenant, left untouched: {', '.join(foreign)}")
    if namespaces:
        waiting.append(f"namespaces to disappear: {', '.join(namespaces)}")
    provisioned = [v.name for v in volumes if v.provisioner is not None and v.phase != "Failed"]
    if provisioned:
        waiting.append(f"the provisioner to delete volumes: {', '.join(provisioned)}")
    others = [v.name for v in volumes if v.name not in provisioned]
    if others:
        waiting.append(f"volumes to disappear: {', '.join(others)}")
    return Progress(tuple(actions), namespaces, tuple(v.name for v in volumes), "; ".join(waiting))
