"""Why a tenant's data is kept past its purge deadline: the pure cause behind tenure_purges_overdue."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from tenure.api import TenantSpec, TenantStatus
from tenure.api.tenant import PurgeStatus, StorePurge
from tenure.lifecycle import TenantView
from tenure.lifecycle.overdue import CAUSES, overdue

from .lifecycle_support import T0

DEADLINE = T0 + timedelta(days=30)


def tenant(phase: str, state: str = "Closed", stores: tuple[StorePurge, ...] = ()) -> TenantView:
    status = TenantStatus(
        phase=phase,  # type: ignore[arg-type]
        closure_reason="Voluntary",
        expired_at=T0,
        purge_after=DEADLINE,
        purge=PurgeStatus(stores=stores) if phase == "Purging" else None,
    )
    return TenantView(name="acme", generation=1, spec=TenantSpec(state=state), status=status)  # type: ignore[arg-type]


def test_nothing_is_overdue_before_the_deadline_or_once_purged() -> None:
    assert overdue(tenant("Expired"), False, set(), DEADLINE - timedelta(seconds=1)) is None
    assert overdue(tenant("Purged"), False, set(), DEADLINE + timedelta(days=1)) is None
    assert overdue(tenant("Active", "Active"), False, set(), DEADLINE + timedelta(days=1)) is None


def test_each_cause_past_the_deadline() -> None:
    late = DEADLINE + timedelta(minutes=5)
    waiting = (StorePurge(name="db", state="Waiting"),)
    assert overdue(tenant("Expired"), True, set(), late) == "legal_hold"
    assert overdue(tenant("Purging", stores=waiting), True, set(), late) == "legal_hold"
    assert overdue(tenant("Expired"), False, set(), late) == "operator_behind"
    assert overdue(tenant("Expired", state="Active"), False, set(), late) == "waiting_for_spec"
    assert overdue(tenant("Purging"), False, set(), late) == "purging"
    assert overdue(tenant("Purging", stores=waiting), False, set(), late) == "store_unavailable"
    deleting = (StorePurge(name="db", state="Deleting"),)
    assert overdue(tenant("Purging", stores=deleting), False, {"db"}, late) == "store_unavailable"
    assert overdue(tenant("Purging", stores=deleting), False, {"other"}, late) == "purging"
    done = (StorePurge(name="db", state="Done"),)
    assert overdue(tenant("Purging", stores=done), False, {"db"}, late) == "purging"  # nothing left there


@given(
    phase=st.sampled_from(["Active", "Suspended", "Expired", "Purging", "Purged"]),
    offset=st.integers(min_value=-(10**7), max_value=10**7),
    held=st.booleans(),
)
def test_overdue_exactly_from_the_deadline_until_purged(phase: str, offset: int, held: bool) -> None:
    now = DEADLINE + timedelta(seconds=offset)
    cause = overdue(tenant(phase), held, set(), now)
    assert (cause is not None) == (phase in ("Expired", "Purging") and offset >= 0)
    assert cause is None or cause in CAUSES
    assert cause is None or (cause == "legal_hold") == held
