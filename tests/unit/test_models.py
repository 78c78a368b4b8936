from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tenure.api import LegalHoldSpec, RetentionPolicySpec, TenantSpec, TenantStatus


def test_policy_defaults_are_the_documented_windows() -> None:
    policy = RetentionPolicySpec()
    assert policy.suspension_grace_period == timedelta(days=14)
    assert policy.expired_data_retention == timedelta(days=30)
    assert policy.active_data_retention is None


def test_policy_round_trips_in_camel_case() -> None:
    body = {"suspensionGracePeriod": "5s", "expiredDataRetention": "1d12h", "activeDataRetention": "365d"}
    policy = RetentionPolicySpec.model_validate(body)
    assert policy.to_api() == body


def test_active_retention_above_365_days_is_rejected() -> None:
    with pytest.raises(ValidationError, match="365d"):
        RetentionPolicySpec.model_validate({"activeDataRetention": "366d"})


def test_class_retention_overrides_the_active_retention() -> None:
    policy = RetentionPolicySpec.model_validate({"activeDataRetention": "90d", "dataClassRetention": {"prompts": "7d"}})
    assert policy.retention_for("prompts") == timedelta(days=7)
    assert policy.retention_for("usage") == timedelta(days=90)


def test_tenant_defaults() -> None:
    spec = TenantSpec()
    assert (spec.state, spec.retention_policy, spec.namespaces) == ("Active", "default", ())


@pytest.mark.parametrize("namespace", ["Upper", "-lead", "trail-", "dot.ted", "x" * 64])
def test_namespace_names_must_be_dns_labels(namespace: str) -> None:
    with pytest.raises(ValidationError, match="namespaces"):
        TenantSpec.model_validate({"namespaces": [namespace]})


def test_status_timestamps_are_whole_second_utc_on_the_wire() -> None:
    moment = datetime(2026, 11, 27, 4, 20, 55, tzinfo=UTC)
    status = TenantStatus(phase="Suspended", suspended_at=moment)
    assert status.to_api() == {"phase": "Suspended", "suspendedAt": "2026-11-27T04:20:55Z", "conditions": []}
    assert TenantStatus.model_validate(status.to_api()) == status


def test_legal_hold_needs_a_reason_and_a_tenant() -> None:
    with pytest.raises(ValidationError):
        LegalHoldSpec.model_validate({"tenants": ["acme"], "reason": "  "})
    with pytest.raises(ValidationError):
        LegalHoldSpec.model_validate({"tenants": [], "reason": "case 42"})


@pytest.mark.parametrize("name", ["acme.corp", "a", "eu.acme-1.corp"])
def test_legal_hold_and_policy_reference_accept_every_valid_object_name(name: str) -> None:
    assert LegalHoldSpec.model_validate({"tenants": [name], "reason": "case 7"}).tenants == (name,)
    assert TenantSpec.model_validate({"retentionPolicy": name}).retention_policy == name


@pytest.mark.parametrize("name", ["Acme", "acme_corp", ".acme", "acme.", "acme..corp", "x" * 64])
def test_legal_hold_refuses_what_cannot_be_a_tenant_name(name: str) -> None:
    with pytest.raises(ValidationError):
        LegalHoldSpec.model_validate({"tenants": [name], "reason": "case 7"})
