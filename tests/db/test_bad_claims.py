"""One tenant's bad claim never disables a safeguard for the others; moved keys stay blocked; the small ones of
issue 24 (authentication failures named, the pace held from the first batch). LiteLLM's real schema, real server."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tenure.api import DataStoreSpec, TenantStatus
from tenure.datastores import access, operations
from tenure.datastores import postgres as pg
from tenure.datastores.postgres import connect as pg_connect
from tenure.datastores.postgres import describe_error
from tenure.lifecycle import datastores as decide
from tenure.lifecycle import trust
from tenure.runtime.claims import claims
from tenure.runtime.gateway import Gateway
from tenure.runtime.store import Claim, Stores
from tests.db.test_engine import LITELLM, run, snapshot
from tests.db.test_gateway_access import KEY, Listed, flags, now, tenant
from tests.support.litellm import create_account, spend_log
from tests.support.postgres import Postgres

NUL = "org-\x00x"
EARLIER = datetime.now(UTC) - timedelta(minutes=1)


def put(stores: Stores, name: str, keys: list[str], status: TenantStatus) -> None:
    state = "Active" if status.phase == "Active" else "Suspended"
    stores.tenants.put(
        {
            "metadata": {"name": name, "uid": f"{name}-uid", "resourceVersion": str(uuid.uuid4())},
            "spec": {"state": state, "dataKeys": {"litellm": keys}},
            "status": trust.sealed(KEY, name, f"{name}-uid", status).to_api(),
        }
    )


def test_a_nul_key_of_one_tenant_does_not_stop_blocking_another(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        before = flags(conn)
    stores = Stores(KEY)
    put(stores, "bad", [NUL, globex.organization], TenantStatus(phase="Active"))  # stored before the CRD refused it
    closed = TenantStatus(phase="Suspended", suspended_at=EARLIER, access_closed_at=EARLIER)
    put(stores, "acme", [acme.organization], closed)
    gateway = Gateway(stores, Listed())  # type: ignore[arg-type]
    posted: list[tuple[str, str, str]] = []
    gateway.post = lambda kind, name, uid, reason, message, warning: posted.append((name, reason, message))

    found = run(litellm_db, lambda conn: gateway.check(conn, "litellm", LITELLM))

    assert found is not None and found.error is None, found
    assert (found.inaccessible, found.unusable, found.unverified) == (1, 1, ())
    rows = now(litellm_db)
    assert all(rows[row] == (True, True) for row in (*acme.teams, *acme.tokens))  # acme is kept out
    assert {row: rows[row] for row in (*globex.teams, *globex.tokens)} == {
        row: before[row] for row in (*globex.teams, *globex.tokens)
    }  # bad's other keys still count: its rows stay open
    assert [(name, reason) for name, reason, _ in posted] == [("bad", "DataKeysUnusable")]
    assert repr(NUL) in posted[0][2]
    run(litellm_db, lambda conn: gateway.check(conn, "litellm", LITELLM))
    assert len(posted) == 1  # posted again only when it changes


def test_a_tenant_whose_keys_cannot_be_resolved_is_isolated_and_its_blocking_reported_unverified(
    litellm_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any other error resolving one tenant's keys (here the server's own DataError, the NUL filter switched off):
    the others are checked; that tenant, inaccessible, makes the condition say its blocking is not verified."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        before = flags(conn)
    monkeypatch.setattr(pg, "bindable", lambda value: True)
    stores = Stores(KEY)
    closed = TenantStatus(phase="Suspended", suspended_at=EARLIER, access_closed_at=EARLIER)
    put(stores, "acme", [acme.organization], closed)
    put(stores, "bad", [NUL, globex.organization], closed)
    gateway = Gateway(stores, Listed())  # type: ignore[arg-type]
    posted: list[tuple[str, str, str]] = []
    gateway.post = lambda kind, name, uid, reason, message, warning: posted.append((name, reason, message))

    found = run(litellm_db, lambda conn: gateway.check(conn, "litellm", LITELLM))

    assert found is not None and found.error is None, found
    assert (found.inaccessible, found.unusable, found.unverified) == (2, 1, ("bad",))
    rows = now(litellm_db)
    assert all(rows[row] == (True, True) for row in (*acme.teams, *acme.tokens))
    # Only bad's bad key is left out: its good key still claims globex's organization, so those rows are blocked
    # too (they were left open when the whole tenant was left out).
    assert all(rows[row] == (True, True) for row in (*globex.teams, *globex.tokens)), (rows, before)
    assert [(name, reason) for name, reason, _ in posted] == [("bad", "DataKeysUnusable")]
    assert "DataError" in posted[0][2]
    status, reason, message = decide.gateway(found)
    assert (status, reason) == ("False", "Partial") and "bad" in message, message
    assert list(gateway.unverified_of("bad")) == ["litellm"] and gateway.unverified_of("acme") == {}


def test_an_active_tenant_with_a_key_that_cannot_be_resolved_keeps_its_other_rows_open(
    litellm_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Safety review: leaving a whole tenant out when one of its keys failed dropped an Active tenant's good claims,
    so a suspended tenant sharing its organization had those rows blocked, and kept blocked as "moved" once the key
    was fixed. Only the bad key is left out; and since the rows an Active tenant's bad key claims are unknown, that
    check blocks nothing new, saying so for the inaccessible tenants (unverified)."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        before = flags(conn)
    monkeypatch.setattr(pg, "bindable", lambda value: True)
    stores = Stores(KEY)
    closed = TenantStatus(phase="Suspended", suspended_at=EARLIER, access_closed_at=EARLIER)
    put(stores, "acme", [acme.organization], closed)
    put(stores, "shared", [NUL, acme.organization], TenantStatus(phase="Active"))
    gateway = Gateway(stores, Listed())  # type: ignore[arg-type]
    gateway.post = lambda kind, name, uid, reason, message, warning: None

    found = run(litellm_db, lambda conn: gateway.check(conn, "litellm", LITELLM))

    assert found is not None and found.error is None, found
    rows = now(litellm_db)
    assert {row: rows[row] for row in (*acme.teams, *acme.tokens)} == {
        row: before[row] for row in (*acme.teams, *acme.tokens)
    }  # shared with an Active tenant: open
    assert found.unverified == ("acme",)
    assert list(gateway.unverified_of("acme")) == ["litellm"]


def test_a_nul_key_does_not_stop_the_sweep_nor_another_tenants_purge(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        spend_log(conn, acme, datetime.now(UTC))
        spend_log(conn, globex, datetime.now(UTC))
        keep = snapshot(conn, globex)
    tenants = [
        Claim("acme", "Purging", {"litellm": (acme.organization,)}),
        Claim("bad", "Active", {"litellm": (NUL, globex.organization)}),
    ]
    others = claims(tenants, "litellm", but="acme")
    assert others == {"bad": (globex.organization,)}

    async def purge(conn: psycopg.AsyncConnection[Any]) -> int:
        keys = await operations.resolve(conn, LITELLM, (acme.organization,))
        return (await operations.purge(conn, LITELLM, keys, others, _ignore)).deleted

    assert run(litellm_db, purge) > 0
    with psycopg.connect(litellm_db) as conn:
        assert all(not rows for rows in snapshot(conn, acme).values())
        assert snapshot(conn, globex) == keep  # bad's good key keeps its rows
    # A sweep over every tenant's keys, the NUL among them, runs.
    swept = run(
        litellm_db,
        lambda conn: operations.sweep(conn, LITELLM, claims(tenants, "litellm"), {}, _ignore),
    )
    assert swept.deleted == 0


async def _ignore(_: int) -> None:
    pass


def test_a_key_moved_from_a_suspended_tenant_to_an_active_one_stays_blocked(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
    suspended = tenant("acme", (acme.organization,), "inaccessible")
    active = tenant("globex", (globex.organization,), "accessible")
    access_check = lambda *tenants: run(litellm_db, lambda c: access.apply(c, KEY, LITELLM, tenants))  # noqa: E731
    access_check(suspended, active)
    moved = next(iter(acme.tokens))
    assert now(litellm_db)[moved] == (True, True)
    with psycopg.connect(litellm_db, autocommit=True) as conn:  # an admin moves the key into globex's team
        conn.execute(
            'UPDATE "LiteLLM_VerificationToken" SET team_id = %s, organization_id = %s WHERE token = %s',
            [globex.teams[0], globex.organization, moved],
        )

    unblocked, _ = access_check(suspended, active)

    assert now(litellm_db)[moved] == (True, True)  # still blocked: acme is still suspended
    assert unblocked.moved == [(f"LiteLLM_VerificationToken/{moved}", "acme", ("globex",))]
    assert unblocked.rows == {}


def test_a_wrong_password_is_reported_as_authentication_failed(postgres: Postgres, unique: str) -> None:
    user = f"pw_{unique}"
    hba = postgres.data / "pg_hba.conf"
    with psycopg.connect(postgres.uri, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'right'")
        hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)

    async def connect() -> str:
        try:
            conn = await pg_connect(f"postgresql://{user}:wrong-{unique}@127.0.0.1:{postgres.port}/postgres")
        except psycopg.Error as error:
            return describe_error(error)
        await conn.close()
        return "connected"

    said = asyncio.run(connect())
    assert said.startswith("authentication failed"), said
    assert f"wrong-{unique}" not in said


def test_a_pace_of_a_few_rows_per_second_holds_from_the_first_batch(postgres_db: str) -> None:
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE spend (tenant text, note text)")
        conn.execute("INSERT INTO spend SELECT 'acme', 'x' FROM generate_series(1, 8)")
    spec = DataStoreSpec.model_validate(
        {
            "postgres": {
                "connectionSecretRef": {"namespace": "x", "name": "y"},
                "tables": [{"table": "spend", "tenantColumn": "tenant", "dataClass": "usage"}],
                "pacing": {"rowsPerSecond": 4},
            }
        }
    )
    batches: list[tuple[float, int]] = []

    async def progress(rows: int) -> None:
        batches.append((time.monotonic(), rows))

    started = time.monotonic()
    result = run(postgres_db, lambda conn: operations.purge(conn, spec, {"key": ("acme",)}, {}, progress))
    assert result.deleted == 8
    assert max(rows for _, rows in batches) <= 4  # never more than a second's worth at once, the first included
    assert time.monotonic() - started >= 1.0  # 8 rows at 4 a second: the second 4 wait a second for the first
