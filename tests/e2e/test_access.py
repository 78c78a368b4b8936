"""Suspended and expired tenants are inaccessible on the real control plane and its node; reopening restores exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import BREAK_GLASS, Objects, Operator
from tests.e2e.test_node import container, deployment, pod, pods, ready_pods
from tests.support.kube import Kubectl, condition, eventually
from tests.support.node import Node
from tests.support.tenants import after_closing, phase_of, suspend

SWEEP = 2
"""Seconds between sweeps of an inaccessible tenant's namespaces in these tests."""


@pytest.fixture(scope="module")
def access_operator(operator_kubeconfig: Path) -> Iterator[Operator]:
    running = Operator(operator_kubeconfig, "access", env={"TENURE_ACCESS_SWEEP_SECONDS": str(SWEEP)})
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


@pytest.fixture
def cleanup_namespaces(kubectl: Kubectl) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        kubectl.run("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def statefulset(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    body = deployment(name, namespace, replicas)
    body["kind"] = "StatefulSet"
    body["spec"]["serviceName"] = name
    return body


def cronjob(name: str, namespace: str, suspended: bool) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "0 0 1 1 *",
            "suspend": suspended,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [container()], "restartPolicy": "Never"}}}},
        },
    }


def rolebinding(name: str, namespace: str, user: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def can(kubectl: Kubectl, user: str, namespace: str) -> str:
    return kubectl.run(
        "auth", "can-i", "create", "deployments", "-n", namespace, f"--as={user}", check=False
    ).stdout.strip()


def replicas(kubectl: Kubectl, kind: str, name: str, namespace: str) -> int:
    body = kubectl.get(kind, name, namespace=namespace)
    assert body is not None
    return int(body["spec"]["replicas"])


def suspended(kubectl: Kubectl, name: str, namespace: str) -> bool:
    body = kubectl.get("cronjob", name, namespace=namespace)
    assert body is not None
    return bool(body["spec"].get("suspend"))


def accessible(kubectl: Kubectl, tenant: str) -> tuple[str, str] | None:
    found = condition(kubectl.get("tenant", tenant), "Accessible")
    return (found["status"], found["reason"]) if found else None


def events(kubectl: Kubectl, tenant: str, reason: str) -> list[str]:
    listed = kubectl.run(
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        f"involvedObject.name={tenant},reason={reason}",
        "-o",
        "json",
    ).stdout
    return [item["message"] for item in json.loads(listed)["items"]]


def quota_ready(kubectl: Kubectl, namespace: str) -> bool:
    quota = kubectl.get("resourcequota", "tenure-inaccessible", namespace=namespace)
    return bool(quota and (quota.get("status") or {}).get("used"))


def test_suspend_stops_everything_and_reopening_restores_exactly(
    kubectl: Kubectl,
    node: Node,
    objects: Objects,
    unique: str,
    access_operator: Operator,
    cleanup_namespaces: list[str],
) -> None:
    tenant, ns = f"t-{unique}", f"acc-{unique}"
    cleanup_namespaces.append(ns)
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "30m", "expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [ns]})
    eventually(lambda: kubectl.get("namespace", ns), what="namespace created by Tenure")
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=ns), what="default ServiceAccount")
    kubectl.create(deployment("web", ns, 3))
    kubectl.create(deployment("api", ns, 1))
    kubectl.create(statefulset("db", ns, 2))
    kubectl.create(cronjob("hourly", ns, suspended=False))
    kubectl.create(cronjob("paused", ns, suspended=True))
    kubectl.create(pod("solo", ns))
    kubectl.create(rolebinding("alice-edit", ns, "alice"))
    allow_web = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}], "policyTypes": ["Ingress"]}
    kubectl.create(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-web", "namespace": ns, "labels": {"team": "web"}},
            "spec": allow_web,
        }
    )  # NetworkPolicies add up: left in place, it would let traffic through Tenure's deny-all
    # Only the break-glass group may label a binding keep-access (tenure-keep-access, test_admission.py).
    kubectl.create(rolebinding("ops", ns, "bob", labels={"retention.tenure.dev/keep-access": "true"}), *BREAK_GLASS)
    eventually(lambda: ready_pods(kubectl, ns, 7), timeout=120, what="7 Ready pods (3 web, 1 api, 2 db, solo)")
    assert len(node.running(ns)) == 14  # a sandbox and a container per pod
    assert can(kubectl, "alice", ns) == "yes"
    original = kubectl.get("rolebinding", "alice-edit", namespace=ns)
    assert original is not None

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    # Stopped means the containers are gone from the node, not only that replicas read 0.
    eventually(lambda: not node.running(ns), timeout=90, what="no running container of the tenant's namespace")
    assert (replicas(kubectl, "deployment", "web", ns), replicas(kubectl, "statefulset", "db", ns)) == (0, 0)
    assert (suspended(kubectl, "hourly", ns), suspended(kubectl, "paused", ns)) == (True, True)
    assert kubectl.get("pod", "solo", namespace=ns) is None
    policy = kubectl.get("networkpolicy", "tenure-inaccessible", namespace=ns)
    assert policy is not None and policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    listed = json.loads(kubectl.run("get", "networkpolicies", "-n", ns, "-o", "json").stdout)["items"]
    assert [item["metadata"]["name"] for item in listed] == ["tenure-inaccessible"]
    assert kubectl.get("rolebinding", "alice-edit", namespace=ns) is None
    assert kubectl.get("rolebinding", "ops", namespace=ns) is not None  # labeled keep-access
    assert can(kubectl, "alice", ns) == "no"
    assert can(kubectl, "bob", ns) == "yes"
    # The API server itself refuses a new pod, whoever asks.
    eventually(lambda: quota_ready(kubectl, ns), what="quota usage computed")
    refused = kubectl.create(pod("new", ns), check=False)
    assert refused.returncode != 0 and "exceeded quota: tenure-inaccessible" in refused.stderr
    assert accessible(kubectl, tenant) == ("False", "NonPayment")
    columns = kubectl.run("get", "tenant", tenant).stdout.splitlines()
    assert columns[0].split()[:5] == ["NAME", "PHASE", "POLICY", "NEXT", "DEADLINE"]
    assert "ACCESSIBLE" in columns[0] and columns[1].split()[columns[0].split().index("ACCESSIBLE") - 1] == "False"
    closed = " ".join(eventually(lambda: events(kubectl, tenant, "AccessClosed"), what="AccessClosed Event"))
    assert "Deployment web scaled from 3 to 0" in closed and "RoleBinding alice-edit removed" in closed
    assert "NetworkPolicy allow-web removed" in closed

    # Scaled up while inaccessible: scaled back on the next sweep, and the new ask is what reopening restores.
    # A RoleBinding made meanwhile (by someone who kept access) is removed too, and recorded apart: reopening
    # restores what was there at closing, not what was made while closed.
    kubectl.run("scale", "deployment", "api", "-n", ns, "--replicas=2")
    # A closed namespace admits no new binding, not even from a cluster admin (tenure-closed-namespaces) ...
    refused = kubectl.create(rolebinding("carol-edit", ns, "carol"), check=False)
    assert refused.returncode != 0 and f"namespace {ns} is closed" in refused.stderr
    # ... but break glass can make one: removed on the next sweep all the same.
    after_closing(kubectl, ns)  # made after the quota's second: "made while closed" for sure
    kubectl.create(rolebinding("carol-edit", ns, "carol"), *BREAK_GLASS)
    eventually(lambda: replicas(kubectl, "deployment", "api", ns) == 0, timeout=30, what="api scaled back to 0")
    eventually(lambda: kubectl.get("rolebinding", "carol-edit", namespace=ns) is None, timeout=30, what="carol out")
    assert can(kubectl, "carol", ns) == "no"

    # What was saved lives in the cluster: a restart between suspend and reopen loses nothing.
    access_operator.stop()
    access_operator.start()

    kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
    eventually(lambda: accessible(kubectl, tenant) == ("True", "Active"), timeout=60, what="Accessible again")
    assert replicas(kubectl, "deployment", "web", ns) == 3
    assert replicas(kubectl, "deployment", "api", ns) == 2
    assert replicas(kubectl, "statefulset", "db", ns) == 2
    assert (suspended(kubectl, "hourly", ns), suspended(kubectl, "paused", ns)) == (False, True)
    restored = kubectl.get("rolebinding", "alice-edit", namespace=ns)
    assert restored is not None
    assert (restored["roleRef"], restored["subjects"]) == (original["roleRef"], original["subjects"])
    assert can(kubectl, "alice", ns) == "yes"
    assert kubectl.get("rolebinding", "carol-edit", namespace=ns) is None
    assert can(kubectl, "carol", ns) == "no"
    assert kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns) is None
    assert kubectl.get("networkpolicy", "tenure-inaccessible", namespace=ns) is None
    web_policy = kubectl.get("networkpolicy", "allow-web", namespace=ns)
    assert web_policy is not None
    assert (web_policy["spec"], web_policy["metadata"]["labels"]) == (allow_web, {"team": "web"})
    annotated = [
        name
        for kind in ("deployment", "statefulset", "cronjob")
        for item in json.loads(kubectl.run("get", kind, "-n", ns, "-o", "json").stdout)["items"]
        if "retention.tenure.dev/asked" in (item["metadata"].get("annotations") or {})
        for name in [item["metadata"]["name"]]
    ]
    assert annotated == []
    kubectl.create(pod("new", ns))
    eventually(lambda: ready_pods(kubectl, ns, 8), timeout=120, what="8 Ready pods (3 web, 2 api, 2 db, new)")
    assert len(node.running(ns)) == 16
    assert "solo" not in {p["metadata"]["name"] for p in pods(kubectl, ns)}  # a deleted bare pod is not recreated
    restored_events = " ".join(eventually(lambda: events(kubectl, tenant, "AccessRestored"), what="AccessRestored"))
    assert "Deployment web restored (replicas 3)" in restored_events
    assert "RoleBinding alice-edit recreated" in restored_events
    assert "RoleBinding carol-edit not recreated (made while the namespace was closed" in restored_events
    assert events(kubectl, tenant, "AccessRecordUntrusted") == []


def test_a_quota_or_policy_made_in_advance_is_made_tenures_and_a_forged_record_is_kept_aside(
    kubectl: Kubectl, objects: Objects, unique: str, access_operator: Operator, cleanup_namespaces: list[str]
) -> None:
    """Objects named tenure-inaccessible made before the suspension (break glass here: the name is reserved,
    test_admission.py) must not stand in for Tenure's: a quota with room for pods, a policy letting traffic in."""
    tenant, ns = f"t-{unique}", f"pre-{unique}"
    cleanup_namespaces.append(ns)
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "30m", "expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [ns]})
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=ns), what="namespace with its ServiceAccount")
    kubectl.create(rolebinding("alice-edit", ns, "alice"))  # first: a quota of that name fences the namespace
    labels = {"app.kubernetes.io/managed-by": "tenure"}
    roomy = {"hard": {"pods": "100"}, "scopes": ["BestEffort"]}
    allow_all = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}], "policyTypes": ["Ingress"]}
    meta = {"name": "tenure-inaccessible", "namespace": ns, "labels": labels}
    kubectl.create({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta, "spec": roomy}, *BREAK_GLASS)
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": allow_all}
    kubectl.create(policy, *BREAK_GLASS)

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    eventually(lambda: kubectl.get("rolebinding", "alice-edit", namespace=ns) is None, timeout=30, what="alice out")
    quota = kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns)
    assert quota is not None and quota["spec"] == {"hard": {"pods": "0"}}
    closed = kubectl.get("networkpolicy", "tenure-inaccessible", namespace=ns)
    assert closed is not None and closed["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    eventually(lambda: quota_ready(kubectl, ns), what="quota usage computed")
    refused = kubectl.create(pod("new", ns), check=False)
    assert refused.returncode != 0 and "exceeded quota: tenure-inaccessible" in refused.stderr
    tampered = " ".join(eventually(lambda: events(kubectl, tenant, "AccessTampered"), what="AccessTampered Event"))
    was = '{"hard":{"pods":"100"},"scopes":["BestEffort"]}'
    assert f'ResourceQuota tenure-inaccessible made anew with pods: "0" (it was {was})' in tampered  # scopes: immutable
    assert "NetworkPolicy tenure-inaccessible reset to no ingress, no egress" in tampered

    # Records Tenure did not seal (break glass again: tenants cannot write tenure-system) are never acted on: one
    # planted where records live, claiming this very closing, and one in the quota's annotation, where an earlier
    # version kept them.
    from tenure.lifecycle import closure_records as records

    namespace_uid = (kubectl.get("namespace", ns) or {})["metadata"]["uid"]
    quota_uid = (kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns) or {})["metadata"]["uid"]
    closing = records.Closing(tenant, (kubectl.get("tenant", tenant) or {})["metadata"]["uid"], ns, namespace_uid,
                              quota_uid)  # fmt: skip
    mallory = rolebinding("mallory-admin", ns, "mallory")
    fields = {"name": "mallory-admin", "labels": {}, "annotations": {}, "roleRef": mallory["roleRef"]}
    planted = records.Record("RoleBinding", "mallory-admin", {**fields, "subjects": mallory["subjects"]})
    record_id = records.record_id(closing, "RoleBinding", "mallory-admin", False)
    kubectl.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": f"tenure-access-{record_id}-0",
                "namespace": "tenure-system",
                "labels": {records.NAMESPACE_LABEL: namespace_uid, records.RECORD_LABEL: record_id},
            },
            "revision": 0,
            "data": records.encode(b"not Tenure's key", closing, planted)[0],
        },
        *BREAK_GLASS,
    )
    forged = '{"records": [{"name": "mallory-admin"}], "seal": "0000"}'
    kubectl.run(
        "annotate", "resourcequota", "tenure-inaccessible", "-n", ns, "--overwrite",
        f"retention.tenure.dev/rolebindings={forged}", *BREAK_GLASS,
    )  # fmt: skip
    after_closing(kubectl, ns)  # break glass (the namespace is closed to everyone else), after the quota's second
    kubectl.create(rolebinding("dave-edit", ns, "dave"), *BREAK_GLASS)
    eventually(lambda: kubectl.get("rolebinding", "dave-edit", namespace=ns) is None, timeout=30, what="dave out")
    annotations = (kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns) or {})["metadata"]["annotations"]
    assert annotations["retention.tenure.dev/rolebindings"] == forged  # never overwritten

    try:
        kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
        eventually(lambda: accessible(kubectl, tenant) == ("True", "Active"), timeout=60, what="Accessible again")
        assert kubectl.get("rolebinding", "mallory-admin", namespace=ns) is None  # the planted records
        assert can(kubectl, "mallory", ns) == "no"
        assert kubectl.get("rolebinding", "dave-edit", namespace=ns) is None  # made while closed
        assert kubectl.get("rolebinding", "alice-edit", namespace=ns) is not None  # its own record: intact
        assert kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns) is None
        assert kubectl.get("networkpolicy", "tenure-inaccessible", namespace=ns) is None
        untrusted = " ".join(eventually(lambda: events(kubectl, tenant, "AccessRecordUntrusted"), what="untrusted"))
        assert "1 closure records in namespace tenure-system that do not verify for this closing" in untrusted
        assert "annotation retention.tenure.dev/rolebindings on ResourceQuota tenure-inaccessible" in untrusted
    finally:
        kubectl.run("delete", "controllerrevision", f"tenure-access-{record_id}-0", "-n", "tenure-system",
                    "--ignore-not-found", *BREAK_GLASS)  # fmt: skip


def test_grace_elapsed_expired_stays_inaccessible(
    kubectl: Kubectl,
    node: Node,
    objects: Objects,
    unique: str,
    access_operator: Operator,
    cleanup_namespaces: list[str],
) -> None:
    tenant, ns, foreign = f"t-{unique}", f"exp-{unique}", f"foreign-{unique}"
    cleanup_namespaces.extend([ns, foreign])
    # Listed by the tenant but never handed over (no label): not the tenant's, never touched.
    kubectl.run("create", "namespace", foreign)
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=foreign), what="foreign ServiceAccount")
    kubectl.create(deployment("other", foreign, 1))
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "6s", "expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [ns, foreign]})
    eventually(lambda: kubectl.get("serviceaccount", "default", namespace=ns), what="namespace with its ServiceAccount")
    kubectl.create(deployment("web", ns, 1))
    eventually(lambda: ready_pods(kubectl, ns, 1), timeout=90, what="web Ready")
    eventually(lambda: ready_pods(kubectl, foreign, 1), timeout=90, what="other Ready")

    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Expired", timeout=60)
    eventually(lambda: not node.running(ns), timeout=60, what="no running container")
    # Scaled up after expiry: still brought back, and reopening is refused.
    kubectl.run("scale", "deployment", "web", "-n", ns, "--replicas=2")
    kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
    eventually(lambda: replicas(kubectl, "deployment", "web", ns) == 0, timeout=30, what="web scaled back to 0")
    status = kubectl.get("tenant", tenant)
    assert status is not None and status["status"]["phase"] == "Expired"
    assert accessible(kubectl, tenant) == ("False", "Expired")
    assert kubectl.get("resourcequota", "tenure-inaccessible", namespace=ns) is not None
    assert kubectl.get("networkpolicy", "tenure-inaccessible", namespace=ns) is not None
    assert not node.running(ns)
    assert replicas(kubectl, "deployment", "other", foreign) == 1
    assert kubectl.get("resourcequota", "tenure-inaccessible", namespace=foreign) is None
    assert len(node.running(foreign)) == 2


def test_gateway_blocked_while_suspended_and_unblocked_exactly(
    kubectl: Kubectl, objects: Objects, unique: str, access_operator: Operator, litellm_db: str
) -> None:
    from tests.e2e.test_datastores import NAMESPACE, datastore, ready
    from tests.support.litellm import create_account

    secret = f"litellm-{unique}"
    kubectl.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": NAMESPACE},
            "stringData": {"uri": litellm_db},
        }
    )
    try:
        with psycopg.connect(litellm_db, autocommit=True) as conn:
            acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
            admin_blocked = next(iter(acme.tokens))
            conn.execute('UPDATE "LiteLLM_VerificationToken" SET blocked = true WHERE token = %s', [admin_blocked])
        store = f"ds-{unique}"
        datastore(objects, store, secret)
        ready(kubectl, store)
        objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "30m"})
        tenant = f"t-{unique}"
        objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "dataKeys": {store: [acme.organization]}})
        phase_of(kubectl, tenant, "Active")

        def blocked() -> dict[str, bool | None]:
            with psycopg.connect(litellm_db) as conn:
                keys = conn.execute('SELECT token, blocked FROM "LiteLLM_VerificationToken"').fetchall()
                teams = conn.execute('SELECT team_id, blocked FROM "LiteLLM_TeamTable"').fetchall()
            return dict(keys + teams)

        before = blocked()
        suspend(kubectl, tenant)
        acme_rows = {*acme.teams, *acme.tokens}
        eventually(lambda: all(blocked()[row] for row in acme_rows), timeout=60, what="acme's teams and keys blocked")

        def kept_out() -> int:  # the DataStore's GatewayBlocked condition: how many tenants it keeps out
            found = condition(kubectl.get("datastore", store), "GatewayBlocked") or {}
            if (found.get("status"), found.get("reason")) != ("True", "Enforced"):
                return 0
            return int(found["message"].removeprefix("Inaccessible tenants: ").split(";")[0])

        # acme at least (other tests' tenants share this cluster)
        eventually(lambda: kept_out() >= 1, timeout=60, what="GatewayBlocked counting acme")
        during = blocked()
        assert {row: during[row] for row in during if row not in acme_rows} == {
            row: before[row] for row in before if row not in acme_rows
        }
        kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
        eventually(lambda: not any(blocked()[row] for row in acme_rows - {admin_blocked}), timeout=60, what="unblocked")
        assert blocked() == before  # the admin's block stays; globex never changed
        assert globex.teams[0] in before
    finally:
        kubectl.run("delete", "secret", secret, "-n", NAMESPACE, "--ignore-not-found")
