"""With the status policy removed, a forged status deletes nothing: Tenure checks its seal and rebuilds from spec.

Each forgery of issue 7 is written by a cluster admin while the binding tenure-status-writers is absent (as on a
cluster that never installed it, or a status restored from a backup); tests/e2e/test_admission.py shows the API
server refusing the same writes while the policy is installed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.conftest import Objects, admission_enforced
from tests.e2e.test_datastores import claiming, purging_store, secret, store_state  # noqa: F401 (fixture)
from tests.support.kube import REPO, Kubectl, condition, eventually
from tests.support.litellm import create_account, spend_log
from tests.support.tenants import owned, phase_of, static_volume

pytestmark = pytest.mark.usefixtures("operator", "status_policy_removed")

OLD = "2020-01-01T00:00:00Z"
WATCH = 8.0
"""Seconds to watch for a deletion after the forgery: today's code deleted the namespace within 5."""


@pytest.fixture(scope="module")
def status_policy_removed(kubectl: Kubectl, operator: Any) -> Iterator[None]:
    kubectl.run("delete", "validatingadmissionpolicybinding", "tenure-status-writers")
    yield
    kubectl.run("apply", "-f", str(REPO / "manifests/deploy/validating-admission-policies.yaml"))
    admission_enforced(kubectl)


def forge(kubectl: Kubectl, tenant: str, status: dict[str, Any]) -> None:
    patch = json.dumps({"status": status})

    def accepted() -> bool:  # the binding's removal reaches the admission plugin a moment later
        return (
            kubectl.run(
                "patch", "tenant", tenant, "--subresource=status", "--type=merge", "-p", patch, check=False
            ).returncode
            == 0
        )

    eventually(accepted, what=f"the forged status of {tenant} to be accepted")


def untrusted(kubectl: Kubectl, tenant: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = kubectl.get("tenant", tenant)
        found = condition(obj, "StatusTrusted")
        return obj if found and found["status"] == "False" and found["reason"] == "SealMismatch" else None

    return eventually(probe, what=f"tenant {tenant} to report StatusTrusted=False")


def still(probe: Any, seconds: float = WATCH) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe(), "deleted on a forged status"
        time.sleep(0.5)


def warned(kubectl: Kubectl, tenant: str) -> bool:
    items = json.loads(
        kubectl.run(
            "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={tenant}", "-o", "json"
        ).stdout
    )["items"]
    return any(e["reason"] == "StatusUntrusted" and e["type"] == "Warning" for e in items)


def test_forged_expired_on_an_active_tenant_deletes_nothing(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "1s"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    forge(kubectl, tenant, {"phase": "Expired", "expiredAt": OLD, "purgeAfter": OLD, "closureReason": "Voluntary"})
    still(lambda: kubectl.get("namespace", namespace) is not None)
    rebuilt = untrusted(kubectl, tenant)
    assert rebuilt["status"]["phase"] == "Active" and "expiredAt" not in rebuilt["status"]
    assert eventually(lambda: warned(kubectl, tenant), what="the StatusUntrusted Warning")


def test_forged_purging_scope_of_foreign_volumes_touches_none(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant, foreign, volume = f"t-{unique}", f"infra-{unique}", f"pv-{unique}"
    kubectl.run("create", "namespace", foreign)
    try:
        static_volume(kubectl, foreign, volume)
        uid = (kubectl.get("pv", volume) or {})["metadata"]["uid"]
        objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "1h"})
        objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "state": "Closed"})
        phase_of(kubectl, tenant, "Expired")
        scope = {
            "namespaces": [{"name": foreign, "uid": "x"}],
            "volumes": [{"name": volume, "uid": uid, "static": True}],
        }
        forge(kubectl, tenant, {"phase": "Purging", "purgeStartedAt": OLD, "purge": scope})

        def intact() -> bool:
            pv = kubectl.get("pv", volume)
            return pv is not None and pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"

        still(intact)
        assert untrusted(kubectl, tenant)["status"]["phase"] == "Expired"
        assert kubectl.get("namespace", foreign) is not None
    finally:
        kubectl.run("delete", "namespace", foreign, "--wait=false")
        kubectl.run("delete", "pv", volume, "--wait=false", "--ignore-not-found")


def test_forged_zero_retention_does_not_cut_the_window(kubectl: Kubectl, objects: Objects, unique: str) -> None:
    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    sealed = phase_of(kubectl, tenant, "Expired")["status"]["purgeAfter"]
    forge(kubectl, tenant, {"windows": {"expiredDataRetention": "0s"}, "purgeAfter": OLD})
    still(lambda: kubectl.get("namespace", namespace) is not None)
    rebuilt = untrusted(kubectl, tenant)["status"]
    assert rebuilt["phase"] == "Expired"
    assert rebuilt["windows"]["expiredDataRetention"] == "1h"
    assert rebuilt["purgeAfter"] >= sealed  # RFC 3339 UTC strings order as times


@pytest.mark.parametrize("phase", ["Purged", "Purging"])
def test_forged_end_without_a_purge_keeps_the_finalizer_and_does_not_crash(
    kubectl: Kubectl, objects: Objects, unique: str, phase: str, operator: Any
) -> None:
    tenant, namespace = f"t-{unique}", f"ns-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "1h"})
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "namespaces": [namespace]})
    owned(kubectl, tenant)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    phase_of(kubectl, tenant, "Expired")
    forge(kubectl, tenant, {"phase": phase, "purgedAt": OLD, "purgeStartedAt": OLD, "purge": None})
    still(lambda: "retention.tenure.dev/purge" in str((kubectl.get("tenant", tenant) or {})["metadata"]))
    assert kubectl.get("namespace", namespace) is not None
    assert "AssertionError" not in operator.log.read_text()
    assert untrusted(kubectl, tenant)["status"]["phase"] == "Expired"


def test_another_tenants_forged_purged_does_not_release_shared_rows(
    kubectl: Kubectl,
    objects: Objects,
    secret: str,  # noqa: F811 (the fixture)
    litellm_db: str,
    unique: str,
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        for team in acme.teams:
            token = next(t for t, owner in acme.tokens.items() if owner == team)
            spend_log(conn, acme, datetime.now(UTC), token=token)
    closing, keeping = f"team-{unique}", f"org-{unique}"
    store = purging_store(kubectl, objects, secret, unique)
    claiming(objects, keeping, unique, store, acme.organization)
    claiming(objects, closing, unique, store, acme.teams[0])
    phase_of(kubectl, keeping, "Active")
    forge(kubectl, keeping, {"phase": "Purged", "purgedAt": OLD})
    kubectl.patch("tenant", closing, {"spec": {"state": "Closed"}})
    waiting = store_state(kubectl, closing, "Waiting")
    assert keeping in waiting["message"] and acme.organization in waiting["message"]
    with psycopg.connect(litellm_db) as conn:
        row = conn.execute('SELECT count(*) FROM "LiteLLM_SpendLogs" WHERE team_id = %s', [acme.teams[0]]).fetchone()
    assert row is not None and row[0] == 1
