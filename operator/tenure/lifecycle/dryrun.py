"""Dry-run: which decided actions may take effect, and how the ones withheld are reported.

Only actions that destroy, arm, scale or block nothing pass while a dry run
is on: adding or removing Tenure's own finalizer, creating a missing
namespace, putting back a reclaim policy, reopening a namespace Tenure closed
before the dry run (it only gives back what a person asked for), and
resolving a tenant's keys in a DataStore (a read: an action whose keys are
resolved, listed in status or recorded beside it, deletes rows). Everything else — and any action added later — is
withheld, so a new destructive action is covered without being named here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from datetime import datetime

from tenure.api import Condition
from tenure.api.tenant import KeySet

from .conditions import condition, listing
from .model import (
    Action,
    AddFinalizer,
    CloseAccess,
    CreateNamespace,
    DeleteNamespace,
    DeleteVolume,
    Event,
    OpenAccess,
    PurgeStore,
    ReclaimOnDelete,
    RemoveFinalizer,
    RestoreReclaim,
)

INERT = (AddFinalizer, RemoveFinalizer, CreateNamespace, RestoreReclaim, OpenAccess)
"""Actions that change no tenant data and no workload."""


def inert(action: Action) -> bool:
    return isinstance(action, INERT) or (isinstance(action, PurgeStore) and not action.resolved)


def split(
    actions: Iterable[Action], dry_run: bool, dry_stores: Set[str]
) -> tuple[tuple[Action, ...], tuple[Action, ...]]:
    """(allowed, withheld): with ``dry_run`` every action that is not inert is withheld; ``dry_stores`` (DataStores
    with spec.dryRun) withhold the deletion of rows in them."""
    allowed: list[Action] = []
    withheld: list[Action] = []
    for action in actions:
        store_dry = isinstance(action, PurgeStore) and action.name in dry_stores
        (allowed if inert(action) or not (dry_run or store_dry) else withheld).append(action)
    return tuple(allowed), tuple(withheld)


def describe(action: Action) -> str:
    match action:
        case DeleteNamespace(name=name):
            return f"delete namespace {name}"
        case DeleteVolume(name=name):
            return f"delete persistent volume {name}"
        case ReclaimOnDelete(name=name):
            return f"set the reclaim policy of persistent volume {name} to Delete"
        case CloseAccess(namespace=namespace):
            return f"close access to namespace {namespace} (stop workloads, refuse pods, cut network and bindings)"
        case PurgeStore(name=name, keys=None, key_set=KeySet(count=count)):
            return f"delete the tenant's rows in DataStore {name} ({count} keys, recorded beside the status)"
        case PurgeStore(name=name, keys=keys):
            found = "; ".join(f"{kind} {listing(sorted(values))}" for kind, values in sorted((keys or {}).items()))
            return f"delete the tenant's rows in DataStore {name} ({found})"
        case _:
            return type(action).__name__


def report(
    previous: Sequence[Condition], withheld: Sequence[Action], now: datetime, generation: int
) -> tuple[Condition, Event | None]:
    """The DryRun condition saying what would have been done, and an Event when that changed."""
    message = f"Dry run: nothing is changed; would {listing([describe(a) for a in withheld], '; ')}."
    made = condition(previous, "DryRun", "True", "Withheld", message, now, generation)
    old = next((c for c in previous if c.type == "DryRun"), None)
    changed = old is None or old.message != made.message
    return made, Event("DryRun", message) if changed else None
