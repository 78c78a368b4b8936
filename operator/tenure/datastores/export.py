"""Every row of a tenant's keys in a DataStore, streamed out as JSON Lines, for the customer to take along.

Rows follow the purge's own rule (``postgres._matches``): a row that also
carries a key another tenant (not yet purged) claims is theirs too and is left
out, as a purge leaves it; per table the rows left out are counted and the
tenants claiming them named (:class:`LeftOut`), from the same snapshot.

Rows are read in one read-only, repeatable-read transaction (one consistent
snapshot, and the database refuses any write in it) with ``COPY ... TO
STDOUT``, streamed and written 5,000 rows at a time: no table is ever held in
memory. PostgreSQL turns
each row into JSON (``row_to_json``), so every type comes out as the database
itself renders it. Tables come in the reverse of the purge order: what is
referenced (organizations, teams) before what references it (keys, spend
logs), so loading the file in order keeps references valid.

Each line is ``{"table": "<schema>.<table>", "row": {...}}``. Per table the
manifest counts the rows and gives the sha256 of its row texts, each followed
by a newline, in file order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from tenure.api import DataStoreSpec

from . import operations, postgres
from .operations import Owners
from .targets import Keys, Target

FETCH = 5_000
"""Rows per write to the file."""


@dataclass
class TableExport:
    table: str
    rows: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def manifest(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "sha256": self.digest.hexdigest()}


@dataclass
class LeftOut:
    """Rows of one table carrying the tenant's key that were not exported: another tenant claims them too."""

    table: str
    rows: int
    tenants: tuple[str, ...]

    def manifest(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "tenants": list(self.tenants)}


def _flush(
    current: TableExport,
    prefix: str,
    batch: list[str],
    write: Callable[[str], object],
    progress: Callable[[str, int], None],
) -> None:
    write("".join(f"{prefix}{row}}}\n" for row in batch))
    current.digest.update("".join(f"{row}\n" for row in batch).encode())
    current.rows += len(batch)
    progress(current.table, len(batch))
    batch.clear()


async def export(
    conn: psycopg.AsyncConnection[Any],
    spec: DataStoreSpec,
    keys: Keys,
    write: Callable[[str], object],
    progress: Callable[[str, int], None] = lambda table, rows: None,
    owners: Owners | None = None,
    left_out: list[LeftOut] | None = None,
) -> list[dict[str, Any]]:
    """Write every line through ``write``; returns the manifest's tables. ``conn`` must be in autocommit.

    ``owners`` (from :func:`operations.key_owners` over every other tenant not yet purged) are the keys others
    claim: rows carrying one are left out, and each table's are appended to ``left_out``.
    """
    claimed = {kind: tuple(values) for kind, values in (owners or {}).items()}
    done: list[TableExport] = []
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for target in reversed(operations.targets_of(spec)):
            table = await postgres.describe_table(conn, target)
            matched = postgres._matches(target, table, keys, claimed) if table is not None else None
            if table is None or matched is None:
                continue
            current = TableExport(target.name)
            prefix = '{"table":' + json.dumps(target.name) + ',"row":'
            query = sql.SQL("COPY (SELECT row_to_json(t)::text FROM {} t WHERE {}) TO STDOUT").format(
                sql.Identifier(target.schema, target.table), matched.where
            )
            async with conn.cursor() as cursor, cursor.copy(query, matched.params) as copy:
                copy.set_types(["text"])
                batch: list[str] = []
                async for (row,) in copy.rows():
                    batch.append(row)
                    if len(batch) == FETCH:
                        _flush(current, prefix, batch, write, progress)
                _flush(current, prefix, batch, write, progress)
            done.append(current)
            if claimed and left_out is not None:
                kept = await _left_out(conn, target, matched, owners or {})
                if kept is not None:
                    left_out.append(kept)
    return [table.manifest() for table in done]


async def _left_out(
    conn: psycopg.AsyncConnection[Any], target: Target, matched: postgres.Match, owners: Owners
) -> LeftOut | None:
    """The table's rows of the tenant that another tenant claims too, and who claims them (None: none)."""
    ident = sql.Identifier(target.schema, target.table)
    async with conn.cursor() as cur:
        await cur.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} AND {}").format(ident, matched.ours, matched.theirs),
            matched.params,
        )
        row = await cur.fetchone()
        rows = int(row[0]) if row else 0
        if not rows:
            return None
        tenants: set[str] = set()
        for column, kind in target.key_columns:
            claimed = owners.get(kind) or {}
            if not claimed:
                continue
            await cur.execute(
                sql.SQL("SELECT DISTINCT {c}::text FROM {t} WHERE {o} AND {c}::text = ANY(%(claimed)s)").format(
                    c=sql.Identifier(column), t=ident, o=matched.ours
                ),
                {**matched.params, "claimed": list(claimed)},
            )
            for (value,) in await cur.fetchall():
                tenants |= claimed.get(value, set())
    return LeftOut(target.name, rows, tuple(sorted(tenants)))
