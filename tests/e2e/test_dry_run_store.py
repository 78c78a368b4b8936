"""A DataStore's spec.dryRun under a normal operator: the tenant's namespace is purged, its rows in that store
stay and the tenant says they would be deleted; the store's sweep is only reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import Objects
from tests.e2e.test_datastores import NAMESPACE, ready, rows, secret  # noqa: F401  (secret is a fixture)
from tests.e2e.test_dry_run import content
from tests.support.kube import Kubectl, condition, eventually
from tests.support.litellm import create_account, spend_log

pytestmark = pytest.mark.usefixtures("operator")


def test_a_store_in_dry_run_keeps_its_rows_while_the_rest_of_the_purge_acts(
    kubectl: Kubectl,
    objects: Objects,
    secret: str,  # noqa: F811  (the fixture imported above)
    litellm_db: str,
    unique: str,
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        account = create_account(conn, "watched")
        for age in (1, 10, 40):
            spend_log(conn, account, datetime.now(UTC) - timedelta(days=age))
    before = content(litellm_db)
    store, tenant = f"ds-{unique}", f"watched-{unique}"
    spec = {"connectionSecretRef": {"namespace": NAMESPACE, "name": secret}, "preset": "litellm"}
    objects.create("DataStore", store, {"postgres": spec, "sweepInterval": "1h", "dryRun": True})
    ready(kubectl, store)
    objects.create(
        "RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "2s", "dataClassRetention": {"prompts": "7d"}}
    )
    objects.create(
        "Tenant",
        tenant,
        {"retentionPolicy": f"p-{unique}", "namespaces": [f"ns-{unique}"], "dataKeys": {store: [account.organization]}},
    )
    eventually(lambda: kubectl.get("namespace", f"ns-{unique}"), what="the tenant's namespace")
    sweep = eventually(
        lambda: ((kubectl.get("datastore", store) or {}).get("status") or {}).get("lastSweep"),
        timeout=60,
        what="the store's first sweep",
    )
    assert sweep["dryRun"] is True and not sweep.get("rowsDeleted") and not sweep.get("rowsRedacted")
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})

    def reported() -> dict[str, Any] | None:
        found = condition(kubectl.get("tenant", tenant), "DryRun")
        return found if found and "rows in DataStore" in found["message"] else None

    dry = eventually(reported, timeout=60, what="the DryRun condition")
    assert "namespace" not in dry["message"]  # only the store is in dry run
    eventually(lambda: kubectl.get("namespace", f"ns-{unique}") is None, timeout=60, what="the namespace purged")
    assert (kubectl.get("tenant", tenant) or {})["status"]["phase"] == "Purging"  # its rows are not proven gone
    assert content(litellm_db) == before and rows(litellm_db, account) > 0
