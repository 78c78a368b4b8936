"""DataStore status, decided from what the runtime found, with the clock as a parameter.

The runtime connects, inspects and sweeps (I/O); these functions decide what
the DataStore's status and Ready condition say and when the next sweep is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tenure.api import DataStoreStatus
from tenure.api.datastore import SweepStatus
from tenure.api.meta import ConditionStatus

from .conditions import condition, listing


@dataclass(frozen=True)
class Check:
    """What one readiness check found; ``None`` fields were not learned (the old status keeps them)."""

    spec_error: str | None = None
    """The spec does not match the API (the object was written past validation)."""
    unavailable: str | None = None
    """Why the database cannot be used now (no URI, unreachable), safe to show."""
    problems: tuple[str, ...] = ()
    """Missing tables and columns, columns that cannot hold a key or cannot be cleared."""
    partitioned: tuple[str, ...] | None = None
    residual: tuple[str, ...] | None = None
    sweep: SweepStatus | None = None
    """The sweep this check ran, if any."""


def ready(check: Check) -> tuple[ConditionStatus, str, str]:
    if check.spec_error is not None:
        return "False", "InvalidSpec", f"The spec does not match the API: {check.spec_error}"
    if check.unavailable is not None:
        return "False", "Unavailable", check.unavailable
    if check.problems:
        return "False", "MissingTablesOrColumns", listing(check.problems, "; ")
    return "True", "Connected", "Connected; every mapped table and column exists."


def status(old: DataStoreStatus, generation: int, check: Check, now: datetime) -> DataStoreStatus:
    return DataStoreStatus(
        observed_generation=generation,
        conditions=(condition(old.conditions, "Ready", *ready(check), now, generation),),
        last_sweep=check.sweep or old.last_sweep,
        residual=old.residual if check.residual is None else check.residual,
        partitioned=old.partitioned if check.partitioned is None else check.partitioned,
    )


def sweep_due(last: SweepStatus | None, interval: timedelta, swept_since_start: bool, now: datetime) -> datetime:
    """When the next sweep is due: a store not swept since the operator started is due now."""
    if not swept_since_start or last is None or last.started_at is None:
        return now
    return max(now, last.started_at + interval)
