"""Locked out means locked out (issue 18): what a tenant admin prepares before a suspension keeps no access open, and
reopening gives back exactly what was there at closing, on the real control plane."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BREAK_GLASS, Objects, Operator
from tests.e2e.test_access import accessible, can, events, rolebinding
from tests.support.kube import Kubectl, eventually
from tests.support.tenants import after_closing, phase_of, suspend

SWEEP = 2
KEEP = "example.com/keep"
OPERATOR_NAMESPACE = "tenure-system"


@pytest.fixture(scope="module")
def lockout_operator(operator_kubeconfig: Path) -> Iterator[Operator]:
    running = Operator(operator_kubeconfig, "lockout", env={"TENURE_ACCESS_SWEEP_SECONDS": str(SWEEP)})
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


@pytest.fixture
def namespaces(kubectl: Kubectl) -> Iterator[list[str]]:
    """Namespaces to delete after the test, finalizers of their bindings and policies removed first."""
    names: list[str] = []
    yield names
    for name in names:
        for kind in ("rolebindings", "networkpolicies"):
            listed = json.loads(kubectl.run("get", kind, "-n", name, "-o", "json", check=False).stdout or "{}")
            for item in listed.get("items") or []:
                if item["metadata"].get("finalizers"):
                    kubectl.run("patch", kind, item["metadata"]["name"], "-n", name, "--type=merge", "-p",
                                '{"metadata":{"finalizers":null}}', *BREAK_GLASS, check=False)  # fmt: skip
        kubectl.run("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def tenant_with_namespace(kubectl: Kubectl, objects: Objects, unique: str, prefix: str) -> tuple[str, str]:
    tenant, ns = f"t-{unique}", f"{prefix}-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "30m", "expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [ns]})
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=ns), what="namespace with its ServiceAccount")
    return tenant, ns


def reopen(kubectl: Kubectl, tenant: str) -> None:
    kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
    eventually(lambda: accessible(kubectl, tenant) == ("True", "Active"), timeout=120, what="Accessible again")


def listed(kubectl: Kubectl, kind: str, namespace: str) -> dict[str, dict[str, Any]]:
    items = json.loads(kubectl.run("get", kind, "-n", namespace, "-o", "json").stdout)["items"]
    return {item["metadata"]["name"]: item for item in items}


def exactly(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    """What Tenure restores of an object: its name, labels, annotations, finalizers and the kind's fields."""
    meta = body["metadata"]
    kept = {name: meta.get(name) or None for name in ("name", "labels", "annotations", "finalizers")}
    return {**kept, **{name: body.get(name) for name in fields}}


def policy(name: str, namespace: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]},
    }


def token_kubectl(kubectl: Kubectl, token: str, tmp_path: Path) -> Kubectl:
    """kubectl as whoever holds this token, and nothing else (no client certificate)."""
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "holder", "user": {"token": token}}],
        "contexts": [{"name": "holder", "context": {"cluster": admin["clusters"][0]["name"], "user": "holder"}}],
        "current-context": "holder",
    }
    path = tmp_path / "token-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return Kubectl(path)


def test_a_finalizer_keeps_no_binding_policy_or_token_in_force(
    kubectl: Kubectl, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str], tmp_path: Path
) -> None:
    """Items 1 and 11: bindings and a policy with a finalizer (DELETE answers 2xx, the object stays terminating and
    still counts), and a ServiceAccount token minted before the suspension."""
    tenant, ns = tenant_with_namespace(kubectl, objects, unique, "fin")
    namespaces.append(ns)
    held = rolebinding("mallory-edit", ns, "mallory")
    held["metadata"]["finalizers"] = [KEEP]
    kubectl.create(held)
    kubectl.run("create", "serviceaccount", "ci", "-n", ns)
    ci = rolebinding("ci-edit", ns, "ignored")
    ci["subjects"] = [{"kind": "ServiceAccount", "name": "ci", "namespace": ns}]
    ci["metadata"]["finalizers"] = [KEEP]
    kubectl.create(ci)
    kubectl.create(policy("allow-all", ns, finalizers=[KEEP]))
    token = kubectl.run("create", "token", "ci", "-n", ns, "--duration=1h").stdout.strip()
    as_ci = token_kubectl(kubectl, token, tmp_path)
    assert as_ci.run("get", "pods", "-n", ns, check=False).returncode == 0
    assert can(kubectl, "mallory", ns) == "yes"
    originals = {
        name: exactly(body, "roleRef", "subjects") for name, body in listed(kubectl, "rolebindings", ns).items()
    }
    original_policy = exactly(listed(kubectl, "networkpolicies", ns)["allow-all"], "spec")

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    eventually(lambda: not listed(kubectl, "rolebindings", ns), timeout=60, what="every binding really gone")
    eventually(lambda: list(listed(kubectl, "networkpolicies", ns)) == ["tenure-inaccessible"], timeout=60,
               what="the tenant's policy really gone")  # fmt: skip
    assert can(kubectl, "mallory", ns) == "no"
    refused = as_ci.run("get", "pods", "-n", ns, check=False)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
    closed = " ".join(eventually(lambda: events(kubectl, tenant, "AccessClosed"), what="AccessClosed Event"))
    assert f"RoleBinding mallory-edit removed (its finalizers {KEEP} removed, put back on reopening)" in closed
    assert f"NetworkPolicy allow-all removed (its finalizers {KEEP} removed" in closed
    assert accessible(kubectl, tenant) == ("False", "NonPayment")

    reopen(kubectl, tenant)
    restored = {
        name: exactly(body, "roleRef", "subjects") for name, body in listed(kubectl, "rolebindings", ns).items()
    }
    assert restored == originals  # finalizers included
    assert exactly(listed(kubectl, "networkpolicies", ns)["allow-all"], "spec") == original_policy
    assert can(kubectl, "mallory", ns) == "yes"
    assert as_ci.run("get", "pods", "-n", ns, check=False).returncode == 0  # the same token works again


def test_five_hundred_bindings_and_one_of_a_mebibyte_are_all_removed_and_restored_exactly(
    kubectl: Kubectl, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str]
) -> None:
    """Item 2: no size or count a tenant controls keeps access open (the quota's 256 KiB of annotations held every
    record: a few hundred bindings, or one large one, made every removal fail)."""
    tenant, ns = tenant_with_namespace(kubectl, objects, unique, "many")
    namespaces.append(ns)
    many = [rolebinding(f"user-{index:03}", ns, f"user-{index:03}") for index in range(500)]
    kubectl.run("create", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": many}))
    huge = rolebinding("huge", ns, "huge")
    # 255 KiB of annotations (the API server's limit for all of them) and ~800 KiB of subjects, random: gzip
    # cannot make it small.
    huge["metadata"]["annotations"] = {"blob": base64.b64encode(os.urandom(190_000)).decode()}
    huge["subjects"] = [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": base64.b32encode(os.urandom(60)).decode()}
        for _ in range(5500)
    ]
    kubectl.run("create", "-f", "-", input=json.dumps(huge))
    originals = {
        name: exactly(body, "roleRef", "subjects") for name, body in listed(kubectl, "rolebindings", ns).items()
    }
    assert len(originals) == 501 and len(json.dumps(originals["huge"])) > 1_000_000
    assert can(kubectl, "user-499", ns) == "yes"

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    eventually(lambda: not listed(kubectl, "rolebindings", ns), timeout=240, interval=2, what="all 501 removed")
    for user in ("user-000", "user-499", huge["subjects"][-1]["name"]):
        assert can(kubectl, user, ns) == "no", user
    assert not [e for e in events(kubectl, tenant, "AccessFailed") if "RoleBinding" in e or "422" in e]

    reopen(kubectl, tenant)
    restored = {
        name: exactly(body, "roleRef", "subjects") for name, body in listed(kubectl, "rolebindings", ns).items()
    }
    assert restored.keys() == originals.keys()
    assert restored == originals
    assert can(kubectl, "user-499", ns) == "yes"
    uid = (kubectl.get("namespace", ns) or {})["metadata"]["uid"]
    selector = f"retention.tenure.dev/closed-namespace-uid={uid}"
    records = kubectl.run("get", "controllerrevisions", "-n", OPERATOR_NAMESPACE, "-l", selector, "-o", "name")
    assert records.stdout.split() == []  # removed on reopening


def test_every_network_policy_is_removed_whoever_claims_to_own_it(
    kubectl: Kubectl, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str]
) -> None:
    """Item 5: an allow-all policy with a forged controller ownerReference was skipped; made again while closed (as
    its controller would), it is removed again with an Event naming that controller."""
    tenant, ns = tenant_with_namespace(kubectl, objects, unique, "own")
    namespaces.append(ns)
    kubectl.run("create", "configmap", "owner", "-n", ns)
    owner = kubectl.get("configmap", "owner", namespace=ns)
    assert owner is not None
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
                 "controller": True}  # fmt: skip
    kubectl.create(policy("allow-all", ns, ownerReferences=[reference], labels={"team": "web"}))
    original = exactly(listed(kubectl, "networkpolicies", ns)["allow-all"], "spec")

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    eventually(lambda: list(listed(kubectl, "networkpolicies", ns)) == ["tenure-inaccessible"], timeout=60,
               what="the owned allow-all policy removed")  # fmt: skip
    closed = " ".join(eventually(lambda: events(kubectl, tenant, "AccessClosed"), what="AccessClosed Event"))
    assert "NetworkPolicy allow-all removed (its ownerReference names controller ConfigMap owner" in closed

    # Its "controller" cannot make it again while the namespace is closed (tenure-closed-namespaces); one made anyway
    # (break glass here, or a controller before the policy was installed) is removed again on the next sweep.
    refused = kubectl.create(policy("allow-all", ns, ownerReferences=[reference]), check=False)
    assert refused.returncode != 0 and f"namespace {ns} is closed" in refused.stderr
    after_closing(kubectl, ns)
    kubectl.create(policy("allow-all", ns, ownerReferences=[reference]), *BREAK_GLASS)
    eventually(lambda: list(listed(kubectl, "networkpolicies", ns)) == ["tenure-inaccessible"], timeout=60,
               what="removed again on the next sweep")  # fmt: skip

    def again() -> str | None:
        text = " ".join(events(kubectl, tenant, "AccessClosed"))
        return text if "made while the namespace was closed" in text else None

    assert "controller ConfigMap owner" in eventually(again, what="the second removal's Event")

    reopen(kubectl, tenant)
    policies = listed(kubectl, "networkpolicies", ns)
    assert list(policies) == ["allow-all"] and exactly(policies["allow-all"], "spec") == original


def test_reopening_under_another_tenant_replays_nothing_of_the_first(
    kubectl: Kubectl, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str]
) -> None:
    """Item 8: a closed namespace relabeled to another tenant; that tenant's reopening must not recreate the first
    tenant's bindings."""
    tenant, ns = tenant_with_namespace(kubectl, objects, unique, "moved")
    namespaces.append(ns)
    kubectl.create(rolebinding("alice-edit", ns, "alice"))
    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    eventually(lambda: not listed(kubectl, "rolebindings", ns), timeout=60, what="alice's binding removed")

    other = f"o-{unique}"
    kubectl.run("label", "namespace", ns, "--overwrite", f"retention.tenure.dev/tenant={other}")
    objects.create("Tenant", other, {"retentionPolicy": f"p-{unique}", "namespaces": [ns]})
    eventually(lambda: accessible(kubectl, other) == ("True", "Active"), timeout=60, what="the other tenant reopened")
    assert kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns) is None
    assert kubectl.get("rolebinding", "alice-edit", namespace=ns) is None
    assert can(kubectl, "alice", ns) == "no"
    untrusted = " ".join(eventually(lambda: events(kubectl, other, "AccessRecordUntrusted"), what="untrusted Event"))
    assert "1 closure records in namespace tenure-system that do not verify for this closing" in untrusted


def test_a_closed_namespace_admits_no_new_binding_or_policy_from_anyone_who_kept_access(
    kubectl: Kubectl, objects: Objects, unique: str, lockout_operator: Operator, namespaces: list[str]
) -> None:
    """Someone who still holds a binding while Tenure removes the others (here a kept support binding with `admin`)
    could make new ones faster than a sweep removes them, or keep changing theirs so each deletion's precondition
    fails: while Tenure's quota is there, the API server refuses every new or changed RoleBinding and NetworkPolicy
    but Tenure's and break glass's (tenure-closed-namespaces), and allows them again once the tenant is reopened."""
    tenant, ns = tenant_with_namespace(kubectl, objects, unique, "fence")
    namespaces.append(ns)
    support = rolebinding("support", ns, "sam", labels={"retention.tenure.dev/keep-access": "true"})
    support["roleRef"]["name"] = "admin"
    kubectl.create(support, *BREAK_GLASS)
    as_sam = ("--as=sam",)
    made = kubectl.run("create", "rolebinding", "before", "-n", ns, "--clusterrole=edit", "--user=eve", *as_sam)
    assert made.returncode == 0  # open: sam's admin may grant edit

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    eventually(lambda: kubectl.get("rolebinding", "before", namespace=ns) is None, timeout=60, what="eve's binding out")
    assert can(kubectl, "sam", ns) == "yes"  # kept: support staff still reach the namespace

    for attempt in (
        ("create", "rolebinding", "during", "-n", ns, "--clusterrole=admin", "--user=eve", *as_sam),
        ("create", "rolebinding", "during", "-n", ns, "--clusterrole=admin", "--user=eve"),  # a cluster admin too
        ("annotate", "rolebinding", "support", "-n", ns, "note=mine", *as_sam),  # changing one's own
    ):
        refused = kubectl.run(*attempt, check=False)
        assert refused.returncode != 0 and f"namespace {ns} is closed" in refused.stderr, (attempt, refused.stderr)
    refused = kubectl.create(policy("allow-all", ns), *as_sam, check=False)
    assert refused.returncode != 0 and f"namespace {ns} is closed" in refused.stderr
    assert can(kubectl, "eve", ns) == "no"

    reopen(kubectl, tenant)
    assert kubectl.get("rolebinding", "before", namespace=ns) is not None  # what was there at closing is back
    after = kubectl.run("create", "rolebinding", "after", "-n", ns, "--clusterrole=edit", "--user=eve", *as_sam)
    assert after.returncode == 0
