"""What the API server accepts, Tenure can write back: the longest windows, every valid Tenant name."""

from __future__ import annotations

import pytest

from tests.conftest import Objects
from tests.support.kube import Kubectl, condition, eventually
from tests.support.tenants import phase_of, suspend

pytestmark = pytest.mark.usefixtures("operator")

LONGEST = "36500d"


def test_a_window_whose_canonical_form_the_schema_would_refuse_is_refused_up_front(
    kubectl: Kubectl, unique: str
) -> None:
    policy = {
        "apiVersion": "retention.tenure.dev/v1alpha1",
        "kind": "RetentionPolicy",
        "metadata": {"name": f"p-{unique}"},
        "spec": {"suspensionGracePeriod": "99999d24h"},  # Tenure would render it 100000d, which the pattern refuses
    }
    refused = kubectl.create(policy, check=False)
    assert refused.returncode != 0
    assert "spec.suspensionGracePeriod" in refused.stderr and "between 0d and 36500d" in refused.stderr


def test_the_longest_accepted_windows_still_get_statuses_written(
    kubectl: Kubectl, objects: Objects, unique: str
) -> None:
    objects.create(
        "RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": LONGEST, "expiredDataRetention": LONGEST}
    )
    extensions = {"suspensionGracePeriod": LONGEST, "expiredDataRetention": LONGEST}
    suspended, closed = f"s-{unique}", f"c-{unique}"
    objects.create("Tenant", suspended, {"retentionPolicy": f"p-{unique}", "extensions": extensions})
    objects.create("Tenant", closed, {"retentionPolicy": f"p-{unique}", "extensions": extensions})
    phase_of(kubectl, suspended, "Active")
    suspend(kubectl, suspended)
    status = phase_of(kubectl, suspended, "Suspended")["status"]
    assert status["windows"]["suspensionGracePeriod"] == LONGEST
    assert status["graceEndsAt"] > "2226-"  # now + 2 x 36500 days
    kubectl.patch("tenant", closed, {"spec": {"state": "Closed"}})
    status = phase_of(kubectl, closed, "Expired")["status"]
    assert status["windows"]["expiredDataRetention"] == LONGEST
    assert status["purgeAfter"] > "2226-"


def test_a_legal_hold_names_a_tenant_whose_name_has_a_dot(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant = f"acme.corp-{unique}"
    objects.create("RetentionPolicy", f"gold.v2-{unique}", {})
    objects.create("Tenant", tenant, {"retentionPolicy": f"gold.v2-{unique}"})
    objects.create("LegalHold", f"h-{unique}", {"tenants": [tenant], "reason": "case 42"})

    def held() -> bool:
        obj = kubectl.get("tenant", tenant)
        found, policy = condition(obj, "LegalHold"), condition(obj, "PolicyResolved")
        return bool(found and found["status"] == "True" and policy and policy["status"] == "True")

    eventually(held, what=f"{tenant} to be held, under policy gold.v2-{unique}")
