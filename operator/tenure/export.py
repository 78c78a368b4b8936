"""``tenure export``: an Active tenant's rows in one DataStore, for the customer to take before closing.

Refused for a tenant that is not Active: a suspended account's data is not
accessible, not even for export, and an expired one's is waiting to be
deleted. Writes FILE (gzip JSON Lines, datastores/export.py) and
FILE.manifest.json (tables, row counts, digests).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress, SpinnerColumn, TextColumn

from tenure.api import DATA_STORE, TENANT, DataStoreSpec, TenantSpec, format_timestamp
from tenure.datastores import operations
from tenure.datastores.export import export as export_rows
from tenure.effects.errors import Gone
from tenure.effects.kube import Kube, connect
from tenure.lifecycle.purge import keys_in
from tenure.runtime.connections import Connections

FORMAT = "tenure-export/v1"


class Refused(Exception):
    """The export must not run; the message says why."""


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


async def export(tenant: str, store: str, output: Path, progress: Progress) -> dict[str, Any]:
    kube = Kube(await connect(pool_size=1))
    try:
        try:
            body = await kube.get_custom(TENANT.plural, tenant)
            datastore = await kube.get_custom(DATA_STORE.plural, store)
        except Gone as error:
            raise Refused(f"no such Tenant or DataStore: {error.message}") from error
        phase = (body.get("status") or {}).get("phase")
        if phase != "Active":
            raise Refused(
                f"tenant {tenant} is {phase or 'not yet Active'}: only an Active account's data may be exported "
                "(a suspended account is not accessible, not even for export)"
            )
        spec = DataStoreSpec.model_validate(datastore["spec"])
        requested = keys_in(tenant, TenantSpec.model_validate(body.get("spec") or {}).data_keys, store)
        conn = await Connections(kube).connect(spec)
    finally:
        await kube.close()
    started = time.perf_counter()
    task = progress.add_task("rows", total=None)
    try:
        keys = await operations.resolve(conn, spec, requested)
        with gzip.open(output, "wt", encoding="utf-8", compresslevel=6) as sink:
            tables = await export_rows(
                conn,
                spec,
                keys,
                sink.write,
                lambda table, rows: progress.update(task, advance=rows, description=table),
            )
    finally:
        await conn.close()
    manifest = {
        "format": FORMAT,
        "tenant": {"name": tenant, "uid": body["metadata"]["uid"]},
        "dataStore": store,
        "keys": {kind: list(values) for kind, values in keys.items()},
        "exportedAt": format_timestamp(datetime.now(UTC)),
        "file": output.name,
        "fileSha256": hashlib.sha256(output.read_bytes()).hexdigest(),
        "tables": tables,
        "rows": sum(table["rows"] for table in tables),
        "seconds": round(time.perf_counter() - started, 3),
    }
    manifest_path(output).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def columns() -> tuple[Any, ...]:
    return (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"))
