"""The API server itself enforces Tenure's schema: bad objects never get in."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BREAK_GLASS
from tests.support.kube import Kubectl

pytestmark = pytest.mark.usefixtures("crds")


def tenant(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "retention.tenure.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec}


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "retention.tenure.dev/v1alpha1",
        "kind": "RetentionPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_crds_are_established(kubectl: Kubectl) -> None:
    for plural in ("tenants", "retentionpolicies", "legalholds", "datastores"):
        crd = kubectl.get("crd", f"{plural}.retention.tenure.dev")
        assert crd is not None
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True"


def test_kubectl_explain_prints_the_field_description(kubectl: Kubectl) -> None:
    out = kubectl.run("explain", "tenant.spec.state").stdout
    assert "The account state asked for" in out
    assert "Suspended" in out


def test_short_names_and_category(kubectl: Kubectl) -> None:
    resources = kubectl.run("api-resources", "--api-group=retention.tenure.dev", "-o", "wide").stdout
    for short in ("tn", "rp", "lh", "dstore"):
        assert f" {short} " in resources
    assert kubectl.run("get", "tenure").returncode == 0


def test_defaults_are_applied_by_the_api_server(kubectl: Kubectl, unique: str) -> None:
    kubectl.create(policy(f"defaults-{unique}"))
    kubectl.create(tenant(f"defaults-{unique}"))
    try:
        stored = kubectl.get("retentionpolicy", f"defaults-{unique}")
        assert stored is not None
        assert stored["spec"] == {"suspensionGracePeriod": "14d", "expiredDataRetention": "30d"}
        stored_tenant = kubectl.get("tenant", f"defaults-{unique}")
        assert stored_tenant is not None
        assert stored_tenant["spec"]["state"] == "Active"
        assert stored_tenant["spec"]["retentionPolicy"] == "default"
    finally:
        kubectl.delete("retentionpolicy", f"defaults-{unique}")
        kubectl.delete("tenant", f"defaults-{unique}", "--wait=false", *BREAK_GLASS)


REJECTED = [
    pytest.param(
        policy("bad-duration", expiredDataRetention="30 days"), "spec.expiredDataRetention", id="malformed-duration"
    ),
    pytest.param(policy("bad-active", activeDataRetention="366d"), "spec.activeDataRetention", id="active-366d"),
    pytest.param(
        policy("bad-class", dataClassRetention={"prompts": "1d8761h"}),
        "spec.dataClassRetention.prompts",
        id="class-above-365d",
    ),
    pytest.param(tenant("no-reason", state="Suspended"), "spec.suspensionReason", id="suspended-without-reason"),
    pytest.param(
        tenant("stray-reason", state="Active", suspensionReason="NonPayment"),
        "spec.suspensionReason",
        id="reason-while-active",
    ),
    pytest.param(tenant("bad-state", state="Frozen"), "spec.state", id="unknown-state"),
    pytest.param(tenant("bad-ns", namespaces=["Not_A_Label"]), "spec.namespaces[0]", id="namespace-not-dns-label"),
    pytest.param(tenant("dup-ns", namespaces=["a", "a"]), "spec.namespaces[1]", id="duplicate-namespace"),
    pytest.param(
        {
            "apiVersion": "retention.tenure.dev/v1alpha1",
            "kind": "LegalHold",
            "metadata": {"name": "no-reason"},
            "spec": {"tenants": ["acme"]},
        },
        "spec.reason",
        id="hold-without-reason",
    ),
    pytest.param(
        {
            "apiVersion": "retention.tenure.dev/v1alpha1",
            "kind": "LegalHold",
            "metadata": {"name": "no-tenants"},
            "spec": {"tenants": [], "reason": "case 7"},
        },
        "spec.tenants",
        id="hold-without-tenants",
    ),
]


@pytest.mark.parametrize(("obj", "field"), REJECTED)
def test_invalid_objects_are_rejected_naming_the_field(kubectl: Kubectl, obj: dict[str, Any], field: str) -> None:
    result = kubectl.create(obj, check=False)
    assert result.returncode != 0, f"{obj} was accepted"
    assert "is invalid" in result.stderr
    assert field in result.stderr, result.stderr
    assert kubectl.get(obj["kind"], obj["metadata"]["name"]) is None
