"""The purge's row rule (rows another tenant's key is on stay), key columns of other types, bounded sessions."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tenure.api import DataStoreSpec
from tenure.datastores import operations, postgres
from tests.db.test_engine import LITELLM, NOW, ignore, run
from tests.support.litellm import create_account, spend_log


def test_a_spend_log_with_the_tenants_key_and_another_tenants_team_stays_and_is_counted(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        token = next(iter(acme.tokens))
        own = spend_log(conn, acme, NOW, token=token)
        moved = spend_log(conn, acme, NOW, token=token, with_organization=False)
        conn.execute(  # the key was used for globex's team (a key or team that moved)
            'UPDATE "LiteLLM_SpendLogs" SET team_id = %s WHERE request_id = %s', [globex.teams[0], moved]
        )
        theirs = spend_log(conn, globex, NOW)
    keys = run(litellm_db, lambda conn: operations.resolve(conn, LITELLM, (acme.organization,)))
    result = run(
        litellm_db,
        lambda conn: operations.purge(conn, LITELLM, keys, {"globex": (globex.organization,)}, ignore),
    )
    assert result.shared == {"LiteLLM_SpendLogs": 1}
    with psycopg.connect(litellm_db) as conn:
        left = {r for (r,) in conn.execute('SELECT request_id FROM "LiteLLM_SpendLogs"').fetchall()}
    assert left == {moved, theirs} and own not in left
    # Once globex is purged too (no tenant left claiming anything), its purge takes the row.
    keys = run(litellm_db, lambda conn: operations.resolve(conn, LITELLM, (globex.organization,)))
    result = run(litellm_db, lambda conn: operations.purge(conn, LITELLM, keys, {}, ignore))
    assert result.shared == {}
    with psycopg.connect(litellm_db) as conn:
        assert conn.execute('SELECT count(*) FROM "LiteLLM_SpendLogs"').fetchone() == (0,)


def mapped(table: str, **postgres_spec: Any) -> DataStoreSpec:
    return DataStoreSpec.model_validate(
        {
            "postgres": {
                "connectionSecretRef": {"namespace": "x", "name": "y"},
                "tables": [{"table": table, "tenantColumn": "tenant", "dataClass": "usage"}],
                "batchSize": 4,
                **postgres_spec,
            }
        }
    )


@pytest.mark.parametrize("column_type", ["uuid", "bigint"])
def test_uuid_and_bigint_key_columns_are_purged(postgres_db: str, column_type: str) -> None:
    ours, theirs = (
        ("6f1c1c2e-0000-4000-8000-000000000001", "6f1c1c2e-0000-4000-8000-000000000002")
        if column_type == "uuid"
        else ("1001", "1002")
    )
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE spend (tenant {column_type}, note text)")
        conn.execute("CREATE INDEX ON spend (tenant)")
        for key in (ours, theirs):
            conn.execute(f"INSERT INTO spend SELECT %s::{column_type}, 'x' FROM generate_series(1, 10)", [key])
    spec = mapped("spend")
    assert run(postgres_db, lambda conn: postgres.inspect(conn, operations.targets_of(spec))) == []
    # Keys are text: a tenant's default key is its name, which no uuid or bigint column can hold.
    result = run(
        postgres_db,
        lambda conn: operations.purge(conn, spec, {"key": (ours, "acme")}, {"b": (theirs, "globex")}, ignore),
    )
    assert result.deleted == 10
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT tenant::text, count(*) FROM spend GROUP BY 1").fetchall() == [(theirs, 10)]


def test_a_key_column_of_a_type_that_cannot_hold_a_key_is_named(postgres_db: str) -> None:
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE spend (tenant jsonb)")
    problems = run(postgres_db, lambda conn: postgres.inspect(conn, operations.targets_of(mapped("spend"))))
    assert problems == ["column public.spend.tenant has type jsonb, which cannot hold a tenant key"]


def test_a_batch_that_hits_statement_timeout_is_retried_smaller_and_the_purge_completes(postgres_db: str) -> None:
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE spend (tenant text, note text)")
        conn.execute("INSERT INTO spend SELECT 'acme', 'x' FROM generate_series(1, 40)")
        conn.execute("INSERT INTO spend SELECT 'globex', 'x' FROM generate_series(1, 40)")
        # Each deleted row costs 20 ms: a batch of 32 rows takes 640 ms, far past a 150 ms statement_timeout.
        conn.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.02); RETURN OLD; END $$"
        )
        conn.execute("CREATE TRIGGER slow BEFORE DELETE ON spend FOR EACH ROW EXECUTE FUNCTION slow()")
        conn.execute("ANALYZE spend")
    spec = mapped("spend", batchSize=32, session={"statementTimeout": "1s"})
    session = postgres.Session(statement_timeout=0.15)

    async def work() -> operations.PurgeResult:
        conn = await postgres.connect(postgres_db, session)
        try:
            return await operations.purge(conn, spec, {"key": ("acme",)}, {}, ignore)
        finally:
            await conn.close()

    result = asyncio.run(work())
    assert result.deleted == 40 and result.shrunk >= 2
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT tenant, count(*) FROM spend GROUP BY 1").fetchall() == [("globex", 40)]


def test_every_session_sets_its_name_and_timeouts(postgres_db: str) -> None:
    async def work() -> tuple[Any, ...]:
        conn = await postgres.connect(postgres_db, operations.session_of(mapped("t", session={"lockTimeout": "2s"})))
        try:
            cur = await conn.execute(
                "SELECT current_setting('application_name'), current_setting('statement_timeout'), "
                "current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')"
            )
            row = await cur.fetchone()
            assert row is not None
            return tuple(row)
        finally:
            await conn.close()

    assert asyncio.run(work()) == ("tenure", "1min", "2s", "1min")


def test_errors_carry_their_message(postgres_db: str) -> None:
    async def work() -> str:
        conn = await postgres.connect(postgres_db, postgres.Session(statement_timeout=0.05))
        try:
            await conn.execute("SELECT pg_sleep(1)")
        except psycopg.Error as error:
            return postgres.describe_error(error)
        finally:
            await conn.close()
        return ""

    assert asyncio.run(work()) == "QueryCanceled: canceling statement due to statement timeout"
    assert postgres.describe_error(RuntimeError("rows keep appearing")) == "RuntimeError: rows keep appearing"


@pytest.mark.parametrize(
    ("pacing", "at_least"),
    [({"rowsPerSecond": 20}, 2.0), ({"pauseMilliseconds": 300}, 4.5)],
)
def test_a_paced_purge_keeps_the_pace(postgres_db: str, pacing: dict[str, int], at_least: float) -> None:
    """60 rows in batches of 4 (at least 15 statements): at 20 rows/s at least 2 s (3 s less the first second's
    allowance), with a 300 ms pause after each statement at least 4.5 s; unpaced well under 1 s."""
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE spend (tenant text, note text)")
        conn.execute("INSERT INTO spend SELECT 'acme', 'x' FROM generate_series(1, 60)")
    paced, unpaced = mapped("spend", pacing=pacing), mapped("spend")

    def purge(spec: DataStoreSpec) -> float:
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            conn.execute("DELETE FROM spend")
            conn.execute("INSERT INTO spend SELECT 'acme', 'x' FROM generate_series(1, 60)")
        started = time.monotonic()
        result = run(postgres_db, lambda conn: operations.purge(conn, spec, {"key": ("acme",)}, {}, ignore))
        assert result.deleted == 60
        return time.monotonic() - started

    assert purge(unpaced) < 1.0
    assert purge(paced) >= at_least


def test_a_paced_sweep_keeps_the_pace(postgres_db: str) -> None:
    """60 rows past the usage window, batches of 4: at 20 rows/s the sweep takes at least 2 s, unpaced under 1 s."""
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE spend (tenant text, at timestamptz)")

    def sweep(pacing: dict[str, int]) -> float:
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            conn.execute("INSERT INTO spend SELECT 'acme', %s FROM generate_series(1, 60)", [NOW - timedelta(days=9)])
        spec = DataStoreSpec.model_validate(
            {
                "postgres": {
                    "connectionSecretRef": {"namespace": "x", "name": "y"},
                    "tables": [
                        {"table": "spend", "tenantColumn": "tenant", "timestampColumn": "at", "dataClass": "usage"}
                    ],
                    "batchSize": 4,
                    "pacing": pacing,
                }
            }
        )
        started = time.monotonic()
        cutoffs: Any = {"acme": {"usage": NOW}}
        result = run(postgres_db, lambda conn: operations.sweep(conn, spec, {"acme": ("acme",)}, cutoffs, ignore))
        assert result.deleted == 60
        return time.monotonic() - started

    assert sweep({}) < 1.0
    assert sweep({"rowsPerSecond": 20}) >= 2.0
