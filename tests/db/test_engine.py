"""The deletion engine against a real PostgreSQL holding LiteLLM's real schema."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenure.api import DataStoreSpec
from tenure.datastores import litellm, operations, postgres
from tenure.datastores.targets import KEY, Target
from tests.support.litellm import Account, create_account, daily_team_spend, spend_log

T = TypeVar("T")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LITELLM = DataStoreSpec.model_validate(
    {"postgres": {"connectionSecretRef": {"namespace": "x", "name": "y"}, "preset": "litellm", "batchSize": 3}}
)


def run(uri: str, work: Callable[[psycopg.AsyncConnection[Any]], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        conn = await postgres.connect(uri)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


async def ignore(_: int) -> None:
    pass


def snapshot(conn: psycopg.Connection[Any], account: Account) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of an account, in every table the preset maps, as it is now."""
    keys = {
        litellm.ORGANIZATION: (account.organization,),
        litellm.TEAM: tuple(account.teams),
        litellm.TOKEN: tuple(account.tokens),
    }
    rows = {}
    for target in litellm.TARGETS:
        clauses = " OR ".join(f'"{column}" = ANY(%s)' for column, kind in target.key_columns)
        params = [list(keys[kind]) for _, kind in target.key_columns]
        rows[target.table] = sorted(
            conn.execute(f'SELECT to_jsonb(t)::text FROM "{target.table}" t WHERE {clauses}', params).fetchall()
        )
    return rows


def test_preset_maps_tables_and_columns_that_exist_in_litellms_schema(litellm_db: str) -> None:
    assert run(litellm_db, lambda conn: postgres.inspect(conn, litellm.TARGETS)) == []


def test_missing_tables_and_columns_are_named(litellm_db: str) -> None:
    targets = [
        Target("public", "NoSuchTable", (("team_id", KEY),), "usage"),
        Target("public", "LiteLLM_SpendLogs", (("tenant", KEY),), "usage", "created", {"prompts": ("prompt",)}),
        Target("public", "LiteLLM_SpendLogs", (("team_id", KEY),), "usage", "startTime", {"prompts": ("call_type",)}),
    ]
    problems = run(litellm_db, lambda conn: postgres.inspect(conn, targets))
    assert problems == [
        "table public.NoSuchTable does not exist",
        "column public.LiteLLM_SpendLogs.created does not exist",
        "column public.LiteLLM_SpendLogs.prompt does not exist",
        "column public.LiteLLM_SpendLogs.tenant does not exist",
        "column public.LiteLLM_SpendLogs.call_type is NOT NULL and cannot be cleared",
    ]


def test_resolution_covers_teams_and_keys_of_an_organization(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        account = create_account(conn, "acme", teams=2, keys_per_team=3)
    resolved = run(litellm_db, lambda conn: litellm.resolve(conn, (account.organization,)))
    assert set(resolved[litellm.TEAM]) == set(account.teams)
    assert set(resolved[litellm.TOKEN]) == set(account.tokens)
    assert resolved[litellm.ORGANIZATION] == (account.organization,)


def test_recorded_keys_still_purge_after_the_team_rows_are_gone(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        account = create_account(conn, "acme")
        token = next(iter(account.tokens))
        spend_log(conn, account, NOW, token=token, with_team=False, with_organization=False)
    recorded = run(litellm_db, lambda conn: operations.resolve(conn, LITELLM, (account.organization,)))
    with psycopg.connect(litellm_db, autocommit=True) as conn:  # a first attempt got this far, then crashed
        conn.execute('DELETE FROM "LiteLLM_VerificationToken"')
        conn.execute('DELETE FROM "LiteLLM_TeamTable"')
    result = run(litellm_db, lambda conn: operations.purge(conn, LITELLM, recorded, {}, ignore))
    assert result.deleted >= 1 and result.shared == {}
    with psycopg.connect(litellm_db) as conn:
        assert conn.execute('SELECT count(*) FROM "LiteLLM_SpendLogs"').fetchone() == (0,)


rows = st.lists(
    st.tuples(
        st.integers(0, 2),  # which account
        st.integers(0, 400),  # age in days
        st.sampled_from(["full", "key-only", "team-only", "org-only", "daily"]),
    ),
    min_size=1,
    max_size=40,
)


@pytest.mark.parametrize("indexed", [False, True], ids=["page-ranges", "index-batches"])
def test_purging_one_tenant_never_touches_another(
    litellm_db: str, indexed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "SPARSE", 2.0 if indexed else 0.0)  # force the strategy whatever the tenant's share
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        if indexed:
            for column in ("team_id", "organization_id", "api_key"):
                conn.execute(f'CREATE INDEX ON "LiteLLM_SpendLogs" ("{column}")')
            conn.execute('CREATE INDEX ON "LiteLLM_DailyTeamSpend" (team_id)')

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows)
    def check(data: list[tuple[int, int, str]]) -> None:
        with psycopg.connect(litellm_db, autocommit=True) as conn:
            conn.execute(
                "TRUNCATE " + ", ".join(f'"{t.table}"' for t in litellm.TARGETS) + ', "LiteLLM_BudgetTable" CASCADE'
            )
            accounts = [create_account(conn, name) for name in ("acme", "globex", "initech")]
            for owner, age, shape in data:
                account = accounts[owner]
                at = NOW - timedelta(days=age)
                token = list(account.tokens)[age % len(account.tokens)]
                if shape == "daily":
                    daily_team_spend(conn, account, account.tokens[token], at)
                else:
                    spend_log(
                        conn,
                        account,
                        at,
                        token=token,
                        with_team=shape in ("full", "team-only"),
                        with_organization=shape in ("full", "org-only"),
                    )
            others = {a.organization: snapshot(conn, a) for a in accounts[1:]}
        keys = run(litellm_db, lambda conn: operations.resolve(conn, LITELLM, (accounts[0].organization,)))
        result = run(litellm_db, lambda conn: operations.purge(conn, LITELLM, keys, {}, ignore))
        assert result.shared == {}
        with psycopg.connect(litellm_db) as conn:
            assert all(rows == [] for rows in snapshot(conn, accounts[0]).values())
            for account in accounts[1:]:
                assert snapshot(conn, account) == others[account.organization]

    check()


def test_sweep_applies_each_tenants_class_windows_and_redacts_inside_kept_rows(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        ages = (1, 10, 20, 40)
        requests = {
            (a.organization, age): spend_log(conn, a, NOW - timedelta(days=age)) for a in (acme, globex) for age in ages
        }
        globex_before = snapshot(conn, globex)
    cutoffs = {
        "acme": {
            "usage": NOW - timedelta(days=30),
            "prompts": NOW - timedelta(days=7),
            "responses": NOW - timedelta(days=14),
        }
    }
    result = run(
        litellm_db,
        lambda conn: operations.sweep(conn, LITELLM, {"acme": (acme.organization,)}, cutoffs, ignore),  # type: ignore[arg-type]
    )
    assert result.deleted == 1  # the 40-day-old row
    assert result.redacted == 3  # prompts of the 10- and 20-day-old rows, the response of the 20-day-old one
    with psycopg.connect(litellm_db) as conn:

        def row(age: int) -> tuple[Any, ...] | None:
            return conn.execute(
                'SELECT messages IS NULL, proxy_server_request IS NULL, response IS NULL FROM "LiteLLM_SpendLogs" '
                "WHERE request_id = %s",
                [requests[(acme.organization, age)]],
            ).fetchone()

        assert row(40) is None
        assert row(20) == (True, True, True)  # prompts (7d) and responses (14d) cleared, usage row kept (30d)
        assert row(10) == (True, True, False)  # prompts cleared, the response not yet
        assert row(1) == (False, False, False)
        assert snapshot(conn, globex) == globex_before  # no policy window: untouched


def test_a_sweep_of_thousands_of_tenants_is_a_few_statements(litellm_db: str) -> None:
    statements: list[str] = []

    async def work(conn: psycopg.AsyncConnection[Any]) -> operations.SweepResult:
        conn.add_notice_handler(lambda _: None)
        original = conn.cursor

        def counting(*args: Any, **kwargs: Any) -> Any:
            statements.append("statement")
            return original(*args, **kwargs)

        conn.cursor = counting  # type: ignore[method-assign]
        tenants = {f"t{i}": (f"team-{i}",) for i in range(2000)}
        cutoffs = {name: {"usage": NOW - timedelta(days=i % 365)} for i, name in enumerate(tenants)}
        return await operations.sweep(conn, LITELLM, tenants, cutoffs, ignore)  # type: ignore[arg-type]

    run(litellm_db, work)
    assert len(statements) < 100, len(statements)


def test_a_row_shared_with_a_kept_tenant_is_not_swept(litellm_db: str) -> None:
    """A row of one tenant's team inside another tenant's organization is past retention only for both."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, initech = create_account(conn, "acme"), create_account(conn, "initech")
        old = NOW - timedelta(days=40)
        kept = [
            spend_log(conn, acme, old),
            spend_log(conn, acme, old, with_organization=False),  # names only the team, inside acme's organization
        ]
        daily_team_spend(conn, acme, acme.teams[0], old)
        swept = spend_log(conn, initech, old)
        conn.execute(  # a held tenant's row dated -infinity: the kept cutoff must still keep it
            'UPDATE "LiteLLM_SpendLogs" SET "startTime" = \'-infinity\' WHERE request_id = %s', [kept[0]]
        )
    # "team" claims one of acme's teams (and initech), "org" claims acme's organization and keeps its data.
    keys = {"team": (acme.teams[0], initech.organization), "org": (acme.organization,)}
    cutoffs = {"team": {"usage": NOW - timedelta(days=30)}}
    result = run(litellm_db, lambda conn: operations.sweep(conn, LITELLM, keys, cutoffs, ignore))  # type: ignore[arg-type]
    assert result.deleted == 1
    with psycopg.connect(litellm_db) as conn:
        left = {r for (r,) in conn.execute('SELECT request_id FROM "LiteLLM_SpendLogs"').fetchall()}
        daily = conn.execute('SELECT count(*) FROM "LiteLLM_DailyTeamSpend" WHERE team_id = %s', [acme.teams[0]])
        assert daily.fetchone() == (1,)
    assert set(kept) <= left and swept not in left


def test_keys_another_tenant_claims_are_found_both_ways(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")

    async def work(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, tuple[str, ...]]]:
        by_org = await operations.resolve(conn, LITELLM, (acme.organization,))
        by_team = await operations.resolve(conn, LITELLM, (acme.teams[0],))
        return [
            await operations.shared(conn, LITELLM, by_org, {"b": (acme.teams[1],), "c": (globex.organization,)}),
            await operations.shared(conn, LITELLM, by_team, {"b": (acme.organization,), "c": (globex.teams[0],)}),
            await operations.shared(conn, LITELLM, by_team, {"b": (acme.teams[1],), "c": (globex.organization,)}),
        ]

    org_covers_team, team_inside_org, siblings = run(litellm_db, work)
    assert org_covers_team == {"b": (acme.teams[1],)}
    assert team_inside_org == {"b": (acme.organization,)}
    assert siblings == {}  # two teams of one organization are separate tenants' keys


def test_one_sweep_clears_every_class_past_its_window_even_when_rewritten_rows_move(litellm_db: str) -> None:
    """Free space in pages already walked (another tenant's rows deleted and vacuumed) attracts rewritten rows."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        for i in range(600):  # globex's rows fill the first pages, acme's the next ones, packed full
            spend_log(conn, globex if i < 300 else acme, NOW - timedelta(days=30, minutes=i))
        conn.execute('DELETE FROM "LiteLLM_SpendLogs" WHERE organization_id = %s', [globex.organization])
        conn.execute('VACUUM "LiteLLM_SpendLogs"')
    cutoffs = {"acme": {"prompts": NOW - timedelta(days=7), "responses": NOW - timedelta(days=7)}}
    spec = DataStoreSpec.model_validate(
        {
            **LITELLM.model_dump(by_alias=True),
            "postgres": {**LITELLM.postgres.model_dump(by_alias=True), "batchSize": 20},
        }
    )
    result = run(
        litellm_db,
        lambda conn: operations.sweep(conn, spec, {"acme": (acme.organization,)}, cutoffs, ignore),  # type: ignore[arg-type]
    )
    with psycopg.connect(litellm_db) as conn:
        left = conn.execute(
            "SELECT count(*) FILTER (WHERE messages IS NOT NULL), count(*) FILTER (WHERE response IS NOT NULL) "
            'FROM "LiteLLM_SpendLogs"'
        ).fetchone()
    assert left == (0, 0)
    assert result.redacted == 2 * 300
