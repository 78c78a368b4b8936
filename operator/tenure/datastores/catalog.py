"""What the catalog says about a mapped table: its columns, the columns that lead an index, its leaf partitions.

Split from :mod:`.postgres` (which re-exports these); readiness (:func:`inspect`)
names every missing table or column and every column that cannot hold a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from .targets import Target


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool


@dataclass(frozen=True)
class Table:
    """What the catalog says about a mapped table."""

    columns: Mapping[str, Column]
    leading_indexed: frozenset[str]
    """Columns that lead some index (usable to find rows by that column)."""
    partitioned: bool = False
    """A natively partitioned table: its rows are in its leaf partitions, each with its own ``ctid`` space."""


@dataclass(frozen=True)
class Leaf:
    """A table that holds rows itself: a plain table, or one leaf partition of a partitioned one."""

    target: Target
    """The mapping, addressing this leaf directly."""
    lowest: datetime | None = None
    """The earliest timestamp the leaf can hold, when it is a range partition on the target's timestamp."""


BINDABLE = ("text", "character varying", "character", "uuid", "bigint", "integer", "smallint")
"""Key column types Tenure can match keys against (keys are compared as text, the column cast to text)."""


async def describe_table(conn: psycopg.AsyncConnection[Any], target: Target) -> Table | None:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT c.oid, c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass(%s)",
            [sql.Identifier(target.schema, target.table).as_string(conn)],
        )
        row = await cur.fetchone()
        if row is None:
            return None
        oid, partitioned = row
        await cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
            [oid],
        )
        columns = {name: Column(name, type_, nullable) for name, type_, nullable in await cur.fetchall()}
        await cur.execute(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = %s AND i.indisvalid",
            [oid],
        )
        leading = frozenset(name for (name,) in await cur.fetchall())
    return Table(columns, leading, partitioned)


_LOWEST = re.compile(r"^FOR VALUES FROM \('([^']+)'\)")


async def leaves(conn: psycopg.AsyncConnection[Any], target: Target) -> list[Leaf]:
    """The tables holding the target's rows: itself, or every leaf partition (DEFAULT included).

    A ``ctid`` is unique only inside one leaf, so everything that selects rows
    by ``ctid`` runs on leaves, never through a partitioned parent.
    """
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT p.isleaf, n.nspname, c.relname, "
            "CASE WHEN p.parentrelid = pt.partrelid AND pt.partstrat = 'r' AND pt.partnatts = 1 "
            "AND a.attname = %s THEN pg_get_expr(c.relpartbound, c.oid) END "
            "FROM pg_partition_tree(to_regclass(%s)) p JOIN pg_class c ON c.oid = p.relid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_partitioned_table pt ON pt.partrelid = to_regclass(%s) "
            "LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0] "
            "ORDER BY c.relname",
            [target.timestamp or "", *[sql.Identifier(target.schema, target.table).as_string(conn)] * 2],
        )
        rows = await cur.fetchall()
    if not rows:  # not partitioned: the table itself
        return [Leaf(target)]
    found = []
    for leaf, schema, table, bound in rows:
        if not leaf:
            continue
        lowest = None
        if bound and (match := _LOWEST.match(bound)):
            moment = datetime.fromisoformat(match.group(1))
            lowest = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        found.append(Leaf(replace(target, schema=schema, table=table), lowest))
    return found


async def inspect(conn: psycopg.AsyncConnection[Any], targets: Iterable[Target]) -> list[str]:
    """Problems with the mapping, each naming the table or column; empty when everything exists."""
    problems = []
    for target in targets:
        table = await describe_table(conn, target)
        if table is None:
            problems.append(f"table {target.name} does not exist")
            continue
        for column in sorted(target.columns()):
            if column not in table.columns:
                problems.append(f"column {target.name}.{column} does not exist")
        for column, _ in target.key_columns:
            found = table.columns.get(column)
            if found is not None and found.type.split("(")[0] not in BINDABLE:
                problems.append(f"column {target.name}.{column} has type {found.type}, which cannot hold a tenant key")
        for columns in target.redact.values():
            for column in columns:
                if column in table.columns and not table.columns[column].nullable:
                    problems.append(f"column {target.name}.{column} is NOT NULL and cannot be cleared")
    return problems
