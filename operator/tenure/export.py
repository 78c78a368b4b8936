"""``tenure export``: an Active tenant's rows in one DataStore, for the customer to take before closing.

Refused unless the tenant is Active by a status Tenure sealed (the key in
Secret ``tenure-status-seal``; a status anyone else wrote, even the
break-glass group, proves nothing) and its spec agrees (``spec.state:
Active``, not being deleted): a suspended account's data is not accessible,
not even for export, and an expired one's is waiting to be deleted. Checked
again when the rows are written, before anything is published.

Rows follow the purge's rule: a row another tenant not yet purged also claims
is left out, whether they claim it through this DataStore or through any
other DataStore reaching the same database (``datastores.identity``); the
manifest names per table what was left out and whose it is.

FILE (gzip JSON Lines, datastores/export.py) and FILE.manifest.json are
written under temporary names beside them and renamed only when both are
complete, the manifest first; an existing file is replaced only with
``force``. Interrupted (SIGINT, an error), the temporary files are removed:
no file that looks complete is left.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import hmac
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.progress import Progress, SpinnerColumn, TextColumn

from tenure.api import DATA_STORE, TENANT, DataStoreSpec, TenantSpec, TenantStatus, format_timestamp
from tenure.datastores import operations
from tenure.datastores.export import LeftOut
from tenure.datastores.export import export as export_rows
from tenure.datastores.identity import identity
from tenure.effects import seal
from tenure.effects.errors import ApiError, Gone, checked
from tenure.effects.kube import Kube, connect
from tenure.lifecycle import trust
from tenure.lifecycle.purge import keys_in
from tenure.runtime.claims import claims
from tenure.runtime.connections import Connections, Unavailable
from tenure.runtime.store import Claim

FORMAT = "tenure-export/v1"


class Refused(Exception):
    """The export must not run; the message says why."""


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def refusal(body: Mapping[str, Any], key: bytes) -> str | None:
    """Why the tenant's data may not be exported now, or None when it is Active by a sealed status and its spec."""
    meta = body.get("metadata") or {}
    name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
    try:
        status = TenantStatus.model_validate(body.get("status") or {})
        spec = TenantSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return f"tenant {name}'s spec or status cannot be read: nothing is exported from what cannot be trusted"
    if status.phase != "Active":
        return (
            f"tenant {name} is {status.phase or 'not yet Active'}: only an Active account's data may be exported "
            "(a suspended account is not accessible, not even for export)"
        )
    if meta.get("deletionTimestamp"):
        return f"tenant {name} is being deleted, which closes the account: its data is no longer exported"
    if spec.state != "Active":
        return (
            f"tenant {name} has spec.state {spec.state} (its status has not caught up yet): only an Active "
            "account's data may be exported"
        )
    # Strictly sealed: trust.verifies accepts a bare "phase: Active" as claiming nothing, but handing out data is
    # not nothing, and every status Tenure writes carries its seal.
    if status.seal is None or not hmac.compare_digest(status.seal, trust.seal(key, name, uid, status)):
        return (
            f"tenant {name}'s status says Active, but Tenure did not seal it (written by someone else, or restored "
            "onto another object): wait until the operator has written the tenant's status, then try again"
        )
    return None


async def _seal_key(kube: Kube, namespace: str) -> bytes:
    """The key Tenure seals statuses with (read, never created: the operator creates it)."""
    where = f"Secret {namespace}/{seal.SECRET}"
    try:
        secret = await checked(kube.core.read_namespaced_secret(seal.SECRET, namespace, _preload_content=False))
    except ApiError as error:
        raise Refused(
            f"{where}, the key that proves a status is Tenure's, cannot be read ({error.status}): run the export as "
            "a user who may read it, with the operator's --namespace"
        ) from error
    encoded = (secret.get("data") or {}).get(seal.FIELD)
    if not encoded:
        raise Refused(f"{where} has no {seal.FIELD!r}: without it no status can be trusted")
    return base64.b64decode(encoded)


async def _accessible(kube: Kube, tenant: str, key: bytes) -> dict[str, Any]:
    try:
        body = await kube.get_custom(TENANT.plural, tenant)
    except Gone as error:
        raise Refused(f"no such Tenant: {error.message}") from error
    why = refusal(body, key)
    if why:
        raise Refused(why)
    return body


async def same_database(kube: Kube, conn: Any, store: str) -> list[str]:
    """Every DataStore whose connection reaches the database ``conn`` reaches (``store`` first).

    A DataStore that cannot be reached may reach the same rows: the export is refused rather than guess.
    """
    ours = await identity(conn)
    found = [store]
    for body in await kube.list_custom(DATA_STORE.plural):
        name = body["metadata"]["name"]
        if name == store:
            continue
        try:
            other = await Connections(kube).connect(DataStoreSpec.model_validate(body.get("spec") or {}))
        except (Unavailable, ValidationError) as error:
            raise Refused(
                f"DataStore {name} cannot be reached ({error}), so whether it reaches the same rows as {store} "
                f"(and a tenant claims some of them through it) is unknown: make it reachable or delete it"
            ) from error
        try:
            theirs = await identity(other)
            if ours is None or theirs is None or theirs == ours:  # unknown: it may reach the same rows
                found.append(name)
        finally:
            await other.close()
    return found


def others_claims(
    bodies: list[dict[str, Any]], key: bytes, stores: list[str], tenant: str
) -> dict[str, tuple[str, ...]]:
    """Each other tenant not yet purged, and every key it claims through any of ``stores`` (one database)."""
    tenants = [Claim.from_body(body, key) for body in bodies]
    merged: dict[str, dict[str, None]] = {}
    for store in stores:
        for name, keys in claims(tenants, store, but=tenant).items():
            merged.setdefault(name, {}).update(dict.fromkeys(keys))
    return {name: tuple(keys) for name, keys in merged.items() if keys}


async def export(
    tenant: str,
    store: str,
    output: Path,
    progress: Progress,
    force: bool = False,
    namespace: str = "tenure-system",
    published: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Export the tenant's rows (see the module); ``published`` is called once both files are in place."""
    manifest_file = manifest_path(output)
    if not force:
        for existing in (output, manifest_file):
            if existing.exists():
                raise Refused(f"{existing} exists: give --force to replace it")
    kube = Kube(await connect(pool_size=2))
    try:
        key = await _seal_key(kube, namespace)
        body = await _accessible(kube, tenant, key)
        try:
            datastore = await kube.get_custom(DATA_STORE.plural, store)
        except Gone as error:
            raise Refused(f"no such DataStore: {error.message}") from error
        spec = DataStoreSpec.model_validate(datastore["spec"])
        requested = keys_in(tenant, TenantSpec.model_validate(body.get("spec") or {}).data_keys, store)
        try:
            conn = await Connections(kube).connect(spec)
        except Unavailable as error:
            raise Refused(f"DataStore {store}: {error}") from error
        try:
            stores = await same_database(kube, conn, store)
            others = others_claims(await kube.list_custom(TENANT.plural), key, stores, tenant)
            started = time.perf_counter()
            with _temporary(output) as data, _temporary(manifest_file) as manifest_tmp:
                keys, tables, left_out = await _write(conn, spec, requested, others, data, progress)
                manifest = {
                    "format": FORMAT,
                    "tenant": {"name": tenant, "uid": body["metadata"]["uid"]},
                    "dataStore": store,
                    "keys": {kind: list(values) for kind, values in keys.items()},
                    "exportedAt": format_timestamp(datetime.now(UTC)),
                    "file": output.name,
                    "fileSha256": _sha256(data),
                    "tables": tables,
                    "rows": sum(table["rows"] for table in tables),
                    "leftOut": [entry.manifest() for entry in left_out],
                    "sameDatabase": stores,
                    "seconds": round(time.perf_counter() - started, 3),
                }
                _durable(manifest_tmp, (json.dumps(manifest, indent=2) + "\n").encode())
                # Suspended, closed, forged or recreated meanwhile: what was read is not handed out.
                again = await _accessible(kube, tenant, key)
                if again["metadata"]["uid"] != body["metadata"]["uid"]:
                    raise Refused(f"tenant {tenant} was deleted and created again while its rows were read")
                _publish(data, output, manifest_tmp, manifest_file, force)
                published()
        finally:
            await conn.close()
    finally:
        await kube.close()
    return manifest


async def _write(
    conn: Any,
    spec: DataStoreSpec,
    requested: tuple[str, ...],
    others: Mapping[str, tuple[str, ...]],
    data: Path,
    progress: Progress,
) -> tuple[dict[str, tuple[str, ...]], list[dict[str, Any]], list[LeftOut]]:
    """The rows into ``data`` (gzip, flushed to disk): the tenant's resolved keys, the tables, what was left out."""
    task = progress.add_task("rows", total=None)
    keys = await operations.resolve(conn, spec, requested)
    owners = await operations.key_owners(conn, spec, others)
    left_out: list[LeftOut] = []
    with open(data, "xb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as zipped:
            tables = await export_rows(
                conn,
                spec,
                keys,
                lambda text: zipped.write(text.encode()),
                lambda table, rows: progress.update(task, advance=rows, description=table),
                owners,
                left_out,
            )
        raw.flush()
        os.fsync(raw.fileno())
    return keys, tables, left_out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _durable(path: Path, content: bytes) -> None:
    with open(path, "xb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())


@contextlib.contextmanager
def _temporary(final: Path) -> Iterator[Path]:
    """A temporary name beside ``final`` (hidden, ``.partial``), removed unless it was renamed."""
    path = final.with_name(f".{final.name}.{os.getpid()}.partial")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _publish(data: Path, output: Path, manifest_tmp: Path, manifest_file: Path, force: bool) -> None:
    """Both files under their names, the manifest first (a file is never there without its manifest).

    SIGINT waits until both are in place. Without ``force`` an existing file is never replaced, even one created
    since the export started (a hard link fails when the name exists).
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        if force:
            os.replace(manifest_tmp, manifest_file)
            os.replace(data, output)
            return
        try:
            os.link(manifest_tmp, manifest_file)
        except FileExistsError as error:
            raise Refused(f"{manifest_file} exists: give --force to replace it") from error
        try:
            os.link(data, output)
        except FileExistsError as error:
            manifest_file.unlink()
            raise Refused(f"{output} exists: give --force to replace it") from error
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def columns() -> tuple[Any, ...]:
    return (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"))
