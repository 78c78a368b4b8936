"""The operator's --dry-run on the real control plane and a real PostgreSQL: the lifecycle runs and says what it
would do, in status and Events, while no namespace, volume or row is deleted and nothing is redacted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import Objects, Operator
from tests.e2e.test_datastores import datastore, ready, rows, secret  # noqa: F401  (secret is a fixture)
from tests.support.kube import Kubectl, condition, eventually
from tests.support.litellm import create_account, spend_log


@pytest.fixture(scope="module")
def dry_operator(operator_kubeconfig: Path) -> Iterator[Operator]:
    running = Operator(operator_kubeconfig, "dry-run", env={"TENURE_DRY_RUN": "true"})
    running.start()
    yield running
    running.stop()


def content(uri: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri) as conn:
        return conn.execute('SELECT request_id, messages, response FROM "LiteLLM_SpendLogs" ORDER BY 1').fetchall()


def test_dry_run_reports_the_purge_and_the_sweep_and_changes_nothing(
    kubectl: Kubectl,
    objects: Objects,
    dry_operator: Operator,
    secret: str,  # noqa: F811  (the fixture imported above)
    litellm_db: str,
    unique: str,
) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        closing, staying = create_account(conn, "closing"), create_account(conn, "staying")
        for account in (closing, staying):
            for age in (1, 10, 40):
                spend_log(conn, account, now - timedelta(days=age))
    before = content(litellm_db)
    store = f"ds-{unique}"
    objects.create(
        "RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "2s", "dataClassRetention": {"prompts": "7d"}}
    )
    closing_name, staying_name = f"closing-{unique}", f"staying-{unique}"
    objects.create(
        "Tenant",
        closing_name,
        {"retentionPolicy": f"p-{unique}", "namespaces": [f"ns-{unique}"], "dataKeys": {store: [closing.organization]}},
    )
    objects.create(
        "Tenant", staying_name, {"retentionPolicy": f"p-{unique}", "dataKeys": {store: [staying.organization]}}
    )
    datastore(objects, store, secret)
    ready(kubectl, store)
    namespace = eventually(lambda: kubectl.get("namespace", f"ns-{unique}"), what="the tenant's namespace")
    kubectl.patch("tenant", closing_name, {"spec": {"state": "Closed"}})

    def reported() -> dict[str, Any] | None:
        found = condition(kubectl.get("tenant", closing_name), "DryRun")
        return found if found and "rows in DataStore" in found["message"] else None

    dry = eventually(reported, timeout=60, what="the DryRun condition to name every withheld deletion")
    assert dry["status"] == "True" and dry["reason"] == "Withheld"
    assert f"delete namespace ns-{unique}" in dry["message"]
    assert (
        f"delete the tenant's rows in DataStore {store} (organization {closing.organization}; team " in (dry["message"])
    )
    tenant = kubectl.get("tenant", closing_name) or {}
    assert tenant["status"]["phase"] == "Purging"  # the lifecycle itself runs
    recorded = {s["name"]: s for s in tenant["status"]["purge"]["stores"]}
    assert recorded[store]["state"] == "Resolved" and recorded[store]["rowsDeleted"] == 0

    def swept() -> dict[str, Any] | None:
        return ((kubectl.get("datastore", store) or {}).get("status") or {}).get("lastSweep")

    sweep = eventually(swept, timeout=60, what="the dry-run sweep")
    assert sweep["dryRun"] is True and sweep["tenants"] >= 1 and not sweep.get("rowsDeleted")
    events = kubectl.run(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={closing_name},reason=DryRun",
        "-o", "jsonpath={.items[*].message}",
    ).stdout  # fmt: skip
    assert f"delete namespace ns-{unique}" in events
    # Several passes later, still nothing changed anywhere.
    eventually(lambda: "DRY RUN" in dry_operator.log.read_text(), what="the operator to say it runs dry")
    live = kubectl.get("namespace", f"ns-{unique}") or {}
    assert live["metadata"]["uid"] == namespace["metadata"]["uid"] and "deletionTimestamp" not in live["metadata"]
    assert content(litellm_db) == before  # no row deleted, no prompt redacted
    assert rows(litellm_db, closing) > 0
