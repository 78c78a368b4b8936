"""The purge, as steps whose completion is observed, never assumed.

1. On entry the scope is recorded in status: every namespace labeled for the
   tenant (listed in spec or not) and the volumes bound to claims in them. Nothing is deleted until
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tenure.api.tenant import PurgedNamespace, PurgedVolume, PurgeStatus, StorePurge

from .conditions import listing
from .model import (
    Action,
    DeleteNamespace,
    DeleteVolume,
    NamespaceFact,
    PurgeStore,
    ReclaimOnDelete,
    TenantView,
    VolumeFact,
    World,
)
from .ownership import is_protected


def scope(tenant: TenantView, world: World) -> PurgeStatus:
    """What the purge will delete, as recorded on entry."""
    namespaces = tuple(
        PurgedNamespace(name=fact.name, uid=fact.uid)
        for fact in sorted(world.namespaces.values(), key=lambda fact: fact.name)
        if fact.owner == tenant.name and not is_protected(fact.name, world)
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
        stores=tuple(
            StorePurge(name=name, requested=keys_in(tenant.name, tenant.spec.data_keys, name))
            for name in sorted(world.datastores)
        ),
        remaining_namespaces=len(namespaces),
        remaining_volumes=len(volumes),
    )


@dataclass(frozen=True)
class Progress:
    actions: tuple[Action, ...]
    remaining_namespaces: tuple[str, ...]
    remaining_volumes: tuple[str, ...]
    stores: tuple[StorePurge, ...]
    waiting: str
    """What the purge waits for, for the Purged condition's message."""

    @property
    def done(self) -> bool:
        stores_done = all(s.state == "Done" and s.rows_remaining == 0 for s in self.stores)
        return not self.remaining_namespaces and not self.remaining_volumes and stores_done


def keys_in(tenant: str, data_keys: Mapping[str, Sequence[str]] | None, store: str) -> tuple[str, ...]:
    """A tenant's keys in a DataStore: its spec.dataKeys for the store, or its name."""
    return tuple((data_keys or {}).get(store) or (tenant,))


def stores_step(
    tenant: TenantView, record: PurgeStatus, world: World
) -> tuple[tuple[StorePurge, ...], list[Action], list[str]]:
    """Each store's recorded progress, the actions that move it on, and what it waits for.

    Until a store's keys are resolved and recorded, the keys to resolve follow
    spec.dataKeys (so a wrong claim can still be fixed); from then on the
    recorded keys are what the purge deletes.
    """
    stores: list[StorePurge] = []
    actions: list[Action] = []
    waiting: list[str] = []
    for store in record.stores:
        if store.keys is None:
            store = store.model_copy(update={"requested": keys_in(tenant.name, tenant.spec.data_keys, store.name)})
        progress = world.store_purges.get(store.name)
        if progress is not None and store.keys is not None and _plain(progress.keys) not in (None, store.keys):
            progress = None  # a report about other keys (an older purge) is not about this one
        if progress is not None and store.keys is None and progress.requested != store.requested:
            progress = None  # about keys the spec no longer lists: they are resolved again
        if progress is not None and store.state != "Done":
            store = store.model_copy(
                update={
                    "state": progress.state,
                    "rows_deleted": max(store.rows_deleted, progress.rows_deleted),
                    "rows_remaining": progress.rows_remaining,
                    "message": progress.message,
                    "keys": store.keys if store.keys is not None else _plain(progress.keys),
                    "residual": progress.residual or store.residual,
                    "rows_shared": dict(progress.rows_shared),
                }
            )
        if store.state == "Done" and store.rows_remaining == 0:
            stores.append(store)
            continue
        if store.name not in world.datastores:
            store = store.model_copy(
                update={"state": "Waiting", "message": f"DataStore {store.name} does not exist; recreate it to finish"}
            )
        else:
            actions.append(PurgeStore(store.name, store.keys, store.rows_deleted, store.requested))
        waiting.append(f"rows in DataStore {store.name} ({store.state}{': ' + store.message if store.message else ''})")
        stores.append(store)
    return tuple(stores), actions, waiting


def _plain(keys: object) -> dict[str, tuple[str, ...]] | None:
    return {kind: tuple(values) for kind, values in keys.items()} if isinstance(keys, Mapping) else None


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
    stores, store_actions, store_waiting = stores_step(tenant, record, world)
    actions: list[Action] = [ReclaimOnDelete(v.name, v.uid) for v in volumes if v.reclaim_policy != "Delete"]
    if actions:
        names = tuple(v.name for v in volumes)
        return Progress((*actions, *store_actions), namespaces, names, stores, "reclaim policies to change")

    for fact in present:
        if fact.owner == tenant.name and not fact.terminating and not is_protected(fact.name, world):
            actions.append(DeleteNamespace(fact.name, fact.uid))
    for volume in volumes:
        leftover = volume.provisioner is None or volume.phase == "Failed"
        if _claim_gone(volume, namespaces) and leftover and not volume.terminating:
            actions.append(DeleteVolume(volume.name, volume.uid))

    waiting = []
    foreign = [f.name for f in present if f.owner != tenant.name or is_protected(f.name, world)]
    if foreign:
        waiting.append(f"namespaces no longer labeled for this tenant, left untouched: {listing(foreign)}")
    if namespaces:
        waiting.append(f"namespaces to disappear: {listing(namespaces)}")
    provisioned = [v.name for v in volumes if v.provisioner is not None and v.phase != "Failed"]
    if provisioned:
        waiting.append(f"the provisioner to delete volumes: {listing(provisioned)}")
    others = [v.name for v in volumes if v.name not in provisioned]
    if others:
        waiting.append(f"volumes to disappear: {listing(others)}")
    waiting.extend(store_waiting)
    actions.extend(store_actions)
    return Progress(tuple(actions), namespaces, tuple(v.name for v in volumes), stores, "; ".join(waiting))
