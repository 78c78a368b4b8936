"""The plan's row counts (postgres.tally) on a real PostgreSQL: exact, by age and by filled column, and the
planner's estimate, marked, when counting exceeds the statement timeout."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tenure.datastores import postgres
from tenure.datastores.targets import KEY, Target

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RECORDS = Target("public", "records", (("tenant", KEY),), "usage", "at", {"prompts": ("prompt",)})


def fill(uri: str, rows: int) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE records (tenant text, at timestamptz, prompt text)")
        conn.execute(
            "INSERT INTO records SELECT CASE WHEN i %% 2 = 0 THEN 'acme' ELSE 'globex' END, "
            "%s::timestamptz - make_interval(days => i %% 10), CASE WHEN i %% 4 = 0 THEN 'p' END "
            "FROM generate_series(1, %s) i",
            [NOW, rows],
        )
        conn.execute("ANALYZE records")


def tally(uri: str, timeout: float, **options: Any) -> tuple[int, bool]:
    async def main() -> tuple[int, bool]:
        conn = await postgres.connect(uri)
        try:
            return await postgres.tally(conn, RECORDS, {KEY: ("acme",)}, timeout=timeout, **options)
        finally:
            await conn.close()

    return asyncio.run(main())


def test_counts_are_exact_by_age_and_filled_columns(postgres_db: str) -> None:
    fill(postgres_db, 1000)
    assert tally(postgres_db, 60) == (500, True)
    assert tally(postgres_db, 60, before=NOW - timedelta(days=5)) == (200, True)  # ages 6, 8 of 0..9 (even i)
    assert tally(postgres_db, 60, before=NOW - timedelta(days=5), filled=("prompt",)) == (100, True)


def test_a_count_past_the_statement_timeout_becomes_a_marked_estimate(postgres_db: str) -> None:
    fill(postgres_db, 3_000_000)
    rows, exact = tally(postgres_db, 0.001)
    assert not exact
    assert 1_000_000 < rows < 2_000_000  # the planner's estimate of 1.5M
