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
* **Sweeps** (active retention, :mod:`.sweeps`) pass every tenant's cutoff at
  once as arrays joined with ``unnest``: one statement per table and key
  column per batch, however many tenants there are, by page ranges.

Sessions and errors are in :mod:`.sessions`, the catalog in :mod:`.catalog`
(both re-exported here).

A purge ends with a count over the tenant's keys; it is done only when that
count is zero, so "purged" is proven, not assumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from .catalog import BINDABLE as BINDABLE
from .catalog import Column as Column
from .catalog import Leaf as Leaf
from .catalog import Table as Table
from .catalog import describe_table as describe_table
from .catalog import inspect as inspect
from .catalog import leaves as leaves
from .sessions import AUTHENTICATION as AUTHENTICATION
from .sessions import TIMED_OUT as TIMED_OUT
from .sessions import Session as Session
from .sessions import bindable as bindable
from .sessions import connect as connect
from .sessions import describe_error as describe_error
from .targets import Keys, Target

logger = logging.getLogger(__name__)

Progress = Callable[[int], Awaitable[None]]
"""Called after each batch with the rows it affected; may raise to stop at this batch boundary."""

SPARSE = 0.02
"""Below this share of a table's rows (planner estimate), a tenant's rows are deleted through indexes."""
MAX_PASSES = 5
"""Purge passes over a table before giving up on rows that keep arriving (the tenant is still writing)."""


Claimed = Mapping[str, Collection[str]]
"""Keys other tenants (not yet purged) claim, by kind: a row carrying one is theirs too, and a purge leaves it."""


def _key(column: str, table: Table, alias: str | None = None) -> sql.Composable:
    """A key column as compared with keys (which are text): cast to text unless it is text already.

    A cast column cannot use its index, so such tables are walked by pages.
    """
    ident = sql.Identifier(alias, column) if alias else sql.Identifier(column)
    return ident if _textual(table, column) else sql.SQL("{}::text").format(ident)


def _textual(table: Table, column: str) -> bool:
    found = table.columns.get(column)
    return found is None or found.type == "text" or found.type.startswith("character")


@dataclass(frozen=True)
class Match:
    """The rows a purge is responsible for: ``ours AND NOT theirs``, with named parameters."""

    ours: sql.Composable
    """At least one key column holds a key of the tenant."""
    theirs: sql.Composable
    """Some key column holds a key another tenant (not yet purged) claims."""
    params: dict[str, Any]

    @property
    def where(self) -> sql.Composable:
        return sql.SQL("{} AND NOT {}").format(self.ours, self.theirs)


def _matches(target: Target, table: Table, keys: Keys, others: Claimed | None = None) -> Match | None:
    """None when the tenant has no keys for this table."""
    ours, theirs, params = [], [], {}
    for i, (column, kind) in enumerate(target.key_columns):
        if values := keys.get(kind, ()):
            ours.append(sql.SQL("{} = ANY({})").format(_key(column, table), sql.Placeholder(f"o{i}")))
            params[f"o{i}"] = list(values)
        if claimed := (others or {}).get(kind, ()):
            # A hashed subplan: other tenants' keys can be thousands, and a constant array that long costs the
            # planner a selectivity estimate per element and partition (seconds on a table partitioned by day).
            theirs.append(
                sql.SQL("coalesce({} IN (SELECT unnest({}::text[])), false)").format(
                    _key(column, table), sql.Placeholder(f"s{i}")
                )
            )
            params[f"s{i}"] = list(claimed)
    if not ours:
        return None
    shared = sql.SQL(" OR ").join(theirs) if theirs else sql.SQL("false")
    return Match(sql.SQL("({})").format(sql.SQL(" OR ").join(ours)), sql.SQL("({})").format(shared), params)


def tenant_rows(target: Target, table: Table, keys: Keys) -> tuple[sql.Composable, dict[str, Any]] | None:
    """A condition selecting every row carrying one of the tenant's keys, with its parameters (None: no key)."""
    matched = _matches(target, table, keys)
    return (matched.ours, matched.params) if matched else None


async def _execute(conn: psycopg.AsyncConnection[Any], query: sql.Composed, params: Any) -> int:
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return cur.rowcount


@dataclass(frozen=True)
class Pace:
    """How fast a purge or sweep may go, so a database serving live traffic keeps its write latency."""

    rows_per_second: float | None = None
    """At most this many rows changed per second on average (at most a second's worth may come at once)."""
    pause: float = 0.0
    """Seconds to wait after every statement, at least."""


class Batches:
    """Rows per statement, halved each time a statement hits ``statement_timeout``, at the store's pace.

    (A ``lock_timeout`` is no reason to change fewer rows: it ends the attempt, which is retried later.)

    ``shrunk`` counts the halvings, for status: a store whose batches keep
    shrinking needs a longer timeout or a smaller ``batchSize``.
    """

    def __init__(self, size: int, pace: Pace = Pace()) -> None:
        if pace.rows_per_second:  # no statement changes more than a second's worth, the first one included
            size = max(1, min(size, int(pace.rows_per_second)))
        self.size, self.shrunk, self.pace = size, 0, pace
        self._due: float | None = None
        """When (monotonic) the rows changed so far are paid for at ``rows_per_second``; None before the first."""

    async def paced(self, rows: int) -> None:
        """Wait after a statement that changed ``rows`` as long as the pace asks (from the first statement on:
        no credit is saved up before it)."""
        wait = self.pace.pause
        if self.pace.rows_per_second:
            now = time.monotonic()
            start = now if self._due is None else max(self._due, now - 1.0)
            self._due = start + rows / self.pace.rows_per_second
            wait = max(wait, self._due - now)
        if wait > 0:
            await asyncio.sleep(wait)

    def shrink(self, error: Exception) -> None:
        if self.size == 1:
            raise error
        self.size, self.shrunk = max(1, self.size // 2), self.shrunk + 1
        logger.info("%s; batches shrink to %d rows", describe_error(error), self.size)


async def _pages(conn: psycopg.AsyncConnection[Any], target: Target) -> tuple[int, int]:
    """(heap pages now, rows per page at the last ANALYZE) of a leaf."""
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
    """Walks one leaf's heap in page ranges sized so each statement changes about a batch of rows.

    On each range every statement runs in turn, each repeated until it
    changes fewer than a batch of rows (``limit``), so a later statement never
    runs before an earlier one is done with the range. Ranges double while
    they hold less than half a batch (sparse tenants, or nothing past
    retention) and halve when they hold more than one and a half: transactions
    stay short, and a table where little changes is crossed in few
    statements. A statement that timed out is tried again with half the
    pages and half the rows.
    """

    MAX_PAGES = 16_384
    """128 MiB of heap per statement at most."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], leaf: Target, batches: Batches) -> None:
        self.conn, self.leaf, self.batches = conn, leaf, batches

    async def each(self, statements: Sequence[Statement]) -> AsyncIterator[tuple[int, int]]:
        """Runs the statements (given ``low`` and ``high`` tids and ``limit``) on every range.

        Yields (which statement, rows it changed) after every execution.
        """
        pages, density = await _pages(self.conn, self.leaf)
        start, step = 0, max(1, min(self.MAX_PAGES, self.batches.size // density))
        while True:
            if start > pages:  # the table may have grown while we walked it
                pages, _ = await _pages(self.conn, self.leaf)
                if start > pages:
                    return
            most = 0
            try:
                for index, statement in enumerate(statements):
                    total, rows = 0, self.batches.size
                    while rows >= self.batches.size:
                        rows = await statement(
                            {"low": f"({start},0)", "high": f"({start + step},0)", "limit": self.batches.size}
                        )
                        total += rows
                        yield index, rows
                    most = max(most, total)
            except psycopg.errors.QueryCanceled as error:
                self.batches.shrink(error)
                step = max(1, step // 2)
                continue
            start += step
            if most < self.batches.size // 2:
                step = min(self.MAX_PAGES, step * 2)
            elif most > self.batches.size * 3 // 2:
                step = max(1, step // 2)


Statement = Callable[[dict[str, Any]], Awaitable[int]]
"""One statement on one page range: given its bounds and row limit, returns the rows it changed."""


def _bound(conn: psycopg.AsyncConnection[Any], query: sql.Composed, params: dict[str, Any]) -> Statement:
    async def run(bounds: dict[str, Any]) -> int:
        return await _execute(conn, query, {**params, **bounds})

    return run


async def count(
    conn: psycopg.AsyncConnection[Any], target: Target, keys: Keys, others: Claimed | None = None
) -> tuple[int, int]:
    """The closing proof for one table: (rows the purge must still delete, rows it leaves to other tenants)."""
    table = await describe_table(conn, target)
    matched = _matches(target, table, keys, others) if table else None
    if matched is None:
        return 0, 0
    async with conn.cursor() as cur:
        await cur.execute(
            sql.SQL("SELECT count(*) FILTER (WHERE NOT {s}), count(*) FILTER (WHERE {s}) FROM {t} WHERE {o}").format(
                s=matched.theirs, t=_ident(target), o=matched.ours
            ),
            matched.params,
        )
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def tally(
    conn: psycopg.AsyncConnection[Any],
    target: Target,
    keys: Keys,
    before: datetime | None = None,
    filled: Sequence[str] = (),
    timeout: float = 10.0,
) -> tuple[int, bool]:
    """A preview's count (read-only): the tenant's rows in the table, only those dated before ``before`` if given,
    and of those only rows with one of the ``filled`` columns not yet cleared if given.

    Returns (rows, exact): the planner's estimate, not exact, when counting
    takes longer than ``timeout`` seconds.
    """
    table = await describe_table(conn, target)
    matched = _matches(target, table, keys) if table else None
    if matched is None or (before is not None and target.timestamp is None):
        return 0, True
    params = dict(matched.params)
    conditions = [matched.ours]
    if before is not None and target.timestamp is not None:
        stamp = "timestamptz" if "with time zone" in table.columns[target.timestamp].type else "timestamp"  # type: ignore[union-attr]
        moment = before if stamp == "timestamptz" else before.astimezone(UTC).replace(tzinfo=None)
        conditions.append(sql.SQL("{} < %(before)s::" + stamp).format(sql.Identifier(target.timestamp)))
        params["before"] = moment
    if filled:
        conditions.append(
            sql.SQL("({})").format(
                sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in filled)
            )
        )
    where = sql.SQL(" AND ").join(conditions)
    try:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT set_config('statement_timeout', %s, true)", [str(max(1, int(timeout * 1000)))])
            await cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_ident(target), where), params)
            row = await cur.fetchone()
        return (int(row[0]) if row else 0), True
    except TIMED_OUT:
        async with conn.cursor() as cur:
            await cur.execute(
                sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(_ident(target), where), params
            )
            plan = await cur.fetchone()
        return (int(plan[0][0]["Plan"]["Plan Rows"]) if plan else 0), False


async def _estimate(conn: psycopg.AsyncConnection[Any], target: Target, matched: Match) -> float:
    """The planner's estimate of the tenant's rows in the table (no scan)."""
    async with conn.cursor() as cur:
        await cur.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(_ident(target), matched.where),
            matched.params,
        )
        row = await cur.fetchone()
    assert row is not None
    return float(row[0][0]["Plan"]["Plan Rows"])


async def _rows(conn: psycopg.AsyncConnection[Any], target: Target) -> float:
    """The planner's row count of a table (a partitioned one: its leaves')."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT greatest(coalesce((SELECT sum(c.reltuples) FILTER (WHERE c.reltuples > 0) "
            "FROM pg_partition_tree(r) p JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf), "
            "(SELECT reltuples FROM pg_class WHERE oid = r)), 1) FROM to_regclass(%s) r",
            [sql.Identifier(target.schema, target.table).as_string(conn)],
        )
        row = await cur.fetchone()
    return float(row[0]) if row and row[0] is not None else 1.0


def _ident(target: Target) -> sql.Identifier:
    return sql.Identifier(target.schema, target.table)


@dataclass
class Purged:
    """What a purge of one table did."""

    deleted: int = 0
    shared: int = 0
    """Rows carrying the tenant's key that stayed: they also carry a key another tenant claims."""


async def purge(
    conn: psycopg.AsyncConnection[Any],
    target: Target,
    keys: Keys,
    batches: Batches,
    progress: Progress,
    others: Claimed | None = None,
) -> Purged:
    """Delete every row of the tenant from the table (each leaf partition in turn) in short batches.

    Ends only when the closing count finds none of the tenant's rows left (or
    raises after ``MAX_PASSES`` passes that each found new rows). Rows that
    also carry another tenant's key stay, and are counted in ``shared``.
    """
    table = await describe_table(conn, target)
    if table is None:
        return Purged()  # inspect() reports it, and the store is not Ready
    matched = _matches(target, table, keys, others)
    if matched is None:
        return Purged()
    indexed = all(
        column in table.leading_indexed and _textual(table, column)
        for column, kind in target.key_columns
        if keys.get(kind)
    )
    if indexed:  # index batches pay off only for a sparse tenant; a dense one is faster by pages
        indexed = await _estimate(conn, target, matched) < SPARSE * await _rows(conn, target)
    result = Purged()
    for _ in range(MAX_PASSES):
        for leaf in await leaves(conn, target):
            if indexed:
                rows = _index_batches(conn, leaf.target, matched, batches)
            else:
                query = sql.SQL(
                    "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} "
                    "WHERE ctid >= %(low)s::tid AND ctid < %(high)s::tid AND {w} LIMIT %(limit)s))"
                ).format(t=_ident(leaf.target), w=matched.where)
                walk = PageWalk(conn, leaf.target, batches).each([_bound(conn, query, matched.params)])
                rows = (affected async for _, affected in walk)
            async for affected in rows:
                result.deleted += affected
                await batches.paced(affected)
                await progress(affected)
        remaining, result.shared = await count(conn, target, keys, others)
        if remaining == 0:
            return result
    raise RuntimeError(f"rows of the tenant keep appearing in {target.name}; is the tenant still writing?")


async def _index_batches(
    conn: psycopg.AsyncConnection[Any], leaf: Target, matched: Match, batches: Batches
) -> AsyncIterator[int]:
    """Deletes up to a batch of the tenant's rows per statement, found through the leaf's indexes."""
    query = sql.SQL("DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {w} LIMIT %(limit)s))").format(
        t=_ident(leaf), w=matched.where
    )
    while True:
        try:
            affected = await _execute(conn, query, {**matched.params, "limit": batches.size})
        except psycopg.errors.QueryCanceled as error:
            batches.shrink(error)
            continue
        if affected == 0:
            return
        yield affected
