"""Every row of a tenant's keys in a DataStore, streamed out as JSON Lines, for the customer to take along.

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
from .targets import Keys

FETCH = 5_000
"""Rows per write to the file."""


@dataclass
class TableExport:
    table: str
    rows: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def manifest(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "sha256": self.digest.hexdigest()}


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
) -> list[dict[str, Any]]:
    """Write every line through ``write``; returns the manifest's tables. ``conn`` must be in autocommit."""
    done: list[TableExport] = []
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for target in reversed(operations.targets_of(spec)):
            table = await postgres.describe_table(conn, target)
            selected = postgres.tenant_rows(target, table, keys) if table is not None else None
            if selected is None:
                continue
            where, params = selected
            current = TableExport(target.name)
            prefix = '{"table":' + json.dumps(target.name) + ',"row":'
            query = sql.SQL("COPY (SELECT row_to_json(t)::text FROM {} t WHERE {}) TO STDOUT").format(
                sql.Identifier(target.schema, target.table), where
            )
            async with conn.cursor() as cursor, cursor.copy(query, params) as copy:
                copy.set_types(["text"])
                batch: list[str] = []
                async for (row,) in copy.rows():
                    batch.append(row)
                    if len(batch) == FETCH:
                        _flush(current, prefix, batch, write, progress)
                _flush(current, prefix, batch, write, progress)
            done.append(current)
    return [table.manifest() for table in done]
