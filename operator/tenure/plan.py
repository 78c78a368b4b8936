"""``tenure plan``: what Tenure would delete by a date, and why — read-only.

The cluster is read once (the kinds the operator watches), each tenant is
decided by the lifecycle core at the plan's date exactly as the operator
would decide it then (:func:`tenure.lifecycle.decide`, its facts from the
operator's own :class:`~tenure.runtime.store.Stores`), and each DataStore is
asked how many of the tenant's rows that means, per table and data class:
a purge deletes every row; active-data retention deletes rows older than
their class's window and clears finer-class columns past theirs. A count
that takes longer than 10 seconds is replaced by the planner's
estimate, marked as such. Nothing is written anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from tenure.api import DATA_CLASSES, TENANT, DataStoreSpec, RetentionPolicySpec
from tenure.datastores import operations, postgres
from tenure.datastores.targets import Keys, Target
from tenure.effects.kube import Kube
from tenure.inspect import Cluster, Output, emit
from tenure.lifecycle import PROTECTED_NAMESPACES, TenantView, decide, purge
from tenure.runtime.connections import Connections
from tenure.runtime.store import Stores, Unreadable

PROTECTED = PROTECTED_NAMESPACES | {"tenure-system"}


@dataclass(frozen=True)
class Item:
    """One thing that would be deleted (or is kept), for one tenant."""

    tenant: str
    why: str
    """purge, retention (whole records past their class's window), redaction (columns cleared), or kept."""
    what: str
    when: datetime | None = None
    """When it becomes due (None: already due); never before now."""
    datastore: str | None = None
    table: str | None = None
    data_class: str | None = None
    rows: int | None = None
    estimate: bool = False
    """The row count is the planner's estimate (counting took longer than 10 seconds)."""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        found = {key: value for key, value in asdict(self).items() if value not in (None, "")}
        if self.when is not None:
            found["when"] = self.when.strftime("%Y-%m-%dT%H:%M:%SZ")
        found["dataClass"] = found.pop("data_class", None)
        return {key: value for key, value in found.items() if value is not None}


async def read(kube: Kube, tenants: list[str]) -> Stores:
    """The operator's view of the cluster: every watched kind, and the named tenants (all when none is named)."""
    stores = Stores()
    for plural, kind in stores.kinds.items():
        kind.replace((await kube.listing(plural))[0])
    bodies = [await kube.get_custom(TENANT.plural, name) for name in tenants] if tenants else None
    for body in bodies if bodies is not None else (await kube.listing(TENANT.plural))[0]:
        stores.tenants.put(body)
    return stores


async def plan(kube: Kube, until: datetime, tenants: list[str], now: datetime) -> list[Item]:
    stores = await read(kube, tenants)
    at = max(until, now)
    items: list[Item] = []
    databases = _Databases(kube, stores)
    try:
        for name in sorted(stores.tenants):
            try:
                view = stores.tenants[name].view()
            except Unreadable as error:
                items.append(Item(name, "kept", "everything", note=f"unreadable, left untouched: {error}"))
                continue
            items += await _tenant(view, stores, databases, at, now)
    finally:
        await databases.close()
    return items


async def _tenant(view: TenantView, stores: Stores, databases: _Databases, at: datetime, now: datetime) -> list[Item]:
    name = view.name
    policy = stores.policy(view.spec.retention_policy)
    world = stores.world(view, PROTECTED, {})
    decision = decide(view, policy, world, at)
    status = decision.status
    if view.status.phase == "Purged":
        return []
    if status.phase in ("Purging", "Purged") and status.purge is not None:
        started = view.status.purge_started_at or status.purge_after
        when = max(started, now) if started is not None else None
        items = [
            Item(name, "purge", f"namespace {n.name}", when)
            for n in status.purge.namespaces
            if n.name in stores.namespaces
        ]
        items += [
            Item(name, "purge", f"volume {v.name}", when, note="static: wipe its storage by hand" if v.static else "")
            for v in status.purge.volumes
            if v.name in stores.volumes
        ]
        recorded = {s.name: s.keys for s in status.purge.stores if s.keys is not None}
        for store in sorted(stores.datastores):
            items += await databases.count(name, view, store, recorded.get(store), "purge", when, None)
        return items
    if world.holds and status.phase == "Expired" and status.purge_after is not None and status.purge_after <= at:
        return [Item(name, "kept", "everything", status.purge_after, note=f"legal hold {', '.join(world.holds)}")]
    if world.holds or policy is None:
        return []
    return [
        item
        for store in sorted(stores.datastores)
        for item in await databases.count(name, view, store, None, "retention", None, _cutoffs(policy, at))
    ]


def _cutoffs(policy: RetentionPolicySpec, at: datetime) -> dict[str, datetime]:
    return {c: at - keep for c in DATA_CLASSES if (keep := policy.retention_for(c)) is not None}


class _Databases:
    """One connection per DataStore for the whole plan; a store that cannot be read is reported, not fatal."""

    def __init__(self, kube: Kube, stores: Stores) -> None:
        self.stores = stores
        self.connections = Connections(kube)
        self.open: dict[str, Any] = {}
        self.problems: dict[str, str] = {}

    async def _connect(self, store: str, spec: DataStoreSpec) -> Any:
        if store not in self.open and store not in self.problems:
            try:
                self.open[store] = await self.connections.connect(spec)
            except Exception as error:
                self.problems[store] = str(error) or type(error).__name__
        return self.open.get(store)

    async def count(
        self,
        tenant: str,
        view: TenantView,
        store: str,
        keys: Keys | None,
        why: str,
        when: datetime | None,
        cutoffs: Mapping[str, datetime] | None,
    ) -> list[Item]:
        """Rows of the tenant per table of the store: all of them (a purge), or those past ``cutoffs``."""
        record = self.stores.datastores[store]
        if record.spec is None:
            return [Item(tenant, why, f"rows in DataStore {store}", when, store, note="the DataStore is invalid")]
        spec = record.spec
        requested = purge.keys_in(tenant, view.spec.data_keys, store)  # as the operator resolves them
        if keys is None and not requested:
            return [Item(tenant, why, f"rows in DataStore {store}", when, store, note="spec.dataKeys lists none")]
        conn = await self._connect(store, spec)
        if conn is None:
            return [Item(tenant, why, f"rows in DataStore {store}", when, store, note=self.problems[store])]
        if keys is None:
            keys = await operations.resolve(conn, spec, requested)
        note = "dry run (spec.dryRun): only reported" if spec.dry_run else ""
        items = []
        for target in operations.targets_of(spec):
            items += await self._table(tenant, store, target, conn, keys, why, when, cutoffs, note)
        return items

    async def _table(
        self,
        tenant: str,
        store: str,
        target: Target,
        conn: Any,
        keys: Keys,
        why: str,
        when: datetime | None,
        cutoffs: Mapping[str, datetime] | None,
        note: str,
    ) -> list[Item]:
        def item(kind: str, data_class: str, rows: int, exact: bool) -> Item:
            what = f"{rows if exact else '~' + str(rows)} rows of {target.name} in DataStore {store}"
            return Item(tenant, kind, what, when, store, target.name, data_class, rows, not exact, note)

        if cutoffs is None:
            rows, exact = await postgres.tally(conn, target, keys)
            return [item(why, target.data_class, rows, exact)] if rows else []
        items = []
        if target.data_class in cutoffs:
            rows, exact = await postgres.tally(conn, target, keys, before=cutoffs[target.data_class])
            if rows:
                items.append(item("retention", target.data_class, rows, exact))
        for data_class, columns in target.redact.items():
            if data_class in cutoffs:
                rows, exact = await postgres.tally(conn, target, keys, before=cutoffs[data_class], filled=columns)
                if rows:
                    items.append(item("redaction", data_class, rows, exact))
        return items

    async def close(self) -> None:
        for conn in self.open.values():
            with contextlib.suppress(Exception):
                await conn.close()


def parse_until(value: str | None, now: datetime) -> datetime:
    """``--until``: an ISO date or date-time (UTC unless it says otherwise); now when not given."""
    if value is None:
        return now
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def show(
    console: Console, cluster: Cluster, until: datetime, tenants: list[str], now: datetime, output: Output
) -> None:
    items = cluster.read(lambda kube: plan(kube, until, tenants, now))

    def table() -> Table:
        shown = Table("Tenant", "When", "Why", "What", "Note", title=f"Deleted by {until:%Y-%m-%d %H:%M:%S} UTC")
        for item in items:
            when = f"{item.when:%Y-%m-%d %H:%M:%S}" if item.when and item.when > now else "due"
            shown.add_row(item.tenant, when, item.why, item.what, item.note)
        return shown

    emit(console, output, [item.to_json() for item in items], table)
