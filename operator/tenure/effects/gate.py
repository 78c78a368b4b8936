"""The one gate between what Tenure decides and what it does to data and workloads: dry-run.

Every destructive effect passes here first: a tenant's actions (the
reconciler acts only on what :meth:`Gate.split` allows) and DataStore sweeps
(:meth:`Gate.sweeps`). Under the operator's ``--dry-run`` nothing is deleted,
scaled, blocked or redacted; a DataStore with ``spec.dryRun`` withholds only
what touches its rows. What is withheld is reported in status and Events by
the caller (:mod:`tenure.lifecycle.dryrun` says how).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set

from tenure.lifecycle import Action
from tenure.lifecycle.dryrun import split


class Gate:
    def __init__(self, dry_run: bool = False, dry_stores: Callable[[], Set[str]] = frozenset) -> None:
        self.dry_run = dry_run
        """The operator's --dry-run: every destructive effect is withheld."""
        self.dry_stores = dry_stores
        """DataStores with spec.dryRun, as currently known."""

    def split(self, actions: Iterable[Action]) -> tuple[tuple[Action, ...], tuple[Action, ...]]:
        """(allowed, withheld) of a tenant's decided actions."""
        return split(actions, self.dry_run, self.dry_stores())

    def sweeps(self, store: str) -> bool:
        """Whether a due sweep of this DataStore may delete and redact (otherwise it is only reported)."""
        return not (self.dry_run or store in self.dry_stores())
