"""DataStore status, decided from what the runtime found, with the clock as a parameter.

The runtime connects, inspects and sweeps (I/O); these functions decide what
the DataStore's status and Ready condition say and when the next sweep is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

from tenure.api import DataStoreSpec, DataStoreStatus
from tenure.api.datastore import SweepStatus
from tenure.api.duration import format_duration
from tenure.api.meta import ConditionStatus

from .conditions import condition, find, listing


@dataclass(frozen=True)
class GatewayCheck:
    """What one check of a litellm store's gateway access did (:mod:`tenure.runtime.gateway`)."""

    error: str | None = None
    """Why the check failed: inaccessible tenants may still reach the gateway."""
    blocking: bool = True
    """False under a dry run: nothing is blocked, only unblocked."""
    inaccessible: int = 0
    """Tenants that must be kept out."""
    shared: int = 0
    """Rows an inaccessible tenant shares with one that is not: left open."""
    left: int = 0
    """Blocked rows Tenure will not unblock (record untrusted, older than its tenant's last closing, or blocked for
    a tenant still inaccessible while another claims it now)."""
    unusable: int = 0
    """Tenants whose claim was left out of the check, in whole or in part (Events on them name the keys)."""
    unverified: tuple[str, ...] = ()
    """Inaccessible tenants whose keys could not be resolved: their blocking is not verified."""


def gateway(check: GatewayCheck) -> tuple[ConditionStatus, str, str]:
    """The GatewayBlocked condition of a DataStore with the litellm preset."""
    if check.error is not None:
        return (
            "False",
            "CheckFailed",
            f"The last gateway check failed ({check.error}): inaccessible tenants' keys may still work until a check "
            "succeeds.",
        )
    if not check.blocking:
        return "False", "DryRun", "Dry run: no tenant is blocked at the gateway (reopened ones are still unblocked)."
    bad = (
        f" {check.unusable} tenants' claims could not be used in whole or in part and were left out, the others "
        "checked as usual (the Events on those tenants name the keys)."
        if check.unusable
        else ""
    )
    if check.unverified:
        return (
            "False",
            "Partial",
            f"The keys of inaccessible tenants {listing(check.unverified)} could not be resolved: their blocking is "
            f"not verified and their keys may still work; retried at every check.{bad}",
        )
    notes = []
    if check.shared:
        notes.append(f"{check.shared} rows shared with a tenant that is not inaccessible are left open")
    if check.left:
        notes.append(f"{check.left} blocked rows are left blocked for a person")
    detail = f" {listing(notes, '; ')} (the operator's log names them)." if notes else ""
    return (
        "True",
        "Enforced",
        f"Inaccessible tenants: {check.inaccessible}; their teams, keys and projects are blocked.{detail}{bad}",
    )


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
    next_sweep: datetime | None = None
    gateway: GatewayCheck | None = None
    """The gateway check this check ran (litellm preset), if any."""
    unusable: int = 0
    """Tenants with keys for this database that no row can hold (left out of every statement)."""


def ready(check: Check) -> tuple[ConditionStatus, str, str]:
    if check.spec_error is not None:
        return "False", "InvalidSpec", f"The spec does not match the API: {check.spec_error}"
    if check.unavailable is not None:
        return "False", "Unavailable", check.unavailable
    if check.problems:
        return "False", "MissingTablesOrColumns", listing(check.problems, "; ")
    bad = (
        f" {check.unusable} tenants list keys no row can hold (control characters): they are left out of every "
        "statement (the Events on those tenants name them)."
        if check.unusable
        else ""
    )
    return "True", "Connected", f"Connected; every mapped table and column exists.{bad}"


def scheduled(spec: DataStoreSpec) -> tuple[ConditionStatus, str, str]:
    """The SweepScheduled condition: when sweeps run, or why none does."""
    if spec.sweep_schedule is None:
        return "True", "Interval", f"Sweeps every {format_duration(spec.sweep_interval)}."
    problem = schedule_error(spec.sweep_schedule)
    if problem is not None:
        return (
            "False",
            "InvalidSchedule",
            f"spec.sweepSchedule {spec.sweep_schedule!r} is not a cron expression ({problem}): no sweep runs until "
            "it is corrected.",
        )
    return "True", "Schedule", f"Sweeps on the schedule {spec.sweep_schedule!r} (UTC)."


def status(
    old: DataStoreStatus, generation: int, check: Check, now: datetime, spec: DataStoreSpec | None = None
) -> DataStoreStatus:
    conditions = [condition(old.conditions, "Ready", *ready(check), now, generation)]
    if spec is not None:
        conditions.append(condition(old.conditions, "SweepScheduled", *scheduled(spec), now, generation))
    if check.gateway is not None:
        conditions.append(condition(old.conditions, "GatewayBlocked", *gateway(check.gateway), now, generation))
    elif (kept := find(old.conditions, "GatewayBlocked")) is not None and (
        spec is None or spec.postgres.preset == "litellm"
    ):
        conditions.append(kept)  # not checked this time (the store was unavailable): what the last check said
    return DataStoreStatus(
        observed_generation=generation,
        conditions=tuple(conditions),
        last_sweep=check.sweep or old.last_sweep,
        next_sweep_at=check.next_sweep or old.next_sweep_at,
        residual=old.residual if check.residual is None else check.residual,
        partitioned=old.partitioned if check.partitioned is None else check.partitioned,
    )


def schedule_error(schedule: str) -> str | None:
    """Why a cron expression cannot be used, or None."""
    try:
        next(CronSim(schedule, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as error:
        return str(error)
    except StopIteration:
        return "it never matches"
    return None


def sweep_due(last: SweepStatus | None, spec: DataStoreSpec, now: datetime) -> datetime | None:
    """When the next sweep is due (``now`` or later); None when no sweep may run (the schedule is invalid).

    The last sweep counts from its start, so after a restart a store swept
    within its interval (or since its last scheduled time) is not swept again.
    A start in the future counts as no sweep at all: status is written only by
    Tenure's ServiceAccount but not sealed, and the safe direction is to sweep
    — a sweep deletes only what is past its window at the moment it runs, so
    sweeping early never deletes early, while trusting a future start would
    postpone deletion beyond the policy. A forged start in the past can
    therefore postpone a sweep by one interval at most, as a real sweep would.
    """
    started = last.started_at if last is not None else None
    if started is not None and started > now:
        started = None
    if spec.sweep_schedule is None:
        return now if started is None else max(now, started + spec.sweep_interval)
    if schedule_error(spec.sweep_schedule) is not None:
        return None
    # Never swept: the next scheduled time. Swept: the first time after that start, at once if it has passed.
    return max(now, next(CronSim(spec.sweep_schedule, started or now)))
