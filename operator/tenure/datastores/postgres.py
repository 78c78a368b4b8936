"""The PostgreSQL deletion engine: batched, resumable, safe beside live traffic.

Every statement is its own short transaction (autocommit), so a gateway that
keeps inserting is never blocked for long, and a crash or a database outage
loses at most one batch of work, which the next attempt simply redoes:
deleting rows that are gone deletes nothing. Identifiers are always quoted
with ``psycopg.sql.Identifier`` and values always bound as parameters.

How rows are found without degrading:

* **Index batches** — when every tenant-key column is the leading column of an
  index and the tenant is sparse (under 2% of the table by the planner's
  estimate), each batch deletes up to ``batch`` rows found through the index.
  The indexes also make the closing count cheap.
* **Page ranges** — otherwise the table is walked once in ranges of heap
  pages (a TID range scan, PostgreSQL 14+), each range one statement, sized
  to change about ``batch`` rows (:class:`PageWalk`). The whole purge then
  costs about one sequential scan, where ``LIMIT`` batches over an unindexed
  column would rescan the table for every batch.
* **Sweeps** (active retention) pass every tenant's cutoff at once as arrays
  joined with ``unnest``: one statement per table and key column per batch,
  however many tenants there are, walking the timestamp index in order when
  there is one, page ranges otherwise.

A purge ends with a count over the tenant's keys; it is done only when that
count is zero, so "purged" is proven, not assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from .targets import Keys, Target

logger = logging.getLogger(__name__)

Progress = Callable[[int], Awaitable[None]]
"""Called after each batch with the rows it affected; may raise to stop at this batch boundary."""

SPARSE = 0.02
"""Below this share of a table's rows (planner estimate), a tenant's rows are deleted through indexes."""
MAX_PASSES = 5
"""Purge passes over a table before giving up on rows that keep arriving (the tenant is still writing)."""


async def connect(uri: str) -> psycopg.AsyncConnection[Any]:
    """A connection in autocommit (each statement its own transaction), dates in UTC.

    Parallel query is off for Tenure's sessions: background deletion must not
    take every core of a database that is serving live traffic. Plans are
    always custom: with the keys as constants PostgreSQL hashes ``= ANY`` key
    arrays, which a generic plan (after five executions) would scan row by row.
    """
    conn = await psycopg.AsyncConnection.connect(
        uri,
        autocommit=True,
        connect_timeout=10,
        application_name="tenure",
        options="-c TimeZone=UTC -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan",
    )
    return conn


def describe_error(error: BaseException) -> str:
    """An error as people may see it: never the connection URI or its password."""
    if isinstance(error, psycopg.OperationalError):
        return f"database unreachable ({type(error).__name__})"
    if isinstance(error, psycopg.Error) and error.diag.message_primary:
        return f"{type(error).__name__}: {error.diag.message_primary}"
    return type(error).__name__


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


async def describe_table(conn: psycopg.AsyncConnection[Any], target: Target) -> Table | None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT to_regclass(%s)::oid", [sql.Identifier(target.schema, target.table).as_string(conn)])
        row = await cur.fetchone()
        if row is None or row[0] is None:
            return None
        oid = row[0]
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
    return Table(columns, leading)


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
        for columns in target.redact.values():
            for column in columns:
                if column in table.columns and not table.columns[column].nullable:
                    problems.append(f"column {target.name}.{column} is NOT NULL and cannot be cleared")
    return problems


def _matches(target: Target, keys: Keys) -> tuple[sql.Composable, list[list[str]]] | None:
    """WHERE clause selecting the tenant's rows, and its parameters; None when it has no keys for this table."""
    clauses, params = [], []
    for column, kind in target.key_columns:
        values = keys.get(kind, ())
        if values:
            clauses.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
            params.append(list(values))
    if not clauses:
        return None
    return sql.SQL("({})").format(sql.SQL(" OR ").join(clauses)), params


async def _execute(conn: psycopg.AsyncConnection[Any], query: sql.Composed, params: Sequence[Any]) -> int:
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return cur.rowcount


async def _pages(conn: psycopg.AsyncConnection[Any], target: Target) -> tuple[int, int]:
    """(heap pages now, pages per range so a range holds about ``batch`` rows at the current density)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int, "
            "CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 50 END "
            "FROM pg_class c WHERE c.oid = to_regclass(%s)",
            [sql.Identifier(target.schema, target.table).as_string(conn)],
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), max(1, int(row[1]))


class PageWalk:
    """Walks a table's heap in page ranges sized so each statement changes about ``batch`` rows.

    Ranges start at ``batch`` rows' worth of pages and double while statements
    change fewer than half a batch (sparse tenants, or nothing past retention),
    halving when they change more than one and a half: transactions stay
    short, and a table where little changes is crossed in few statements.
    """

    MAX_PAGES = 16_384
    """128 MiB of heap per statement at most."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], target: Target, batch: int) -> None:
        self.conn, self.target, self.batch = conn, target, batch
        self.start, self.step, self.pages = 0, 0, -1

    async def next(self) -> tuple[str, str] | None:
        if self.pages < 0:
            self.pages, density = await _pages(self.conn, self.target)
            self.step = max(1, min(self.MAX_PAGES, self.batch // density))
        if self.start > self.pages:  # the table may have grown while we walked it
            self.pages, _ = await _pages(self.conn, self.target)
            if self.start > self.pages:
                return None
        low, self.start = self.start, self.start + self.step
        return f"({low},0)", f"({self.start},0)"

    def changed(self, rows: int) -> None:
        if rows < self.batch // 2:
            self.step = min(self.MAX_PAGES, self.step * 2)
        elif rows > self.batch * 3 // 2:
            self.step = max(1, self.step // 2)


async def count(conn: psycopg.AsyncConnection[Any], target: Target, keys: Keys) -> int:
    matched = _matches(target, keys)
    if matched is None:
        return 0
    where, params = matched
    async with conn.cursor() as cur:
        await cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_ident(target), where), params)
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _estimate(
    conn: psycopg.AsyncConnection[Any], target: Target, where: sql.Composable, params: list[Any]
) -> float:
    """The planner's estimate of the tenant's rows in the table (no scan)."""
    async with conn.cursor() as cur:
        await cur.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(_ident(target), where), params
        )
        row = await cur.fetchone()
    assert row is not None
    return float(row[0][0]["Plan"]["Plan Rows"])


async def _rows(conn: psycopg.AsyncConnection[Any], target: Target) -> float:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT greatest(reltuples, 1) FROM pg_class WHERE oid = to_regclass(%s)",
            [sql.Identifier(target.schema, target.table).as_string(conn)],
        )
        row = await cur.fetchone()
    return float(row[0]) if row else 1.0


def _ident(target: Target) -> sql.Identifier:
    return sql.Identifier(target.schema, target.table)


async def purge(conn: psycopg.AsyncConnection[Any], target: Target, keys: Keys, batch: int, progress: Progress) -> int:
    """Delete every row of the tenant from the table in short batches; returns rows deleted.

    Ends only when a count over the tenant's keys is zero (or raises after
    ``MAX_PASSES`` passes that each found new rows).
    """
    matched = _matches(target, keys)
    if matched is None:
        return 0
    where, params = matched
    table = await describe_table(conn, target)
    if table is None:
        return 0  # already reported by inspect(); a table that is gone holds no rows
    indexed = all(column in table.leading_indexed for column, kind in target.key_columns if keys.get(kind))
    if indexed:  # index batches pay off only for a sparse tenant; a dense one is faster by pages
        indexed = await _estimate(conn, target, where, params) < SPARSE * await _rows(conn, target)
    deleted = 0
    for _ in range(MAX_PASSES):
        if indexed:
            query = sql.SQL("DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {w} LIMIT %s))").format(
                t=_ident(target), w=where
            )
            while (affected := await _execute(conn, query, [*params, batch])) > 0:
                deleted += affected
                await progress(affected)
        else:
            query = sql.SQL("DELETE FROM {t} WHERE ctid >= %s::tid AND ctid < %s::tid AND {w}").format(
                t=_ident(target), w=where
            )
            walk = PageWalk(conn, target, batch)
            while (bounds := await walk.next()) is not None:
                affected = await _execute(conn, query, [*bounds, *params])
                walk.changed(affected)
                deleted += affected
                await progress(affected)
        if await count(conn, target, keys) == 0:
            return deleted
    raise RuntimeError(f"rows of the tenant keep appearing in {target.name}; is the tenant still writing?")


KEPT = datetime(1, 1, 1, tzinfo=UTC)
"""The cutoff of a key whose rows are kept (held, no window for the class): a row it applies to is never changed."""


@dataclass(frozen=True)
class Cutoffs:
    """For one key column, rows whose key is ``keys[i]`` are past retention when dated before ``before[i]``."""

    keys: list[str]
    before: list[datetime]


@dataclass(frozen=True)
class SweepPass:
    """One change applied to every page range: delete past-retention rows, or clear columns in them."""

    cutoffs: Mapping[str, Cutoffs]
    """Per key column."""
    clear: tuple[str, ...] = ()
    """Columns set to NULL; empty means the rows are deleted."""


def _naive(moments: list[datetime]) -> list[datetime]:
    return [moment.astimezone(UTC).replace(tzinfo=None) for moment in moments]


def _sweep_statement(target: Target, sweep_pass: SweepPass, stamp: str) -> tuple[sql.Composed, list[str]]:
    """The statement for one page range, and the key columns whose arrays it binds (in order)."""
    columns = [column for column, cutoffs in sweep_pass.cutoffs.items() if cutoffs.keys]
    ts = sql.Identifier(target.timestamp or "")
    joins = sql.SQL(" ").join(
        sql.SQL("LEFT JOIN unnest(%s::text[], %s::{stamp}[]) AS {w}(k, before) ON t.{col} = {w}.k").format(
            stamp=sql.SQL(stamp), w=sql.Identifier(f"w{i}"), col=sql.Identifier(column)
        )
        for i, column in enumerate(columns)
    )
    cutoff = sql.SQL("LEAST({})").format(
        sql.SQL(", ").join(sql.SQL("{}.before").format(sql.Identifier(f"w{i}")) for i in range(len(columns)))
    )
    pending: sql.Composable = sql.SQL("")
    if sweep_pass.clear:
        pending = sql.SQL(" AND ({})").format(
            sql.SQL(" OR ").join(sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(c)) for c in sweep_pass.clear)
        )
    # A kept key's cutoff (KEPT) wins LEAST, and the row is excluded even when dated -infinity.
    rows = sql.SQL(
        "SELECT t.ctid FROM {t} t {joins} WHERE t.ctid >= %s::tid AND t.ctid < %s::tid "
        "AND t.{ts} < {cutoff} AND {cutoff} > %s::{stamp}{pending}"
    ).format(t=_ident(target), joins=joins, ts=ts, cutoff=cutoff, stamp=sql.SQL(stamp), pending=pending)
    if sweep_pass.clear:
        sets = sql.SQL(", ").join(sql.SQL("{} = NULL").format(sql.Identifier(c)) for c in sweep_pass.clear)
        change = sql.SQL("UPDATE {t} SET {sets} WHERE ctid = ANY(ARRAY({rows}))").format(
            t=_ident(target), sets=sets, rows=rows
        )
    else:
        change = sql.SQL("DELETE FROM {t} WHERE ctid = ANY(ARRAY({rows}))").format(t=_ident(target), rows=rows)
    return change, columns


async def sweep(
    conn: psycopg.AsyncConnection[Any],
    target: Target,
    passes: Sequence[SweepPass],
    batch: int,
    progress: Progress,
) -> list[int]:
    """Apply every pass to the table in one walk over its pages; returns the rows each pass affected.

    Each statement covers one range of pages for all tenants at once (their
    keys and cutoffs bound as arrays), so the work is one sequential pass over
    the table however many tenants there are, in short transactions.
    """
    affected = [0] * len(passes)
    if target.timestamp is None:
        return affected
    table = await describe_table(conn, target)
    if table is None:
        return affected
    with_zone = "with time zone" in table.columns[target.timestamp].type
    statements = []
    for index, sweep_pass in enumerate(passes):
        statement, columns = _sweep_statement(target, sweep_pass, "timestamptz" if with_zone else "timestamp")
        if not columns:
            continue
        arrays: list[Any] = []
        for column in columns:
            cutoffs = sweep_pass.cutoffs[column]
            arrays += [cutoffs.keys, cutoffs.before if with_zone else _naive(cutoffs.before)]
        statements.append((index, statement, arrays))
    if not statements:
        return affected
    kept = KEPT if with_zone else KEPT.replace(tzinfo=None)
    walk = PageWalk(conn, target, batch)
    while (bounds := await walk.next()) is not None:
        most = 0
        for index, statement, arrays in statements:
            rows = await _execute(conn, statement, [*arrays, *bounds, kept])
            affected[index] += rows
            most = max(most, rows)
            await progress(rows)
        walk.changed(most)
    return affected
