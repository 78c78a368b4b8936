"""LiteLLM_SpendLogs natively partitioned the way LiteLLM's runbook converts it, rows of several tenants in
the same daily partitions and in the DEFAULT partition: sweeps, redaction, purges and the closing proof."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tenure.datastores import operations, postgres
from tests.db.test_engine import LITELLM, NOW, ignore, run, snapshot
from tests.support.litellm import Account, create_account, partition_spend_logs, spend_log

AGES = (1, 10, 20, 40)
"""Days old: each in its own daily partition."""
FILLER = 120
"""Rows of initech written first into every partition, so they fill its first pages."""
DEFAULT_AGE = 100
"""Days old: no daily partition covers it, so it lands in the DEFAULT partition."""


def by_partition(conn: psycopg.Connection[Any], account: Account) -> Counter[str]:
    rows = conn.execute(
        'SELECT tableoid::regclass::text FROM "LiteLLM_SpendLogs" WHERE organization_id = %s OR api_key = ANY(%s)',
        [account.organization, list(account.tokens)],
    ).fetchall()
    return Counter(name for (name,) in rows)


def content(conn: psycopg.Connection[Any], request: str) -> tuple[Any, ...] | None:
    return conn.execute(
        'SELECT messages IS NULL, proxy_server_request IS NULL, response IS NULL FROM "LiteLLM_SpendLogs" '
        "WHERE request_id = %s",
        [request],
    ).fetchone()


@pytest.fixture
def accounts(litellm_db: str) -> dict[str, tuple[Account, dict[int, list[str]]]]:
    """acme, globex and initech, each with two spend logs of every age, in the same partitions."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        partitions = partition_spend_logs(conn, ((NOW - timedelta(days=age)).date() for age in AGES))
        assert len(partitions) == len(AGES) + 1
        made = {}
        created = {name: create_account(conn, name) for name in ("acme", "globex", "initech")}
        for age in (*AGES, DEFAULT_AGE):  # the other rows are past the first pages of every partition
            for minute in range(FILLER):
                spend_log(conn, created["initech"], NOW - timedelta(days=age, minutes=minute + 90))
        for name, account in created.items():
            made[name] = (
                account,
                {
                    age: [spend_log(conn, account, NOW - timedelta(days=age, hours=h)) for h in (0, 1)]
                    for age in (*AGES, DEFAULT_AGE)
                },
            )
        conn.execute("ANALYZE")
    return made


def test_readiness_lists_the_partitioned_table_and_the_legacy_copy(litellm_db: str, accounts: Any) -> None:
    survey = run(litellm_db, lambda conn: operations.survey(conn, LITELLM))
    assert survey.problems == []
    assert survey.partitioned == ("public.LiteLLM_SpendLogs",)
    assert [r for r in survey.residual if r.startswith("LiteLLM_SpendLogs_legacy:")]


def test_sweep_keeps_held_and_keep_forever_tenants_and_redacts_by_class_in_every_partition(
    litellm_db: str, accounts: dict[str, tuple[Account, dict[int, list[str]]]]
) -> None:
    (_, acme_rows), (globex, _), (initech, _) = (accounts[n] for n in ("acme", "globex", "initech"))
    with psycopg.connect(litellm_db) as conn:
        before = {a.organization: (by_partition(conn, a), snapshot(conn, a)) for a in (globex, initech)}
    # acme: usage 365d (nothing deleted), prompts 7d, responses 14d; globex is held and initech keeps forever,
    # so neither has a cutoff (both are listed as tenants of the store).
    cutoffs = {
        "acme": {
            "usage": NOW - timedelta(days=365),
            "prompts": NOW - timedelta(days=7),
            "responses": NOW - timedelta(days=14),
        }
    }
    keys = {name: (account.organization,) for name, (account, _) in accounts.items()}
    result = run(litellm_db, lambda conn: operations.sweep(conn, LITELLM, keys, cutoffs, ignore))  # type: ignore[arg-type]
    assert result.deleted == 0
    # prompts of the 10-, 20-, 40- and 100-day-old rows (2 each), responses of the 20-, 40- and 100-day-old ones
    assert result.redacted == 2 * 4 + 2 * 3
    with psycopg.connect(litellm_db) as conn:
        for request in acme_rows[1]:
            assert content(conn, request) == (False, False, False)
        for request in acme_rows[10]:
            assert content(conn, request) == (True, True, False)
        for age in (20, 40, DEFAULT_AGE):
            for request in acme_rows[age]:
                assert content(conn, request) == (True, True, True)
        for account in (globex, initech):
            assert (by_partition(conn, account), snapshot(conn, account)) == before[account.organization]


def test_sweep_deletes_only_past_the_usage_window_in_every_partition(
    litellm_db: str, accounts: dict[str, tuple[Account, dict[int, list[str]]]]
) -> None:
    acme, _ = accounts["acme"]
    others = [accounts["globex"][0], accounts["initech"][0]]
    with psycopg.connect(litellm_db) as conn:
        before = [snapshot(conn, a) for a in others]
    cutoffs = {"acme": {"usage": NOW - timedelta(days=15)}}
    keys = {name: (account.organization,) for name, (account, _) in accounts.items()}
    result = run(litellm_db, lambda conn: operations.sweep(conn, LITELLM, keys, cutoffs, ignore))  # type: ignore[arg-type]
    assert result.deleted == 2 * 3  # the 20-, 40- and 100-day-old rows
    with psycopg.connect(litellm_db) as conn:
        left = by_partition(conn, acme)
        assert left == {f'"LiteLLM_SpendLogs_p{(NOW - timedelta(days=age)).date():%Y%m%d}"': 2 for age in (1, 10)}
        assert [snapshot(conn, a) for a in others] == before


def test_a_sweep_skips_partitions_newer_than_every_cutoff(
    litellm_db: str, accounts: dict[str, tuple[Account, dict[int, list[str]]]]
) -> None:
    read: list[str] = []
    original = postgres.PageWalk.each

    def each(self: postgres.PageWalk, statement: Any) -> Any:
        read.append(self.leaf.table)
        return original(self, statement)

    cutoffs = {"acme": {"usage": NOW - timedelta(days=15)}}
    keys = {"acme": (accounts["acme"][0].organization,)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postgres.PageWalk, "each", each)
        run(litellm_db, lambda conn: operations.sweep(conn, LITELLM, keys, cutoffs, ignore))  # type: ignore[arg-type]
    spend = sorted(name for name in read if name.startswith("LiteLLM_SpendLogs"))
    older = [f"LiteLLM_SpendLogs_p{(NOW - timedelta(days=age)).date():%Y%m%d}" for age in (40, 20)]
    assert spend == sorted(["LiteLLM_SpendLogs_pdefault", *older])


@pytest.mark.parametrize("indexed", [False, True], ids=["page-ranges", "index-batches"])
def test_purge_removes_every_row_from_every_partition_and_leaves_others_exactly(
    litellm_db: str,
    accounts: dict[str, tuple[Account, dict[int, list[str]]]],
    indexed: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres, "SPARSE", 2.0 if indexed else 0.0)
    acme, _ = accounts["acme"]
    others = [accounts["globex"][0], accounts["initech"][0]]
    with psycopg.connect(litellm_db) as conn:
        before = [(by_partition(conn, a), snapshot(conn, a)) for a in others]
        assert sum(by_partition(conn, acme).values()) == 2 * (len(AGES) + 1)
    claims = {"globex": (others[0].organization,), "initech": (others[1].organization,)}
    keys = run(litellm_db, lambda conn: operations.resolve(conn, LITELLM, (acme.organization,)))
    result = run(litellm_db, lambda conn: operations.purge(conn, LITELLM, keys, claims, ignore))
    assert result.shared == {}
    assert result.deleted >= 2 * (len(AGES) + 1)
    with psycopg.connect(litellm_db) as conn:
        assert by_partition(conn, acme) == Counter()
        assert all(rows == [] for rows in snapshot(conn, acme).values())
        assert [(by_partition(conn, a), snapshot(conn, a)) for a in others] == before
