"""Two DataStores on one database share one claim set: on LiteLLM's real schema, with real connections.

A tenant that does not list a store claims its own name there, so comparing claims per DataStore let a tenant
``evil`` list Active acme's organization in a second store on the same database and purge or block acme's rows
through it (issue 24). Claims are compared per database: the identity the server itself reports.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import psycopg

from tenure.api import DataStoreSpec, TenantStatus
from tenure.datastores import operations
from tenure.datastores.identity import identity
from tenure.lifecycle import trust
from tenure.runtime.claims import claims, shared_with
from tenure.runtime.connections import Connections
from tenure.runtime.gateway import Gateway
from tenure.runtime.store import Claim, Stores
from tests.db.test_engine import run, snapshot
from tests.db.test_gateway_access import KEY, Listed, flags, now
from tests.support.litellm import create_account, spend_log
from tests.support.postgres import Postgres

EARLIER = datetime.now(UTC) - timedelta(minutes=1)


class SecretKube:
    """The API server's Secrets, as :class:`Connections` reads them (the databases are real)."""

    def __init__(self, uris: dict[str, str]) -> None:
        self.core = self
        self.uris = uris

    async def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        return SimpleNamespace(data={"uri": base64.b64encode(self.uris[name].encode()).decode()})


def spec(secret: str) -> DataStoreSpec:
    return DataStoreSpec.model_validate(
        {"postgres": {"connectionSecretRef": {"namespace": "x", "name": secret}, "preset": "litellm", "batchSize": 3}}
    )


def with_stores(stores: Stores, names: dict[str, str]) -> None:
    """DataStores ``name → secret``, as the informer stores them."""
    for name, secret in names.items():
        stores.datastores.put(
            {
                "metadata": {"name": name, "resourceVersion": "1", "generation": 1},
                "spec": spec(secret).model_dump(mode="json", by_alias=True),
            }
        )


def other_uri(uri: str) -> str:
    """The same database through another address: ``localhost`` for ``127.0.0.1``."""
    return uri.replace("127.0.0.1", "localhost")


def test_stores_reaching_one_database_are_found_from_the_server_not_the_uri(
    postgres: Postgres, litellm_db: str, unique: str
) -> None:
    from tenure.runtime.databases import Databases  # new with issue 24 (imported here: the rest runs without it)

    elsewhere = postgres.create_database(f"elsewhere_{unique}")
    stores = Stores(KEY)
    secrets = {"a": litellm_db, "b": other_uri(litellm_db), "c": elsewhere, "down": "postgresql://x@127.0.0.1:1/no"}
    with_stores(stores, {"litellm": "a", "ds-2": "b", "other": "c", "broken": "down"})
    databases = Databases(stores, Connections(SecretKube(secrets)))  # type: ignore[arg-type]

    async def work() -> tuple[str, ...]:
        conn = await Connections(SecretKube(secrets)).connect(spec("a"))  # type: ignore[arg-type]
        try:
            return await databases.sharing("litellm", await identity(conn))
        finally:
            await conn.close()

    # ds-2 reaches the same rows through another address; a store whose database cannot be learned counts too.
    assert asyncio.run(work()) == ("litellm", "broken", "ds-2")


def test_a_role_that_may_not_read_the_servers_identity_shares_every_database(
    postgres: Postgres, litellm_db: str, unique: str
) -> None:
    """Managed servers may revoke pg_control_system() from ordinary roles. A store connecting as such a role reached
    the same rows as another while its identity (then read from its address) differed: the second-store purge of
    issue 24 again. Its identity is unknown, and an unknown identity shares with every store, both ways."""
    from tenure.runtime.databases import Databases

    role = f"plain_{unique}"
    with psycopg.connect(postgres.uri, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT ALL ON DATABASE "litellm_{unique}" TO "{role}"')
    with psycopg.connect(litellm_db, autocommit=True) as conn:  # functions' privileges are per database
        conn.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    try:
        limited = litellm_db.replace("postgresql://tenure@", f"postgresql://{role}@")
        elsewhere = postgres.create_database(f"elsewhere_{unique}")
        stores = Stores(KEY)
        secrets = {"a": litellm_db, "b": limited, "c": elsewhere}
        with_stores(stores, {"litellm": "a", "ds-2": "b", "other": "c"})

        async def work() -> tuple[object, tuple[str, ...], tuple[str, ...]]:
            databases = Databases(stores, Connections(SecretKube(secrets)))  # type: ignore[arg-type]
            connections = Connections(SecretKube(secrets))  # type: ignore[arg-type]
            full, plain = await connections.connect(spec("a")), await connections.connect(spec("b"))
            try:
                unknown = await identity(plain)
                return (
                    unknown,
                    await databases.sharing("litellm", await identity(full)),
                    await databases.sharing("ds-2", unknown),
                )
            finally:
                await full.close()
                await plain.close()

        unknown, from_litellm, from_ds2 = asyncio.run(work())
        assert unknown is None
        assert from_litellm == ("litellm", "ds-2")  # ds-2's database is unknown: it may be this one
        assert from_ds2 == ("ds-2", "litellm", "other")  # ds-2 itself does not know: every store
    finally:
        with psycopg.connect(litellm_db, autocommit=True) as conn:
            conn.execute("GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC")


def test_a_second_store_on_the_same_database_cannot_purge_an_active_tenants_rows(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        for _ in range(3):
            spend_log(conn, acme, datetime.now(UTC))
    tenants = [
        Claim("acme", "Active", {"litellm": (acme.organization,)}),  # claims its own name in ds-2
        Claim("evil", "Purging", {"litellm": ("org-nonexistent",), "ds-2": (acme.organization,)}),
    ]
    sharing = ("ds-2", "litellm")  # as Databases.sharing finds them (previous test)

    async def purge_evil(conn: psycopg.AsyncConnection[Any]) -> tuple[str, int]:
        store = spec("b")
        keys = await operations.resolve(conn, store, (acme.organization,))
        others = claims(tenants, sharing, but="evil")
        waits = await shared_with(conn, store, keys, others)
        deleted = 0 if waits else (await operations.purge(conn, store, keys, others, _ignore)).deleted
        return waits, deleted

    with psycopg.connect(litellm_db) as conn:
        before = snapshot(conn, acme)
    waits, deleted = run(litellm_db, purge_evil)
    assert waits.startswith(f"acme ({acme.organization})"), waits  # the purge waits naming the other tenant
    assert deleted == 0
    others = claims(tenants, sharing, but="evil")
    assert others == {"acme": ("acme", acme.organization)}
    # Past the wait, the engine's own row rule keeps every row the other store's claim covers.

    async def force(conn: psycopg.AsyncConnection[Any]) -> int:
        keys = await operations.resolve(conn, spec("b"), (acme.organization,))
        return (await operations.purge(conn, spec("b"), keys, others, _ignore)).deleted

    assert run(litellm_db, force) == 0
    with psycopg.connect(litellm_db) as conn:
        assert snapshot(conn, acme) == before


async def _ignore(_: int) -> None:
    pass


def put(stores: Stores, name: str, data_keys: dict[str, list[str]], status: TenantStatus) -> None:
    state = "Active" if status.phase == "Active" else "Suspended"
    stores.tenants.put(
        {
            "metadata": {"name": name, "uid": f"{name}-uid", "resourceVersion": str(uuid.uuid4())},
            "spec": {"state": state, "dataKeys": data_keys},
            "status": trust.sealed(KEY, name, f"{name}-uid", status).to_api(),
        }
    )


def test_two_stores_on_one_database_never_block_an_active_tenants_rows_nor_undo_each_other(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, evil = create_account(conn, "acme"), create_account(conn, "evil")
        before = flags(conn)
    stores = Stores(KEY)
    put(stores, "acme", {"litellm": [acme.organization]}, TenantStatus(phase="Active"))
    closed = TenantStatus(phase="Suspended", suspended_at=EARLIER, access_closed_at=EARLIER)
    put(stores, "evil", {"litellm": [evil.organization], "ds-2": [acme.organization]}, closed)
    gateway = Gateway(stores, Listed())  # type: ignore[arg-type]
    sharing = ("litellm", "ds-2")

    async def both(conn: psycopg.AsyncConnection[Any]) -> None:
        for _ in range(2):  # each store's check in turn, twice
            await gateway.check(conn, "ds-2", spec("b"), sharing=tuple(reversed(sharing)))
            await gateway.check(conn, "litellm", spec("a"), sharing=sharing)

    run(litellm_db, both)
    rows = now(litellm_db)
    acme_rows = {*acme.teams, *acme.tokens}
    assert {row: rows[row] for row in acme_rows} == {row: before[row] for row in acme_rows}  # never blocked
    assert all(rows[row] == (True, True) for row in (*evil.teams, *evil.tokens))  # evil's own are
