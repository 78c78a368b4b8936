"""LiteLLM gateway access of an inaccessible tenant: its teams, virtual keys and projects ``blocked``.

LiteLLM's proxy checks ``blocked`` on the virtual key (``LiteLLM_VerificationToken``)
of every request, and on the key's team (``LiteLLM_TeamTable``) and project
(``LiteLLM_ProjectTable``); a blocked one is refused (401/403). Tenure blocks
every team of the tenant (its organization ids and team ids), every key of those
teams or organizations, and every project of those teams.

What Tenure blocked is recorded on the row itself, in LiteLLM's own ``metadata``
JSON, as ``tenure_blocked``: an HMAC over the table, the row's id and the
tenant's uid, keyed by Tenure's seal key. A row that was already blocked
(by an admin) gets no record and is never unblocked by Tenure. Unblocking
clears ``blocked`` only on rows whose record verifies, so a record copied from
another row or tenant, or made up, unblocks nothing.

End users (``LiteLLM_EndUserTable``) are not touched: no column attributes an
end user to a team or organization (any tenant's end users may share an id),
and their ``blocked`` flag is enforced only by an enterprise callback. Every
request of an end user goes through one of the tenant's keys, which are blocked.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from .litellm import ORGANIZATION, TEAM

RECORD = "tenure_blocked"


@dataclass(frozen=True)
class Table:
    name: str
    id: str
    where: str
    """Rows of the tenant: %(teams)s and %(organizations)s are its team and organization ids."""


TABLES = (
    Table("LiteLLM_TeamTable", "team_id", "team_id = ANY(%(teams)s) OR organization_id = ANY(%(organizations)s)"),
    Table(
        "LiteLLM_VerificationToken",
        "token",
        "team_id = ANY(%(teams)s) OR organization_id = ANY(%(organizations)s)",
    ),
    Table("LiteLLM_ProjectTable", "project_id", "team_id = ANY(%(teams)s)"),
)


def record(key: bytes, table: str, row: str, tenant_uid: str, prior: bool | None) -> str:
    """What Tenure writes on a row it blocks: the flag it had (``null`` or ``false``) and a seal over it."""
    text = "null" if prior is None else str(prior).lower()
    message = f"{table}\x00{row}\x00{tenant_uid}\x00{text}".encode()
    seal = hmac.new(hashlib.sha256(b"tenure-gateway:" + key).digest(), message, hashlib.sha256).hexdigest()[:40]
    return f"{text}:{seal}"


def prior(key: bytes, table: str, row: str, tenant_uid: str, raw: str) -> tuple[bool, bool | None]:
    """Whether a row's record verifies, and the flag the row had before Tenure blocked it."""
    value = {"null": None, "false": False}.get(raw.partition(":")[0], True)
    if value is True:
        return False, None
    return hmac.compare_digest(raw, record(key, table, row, tenant_uid, value)), value


@dataclass
class Changed:
    """Rows changed per table."""

    rows: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


async def _teams(conn: psycopg.AsyncConnection[Any], keys: Sequence[str]) -> dict[str, list[str]]:
    """The tenant's teams and organizations: its keys are organization and/or team ids."""
    async with conn.cursor() as cur:
        await cur.execute(
            'SELECT team_id FROM "LiteLLM_TeamTable" WHERE team_id = ANY(%s) OR organization_id = ANY(%s)',
            [list(keys), list(keys)],
        )
        teams = {row[0] for row in await cur.fetchall()}
    return {TEAM: sorted(teams | set(keys)), ORGANIZATION: list(keys)}


async def block(conn: psycopg.AsyncConnection[Any], key: bytes, tenant_uid: str, keys: Sequence[str]) -> Changed:
    """Block every team, key and project of the tenant that is not blocked yet, recording each; idempotent."""
    ids = await _teams(conn, keys)
    changed: dict[str, int] = {}
    async with conn.transaction():
        for table in TABLES:
            async with conn.cursor() as cur:
                await cur.execute(
                    sql.SQL(
                        "SELECT {id}, blocked FROM {table} WHERE ({where}) AND blocked IS NOT TRUE FOR UPDATE"
                    ).format(id=sql.Identifier(table.id), table=sql.Identifier(table.name), where=sql.SQL(table.where)),
                    {"teams": ids[TEAM], "organizations": ids[ORGANIZATION]},
                )
                found = await cur.fetchall()
                if not found:
                    continue
                await cur.execute(
                    sql.SQL(
                        "UPDATE {table} AS t SET blocked = true, "
                        "metadata = coalesce(t.metadata, '{{}}'::jsonb) || jsonb_build_object({record}, r.seal) "
                        "FROM unnest(%(rows)s::text[], %(seals)s::text[]) AS r(id, seal) WHERE t.{id} = r.id"
                    ).format(table=sql.Identifier(table.name), id=sql.Identifier(table.id), record=sql.Literal(RECORD)),
                    {
                        "rows": [row for row, _ in found],
                        "seals": [record(key, table.name, row, tenant_uid, flag) for row, flag in found],
                    },
                )
                changed[table.name] = cur.rowcount
    return Changed(changed)


async def unblock(
    conn: psycopg.AsyncConnection[Any], key: bytes, tenant_uid: str, keys: Sequence[str]
) -> tuple[Changed, int]:
    """Unblock the tenant's rows Tenure blocked (their record verifies); the rest stay as they are. Also returns how
    many rows carry a record that does not verify (left blocked, record kept for a person to look at)."""
    ids = await _teams(conn, keys)
    changed: dict[str, int] = {}
    untrusted = 0
    async with conn.transaction():
        for table in TABLES:
            async with conn.cursor() as cur:
                await cur.execute(
                    sql.SQL(
                        "SELECT {id}, metadata->>{record} FROM {table} WHERE ({where}) AND metadata ? {record} "
                        "FOR UPDATE"
                    ).format(
                        id=sql.Identifier(table.id),
                        table=sql.Identifier(table.name),
                        where=sql.SQL(table.where),
                        record=sql.Literal(RECORD),
                    ),
                    {"teams": ids[TEAM], "organizations": ids[ORGANIZATION]},
                )
                checked = [
                    (row, prior(key, table.name, row, tenant_uid, str(raw))) for row, raw in await cur.fetchall()
                ]
                rows = [(row, flag) for row, (verifies, flag) in checked if verifies]
                untrusted += len(checked) - len(rows)
                if not rows:
                    continue
                await cur.execute(
                    sql.SQL(
                        "UPDATE {table} AS t SET blocked = r.prior, metadata = t.metadata - {record} "
                        "FROM unnest(%(rows)s::text[], %(priors)s::boolean[]) AS r(id, prior) WHERE t.{id} = r.id"
                    ).format(table=sql.Identifier(table.name), id=sql.Identifier(table.id), record=sql.Literal(RECORD)),
                    {"rows": [row for row, _ in rows], "priors": [flag for _, flag in rows]},
                )
                changed[table.name] = cur.rowcount
    return Changed(changed), untrusted
