from datetime import UTC, datetime, timedelta

from tenure.api import RetentionPolicySpec, TenantSpec, TenantStatus
from tenure.lifecycle import TenantView, decide
from tenure.lifecycle.conditions import find

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def tenant(status: TenantStatus | None = None, generation: int = 1) -> TenantView:
    return TenantView(
        name="acme",
        generation=generation,
        spec=TenantSpec(retention_policy="standard"),
        status=status or TenantStatus(),
    )


def test_missing_policy_is_reported_by_name() -> None:
    decision = decide(tenant(), None, NOW)
    resolved = find(decision.status.conditions, "PolicyResolved")
    assert resolved is not None
    assert (resolved.status, resolved.reason) == ("False", "PolicyNotFound")
    assert "'standard'" in resolved.message
    assert decision.status.phase == "Active"
    assert decision.status.observed_generation == 1


def test_policy_appearing_flips_the_condition_and_moves_its_transition_time() -> None:
    missing = decide(tenant(), None, NOW).status
    later = NOW + timedelta(minutes=5)
    found = decide(tenant(missing), RetentionPolicySpec(), later).status
    resolved = find(found.conditions, "PolicyResolved")
    assert resolved is not None
    assert (resolved.status, resolved.reason, resolved.last_transition_time) == ("True", "PolicyFound", later)


def test_deciding_again_changes_nothing() -> None:
    first = decide(tenant(), RetentionPolicySpec(), NOW)
    second = decide(tenant(first.status), RetentionPolicySpec(), NOW + timedelta(hours=1))
    assert second.status == first.status
    assert second.events == ()
