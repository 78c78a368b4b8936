"""DataStore status decisions: pure, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronsim import CronSim
from hypothesis import given
from hypothesis import strategies as st

from tenure.api import DataStoreSpec, DataStoreStatus
from tenure.api.datastore import SweepStatus
from tenure.lifecycle import datastores as decide
from tenure.lifecycle.conditions import find

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def ready_of(status: DataStoreStatus) -> tuple[str, str, str, datetime | None]:
    found = find(status.conditions, "Ready")
    assert found is not None
    return found.status, found.reason, found.message, found.last_transition_time


def test_ready_says_why_not_in_order_of_what_failed_first() -> None:
    old = DataStoreStatus()
    assert ready_of(decide.status(old, 1, decide.Check(spec_error="bad"), T0))[:2] == ("False", "InvalidSpec")
    unavailable = decide.Check(unavailable="Secret tenure-system/db key 'uri' is not UTF-8 text")
    assert ready_of(decide.status(old, 1, unavailable, T0))[:3] == (
        "False",
        "Unavailable",
        "Secret tenure-system/db key 'uri' is not UTF-8 text",
    )
    missing = decide.Check(problems=("table public.t does not exist", "column public.u.k has type jsonb, which …"))
    assert ready_of(decide.status(old, 1, missing, T0))[:3] == (
        "False",
        "MissingTablesOrColumns",
        "table public.t does not exist; column public.u.k has type jsonb, which …",
    )
    assert ready_of(decide.status(old, 1, decide.Check(), T0))[:2] == ("True", "Connected")


def test_the_transition_time_moves_only_when_readiness_flips_and_unlearned_facts_are_kept() -> None:
    found = decide.Check(partitioned=("public.LiteLLM_SpendLogs",), residual=("LiteLLM_AuditLog: why",))
    first = decide.status(DataStoreStatus(), 1, found, T0)
    later = decide.status(first, 1, decide.Check(), T0 + timedelta(hours=1))
    assert ready_of(later)[3] == T0
    assert later.partitioned == ("public.LiteLLM_SpendLogs",) and later.residual == ("LiteLLM_AuditLog: why",)
    down = decide.status(later, 1, decide.Check(unavailable="database unreachable"), T0 + timedelta(hours=2))
    assert ready_of(down)[0] == "False" and ready_of(down)[3] == T0 + timedelta(hours=2)


SPEC = DataStoreSpec.model_validate({"postgres": {"connectionSecretRef": {"namespace": "x", "name": "y"}}})


def spec(interval: timedelta = timedelta(hours=1), schedule: str | None = None) -> DataStoreSpec:
    return SPEC.model_copy(update={"sweep_interval": interval, "sweep_schedule": schedule})


@given(
    started=st.none() | st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
    interval=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=2)),
)
def test_a_sweep_is_due_an_interval_after_the_last_start_and_a_start_in_the_future_counts_as_none(
    started: timedelta | None, interval: timedelta
) -> None:
    """After a restart as much as at any time: a store swept within its interval is not swept again."""
    last = None if started is None else SweepStatus(started_at=T0 + started)
    due = decide.sweep_due(last, spec(interval), T0)
    if started is None or started > timedelta(0):  # never swept, or a start in the future (never trusted)
        assert due == T0
    else:
        assert due == max(T0, T0 + started + interval)
        assert due is not None and due - T0 <= interval  # a forged start can postpone one interval at most


SCHEDULES = st.sampled_from(["0 2 * * *", "*/15 * * * *", "30 1 * * MON-FRI", "0 0 1 * *", "5 4 29 2 *"])


@given(
    schedule=SCHEDULES,
    started=st.none() | st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=3)),
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_a_scheduled_sweep_is_due_at_the_first_scheduled_time_after_the_last_start_or_at_once_when_missed(
    schedule: str, started: timedelta | None, now: datetime
) -> None:
    last = None if started is None else SweepStatus(started_at=now + started)
    due = decide.sweep_due(last, spec(schedule=schedule), now)
    assert due is not None and due >= now
    trusted = started is not None and started <= timedelta(0)
    after = now + started if trusted and started is not None else now
    first = next(CronSim(schedule, after))
    assert due == max(now, first)  # a missed time (the operator was down) is swept at once
    if due > now:  # waiting: only for a scheduled time, never for a forged future start
        assert (due.minute, due.second) == (first.minute, 0) and due == first


@pytest.mark.parametrize("schedule", ["61 * * * *", "0 2 31 2 *", "0 25 * * *"])
def test_an_invalid_schedule_runs_no_sweep_and_the_condition_says_why(schedule: str) -> None:
    assert decide.sweep_due(None, spec(schedule=schedule), T0) is None
    status = decide.status(DataStoreStatus(), 1, decide.Check(), T0, spec(schedule=schedule))
    found = find(status.conditions, "SweepScheduled")
    assert found is not None and (found.status, found.reason) == ("False", "InvalidSchedule")
    assert found.message.startswith(f"spec.sweepSchedule {schedule!r} is not a cron expression (")
    assert ready_of(status)[0] == "True"  # purges still use the store


def test_the_schedule_condition_and_next_sweep_are_in_status() -> None:
    status = decide.status(
        DataStoreStatus(), 1, decide.Check(next_sweep=T0 + timedelta(hours=14)), T0, spec(schedule="0 2 * * *")
    )
    found = find(status.conditions, "SweepScheduled")
    assert found is not None and (found.status, found.reason) == ("True", "Schedule")
    assert status.next_sweep_at == T0 + timedelta(hours=14)


def test_the_gateway_condition_says_whether_inaccessible_tenants_are_kept_out_and_is_kept_between_checks() -> None:
    spec = DataStoreSpec.model_validate(
        {"postgres": {"connectionSecretRef": {"namespace": "x", "name": "y"}, "preset": "litellm"}}
    )
    enforced = decide.GatewayCheck(inaccessible=2, shared=3, left=1)
    status = decide.status(DataStoreStatus(), 1, decide.Check(gateway=enforced), T0, spec)
    found = find(status.conditions, "GatewayBlocked")
    assert found is not None and (found.status, found.reason) == ("True", "Enforced")
    assert found.message == (
        "Inaccessible tenants: 2; their teams, keys and projects are blocked. 3 rows shared with a tenant that is not "
        "inaccessible are left open; 1 blocked rows are left blocked for a person (the operator's log names them)."
    )
    # The store unreachable on the next check: no gateway check ran, what the last one said stays.
    later = decide.status(status, 1, decide.Check(unavailable="down"), T0 + timedelta(minutes=5), spec)
    assert find(later.conditions, "GatewayBlocked") == found
    failed = decide.status(later, 1, decide.Check(gateway=decide.GatewayCheck(error="lock timeout")), T0, spec)
    found = find(failed.conditions, "GatewayBlocked")
    assert found is not None and (found.status, found.reason) == ("False", "CheckFailed")
    assert "lock timeout" in found.message and "may still work" in found.message
    dry = decide.gateway(decide.GatewayCheck(blocking=False, inaccessible=1))
    assert dry[:2] == ("False", "DryRun")


def test_bad_claims_are_counted_and_an_unverified_blocking_makes_the_gateway_condition_false() -> None:
    """Issue 24: one tenant's bad claim is counted on the store, the others still enforced; an inaccessible tenant
    whose keys could not be resolved is named, its blocking not verified."""
    counted = decide.gateway(decide.GatewayCheck(inaccessible=1, unusable=2))
    assert counted == (
        "True",
        "Enforced",
        "Inaccessible tenants: 1; their teams, keys and projects are blocked. 2 tenants' claims could not be used in "
        "whole or in part and were left out, the others checked as usual (the Events on those tenants name the keys).",
    )
    partial = decide.gateway(decide.GatewayCheck(inaccessible=2, unusable=1, unverified=("globex",)))
    assert partial[:2] == ("False", "Partial")
    assert "inaccessible tenants globex could not be resolved" in partial[2] and "may still work" in partial[2]
    ready = decide.ready(decide.Check(unusable=1))
    assert ready[:2] == ("True", "Connected") and "1 tenants list keys no row can hold" in ready[2]
