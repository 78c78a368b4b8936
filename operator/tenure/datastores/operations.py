"""What Tenure does to a DataStore: resolve a tenant's keys, purge a tenant, sweep old records.

These compose the engine (``postgres``) with the preset (``litellm``) for a
DataStore spec. They take an open connection and report progress through a
callback that may raise to stop at a batch boundary (a legal hold appeared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tenure.api import DataStoreSpec
from tenure.api.datastore import ContentClass
from tenure.lifecycle.retention import Cutoffs as TenantCutoffs

from . import litellm, postgres
from .targets import KEY, Keys, Target


def targets_of(spec: DataStoreSpec) -> tuple[Target, ...]:
    preset = litellm.TARGETS if spec.postgres.preset == "litellm" else ()
    return (*preset, *(Target.from_mapping(mapping) for mapping in spec.postgres.tables))


def residual_of(spec: DataStoreSpec) -> tuple[str, ...]:
    return litellm.RESIDUAL if spec.postgres.preset == "litellm" else ()


async def resolve(
    conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, keys: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """The tenant's keys by kind, to be recorded before anything is deleted."""
    resolved: dict[str, tuple[str, ...]] = {KEY: keys} if spec.postgres.tables else {}
    if spec.postgres.preset == "litellm":
        resolved.update(await litellm.resolve(conn, keys))
    return resolved


async def purge(
    conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, keys: Keys, progress: postgres.Progress
) -> tuple[int, int]:
    """Delete every row of the tenant from every mapped table; returns (rows deleted, rows still counted)."""
    deleted = 0
    for target in targets_of(spec):
        deleted += await postgres.purge(conn, target, keys, spec.postgres.batch_size, progress)
    remaining = 0
    for target in targets_of(spec):
        remaining += await postgres.count(conn, target, keys)
    return deleted, remaining


@dataclass
class SweepResult:
    deleted: int = 0
    redacted: int = 0


async def sweep(
    conn: psycopg.AsyncConnection[Any],
    spec: DataStoreSpec,
    tenant_keys: Mapping[str, tuple[str, ...]],
    cutoffs: Mapping[str, TenantCutoffs],
    progress: postgres.Progress,
) -> SweepResult:
    """Delete records past their tenant's retention, and clear finer-class columns past theirs.

    Every tenant's cutoff goes into the same statements (one per page range
    and change), so the work does not grow with the number of tenants.
    """
    owners = await _owners(conn, spec, {t: k for t, k in tenant_keys.items() if t in cutoffs})
    result = SweepResult()
    for target in targets_of(spec):
        if target.timestamp is None:
            continue
        passes: list[postgres.SweepPass] = []
        row_class = target.data_class
        if row_class != "account":
            passes.append(postgres.SweepPass(_windows(target, owners, cutoffs, row_class)))
        for data_class, columns in target.redact.items():
            passes.append(postgres.SweepPass(_windows(target, owners, cutoffs, data_class), clear=columns))
        affected = await postgres.sweep(conn, target, passes, spec.postgres.batch_size, progress)
        for sweep_pass, rows in zip(passes, affected, strict=True):
            if sweep_pass.clear:
                result.redacted += rows
            else:
                result.deleted += rows
    return result


async def _owners(
    conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, tenant_keys: Mapping[str, tuple[str, ...]]
) -> dict[str, dict[str, str]]:
    """key kind → key value → tenant."""
    owners: defaultdict[str, dict[str, str]] = defaultdict(dict)
    by_key = {key: tenant for tenant, keys in tenant_keys.items() for key in keys}
    if spec.postgres.tables:
        owners[KEY] = by_key
    if spec.postgres.preset == "litellm":
        owners[litellm.ORGANIZATION] = by_key
        owners[litellm.TEAM] = by_key
        tokens = await litellm.tokens_by_owner(conn, list(by_key), list(by_key))
        owners[litellm.TOKEN] = {token: by_key[owner] for token, owner in tokens.items() if owner in by_key}
    return owners


def _windows(
    target: Target,
    owners: Mapping[str, Mapping[str, str]],
    cutoffs: Mapping[str, TenantCutoffs],
    data_class: ContentClass,
) -> dict[str, postgres.Cutoffs]:
    """Per key column of the table: every key with a cutoff for this class, and that cutoff."""
    windows = {}
    for column, kind in target.key_columns:
        keys, before = [], []
        for key, tenant in owners.get(kind, {}).items():
            moment: datetime | None = cutoffs.get(tenant, {}).get(data_class)
            if moment is not None:
                keys.append(key)
                before.append(moment)
        windows[column] = postgres.Cutoffs(keys, before)
    return windows
