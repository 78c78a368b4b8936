"""The export engine on LiteLLM's real schema: the purge's row rule, so a row another tenant claims never leaves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tenure.datastores import operations
from tenure.datastores.export import LeftOut, export
from tests.db.test_engine import LITELLM, run
from tests.support.litellm import create_account, spend_log


def test_rows_another_tenant_claims_are_not_exported_and_are_named(litellm_db: str) -> None:
    """A claims org-a; B claims team-x inside org-a; C claims an unrelated organization."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        for team in acme.teams:
            token = next(t for t, owner in acme.tokens.items() if owner == team)
            for day in range(2):
                spend_log(conn, acme, datetime.now(UTC) - timedelta(days=day), token=token)
        spend_log(conn, globex, datetime.now(UTC))
    shared = acme.teams[1]
    others = {"b": (shared,), "c": (globex.organization,)}

    async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[list[str], list[LeftOut]]:
        keys = await operations.resolve(conn, LITELLM, (acme.organization,))
        owners = await operations.key_owners(conn, LITELLM, others)
        lines: list[str] = []
        left: list[LeftOut] = []
        await export(conn, LITELLM, keys, lines.append, owners=owners, left_out=left)
        return lines, left

    lines, left = run(litellm_db, work)
    rows = [json.loads(line) for chunk in lines for line in chunk.splitlines()]
    assert not any(shared in json.dumps(row) for row in rows)
    assert not any(globex.organization in json.dumps(row) for row in rows)
    logs = [row["row"] for row in rows if row["table"] == "public.LiteLLM_SpendLogs"]
    assert {log["team_id"] for log in logs} == {acme.teams[0]} and len(logs) == 2
    assert {entry.table: (entry.rows, entry.tenants) for entry in left} == {
        "public.LiteLLM_TeamTable": (1, ("b",)),
        "public.LiteLLM_TeamMembership": (1, ("b",)),
        "public.LiteLLM_VerificationToken": (2, ("b",)),
        "public.LiteLLM_SpendLogs": (2, ("b",)),
    }
