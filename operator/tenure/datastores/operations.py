"""What Tenure does to a DataStore: resolve a tenant's keys, purge a tenant, sweep old records.

These compose the engine (``postgres``) with the preset (``litellm``) for a
DataStore spec. They take an open connection and report progress through a
callback that may raise to stop at a batch boundary (a legal hold appeared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tenure.api import DataStoreSpec
from tenure.api.datastore import ContentClass
from tenure.lifecycle.retention import Cutoffs as TenantCutoffs

from . import litellm, postgres, sweeps
from .targets import KEY, Keys, Target


def targets_of(spec: DataStoreSpec) -> tuple[Target, ...]:
    preset = litellm.TARGETS if spec.postgres.preset == "litellm" else ()
    return (*preset, *(Target.from_mapping(mapping) for mapping in spec.postgres.tables))


def batches_of(spec: DataStoreSpec) -> postgres.Batches:
    pacing = spec.postgres.pacing
    pace = postgres.Pace(pacing.rows_per_second, pacing.pause_milliseconds / 1000) if pacing else postgres.Pace()
    return postgres.Batches(spec.postgres.batch_size, pace)


def session_of(spec: DataStoreSpec) -> postgres.Session:
    limits = spec.postgres.session
    return postgres.Session(
        statement_timeout=limits.statement_timeout.total_seconds(),
        lock_timeout=limits.lock_timeout.total_seconds(),
        idle_in_transaction_session_timeout=limits.idle_in_transaction_session_timeout.total_seconds(),
    )


@dataclass(frozen=True)
class Survey:
    """What readiness found: problems with the mapping, partitioned tables, and residual copies."""

    problems: list[str]
    partitioned: tuple[str, ...]
    residual: tuple[str, ...]


async def survey(conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec) -> Survey:
    targets = targets_of(spec)
    partitioned = []
    for target in targets:
        table = await postgres.describe_table(conn, target)
        if table is not None and table.partitioned:
            partitioned.append(target.name)
    return Survey(await postgres.inspect(conn, targets), tuple(partitioned), await residual(conn, spec))


async def residual(conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec) -> tuple[str, ...]:
    """Tables that may hold copies of tenants' rows a purge does not clear, with why (some only when present)."""
    if spec.postgres.preset != "litellm":
        return ()
    present = []
    for table, why in litellm.RESIDUAL_IF_PRESENT:
        if await postgres.describe_table(conn, Target("public", table, (), "usage")) is not None:
            present.append(f"{table}: {why}")
    return (*litellm.RESIDUAL, *present)


async def resolve(
    conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, keys: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """The tenant's keys by kind, to be recorded before anything is deleted."""
    resolved: dict[str, tuple[str, ...]] = {KEY: keys} if spec.postgres.tables else {}
    if spec.postgres.preset == "litellm":
        resolved.update(await litellm.resolve(conn, keys))
    return resolved


@dataclass
class PurgeResult:
    deleted: int = 0
    shared: dict[str, int] = field(default_factory=dict)
    """Per table: rows carrying the tenant's key that stayed because they also carry another tenant's."""
    shrunk: int = 0
    """Times a statement timed out and the batches were halved."""


async def purge(
    conn: psycopg.AsyncConnection[Any],
    spec: DataStoreSpec,
    keys: Keys,
    others: Mapping[str, tuple[str, ...]],
    progress: postgres.Progress,
) -> PurgeResult:
    """Delete every row of the tenant from every mapped table, each table ending with its closing count.

    ``others`` are the keys of every other tenant not yet purged: a row that
    carries one of their keys (resolved like theirs: teams of a claimed
    organization, virtual keys of a claimed team) as well as the tenant's stays.
    """
    owners = await key_owners(conn, spec, others)
    claimed = {kind: tuple(values) for kind, values in owners.items()}
    batches = batches_of(spec)
    result = PurgeResult()
    for target in targets_of(spec):
        done = await postgres.purge(conn, target, keys, batches, progress, claimed)
        result.deleted += done.deleted
        if done.shared:
            result.shared[target.table] = done.shared
    result.shrunk = batches.shrunk
    return result


@dataclass
class SweepResult:
    deleted: int = 0
    redacted: int = 0
    shrunk: int = 0
    """Times a statement timed out and the batches were halved."""


async def sweep(
    conn: psycopg.AsyncConnection[Any],
    spec: DataStoreSpec,
    tenant_keys: Mapping[str, tuple[str, ...]],
    cutoffs: Mapping[str, TenantCutoffs],
    progress: postgres.Progress,
) -> SweepResult:
    """Delete records past their tenant's retention, and clear finer-class columns past theirs.

    ``tenant_keys`` names every tenant whose rows may be in the store, swept or
    not: a row carrying keys of two tenants (say a team of one in the
    organization of another) is past retention only when it is past every
    one of them, and a tenant without a cutoff (held, keeps forever) keeps it.
    Every tenant's cutoff goes into the same statements (one per page range
    and change), so the work does not grow with the number of tenants.
    """
    owners = await key_owners(conn, spec, tenant_keys)
    batches = batches_of(spec)
    result = SweepResult()
    for target in targets_of(spec):
        if target.timestamp is None:
            continue
        passes: list[sweeps.SweepPass] = []
        row_class = target.data_class
        if row_class != "account":
            passes.append(sweeps.SweepPass(_windows(target, owners, cutoffs, row_class)))
        for data_class, columns in target.redact.items():
            passes.append(sweeps.SweepPass(_windows(target, owners, cutoffs, data_class), clear=columns))
        affected = await sweeps.sweep(conn, target, passes, batches, progress)
        for sweep_pass, rows in zip(passes, affected, strict=True):
            if sweep_pass.clear:
                result.redacted += rows
            else:
                result.deleted += rows
    result.shrunk = batches.shrunk
    return result


Owners = dict[str, dict[str, set[str]]]
"""key kind → key value → the tenants claiming it."""


async def key_owners(
    conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, tenant_keys: Mapping[str, tuple[str, ...]]
) -> Owners:
    """Who claims each key a row may carry: a purge keeps a row another tenant claims, a sweep dates it by the
    earliest cutoff of its claimants, the gateway blocks it only when every claimant is inaccessible."""
    by_key: defaultdict[str, set[str]] = defaultdict(set)
    for tenant, keys in tenant_keys.items():
        for key in keys:
            if postgres.bindable(key):  # one no row can hold claims nothing, and would fail every tenant's statement
                by_key[key].add(tenant)
    owners: Owners = {}
    if spec.postgres.tables:
        owners[KEY] = by_key
    if spec.postgres.preset == "litellm":
        # A team belongs to whoever claims it and to whoever claims its organization; a key to both of those.
        teams: dict[str, set[str]] = {key: set(tenants) for key, tenants in by_key.items()}
        for team, organization in (await litellm.teams_of(conn, list(by_key))).items():
            teams.setdefault(team, set()).update(by_key[organization])
        owners[litellm.ORGANIZATION] = by_key
        owners[litellm.TEAM] = teams
        tokens = await litellm.tokens_by_owner(conn, list(teams), list(by_key))
        claimants = {token: {t for owner in ids for t in teams.get(owner, ())} for token, ids in tokens.items()}
        owners[litellm.TOKEN] = {token: tenants for token, tenants in claimants.items() if tenants}
    return owners


def _windows(
    target: Target, owners: Owners, cutoffs: Mapping[str, TenantCutoffs], data_class: ContentClass
) -> dict[str, sweeps.Cutoffs]:
    """Per key column of the table: every known key and its cutoff for this class (``sweeps.KEPT`` when kept).

    A key claimed by several tenants gets the earliest of their cutoffs. When
    no key has a cutoff the pass would change nothing: it is skipped.
    """
    windows: dict[str, sweeps.Cutoffs] = {}
    for column, kind in target.key_columns:
        claimed = owners.get(kind, {})
        if claimed:
            before = [
                min(cutoffs.get(t, {}).get(data_class, sweeps.KEPT) for t in tenants) for tenants in claimed.values()
            ]
            windows[column] = sweeps.Cutoffs(list(claimed), before)
    if all(moment == sweeps.KEPT for window in windows.values() for moment in window.before):
        return {}
    return windows


async def shared(
    conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, keys: Keys, others: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """Other tenants whose keys the tenant's keys cover: purging it would delete their rows too.

    For LiteLLM a tenant's organizations cover their teams (resolution adds
    them), and a team is covered by its organization, so the organizations of
    the tenant's teams count as its keys here.
    """
    ours = {value for values in keys.values() for value in values}
    if spec.postgres.preset == "litellm":
        ours |= await litellm.organizations_of(conn, keys.get(litellm.TEAM, ()))
    return {tenant: tuple(sorted(ours & set(theirs))) for tenant, theirs in others.items() if ours & set(theirs)}
