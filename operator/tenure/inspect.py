"""What people see with ``tenure status`` and ``tenure describe``: the lifecycle at a glance.

Reads Tenants and LegalHolds with the same client the operator uses and
renders them with rich; it never writes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from tenure.api import LEGAL_HOLD, TENANT, TenantStatus, format_duration
from tenure.effects.holds import by_tenant
from tenure.effects.kube import Kube, connect


async def _list(plural: str) -> list[dict[str, Any]]:
    kube = Kube(await connect(pool_size=1))
    try:
        return await kube.list_custom(plural)
    finally:
        await kube.close()


def _until(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    delta = moment - now
    if delta.total_seconds() <= 0:
        return f"{moment:%Y-%m-%d %H:%M:%S} (due)"
    return f"{moment:%Y-%m-%d %H:%M:%S} (in {format_duration(timedelta(seconds=int(delta.total_seconds())))})"


def _progress(status: TenantStatus) -> str:
    purge = status.purge
    if purge is None:
        return ""
    parts = []
    if purge.remaining_namespaces or purge.remaining_volumes:
        parts.append(f"{purge.remaining_namespaces or 0} ns, {purge.remaining_volumes or 0} pv left")
    parts += [f"{s.name}: {s.state} ({s.rows_deleted} rows)" for s in purge.stores]
    return "; ".join(parts)


def status(console: Console) -> None:
    tenants = asyncio.run(_list(TENANT.plural))
    holds = asyncio.run(_list(LEGAL_HOLD.plural))
    held = by_tenant(holds)
    now = datetime.now(UTC)
    table = Table("Tenant", "Phase", "Policy", "Next deadline", "Legal holds", "Purge")
    for obj in sorted(tenants, key=lambda o: o["metadata"]["name"]):
        name = obj["metadata"]["name"]
        current = TenantStatus.model_validate(obj.get("status") or {})
        table.add_row(
            name,
            current.phase or "(new)",
            (obj.get("spec") or {}).get("retentionPolicy", "default"),
            _until(current.next_deadline, now),
            ", ".join(held.get(name, [])),
            _progress(current),
        )
    console.print(table)


def describe(console: Console, name: str) -> None:
    found = [t for t in asyncio.run(_list(TENANT.plural)) if t["metadata"]["name"] == name]
    if not found:
        raise SystemExit(f"no Tenant named {name!r}")
    current = TenantStatus.model_validate(found[0].get("status") or {})
    now = datetime.now(UTC)
    console.print(f"[bold]{name}[/bold]: {current.phase or '(new)'}")
    timeline = Table("Moment", "When", show_header=False)
    for label, moment in (
        ("suspended", current.suspended_at),
        ("grace ends", current.grace_ends_at),
        ("expired", current.expired_at),
        ("purge after", current.purge_after),
        ("purge started", current.purge_started_at),
        ("purged", current.purged_at),
    ):
        if moment is not None:
            timeline.add_row(label, _until(moment, now) if moment > now else f"{moment:%Y-%m-%d %H:%M:%S}")
    console.print(timeline)
    conditions = Table("Condition", "Status", "Reason", "Message")
    for c in current.conditions:
        conditions.add_row(c.type, c.status, c.reason, c.message)
    console.print(conditions)
    if current.purge is not None:
        console.print(f"Purge: {_progress(current) or 'nothing left'}")
