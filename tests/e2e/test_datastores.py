"""DataStores end to end: a real control plane, a real PostgreSQL with LiteLLM's schema, the operator."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import Objects, Operator
from tests.support.kube import Kubectl, condition, eventually
from tests.support.litellm import Account, create_account, partition_spend_logs, spend_log
from tests.support.postgres import Postgres
from tests.support.tenants import phase_of

pytestmark = pytest.mark.usefixtures("operator")
NAMESPACE = "tenure-system"


@pytest.fixture
def secret(kubectl: Kubectl, litellm_db: str, unique: str) -> Iterator[str]:
    """A Secret holding the LiteLLM database's URI, where the operator may read it."""
    if kubectl.get("namespace", NAMESPACE) is None:
        kubectl.run("create", "namespace", NAMESPACE)
    name = f"litellm-{unique}"
    kubectl.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"uri": base64.b64encode(litellm_db.encode()).decode()},
        }
    )
    yield name
    kubectl.run("delete", "secret", name, "-n", NAMESPACE, "--ignore-not-found")


def datastore(objects: Objects, name: str, secret: str, **postgres: Any) -> None:
    spec = {"connectionSecretRef": {"namespace": NAMESPACE, "name": secret}, "preset": "litellm", **postgres}
    objects.create("DataStore", name, {"postgres": spec, "sweepInterval": "1h"})


def purging_store(kubectl: Kubectl, objects: Objects, secret: str, unique: str, **postgres: Any) -> str:
    """A Ready DataStore ds-<unique>, and the policy p-<unique> that purges a tenant 2 s after closure."""
    store = f"ds-{unique}"
    datastore(objects, store, secret, **postgres)
    ready(kubectl, store)
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "2s"})
    return store


def claiming(objects: Objects, tenant: str, unique: str, store: str, *keys: str) -> None:
    """A Tenant under policy p-<unique> whose keys in the store are ``keys``."""
    objects.create("Tenant", tenant, {"retentionPolicy": f"p-{unique}", "dataKeys": {store: list(keys)}})


def ready(kubectl: Kubectl, name: str, wanted: str = "True") -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = condition(kubectl.get("datastore", name), "Ready")
        return found if found and found["status"] == wanted else None

    return eventually(probe, timeout=60, what=f"DataStore {name} Ready={wanted}")


def rows(uri: str, account: Account) -> int:
    with psycopg.connect(uri) as conn:
        row = conn.execute(
            'SELECT (SELECT count(*) FROM "LiteLLM_SpendLogs" WHERE organization_id = %s OR team_id = ANY(%s)) + '
            '(SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE organization_id = %s) + '
            '(SELECT count(*) FROM "LiteLLM_TeamTable" WHERE organization_id = %s)',
            [account.organization, account.teams, account.organization, account.organization],
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_ready_names_residual_copies(kubectl: Kubectl, objects: Objects, secret: str, unique: str) -> None:
    datastore(objects, f"ds-{unique}", secret)
    assert "every mapped table and column exists" in ready(kubectl, f"ds-{unique}")["message"]
    residual = kubectl.get("datastore", f"ds-{unique}")["status"]["residual"]  # type: ignore[index]
    assert any(r.startswith("LiteLLM_ErrorLogs") for r in residual)
    assert any(r.startswith("LiteLLM_AuditLog") for r in residual)


def test_missing_table_and_column_are_named(kubectl: Kubectl, objects: Objects, secret: str, unique: str) -> None:
    tables = [
        {"table": "LiteLLM_SpendLogs", "tenantColumn": "tenant", "dataClass": "usage"},
        {"table": "Nope", "tenantColumn": "team_id", "dataClass": "logs"},
    ]
    datastore(objects, f"ds-{unique}", secret, tables=tables)
    message = ready(kubectl, f"ds-{unique}", "False")["message"]
    assert "column public.LiteLLM_SpendLogs.tenant does not exist" in message
    assert "table public.Nope does not exist" in message


def test_unreachable_database_is_reported_without_the_uri(
    kubectl: Kubectl, objects: Objects, unique: str, operator: Operator
) -> None:
    if kubectl.get("namespace", NAMESPACE) is None:
        kubectl.run("create", "namespace", NAMESPACE)
    password = f"hunter-{unique}"
    uri = f"postgresql://tenure:{password}@127.0.0.1:1/nowhere"
    kubectl.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"down-{unique}", "namespace": NAMESPACE},
            "stringData": {"uri": uri},
        }
    )
    try:
        datastore(objects, f"ds-{unique}", f"down-{unique}")
        found = ready(kubectl, f"ds-{unique}", "False")
        assert found["reason"] == "Unavailable" and "unreachable" in found["message"]
        everything = kubectl.run("get", "datastore", f"ds-{unique}", "-o", "yaml").stdout
        everything += kubectl.run("get", "events", "-A").stdout + operator.log.read_text()
        # Secret data travels base64-encoded, so a logged response body would hide the password from a plain search.
        assert password not in everything and base64.b64encode(uri.encode()).decode() not in everything
    finally:
        kubectl.run("delete", "secret", f"down-{unique}", "-n", NAMESPACE)


def test_sweep_applies_class_windows_and_skips_held_tenants(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, held = create_account(conn, "acme"), create_account(conn, "held")
        logs = {
            (a.organization, age): spend_log(conn, a, now - timedelta(days=age))
            for a in (acme, held)
            for age in (1, 10, 40)
        }
    windows = {"dataClassRetention": {"usage": "30d", "prompts": "7d", "responses": "14d"}}
    objects.create("RetentionPolicy", f"p-{unique}", windows)
    store = f"ds-{unique}"
    for name, account in (("acme", acme), ("held", held)):
        objects.create(
            "Tenant",
            f"{name}-{unique}",
            {"retentionPolicy": f"p-{unique}", "dataKeys": {store: [account.organization]}},
        )
    objects.create("LegalHold", f"h-{unique}", {"tenants": [f"held-{unique}"], "reason": "case 9"})
    datastore(objects, store, secret)

    def swept() -> dict[str, Any] | None:
        obj = kubectl.get("datastore", store)
        return ((obj or {}).get("status") or {}).get("lastSweep", {}).get("finishedAt") and obj

    sweep = eventually(swept, timeout=60, what="the first sweep")["status"]["lastSweep"]
    assert sweep["rowsDeleted"] == 1 and sweep["rowsRedacted"] == 1
    with psycopg.connect(litellm_db) as conn:

        def content(account: Account, age: int) -> tuple[Any, ...] | None:
            return conn.execute(
                'SELECT messages IS NULL, response IS NULL FROM "LiteLLM_SpendLogs" WHERE request_id = %s',
                [logs[(account.organization, age)]],
            ).fetchone()

        assert content(acme, 40) is None
        assert content(acme, 10) == (True, False)
        assert content(acme, 1) == (False, False)
        assert [content(held, age) for age in (1, 10, 40)] == [(False, False)] * 3


def test_closed_tenant_rows_are_purged_with_keys_recorded_first(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        for account in (acme, globex):
            for day in range(20):
                spend_log(conn, account, datetime.now(UTC) - timedelta(days=day))
    tenant = f"t-{unique}"
    store = purging_store(kubectl, objects, secret, unique, batchSize=7)
    claiming(objects, tenant, unique, store, acme.organization)
    phase_of(kubectl, tenant, "Active")
    before = rows(litellm_db, globex)
    kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
    purged = phase_of(kubectl, tenant, "Purged", timeout=90)

    (record,) = purged["status"]["purge"]["stores"]
    assert record["state"] == "Done" and record["rowsRemaining"] == 0
    assert set(record["keys"]["team"]) >= set(acme.teams)
    assert set(record["keys"]["token"]) == set(acme.tokens)
    assert record["rowsDeleted"] >= 20
    assert rows(litellm_db, acme) == 0
    assert rows(litellm_db, globex) == before
    message = condition(purged, "Purged")["message"]  # type: ignore[index]
    assert f"DataStore {store}" in message and "LiteLLM_ErrorLogs" in message


@contextlib.contextmanager
def table_locked(uri: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold an exclusive lock on the spend logs, so a purge stops mid-way until it is released."""
    conn = psycopg.connect(uri)
    conn.execute('LOCK TABLE "LiteLLM_SpendLogs" IN ACCESS EXCLUSIVE MODE')
    try:
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


def closed_tenant_mid_purge(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> tuple[str, Account]:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        for day in range(10):
            spend_log(conn, acme, datetime.now(UTC) - timedelta(days=day))
    tenant = f"t-{unique}"
    store = purging_store(kubectl, objects, secret, unique)
    claiming(objects, tenant, unique, store, acme.organization)
    phase_of(kubectl, tenant, "Active")
    return tenant, acme


def store_state(kubectl: Kubectl, tenant: str, wanted: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        stores = (((kubectl.get("tenant", tenant) or {}).get("status") or {}).get("purge") or {}).get("stores") or []
        return stores[0] if stores and stores[0]["state"] == wanted else None

    return eventually(probe, timeout=60, what=f"the store purge to be {wanted}")


def test_operator_killed_mid_purge_finishes_after_restart(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str, operator: Operator
) -> None:
    tenant, acme = closed_tenant_mid_purge(kubectl, objects, secret, litellm_db, unique)
    with table_locked(litellm_db):
        kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
        store_state(kubectl, tenant, "Deleting")  # keys recorded; blocked on the lock
        operator.kill()
    operator.start()
    phase_of(kubectl, tenant, "Purged", timeout=90)
    assert rows(litellm_db, acme) == 0


def test_database_restart_mid_purge_is_survived(
    kubectl: Kubectl,
    objects: Objects,
    secret: str,
    litellm_db: str,
    unique: str,
    postgres: Postgres,
    operator: Operator,
) -> None:
    tenant, acme = closed_tenant_mid_purge(kubectl, objects, secret, litellm_db, unique)
    with table_locked(litellm_db):
        kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
        store_state(kubectl, tenant, "Deleting")
        postgres.restart()  # kills every session, the purge's included
    eventually(
        lambda: f"purge of tenant {tenant} from ds-{unique}: database unreachable" in operator.log.read_text(),
        what="the purge to see the outage and retry",
    )
    purged = phase_of(kubectl, tenant, "Purged", timeout=120)
    assert purged["status"]["purge"]["stores"][0]["rowsRemaining"] == 0
    assert rows(litellm_db, acme) == 0


def test_legal_hold_pauses_a_store_purge(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    tenant, acme = closed_tenant_mid_purge(kubectl, objects, secret, litellm_db, unique)
    with table_locked(litellm_db):
        kubectl.patch("tenant", tenant, {"spec": {"state": "Closed"}})
        store_state(kubectl, tenant, "Deleting")
        objects.create("LegalHold", f"h-{unique}", {"tenants": [tenant], "reason": "subpoena"})
        eventually(lambda: condition(kubectl.get("tenant", tenant), "LegalHold")["status"] == "True", what="held")  # type: ignore[index]
    store_state(kubectl, tenant, "Paused")
    assert rows(litellm_db, acme) > 0  # the hold stopped the purge at the next batch
    kubectl.delete("legalhold", f"h-{unique}")
    phase_of(kubectl, tenant, "Purged", timeout=90)
    assert rows(litellm_db, acme) == 0


def test_keys_another_tenant_claims_are_not_purged_until_the_claim_is_fixed(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
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

    def logs_of(team: str) -> int:
        with psycopg.connect(litellm_db) as conn:
            row = conn.execute('SELECT count(*) FROM "LiteLLM_SpendLogs" WHERE team_id = %s', [team]).fetchone()
        return int(row[0]) if row else 0

    kubectl.patch("tenant", closing, {"spec": {"state": "Closed"}})
    waiting = store_state(kubectl, closing, "Waiting")
    assert keeping in waiting["message"] and acme.organization in waiting["message"]
    assert logs_of(acme.teams[0]) == 1  # the organization's tenant claims that team's rows too: nothing deleted

    kubectl.patch("tenant", keeping, {"spec": {"dataKeys": {store: [acme.teams[1]]}}})
    phase_of(kubectl, closing, "Purged", timeout=120)
    assert logs_of(acme.teams[0]) == 0 and logs_of(acme.teams[1]) == 1


def test_a_purging_tenant_can_correct_its_own_wrong_claim_before_keys_are_resolved(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, initech = create_account(conn, "acme"), create_account(conn, "initech")
        for account in (acme, initech):
            spend_log(conn, account, datetime.now(UTC))
    closing, keeping = f"initech-{unique}", f"acme-{unique}"
    store = purging_store(kubectl, objects, secret, unique)
    claiming(objects, keeping, unique, store, acme.organization)
    claiming(objects, closing, unique, store, acme.organization)
    acme_rows = rows(litellm_db, acme)

    kubectl.patch("tenant", closing, {"spec": {"state": "Closed"}})
    waiting = store_state(kubectl, closing, "Waiting")
    assert keeping in waiting["message"] and waiting["requested"] == [acme.organization]
    kubectl.patch("tenant", closing, {"spec": {"dataKeys": {store: [initech.organization]}}})  # the right account
    purged = phase_of(kubectl, closing, "Purged", timeout=120)
    assert purged["status"]["purge"]["stores"][0]["requested"] == [initech.organization]
    assert rows(litellm_db, initech) == 0 and rows(litellm_db, acme) == acme_rows


def datastore_object(name: str, **spec: Any) -> dict[str, Any]:
    postgres = {"connectionSecretRef": {"namespace": NAMESPACE, "name": "s"}, "preset": "litellm"}
    postgres.update(spec.pop("postgres", {}))
    return {
        "apiVersion": "retention.tenure.dev/v1alpha1",
        "kind": "DataStore",
        "metadata": {"name": name},
        "spec": {"postgres": postgres, **spec},
    }


MAPPED = {"table": "t", "tenantColumn": "team_id", "dataClass": "usage"}


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        pytest.param(
            datastore_object(
                "redacts-key", postgres={"tables": [{**MAPPED, "redactColumns": {"prompts": ["body", "team_id"]}}]}
            ),
            "spec.postgres.tables[0].redactColumns",
            id="redact-columns-name-the-key",
        ),
        pytest.param(datastore_object("sweeps-0s", sweepInterval="0s"), "spec.sweepInterval", id="sweep-interval-0s"),
        pytest.param(
            datastore_object("sweeps-59s", sweepInterval="0m59s"), "spec.sweepInterval", id="sweep-interval-59s"
        ),
        pytest.param(datastore_object("django", postgres={"preset": "django"}), "spec.postgres.preset", id="preset"),
        pytest.param(
            datastore_object("both-times", sweepInterval="1h", sweepSchedule="0 2 * * *"),
            "spec.sweepSchedule or spec.sweepInterval, not both",
            id="schedule-and-interval",
        ),
        pytest.param(
            datastore_object("nul-table", postgres={"tables": [{**MAPPED, "table": "t\u0000x"}]}),
            "spec.postgres.tables[0].table",
            id="control-character-in-a-table-name",
        ),
        pytest.param(
            {
                "apiVersion": "retention.tenure.dev/v1alpha1",
                "kind": "Tenant",
                "metadata": {"name": "nul-key"},
                "spec": {"retentionPolicy": "p", "dataKeys": {"litellm": ["org-1", "org-\u0000x"]}},
            },
            "spec.dataKeys.litellm[1]",
            id="nul-in-a-data-key",
        ),
        pytest.param(
            {
                "apiVersion": "retention.tenure.dev/v1alpha1",
                "kind": "Tenant",
                "metadata": {"name": "many-keys"},
                "spec": {"retentionPolicy": "p", "dataKeys": {"litellm": [f"team-{i}" for i in range(65)]}},
            },
            "spec.dataKeys.litellm",
            id="more-than-64-data-keys",
        ),
    ],
)
def test_invalid_datastores_are_rejected_naming_the_field(kubectl: Kubectl, obj: dict[str, Any], field: str) -> None:
    result = kubectl.create(obj, check=False)
    assert result.returncode != 0, f"{obj} was accepted"
    assert field in result.stderr, result.stderr
    assert kubectl.get(obj["kind"], obj["metadata"]["name"]) is None


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param({"uri": base64.b64encode(b"\xff\xfepostgresql://").decode()}, "is not UTF-8 text", id="not-utf8"),
        pytest.param(
            {"uri": base64.b64encode(b"not a uri at all").decode()},
            "is not a PostgreSQL connection URI",
            id="garbage-uri",
        ),
        pytest.param({"other": base64.b64encode(b"x").decode()}, "has no key 'uri'", id="missing-key"),
    ],
)
def test_a_malformed_secret_makes_the_store_not_ready_with_the_reason(
    kubectl: Kubectl, objects: Objects, unique: str, data: dict[str, str], says: str
) -> None:
    if kubectl.get("namespace", NAMESPACE) is None:
        kubectl.run("create", "namespace", NAMESPACE)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"bad-{unique}", "namespace": NAMESPACE}}
    kubectl.create({**secret, "data": data})
    try:
        datastore(objects, f"ds-{unique}", f"bad-{unique}")
        found = ready(kubectl, f"ds-{unique}", "False")
        assert found["reason"] == "Unavailable" and says in found["message"], found
    finally:
        kubectl.run("delete", "secret", f"bad-{unique}", "-n", NAMESPACE)


def test_a_partitioned_store_lists_its_partitioned_tables_and_the_legacy_copy(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        partition_spend_logs(conn, [datetime.now(UTC).date()])
    datastore(objects, f"ds-{unique}", secret)
    ready(kubectl, f"ds-{unique}")
    status = kubectl.get("datastore", f"ds-{unique}")["status"]  # type: ignore[index]
    assert status["partitioned"] == ["public.LiteLLM_SpendLogs"]
    assert any(r.startswith("LiteLLM_SpendLogs_legacy:") for r in status["residual"])
