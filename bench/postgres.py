"""make bench-postgres: purging one tenant from LiteLLM_SpendLogs, and sweeping 1,000 tenants.

On a throwaway PostgreSQL with LiteLLM's real schema (its migrations), one
base database holds ``--rows`` spend logs across ``--tenants`` teams, the
first team holding ``--victim-rows`` of them, interleaved through the table
(every tenth row), dated uniformly over the past year. Every measurement
runs on a fresh copy of that base (``CREATE DATABASE … TEMPLATE``), so each
strategy starts from the same pages, in one run:

1. one ``DELETE … WHERE team_id = …`` statement (the ceiling);
2. LiteLLM's own cleanup pattern: ``find_many(take=1000)`` by startTime, then
   ``delete_many`` by request_id, repeated (capped at ``--litellm-seconds``:
   it slows down as dead rows pile up, so its measured rate flatters it);
3. the operator's own purge path (``tenure.datastores.operations.purge``: every
   table of the preset, each ending with its one closing count), with the
   count timed again on its own, and again with the documented opt-in
   indexes on team_id and api_key;
4. the p99 latency of a concurrent single-row insert load (4 connections,
   400 inserts/s, a busy gateway) without a purge, during Tenure's purge,
   during the same purge paced (``spec.postgres.pacing``: ``--pace-rows-per-second``,
   ``--pause-ms``) with the rate it keeps, and during the single DELETE;
5. one active-retention sweep over all tenants, each with its own usage
   window and prompts and responses cleared after 7 days (the documented
   use), then a second sweep (the steady state: nothing left to change);
6. the same purge and sweeps on a copy whose spend logs are partitioned by
   day the way LiteLLM's runbook converts them (a reconstruction of
   ``db_scripts/partition_spend_logs.sql``, rows copied in, the legacy table
   dropped so both hold the same data).

``--rows`` scales everything down for a quick run; RESULTS.md says which scale each number is from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import signal
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.litellm import partition_spend_logs  # noqa: E402
from tests.support.postgres import Postgres, create_litellm_database  # noqa: E402

from tenure.api import DataStoreSpec  # noqa: E402
from tenure.api.datastore import Pacing  # noqa: E402
from tenure.datastores import litellm, operations, postgres  # noqa: E402

OUT = REPO / "bench" / "out"
VICTIM = "team-0000"
SETTINGS = ["shared_buffers=2GB", "max_wal_size=4GB", "maintenance_work_mem=1GB", "autovacuum=off"]
SPEC = DataStoreSpec.model_validate(
    {"postgres": {"connectionSecretRef": {"namespace": "x", "name": "y"}, "preset": "litellm", "batchSize": 5000}}
)
SPEND_LOGS = next(t for t in litellm.TARGETS if t.table == "LiteLLM_SpendLogs")
CONTENT = "x" * 160


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def team(i: str) -> str:
    return f"'team-' || lpad(({i})::text, 4, '0')"


def generate(uri: str, rows: int, tenants: int, victim_every: int) -> None:
    """Spend logs as the proxy writes them, with prompt and response content, in 1M-row chunks."""
    owner = f"CASE WHEN g %% {victim_every} = 0 THEN 0 ELSE 1 + g %% {tenants - 1} END"
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO "LiteLLM_TeamTable" (team_id) SELECT '
            + team("i")
            + f" FROM generate_series(0, {tenants - 1}) i"
        )
        conn.execute(
            'INSERT INTO "LiteLLM_VerificationToken" (token, team_id) SELECT '
            + "'key-' || lpad(i::text, 4, '0'), "
            + team("i")
            + f" FROM generate_series(0, {tenants - 1}) i"
        )
        for start in range(1, rows + 1, 1_000_000):
            end = min(rows, start + 999_999)
            conn.execute(
                'INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend, total_tokens, '
                '"startTime", "endTime", model, team_id, messages, response, proxy_server_request) '
                f"SELECT 'req-' || g, 'acompletion', 'key-' || lpad(({owner})::text, 4, '0'), 0.001, 120, "
                f"now() - (g::bigint * 31536000 / {rows}) * interval '1 second', "
                f"now() - (g::bigint * 31536000 / {rows}) * interval '1 second', "
                f"'gpt-4o', {team(owner)}, "
                "jsonb_build_array(jsonb_build_object('role', 'user', 'content', %s::text)), "
                "jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('text', %s::text))), "
                "jsonb_build_object('messages', jsonb_build_array(%s::text)) "
                f"FROM generate_series({start}, {end}) g",
                [CONTENT, CONTENT, CONTENT],
            )
            log(f"  {end:,} rows")
        conn.execute('VACUUM ANALYZE "LiteLLM_SpendLogs"')


def partition(server: Postgres) -> float:
    """Database ``partitioned``: the base with its spend logs partitioned by day, one partition per day of data."""
    started = time.perf_counter()
    uri = copy(server, "partitioned")
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute('SELECT min("startTime")::date, max("startTime")::date FROM "LiteLLM_SpendLogs"').fetchone()
        assert row is not None
        first, last = row
        partition_spend_logs(conn, (first + timedelta(days=d) for d in range((last - first).days + 1)))
        conn.execute('INSERT INTO "LiteLLM_SpendLogs" SELECT * FROM "LiteLLM_SpendLogs_legacy"')
        conn.execute('DROP TABLE "LiteLLM_SpendLogs_legacy"')
        conn.execute('VACUUM ANALYZE "LiteLLM_SpendLogs"')
    return time.perf_counter() - started


def copy(server: Postgres, name: str, template: str = "base") -> str:
    with psycopg.connect(server.uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return server.database_uri(name)


def drop(server: Postgres, name: str) -> None:
    with psycopg.connect(server.uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def victim_rows(uri: str) -> int:
    with psycopg.connect(uri) as conn:
        row = conn.execute('SELECT count(*) FROM "LiteLLM_SpendLogs" WHERE team_id = %s', [VICTIM]).fetchone()
    return int(row[0]) if row else 0


async def single_delete(uri: str) -> tuple[int, float]:
    conn = await psycopg.AsyncConnection.connect(uri, autocommit=True)
    started = time.perf_counter()
    cur = await conn.execute('DELETE FROM "LiteLLM_SpendLogs" WHERE team_id = %s', [VICTIM])
    elapsed = time.perf_counter() - started
    await conn.close()
    return cur.rowcount, elapsed


async def litellm_batches(uri: str, limit: float) -> tuple[int, float, bool]:
    """LiteLLM's cleanup loop (find 1000 by startTime, delete them by request_id), aimed at one team."""
    conn = await psycopg.AsyncConnection.connect(uri, autocommit=True)
    deleted, started, finished = 0, time.perf_counter(), False
    while time.perf_counter() - started < limit:
        cur = await conn.execute(  # Prisma's find_many returns whole rows, content included
            'SELECT * FROM "LiteLLM_SpendLogs" WHERE team_id = %s AND "startTime" < now() LIMIT 1000', [VICTIM]
        )
        ids = [row[0] for row in await cur.fetchall()]
        if not ids:
            finished = True
            break
        await conn.execute('DELETE FROM "LiteLLM_SpendLogs" WHERE request_id = ANY(%s)', [ids])
        deleted += len(ids)
    elapsed = time.perf_counter() - started
    await conn.close()
    return deleted, elapsed, finished


KEYS = {litellm.TEAM: (VICTIM,), litellm.TOKEN: ("key-0000",)}


def paced(rows_per_second: int | None, pause_ms: int) -> DataStoreSpec:
    """The benchmark's DataStore with ``spec.postgres.pacing``."""
    pacing = {"rowsPerSecond": rows_per_second, "pauseMilliseconds": pause_ms}
    return SPEC.model_copy(update={"postgres": SPEC.postgres.model_copy(update={"pacing": Pacing(**pacing)})})


async def tenure_purge(uri: str, spec: DataStoreSpec = SPEC) -> tuple[int, float]:
    """The operator's purge path: every table of the preset, each closed by one count, other tenants' claims bound."""
    conn = await postgres.connect(uri)

    async def ignore(rows: int) -> None:
        pass

    others = {f"tenant-{i:04d}": (f"team-{i:04d}",) for i in range(1, 1000)}
    started = time.perf_counter()
    result = await operations.purge(conn, spec, KEYS, others, ignore)
    elapsed = time.perf_counter() - started
    await conn.close()
    assert not result.shared, result.shared
    return result.deleted, elapsed


async def proof_count(uri: str) -> float:
    """Seconds of the spend logs' closing count (run again here to split the purge's time)."""
    conn = await postgres.connect(uri)
    started = time.perf_counter()
    assert await postgres.count(conn, SPEND_LOGS, KEYS) == (0, 0)
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


def create_opt_in_indexes(uri: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(uri, autocommit=True) as conn:
        for column in ("team_id", "api_key"):
            conn.execute(f'CREATE INDEX CONCURRENTLY ON "LiteLLM_SpendLogs" ({column})')
    return time.perf_counter() - started


async def insert_load(
    uri: str, stop: Any, ready: Any, samples: list[tuple[float, float]], writers: int = 4, rate: float = 100
) -> None:
    """Single-row inserts for other tenants, each writer at ``rate`` per second, as a live gateway writes spend logs.

    Records (wall-clock start, latency) of every insert, latency counted from when the insert was due (so a
    stalled writer's late inserts count as slow, not as missing: no coordinated omission).
    """
    conns = [await psycopg.AsyncConnection.connect(uri, autocommit=True) for _ in range(writers)]
    ready.set()

    async def writer(n: int, conn: psycopg.AsyncConnection[Any]) -> None:
        i = 0
        next_at = time.perf_counter()
        while not stop.is_set():
            i += 1
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            started, wall = next_at, time.time()
            await conn.execute(
                'INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, "startTime", "endTime", team_id, '
                "messages) VALUES (%s, 'acompletion', 'key-0001', now(), now(), 'team-0001', %s)",
                [f"live-{n}-{i}-{time.time_ns()}", json.dumps([{"role": "user", "content": CONTENT}])],
            )
            samples.append((wall, time.perf_counter() - started))
        await conn.close()

    await asyncio.gather(*(writer(n, conn) for n, conn in enumerate(conns)))


def _load_process(uri: str, stop: Any, ready: Any, out: Any) -> None:
    samples: list[tuple[float, float]] = []
    asyncio.run(insert_load(uri, stop, ready, samples))
    out.put(samples)


async def load_while(uri: str, work: Any) -> tuple[list[float], Any]:
    """Latencies of the inserts (from a separate process, as a gateway is) started while ``work`` ran."""
    context = multiprocessing.get_context("spawn")
    stop, ready, out = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=_load_process, args=(uri, stop, ready, out))
    process.start()
    await asyncio.to_thread(ready.wait)
    await asyncio.sleep(1.0)  # pacing settled
    began = time.time()
    result = await work
    ended = time.time()
    stop.set()
    samples: list[tuple[float, float]] = await asyncio.to_thread(out.get)
    process.join()
    return [latency for at, latency in samples if began <= at <= ended], result


async def idle(seconds: float) -> None:
    await asyncio.sleep(seconds)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else float("nan")


async def sweep_all(uri: str, tenants: int) -> tuple[operations.SweepResult, float]:
    """One sweep with a distinct usage window per tenant (1 to 365 days), prompts and responses 7 days."""
    now = datetime.now(UTC)
    keys = {f"tenant-{i:04d}": (f"team-{i:04d}",) for i in range(tenants)}
    cutoffs = {
        f"tenant-{i:04d}": {
            "usage": now - timedelta(days=1 + i * 364 // max(1, tenants - 1)),
            "prompts": now - timedelta(days=7),
            "responses": now - timedelta(days=7),
        }
        for i in range(tenants)
    }
    conn = await postgres.connect(uri)

    async def ignore(rows: int) -> None:
        pass

    started = time.perf_counter()
    result = await operations.sweep(conn, SPEC, keys, cutoffs, ignore)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    await conn.close()
    return result, elapsed


async def measure(server: Postgres, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"rows": args.rows, "tenants": args.tenants}
    uri = copy(server, "run")
    results["victim_rows"] = victim_rows(uri)
    deleted, elapsed = await single_delete(uri)
    results["single_delete"] = {"rows": deleted, "seconds": round(elapsed, 2), "rows_per_s": round(deleted / elapsed)}
    log(f"single DELETE: {deleted:,} rows in {elapsed:.1f}s")

    uri = copy(server, "run")
    deleted, elapsed, finished = await litellm_batches(uri, args.litellm_seconds)
    results["litellm_batches"] = {
        "rows": deleted,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(deleted / elapsed),
        "finished": finished,
    }
    log(f"LiteLLM-style batches: {deleted:,} rows in {elapsed:.1f}s (finished: {finished})")

    uri = copy(server, "run")
    deleted, elapsed = await tenure_purge(uri)
    results["tenure"] = {"rows": deleted, "seconds": round(elapsed, 2), "rows_per_s": round(deleted / elapsed)}
    results["tenure"]["remaining"] = victim_rows(uri)
    results["tenure"]["proof_count_s"] = round(await proof_count(uri), 2)
    log(
        f"Tenure purge: {deleted:,} rows in {elapsed:.1f}s "
        f"(its closing count alone: {results['tenure']['proof_count_s']}s)"
    )

    uri = copy(server, "run")
    build = create_opt_in_indexes(uri)
    deleted, elapsed = await tenure_purge(uri)
    results["tenure_with_opt_in_indexes"] = {
        "rows": deleted,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(deleted / elapsed),
        "index_build_s": round(build, 1),
    }
    log(f"Tenure purge with the opt-in indexes: {deleted:,} rows in {elapsed:.1f}s (indexes built in {build:.0f}s)")

    uri = copy(server, "run")
    before, _ = await load_while(uri, idle(20.0))
    during, _ = await load_while(uri, tenure_purge(uri))
    results["insert_p99_ms"] = {"no_purge": round(p99(before) * 1000, 2), "tenure_purge": round(p99(during) * 1000, 2)}
    uri = copy(server, "run")
    spec = paced(args.pace_rows_per_second, args.pause_ms)
    during_paced, (deleted, elapsed) = await load_while(uri, tenure_purge(uri, spec))
    results["insert_p99_ms"]["tenure_paced_purge"] = round(p99(during_paced) * 1000, 2)
    results["tenure_paced"] = {
        "pacing": spec.postgres.pacing.model_dump(by_alias=True) if spec.postgres.pacing else None,
        "rows": deleted,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(deleted / elapsed),
    }
    log(f"Tenure paced purge ({results['tenure_paced']['pacing']}): {deleted:,} rows in {elapsed:.1f}s")
    uri = copy(server, "run")
    during_delete, _ = await load_while(uri, single_delete(uri))
    results["insert_p99_ms"]["single_delete"] = round(p99(during_delete) * 1000, 2)
    results["insert_samples"] = {
        "no_purge": len(before),
        "tenure_purge": len(during),
        "tenure_paced_purge": len(during_paced),
        "single_delete": len(during_delete),
    }
    log(f"insert p99: {results['insert_p99_ms']}")

    for template in ("base", "partitioned"):
        uri = copy(server, "run", template)
        first, first_s = await sweep_all(uri, args.tenants)
        second, second_s = await sweep_all(uri, args.tenants)
        results[f"sweep_{template}"] = {
            "first": {"seconds": round(first_s, 2), "rows_deleted": first.deleted, "rows_redacted": first.redacted},
            "steady": {"seconds": round(second_s, 2), "rows_deleted": second.deleted, "rows_redacted": second.redacted},
        }
        log(
            f"sweep ({template}): first {first_s:.1f}s ({first.deleted:,} deleted, {first.redacted:,} redacted), "
            f"steady {second_s:.1f}s ({second.deleted:,} deleted, {second.redacted:,} redacted)"
        )

    uri = copy(server, "run", "partitioned")
    deleted, elapsed = await tenure_purge(uri)
    results["tenure_partitioned"] = {
        "rows": deleted,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(deleted / elapsed),
        "remaining": victim_rows(uri),
        "proof_count_s": round(await proof_count(uri), 2),
    }
    log(f"Tenure purge, partitioned: {deleted:,} rows in {elapsed:.1f}s")
    drop(server, "run")

    ceiling = results["single_delete"]["rows_per_s"]
    deleting = results["tenure"]["seconds"] - results["tenure"]["proof_count_s"]
    results["ratios"] = {
        "tenure_vs_single_delete": round(results["tenure"]["rows_per_s"] / ceiling, 2),
        "tenure_deleting_phase_vs_single_delete": round(results["tenure"]["rows"] / deleting / ceiling, 2),
        "tenure_with_opt_in_indexes_vs_single_delete": round(
            results["tenure_with_opt_in_indexes"]["rows_per_s"] / ceiling, 2
        ),
        "tenure_partitioned_vs_unpartitioned": round(
            results["tenure_partitioned"]["rows_per_s"] / results["tenure"]["rows_per_s"], 2
        ),
        "tenure_vs_litellm_batches": round(
            results["tenure"]["rows_per_s"] / results["litellm_batches"]["rows_per_s"], 1
        ),
        "insert_p99_during_tenure_vs_none": round(
            results["insert_p99_ms"]["tenure_purge"] / results["insert_p99_ms"]["no_purge"], 2
        ),
        "insert_p99_during_paced_tenure_vs_none": round(
            results["insert_p99_ms"]["tenure_paced_purge"] / results["insert_p99_ms"]["no_purge"], 2
        ),
        "paced_vs_unpaced_purge_rate": round(
            results["tenure_paced"]["rows_per_s"] / results["tenure"]["rows_per_s"], 2
        ),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--victim-every", type=int, default=10, help="the purged tenant owns every n-th row")
    parser.add_argument("--litellm-seconds", type=float, default=120.0)
    parser.add_argument("--pace-rows-per-second", type=int, default=5000, help="pacing of the paced purge")
    parser.add_argument("--pause-ms", type=int, default=0, help="pause after every statement of the paced purge")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    server = Postgres(settings=SETTINGS).start()
    try:
        started = time.perf_counter()
        base = create_litellm_database(server, "base")
        generate(base, args.rows, args.tenants, args.victim_every)
        log(f"base database ready in {time.perf_counter() - started:.0f}s")
        log(f"partitioned copy ready in {partition(server):.0f}s")
        results = asyncio.run(measure(server, args))
        results["command"] = " ".join(["bench/postgres.py", *sys.argv[1:]])
    finally:
        server.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "postgres.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
