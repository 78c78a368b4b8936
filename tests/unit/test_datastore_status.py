"""DataStore status decisions: pure, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tenure.api import DataStoreStatus
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


@given(
    started=st.none() | st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(0)),
    interval=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=2)),
    swept=st.booleans(),
)
def test_a_sweep_is_due_an_interval_after_the_last_one_started_and_at_once_after_a_start(
    started: timedelta | None, interval: timedelta, swept: bool
) -> None:
    last = None if started is None else SweepStatus(started_at=T0 + started)
    due = decide.sweep_due(last, interval, swept, T0)
    if not swept or started is None:
        assert due == T0
    else:
        assert due == max(T0, T0 + started + interval)
