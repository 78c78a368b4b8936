"""Which DataStores a purge waits for, and a tenant whose keys are too many for its status, end to end."""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.conftest import Objects, Operator
from tests.e2e.test_datastores import (
    NAMESPACE,
    claiming,
    datastore,
    datastore_object,
    purging_store,
    ready,
    rows,
    secret,
)
from tests.support.kube import Kubectl, condition, eventually
from tests.support.litellm import create_account, spend_log
from tests.support.tenants import phase_of

pytestmark = pytest.mark.usefixtures("operator")
__all__ = ["secret"]  # the fixture, shared with test_datastores


def stores_of(tenant: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {store["name"]: store for store in tenant["status"]["purge"]["stores"]}


def broken_store(kubectl: Kubectl, objects: Objects, unique: str) -> str:
    """A DataStore whose Secret does not exist: never Ready, and every purge of it waits."""
    name = f"broken-{unique}"
    datastore(objects, name, f"missing-{unique}")
    ready(kubectl, name, "False")
    return name


def test_a_broken_store_where_the_tenant_has_no_keys_does_not_hold_its_purge(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        spend_log(conn, acme, datetime.now(UTC))
    store = purging_store(kubectl, objects, secret, unique)
    broken = broken_store(kubectl, objects, unique)
    tenant = f"t-{unique}"
    objects.create(
        "Tenant", tenant, {"retentionPolicy": f"p-{unique}", "dataKeys": {store: [acme.organization], broken: []}}
    )
    phase_of(kubectl, tenant, "Active")
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, tenant, "Purged", timeout=90)
    stores = stores_of(purged)
    assert stores[broken]["state"] == "NoKeys" and stores[store]["state"] == "Done"
    assert rows(litellm_db, acme) == 0
    message = condition(purged, "Purged")["message"]  # type: ignore[index]
    assert f"DataStore {broken}: spec.dataKeys lists no key for this store" in message


def test_a_deleted_datastore_releases_the_purge_and_names_the_keys_not_purged(
    kubectl: Kubectl, objects: Objects, secret: str, unique: str
) -> None:
    store = purging_store(kubectl, objects, secret, unique)
    broken = broken_store(kubectl, objects, unique)
    tenant = f"t-{unique}"
    objects.create(
        "Tenant", tenant, {"retentionPolicy": f"p-{unique}", "dataKeys": {store: ["org-x"], broken: ["org-7f3c"]}}
    )
    phase_of(kubectl, tenant, "Active")
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})

    def waiting_for_broken() -> dict[str, Any] | None:
        found = kubectl.get("tenant", tenant) or {}
        purge = (found.get("status") or {}).get("purge") or {}
        states = {s["name"]: s["state"] for s in purge.get("stores") or []}
        return found if states.get(store) == "Done" and states.get(broken) == "Waiting" else None

    eventually(waiting_for_broken, timeout=60, what="the purge to wait only for the broken store")
    phase_of(kubectl, tenant, "Purging")
    kubectl.run("delete", "datastore", broken)
    purged = phase_of(kubectl, tenant, "Purged", timeout=60)
    assert stores_of(purged)[broken]["state"] == "NotPurged"
    message = condition(purged, "Purged")["message"]  # type: ignore[index]
    assert "rows with the tenant's keys there were NOT purged: org-7f3c" in message


def test_a_tenant_with_thousands_of_long_keys_is_purged_and_its_status_stays_small(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    """64 keys of 256 characters in spec.dataKeys (the most the API server accepts) resolving to 25,000 virtual keys:
    listed in status they would be 1.6 MB, more than etcd stores, and the purge would never end."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=1, keys_per_team=0)
        conn.execute(
            'INSERT INTO "LiteLLM_VerificationToken" (token, team_id, organization_id) '
            "SELECT md5(g::text || %s) || md5(%s || g::text), %s, %s FROM generate_series(1, 25000) g",
            [unique, unique, acme.teams[0], acme.organization],
        )
        globex = create_account(conn, "globex")
    long_keys = [acme.organization, *(f"org-{i:03d}-{unique}-".ljust(256, "x") for i in range(63))]
    store = purging_store(kubectl, objects, secret, unique)
    tenant = f"t-{unique}"
    claiming(objects, tenant, unique, store, *long_keys)
    phase_of(kubectl, tenant, "Active")
    before = rows(litellm_db, globex)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, tenant, "Purged", timeout=180)

    record = stores_of(purged)[store]
    assert record["state"] == "Done" and "keys" not in record
    assert record["keySet"]["count"] == 64 + 1 + 63 + 25_000  # organizations, teams (the unknown ids as both), tokens
    assert len(record["requested"]) == 16 and record["requestedCount"] == 64
    assert len(json.dumps(purged["status"])) < 64_000
    with psycopg.connect(litellm_db) as conn:
        left = conn.execute(
            'SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE organization_id = %s', [acme.organization]
        ).fetchone()
    assert left == (0,) and rows(litellm_db, acme) == 0 and rows(litellm_db, globex) == before
    # The whole set is in ConfigMaps the Tenant owns, and matches the digest status recorded.
    blob = b""
    for part in range(record["keySet"]["parts"]):
        name = f"tenure-keys-{purged['metadata']['uid']}-{record['keySet']['digest'][:16]}-{part}"
        found = kubectl.get("configmap", name, NAMESPACE)
        assert found is not None, name
        assert found["metadata"]["ownerReferences"][0]["uid"] == purged["metadata"]["uid"]
        blob += base64.b64decode(found["binaryData"]["keys.json.gz"])
    assert len(json.loads(gzip.decompress(blob))["token"]) == 25_000


def last_sweep(kubectl: Kubectl, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = (kubectl.get("datastore", name) or {}).get("status") or {}
        sweep = found.get("lastSweep") or {}
        return found if sweep.get("finishedAt") else None

    return eventually(probe, timeout=60, what=f"a sweep of DataStore {name}")


def test_a_store_swept_within_its_interval_is_not_swept_again_after_a_restart(
    kubectl: Kubectl, objects: Objects, secret: str, unique: str, operator: Operator
) -> None:
    store = f"ds-{unique}"
    datastore(objects, store, secret)  # sweepInterval: 1h
    first = last_sweep(kubectl, store)
    starts = operator.log.read_text().count("tenure started")
    operator.stop()
    operator.start()
    eventually(lambda: operator.log.read_text().count("tenure started") > starts, what="the operator to start again")
    time.sleep(8)  # the restarted operator checks every store at once
    again = kubectl.get("datastore", store)
    assert again is not None and again["status"]["lastSweep"] == first["lastSweep"]
    assert again["status"]["nextSweepAt"] > first["lastSweep"]["startedAt"]
    scheduled = condition(again, "SweepScheduled")
    assert scheduled is not None and scheduled["reason"] == "Interval", scheduled


def test_a_schedule_that_is_not_a_cron_expression_is_rejected_or_reported(
    kubectl: Kubectl, objects: Objects, secret: str, unique: str
) -> None:
    refused = datastore_object(f"cron-{unique}", sweepSchedule="every night")
    result = kubectl.create(refused, check=False)
    assert result.returncode != 0 and "spec.sweepSchedule" in result.stderr, result.stderr
    store = f"ds-{unique}"
    postgres = {"connectionSecretRef": {"namespace": NAMESPACE, "name": secret}, "preset": "litellm"}
    objects.create("DataStore", store, {"postgres": postgres, "sweepSchedule": "61 2 * * *"})

    def reported() -> dict[str, Any] | None:
        found = condition(kubectl.get("datastore", store), "SweepScheduled")
        return found if found and found["status"] == "False" else None

    found = eventually(reported, timeout=60, what="the SweepScheduled condition")
    assert found["reason"] == "InvalidSchedule" and "'61 2 * * *' is not a cron expression" in found["message"]
    status = kubectl.get("datastore", store)["status"]  # type: ignore[index]
    assert "lastSweep" not in status and condition(kubectl.get("datastore", store), "Ready")["status"] == "True"  # type: ignore[index]
