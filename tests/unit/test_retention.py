"""Active-data retention cutoffs: who is swept, and by which window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tenure.api import DATA_CLASSES, DataClassRetention, RetentionPolicySpec, TenantSpec, TenantStatus
from tenure.lifecycle import TenantView
from tenure.lifecycle.retention import cutoffs

NOW = datetime(2026, 11, 27, tzinfo=UTC)
DAY = timedelta(days=1)


def tenant(name: str, policy: str = "p", phase: str = "Active") -> TenantView:
    return TenantView(name, 1, TenantSpec(retention_policy=policy), TenantStatus(phase=phase))  # type: ignore[arg-type]


def test_class_windows_override_the_active_retention() -> None:
    policy = RetentionPolicySpec(
        active_data_retention=365 * DAY, data_class_retention=DataClassRetention(prompts=7 * DAY, responses=0 * DAY)
    )
    result = cutoffs([tenant("acme")], {"p": policy}.get, set(), NOW)
    assert result == {
        "acme": {"prompts": NOW - 7 * DAY, "responses": NOW, "logs": NOW - 365 * DAY, "usage": NOW - 365 * DAY}
    }


def test_unset_retention_keeps_records() -> None:
    assert cutoffs([tenant("acme")], {"p": RetentionPolicySpec()}.get, set(), NOW) == {}


windows = st.none() | st.integers(0, 365).map(lambda d: d * DAY)


@given(
    active=windows,
    classes=st.fixed_dictionaries({c: windows for c in DATA_CLASSES}),
    phase=st.sampled_from(["Active", "Suspended", "Expired", "Purging", "Purged"]),
    held=st.booleans(),
    has_policy=st.booleans(),
)
def test_never_a_cutoff_for_held_purging_purged_or_policyless_tenants(
    active: timedelta | None, classes: dict[str, timedelta | None], phase: str, held: bool, has_policy: bool
) -> None:
    policy = RetentionPolicySpec(active_data_retention=active, data_class_retention=DataClassRetention(**classes))
    result = cutoffs(
        [tenant("acme", phase=phase)], {"p": policy}.get if has_policy else {}.get, {"acme"} if held else set(), NOW
    )
    if held or not has_policy or phase in ("Purging", "Purged"):
        assert result == {}
        return
    for data_class, cutoff in result.get("acme", {}).items():
        window = classes[data_class] if classes[data_class] is not None else active
        assert window is not None and cutoff == NOW - window  # never earlier than the policy says
