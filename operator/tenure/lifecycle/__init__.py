"""The tenant lifecycle as a pure function.

Given a tenant, its policy, what is known of its namespaces, volumes and
legal holds, and the current time, :func:`decide` returns the status the
tenant should have, the actions to take, the Events to post and when to look
again. There is no I/O here and the clock is a parameter, so every rule is
tested on a fake clock.
"""

from . import access, dryrun, receipts, trust
from .decide import decide
from .model import (
    DELETIONS,
    PROTECTED_NAMESPACES,
    PROTECTED_PREFIX,
    Action,
    AddFinalizer,
    ClaimFact,
    CloseAccess,
    CreateNamespace,
    Decision,
    DeleteNamespace,
    DeleteVolume,
    Event,
    NamespaceFact,
    OpenAccess,
    PurgeStore,
    ReclaimOnDelete,
    RemoveFinalizer,
    RestoreReclaim,
    StoreProgress,
    TenantView,
    VolumeFact,
    World,
)

__all__ = [
    "DELETIONS",
    "PROTECTED_NAMESPACES",
    "PROTECTED_PREFIX",
    "Action",
    "AddFinalizer",
    "ClaimFact",
    "CloseAccess",
    "CreateNamespace",
    "Decision",
    "DeleteNamespace",
    "DeleteVolume",
    "Event",
    "NamespaceFact",
    "OpenAccess",
    "PurgeStore",
    "ReclaimOnDelete",
    "RemoveFinalizer",
    "RestoreReclaim",
    "StoreProgress",
    "TenantView",
    "VolumeFact",
    "World",
    "access",
    "decide",
    "dryrun",
    "receipts",
    "trust",
]
