"""Rows in LiteLLM's real schema, as the proxy writes them: organizations, teams, keys, spend."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import psycopg


@dataclass
class Account:
    """One customer: an organization with teams, each team with virtual keys."""

    organization: str
    teams: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    """token → team."""


def create_account(
    conn: psycopg.Connection[Any], name: str, teams: int = 2, keys_per_team: int = 2, organization: str | None = None
) -> Account:
    account = Account(organization=organization or f"org-{name}-{uuid.uuid4().hex[:8]}")
    budget = f"budget-{account.organization}"
    user = f"user-{account.organization}"
    conn.execute('INSERT INTO "LiteLLM_UserTable" (user_id) VALUES (%s)', [user])
    conn.execute(
        'INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES (%s, %s, %s)',
        [budget, "test", "test"],
    )
    conn.execute(
        'INSERT INTO "LiteLLM_OrganizationTable" '
        "(organization_id, organization_alias, budget_id, created_by, updated_by) VALUES (%s, %s, %s, 'test', 'test')",
        [account.organization, name, budget],
    )
    conn.execute(
        'INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id) VALUES (%s, %s)',
        [user, account.organization],
    )
    for t in range(teams):
        team = f"team-{name}-{t}-{uuid.uuid4().hex[:8]}"
        account.teams.append(team)
        conn.execute(
            'INSERT INTO "LiteLLM_TeamTable" (team_id, organization_id) VALUES (%s, %s)', [team, account.organization]
        )
        conn.execute('INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id) VALUES (%s, %s)', [user, team])
        for _ in range(keys_per_team):
            token = uuid.uuid4().hex + uuid.uuid4().hex
            account.tokens[token] = team
            conn.execute(
                'INSERT INTO "LiteLLM_VerificationToken" (token, team_id, organization_id) VALUES (%s, %s, %s)',
                [token, team, account.organization],
            )
    return account


def spend_log(
    conn: psycopg.Connection[Any],
    account: Account,
    at: datetime,
    token: str | None = None,
    with_team: bool = True,
    with_organization: bool = True,
) -> str:
    """One request through the gateway: its spend log, with prompt and response content."""
    token = token or next(iter(account.tokens))
    request = uuid.uuid4().hex
    conn.execute(
        'INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, "startTime", "endTime", team_id, '
        "organization_id, messages, response, proxy_server_request, spend) "
        "VALUES (%s, 'acompletion', %s, %s, %s, %s, %s, %s, %s, %s, 0.01)",
        [
            request,
            token,
            at,
            at + timedelta(seconds=1),
            account.tokens[token] if with_team else None,
            account.organization if with_organization else None,
            '[{"role": "user", "content": "secret prompt"}]',
            '{"choices": [{"message": {"content": "secret answer"}}]}',
            '{"messages": [{"role": "user", "content": "secret prompt"}]}',
        ],
    )
    return request


def daily_team_spend(conn: psycopg.Connection[Any], account: Account, team: str, at: datetime) -> None:
    token = next(t for t, owner in account.tokens.items() if owner == team)
    conn.execute(
        'INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, created_at, updated_at) '
        "VALUES (%s, %s, %s, %s, %s, %s)",
        [uuid.uuid4().hex, team, at.date().isoformat(), token, at, at],
    )


def partition_spend_logs(conn: psycopg.Connection[Any], days: Iterable[date]) -> list[str]:
    """Convert LiteLLM_SpendLogs the way LiteLLM's runbook does, with a daily partition for each day given.

    A reconstruction of LiteLLM's ``db_scripts/partition_spend_logs.sql`` (read, not copied): the table is
    renamed to ``LiteLLM_SpendLogs_legacy`` (its indexes renamed aside), a new table ``LIKE`` it ``PARTITION BY
    RANGE ("startTime")`` gets the primary key ``(request_id, "startTime")``, the indexes Prisma defines, and a
    DEFAULT partition ``LiteLLM_SpendLogs_pdefault``. LiteLLM's cleanup job then pre-creates daily partitions;
    they are created here directly (``LiteLLM_SpendLogs_pYYYYMMDD``, our naming). Returns the partitions' names.
    """
    conn.execute('ALTER TABLE "LiteLLM_SpendLogs" RENAME TO "LiteLLM_SpendLogs_legacy"')
    for index in ("pkey", "startTime_idx", "startTime_request_id_idx", "end_user_idx", "session_id_idx"):
        conn.execute(f'ALTER INDEX IF EXISTS "LiteLLM_SpendLogs_{index}" RENAME TO "LiteLLM_SpendLogs_legacy_{index}"')
    conn.execute(
        'ALTER INDEX IF EXISTS "LiteLLM_SpendLogs_api_key_startTime_spend_idx" '
        'RENAME TO "LiteLLM_SpendLogs_legacy_api_key_startTime_spend_idx"'
    )
    conn.execute(
        'CREATE TABLE "LiteLLM_SpendLogs" (LIKE "LiteLLM_SpendLogs_legacy" INCLUDING DEFAULTS INCLUDING GENERATED) '
        'PARTITION BY RANGE ("startTime")'
    )
    conn.execute('ALTER TABLE "LiteLLM_SpendLogs" ADD PRIMARY KEY ("request_id", "startTime")')
    for name, columns in (
        ("startTime_idx", '"startTime"'),
        ("startTime_request_id_idx", '"startTime", "request_id"'),
        ("end_user_idx", '"end_user"'),
        ("session_id_idx", '"session_id"'),
        ("api_key_startTime_spend_idx", '"api_key", "startTime", "spend"'),
    ):
        conn.execute(f'CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_{name}" ON "LiteLLM_SpendLogs" ({columns})')
    conn.execute('CREATE TABLE IF NOT EXISTS "LiteLLM_SpendLogs_pdefault" PARTITION OF "LiteLLM_SpendLogs" DEFAULT')
    names = ["LiteLLM_SpendLogs_pdefault"]
    for day in sorted(set(days)):
        name = f"LiteLLM_SpendLogs_p{day:%Y%m%d}"
        conn.execute(
            f'CREATE TABLE "{name}" PARTITION OF "LiteLLM_SpendLogs" '
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{day + timedelta(days=1)}')"
        )
        names.append(name)
    return names
