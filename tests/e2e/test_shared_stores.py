"""No DataStore can be turned against another tenant (issue 24), end to end: a real control plane, the operator,
LiteLLM's real schema on a real PostgreSQL.

* Two DataStores on one database (another Secret, another address): a tenant listing Active acme's organization
  in the second store deletes and blocks none of acme's rows, whichever store was created first.
* A key with a NUL is refused by the API server, naming the field; one stored before the CRD refused it (an
  upgrade) does not stop the gateway from keeping a suspended tenant out, and is reported on its tenant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.conftest import Objects
from tests.e2e.test_datastores import NAMESPACE, datastore, ready, rows
from tests.support.kube import REPO, Kubectl, condition, eventually
from tests.support.litellm import Account, create_account, spend_log
from tests.support.tenants import phase_of

pytestmark = pytest.mark.usefixtures("operator")


def secret(kubectl: Kubectl, name: str, uri: str) -> None:
    if kubectl.get("namespace", NAMESPACE) is None:
        kubectl.run("create", "namespace", NAMESPACE)
    kubectl.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "stringData": {"uri": uri},
        }
    )


@pytest.fixture
def two_secrets(kubectl: Kubectl, litellm_db: str, unique: str) -> Iterator[tuple[str, str]]:
    """Two Secrets reaching the same database: one by 127.0.0.1, the other by localhost."""
    names = (f"first-{unique}", f"second-{unique}")
    secret(kubectl, names[0], litellm_db)
    secret(kubectl, names[1], litellm_db.replace("127.0.0.1", "localhost"))
    yield names
    for name in names:
        kubectl.run("delete", "secret", name, "-n", NAMESPACE, "--ignore-not-found")


def gateway_flags(uri: str) -> dict[str, bool | None]:
    with psycopg.connect(uri) as conn:
        keys = conn.execute('SELECT token, blocked FROM "LiteLLM_VerificationToken"').fetchall()
        teams = conn.execute('SELECT team_id, blocked FROM "LiteLLM_TeamTable"').fetchall()
    return dict(keys + teams)


def gateway_condition(kubectl: Kubectl, store: str) -> dict[str, str]:
    return condition(kubectl.get("datastore", store), "GatewayBlocked") or {}


@dataclass
class Setup:
    """Active acme's account claimed in the first store; evil lists its organization in the second."""

    acme: Account
    evil_account: Account
    acme_tenant: str
    evil: str
    store: str
    second: str


def two_stores_one_database(
    kubectl: Kubectl, objects: Objects, secrets: tuple[str, str], uri: str, unique: str, first: str
) -> Setup:
    with psycopg.connect(uri, autocommit=True) as conn:
        acme, evil_account = create_account(conn, "acme"), create_account(conn, "evil")
        for _ in range(20):
            spend_log(conn, acme, datetime.now(UTC))
    stores = {"litellm": (f"litellm-{unique}", secrets[0]), "ds-2": (f"ds2-{unique}", secrets[1])}
    for which in (first, *(s for s in stores if s != first)):  # the two orders of creation
        datastore(objects, *stores[which])
        ready(kubectl, stores[which][0])
    store, second = stores["litellm"][0], stores["ds-2"][0]
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "2s", "suspensionGracePeriod": "1h"})
    acme_tenant, evil = f"acme-{unique}", f"evil-{unique}"
    objects.create("Tenant", acme_tenant, {"retentionPolicy": f"p-{unique}", "dataKeys": {store: [acme.organization]}})
    objects.create(
        "Tenant",
        evil,
        {
            "retentionPolicy": f"p-{unique}",
            "dataKeys": {store: [evil_account.organization], second: [acme.organization]},
        },
    )
    phase_of(kubectl, acme_tenant, "Active")
    phase_of(kubectl, evil, "Active")
    return Setup(acme, evil_account, acme_tenant, evil, store, second)


@pytest.mark.parametrize("first", ["litellm", "ds-2"])
def test_a_second_store_on_the_same_database_never_blocks_an_active_tenants_rows(
    kubectl: Kubectl, objects: Objects, two_secrets: tuple[str, str], litellm_db: str, unique: str, first: str
) -> None:
    world = two_stores_one_database(kubectl, objects, two_secrets, litellm_db, unique, first)
    acme_rows = (*world.acme.teams, *world.acme.tokens)
    before = gateway_flags(litellm_db)

    # evil suspended: its own rows are blocked, acme's never (by either store, in either order of checks).
    kubectl.patch("tenant", world.evil, {"spec": {"state": "Suspended", "suspensionReason": "NonPayment"}})
    eventually(
        lambda: all(gateway_flags(litellm_db)[row] for row in (*world.evil_account.teams, *world.evil_account.tokens)),
        timeout=60,
        what="evil's own teams and keys blocked",
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # each store's check, in turn: acme's rows never change
        now = gateway_flags(litellm_db)
        assert {row: now[row] for row in acme_rows} == {row: before[row] for row in acme_rows}
        time.sleep(0.5)
    for name in (world.store, world.second):  # both stores' conditions count acme's rows as shared, left open
        eventually(
            lambda n=name: (
                "shared with a tenant that is not inaccessible" in gateway_condition(kubectl, n).get("message", "")
            ),
            timeout=90,
            what=f"{name} leaving acme's rows open as shared",
        )
    now = gateway_flags(litellm_db)
    assert {row: now[row] for row in acme_rows} == {row: before[row] for row in acme_rows}


@pytest.mark.parametrize("first", ["litellm", "ds-2"])
def test_a_second_store_on_the_same_database_never_purges_an_active_tenants_rows(
    kubectl: Kubectl, objects: Objects, two_secrets: tuple[str, str], litellm_db: str, unique: str, first: str
) -> None:
    world = two_stores_one_database(kubectl, objects, two_secrets, litellm_db, unique, first)
    acme_rows = rows(litellm_db, world.acme)

    # evil closed: its purge waits in the second store naming acme, and deletes none of acme's rows.
    kubectl.patch("tenant", world.evil, {"spec": {"state": "Closed"}})

    def waiting_or_purged() -> dict[str, Any] | None:
        tenant = kubectl.get("tenant", world.evil) or {}
        found = ((tenant.get("status") or {}).get("purge") or {}).get("stores") or []
        waits = next((s for s in found if s["name"] == world.second and s["state"] == "Waiting"), None)
        return waits or ({"purged": True} if (tenant.get("status") or {}).get("phase") == "Purged" else None)

    waits = eventually(waiting_or_purged, timeout=90, what="evil's purge of the second store waiting")
    assert rows(litellm_db, world.acme) == acme_rows  # nothing of acme's deleted
    assert world.acme_tenant in str(waits.get("message")) and world.acme.organization in str(waits["message"]), waits
    time.sleep(5)  # and it keeps waiting
    assert rows(litellm_db, world.acme) == acme_rows
    assert phase_of(kubectl, world.evil, "Purging")


def test_a_nul_key_is_refused_and_one_stored_earlier_does_not_stop_keeping_a_suspended_tenant_out(
    kubectl: Kubectl, objects: Objects, two_secrets: tuple[str, str], litellm_db: str, unique: str
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
    store = f"ds-{unique}"
    datastore(objects, store, two_secrets[0])
    ready(kubectl, store)
    objects.create("RetentionPolicy", f"p-{unique}", {"suspensionGracePeriod": "1h"})
    bad = {
        "apiVersion": "retention.tenure.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": f"nul-{unique}"},
        "spec": {"retentionPolicy": f"p-{unique}", "dataKeys": {store: ["org-\u0000x", globex.organization]}},
    }
    refused = kubectl.create(bad, check=False)
    assert refused.returncode != 0 and f"spec.dataKeys.{store}[0]" in refused.stderr, refused.stderr

    # The same key stored before the CRD refused it (an operator upgrade): the pattern off for a moment.
    path = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/dataKeys/additionalProperties/items"
    crd = "tenants.retention.tenure.dev"
    kubectl.run("patch", "crd", crd, "--type=json", "-p", json.dumps([{"op": "remove", "path": f"{path}/pattern"}]))
    try:
        eventually(
            lambda: kubectl.create(bad, check=False).returncode == 0, timeout=30, what="the CRD without the pattern"
        )
        objects.created.append(("Tenant", f"nul-{unique}"))
    finally:
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    objects.create(
        "Tenant", f"acme-{unique}", {"retentionPolicy": f"p-{unique}", "dataKeys": {store: [acme.organization]}}
    )
    phase_of(kubectl, f"acme-{unique}", "Active")

    kubectl.patch("tenant", f"acme-{unique}", {"spec": {"state": "Suspended", "suspensionReason": "NonPayment"}})
    eventually(
        lambda: all(gateway_flags(litellm_db)[row] for row in (*acme.teams, *acme.tokens)),
        timeout=60,
        what="acme's teams and keys blocked beside the bad key",
    )

    def counted() -> dict[str, str] | None:
        found = gateway_condition(kubectl, store)
        return found if "claims could not be used" in found.get("message", "") else None

    found = eventually(counted, timeout=60, what="GatewayBlocked counting the bad claim")
    assert (found["status"], found["reason"]) == ("True", "Enforced"), found
    assert "1 tenants' claims could not be used" in found["message"]
    assert not any(gateway_flags(litellm_db)[row] for row in (*globex.teams, *globex.tokens))

    def event() -> str | None:
        listed = kubectl.run(
            "get", "events", "-n", "default", "--field-selector", f"involvedObject.name=nul-{unique}", "-o", "json"
        ).stdout
        return next(
            (e["message"] for e in json.loads(listed)["items"] if e["reason"] == "DataKeysUnusable"),
            None,
        )

    message = eventually(event, timeout=60, what="the DataKeysUnusable Event on the bad tenant")
    assert "'org-\\x00x'" in message, message
