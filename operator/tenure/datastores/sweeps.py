"""Active-data retention sweeps in the PostgreSQL engine: every tenant's cutoffs in the same statements.

Sweeps pass every tenant's cutoff at once as arrays joined with ``unnest``:
one statement per table and key column per batch, however many tenants there
are, walking each leaf's pages in ranges (:class:`~tenure.datastores.postgres.PageWalk`),
each statement its own short transaction. Split from :mod:`.postgres`, which
holds the engine they share with purges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from .postgres import Batches, PageWalk, Progress, Statement, Table, _bound, _ident, _key, describe_table, leaves
from .targets import Target

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
