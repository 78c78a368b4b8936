"""Export rate: `tenure export`'s engine on the bench-postgres data (bench/postgres.py's generator).

One base database with ``--rows`` spend logs across ``--tenants`` teams, the
exported tenant (team-0000) owning every ``--victim-every``-th row, as
bench-postgres builds it; then the tenant's rows are exported to a gzip JSON
Lines file exactly as ``tenure export`` does (datastores/export.py, same
compression level), and rows per second, file size and peak RSS are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.postgres import SETTINGS, SPEC, VICTIM, generate, log  # noqa: E402
from tests.support.postgres import Postgres, create_litellm_database  # noqa: E402

from tenure.datastores import operations, postgres  # noqa: E402
from tenure.datastores.export import export  # noqa: E402


async def measure(uri: str, output: Path) -> dict[str, Any]:
    conn = await postgres.connect(uri, operations.session_of(SPEC))
    try:
        keys = await operations.resolve(conn, SPEC, (VICTIM,))
        started = time.perf_counter()
        with gzip.open(output, "wt", encoding="utf-8", compresslevel=6) as sink:
            tables = await export(conn, SPEC, keys, sink.write)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    rows = sum(table["rows"] for table in tables)
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "file_mib": round(output.stat().st_size / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "tables": {table["table"]: table["rows"] for table in tables if table["rows"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--victim-every", type=int, default=10)
    args = parser.parse_args()
    server = Postgres(settings=SETTINGS).start()
    try:
        base = create_litellm_database(server, "base")
        generate(base, args.rows, args.tenants, args.victim_every)
        log("base database ready; exporting")
        with tempfile.TemporaryDirectory() as directory:
            results = asyncio.run(measure(base, Path(directory) / "export.jsonl.gz"))
        results["command"] = " ".join(["bench/export.py", *sys.argv[1:]])
    finally:
        server.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
