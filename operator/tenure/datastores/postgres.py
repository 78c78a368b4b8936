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

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class Session:
    """Limits every Tenure session sets, so a stuck statement or lock never holds the database (seconds)."""

    statement_timeout: float = 60.0
    lock_timeout: float = 5.0
    idle_in_transaction_session_timeout: float = 60.0
    application_name: str = "tenure"


async def connect(uri: str, session: Session = Session()) -> psycopg.AsyncConnection[Any]:
    """A connection in autocommit (each statement its own transaction), dates in UTC, bounded by ``session``.

    Parallel query is off for Tenure's sessions: background deletion must not
    take every core of a database that is serving live traffic. Plans are
    always custom: with the keys as constants PostgreSQL hashes ``= ANY`` key
    arrays, which a generic plan (after five executions) would scan row by row.
    """
    limits = " ".join(
        f"-c {name}={int(seconds * 1000)}"
        for name, seconds in (
            ("statement_timeout", session.statement_timeout),
            ("lock_timeout", session.lock_timeout),
            ("idle_in_transaction_session_timeout", session.idle_in_transaction_session_timeout),
        )
    )
    conn = await psycopg.AsyncConnection.connect(
        uri,
        autocommit=True,
        connect_timeout=10,
        application_name=session.application_name,
        options="-c TimeZone=UTC -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan " + limits,
    )
    return conn


def bindable(value: str) -> bool:
    """Whether a key can be bound as PostgreSQL text at all: a NUL, or text that is not UTF-8 (a lone surrogate),
    makes the whole statement fail (DataError), and no row can hold such a key, so leaving it out is exact."""
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


AUTHENTICATION = ("28P01", "28000")
"""SQLSTATEs of a refused login: invalid_password, invalid_authorization_specification."""


TIMED_OUT = (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)
"""``statement_timeout`` and ``lock_timeout``: not an outage."""


def describe_error(error: BaseException) -> str:
    """An error as people may see it, with the server's message: never the connection URI or its password."""
    if not isinstance(error, psycopg.Error):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    message = error.diag.message_primary  # the server's; client-side text may quote the connection string
    named = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if isinstance(error, psycopg.OperationalError) and not isinstance(error, TIMED_OUT):
        if error.sqlstate in AUTHENTICATION or _refused_login(error):
            return (
                "authentication failed: the server refused the user or password of the Secret's URI"
                f" ({type(error).__name__})"
            )
        return f"database unreachable ({named})"
    return named


_LOGIN_REFUSED = re.compile(
    r"FATAL: +(password authentication failed|role \"[^\"]*\" does not exist|no pg_hba\.conf entry)"
)


def _refused_login(error: psycopg.Error) -> bool:
    """A connection error whose server message (libpq's text, which never quotes the password) refuses the login:
    connection errors carry no SQLSTATE."""
    return bool(_LOGIN_REFUSED.search(str(error)))


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


def _qualifies(
    table: Table, sweep_pass: SweepPass, p: int, ts: str, stamp: str, params: dict[str, Any]
) -> tuple[sql.Composable, sql.Composable] | None:
    """The joins and condition selecting rows of a page range this pass changes; None when it binds no keys.

    Every key column joins the pass's keys and cutoffs (``k{p}_{i}``, ``b{p}_{i}``, added to ``params``); a row is
    past retention when dated before the earliest cutoff of its keys. A kept key's cutoff (KEPT) wins ``LEAST``,
    and the row is excluded even when dated -infinity.
    """
    columns = [column for column, cutoffs in sweep_pass.cutoffs.items() if cutoffs.keys]
    if not columns:
        return None
    naive = stamp == "timestamp"
    for i, column in enumerate(columns):
        cutoffs = sweep_pass.cutoffs[column]
        params[f"k{p}_{i}"] = cutoffs.keys
        params[f"b{p}_{i}"] = _naive(cutoffs.before) if naive else cutoffs.before
    joins = sql.SQL(" ").join(
        sql.SQL("LEFT JOIN unnest({k}::text[], {b}::{stamp}[]) AS {w}(k, before) ON {col} = {w}.k").format(
            k=sql.Placeholder(f"k{p}_{i}"),
            b=sql.Placeholder(f"b{p}_{i}"),
            stamp=sql.SQL(stamp),
            w=sql.Identifier(f"w{p}_{i}"),
            col=_key(column, table, "t"),
        )
        for i, column in enumerate(columns)
    )
    cutoff = sql.SQL("LEAST({})").format(
        sql.SQL(", ").join(sql.SQL("{}.before").format(sql.Identifier(f"w{p}_{i}")) for i in range(len(columns)))
    )
    pending: sql.Composable = sql.SQL("")
    if sweep_pass.clear:
        pending = sql.SQL(" AND ({})").format(
            sql.SQL(" OR ").join(sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(c)) for c in sweep_pass.clear)
        )
    condition = sql.SQL("(t.{ts} < {cutoff} AND {cutoff} > %(kept)s::{stamp}{pending})").format(
        ts=sql.Identifier(ts), cutoff=cutoff, stamp=sql.SQL(stamp), pending=pending
    )
    return joins, condition


_RANGE = "t.ctid >= %(low)s::tid AND t.ctid < %(high)s::tid"


def _deletion(leaf: Target, joins: sql.Composable, condition: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT t.ctid FROM {t} t {joins} WHERE " + _RANGE + " AND {c} "
        "LIMIT %(limit)s))"
    ).format(t=_ident(leaf), joins=joins, c=condition)


def _redaction(leaf: Target, passes: list[tuple[SweepPass, sql.Composable, sql.Composable]]) -> sql.Composed:
    """One UPDATE clearing every class's columns that are past their windows, returning which classes it cleared.

    One statement for all classes, so each row is rewritten once: a row's new version may land outside the page
    range, where a second statement on the range would no longer find it.
    """
    flags = [sql.Identifier(f"p{p}") for p in range(len(passes))]
    by_column: dict[str, list[sql.Identifier]] = {}
    for (sweep_pass, _, _), flag in zip(passes, flags, strict=True):
        for column in sweep_pass.clear:
            by_column.setdefault(column, []).append(flag)
    sets = sql.SQL(", ").join(
        sql.SQL("{c} = CASE WHEN {any} THEN NULL ELSE u.{c} END").format(
            c=sql.Identifier(column), any=sql.SQL(" OR ").join(sql.SQL("s.{}").format(f) for f in chosen)
        )
        for column, chosen in by_column.items()
    )
    return sql.SQL(
        "UPDATE {t} AS u SET {sets} FROM (SELECT t.ctid AS id, {selected} FROM {t} t {joins} WHERE " + _RANGE + " "
        "AND ({any}) LIMIT %(limit)s) s WHERE u.ctid = s.id RETURNING {returned}"
    ).format(
        t=_ident(leaf),
        sets=sets,
        selected=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(c, f) for (_, _, c), f in zip(passes, flags, strict=True)
        ),
        joins=sql.SQL(" ").join(j for _, j, _ in passes),
        any=sql.SQL(" OR ").join(c for _, _, c in passes),
        returned=sql.SQL(", ").join(sql.SQL("s.{}").format(f) for f in flags),
    )


def _counting(
    conn: psycopg.AsyncConnection[Any], query: sql.Composed, params: dict[str, Any], into: list[int], at: list[int]
) -> Statement:
    """Runs a redaction, adding the rows it cleared per class to ``into[at[i]]``; returns the rows it rewrote."""

    async def run(bounds: dict[str, Any]) -> int:
        async with conn.cursor() as cur:
            await cur.execute(query, {**params, **bounds})
            cleared = await cur.fetchall()
        for position, index in enumerate(at):
            into[index] += sum(1 for row in cleared if row[position])
        return len(cleared)

    return run


async def sweep(
    conn: psycopg.AsyncConnection[Any],
    target: Target,
    passes: Sequence[SweepPass],
    batches: Batches,
    progress: Progress,
) -> list[int]:
    """Apply every pass to the table in one walk over each leaf's pages; returns the rows each pass affected.

    Each statement covers one range of pages of one leaf for all tenants at
    once (their keys and cutoffs bound as arrays), so the work is one
    sequential pass over the table however many tenants there are, in short
    transactions. A range partition on the timestamp whose lowest possible
    time is not before any cutoff is skipped without being read.
    """
    affected = [0] * len(passes)
    if target.timestamp is None:
        return affected
    table = await describe_table(conn, target)
    if table is None:
        return affected
    with_zone = "with time zone" in table.columns[target.timestamp].type
    kept = KEPT if with_zone else KEPT.replace(tzinfo=None)
    latest = max(
        (moment for p in passes for cutoffs in p.cutoffs.values() for moment in cutoffs.before if moment != KEPT),
        default=None,
    )
    stamp = "timestamptz" if with_zone else "timestamp"
    for leaf in await leaves(conn, target):
        if latest is None or (leaf.lowest is not None and leaf.lowest >= latest):
            continue
        runs: list[tuple[Statement, int | None]] = []
        params: dict[str, Any] = {"kept": kept}
        clears, at = [], []
        for index, sweep_pass in enumerate(passes):
            found = _qualifies(table, sweep_pass, index, target.timestamp, stamp, params)
            if found is None:
                continue
            if sweep_pass.clear:
                clears.append((sweep_pass, *found))
                at.append(index)
            else:
                runs.append((_bound(conn, _deletion(leaf.target, *found), params), index))
        if clears:  # after the deletions: rows past their whole window are not rewritten first
            runs.append((_counting(conn, _redaction(leaf.target, clears), params, affected, at), None))
        walk = PageWalk(conn, leaf.target, batches).each([run for run, _ in runs])
        async for which, rows in walk:
            deleted_by = runs[which][1]
            if deleted_by is not None:
                affected[deleted_by] += rows
            await batches.paced(rows)
            await progress(rows)
    return affected
