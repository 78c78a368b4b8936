"""What people see with ``tenure status|describe|holds|plan`` (and ``kubectl tenure ...``): read-only.

Reads with the same client the operator uses, from the cluster of
``--kubeconfig``/``--context`` (kubectl's defaults otherwise), and renders a
table with rich or the same data as JSON or YAML (``-o json|yaml``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import yaml
from rich.console import Console
from rich.table import Table

from tenure.api import LEGAL_HOLD, TENANT, TenantStatus, format_duration
from tenure.effects.errors import Gone
from tenure.effects.holds import by_tenant
from tenure.effects.kube import Kube, connect

Output = Literal["table", "json", "yaml"]
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    """Which cluster to read, as kubectl's --kubeconfig and --context say."""

    kubeconfig: str | None = None
    context: str | None = None

    def read(self, reading: Callable[[Kube], Awaitable[T]]) -> T:
        async def run() -> T:
            kube = Kube(await connect(pool_size=4, kubeconfig=self.kubeconfig, context=self.context))
            try:
                return await reading(kube)
            finally:
                await kube.close()

        return asyncio.run(run())


def emit(console: Console, output: Output, data: Any, table: Callable[[], Table]) -> None:
    if output == "json":
        console.print_json(json.dumps(data))
    elif output == "yaml":
        console.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)
    else:
        console.print(table())


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


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


def _summary(obj: dict[str, Any], holds: list[str]) -> dict[str, Any]:
    current = TenantStatus.model_validate(obj.get("status") or {})
    return {
        "name": obj["metadata"]["name"],
        "phase": current.phase,
        "policy": (obj.get("spec") or {}).get("retentionPolicy", "default"),
        "nextDeadline": _iso(current.next_deadline),
        "legalHolds": holds,
        "purge": _progress(current) or None,
    }


def status(console: Console, cluster: Cluster, output: Output = "table") -> None:
    """Every tenant: phase, next deadline, legal holds, purge progress."""

    async def reading(kube: Kube) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await kube.list_custom(TENANT.plural), await kube.list_custom(LEGAL_HOLD.plural)

    tenants, holds = cluster.read(reading)
    held = by_tenant(holds)
    rows = [_summary(obj, held.get(obj["metadata"]["name"], [])) for obj in tenants]
    rows.sort(key=lambda row: row["name"])
    now = datetime.now(UTC)

    def table() -> Table:
        shown = Table("Tenant", "Phase", "Policy", "Next deadline", "Legal holds", "Purge")
        for row in rows:
            deadline = datetime.fromisoformat(row["nextDeadline"]) if row["nextDeadline"] else None
            shown.add_row(
                row["name"],
                row["phase"] or "(new)",
                row["policy"],
                _until(deadline, now),
                ", ".join(row["legalHolds"]),
                row["purge"] or "",
            )
        return shown

    emit(console, output, rows, table)


def describe(console: Console, cluster: Cluster, name: str, output: Output = "table") -> None:
    """One tenant (read by name, not listed), its timeline, conditions, purge progress and recent Events."""

    async def reading(kube: Kube) -> tuple[dict[str, Any], list[Any]]:
        try:
            tenant = await kube.get_custom(TENANT.plural, name)
        except Gone:
            raise SystemExit(f"no Tenant named {name!r}") from None
        selector = f"involvedObject.kind={TENANT.kind},involvedObject.name={name}"
        events = await kube.core.list_namespaced_event("default", field_selector=selector)
        return tenant, [e for e in events.items if e.involved_object.uid == tenant["metadata"].get("uid")]

    tenant, events = cluster.read(reading)
    current = TenantStatus.model_validate(tenant.get("status") or {})
    recent = sorted(events, key=lambda e: e.last_timestamp or e.event_time or datetime.min.replace(tzinfo=UTC))[-20:]
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "tenant": tenant,
        "events": [
            {
                "type": e.type,
                "reason": e.reason,
                "message": e.message,
                "lastTimestamp": _iso(e.last_timestamp or e.event_time),
                "count": e.count,
            }
            for e in recent
        ],
    }
    if output != "table":
        emit(console, output, data, Table)
        return
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
    shown = Table("Last seen", "Type", "Reason", "Message", title="Recent Events")
    for event in data["events"]:
        shown.add_row(event["lastTimestamp"] or "", event["type"] or "", event["reason"] or "", event["message"] or "")
    console.print(shown)


def holds(console: Console, cluster: Cluster, output: Output = "table") -> None:
    """Every LegalHold: the tenants it names and why."""
    found = cluster.read(lambda kube: kube.list_custom(LEGAL_HOLD.plural))
    rows = [
        {
            "name": obj["metadata"]["name"],
            "tenants": list((obj.get("spec") or {}).get("tenants", [])),
            "reason": (obj.get("spec") or {}).get("reason", ""),
            "created": obj["metadata"].get("creationTimestamp"),
        }
        for obj in sorted(found, key=lambda o: o["metadata"]["name"])
    ]

    def table() -> Table:
        shown = Table("Legal hold", "Tenants", "Reason", "Created")
        for row in rows:
            shown.add_row(row["name"], ", ".join(row["tenants"]), row["reason"], row["created"] or "")
        return shown

    emit(console, output, rows, table)
