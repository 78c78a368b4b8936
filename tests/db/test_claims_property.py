"""A property, on a real PostgreSQL with LiteLLM's real schema: for any set of DataStores (some on the same
database), tenants and keys, no purge deletes and no unblock opens a row another tenant not yet purged claims.

Each example draws stores over two databases, tenants listing keys of real accounts (organizations, teams) in some
stores and not in others (then their name is their key there), in Active or Suspended states. It runs the gateway
checks of every store as the operator does (the stores on one database found from the server), flips some states
and checks again, then purges one tenant through every store as the operator's purge does (waiting when another
tenant claims the same rows). An independent oracle resolves every other tenant's claims per database (its keys in
every store there) and compares the rows before and after.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenure.api import TenantStatus
from tenure.datastores import access, litellm, operations
from tenure.datastores.identity import identity
from tenure.datastores.postgres import connect
from tenure.lifecycle import trust
from tenure.runtime.claims import claims, shared_with
from tenure.runtime.connections import Connections
from tenure.runtime.databases import Databases
from tenure.runtime.gateway import Gateway
from tenure.runtime.store import Claim, Stores
from tests.db.test_gateway_access import KEY, Listed
from tests.db.test_shared_database import SecretKube, spec, with_stores
from tests.support.litellm import Account, create_account, spend_log
from tests.support.postgres import Postgres

EARLIER = datetime.now(UTC) - timedelta(minutes=1)
TENANTS = ("t0", "t1", "t2", "t3")


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    stores = draw(st.lists(st.sampled_from((0, 0, 1)), min_size=1, max_size=3))  # store i → database
    tenants = {}
    for name in TENANTS[: draw(st.integers(2, 4))]:
        listed = {}
        for store in range(len(stores)):
            choice = draw(st.sampled_from(("absent", "none", "keys")))
            if choice == "none":
                listed[store] = []
            elif choice == "keys":
                # (account 0..2 of the store's database, org or team 0/1)
                listed[store] = draw(
                    st.lists(st.tuples(st.integers(0, 2), st.sampled_from(("org", 0, 1))), min_size=1, max_size=3)
                )
        tenants[name] = {
            "keys": listed,
            "first": draw(st.sampled_from(("Active", "Suspended"))),
            "then": draw(st.sampled_from(("Active", "Suspended"))),
        }
    purged = draw(st.sampled_from(sorted(tenants)))
    return {"stores": stores, "tenants": tenants, "purged": purged}


def key_of(account: Account, which: str | int) -> str:
    return account.organization if which == "org" else account.teams[int(which)]


def put(stores: Stores, name: str, data_keys: dict[str, list[str]], state: str) -> None:
    status = (
        TenantStatus(phase="Active", access_closed_at=EARLIER)
        if state == "Active"
        else TenantStatus(phase="Suspended", suspended_at=EARLIER, access_closed_at=EARLIER)
    )
    stores.tenants.put(
        {
            "metadata": {"name": name, "uid": f"{name}-uid", "resourceVersion": str(uuid.uuid4())},
            "spec": {
                "state": state,
                "dataKeys": data_keys,
                **({"suspensionReason": "Other"} if state != "Active" else {}),
            },
            "status": trust.sealed(KEY, name, f"{name}-uid", status).to_api(),
        }
    )


async def claimed_rows(conn: psycopg.AsyncConnection[Any], keys: tuple[str, ...]) -> set[tuple[str, str]]:
    """The oracle: every row of the preset's tables the keys cover (resolved as organizations and teams)."""
    if not keys:
        return set()
    resolved = await litellm.resolve(conn, keys)
    found: set[tuple[str, str]] = set()
    async with conn.cursor() as cur:
        for target in litellm.TARGETS:
            clauses = " OR ".join(f'"{column}" = ANY(%s)' for column, _ in target.key_columns)
            params = [list(resolved[kind]) for _, kind in target.key_columns]
            await cur.execute(f'SELECT to_jsonb(t)::text FROM "{target.table}" t WHERE {clauses}', params)
            found |= {(target.table, row[0]) for row in await cur.fetchall()}
    return found


async def blocked_rows(conn: psycopg.AsyncConnection[Any]) -> dict[str, bool]:
    found = {}
    async with conn.cursor() as cur:
        for table in access.TABLES:
            await cur.execute(f'SELECT {table.id}, blocked IS TRUE FROM "{table.name}"')
            found.update({row: flag for row, flag in await cur.fetchall()})
    return found


async def _ignore(_: int) -> None:
    pass


@pytest.fixture
def two_databases(postgres: Postgres, litellm_db: str, unique: str) -> tuple[str, str]:
    with psycopg.connect(postgres.uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "other_{unique}" TEMPLATE "litellm_template"')
    return litellm_db, postgres.database_uri(f"other_{unique}")


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds())
def test_no_purge_deletes_and_no_unblock_opens_a_row_another_tenant_claims(
    two_databases: tuple[str, str], world: dict[str, Any]
) -> None:
    uris = two_databases
    accounts: list[list[Account]] = []
    for uri in uris:
        with psycopg.connect(uri, autocommit=True) as conn:
            made = [create_account(conn, f"a{i}", teams=2, keys_per_team=1) for i in range(3)]
            for account in made:
                spend_log(conn, account, datetime.now(UTC))
            accounts.append(made)
    names = [f"s{i}" for i in range(len(world["stores"]))]
    on = {name: world["stores"][i] for i, name in enumerate(names)}  # store → database index
    data_keys = {
        tenant: {
            names[store]: [key_of(accounts[on[names[store]]][a], which) for a, which in listed]
            for store, listed in drawn["keys"].items()
        }
        for tenant, drawn in world["tenants"].items()
    }
    stores = Stores(KEY)
    with_stores(stores, {name: f"secret-{name}" for name in names})
    kube = SecretKube({f"secret-{name}": uris[on[name]] for name in names})
    databases = Databases(stores, Connections(kube))  # type: ignore[arg-type]
    gateway = Gateway(stores, Listed())  # type: ignore[arg-type]

    async def sharing(conn: psycopg.AsyncConnection[Any], store: str) -> tuple[str, ...]:
        return await databases.sharing(store, await identity(conn))

    def claim_of(tenant: str, phase: str) -> Claim:
        return Claim(tenant, phase, {s: tuple(keys) for s, keys in data_keys[tenant].items()})

    def truth(tenant: str, store: str) -> tuple[str, ...]:
        """The oracle's claim, from the drawn world alone: the tenant's keys in every store on the same database
        (its name in a store it does not list)."""
        listed = data_keys[tenant]
        return tuple(key for other in names if on[other] == on[store] for key in listed.get(other, [tenant]))

    async def closed_only(conn: psycopg.AsyncConnection[Any], store: str, states: dict[str, str]) -> set[str]:
        """Teams and keys an inaccessible tenant claims through any store on this database and no accessible one
        does: rows that must stay closed."""
        found: dict[bool, set[str]] = {True: set(), False: set()}
        for tenant, state in states.items():
            keys = truth(tenant, store)
            resolved = await litellm.resolve(conn, keys) if keys else {}
            kinds = (litellm.ORGANIZATION, litellm.TEAM, litellm.TOKEN)
            found[state == "Active"] |= {value for kind in kinds for value in resolved.get(kind, ())}
        return found[False] - found[True]

    async def main() -> None:
        # Gateway checks, twice with states changed between: an unblock never opens a row an inaccessible tenant
        # claims (through any store on the database).
        for round_ in ("first", "then"):
            states = {tenant: drawn[round_] for tenant, drawn in world["tenants"].items()}
            for tenant, state in states.items():
                put(stores, tenant, data_keys[tenant], state)
            for store in names:
                conn = await connect(uris[on[store]])
                try:
                    before = await blocked_rows(conn)
                    await gateway.check(conn, store, spec(f"secret-{store}"), sharing=await sharing(conn, store))
                    after = await blocked_rows(conn)
                    opened = {row for row, flag in before.items() if flag and not after.get(row, False)}
                    assert not opened & await closed_only(conn, store, states), (store, opened)
                finally:
                    await conn.close()
        # The purge of one tenant through every store: no row another tenant claims (on that database) goes.
        purged = world["purged"]
        everyone = [claim_of(t, "Active" if t != purged else "Purging") for t in world["tenants"]]
        for store in names:
            conn = await connect(uris[on[store]])
            try:
                together = await sharing(conn, store)
                kept = set()
                for other in everyone:
                    if other.name != purged:
                        kept |= await claimed_rows(conn, truth(other.name, store))
                others = claims(everyone, together, but=purged)
                requested = claims(everyone, store)[purged]
                keys = await operations.resolve(conn, spec(f"secret-{store}"), requested)
                if not await shared_with(conn, spec(f"secret-{store}"), keys, others):
                    await operations.purge(conn, spec(f"secret-{store}"), keys, others, _ignore)
                remaining = set()
                for other in everyone:
                    if other.name != purged:
                        remaining |= await claimed_rows(conn, truth(other.name, store))
                assert kept == remaining, (store, sorted(kept - remaining)[:3])
            finally:
                await conn.close()

    asyncio.run(main())
