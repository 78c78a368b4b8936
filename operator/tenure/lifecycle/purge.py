"""The purge, as steps whose completion is observed, never assumed.

1. On entry the scope is recorded in status: every namespace labeled for the
   tenant (listed in spec or not: :func:`tenure.lifecycle.ownership.tenant_namespaces`,
   the same namespaces that were closed while it was inaccessible), and each volume whose claimRef.uid is a
   claim Tenure saw in one of them, with that claim's uid and the volume's
   reclaim policy. A volume naming such a namespace through any other claim
   (a Released one left by an earlier namespace of the same name, say) is
   recorded as kept: never modified or deleted. Nothing is changed until
   that record is written, so a restart resumes the same scope.
2. Every recorded volume's reclaim policy becomes Delete, so the storage
   provisioner destroys the disk when the claim goes. While a legal hold
   pauses the purge, the recorded policy is put back, and switched again
   when the purge resumes.
3. Then the recorded namespaces are deleted — only while still labeled for
   the tenant and not protected.
4. A recorded volume still present once its claim is gone is deleted: at once
   when statically provisioned (nothing else would remove it), after its
   provisioner gave up (phase Failed) otherwise.
5. Purged only when every recorded namespace and volume is really gone.

A legal hold stops the purge at the next step boundary: no action but
restoring reclaim policies is issued while any hold names the tenant. A
recorded volume now bound to another claim than the recorded one is left
untouched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tenure.api.tenant import KEY_SAMPLE, KeySet, PurgedNamespace, PurgedVolume, PurgeStatus, StorePurge

from .conditions import cap, listing
from .model import (
    Action,
    DeleteNamespace,
    DeleteVolume,
    NamespaceFact,
    PurgeStore,
    ReclaimOnDelete,
    RestoreReclaim,
    StoreProgress,
    TenantView,
    VolumeFact,
    World,
)
from .ownership import is_protected, tenant_namespaces

STORE_MESSAGE_LIMIT = 1024
"""The CRD's maxLength of status.purge.stores[].message."""


def scope(tenant: TenantView, world: World) -> PurgeStatus:
    """What the purge will delete, as recorded on entry."""
    namespaces = tuple(
        PurgedNamespace(name=fact.name, uid=fact.uid)
        for fact in sorted(tenant_namespaces(tenant, world), key=lambda fact: fact.name)
    )
    names = {n.name for n in namespaces}
    naming = [v for v in sorted(world.volumes.values(), key=lambda v: v.name) if v.claim_namespace in names]
    volumes = tuple(
        PurgedVolume(
            name=v.name,
            uid=v.uid,
            static=v.provisioner is None,
            source=v.source,
            claim_uid=v.claim_uid,
            reclaim_policy=v.reclaim_policy,
        )
        for v in naming
        if _seen_claim(v, world)
    )
    return PurgeStatus(
        namespaces=namespaces,
        volumes=volumes,
        kept_volumes=tuple(v.name for v in naming if not _seen_claim(v, world)),
        stores=tuple(
            StorePurge(name=name, **_requested(keys_in(tenant.name, tenant.spec.data_keys, name)))
            for name in sorted(world.datastores)
        ),
        remaining_namespaces=len(namespaces),
        remaining_volumes=len(volumes),
    )


def _seen_claim(volume: VolumeFact, world: World) -> bool:
    """Whether the volume's claimRef.uid is a claim Tenure saw in the namespace the claimRef names."""
    claim = world.claims.get(volume.claim_uid or "")
    return claim is not None and claim.namespace == volume.claim_namespace


@dataclass(frozen=True)
class Progress:
    actions: tuple[Action, ...]
    restores: tuple[Action, ...]
    """What a legal hold pausing the purge issues instead of ``actions``: reclaim policies put back."""
    remaining_namespaces: tuple[str, ...]
    remaining_volumes: tuple[str, ...]
    stores: tuple[StorePurge, ...]
    waiting: str
    """What the purge waits for, for the Purged condition's message."""

    @property
    def done(self) -> bool:
        stores_done = all(s.state in FINISHED and (s.state != "Done" or s.rows_remaining == 0) for s in self.stores)
        return not self.remaining_namespaces and not self.remaining_volumes and stores_done


def keys_in(tenant: str, data_keys: Mapping[str, Sequence[str]] | None, store: str) -> tuple[str, ...]:
    """A tenant's keys in a DataStore: its spec.dataKeys for the store (an empty list: none), or its name."""
    listed = (data_keys or {}).get(store)
    return (tenant,) if listed is None else tuple(listed)


REQUESTED_LISTED = 16
"""Requested keys shown in status; more are counted (the spec has them all)."""
KEYS_LISTED = 4096
"""Characters of resolved keys kept in status; a larger set is recorded whole outside it (:class:`KeySet`)."""
FINISHED = ("Done", "NoKeys", "NotPurged")
"""States that hold no purge: proven empty, nothing of the tenant's there, or the store is gone (named)."""


def digest(keys: Mapping[str, Sequence[str]]) -> str:
    """SHA-256 of a key set: JSON with kinds and values sorted."""
    canonical = {kind: sorted(values) for kind, values in sorted(keys.items())}
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def listable(keys: Mapping[str, Sequence[str]]) -> bool:
    """Whether a resolved key set is small enough to be listed in status."""
    return sum(len(value) for values in keys.values() for value in values) <= KEYS_LISTED


def key_set(keys: Mapping[str, Sequence[str]], parts: int) -> KeySet:
    """What status says of a key set recorded whole in ``parts`` ConfigMaps."""
    flat = [f"{kind}:{value}" for kind, values in sorted(keys.items()) for value in sorted(values)]
    return KeySet(
        count=len(flat), sample=tuple(key[:256] for key in flat[:KEY_SAMPLE]), digest=digest(keys), parts=parts
    )


def _requested(keys: tuple[str, ...]) -> dict[str, object]:
    """The requested keys as status records them: every one when few, else the first and their count."""
    if len(keys) <= REQUESTED_LISTED:
        return {"requested": keys, "requested_count": None}
    return {"requested": keys[:REQUESTED_LISTED], "requested_count": len(keys)}


def _named_keys(store: StorePurge) -> str:
    """The tenant's keys in a store, for a message: listed, or counted with a sample and digest."""
    if store.key_set is not None:
        sample = ", ".join(store.key_set.sample)
        return f"{store.key_set.count} keys ({sample}, …; SHA-256 {store.key_set.digest})"
    if store.keys is not None:
        return listing(f"{kind}:{value}" for kind, values in sorted(store.keys.items()) for value in values)
    more = f" of {store.requested_count}" if store.requested_count else ""
    return listing(store.requested) + (f" (the first {len(store.requested)}{more})" if more else "")


def stores_step(
    tenant: TenantView, record: PurgeStatus, world: World
) -> tuple[tuple[StorePurge, ...], list[Action], list[str]]:
    """Each store's recorded progress, the actions that move it on, and what it waits for.

    Until a store's keys are resolved and recorded, the keys to resolve follow
    spec.dataKeys (so a wrong claim can still be fixed); from then on the
    recorded keys are what the purge deletes. A store where the tenant has no
    keys (spec.dataKeys lists none for it) holds nothing of the tenant's and
    is not waited for, whatever state the store is in. A DataStore deleted
    before its purge finished no longer holds the purge: its state says NOT
    purged and names the tenant's keys there.
    """
    stores: list[StorePurge] = []
    actions: list[Action] = []
    waiting: list[str] = []
    for store in record.stores:
        if store.state in ("NoKeys", "NotPurged"):  # decided again on every pass: the spec or the store may be back
            store = store.model_copy(update={"state": "Pending", "message": ""})
        resolved = store.keys is not None or store.key_set is not None
        requested = () if resolved else keys_in(tenant.name, tenant.spec.data_keys, store.name)
        if not resolved:
            store = store.model_copy(update=_requested(requested))
        progress = world.store_purges.get(store.name)
        if progress is not None and resolved and progress.keys is not None and digest(progress.keys) != _digest(store):
            progress = None  # a report about other keys (an older purge) is not about this one
        if progress is not None and not resolved and progress.requested != requested:
            progress = None  # about keys the spec no longer lists: they are resolved again
        if progress is not None and store.state != "Done":
            store = store.model_copy(
                update={
                    "state": progress.state,
                    "rows_deleted": max(store.rows_deleted, progress.rows_deleted),
                    "rows_remaining": progress.rows_remaining,
                    "message": cap(progress.message, STORE_MESSAGE_LIMIT),
                    "residual": progress.residual or store.residual,
                    "rows_shared": dict(progress.rows_shared),
                    **({} if resolved else _recorded(progress)),
                }
            )
        if store.state == "Done" and store.rows_remaining == 0:
            stores.append(store)
            continue
        if not resolved and not requested:
            message = "spec.dataKeys lists no key for this store: the mapping resolves them to nothing"
            stores.append(store.model_copy(update={"state": "NoKeys", "message": message}))
            continue
        if store.name not in world.datastores:
            message = f"DataStore {store.name} was deleted before this purge finished: rows with the tenant's keys "
            message += f"there were NOT purged: {_named_keys(store)}"
            stores.append(store.model_copy(update={"state": "NotPurged", "message": cap(message, STORE_MESSAGE_LIMIT)}))
            continue
        actions.append(PurgeStore(store.name, store.keys, store.rows_deleted, requested, store.key_set))
        waiting.append(f"rows in DataStore {store.name} ({store.state}{': ' + store.message if store.message else ''})")
        stores.append(store)
    return tuple(stores), actions, waiting


def _digest(store: StorePurge) -> str | None:
    if store.key_set is not None:
        return store.key_set.digest
    return digest(store.keys) if store.keys is not None else None


def _recorded(progress: StoreProgress) -> dict[str, object]:
    """The resolved keys a report carries, as status records them: listed, or the record of them."""
    if progress.key_set is not None:
        return {"key_set": progress.key_set}
    if progress.keys is not None and listable(progress.keys):
        return {"keys": _plain(progress.keys)}
    return {}  # too many to list and not recorded elsewhere: not resolved as far as status knows


def _plain(keys: object) -> dict[str, tuple[str, ...]] | None:
    return {kind: tuple(values) for kind, values in keys.items()} if isinstance(keys, Mapping) else None


def _claim_gone(volume: VolumeFact, namespaces: tuple[str, ...]) -> bool:
    return volume.phase in ("Released", "Failed") or volume.claim_namespace not in namespaces


def _present_namespaces(record: PurgeStatus, world: World) -> list[NamespaceFact]:
    """Recorded namespaces that still exist as the same object (same uid)."""
    facts = (world.namespaces.get(n.name) for n in record.namespaces)
    uids = {n.name: n.uid for n in record.namespaces}
    return [fact for fact in facts if fact is not None and fact.uid == uids[fact.name]]


def _present_volumes(record: PurgeStatus, world: World) -> list[tuple[PurgedVolume, VolumeFact]]:
    """Recorded volumes that still exist as the same object (same uid), with what was recorded of them."""
    facts = ((v, world.volumes.get(v.name)) for v in record.volumes)
    return [(recorded, fact) for recorded, fact in facts if fact is not None and fact.uid == recorded.uid]


def step(tenant: TenantView, record: PurgeStatus, world: World) -> Progress:
    present = _present_namespaces(record, world)
    namespaces = tuple(fact.name for fact in present)
    found = _present_volumes(record, world)
    # Only a volume still bound to the recorded claim is acted on; one recorded without a claim uid (by an older
    # version) or bound to another claim since is left untouched.
    proven = [(r, v) for r, v in found if r.claim_uid is not None and v.claim_uid == r.claim_uid]
    rebound = [v.name for r, v in found if r.claim_uid is None or v.claim_uid != r.claim_uid]
    volumes = [v for _, v in proven]
    restores: tuple[Action, ...] = tuple(
        RestoreReclaim(v.name, v.uid, v.claim_uid, r.reclaim_policy)
        for r, v in proven
        if r.reclaim_policy is not None
        and r.reclaim_policy != "Delete"
        and v.reclaim_policy == "Delete"
        and not v.terminating
    )
    names = tuple(v.name for _, v in found)
    stores, store_actions, store_waiting = stores_step(tenant, record, world)
    actions: list[Action] = [
        ReclaimOnDelete(v.name, v.uid, v.claim_uid) for v in volumes if v.reclaim_policy != "Delete"
    ]
    if actions:
        return Progress((*actions, *store_actions), restores, namespaces, names, stores, "reclaim policies to change")

    for fact in present:
        if fact.owner == tenant.name and not fact.terminating and not is_protected(fact.name, world):
            actions.append(DeleteNamespace(fact.name, fact.uid))
    for volume in volumes:
        leftover = volume.provisioner is None or volume.phase == "Failed"
        if _claim_gone(volume, namespaces) and leftover and not volume.terminating:
            actions.append(DeleteVolume(volume.name, volume.uid, volume.claim_uid))

    waiting = []
    foreign = [f.name for f in present if f.owner != tenant.name or is_protected(f.name, world)]
    if foreign:
        waiting.append(f"namespaces no longer labeled for this tenant, left untouched: {listing(foreign)}")
    if rebound:
        waiting.append(
            "volumes no longer bound to the recorded claim, left untouched (delete them by hand if they are the "
            f"tenant's): {listing(rebound)}"
        )
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
    return Progress(tuple(actions), restores, namespaces, names, stores, "; ".join(waiting))
