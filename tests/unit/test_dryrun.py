"""The dry-run gate: only inert actions pass, any other (including ones added later) is withheld and reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tenure.api.tenant import KeySet
from tenure.effects.gate import Gate
from tenure.lifecycle import (
    AddFinalizer,
    CloseAccess,
    CreateNamespace,
    DeleteNamespace,
    DeleteVolume,
    OpenAccess,
    PurgeStore,
    ReclaimOnDelete,
    RemoveFinalizer,
    RestoreReclaim,
)
from tenure.lifecycle.dryrun import report

from .lifecycle_support import T0

RESOLVE = PurgeStore("db", None)
DELETE_ROWS = PurgeStore("db", {"organization": ("org-1",)})
DELETE_MANY_ROWS = PurgeStore("db", None, key_set=KeySet(count=5000, digest="a" * 64, parts=2))
"""Keys too many for status, recorded beside it: resolved all the same, so this deletes rows."""
DESTRUCTIVE = (
    DeleteNamespace("ns", "u1"),
    DeleteVolume("pv", "u2", "c"),
    ReclaimOnDelete("pv", "u2", "c"),
    CloseAccess("ns", "u1"),
    DELETE_ROWS,
    DELETE_MANY_ROWS,
)
INERT = (
    AddFinalizer(),
    RemoveFinalizer(),
    CreateNamespace("ns"),
    RestoreReclaim("pv", "u2", "c", "Retain"),
    OpenAccess("ns", "u1"),
    RESOLVE,
)


@dataclass(frozen=True)
class ScaleDown:
    """An action a later change adds (say, scaling a tenant's workloads to zero): never listed by the gate."""

    namespace: str


def test_a_dry_run_withholds_every_destructive_action_and_any_new_one() -> None:
    actions = (*INERT, *DESTRUCTIVE, ScaleDown("ns"))
    allowed, withheld = Gate(dry_run=True).split(actions)  # type: ignore[arg-type]
    assert allowed == INERT
    assert withheld == (*DESTRUCTIVE, ScaleDown("ns"))
    assert Gate().split(actions) == (actions, ())  # type: ignore[arg-type]


def test_a_store_in_dry_run_withholds_only_the_deletion_of_its_rows() -> None:
    other = PurgeStore("other", {"organization": ("org-1",)})
    gate = Gate(dry_stores=lambda: {"db"})
    assert gate.split((*DESTRUCTIVE, other, RESOLVE)) == (
        (*DESTRUCTIVE[:4], other, RESOLVE),
        (DELETE_ROWS, DELETE_MANY_ROWS),
    )
    assert not gate.sweeps("db") and gate.sweeps("other")
    assert not Gate(dry_run=True).sweeps("other")


def test_the_report_names_what_would_happen_and_posts_an_event_only_when_that_changes() -> None:
    made, event = report((), DESTRUCTIVE, T0, 3)
    assert made.type == "DryRun" and made.status == "True" and made.observed_generation == 3
    assert made.message == (
        "Dry run: nothing is changed; would delete namespace ns; delete persistent volume pv; set the reclaim policy "
        "of persistent volume pv to Delete; close access to namespace ns (stop workloads, refuse pods, cut network and "
        "bindings); delete the tenant's rows in DataStore db (organization org-1); delete the tenant's rows in "
        "DataStore db (5000 keys, recorded beside the status)."
    )
    assert event is not None and event.message == made.message
    again, repeated = report((made,), DESTRUCTIVE, T0 + timedelta(seconds=5), 3)
    assert repeated is None and again.last_transition_time == made.last_transition_time
    fewer, changed = report((made,), DESTRUCTIVE[:1], T0 + timedelta(seconds=9), 3)
    assert changed is not None and "volume" not in fewer.message
